"""``split``: patient-level train / validation / test splits.

All records of one ``patient_id`` land in the same split, so a model is never evaluated on a patient it was trained
on. A record without ``patient_id`` is its own group (keyed by its ``id``). Two methods:

* ``hash`` (default, streaming): a group goes to the split whose cumulative fraction interval holds
  ``u = int(sha256(f"{seed}:{group}")[:16], 16) / 2**64``. Deterministic, independent of input order, and stable
  when records are added; split sizes match the fractions only in expectation.
* ``shuffle``: groups are collected, shuffled with ``random.Random(seed)`` and assigned greedily so that each
  split's record count comes as close as possible to its fraction (needs the whole stream in memory).

``anchor`` says what names a group in those two formulas. ``patient`` (the above): its group key. ``record``: its
records' ids, the first one seen (hash) or all of them sorted (shuffle); the same input then gives the same split even
when the patient ids differ from run to run, as they do after ``deid`` pseudonymises them with a random per-run
key. ``auto`` (default): ``record`` when such a ``deid`` step comes earlier in the recipe (``clinforge data
prepare``'s ``run_pipeline`` tells the step, see ``resolve_anchor``), else ``patient``. Keyed on those pseudonyms, each run of one
recipe would draw another split, so a model trained on one run's train split could be tested on its own patients
in the next run's test split.

The assigned split is written to ``Record.split``; the source's own split moves to ``meta["source_split"]``.
The report gives records and groups per split and ``groups_crossing_splits`` (always 0; checked, not assumed).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import Field, field_validator

from clinforge.core.config import StrictModel
from clinforge.core.errors import DataError
from clinforge.data.records import Record
from clinforge.data.transforms.base import TRANSFORMS
from clinforge.data.transforms.options import OptionsTransform


class SplitOptions(StrictModel):
    """Options of ``split``."""

    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    method: Literal["hash", "shuffle"] = "hash"
    seed: int = 0
    anchor: Literal["auto", "patient", "record"] = "auto"

    @field_validator("fractions")
    @classmethod
    def _sum_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("give at least one split")
        if any(f < 0 for f in v.values()):
            raise ValueError("fractions must be >= 0")
        if abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"fractions must sum to 1, not {sum(v.values()):g}")
        return v


def group_key(rec: Record) -> str:
    """The grouping key: ``patient:<patient_id>``, or ``record:<id>`` when the record has no patient.

    Example:
        >>> group_key(Record(id="n1", kind="note", text="x", patient_id="P7")), group_key(Record(id="n2", kind="note", text="x"))
        ('patient:P7', 'record:n2')
    """
    return f"patient:{rec.patient_id}" if rec.patient_id else f"record:{rec.id}"


def hash_unit(seed: int, key: str) -> float:
    """A deterministic number in [0, 1) for ``key`` under ``seed``.

    Example:
        >>> 0 <= hash_unit(0, "patient:P7") < 1
        True
    """
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:16], 16) / 2**64


def check_patient_splits(records: Iterable[Record]) -> dict[str, list[str]]:
    """Groups (patients, or id-less records) found in more than one split: ``{group: [splits]}``; empty is good.

    Example:
        >>> rs = [Record(id="a", kind="note", text="x", patient_id="P1", split="train"),
        ...       Record(id="b", kind="note", text="y", patient_id="P1", split="test")]
        >>> check_patient_splits(rs)
        {'patient:P1': ['test', 'train']}
    """
    where: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        where[group_key(rec)].add(str(rec.split))
    return {g: sorted(s) for g, s in where.items() if len(s) > 1}


@TRANSFORMS.register("split")
class PatientSplit(OptionsTransform):
    """Assign each record to a split so that no patient crosses splits.

    Example:
        >>> recs = [Record(id=f"n{i}", kind="note", text="x", patient_id=f"P{i % 5}") for i in range(20)]
        >>> sp = PatientSplit(fractions={"train": 0.6, "test": 0.4}, seed=1)
        >>> out = list(sp.apply(recs))
        >>> check_patient_splits(out), sp.report()["groups_crossing_splits"]
        ({}, 0)
    """

    deterministic = True  # seeded where it draws (see Transform.deterministic)

    name = "split"
    Options = SplitOptions

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.assigned: dict[str, str] = {}
        self.records_per_split: Counter = Counter()
        self.crossing: set[str] = set()
        self.anchor = "patient" if self.opts.anchor == "auto" else self.opts.anchor

    def resolve_anchor(self, per_run_patient_ids: bool) -> None:
        """Settle ``anchor: auto``: ``record`` when the patient ids reaching this step change from run to run.

        Example:
            >>> sp = PatientSplit(); sp.resolve_anchor(per_run_patient_ids=True); sp.anchor
            'record'
        """
        if self.opts.anchor == "auto":
            self.anchor = "record" if per_run_patient_ids else "patient"

    def _hash_split(self, key: str) -> str:
        u = hash_unit(self.opts.seed, key)
        acc = 0.0
        names = list(self.opts.fractions)
        for name in names:
            acc += self.opts.fractions[name]
            if u < acc:
                return name
        return names[-1]

    def _shuffle_assign(self, sizes: dict[str, int], group_ids: dict[str, list[str]]) -> dict[str, str]:
        # a stable order before the seeded shuffle: by group key, or by the group's sorted record ids (its smallest
        # first; the rest only part groups that share it, as duplicated ids would, without the per-run key)
        groups = sorted(sizes, key=(lambda g: sorted(group_ids[g])) if self.anchor == "record" else None)
        random.Random(self.opts.seed).shuffle(groups)
        total = sum(sizes.values())
        target = {s: f * total for s, f in self.opts.fractions.items()}
        filled = dict.fromkeys(target, 0)
        out = {}
        for g in groups:
            # the split with the largest remaining deficit (relative to its target) takes the group
            split = max(target, key=lambda s: (target[s] - filled[s]) / max(target[s], 1e-9) if target[s] else -1e9)
            out[g] = split
            filled[split] += sizes[g]
        return out

    def _emit(self, rec: Record, split: str) -> Record:
        key = group_key(rec)
        prior = self.assigned.setdefault(key, split)
        if prior != split:
            self.crossing.add(key)
            raise DataError(f"group would cross splits ({prior} and {split})", record=rec.id, field="patient_id")
        self.records_per_split[split] += 1
        self.n_out += 1
        meta = {**rec.meta, "source_split": rec.split} if rec.split is not None else dict(rec.meta)
        return rec.model_copy(update={"split": split, "meta": meta})

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        if self.opts.method == "hash":
            for rec in records:
                self.n_in += 1
                key = group_key(rec)
                # a group seen before keeps its split; a new one is placed by its key or its first record's id
                split = self.assigned.get(key) or self._hash_split(key if self.anchor == "patient" else
                                                                   f"record:{rec.id}")
                yield self._emit(rec, split)
            return
        held = []
        sizes: Counter = Counter()
        group_ids: dict[str, list[str]] = defaultdict(list)
        for rec in records:
            self.n_in += 1
            held.append(rec)
            key = group_key(rec)
            sizes[key] += 1
            group_ids[key].append(rec.id)
        plan = self._shuffle_assign(sizes, group_ids)
        for rec in held:
            yield self._emit(rec, plan[group_key(rec)])

    def report(self) -> dict[str, Any]:
        """Records and groups per split, and the number of groups found in more than one split (must be 0)."""
        groups = Counter(self.assigned.values())
        return {"in": self.n_in, "out": self.n_out, "method": self.opts.method, "seed": self.opts.seed,
                "anchor": self.anchor, "fractions": self.opts.fractions,
                "records_per_split": {s: self.records_per_split.get(s, 0) for s in self.opts.fractions},
                "groups_per_split": {s: groups.get(s, 0) for s in self.opts.fractions},
                "patients": sum(1 for g in self.assigned if g.startswith("patient:")),
                "groups_crossing_splits": len(self.crossing)}
