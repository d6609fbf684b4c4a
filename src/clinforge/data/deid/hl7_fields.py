"""Identifiers in HL7 v2 messages pasted into text: the fields of PID, NK1, PV1, ORC, OBR ... that hold PHI.

Radiology and pathology reports reach a research team as HL7 v2 ``ORU^R01`` messages as often as they do as notes,
and a message carries its patient in fixed fields (``PID|1||00123456^^^MRN||DOE^JANE^A||19800101|F|||123 MAIN
ST^^BOSTON^MA^02115``): names and addresses in capitals joined by ``^``, dates as ``YYYYMMDD``, which no rule for
prose reads. Here each segment that carries people is split by the message's own separators (``MSH-1``/``MSH-2``,
``|^~\\&`` by default) and each component that the standard (HL7 v2.5.1) defines as a person's name, address,
telephone, date, or identifier becomes a span of that type: the family, given and middle names of an XPN / XCN
(not its prefix or degree), the street, city, ZIP and county of an XAD (not its state or country), the number and
e-mail of an XTN, the ID of a CX (not its assigning authority), the date of a TS / DTM when it holds a month and
day. The free text of OBX-5 / NTE-3 is left to the other rules, which read the whole text as well.

Written by hand because the parsers on PyPI (``hl7``, ``hl7apy``) return field values, not character offsets, and
a span must point into the text as given.

Example:
    >>> t = "PID|1||00123456^^^MRN||DOE^JANE^A||19800101|F"
    >>> [(t[a:b], kind) for a, b, kind, _ in find_hl7_fields(t)]
    [('00123456', 'MRN'), ('DOE', 'NAME'), ('JANE', 'NAME'), ('A', 'NAME'), ('19800101', 'DATE')]
"""

from __future__ import annotations

import re
from functools import lru_cache

# Field number -> data type, per segment (HL7 v2.5.1). MSH fields are numbered with MSH-1 the field separator.
_FIELDS: dict[str, dict[int, str]] = {
    "MSH": {7: "TS"},
    "EVN": {2: "TS", 6: "TS"},
    "PID": {2: "MRN", 3: "MRN", 4: "MRN", 5: "XPN", 6: "XPN", 7: "TS", 9: "XPN", 11: "XAD", 12: "LOCATION",
            13: "XTN", 14: "XTN", 18: "ACCOUNT", 19: "SSN", 20: "LICENSE", 21: "MRN", 23: "LOCATION", 29: "TS"},
    "PD1": {4: "XCN"},
    "NK1": {2: "XPN", 4: "XAD", 5: "XTN", 6: "XTN", 8: "TS", 9: "TS", 12: "CX", 16: "TS", 30: "XPN", 31: "XTN",
            32: "XAD", 33: "CX", 37: "SSN"},
    "PV1": {7: "XCN", 8: "XCN", 9: "XCN", 17: "XCN", 19: "CX", 44: "TS", 45: "TS", 50: "CX", 52: "XCN"},
    "PV2": {8: "TS", 9: "TS"},
    "GT1": {2: "CX", 3: "XPN", 4: "XPN", 5: "XAD", 6: "XTN", 7: "XTN", 8: "TS", 12: "SSN"},
    "IN1": {16: "XPN", 18: "TS", 19: "XAD", 36: "HEALTH_PLAN", 49: "CX"},
    "IN2": {1: "CX", 2: "SSN"},
    "ORC": {2: "CX", 3: "CX", 9: "TS", 10: "XCN", 11: "XCN", 12: "XCN", 15: "TS", 19: "XCN"},
    "OBR": {2: "CX", 3: "CX", 6: "TS", 7: "TS", 8: "TS", 14: "TS", 16: "XCN", 22: "TS", 28: "XCN", 32: "XCN",
            33: "XCN", 34: "XCN", 35: "XCN"},
    "OBX": {14: "TS", 16: "XCN", 19: "TS"},
    "TXA": {4: "TS", 5: "XCN", 6: "TS", 7: "TS", 9: "XCN", 10: "XCN", 12: "CX", 22: "XCN"},
    "DG1": {5: "TS", 16: "XCN"},
    "AL1": {6: "TS"},
}
# Component (1-based) -> span type, per composite data type; a plain type names the span type of component 1.
_COMPONENTS: dict[str, dict[int, str]] = {
    "XPN": {1: "NAME", 2: "NAME", 3: "NAME"},  # family, given, middle (4 suffix, 5 prefix, 6 degree: no PHI)
    "XCN": {1: "ID", 2: "NAME", 3: "NAME", 4: "NAME"},  # ID number, family, given, middle
    "XAD": {1: "ADDRESS", 2: "ADDRESS", 3: "LOCATION", 5: "ZIP", 9: "LOCATION"},  # street, other, city, zip, county
    "XTN": {1: "PHONE", 4: "EMAIL", 6: "PHONE", 7: "PHONE", 12: "PHONE"},  # number, e-mail, area, local, unformatted
    "CX": {1: "ID"},
    "MRN": {1: "MRN"},
    "TS": {1: "DATE"},
}
_SEGMENT_IDS = "MSH|EVN|PID|PD1|NK1|PV1|PV2|GT1|IN1|IN2|ORC|OBR|OBX|TXA|DG1|AL1"
_MSH = re.compile(r"(?:^|(?<=[\r\n]))MSH(?P<field>[^\w\s])(?P<enc>[^\w\s]{2,5})(?P=field)")
# A date needs a month and a day (a year alone is no identifier): YYYYMM DD and on
_DATE_VALUE = re.compile(r"(?:19|20|21)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")


