"""Whole-word search in a lower-cased note, the primitives of the notes recognizer (``note_rules``).

The notes recognizer asks "where does this word or phrase stand as a whole word" many times per note; a handful of
``str.find`` calls per word is cheaper than compiling a regex of the note's candidate words for every note, and a
word boundary here also excludes apostrophes ("o'neil" is one word). Kept apart from the rules so that the rules
module reads as rules.
"""
from __future__ import annotations

import re

__all__ = ["cue_word_before", "derived_word", "find_prefixed", "find_word", "find_words", "matches_at"]


def derived_word(token: str, english: frozenset[str]) -> bool:
    """An English word + -er / -en / -ers / -ier, also with a doubled last consonant ("blocker", "redden").

    Example:
        >>> derived_word("redden", frozenset({"red"})), derived_word("lindgren", frozenset({"red"}))
        (True, False)
    """
    for suffix in ("er", "en", "ers", "ier"):
        if token.endswith(suffix):
            stem = token[:-len(suffix)]
            if stem in english or (len(stem) > 2 and stem[-1] == stem[-2] and stem[:-1] in english):
                return True
    return False


def cue_word_before(lower: str, start: int) -> str:
    """The word right before ``start`` across spaces or tabs only, skipping one "the" ("" when none).

    Example:
        >>> cue_word_before("transferred to the wexford", 19), cue_word_before("seen.wexford", 5)
        ('to', '')
    """
    for _ in range(2):
        end = start
        while end > 0 and lower[end - 1] in " \t":
            end -= 1
        if end == start:
            return ""
        begin = end
        while begin > 0 and lower[begin - 1].isalpha():
            begin -= 1
        word = lower[begin:end]
        if word != "the":
            return word
        start = begin
    return ""


def matches_at(pattern: re.Pattern[str], lower: str, cues) -> list[re.Match[str]]:
    """Matches of ``pattern`` tried only where a cue word occurs: a few ``str.find`` calls instead of a scan.

    Example:
        >>> [m.group() for m in matches_at(re.compile(r"dr [a-z]+"), "seen by dr okafor", {"dr"})]
        ['dr okafor']
    """
    out = []
    for start, _ in find_words(lower, cues):
        m = pattern.match(lower, start)
        if m is not None:
            out.append(m)
    return out


def find_word(lower: str, word: str) -> list[tuple[int, int]]:
    """(start, end) of every whole-word occurrence of one ``word`` in ``lower``, in order (``find_words`` for a
    single word, without its sort).

    Example:
        >>> find_word("gh to ghi; (gh)", "gh")
        [(0, 2), (12, 14)]
    """
    out = []
    n, size = len(word), len(lower)
    find = lower.find
    pos = find(word)
    while pos >= 0:
        end = pos + n
        if (pos == 0 or not (lower[pos - 1].isalpha() or lower[pos - 1] in "'’")) and (
                end == size or not (lower[end].isalpha() or lower[end] in "'’")):
            out.append((pos, end))
        pos = find(word, pos + 1)
    return out


def find_prefixed(lower: str, groups) -> list[tuple[int, int]]:
    """``find_words(lower, phrases)`` for phrases grouped as ``(first, ((length, phrases of that length), ...))``,
    every phrase starting with ``first``: a phrase occurs only where its first word does, so each occurrence of
    ``first`` (left-bounded) is compared with the phrases of each length.

    Example:
        >>> find_prefixed("new york and newark; new haven", [("new", ((8, frozenset({"new york"})),
        ...                                                              (9, frozenset({"new haven"}))))])
        [(0, 8), (21, 30)]
    """
    out = []
    size = len(lower)
    for first, by_len in groups:
        pos = lower.find(first)
        while pos >= 0:
            if pos == 0 or not (lower[pos - 1].isalpha() or lower[pos - 1] in "'’"):
                for n, phrases in by_len:
                    end = pos + n
                    if end <= size and lower[pos:end] in phrases and (
                            end == size or not (lower[end].isalpha() or lower[end] in "'’")):
                        out.append((pos, end))
            pos = lower.find(first, pos + 1)
    return sorted(out)


def find_words(lower: str, words) -> list[tuple[int, int]]:
    """(start, end) of every whole-word occurrence of ``words`` in ``lower``: ``str.find`` per word (a note holds
    a handful), cheaper than compiling a regex of them for every note.

    Example:
        >>> find_words("gh to ghi; (gh)", ["gh"])
        [(0, 2), (12, 14)]
    """
    out = []
    for word in words:
        pos = lower.find(word)
        while pos >= 0:
            end = pos + len(word)
            if (pos == 0 or not (lower[pos - 1].isalpha() or lower[pos - 1] in "'’")) and (
                    end == len(lower) or not (lower[end].isalpha() or lower[end] in "'’")):
                out.append((pos, end))
            pos = lower.find(word, pos + 1)
    return sorted(out)
