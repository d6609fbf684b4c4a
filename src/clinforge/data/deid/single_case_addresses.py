"""Street addresses and "city, ST 12345" lines in text written in one case (ALL CAPITALS or all lower case).

The address rules of ``patterns`` read a house number, capitalised street-name words and a suffix in its written
form ("12 Elm Street"). Exports of older clinical systems are often in capitals throughout, and dictated or typed
notes in lower case throughout: there "12 ELM STREET" and "12 elm street" were missed, and capitals make every
word look like a name ("4 LUNG FIELDS", "2 UNITS PRBC RUN" have the shape of a street). So, on the lower-cased
text and whatever the case:

* a street address is a house number, one to four street-name words that are no function word, unit, clinical
  term or medical word, and a suffix;
* an unambiguous suffix (``street``, ``avenue``, ``road``, ``boulevard``, ``lane``, ``drive``, ``highway`` ...)
  is enough; any other USPS suffix (``st``, which is also sinus tachycardia, ``walk``, ``run``, ``fields``) counts
  only when an apartment / suite number or a state code and ZIP follow within the line;
* the span grows over that unit and over the ``, city, ST 12345`` that follows;
* in text without capitals, the one to three words before ``, ST 12345`` are a city (in capitals ``patterns``
  reads those already);
* in any case, a street named without a number after "on" / "off" (``on pleasant street``, ``off Maple Avenue``),
  with a suffix that is no everyday noun and no adjective before it (``on a busy street``, ``side street``).

Example:
    >>> from clinforge.data.deid.spans import make_span
    >>> out = []; t = "LIVES AT 12 ELM STREET, SALEM, MA 01970. 4 LUNG FIELDS CLEAR."
    >>> find_single_case_addresses(t, t.lower(), out.append, lambda *a: make_span(*a, "patterns"))
    >>> [t[s.start:s.end] for s in out]
    ['12 ELM STREET, SALEM, MA 01970']
"""

from __future__ import annotations

import re
from collections.abc import Callable

from clinforge.data.deid.lexicons import (
    CLINICAL_TERMS,
    FUNCTION_WORDS,
    NOTE_TERMS,
    US_STATE_CODES,
    US_TERRITORY_CODES,
    trie_regex,
    word_set,
)
from clinforge.data.deid.medical_words import medical_words
from clinforge.data.deid.spans import Span

SpanMaker = Callable[[int, int, str, float, str], Span]

STRONG_SUFFIXES = word_set("""
street avenue ave road rd boulevard blvd lane drive terrace parkway pkwy highway hwy turnpike expressway freeway
court plaza
""")
_STATE_CODES = frozenset(c.lower() for c in US_STATE_CODES + US_TERRITORY_CODES)
# Words that follow a number as a quantity, never as a street name ("2 units prbc run", "3 mm st depression").
_UNIT_WORDS = word_set("""
mg mcg g gm gms kg ml mls cc l liter liters litre lpm meq mmol u unit units iu mm cm in inch inches ft feet foot
hr hrs hour hours min mins minute minutes sec secs day days wk wks week weeks mo mos month months yr yrs year years
x times tab tabs cap caps amp amps bag bags dose doses puff puffs drop drops pt pts laps lap steps step assist
assists person people bottle bottles lead leads beat beats episode episodes fr french lumen mmhg bpm
""")


def _street_regex() -> re.Pattern[str]:
    from faker.providers.address.en_US import Provider

    suffixes = sorted(STRONG_SUFFIXES | {s.lower() for s in Provider.street_suffixes}
                      | word_set("st rd ave dr ct pl ter cir pkwy hwy blvd ln sq trl xing jct way"))
    # house number, an optional compass point, 1-4 name words (lazily), a suffix; on lower-cased text
    return re.compile(r"\d\d{0,4}[a-z]?[ \t]+(?:[nsew]\.?[ \t]+)?(?P<name>(?:[a-z][a-z'’.-]*[ \t]+){1,4}?)"
                      r"(?P<suffix>" + trie_regex(suffixes) + r")\b\.?")


