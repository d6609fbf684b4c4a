"""Checks on the values the ``patterns`` recognizer matches: checksums (Luhn, IBAN mod-97), calendar and address
validity, and whether a code-shaped value is a run of clinical readings ("80S-90S", "600-12-PEEP"). Pure functions
of the matched text, kept apart from the regexes so that each stays short.
"""

from __future__ import annotations

import re

# Parts of a hyphenated reading in a note written in capitals ("80S-90S", "600-12-PEEP", "CV-SR-80-90", "12-20BPM",
# "5-10CMH20", "0700AM-1900HRS"): numbers glued to a unit, plain numbers and ventilator / rhythm words.
_UNIT_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:S|CC|CCHR|CMH20|CMH2O|BPM|HRS?|AM|PM|NOON|MINS?|MG|MCG|MEQ|ML|P)")
_READING_WORDS = frozenset({"peep", "ac", "sr", "st", "cv", "ps", "ips", "eps", "settings", "vent", "cpap", "simv",
                            "psv", "hr", "bp", "sbp", "map", "rate", "nsr", "sb", "af", "afib"})


def is_reading(value: str) -> bool:
    """A hyphen-joined run of readings (no part a code of its own): at least one number glued to a unit, or two
    numbers beside a ventilator / rhythm word; a lone letter only beside a unit ("C-600CC-40", of "A/C-600CC-40").

    Example:
        >>> is_reading("80S-90S"), is_reading("600-12-PEEP"), is_reading("X7Q-48213"), is_reading("AB-123456")
        (True, True, False, False)
    """
    units = numbers = words = letters = 0
    for part in value.split("-"):
        if _UNIT_NUMBER.fullmatch(part):
            units += 1
        elif part.isdigit():
            numbers += 1
        elif part.lower() in _READING_WORDS:
            words += 1
        elif len(part) == 1 and part.isalpha():
            letters += 1
        else:
            return False
    return units >= 1 or (numbers >= 2 and words >= 1 and not letters)


def luhn_valid(digits: str) -> bool:
    """Luhn checksum of a card number (digits only).

    Example:
        >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
        (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces ignored).

    Example:
        >>> iban_valid("GB82 WEST 1234 5698 7654 32")
        True
    """
    s = iban.replace(" ", "")
    if len(s) < 15 or len(s) > 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def valid_numeric_date(s: str) -> bool:
    """Month and day (either order) or ISO year-month-day within the calendar's ranges.

    Example:
        >>> valid_numeric_date("31/12/2020"), valid_numeric_date("2020-02-30"), valid_numeric_date("13/13/2020")
        (True, True, False)
    """
    parts = re.split(r"[/.-]", s)
    if len(parts) != 3:
        return False
    a, b, c = parts
    if len(a) == 4:  # ISO
        return 1 <= int(b) <= 12 and 1 <= int(c) <= 31
    x, y = int(a), int(b)
    return (1 <= x <= 12 and 1 <= y <= 31) or (1 <= y <= 12 and 1 <= x <= 31)


def ipv4_valid(s: str) -> bool:
    """Four octets of at most 255 without leading zeros.

    Example:
        >>> ipv4_valid("192.168.0.1"), ipv4_valid("10.01.0.300")
        (True, False)
    """
    return all(int(p) <= 255 and (p == "0" or not p.startswith("0")) for p in s.split("."))


def month_year_valid(s: str) -> bool:
    """The month of "M/YYYY" (or "MM-YYYY") is 1-12.

    Example:
        >>> month_year_valid("12/2019"), month_year_valid("13/2019"), month_year_valid("03-2021")
        (True, False, True)
    """
    return 1 <= int(s.replace("-", "/").split("/")[0]) <= 12


def day_first_valid(s: str) -> bool:
    """The leading day of "3rd March" / "31 Jan" is 1-31.

    Example:
        >>> day_first_valid("31 Jan"), day_first_valid("45 Jan")
        (True, False)
    """
    return 1 <= int(s[:2] if s[:2].isdigit() else s[:1]) <= 31


def ssn_valid(s: str) -> bool:
    """A US SSN ("AAA-GG-SSSS") whose area, group and serial can be issued.

    Example:
        >>> ssn_valid("123-45-6789"), ssn_valid("666-45-6789"), ssn_valid("123-00-6789")
        (True, False, False)
    """
    area, group, serial = s[:3], s[4:6], s[7:]
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def is_ipv6(candidate: str) -> bool:
    """Whether the text parses as an IPv6 address.

    Example:
        >>> is_ipv6("2001:db8::1"), is_ipv6("12:30:45")
        (True, False)
    """
    import ipaddress

    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True
