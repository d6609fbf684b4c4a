"""Which spans of a learned PHI tagger join the rules: a gate of per-type score thresholds, chosen on notes of
patients the tagger never saw (``choose_gate``), saved in the model folder and applied by
``TransformersNerRecognizer``.

A small tagger trained on a few dozen patients is confident about some things (a relative's name after ``son``)
and guesses about others (word pieces of rare clinical words). Its raw union with the rules bought recall at the
price of precision (0.61 on held-out notes). The gate keeps an entity only when:

* its type is in ``types`` (e.g. names and places only, where context is what the rules lack);
* its score (mean over its words of the probability of that type) is at least ``min_score[type]``;
* when every word of a name or place entity is an ordinary word (English vocabulary that is no person name,
  clinical shorthand, function words: ``plain_word``), its score is at least ``plain_min_score``: a rare word
  needs less evidence than "Stable" or "Resp" to be called a name.
* with ``lexicon_names``, a name entity holds a word of the US Census name lists that is no ordinary word, and no
  eponym head follows it (``Swan`` Ganz, ``Passy`` Muir valve, ``Hickman`` line): the tagger brings the context
  the rules lack, a general name list the name-ness a small tagger guesses wrong on shorthand, drugs and misspellings
  (on patients the probe never saw, 2 of its 3 names beyond the rules kept and 1 of its 76 false ones).
* with ``small_places``, a place entity holds a word of 3+ letters that names no state, country, continent,
  nationality or language (``place_scale.names_small_place``: Safe Harbor removes only places smaller than a
  state), and no eponym head follows it (``Quinton`` cath): the tagger's false places on dev patients it never saw
  were ``CALIFORNIA``, ``EUROPE``, ``Iranian`` and shorthand such as ``gd`` and ``Q7``.

Example:
    >>> g = NerGate(types=("NAME",), min_score={"NAME": 0.6}, plain_min_score=0.95)
    >>> g.keeps("NAME", 0.7, "Przybylo"), g.keeps("NAME", 0.7, "Stable"), g.keeps("DATE", 0.99, "7/22")
    (True, False, False)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.data.deid.spans import ENTITY_TYPES

_LETTERS = re.compile(r"[^\W\d_]+")


def has_census_name(text: str) -> bool:
    """True when a word of ``text`` (3+ letters) is a US Census first or last name that is no ordinary word.

    Example:
        >>> has_census_name("reid"), has_census_name("HO"), has_census_name("aldactone")  # doctest: +SKIP
        (True, False, False)
    """
    from clinforge.data.deid.lexicons import us_names

    first, last = us_names()
    plain = plain_words()
    return any(len(w) >= 3 and (w in first or w in last) and w not in plain
               for w in (x.lower() for x in _LETTERS.findall(text)))


@lru_cache(maxsize=1)
def plain_words() -> frozenset[str]:
    """Ordinary words (lower case): English words that are no US person name, clinical shorthand, function words.

    Example:
        >>> "stable" in plain_words(), "przybylo" in plain_words()  # doctest: +SKIP
        (True, False)
    """
    from clinforge.data.deid.lexicons import CLINICAL_TERMS, FUNCTION_WORDS, NOTE_TERMS, english_words, us_names

    first, last = us_names()
    return frozenset((english_words() - first - last) | CLINICAL_TERMS | FUNCTION_WORDS | NOTE_TERMS)


def all_plain(text: str) -> bool:
    """True when every letter run of ``text`` is an ordinary word (see ``plain_words``), or it has none.

    Example:
        >>> all_plain("PT STABLE"), all_plain("SON HANK")  # doctest: +SKIP
        (True, False)
    """
    plain = plain_words()
    return all(w.lower() in plain for w in _LETTERS.findall(text))


@dataclass(frozen=True)
class NerGate:
    """Per-type thresholds for the entities of a learned tagger (see the module docstring).

    Args:
        types: entity types kept (``None``: every type).
        min_score: the least score per type; a type missing here uses ``default_min_score``.
        plain_min_score: the least score of a NAME / LOCATION entity made only of ordinary words (``None``: no
            extra condition).
        default_min_score: the threshold of types not in ``min_score``.
        lexicon_names: a NAME entity needs a census name word and no eponym after it (module docstring).
        small_places: a LOCATION entity needs a word of 3+ letters naming no place at or above a state, and no
            eponym after it (module docstring).
    """

    types: tuple[str, ...] | None = None
    min_score: dict[str, float] = field(default_factory=dict)
    plain_min_score: float | None = None
    default_min_score: float = 0.5
    lexicon_names: bool = False
    small_places: bool = False

    def __post_init__(self) -> None:
        unknown = sorted((set(self.types or ()) | set(self.min_score)) - set(ENTITY_TYPES))
        if unknown:
            raise ConfigError(f"gate names unknown entity types {unknown}; valid: {', '.join(ENTITY_TYPES)}",
                              key="gate")

    def keeps(self, entity_type: str, score: float, text: str, after: str = "") -> bool:
        """Whether an entity of ``entity_type`` scored ``score`` with surface ``text`` (followed by ``after`` in
        its note) passes the gate.

        Example:
            >>> g = NerGate(types=("NAME",), lexicon_names=True)
            >>> g.keeps("NAME", 0.9, "reid"), g.keeps("NAME", 0.9, "HO"), g.keeps("NAME", 0.9, "Swan", "-Ganz")
            (True, False, False)
        """
        if self.types is not None and entity_type not in self.types:
            return False
        if score < self.min_score.get(entity_type, self.default_min_score):
            return False
        if self.lexicon_names and entity_type == "NAME":
            from clinforge.data.deid.name_patterns import EPONYM_AFTER

            if not has_census_name(text) or EPONYM_AFTER.match(after):
                return False
        if self.small_places and entity_type == "LOCATION":
            from clinforge.data.deid.name_patterns import EPONYM_AFTER
            from clinforge.data.deid.place_scale import names_small_place

            if not names_small_place(text) or EPONYM_AFTER.match(after):
                return False
        if self.plain_min_score is not None and entity_type in ("NAME", "LOCATION") and score < self.plain_min_score:
            return not all_plain(text)
        return True

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_json`` reads it back).

        Example:
            >>> NerGate.from_json(NerGate(("NAME",), {"NAME": 0.9}).to_json()) == NerGate(("NAME",), {"NAME": 0.9})
            True
        """
        out = asdict(self)
        out["types"] = list(self.types) if self.types is not None else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NerGate:
        """The gate of a ``to_json`` dict (e.g. the ``gate`` of a model's ``deid_training.json``)."""
        try:
            types = data.get("types")
            return cls(types=tuple(types) if types is not None else None,
                       min_score={str(k): float(v) for k, v in (data.get("min_score") or {}).items()},
                       plain_min_score=None if data.get("plain_min_score") is None else float(data["plain_min_score"]),
                       default_min_score=float(data.get("default_min_score", 0.5)),
                       lexicon_names=bool(data.get("lexicon_names", False)),
                       small_places=bool(data.get("small_places", False)))
        except (AttributeError, TypeError, ValueError) as err:
            raise ConfigError(f"bad gate {data!r}: {err}", key="gate") from err


