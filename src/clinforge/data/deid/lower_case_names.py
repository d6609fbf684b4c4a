"""Names written in lower case: speech transcripts and lower-cased texts, where no capital marks a name.

A capitalised word is a candidate by its shape; a lower-case one only by its context: after a greeting or a
title (``hi mister hernandez``), between commas as a vocative, before ``is a NN-year-old``, a verb, a date of
birth or a record number, alone on a line (an address or signature block), after ``with / by / to / and / me``
when it is a first name that is no English word, in a list of first names, or as a first and last name in a text
with no capital at all. ``LowerCaseNames`` holds these rules; ``NameRecognizer`` (``names.py``) builds one with its
lexicons and calls ``find`` on every text that is not in capitals throughout.

Example:
    >>> from clinforge.data.deid.names import NameRecognizer
    >>> t = "[patient] my daughter is with me, her name is shirin"
    >>> [t[s.start:s.end] for s in NameRecognizer()._lower.find(t, False)]
    ['shirin']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from clinforge.data.deid.lexicons import english_words
from clinforge.data.deid.name_patterns import (
    LOWER_AGE,
    LOWER_CUE,
    LOWER_DISCOURSE,
    LOWER_ID_AFTER,
    LOWER_LIST,
    LOWER_LIST_ITEM,
    LOWER_NAME_BEFORE_ID,
    LOWER_NAME_LINE,
    LOWER_PAIR,
    LOWER_PREP_NAME,
    LOWER_TITLES,
    LOWER_VERB,
    LOWER_VERB_BEFORE,
    LOWER_VOCATIVE,
    LOWER_WORDS_BEFORE,
    MEDICAL_SHAPE,
    TITLE_BEFORE_PUNCT,
)
from clinforge.data.deid.spans import Span

# A lower-case word after a title or greeting that is this frequent as a word is no name unless it is a US name
# ("the doctor said")
_FREQUENT_WORD_RANK = 1000


# A comma after three lower-case letters and before a lower-case word and another comma or "and": where a list of
# lower-case words can go on (a regex led by a literal comma, which re jumps between)
_LIST_COMMA = re.compile(r",(?<=[a-zß-ɏ]{3},)(?= ?[a-zß-ɏ]{3,}+(?:, ?|,? and ))")
_LIST_LETTER = re.compile(r"[a-zß-ɏ]")


def _lower_lists(text: str) -> Iterator[re.Match[str]]:
    """The matches of ``LOWER_LIST.finditer(text)``, found from the commas: each list's first word ends at a comma
    that ``_LIST_COMMA`` finds, so the list pattern is tried at those words' starts only, not at every letter."""
    end = 0
    for c in _LIST_COMMA.finditer(text):
        pos = c.start()
        if pos < end:
            continue  # inside the list found last
        start = pos
        while start > 0 and _LIST_LETTER.match(text, start - 1):
            start -= 1
        m = LOWER_LIST.match(text, start)
        if m is not None:
            end = m.end()
            yield m


