"""``filter``: quality filters on length, language and boilerplate, with counts by reason.

The language check is a small dependency-free heuristic, written here because the usual detectors (fastText
``lid.176``, ``langdetect`` profiles) need downloaded models or extra packages. It counts function words of English,
Spanish, French, German, Italian and Portuguese (lists without shared words) and calls a text **not English** when
(a) less than ``min_latin`` of its letters are ASCII Latin letters, or (b) another language's function words make up
at least ``other_language_ratio`` of its words and more than English's do, or (c) English function words make up
less than ``min_english_ratio`` (default 0: off, because telegraphic clinical notes such as "Pt 67M c/o CP, r/o ACS"
have almost none; set it to ~0.1 for prose corpora). Texts with fewer than ``language_min_words`` words are judged
only by (a). Limits: a language outside the six with Latin script passes unless (c) is on.

Boilerplate: a record is boilerplate when the sentences (or lines) matching any ``boilerplate`` pattern make up at
least ``boilerplate_share`` (default 0.5) of its characters (a matching sentence counts at most 200 characters,
since unpunctuated lists run on), so "This page intentionally left blank." goes but a
long consumer-health answer ending in "click here for a diagram" stays.

A record failing several checks is counted once, under the first failing reason in the order
too_short, too_long, not_english, boilerplate.

To filter only some record kinds, give the recipe step ``kinds: [...]`` (or use ``clinforge.data.prepare.only_kinds``
in code): the other kinds pass through, counted in the data card.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import Field

from clinforge.core.config import StrictModel
from clinforge.data.records import Record
from clinforge.data.transforms.base import TRANSFORMS
from clinforge.data.transforms.options import OptionsTransform
from clinforge.data.transforms.text import record_text, words

# Function words per language; words that also occur in English medical text ("a", "do", "no", "per", "die",
# "et al", "LOS", "NOS", "ER", "SI", "um" in transcripts, ".com") are left out of the other languages' lists.
_FUNCTION_WORDS = {
    "en": "the of and to in is was for with on that by as are be this from or at an it has have had were "
          "which not but his her their they we you he she been will would should there these those what "
          "when who how than then also into after before about any all can may if",
    "es": "el la las del y en que por con una para es se lo como más pero sus le ya fue este "
          "porque esta entre cuando muy sin sobre también hasta hay donde quien desde todo "
          "durante todos uno les ni contra otros ese eso ante ellos",
    "fr": "le la les des en un une du est que pour dans qui au sur pas par avec ne se ce il sont "
          "ou mais été cette aux elle nous vous leur ses très sans peut être fait",
    "de": "der das und ist nicht ein eine zu den von mit sich des auf für im dem auch es als "
          "wird bei nach aus sie wurde oder sind vom zum zur wie über noch",
    "it": "il di che è la un una sono gli le del della nel con da questo alla anche "
          "ma più dei delle nella essere stato",
    "pt": "o os de da dos das em uma que para não por se na mais mas foi ao "
          "ele ela seu sua ou quando muito também já está",
}
FUNCTION_WORDS: dict[str, frozenset[str]] = {lang: frozenset(ws.split()) for lang, ws in _FUNCTION_WORDS.items()}
# a matching "sentence" counts at most this many characters: lists without punctuation run on for a page
BOILERPLATE_SENTENCE_CAP = 200
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
DEFAULT_BOILERPLATE = [
    r"lorem ipsum",
    r"this page (is )?intentionally left blank",
    r"all rights reserved",
    r"click here",
    r"\bunsubscribe\b",
    r"(accept|use) (of )?cookies",
    r"page \d+ of \d+\s*$",
    r"^\s*(n/?a|none|null|test|xxx+|tbd)\s*$",
]


def language_scores(tokens: list[str]) -> dict[str, float]:
    """Share of ``tokens`` that are function words of each language.

    Example:
        >>> s = language_scores("the patient was seen in the clinic".split())
        >>> max(s, key=s.get)
        'en'
    """
    n = max(len(tokens), 1)
    return {lang: sum(t in fw for t in tokens) / n for lang, fw in FUNCTION_WORDS.items()}


def latin_share(text: str) -> float:
    """Share of letters in ``text`` that are ASCII Latin letters (1.0 for text without letters).

    Example:
        >>> latin_share("abc")
        1.0
        >>> latin_share("αβγ")
        0.0
    """
    letters = [c for c in text if c.isalpha()]
    return sum(c.isascii() for c in letters) / len(letters) if letters else 1.0


def is_english(text: str, *, min_ratio: float = 0.0, other_ratio: float = 0.05, min_words: int = 20,
               min_latin: float = 0.9) -> bool:
    """The heuristic English check described in the module docstring.

    Example:
        >>> is_english("The patient was admitted with chest pain and was treated with aspirin and heparin " * 2)
        True
        >>> is_english("El paciente fue ingresado con dolor torácico y fue tratado con aspirina y heparina " * 2)
        False
    """
    if latin_share(text) < min_latin:
        return False
    tokens = words(text)
    if len(tokens) < min_words:
        return True
    scores = language_scores(tokens)
    en = scores.pop("en")
    if en < min_ratio:
        return False
    return not any(v >= other_ratio and v > en for v in scores.values())


class FilterOptions(StrictModel):
    """Options of ``filter`` (``None`` switches a bound off)."""

    min_words: int | None = Field(3, ge=0)
    max_words: int | None = Field(None, ge=1)
    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=1)
    language: str | None = Field("en", description="'en' keeps English records only; null disables the check")
    min_english_ratio: float = Field(0.0, ge=0.0, le=1.0)
    other_language_ratio: float = Field(0.05, gt=0.0, le=1.0)
    min_latin: float = Field(0.9, ge=0.0, le=1.0)
    language_min_words: int = Field(20, ge=1)
    boilerplate: list[str] = Field(default_factory=lambda: list(DEFAULT_BOILERPLATE),
                                   description="regular expressions (case-insensitive, multi-line)")
    boilerplate_share: float = Field(0.5, gt=0.0, le=1.0,
                                     description="share of characters in matching sentences that makes a record boilerplate")
    max_examples: int = Field(20, ge=0)


@TRANSFORMS.register("filter")
class QualityFilter(OptionsTransform):
    """Drop records that are too short or long, not English, or boilerplate; count each reason.

    Example:
        >>> f = QualityFilter(min_words=3)
        >>> recs = [Record(id="a", kind="note", text="Seen."), Record(id="b", kind="note", text="Pt seen, stable, discharged.")]
        >>> [r.id for r in f.apply(recs)], f.report()["removed_by_reason"]
        (['b'], {'too_short': 1})
    """

    deterministic = True  # seeded where it draws (see Transform.deterministic)

    name = "filter"
    Options = FilterOptions

    def __init__(self, **options: Any):
        super().__init__(**options)
        if self.opts.language not in (None, "en"):
            from clinforge.core.errors import ConfigError

            raise ConfigError(f"language {self.opts.language!r} is not supported; valid: 'en' or null",
                              key="filter.language")
        self._patterns = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in self.opts.boilerplate]
        self.reasons: Counter = Counter()
        self.examples: list[dict[str, str]] = []

    def reason(self, rec: Record) -> str | None:
        """Why ``rec`` is dropped (``too_short``, ``too_long``, ``not_english``, ``boilerplate``), or None."""
        o = self.opts
        text = record_text(rec)
        n_words = len(words(text))
        if (o.min_words is not None and n_words < o.min_words) or (o.min_chars is not None and len(text) < o.min_chars):
            return "too_short"
        if (o.max_words is not None and n_words > o.max_words) or (o.max_chars is not None and len(text) > o.max_chars):
            return "too_long"
        if o.language == "en" and not is_english(text, min_ratio=o.min_english_ratio,
                                                other_ratio=o.other_language_ratio,
                                                min_words=o.language_min_words, min_latin=o.min_latin):
            return "not_english"
        if self._patterns and self.boilerplate_share(rec) >= o.boilerplate_share:
            return "boilerplate"
        return None

    def boilerplate_share(self, rec: Record) -> float:
        """Share of the record's characters in sentences or lines that match a boilerplate pattern."""
        total = matched = 0
        for field in rec.texts():
            for sentence in _SENTENCE.split(field):
                n = len(sentence.strip())
                total += n
                if n and any(p.search(sentence) for p in self._patterns):
                    matched += min(n, BOILERPLATE_SENTENCE_CAP)
        return matched / total if total else 0.0

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec in records:
            self.n_in += 1
            why = self.reason(rec)
            if why:
                self.reasons[why] += 1
                if len(self.examples) < self.opts.max_examples:
                    self.examples.append({"id": rec.id, "reason": why})
                continue
            self.n_out += 1
            yield rec

    def report(self) -> dict[str, Any]:
        """Counts in and out, and records removed by reason."""
        return {"in": self.n_in, "out": self.n_out, "removed_by_reason": dict(self.reasons), "examples": self.examples}
