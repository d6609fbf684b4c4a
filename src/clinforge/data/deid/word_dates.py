"""Dates and ages written in words, and holidays: rules of the ``patterns`` recognizer for what a number does not
show.

Transcripts of visits say dates and ages ("on october twenty sixth", "the fifth of june", "she is ninety two years
old"), and a holiday names a day of the year. Each rule is a regular expression led by literals (so that ``re`` jumps
between candidates) and gated by what the lower-cased text must hold for it to match (``WORD_RULE_GATES``:
substrings, or one pattern where one search is cheaper), so that notes without such words pay nearly nothing.

Example:
    >>> [name for _, name, _, _ in WORD_RULES][:2]
    ['holiday', 'spoken date']
    >>> bool(WORD_RULES[1][2].search("seen on october twenty sixth"))
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Holidays name a day of the year: "admitted on Christmas Eve" dates the stay as surely as "12/24" (i2b2 annotates
# them as dates; Safe Harbor removes every element of a date but the year). Each in its three cases, literals
# first, so that re has a first-character set to jump between candidates.
HOLIDAYS = ("Christmas", "Xmas", "Thanksgiving", "Easter", "Halloween", "Hanukkah", "Chanukah", "Passover", "Ramadan",
            "Yom Kippur", "Rosh Hashanah", "Kwanzaa", "New Year's", "New Years", "Memorial Day", "Labor Day",
            "Independence Day", "Veterans Day", "Veterans' Day", "Mother's Day", "Father's Day", "Valentine's Day",
            "Martin Luther King Day", "MLK Day", "Presidents Day", "Presidents' Day", "Columbus Day", "Good Friday",
            "Ash Wednesday", "Palm Sunday", "St. Patrick's Day", "Saint Patrick's Day")
# Dates as they are spoken, in transcripts of visits: "on october twenty sixth", "april twenty two", "the fifth of
# june" (a month name alone was already a date, which left the day behind). "may" and "march" take an ordinal only
# ("may third"; "we march one step" is no date). A spoken year after it is kept, as a year in digits is. Three
# rules, each led by literals in three cases and gated by substrings of the lower-cased text that it cannot match
# without, so that nursing notes (where "may" is common) pay nearly nothing.
_ORD_UNIT = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
_ORD_TEENS = ("tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
              "eighteenth", "nineteenth", "twentieth", "thirtieth")
_DAY_ORD = rf"(?:twenty|thirty)[ -](?:{'|'.join(_ORD_UNIT)})|{'|'.join(_ORD_UNIT + _ORD_TEENS)}"
_DAY_CARD = r"(?:twenty|thirty)[ -](?:one|two|three|four|five|six|seven|eight|nine)|one|two|three|four|five|six|" \
    r"seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty"
# An age over 89 in words ("she is ninety two years old", "aged ninety-four"): Safe Harbor aggregates it into 90+.
_UNITS = "one|two|three|four|five|six|seven|eight|nine"
_AGE_VALUE = (rf"(?P<value>ninety(?:[ -](?:{_UNITS}))?|(?:a[ \t]+|one[ \t]+)?hundred(?:[ -](?:and[ -])?"
              rf"(?:{_UNITS}|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen))?)")
_AGE_RULES = [
    ("age > 89 in words before 'years old'", re.compile(rf"(?i:{_AGE_VALUE}(?:[ -]+years?[ -]+old|[ -]year-old)\b)")),
    ("age > 89 in words after 'age(d)'", re.compile(rf"(?i:aged?[ \t]+(?:of[ \t]+)?{_AGE_VALUE})(?![\w-])")),
]
_PLAIN_MONTHS = ("january", "february", "april", "june", "july", "august", "september", "october", "november",
                 "december")
_VERB_MONTHS = ("may", "march")


def _three_cases(words: Sequence[str]) -> str:
    return "|".join(f for w in words for f in (w.title(), w.upper(), w))


_SPOKEN_RULES = [
    # (a number word that begins a spoken year is no day: "January two thousand and eight", "December nineteen
    # ninety four" are a month and a year, and the month alone is a date already)
    ("spoken date", re.compile(rf"(?:{_three_cases(_PLAIN_MONTHS)})[ \t]+(?i:(?:the[ \t]+)?(?:{_DAY_ORD}|(?:{_DAY_CARD})"
                               r"(?![ \t]+(?:hundred|thousand|ten|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
                               r"ninety)\b)))"
                               r"(?![^\W\d_])"), _PLAIN_MONTHS),
    ("spoken date, may or march", re.compile(rf"(?:{_three_cases(_VERB_MONTHS)})[ \t]+(?i:(?:the[ \t]+)?(?:{_DAY_ORD}))"
                                             r"(?![^\W\d_])"),
     # (one search: the alternatives share their first letters, which re jumps between; 0.7 us a note, 48
     # substring tests took 17)
     re.compile(rf"(?:may|march) (?:the|{'|'.join(_ORD_UNIT + _ORD_TEENS)}|twenty|thirty)")),
    ("spoken date, day of month", re.compile(  # (rare enough behind its gate to be written case-insensitively)
        rf"(?i:(?:the[ \t]+)?(?:{_DAY_ORD})[ \t]+of[ \t]+(?:{'|'.join(_PLAIN_MONTHS + _VERB_MONTHS)}))(?![^\W\d_])"),
     re.compile(rf"of (?:{'|'.join(_PLAIN_MONTHS + _VERB_MONTHS)})")),
]
# what the lower-cased text must hold for the holiday rule to run (one substring search each, not a scan of ~100
# alternatives at every letter: 9% of the whole recognizer's time on nursing notes)
_HOLIDAY_STEMS = ("christmas", "xmas", "thanksgiving", "easter", "halloween", "hanukkah", "chanukah", "passover",
                  "ramadan", "kippur", "hashanah", "kwanzaa", "new year", "memorial day", "labor day", "independence day",
                  "veterans", "mother's day", "mother’s day", "mothers day", "father's day", "father’s day",
                  "fathers day", "valentine", "luther king", "mlk day", "presidents", "columbus day", "patrick",
                  "good friday", "ash wednesday", "palm sunday")
_HOLIDAY_FORMS = sorted({form for h in HOLIDAYS for form in (h, h.upper(), h.lower())}, key=lambda f: (-len(f), f))
_HOLIDAY = re.compile("(?:" + "|".join(re.escape(f).replace("'", "['’]?") for f in _HOLIDAY_FORMS) + ")"
                      r"(?:[ \t]+(?:Eve|EVE|eve|Day|DAY|day|Sunday|SUNDAY|sunday|Monday|MONDAY|monday))?(?![^\W\d_])")


# Identifiers read out digit by digit in a dictated note or a visit transcript ("medical record number four four
# eight one one two three", "my cell is six one seven five five five ..."): four or more digit words after a
# record-number cue, seven or more after a phone cue ("oh" is a zero after the first digit word).
_DIGIT = r"(?:zero|one|two|three|four|five|six|seven|eight|nine|double[ \t]+(?:zero|oh|one|two|three|four|five|six|" \
         r"seven|eight|nine))"


def _digit_words(least: int) -> str:
    return rf"{_DIGIT}(?:[ \t,-]+(?:{_DIGIT}|oh)){{{least - 1},}}"


_IS = r"(?:(?:is|was|still|now)[ \t]+){0,2}"  # "number is still four oh four ..."
# (entity type, explanation, cue words the lower-cased text is searched for, pattern matched at each cue)
SPOKEN_ID_RULES = [
    ("MRN", "digits in words after a record-number cue", ("record", "mrn", "chart", "account", "member id",
                                                          "patient id"),
     re.compile(r"(?i:(?:medical[ \t]+record|record|mrn|chart|account|member[ \t]+id|patient[ \t]+id)[ \t]+"
                r"(?:number[ \t]+|no\.?[ \t]+|#[ \t]*)?" + _IS + r"(?P<value>" + _digit_words(4) + r"))(?![^\W\d_])")),
    ("PHONE", "digits in words after a phone cue", ("phone", "cell", "mobile", "pager", "fax", "number", "call me at",
                                                  "call at", "reach me at", "reach at", "text me at"),
     re.compile(r"(?i:(?:telephone|phone|cell|mobile|pager|fax|number|call[ \t]+(?:me[ \t]+)?at|"
                r"reach[ \t]+(?:me[ \t]+)?at|text[ \t]+me[ \t]+at)"
                r"[ \t]+(?:number[ \t]+)?" + _IS + r"(?P<value>" + _digit_words(7) + r"))(?![^\W\d_])")),
]


# What a text's word set must hold for find_spoken_ids to be worth running (the notes recognizer tests it): a cue
# word, and two different digit words or "double"
SPOKEN_ID_CUES = frozenset({"record", "mrn", "chart", "account", "member", "patient", "phone", "cell", "mobile",
                            "pager", "fax", "call", "reach", "telephone", "number", "text"})
DIGIT_WORDS = frozenset({"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "double"})


def find_spoken_ids(text: str, lower: str) -> list[tuple[int, int, str, str]]:
    """(start, end, type, explanation) of each identifier read out in digit words after its cue (above). Each cue
    is found by a substring search and the rule matched there only: most texts hold a cue word ("chart", "cell",
    "call") and few a number in words, and a case-insensitive scan of every text cost 5% of the recognizer.

    Example:
        >>> t = "medical record number four four eight one one two three period"
        >>> [(t[a:b], kind) for a, b, kind, _ in find_spoken_ids(t, t)]
        [('four four eight one one two three', 'MRN')]
    """
    out = []
    for etype, why, cues, pattern in SPOKEN_ID_RULES:
        for cue in cues:
            pos = lower.find(cue)
            while pos >= 0:
                after = pos + len(cue)
                if (pos == 0 or not lower[pos - 1].isalpha()) and not lower[after:after + 1].isalpha():  # whole words
                    m = pattern.match(text, pos)
                    # (a value read as a record number is no phone number: "record number four four eight ...")
                    if m is not None and not any(a < m.end("value") and m.start("value") < b for a, b, _, _ in out):
                        out.append((m.start("value"), m.end("value"), etype, why))
                pos = lower.find(cue, pos + 1)
    return out


# (entity type, rule name, pattern, score): ``patterns.RULES`` adds its left-boundary test
WORD_RULES: list[tuple[str, str, re.Pattern[str], float]] = [
    ("DATE", "holiday", _HOLIDAY, 0.7),
    *[("DATE", name, pattern, 0.75) for name, pattern, _ in _SPOKEN_RULES],
    *[("AGE", name, pattern, 0.8) for name, pattern in _AGE_RULES],
]
# what the lower-cased text must hold for each rule to run: substrings, or a pattern to search for
WORD_RULE_GATES: dict[str, tuple[str, ...] | re.Pattern[str]] = {
    "holiday": _HOLIDAY_STEMS,
    **{name: gate for name, _, gate in _SPOKEN_RULES},
    **{name: ("ninety", "hundred") for name, _ in _AGE_RULES},
}
