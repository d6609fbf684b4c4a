"""Phone and pager numbers in clinical notes, one of the rule families of the notes recognizer (``note_rules``).

Numbers with an area code (``301 944-5032``, ``(617) 555-1234``); seven-digit numbers near a phone cue, a relative
or a short label (``wife (555-1234)``, ``Hm: 555-1234``, ``555-1234 (home)``) but not ranges with a unit
(``100-1500cc``); pager and extension numbers after their cue (``Pager #54321``, ``PG 33445``, ``x4321``); and the
name written right before a number (``daughter ann 555-...``), when the recognizer says the words are a name.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from clinforge.data.deid.lexicons import word_start_regex
from clinforge.data.deid.name_patterns import RELATIVE_CUE
from clinforge.data.deid.spans import Span

# the recognizer's span factory: (start, end, entity type, score, explanation) -> Span
SpanMaker = Callable[[int, int, str, float, str], Span]

_PAGER_CUES = ("pager", "pgr", "pg", "beeper", "bpr", "page", "paged", "ext", "extension", "x", "phone", "tel", "cell",
               "call", "number", "#")
_PAGER_WORDS = frozenset(_PAGER_CUES) - {"#"}

_NAME_BEFORE_PHONE = re.compile(r"(?<![a-z'’-])(?P<a>[a-z][a-z'’-]+)[ \t]+(?P<b>[a-z][a-z'’-]+)[ \t,:-]*(?:(?:cell|home|work|"
                                r"phone|ph|tel|mobile|pager|beeper)[ \t]*(?:#|no\.?|number)?[ \t:]*|#[ \t]*)?$")

# (one character class first and the look-behinds after it, so that the scan jumps between digits and brackets: a
# branch of "\d..." and "\(..." gives re no first-character set, and it would try every position)
_PHONE = re.compile(r"[\d(](?:(?<=\d)(?<!\d\d)\d\d[ \t./-]\d{3}[ \t.-]\d{4}(?!\d)|(?<=\()(?<!\d\()\d{3}\)[ \t]?\d{3}[ \t.-]?\d{4}(?!\d))")
# 555-1234 without an area code; not a range with a unit ("100-1500cc") nor part of a longer number (a full stop
# after it ends a sentence: "wife 555-1234." is a number, "555-1234.5" is not); a label may be hyphened on
# ("H-555-1234", "number-555-1234"), a number may not ("10-100-1500")
# (matched from its hyphen, the three digits before it in a look-behind: re then tries the pattern at hyphens only,
# not at every digit; the number starts 3 characters before the match. A match is 8 characters and ends before no
# digit or hyphen, so none can start inside the previous one: the matches are those of "\d\d\d-\d{4}..." shifted by 3)
_LOCAL_PHONE = re.compile(r"-(?<=(?<![\d./])(?<!\d-)\d\d\d-)\d{4}(?![\d\-/]|\.\d|[ \t]*(?:cc|ml|mg|mcg|u|units|l|%|x|hrs?)\b)")
# A phone cue shortly before the number: a word for a telephone, a relative or proxy whose number it is ("wife
# (555-1234)"), or a one- or two-letter label with a colon or a hyphen ("Hm: 555-1234", "w: 555-1234", "H-555-1234").
_PHONE_CUE_NEAR = re.compile(r"(?<![a-z])(?:phone|tel|cell|home|work|office|pager|beeper|call|called|calls|number|#|"
                             r"reached|reach|contact|ph|ext|mobile|(?:hm|wk|h|w|c)[ \t]*[:-]|" + RELATIVE_CUE + r")"
                             r"(?![a-z])")
# ... or a label right after it: "555-1234 (home)", "555-1234 cell"
_PHONE_CUE_AFTER = re.compile(r"[ \t]*[(\[-]?[ \t]*(?:home|cell|work|office|mobile|pager|beeper|hm|wk)(?![a-z])")
# (?<![a-z])(?:pager|pgr|...|#), the look-behind after each first character (see word_start_regex)
# The number right after its cue (in brackets too: "paged (54321)"), or one or two small words later ("pager # is
# 12345", "page me at 12345", "page np at 12345", "call icu at 4-5678"), or a title and a name and "at" later ("page
# dr jones at 54321"): group ``via``; after such words four digits are no number to call ("call at 1400", "page np
# at 0300" are times: refused in find_note_phones), nor right after "paged" ("md paged 0300"), unless no clock
# reads them ("paged 4567")
_PAGER = re.compile(word_start_regex(_PAGER_CUES, "[a-z]") + r"[ \t.:#(]*"
                    r"(?P<via>(?:(?:is|at|me|him|her|them|no|num|number|on|np|md|dr|ho|pa|rn|icu|micu|sicu|ccu|"
                    r"team|fellow|resident|attending|covering)[ \t.:#]+){1,2}|"
                    r"(?:dr|np|md|pa|rn|ho)\.?[ \t]+[a-z'’-]{2,}[ \t]+(?:at|on)[ \t.:#]+)?"
                    r"(?P<n>\d{4,5}|\d-\d{4}|\d{3}[ .]?\d{4}|\d{3}-\d{4}|\d{10})(?![\d/:-]|\.\d)")


# What a "#" numbers when one of these words stands right before it: no pager
_NOT_A_PAGER_BEFORE = re.compile(r"(?<![a-z])(?:pharmacy|store|room|rm|bed|floor|pod|bay|flight|exit|route|bus|gate|"
                                 r"channel|locker|lot|step|size|item|question|q|tube|cath|line|port)[ \t]*$")


def find_note_phones(lower: str, words: set[str], out: list[Span], span: SpanMaker,
                     owner_named: Callable[[str, str], bool]) -> None:
    """Append to ``out`` the phone and pager numbers of a note, and the name of a number's owner written right
    before it: ``lower`` is the note lower-cased, ``words`` its distinct ``[a-z]+`` words, ``span`` the recognizer's
    span factory, ``owner_named(a, b)`` whether the two words before a number are a name.

    Example:
        >>> from clinforge.data.deid.spans import make_span
        >>> out = []; t = "wife (555-1234) aware, pager #54321."
        >>> find_note_phones(t, {"wife", "aware", "pager"}, out, lambda *a: make_span(*a, "notes"), lambda a, b: False)
        >>> [t[s.start:s.end] for s in out]
        ['555-1234', '54321']
    """
    for m in _PHONE.finditer(lower):
        out.append(span(m.start(), m.end(), "PHONE", 0.8, "phone number"))
        # whose number: "lopie certusi cell# 410-...", "daughter ann 555-..." (the recognizer judges the two words)
        who = _NAME_BEFORE_PHONE.search(lower, max(0, m.start() - 50), m.start())
        if who is not None and owner_named(who.group("a"), who.group("b")):
            out.append(span(who.start("a"), who.end("b"), "NAME", 0.65, "name before a phone number"))
    for m in _LOCAL_PHONE.finditer(lower):
        start = m.start() - 3  # the three digits before the hyphen (see _LOCAL_PHONE)
        if _PHONE_CUE_NEAR.search(lower, max(0, start - 30), start) or _PHONE_CUE_AFTER.match(lower, m.end()):
            out.append(span(start, m.end(), "PHONE", 0.6, "seven-digit number after a phone cue"))
    if "#" in lower or not words.isdisjoint(_PAGER_WORDS):
        for m in _PAGER.finditer(lower):
            # four digits after "paged" or after "at"-like words are a clock time ("md paged 0300", "call at 1400")
            # when they can be one; "paged 4567" or "page np at 2871" (no hour 45, no minute 71) is a number
            n = m.group("n")
            time_like = len(n) == 4 and n.isdigit() and int(n[:2]) <= 24 and int(n[2:]) <= 59  # 2400: midnight
            if time_like and (lower.startswith("paged", m.start()) or m.group("via") is not None):
                continue
            if lower[m.start()] == "#" and _NOT_A_PAGER_BEFORE.search(lower, max(0, m.start() - 12), m.start()):
                continue  # "CVS Pharmacy #4471", "room #1204", "flight #1123": a store, a room, a flight
            if m.group("via") is None:
                out.append(span(m.start("n"), m.end("n"), "PHONE", 0.6, "pager / extension number"))
            else:
                out.append(span(m.start("n"), m.end("n"), "PHONE", 0.6, "pager / phone number after 'is' / 'at'"))
