"""Scoring de-identification on gold PHI phrases (the PhysioNet deid corpus: ``physionet_deid`` reader records).

Definitions (issue 7), for one note with input text T, output text O and gold PHI instances G:

* **recall**: a gold instance with phrase p is REMOVED when O holds fewer word-bounded occurrences of p than T, by
  at least the number of gold instances of p in the note (``count(T, p) - count(O, p) >= k(p)``); every instance
  of p in the note shares that outcome. Occurrences are exact (case-sensitive) and word-bounded: not preceded or
  followed by a letter, digit or underscore. ``DateYear`` (a bare year: not Safe Harbor PHI) and ``Unscored`` (a
  state, country or profession of brat / i2b2 annotations) are not scored. Groups:
  ``name`` = HCPName + PTName + PTNameInitial + RelativeProxyName, ``date``, ``location``, ``phone``, ``age``,
  ``other``.
* **precision**: predicted spans that touch (share at least one character with) a gold PHI span, over all
  predicted spans; a span whose only gold contact is a ``DateYear`` / ``Unscored`` is left out of both counts (not
  held against).
  Per type = by the predicted span's entity type.
* **words kept**: word tokens (with a letter) that lie outside every gold span and outside every predicted span,
  over word tokens outside every gold span: how much ordinary clinical text survives.

Intervals are Wilson 95% score intervals (``wilson``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from clinforge.core.intervals import wilson  # noqa: F401  (re-exported: the scorer's intervals)

GROUP_OF_PHI: dict[str, str | None] = {
    "HCPName": "name", "PTName": "name", "PTNameInitial": "name", "RelativeProxyName": "name", "Date": "date",
    "DateYear": None, "Location": "location", "Phone": "phone", "Age": "age", "Other": "other",
    "Unscored": None,  # annotated but no Safe Harbor PHI (a state, a country, a profession: brat / i2b2 labels)
}
PHI_GROUPS: tuple[str, ...] = ("name", "date", "location", "phone", "age", "other")
_WORD = re.compile(r"\w*[^\W\d_]\w*")



def count_occurrences(text: str, phrase: str) -> int:
    """Word-bounded, case-sensitive occurrences of ``phrase`` in ``text``.

    Example:
        >>> count_occurrences("GH. to GHI, GH", "GH")
        2
    """
    return len(re.findall(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text))


@dataclass(frozen=True)
class GoldOutcome:
    """One scored gold instance: its note, PHI type, group, phrase and whether the output removed it."""

    patient: str
    note: int
    type: str
    group: str
    phrase: str
    removed: bool


@dataclass(frozen=True)
class PredOutcome:
    """One predicted span: its entity type and whether it touches a gold PHI (``None``: only a DateYear)."""

    entity_type: str
    correct: bool | None


@dataclass
class NoteScore:
    """The outcomes of one note (see the module docstring for the definitions)."""

    gold: list[GoldOutcome] = field(default_factory=list)
    pred: list[PredOutcome] = field(default_factory=list)
    words: int = 0
    words_kept: int = 0


def score_note(text: str, output: str, phi: Sequence[dict], spans: Iterable[tuple[int, int, str]],
               patient: str = "", note: int = 0) -> NoteScore:
    """Score one note: ``phi`` are the gold dicts (``type``, ``start``, ``end``, ``phrase``) of the
    ``physionet_deid`` reader, ``spans`` the predicted ``(start, end, entity_type)`` on ``text``, ``output`` the
    de-identified text.

    Example:
        >>> text = "SEEN BY SMITH ON 7/22; SMITH CALLED."
        >>> phi = [{"type": "HCPName", "start": 8, "end": 13, "phrase": "SMITH"},
        ...        {"type": "HCPName", "start": 23, "end": 28, "phrase": "SMITH"},
        ...        {"type": "Date", "start": 17, "end": 21, "phrase": "7/22"}]
        >>> s = score_note(text, "SEEN BY [NAME] ON 7/22; SMITH CALLED.", phi, [(8, 13, "NAME"), (0, 4, "NAME")])
        >>> [g.removed for g in s.gold], [p.correct for p in s.pred]   # one SMITH of two removed: both missed
        ([False, False, False], [True, False])
    """
    out = NoteScore()
    scored = [g for g in phi if GROUP_OF_PHI[g["type"]] is not None]
    needed: dict[str, int] = {}
    for g in scored:
        needed[g["phrase"]] = needed.get(g["phrase"], 0) + 1
    removed = {p: count_occurrences(text, p) - count_occurrences(output, p) >= k for p, k in needed.items()}
    for g in scored:
        out.gold.append(GoldOutcome(patient, note, g["type"], GROUP_OF_PHI[g["type"]] or "", g["phrase"],
                                    removed[g["phrase"]]))
    spans = list(spans)
    for start, end, entity_type in spans:
        touched = [g for g in phi if start < g["end"] and g["start"] < end]
        if touched and all(GROUP_OF_PHI[g["type"]] is None for g in touched):
            out.pred.append(PredOutcome(entity_type, None))
        else:
            out.pred.append(PredOutcome(entity_type, bool(touched)))
    for m in _WORD.finditer(text):
        a, b = m.span()
        if any(a < g["end"] and g["start"] < b for g in phi):
            continue
        out.words += 1
        out.words_kept += not any(a < e and s < b for s, e, _ in spans)
    return out


@dataclass(frozen=True)
class Rate:
    """k of n, with its Wilson 95% interval."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def ci(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def __str__(self) -> str:
        lo, hi = self.ci
        return f"{self.value:.3f} [{lo:.3f}, {hi:.3f}] ({self.k}/{self.n})"


