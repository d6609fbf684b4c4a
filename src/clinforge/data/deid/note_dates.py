"""Dates without a year in clinical notes, one of the rule families of the notes recognizer (``note_rules``).

month/day (``7/22``) and month/two-digit year (``8/87``) away from fractions, pain scores, motor grades and
ventilator settings; month/day ranges (``5/6-5/8``); month-day with a hyphen after ``on/since`` (``on 7-8``);
ordinals after ``the/on/of`` (``the 11th``); holidays in a note; month names; lower-case month abbreviations with a
day or a year (``jan 5``, ``5 jan``, ``nov 2004``: the cased forms are the ``patterns`` recognizer's); a day glued to a
month (``22JUL``, ``JUL22``), a month with an apostrophe year (``Feb '98``), a fraction-shaped date after a weekday
(``Tues 3/4``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from clinforge.data.deid.lexicons import FUNCTION_WORDS, looks_like_note, word_start_regex
from clinforge.data.deid.spans import Span

# the recognizer's span factory: (start, end, entity type, score, explanation) -> Span
SpanMaker = Callable[[int, int, str, float, str], Span]
# month-day with a hyphen only after an unambiguous date cue ("returned to OR on 7-8"); "from 7-8" is a range
# (the look-behind after each cue's first letter, see word_start_regex: the scan jumps between those letters)
_DASH_DATE = re.compile(word_start_regex(("on", "since", "dated", "until", "till", "thru", "through"), "[a-z]")
                        + r"[ \t]+(?P<d>(?:1[0-2]|0?[1-9])-"
                        r"(?:3[01]|[12]\d|0?[1-9]))(?![\w%-]|\.\d|[ \t]*(?:mg|mcg|ml|cc|l|units?|x|hrs?|hours?|days?|"
                        r"times|min|mins|minutes|weeks?|wks?|am|pm|%)\b)")
_NEXT_WORD = re.compile(r"[ \t]+([a-z]+)")
_DATE_CUE_BEFORE = re.compile(r"(?<![a-z])(?:on|since|from|until|till|of|dated|date|thru|through|til|admitted|"
                              r"started|due|last|\d+[ap]m?)[ \t:]*$")
_VENT_NEAR = re.compile(r"(?<![a-z])(?:cpap|psv|ps|peep|bipap|bi-pap|pap|ips|eps|simv|a/c|pressure support)(?![a-z])")
_PAIN_NEAR = re.compile(r"(?<![a-z])(?:pain|cp|discomfort|ache|aching|score|scale|rates?|rated|#|c/o|tenderness|"
                        r"headache|ha|sore|soreness|cramping|pressure)(?![a-z])")
_SLASH_NUMBER = re.compile(r"\d\d?/\d")  # not \d{1,2}: a leading repeat gives re no first-character set
# A digit before "th" and a word end: \dth\b led by the literal, which re finds by a fast substring search instead of
# trying the pattern at every digit (only whether there is a match is used)
_DIGIT_TH = re.compile(r"th\b(?<=\dth)")
_HOLIDAY = re.compile(r"(?<![a-z])(?:christmas(?:[ \t]+eve)?|xmas|thanksgiving|easter|new[ \t]+year'?s(?:[ \t]+(?:eve|day))?|"
                      r"independence[ \t]+day|memorial[ \t]+day|labor[ \t]+day|veterans[ \t]+day|halloween|"
                      r"valentine'?s[ \t]+day|mother'?s[ \t]+day|father'?s[ \t]+day|hanukkah|chanukah)(?![a-z])")
_HOLIDAY_WORDS = frozenset(["christmas", "xmas", "thanksgiving", "easter", "new", "independence", "memorial", "labor", "veterans", "halloween", "valentine", "valentines", "mother", "mothers", "father", "fathers", "hanukkah", "chanukah"])
_MONTHS = frozenset(["january", "february", "march", "april", "june", "july", "august", "september", "october", "november", "december"])
_MONTH_DAY = re.compile(r"(?<![\w/.+-])(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9])(?![\w%]|/\d|\.\d|-\d)")
_FULL_DATE = re.compile(r"(?<![\d/.])(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9])(?:/(?:\d\d){1,2}|\.\d\d)(?![\d%])")
# A month/day range "5/6-5/8" (cultures, antibiotics, a stay): two dates; motor grades "4/5-5/5" and pain ranges
# "3/10-5/10" are the same shape, hence the checks in _dates
_SLASH_RANGE = re.compile(r"(?<![\w/.+-])(?P<a>(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9]))-"
                          r"(?P<b>(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9]))(?![\w%]|/\d|\.\d|-\d)")
# Lower-case month abbreviations: the patterns recognizer reads "Jan 5" and "JAN 5" but no "jan 5", since a lone
# "jan" or "dec" is a name or "decreased"; with a day after ("seen jan 5", "sept 12th") or before ("5 jan"), or with
# a year after ("may 2005", "in nov 2004"), they are dates. "dec" and "mar" (decreased, the MAR) need a date cue.
_LOWER_MONTH_ABBR = frozenset(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
                               "dec", "march"])
_NOT_A_DAY_AFTER = (r"(?![\w:/%-]|\.\d|[ \t]*(?:mg|mcg|ml|cc|l|u|units?|x|hrs?|hours?|days?|mm\w*|cm|min\w*|sec\w*|"
                    r"kg|g|meq|mmol|bpm|liters?|lpm|times|%)\b)")
_ABBR_MONTH_DAY = re.compile(word_start_regex(("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sept", "sep", "oct",
                                               "nov", "dec"), "[a-z]")
                             + r"(?:\.[ \t]*|[ \t]+)(?P<d>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?" + _NOT_A_DAY_AFTER)
_DAY_ABBR_MONTH = re.compile(r"(?<![\w./:-])(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?"
                             r"(?P<mon>jan|feb|apr|jun|jul|aug|sept|sep|oct|nov)\.?(?![a-z])"
                             r"(?:,[ \t]*(?:\d\d|(?:19|20|21)\d\d)(?![\d:/.]|[ \t]*(?:mg|mcg|ml|cc|units?|%)))?")  # "21 apr, 21"
_ABBR_MONTH_YEAR = re.compile(word_start_regex(("jan", "feb", "march", "mar", "apr", "may", "jun", "jul", "aug", "sept",
                                                "sep", "oct", "nov", "dec"), "[a-z]")
                              + r"\.?,?[ \t]+(?:of[ \t]+)?(?:19|20|21)\d\d(?!\d|[/.:-]\d|[ \t]*(?:mg|mcg|ml|cc|units?|hrs?|hours?)\b)")
# Lower-case "may" and "march" with a day number (the patterns recognizer takes them with an ordinal or a year only,
# since "may 2 tabs" and "we march 3 miles" are no dates): a date after a date cue ("on march 3", "since 12 may")
_VERB_MONTH_DAY = re.compile(r"(?<![a-z])(?:may|march)[ \t]+(?P<d>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
                             + _NOT_A_DAY_AFTER)
_DAY_VERB_MONTH = re.compile(r"(?<![\w./:-])(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?(?:may|march)"
                             r"(?![a-z])")
_MONTH_YEAR = re.compile(r"(?<![\w/.+-])(?:1[0-2]|0?[1-9])/[4-9]\d(?![\w%]|/\d|\.\d|-\d)")
# A month/day with a tail: a later day of the same month ("CT 7/22-23": one span, the second day must come after the
# first) or a time of day written on ("last dose 7/22pm": the span is the date)
_MONTH_DAY_TAIL = re.compile(r"(?<![\w/.+-])(?P<md>(?:1[0-2]|0?[1-9])/(?P<d1>3[01]|[12]\d|0?[1-9]))"
                             r"(?:-(?P<d2>3[01]|[12]\d|0?[1-9])|(?P<ampm>am|pm))(?![\w%]|/\d|\.\d|-\d)")
# Month.day.year ("echo 7.22.01"): a pH or a lab value has one dot, never two
_DOTTED_DATE = re.compile(r"(?<![\w/.+-])(?:1[0-2]|0?[1-9])\.(?:3[01]|[12]\d|0?[1-9])\.(?:(?:19|20|21)\d\d|\d\d)"
                          r"(?![\w%]|[./-]\d)")
_FRACTIONS = frozenset({"1/2", "1/3", "2/3", "1/4", "3/4", "1/8", "2/4", "0/4", "1/1", "2/2", "3/3", "4/4", "5/5"})
_NOT_DATE_AFTER = re.compile(r"[ \t]*(?:str|strength|muscle|ns|nss|assist|pain|of|x\d|tab|tabs|amp|ml|cc|l\b|units?|bipap|cpap|"
                             r"psv|peep|fio2|ps\b|"
                             r"mg|times|lobe|\+)", re.I)
_NOT_DATE_BEFORE = re.compile(r"(?<![a-z])(?:pain|score|strength|grade|gr|murmur|sounds|x|mae|power|motor|lungs|breath|"
                              r"psv|ps|cpap|bi-?pap|peep|ips|eps|settings|vent|&|mode|flowby|flow-by|apgar|apgars|gcs|ratio)"
                              r"(?:[ \t]+(?:is|was|of|=))?[ \t:]*$",
                              re.I)
_ORDINAL = re.compile(r"(?<![a-z])(?:the|on|of|since|until|till|thru|through)[ \t]+(?P<d>(?:[12]?\d|3[01])(?:st|nd|rd|th))(?![a-z])(?![ \t]*"
                      r"(?:degree|floor|ics|intercostal|time|dose|rib|percentile|grade|generation|day|week|hour|step|"
                      r"cpap|trial|attempt|bag|unit|liter|stage|vertebra|toe|finger|digit|metacarp|cranial|nerve|"
                      r"trimester|line|set|round|cycle|course|episode|admission|shift|left|right|posterior|anterior|"
                      r"lateral|and[ \t]+\d))")
# A weekday right before a fraction-shaped month/day makes it a date ("Tues 3/4", "monday 1/2"; not "sat", "sun": "sat up 3/4 of the day")
_WEEKDAY_BEFORE = re.compile(r"(?<![a-z])(?:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:r(?:s(?:day)?)?)?|"
                             r"fri(?:day)?|saturday|sunday)\.?,?[ \t]*$")
# A month with an apostrophe year ("Feb '98", "sept. '01"); a day glued to a month abbreviation ("22JUL", "22jul98",
# "JUL22"; not "dec5" or "mar5": decreased, the MAR)
_MONTH_APOSTROPHE_YEAR = re.compile(word_start_regex(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                                      "oct", "nov", "dec"), "[a-z]")
                                    + r"[a-z]*\.?[ \t]*['’]\d\d(?![\d'’])")
_GLUED_MONTHS = frozenset(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"])
_DAY_GLUED_MONTH = re.compile(r"(?<![\w./:-])(?:[12]\d|3[01]|0?[1-9])(?:jan|feb|mar|apr|may|jun|jul|aug|sept|sep|oct|"
                              r"nov|dec)(?:\d\d(?:\d\d)?)?(?![a-z\d])")
_MONTH_GLUED_DAY = re.compile(r"(?<![\w./:-])(?:jan|feb|apr|may|jun|jul|aug|sept|sep|oct|nov)(?:[12]\d|3[01]|0?[1-9])"
                              r"(?![\w./:-])")
_MONTH_WORD = re.compile(r"(?<![a-z])(?:january|february|march|april|june|july|august|september|october|november|"
                         r"december)(?![a-z])")


def find_note_dates(text: str, lower: str, words: set[str], out: list[Span], span: SpanMaker) -> None:
    """Append to ``out`` the dates without a year in a note: ``lower`` is ``text`` lower-cased (same offsets),
    ``words`` its distinct ``[a-z]+`` words, ``span`` the recognizer's span factory.

    Example:
        >>> from clinforge.data.deid.spans import make_span
        >>> out = []; t = "cultures sent on 7/22, repeat 5/6-5/8."
        >>> find_note_dates(t, t, {"cultures", "sent", "on", "repeat"}, out, lambda *a: make_span(*a, "notes"))
        >>> [t[s.start:s.end] for s in out]
        ['7/22', '5/6', '5/8']
    """
    add = out.append
    for cand in _SLASH_NUMBER.finditer(lower):  # one scan for every n/n shape, then the exact rules there
        pos = cand.start()
        m = _FULL_DATE.match(lower, pos)
        if m is not None:
            add(span(m.start(), m.end(), "DATE", 0.7, "month/day/year"))
            continue
        m = _SLASH_RANGE.match(lower, pos)
        if m is not None:
            if _date_range(lower, m):
                add(span(m.start("a"), m.end("a"), "DATE", 0.6, "month/day range"))
                add(span(m.start("b"), m.end("b"), "DATE", 0.6, "month/day range"))
            continue
        for pattern, expl in ((_MONTH_DAY, "month/day"), (_MONTH_YEAR, "month/two-digit year"),
                              (_MONTH_DAY_TAIL, "month/day with a later day or a time")):
            m = pattern.match(lower, pos)
            if m is None:
                continue
            value = m.group("md") if pattern is _MONTH_DAY_TAIL else m.group()
            if pattern is _MONTH_DAY_TAIL and m.group("d2") and int(m.group("d2")) <= int(m.group("d1")):
                continue  # "4/5-3", "7/22-5": no later day of the month
            if value in _FRACTIONS and not _WEEKDAY_BEFORE.search(lower, max(0, m.start() - 12), m.start()):
                continue
            if _NOT_DATE_AFTER.match(lower, m.end()) or _NOT_DATE_BEFORE.search(
                    lower, max(0, m.start() - 12), m.start()):
                continue
            window = lower[max(0, m.start() - 25):m.start()]
            if value.endswith("/10") and not _DATE_CUE_BEFORE.search(window) and (
                    _PAIN_NEAR.search(window) or _PAIN_NEAR.match(lower, m.end() + 1, m.end() + 16)):
                continue  # pain scores "c/o cp, 4/10", "developed 4/10 cp"
            if _VENT_NEAR.search(lower, max(0, m.start() - 30), m.start()) and not _DATE_CUE_BEFORE.search(window):
                continue  # pressure support / PEEP settings "cpap 10/5", "PSV increased to 10/5"
            add(span(m.start(), m.end("md") if pattern is _MONTH_DAY_TAIL and m.group("ampm") else m.end(), "DATE",
                     0.6, expl))
    for m in (_DOTTED_DATE.finditer(lower) if "." in lower else ()):
        add(span(m.start(), m.end(), "DATE", 0.6, "month.day.year"))
    if not words.isdisjoint(_LOWER_MONTH_ABBR) and not text.isupper():
        _lower_month_abbreviations(text, lower, out, span)
    if ("may" in words or "march" in words) and not text.isupper():
        _lower_verb_months(text, lower, out, span)
    if "-" in lower and not words.isdisjoint(("on", "since", "dated", "until", "till", "thru", "through")):
        for m in _DASH_DATE.finditer(lower):
            after = _NEXT_WORD.match(lower, m.end())
            if after is not None and after.group(1) not in FUNCTION_WORDS:
                continue  # "on 1-2 pillows", "on 2-3 L": a range before what it counts
            add(span(m.start("d"), m.end("d"), "DATE", 0.6, "month-day after a date cue"))
    if "1st" in lower or "2nd" in lower or "3rd" in lower or "th" in lower and _DIGIT_TH.search(lower):
        for m in _ORDINAL.finditer(lower):
            add(span(m.start("d"), m.end("d"), "DATE", 0.55, "ordinal day"))
    # a holiday names a day of the year in a note ("home by christmas"); in general prose it is an event
    for m in (_HOLIDAY.finditer(lower) if not words.isdisjoint(_HOLIDAY_WORDS) and looks_like_note(text) else ()):
        add(span(m.start(), m.end(), "DATE", 0.6, "holiday"))
    if not words.isdisjoint(_GLUED_MONTHS):
        for pattern, expl in ((_DAY_GLUED_MONTH, "day glued to a month"), (_MONTH_GLUED_DAY, "month glued to a day"),
                              (_MONTH_APOSTROPHE_YEAR, "month and apostrophe year")):
            if pattern is _MONTH_APOSTROPHE_YEAR and "'" not in lower and "’" not in lower:
                continue
            for m in pattern.finditer(lower):
                add(span(m.start(), m.end(), "DATE", 0.6, expl))
    for m in (_MONTH_WORD.finditer(lower) if not words.isdisjoint(_MONTHS) else ()):
        if m.group() == "march" and text[m.start()] == "m" and not text.islower():
            continue  # "march" the verb in mixed-case text
        add(span(m.start(), m.end(), "DATE", 0.6, "month name"))

def _date_range(lower: str, m: re.Match[str]) -> bool:
    """Whether "a/b-c/d" reads as two month/day dates: not two fractions ("1/2-3/4"), motor grades ("4/5-5/5"), pain ranges
    ("3/10-5/10") or ventilator settings, and the second date not before the first (December to January
    allowed)."""
    a, b = m.group("a"), m.group("b")
    if (a in _FRACTIONS and b in _FRACTIONS) or (a.endswith("/5") and b.endswith("/5")) or (
            a.endswith("/10") and b.endswith("/10")):
        return False
    if _NOT_DATE_AFTER.match(lower, m.end()) or _NOT_DATE_BEFORE.search(lower, max(0, m.start() - 12),
                                                                       m.start()):
        return False
    if _VENT_NEAR.search(lower, max(0, m.start() - 14), m.start()):
        return False
    (ma, da), (mb, db) = (tuple(int(x) for x in v.split("/")) for v in (a, b))
    return (mb, db) > (ma, da) or (ma == 12 and mb == 1)

def _lower_month_abbreviations(text: str, lower: str, out: list[Span], span: SpanMaker) -> None:
    """Lower-case "jan 5", "5 jan", "may 2005" (the cased forms are the patterns recognizer's)."""
    add = out.append
    for m in _ABBR_MONTH_DAY.finditer(lower):
        if not text[m.start()].islower():
            continue
        if lower[m.start()] in "dm" and not _DATE_CUE_BEFORE.search(lower, max(0, m.start() - 25), m.start()):
            continue  # "dec 5": decreased by 5 unless a date cue comes before ("on dec 5"); "mar": the MAR
        add(span(m.start(), m.end(), "DATE", 0.6, "lower-case month abbreviation and day"))
    for m in _DAY_ABBR_MONTH.finditer(lower):
        if text[m.end("mon") - 1].islower() or text[m.end("mon") - 2].islower():
            add(span(m.start(), m.end(), "DATE", 0.6, "day and lower-case month abbreviation"))
    for m in _ABBR_MONTH_YEAR.finditer(lower):
        if text[m.start()].islower():
            add(span(m.start(), m.end(), "DATE", 0.6, "lower-case month and year"))


def _lower_verb_months(text: str, lower: str, out: list[Span], span: SpanMaker) -> None:
    """Lower-case "may" / "march" with a day after a date cue ("on march 3", "since 12 may")."""
    add = out.append
    for pattern in (_VERB_MONTH_DAY, _DAY_VERB_MONTH):
        for m in pattern.finditer(lower):
            # (the cased forms are the patterns recognizer's)
            if (text[m.start()].islower() or text[m.end() - 1].islower()) and _DATE_CUE_BEFORE.search(
                    lower, max(0, m.start() - 25), m.start()):
                add(span(m.start(), m.end(), "DATE", 0.6, "lower-case may or march with a day after a date cue"))
