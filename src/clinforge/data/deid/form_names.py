"""A name written surname first in a form field: ``Patient: DOE, JANE A``, ``Name: Garcia, Maria L.``.

Headers of reports, lab slips and letters put the patient's name as ``LAST, FIRST [M]`` after a label. The names
recognizer reads capitalised runs one by one, so a surname that is also a word (``DOE``, ``KING``, ``PARK``) before
the comma was left when the first name was found. Here the field's shape decides: a name label opening a line or a
column (after two spaces or ``|``), then ``word(s), first name [initial]`` ending the field (line end, two spaces,
a separator or the next label). So that a transcript's ``Patient: Yes, Doctor`` stays speech, the word after the
comma must be a first name of the lexicons or a word in no English list, in the same letter case as the surname, and
a surname in title case must be no English word (in capitals, ``DOE`` and ``KING`` are surnames).

Example:
    >>> t = "Patient: DOE, JANE A   MRN: 4481123"
    >>> [t[a:b] for a, b in surname_first_fields(t, first_names={"jane"}, english=set())]
    ['DOE, JANE A']
"""

from __future__ import annotations

import re
from collections.abc import Collection

_FIELD = re.compile(
    r"(?m)(?:^|[ \t]{2}|\|)[ \t]*(?i:patient|pt|patient'?s[ \t]+name|patient[ \t]+name|pt[ \t]+name|name|legal[ \t]+name|"
    r"full[ \t]+name)[ \t]*:[ \t]*(?P<value>(?P<last>[A-Z][A-Za-z'’-]+(?:[ \t][A-Z][A-Za-z'’-]+)?)[ \t]*,[ \t]*"
    r"(?P<first>[A-Z][A-Za-z'’-]+)(?:[ \t]+[A-Z](?![A-Za-z])\.?)?)"
    r"(?=[ \t]*$|[ \t]{2}|[ \t]*[,;|(]|[ \t]+(?:MRN|DOB|AGE|SEX|DOS|ID|ACCT|Age|Sex)\b)")


# ("Patient:", "Pt :", "Name:"; led by the colon, so that re jumps between colons in C)
_LABEL_HINT = re.compile(r":(?:(?<=[nNpPmM][tTeE]:)|(?<=[nNpPmM][tTeE] :)|(?<=[nNpPmM][tTeE]\t:))")


def surname_first_fields(text: str, first_names: Collection[str], english: Collection[str]) -> list[tuple[int, int]]:
    """(start, end) of each ``LAST, FIRST [M]`` value after a name label in ``text`` (see the module docstring);
    ``first_names`` and ``english`` are lower-case word sets.
    """
    if "," not in text or _LABEL_HINT.search(text) is None:
        return []  # (one scan for a name label's colon, instead of the field pattern tried at every line)
    out = []
    for m in _FIELD.finditer(text):
        last, first = m.group("last"), m.group("first")
        if last.isupper() != first.isupper():
            continue  # "Patient: Okay, Doctor" has no such shape either way; mixed cases are prose
        if not last.isupper() and any(w.lower() in english for w in last.split()):
            continue  # "Patient: Okay, Maria": a transcript's speaker says a word first; a form in capitals does not
        low = first.lower()
        if low in first_names or low not in english:
            out.append(m.span("value"))
    return out