def _separators(text: str) -> tuple[str, str, str]:
    """(field, component, repetition) separators from the message's MSH-1 and MSH-2, else ``| ^ ~``."""
    m = _MSH.search(text) if "MSH" in text else None
    if m is None:
        return "|", "^", "~"
    enc = m.group("enc")
    return m.group("field"), enc[0], enc[1]


@lru_cache(maxsize=8)
def _segment_regex(field: str) -> re.Pattern[str]:
    return re.compile(r"(?:^|(?<=[\r\n]))(?P<id>" + _SEGMENT_IDS + r")(?P<sep>" + re.escape(field) + r")[^\r\n]*")


def find_hl7_fields(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, entity type, explanation) of each PHI component in the HL7 v2 segments of ``text``.

    Example:
        >>> t = "NK1|1|DOE^JOHN^^^MR|SPO|9 ELM ST^^SALEM^MA^01970|(978)555-0100"
        >>> [(t[a:b], kind) for a, b, kind, _ in find_hl7_fields(t)]
        [('DOE', 'NAME'), ('JOHN', 'NAME'), ('9 ELM ST', 'ADDRESS'), ('SALEM', 'LOCATION'), ('01970', 'ZIP'), ('(978)555-0100', 'PHONE')]
    """
    out: list[tuple[int, int, str, str]] = []
    field, component, repetition = _separators(text)
    if field not in text:
        return out
    for seg in _segment_regex(field).finditer(text):
        fields = _FIELDS[seg.group("id")]
        pos = seg.start("sep")
        # field n of a segment starts after the n-th "|" (MSH-1 is the first "|" itself, so MSH-n after the (n-1)-th)
        number = 1 if seg.group("id") == "MSH" else 0
        line_end = seg.end()
        while pos < line_end:
            start = pos + 1
            end = text.find(field, start, line_end)
            end = line_end if end < 0 else end
            number += 1
            kind = fields.get(number)
            if kind is not None and end > start:
                _add_components(text, start, end, kind, f"HL7 {seg.group('id')}-{number}", component, repetition, out)
            pos = end
    return out


def _add_components(text: str, start: int, end: int, kind: str, where: str, component: str, repetition: str,
                    out: list[tuple[int, int, str, str]]) -> None:
    types = _COMPONENTS.get(kind, {1: kind})
    rep_start = start
    while rep_start <= end:
        rep_end = text.find(repetition, rep_start, end)
        rep_end = end if rep_end < 0 else rep_end
        comp_start, index = rep_start, 1
        while comp_start <= rep_end:
            comp_end = text.find(component, comp_start, rep_end)
            comp_end = rep_end if comp_end < 0 else comp_end
            etype = types.get(index)
            value = text[comp_start:comp_end]
            if etype is not None and value.strip() and (etype != "DATE" or _DATE_VALUE.match(value)) and (
                    etype != "EMAIL" or "@" in value) and (etype != "PHONE" or any(c.isdigit() for c in value)):
                sub = value.find("&")  # a subcomponent (an XPN surname's own prefix, a CX authority's OID) ends it
                stop = comp_start + sub if sub > 0 and etype not in ("NAME", "ADDRESS") else comp_end
                out.append((comp_start, stop, etype, f"{where} component {index} ({kind})"))
            comp_start, index = comp_end + 1, index + 1
        rep_start = rep_end + 1