_STREET = _street_regex()
_UNIT_AFTER = re.compile(r",?[ \t]*(?:apt|apartment|suite|ste|unit|#)\.?[ \t]*#?[ \t]*[0-9][0-9a-z-]*\b")
_STATES = trie_regex(sorted(_STATE_CODES))
# ", city words, ST 12345" (up to two comma-separated parts before the state), on one line
_TAIL_TO_ZIP = re.compile(r"(?:,?[ \t]*[a-z][a-z'’.-]*(?:[ \t]+[a-z][a-z'’.-]*){0,2}){0,2},?[ \t]*(?:" + _STATES
                          + r")[ \t]+\d{5}(?:-\d{4})?(?![\d-])")
_STATE_ZIP = re.compile(r",[ \t]*(?:" + _STATES + r")[ \t]+\d{5}(?:-\d{4})?(?![\d-])")
_STRONG_HINTS = tuple(" " + w for w in sorted(STRONG_SUFFIXES))
_APARTMENT = re.compile(r"(?:apt|apartment|suite|ste)\.?[ \t]*#?[ \t]*\d")
_WORD_BEFORE = re.compile(r"([a-z][a-z'’.-]*)[ \t]*$")
# A street named without a house number after "on" / "off" ("yes, on pleasant street", "lives off Maple Avenue"):
# only the suffixes that are no everyday noun ("drive", "road", "way" are), and no adjective before them
_NAMED_STREET = re.compile(r"(?<![a-z])(?:on|off)[ \t]+(?P<name>(?:[a-z][a-z'’.-]*[ \t]+){1,2}?|"
                           r"[a-z][a-z'’.-]*[ \t]+(?:de|del|de la|la|le|van|von)[ \t]+[a-z][a-z'’.-]*[ \t]+)(?:street|avenue|ave|"
                           r"boulevard|blvd|lane|terrace|parkway)(?![a-z])")
_NOT_STREET_NAME = word_set("""
side busy quiet same one way wrong dead end dirt gravel country private public long short narrow wide steep icy wet
slippery bumpy easy high low fast slow bike bus left right passing wall
""")


def has_strong_suffix(lower: str) -> bool:
    """Whether an unambiguous street suffix stands as a word after a space (``str.find`` per suffix)."""
    if " " not in lower:
        return False
    for hint in _STRONG_HINTS:
        pos = lower.find(hint)
        while pos >= 0:
            end = pos + len(hint)
            if end == len(lower) or not lower[end].isalpha():
                return True
            pos = lower.find(hint, end)
    return False


def _plain_word(word: str, medical: frozenset[str]) -> bool:
    return not (word in FUNCTION_WORDS or word in _UNIT_WORDS or word in CLINICAL_TERMS or word in NOTE_TERMS
                or word in medical)


def find_named_streets(lower: str, add: Callable[[Span], None], span: SpanMaker, strong: bool | None = None) -> None:
    """Add each street named without a house number after "on" / "off" in ``lower`` (a text lower-cased, any
    case before), e.g. ``yes on pleasant street``.

    Example:
        >>> from clinforge.data.deid.spans import make_span
        >>> out = []; t = "yes on pleasant street, not on a busy street"
        >>> find_named_streets(t, out.append, lambda *a: make_span(*a, "patterns"))
        >>> [t[s.start:s.end] for s in out]
        ['pleasant street']
    """
    if not (has_strong_suffix(lower) if strong is None else strong):
        return  # (``strong``: the caller's has_strong_suffix(lower), shared with find_single_case_addresses)
    medical = medical_words()
    for m in _NAMED_STREET.finditer(lower):
        words = m.group("name").split()
        if all(_plain_word(w, medical) and w not in _NOT_STREET_NAME for w in words):
            add(span(m.start("name"), m.end(), "ADDRESS", 0.6, "street name after on/off (no house number)"))


# A verb of residence or a move before "in" / "to" / "from" and the one to three words of a town: in one-case text
# the names recognizer (which reads capitals) cannot tell "lives in austin" from "lives in fear"; the gazetteer can.
RESIDENCE_VERBS = frozenset({"lives", "live", "living", "lived", "resides", "reside", "residing", "born", "raised",
                             "grew", "moved", "moving", "relocated", "relocating"})
_HOME_TOWN = re.compile(r"(?<![a-z])(?:lives|live|living|lived|resides?|residing|born|raised|grew[ \t]+up|mov(?:ed|ing)|"
                        r"relocat(?:ed|ing))[ \t]+(?:in|to|from)[ \t]+(?P<w>[a-z]+(?:[ \t]+[a-z]+){0,2})")