def choose_gate(score: Callable[[NerGate], tuple[float, float]], *, main: Sequence[str] = ("NAME", "LOCATION"),
                extra: Sequence[str] = ("DATE", "PHONE"),
                thresholds: Sequence[float] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98),
                plain: Sequence[float | None] = (None, 0.95, 0.99, 1.01),
                min_precision: float = 0.85) -> tuple[NerGate | None, list[dict[str, Any]]]:
    """The gate of highest recall whose precision is at least ``min_precision`` (ties: higher precision), and the
    table of every gate tried. ``score(gate) -> (recall, precision)`` must be measured on notes of patients the
    tagger was not trained on, and never on the notes a figure is later reported on.

    The search: every combination of the ``main`` types, each off or on at one of ``thresholds``, times the
    ordinary-word condition ``plain`` (1.01: an entity of ordinary words never passes), times, when names are on,
    ``lexicon_names`` off and on, times, when places are on, ``small_places`` off and on; then, from the best of
    those, each ``extra`` type in turn at the threshold that raises recall most while precision holds (greedy:
    their spans rarely overlap the main types').

    Example:
        >>> def score(g):  # names help until 0.7; places only cost precision
        ...     r = 0.9 + 0.05 * ("NAME" in g.types) - 0.03 * (g.min_score.get("NAME", 1) > 0.8)
        ...     return r, 0.9 - 0.1 * ("LOCATION" in g.types) - 0.1 * (g.min_score.get("NAME", 1) < 0.7)
        >>> best, table = choose_gate(score, extra=(), plain=(None,))
        >>> best.types, best.min_score
        (('NAME',), {'NAME': 0.7})
    """
    table: list[dict[str, Any]] = []
    best: tuple[tuple[float, float], NerGate] | None = None

    def consider(gate: NerGate) -> None:
        nonlocal best
        recall, precision = score(gate)
        table.append({"gate": gate.to_json(), "recall": round(recall, 5), "precision": round(precision, 5)})
        if precision >= min_precision and (best is None or (recall, precision) > best[0]):
            best = ((recall, precision), gate)

    grid: list[dict[str, float]] = [{}]
    for t in main:
        grid = [{**g, t: th} for g in grid for th in (None, *thresholds)]
    for g in grid:
        on = {t: th for t, th in g.items() if th is not None}
        for p in (plain if on.keys() & {"NAME", "LOCATION"} else (None,)):
            for lexicon in ((False, True) if "NAME" in on else (False,)):
                for small in ((False, True) if "LOCATION" in on else (False,)):
                    consider(NerGate(types=tuple(sorted(on)), min_score=on, plain_min_score=p, lexicon_names=lexicon,
                                     small_places=small))
    for t in extra:
        if best is None:
            break
        base = best[1]
        for th in thresholds:
            consider(NerGate(types=tuple(sorted({*(base.types or ()), t})), min_score={**base.min_score, t: th},
                             plain_min_score=base.plain_min_score, lexicon_names=base.lexicon_names,
                             small_places=base.small_places))
    return (best[1] if best else None), table