class LowerCaseNames:
    """The lower-case name rules over a recognizer's lexicons (lower-case sets) and its span factory ``span``."""

    def __init__(self, *, names: frozenset[str], strong: frozenset[str], first: frozenset[str],
                 first_strong: frozenset[str], common: frozenset[str], allow: frozenset[str],
                 english_all: frozenset[str], rank: dict[str, int], us_first: frozenset[str],
                 us_last: frozenset[str], span: Callable[[int, int, str, float, str], Span]):
        self._names, self._strong, self._first, self._first_strong = names, strong, first, first_strong
        self._common, self._allow, self._english_all, self._rank = common, allow, english_all, rank
        self._us_first, self._us_last = us_first, us_last
        self.span = span

    def _lower_name(self, token: str) -> bool:
        """A lower-case token taken as a name: a lexicon name that is a first name or no frequent English word."""
        return token in self._strong and (token in self._first or token not in english_words())

    def find(self, text: str, note: bool) -> list[Span]:
        """Lower-case names in context (speech transcripts): greeting/title cue, vocative, 'is a NN-year-old'.
        ``note``: ``looks_like_note(text)``.

        Example:
            >>> from clinforge.data.deid.names import NameRecognizer
            >>> t = "call me later, her name is shirin"
            >>> [t[s.start:s.end] for s in NameRecognizer()._lower.find(t, False)]
            ['shirin']
        """
        out: list[Span] = []
        for m in LOWER_AGE.finditer(text):
            before = LOWER_WORDS_BEFORE.search(text, max(0, m.start() - 40), m.start())
            if before is None:
                continue
            first, last = before.group("name"), before.group("name2")
            if first and self._lower_name(first) and last in self._names and last not in self._common:
                out.append(self.span(before.start("name"), before.end(), "NAME", 0.6, "lower-case name before an age"))
            elif self._lower_name(last):
                out.append(self.span(before.start("name2"), before.end(), "NAME", 0.6, "lower-case name before an age"))
        for m in LOWER_ID_AFTER.finditer(text):
            before = LOWER_NAME_BEFORE_ID.search(text, max(0, m.start() - 40), m.start())
            if before is None:
                continue
            first, last = before.group("name"), before.group("name2")
            if first and first in self._names and last in self._names and first not in self._common:
                out.append(self.span(before.start("name"), before.end("name2"), "NAME", 0.6,
                                     "lower-case name before a date of birth or record number"))
        for m in LOWER_VERB.finditer(text):
            before = LOWER_VERB_BEFORE.search(text, max(0, m.start() - 30), m.start())
            if before is not None and self._lower_name(before.group("name")):
                out.append(self.span(before.start("name"), before.end("name"), "NAME", 0.6,
                                     "lower-case name before a verb"))
        rules = [(LOWER_CUE, "lower-case name after a greeting or title")]
        # A vocative is one word, and in a note _holds_in_note keeps a NOTE_WEAK span only with two or more words:
        # every vocative found in a note would be dropped, so the scan (and a Python test per ", word,") is skipped.
        if not note:
            rules.append((LOWER_VOCATIVE, "lower-case name between commas"))
        for pattern, expl in rules:
            for m in pattern.finditer(text):
                if pattern is LOWER_CUE and m.start() and (text[m.start() - 1].isalnum()):
                    continue
                name = m.group("name")
                low = name.lower()
                cue = m.groupdict().get("cue")
                if name[0].isupper():
                    continue
                if self._rank.get(low, _FREQUENT_WORD_RANK) < _FREQUENT_WORD_RANK and low not in self._us_first \
                        and low not in self._us_last:
                    continue  # one of the 1,000 commonest English words and no US name: "the doctor said"
                if cue in LOWER_TITLES:
                    if low not in self._names or low in self._common or low in self._allow:
                        continue
                elif cue in LOWER_DISCOURSE:
                    if low not in self._first or not self._lower_name(low):
                        continue
                elif not self._lower_name(low) or (
                        pattern is LOWER_VOCATIVE and low in self._english_all and low not in self._us_first
                        and not TITLE_BEFORE_PUNCT.search(text, max(0, m.start() - 12), m.start())):
                    continue  # ", pleasant," ", bud.": an English word between commas is no vocative unless a title
                    # stands before it ("mrs . peterson ," in a transcript that spaces its full stops)
                end = m.end("name")
                second = m.groupdict().get("name2")
                if second and second.lower() in self._names and second.lower() not in self._common:
                    end = m.end("name2")
                out.append(self.span(m.start("name"), end, "NAME", 0.6, expl))
        self._lowercase_context(text, out)
        return out

    def _unknown_lower(self, token: str) -> bool:
        """A lower-case token that may be a surname: no frequent English word, no allowed word, not drug-shaped."""
        return (len(token) >= 3 and token not in self._english_all and token not in self._allow
                and token not in self._common and not MEDICAL_SHAPE.search(token))

    def _first_lower(self, token: str, english_ok: bool = False) -> bool:
        """A lower-case first name ("monika", "silvana"); with ``english_ok`` also one that is an English word
        ("frank", "grace"), for contexts that show a name by themselves (a list of first names)."""
        return token in self._first and token in self._strong and token not in self._common and (
            english_ok or token not in self._english_all)

    def _surname_end(self, m: re.Match[str], group: str = "name2") -> int | None:
        second = m.group(group)
        if second is None:
            return None
        low = second.lower()
        if (low in self._strong and low not in self._common) or self._unknown_lower(low):
            return m.end(group)
        return None

    def _lowercase_context(self, text: str, out: list[Span]) -> None:
        """Lower-case names on a line of their own (address / signature blocks), after "with / by / to / and / me"
        (a first name that is no English word), after "call me" / "name is", and in comma lists of first names."""
        for m in LOWER_NAME_LINE.finditer(text):
            t1, t2 = m.group("t1"), m.group("t2")
            strong = [t for t in (t1, t2) if t in self._strong and t not in self._common]
            if strong and all(t in strong or self._unknown_lower(t) for t in (t1, t2)):
                out.append(self.span(m.start("name"), m.end("name"), "NAME", 0.55, "lower-case name alone on a line"))
        for m in LOWER_PREP_NAME.finditer(text):
            name = m.group("name")
            cue = m.group("cue")
            if cue in ("call me", "calls me", "name is"):
                if not (self._first_lower(name) or self._unknown_lower(name)):
                    continue
            elif name not in self._first_strong:  # no first name: neither test below can hold (most matches end here)
                continue
            elif not self._first_lower(name):
                second = (m.group("name2") or "").lower()
                # "with kristina olsen": an English-looking first name needs a lexicon surname after it
                if not (self._first_lower(name, english_ok=True) and second in self._strong
                        and second not in self._common and second not in self._english_all):
                    continue
            if cue == "and":  # "colace and senna", "tylenol and ginger": a list of drugs, not of people
                before = text[max(0, m.start() - 30):m.start()].split()
                if before and before[-1].strip(",.;:") in self._allow:
                    continue
            end = self._surname_end(m) or m.end("name")
            out.append(self.span(m.start("name"), end, "NAME", 0.55, "lower-case first name after a preposition"))
        if text.islower():  # a text with no capital at all (lower-cased templates, transcripts): full names anywhere
            for m in LOWER_PAIR.finditer(text):
                t1, t2 = m.group("t1"), m.group("t2")
                # one of the two must be no English word: "codey ross", "frank lombardo"; not "will frank"
                if (self._first_lower(t1, english_ok=True) and t2 in self._strong and t2 not in self._common
                        and (t1 not in self._english_all or (t2 not in self._english_all and t2 not in self._first))):
                    out.append(self.span(m.start("t1"), m.end("t2"), "NAME", 0.55,
                                         "lower-case first and last name in a lower-case text"))
        # A list needs two commas, or a comma and " and ": str tests spare the scan (which tries every lower-case
        # letter) on the six texts in ten that have neither.
        if text.count(",") < 2 and not ("," in text and " and " in text):
            return
        for m in _lower_lists(text):
            items = list(LOWER_LIST_ITEM.finditer(text, m.start(), m.end()))
            names = [it for it in items if self._first_lower(it.group(), english_ok=True)]
            if len(names) >= 3 and 3 * len(names) >= 2 * len(items):
                for it in names:
                    out.append(self.span(it.start(), it.end(), "NAME", 0.55, "lower-case first names in a list"))