def summarize(scores: Iterable[NoteScore], keep_gold: set[str] | None = None) -> dict[str, Rate]:
    """Recall by group (``recall_<group>``, ``recall_all``), precision by predicted type (``precision_<TYPE>``,
    ``precision_all``) and ``words_kept`` over many notes; ``keep_gold`` (lower-cased phrases) restricts recall to
    those gold phrases (e.g. phrases never seen while tuning).

    Example:
        >>> s = NoteScore([GoldOutcome("1", 1, "Date", "date", "7/22", True)], [PredOutcome("DATE", True)], 10, 10)
        >>> {k: v.value for k, v in summarize([s]).items()}["recall_date"]
        1.0
    """
    gold: dict[str, list[int]] = {}
    pred: dict[str, list[int]] = {}
    words = kept = 0
    for s in scores:
        words += s.words
        kept += s.words_kept
        for g in s.gold:
            if keep_gold is not None and g.phrase.lower() not in keep_gold:
                continue
            for key in (g.group, "all"):
                tally = gold.setdefault(key, [0, 0])
                tally[0] += g.removed
                tally[1] += 1
        for p in s.pred:
            if p.correct is None:
                continue
            for key in (p.entity_type, "all"):
                tally = pred.setdefault(key, [0, 0])
                tally[0] += p.correct
                tally[1] += 1
    out = {f"recall_{k}": Rate(*v) for k, v in sorted(gold.items())}
    out.update({f"precision_{k}": Rate(*v) for k, v in sorted(pred.items())})
    out["words_kept"] = Rate(kept, words)
    return out


def split_patients(patients: Iterable[str], seed: int = 0) -> tuple[set[str], set[str]]:
    """(dev, held-out) patient ids: a seeded shuffle of the sorted distinct ids cut in two (dev gets the smaller
    half). Splitting by patient keeps a patient's recurring names and places on one side only.

    Example:
        >>> dev, held = split_patients(["1", "3", "5", "7", "9"]); (len(dev), len(held), dev & held)
        (2, 3, set())
    """
    ids = sorted(set(patients), key=lambda p: (len(p), p))
    random.Random(seed).shuffle(ids)
    half = len(ids) // 2
    return set(ids[:half]), set(ids[half:])


def mask_spans(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """``text`` with every predicted span (overlaps joined) replaced by ``[TYPE]``: the output a mask-mode
    de-identifier would write, for systems that only return spans.

    Example:
        >>> mask_spans("SEEN BY SMITH ON 7/22.", [(8, 13, "NAME"), (17, 21, "DATE")])
        'SEEN BY [NAME] ON [DATE].'
    """
    pieces, pos = [], 0
    for start, end, entity_type in sorted(spans):
        if end <= pos:
            continue
        start = max(start, pos)
        pieces += [text[pos:start], f"[{entity_type}]"]
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def score_records(records: Iterable, predict) -> tuple[list[NoteScore], float, int]:
    """Score ``predict(text) -> [(start, end, entity_type)]`` on ``physionet_deid`` records; returns the note
    scores, the CPU seconds spent in ``predict`` and the UTF-8 bytes analysed. The output text is ``mask_spans``.

    Example:
        >>> from clinforge.data.records import Record
        >>> r = Record(id="n", kind="note", text="DR SMITH", patient_id="1",
        ...            meta={"note": 1, "phi": [{"type": "HCPName", "start": 3, "end": 8, "phrase": "SMITH"}]})
        >>> scores, _, n = score_records([r], lambda t: [(3, 8, "NAME")]); (scores[0].gold[0].removed, n)
        (True, 8)
    """
    import time

    scores: list[NoteScore] = []
    cpu = 0.0
    nbytes = 0
    for r in records:
        t0 = time.process_time()
        spans = list(predict(r.text))
        cpu += time.process_time() - t0
        nbytes += len(r.text.encode("utf-8"))
        scores.append(score_note(r.text, mask_spans(r.text, spans), r.meta["phi"] or [], spans, r.patient_id or "",
                                 r.meta.get("note", 0)))
    return scores, cpu, nbytes


def unseen_phrases(held: Iterable, dev: Iterable) -> set[str]:
    """Lower-cased gold phrases of the ``held`` records that occur in no gold phrase of the ``dev`` records: the
    PHI whose recall cannot come from having seen it while tuning.

    Example:
        >>> from types import SimpleNamespace as N
        >>> sorted(unseen_phrases([N(meta={"phi": [{"phrase": "GH"}, {"phrase": "WEXFORD"}]})],
        ...                       [N(meta={"phi": [{"phrase": "gh"}]})]))
        ['wexford']
    """
    seen = {g["phrase"].lower() for r in dev for g in r.meta["phi"] or []}
    return {g["phrase"].lower() for r in held for g in r.meta["phi"] or []} - seen