_LETTERS = re.compile(r"[a-z]+")


def find_home_towns(lower: str, words: set[str], add: Callable[[Span], None], span: SpanMaker,
                    places: frozenset[str], plain: frozenset[str]) -> None:
    """Add each US town named after a verb of residence or a move (``lives in austin``, ``MOVED TO NEW BEDFORD``)
    in ``lower`` (a one-case text lower-cased): the longest of the next one to three words that is in ``places``; one
    word must not be ``plain`` English (no name in any locale: "lives in fear", "moved to home" stay).

    Example:
        >>> from clinforge.data.deid.spans import make_span
        >>> out = []; t = "pt lives in austin with wife. moved to home 2d ago"
        >>> find_home_towns(t, set(t.split()), out.append, lambda *a: make_span(*a, "notes"),
        ...                 frozenset({"austin", "home"}), frozenset({"home"}))
        >>> [t[s.start:s.end] for s in out]
        ['austin']
    """
    for verb in words & RESIDENCE_VERBS:  # (each verb found by str.find, the pattern matched there only)
        pos = lower.find(verb)
        while pos >= 0:
            m = _HOME_TOWN.match(lower, pos) if pos == 0 or not lower[pos - 1].isalpha() else None
            pos = lower.find(verb, pos + 1)
            if m is not None:
                _add_home_town(lower, m, add, span, places, plain)


def _add_home_town(lower: str, m: re.Match[str], add: Callable[[Span], None], span: SpanMaker,
                   places: frozenset[str], plain: frozenset[str]) -> None:
    toks = [(t.start(), t.end()) for t in _LETTERS.finditer(lower, m.start("w"), m.end("w"))]
    for k in range(len(toks), 0, -1):
        phrase = lower[toks[0][0]:toks[k - 1][1]]
        if phrase in places and (k > 1 or phrase not in plain):
            add(span(toks[0][0], toks[k - 1][1], "LOCATION", 0.6, "US town after a verb of residence"))
            break


def find_single_case_addresses(text: str, lower: str, add: Callable[[Span], None], span: SpanMaker,
                               strong: bool | None = None) -> None:
    """Add the street addresses (and, in text without capitals, the cities before ``, ST 12345``) of ``text``
    that the cased rules cannot read. ``lower``: ``text`` lower-cased with the same offsets."""
    # (most texts hold neither an unambiguous suffix nor an apartment number nor a ZIP: skip the scan of every
    # number there; a few substring tests cost less than the regex tried at each digit)
    if not (has_strong_suffix(lower) if strong is None else strong) and not (
            ("apt" in lower or "suite" in lower or " ste" in lower) and _APARTMENT.search(lower) is not None) \
            and _STATE_ZIP.search(lower) is None:
        return
    medical = medical_words()
    for m in _STREET.finditer(lower):
        start = m.start()
        if start and (lower[start - 1].isalnum() or lower[start - 1] in "./:-_"):
            continue  # part of a longer number, a time, a decimal or a code
        words = m.group("name").split()
        if not all(_plain_word(w.strip(".'’-"), medical) for w in words):
            continue
        end = m.end()
        unit = _UNIT_AFTER.match(lower, end)
        if unit is not None:
            end = unit.end()
        tail = _TAIL_TO_ZIP.match(lower, end)
        if tail is not None and "\n" not in lower[end:tail.end()]:
            end = tail.end()
        elif unit is None and m.group("suffix") not in STRONG_SUFFIXES:
            continue  # "4 lung fields", "2 units prbc run": a weaker suffix needs a unit or a ZIP after it
        add(span(start, end, "ADDRESS", 0.85, "street address (text in one case)"))
    if not text.islower():
        return
    for m in _STATE_ZIP.finditer(lower):
        pos, first = m.start(), None
        for _ in range(3):  # up to three city words back, not past a function word, a comma or a line
            w = _WORD_BEFORE.search(lower, max(0, pos - 40), pos)
            if w is None or not _plain_word(w.group(1), medical) or w.group(1) in _STATE_CODES:
                break
            first = pos = w.start(1)
            if pos == 0 or lower[pos - 1] not in " \t":
                break
        if first is not None:
            add(span(first, m.start(), "LOCATION", 0.7, "city before a state and ZIP (text in one case)"))