class GateScorer:
    """Scores gates on annotated notes: the rules' spans and the tagger's ungated entities are computed once per
    note, then each gate costs only the notes where it keeps an entity (the union is merged and scored as
    ``Deidentifier(recognizers=[*rules, tagger])`` would do it, with ``phrase_score``).

    Example:
        >>> scorer = GateScorer(TransformersNerRecognizer("models/a"), records_b)  # doctest: +SKIP
        >>> best, table = choose_gate(scorer.score)  # doctest: +SKIP
        >>> scorer.summary(best)["recall_name"]  # doctest: +SKIP
    """

    def __init__(self, ner: Any, records: Sequence, rules: Sequence[str] | None = None):
        import time

        from clinforge.data.deid.deidentifier import Deidentifier
        from clinforge.data.deid.recognizers import DEFAULT_RECOGNIZERS, RECOGNIZERS, Recognizer

        class _Given(Recognizer):
            name = "given"
            spans: list = []

            def analyze(self, text: str) -> list:
                return self.spans

        self.ner = ner
        self._given = _Given()
        self._deid = Deidentifier(recognizers=[self._given])
        rule_recognizers = [RECOGNIZERS.get(n)() for n in (rules or DEFAULT_RECOGNIZERS)]
        self.records = [r for r in records if r.meta.get("phi") is not None]
        self.rule_spans = [[s for rec in rule_recognizers for s in rec.analyze(r.text)] for r in self.records]
        t0 = time.process_time()
        self.entities = [ner.entities_of(r.text) for r in self.records]
        self.tagger_cpu_s = time.process_time() - t0
        self.rules_only = [self._note(r, spans) for r, spans in zip(self.records, self.rule_spans, strict=True)]

    def _note(self, record: Any, spans: list) -> Any:
        from clinforge.data.deid.phrase_score import mask_spans, score_note

        self._given.spans = spans
        pred = [(s.start, s.end, s.entity_type) for s in self._deid.detect(record.text)]
        return score_note(record.text, mask_spans(record.text, pred), record.meta["phi"], pred,
                          record.patient_id or "", record.meta.get("note", 0))

    def note_scores(self, gate: NerGate) -> list:
        """One ``phrase_score.NoteScore`` per note for the rules joined with the gated tagger."""
        out = []
        for record, rules, entities, base in zip(self.records, self.rule_spans, self.entities, self.rules_only,
                                                 strict=True):
            kept = [s for s in entities if gate.keeps(s.entity_type, s.score, record.text[s.start:s.end],
                                                      record.text[s.end:s.end + 60])]
            if not kept:
                out.append(base)
                continue
            if self.ner.propagate:
                kept += self.ner.propagated(record.text, kept)
            out.append(self._note(record, rules + kept))
        return out

    def summary(self, gate: NerGate) -> dict:
        """``phrase_score.summarize`` of ``note_scores(gate)``: recall by group, precision by type, words kept."""
        from clinforge.data.deid.phrase_score import summarize

        return summarize(self.note_scores(gate))

    def score(self, gate: NerGate) -> tuple[float, float]:
        """(recall, precision) over all groups, the objective of ``choose_gate``."""
        s = self.summary(gate)
        return s["recall_all"].value, s["precision_all"].value


class PooledGateScorer:
    """Scores a gate on the notes of several ``GateScorer``s at once (each with its own tagger): cross-fitting, where
    each probe is scored on the patients the other trained on, so a gate is chosen on every training patient
    instead of half of them.

    Example:
        >>> pooled = PooledGateScorer([GateScorer(probe_1, part_2), GateScorer(probe_2, part_1)])  # doctest: +SKIP
        >>> best, table = choose_gate(pooled.score)  # doctest: +SKIP
    """

    def __init__(self, scorers: Sequence[GateScorer]):
        self.scorers = list(scorers)
        self.records = [r for s in self.scorers for r in s.records]

    def note_scores(self, gate: NerGate) -> list:
        """Every scorer's ``note_scores(gate)``, concatenated."""
        return [n for s in self.scorers for n in s.note_scores(gate)]

    def summary(self, gate: NerGate) -> dict:
        """``phrase_score.summarize`` over the notes of every scorer."""
        from clinforge.data.deid.phrase_score import summarize

        return summarize(self.note_scores(gate))

    def score(self, gate: NerGate) -> tuple[float, float]:
        """(recall, precision) over all groups and notes."""
        s = self.summary(gate)
        return s["recall_all"].value, s["precision_all"].value
