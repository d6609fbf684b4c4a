"""``dedup``: exact and near-duplicate removal (MinHash + LSH from datasketch) with counts.

Definitions (also in docs/prepare.md):

* A record's text is every free-text field (``Record.texts()``) joined, normalised (NFKC, lower case, punctuation
  dropped, whitespace collapsed). Records of different kinds, or with different ``images``, are never duplicates
  of each other (VQA sets ask "Is there a fracture?" of hundreds of different images).
* **Exact duplicate**: same kind, same images and same normalised text as an earlier record (sha256).
* **Near duplicate**: the Jaccard similarity of its set of word ``shingle``-grams with an earlier kept record's is
  >= ``threshold``. Candidates come from MinHash LSH (datasketch; ``num_perm`` permutations seeded by ``seed``,
  banding tuned for ``lsh_threshold``, by default ``threshold - 0.1`` so that pairs just above the threshold are
  rarely missed, capped at 0.9 because datasketch needs two bands). Each candidate is then verified: by the exact
  Jaccard of the two shingle sets (``verify: exact``, default; shingles kept as 64-bit hashes) or by the MinHash
  estimate (``verify: minhash``, less memory, errs both ways near the threshold). So LSH false positives are never
  removed; ``benchmarks/prepare.py`` measures recall against brute force. A text with fewer words than
  ``shingle`` is one shingle.
* The first occurrence in stream order is kept. The result is deterministic for a given input order and ``seed``
  (the MinHash permutations).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import Field

from clinforge.core.config import StrictModel
from clinforge.data.records import Record
from clinforge.data.transforms.base import TRANSFORMS
from clinforge.data.transforms.options import OptionsTransform
from clinforge.data.transforms.text import record_text, words

LSH_MAX_THRESHOLD = 0.9  # datasketch needs >= 2 bands; stricter thresholds are enforced by the verification


def shingle_hashes(shingle_set: set[str]):
    """Sorted unique 64-bit hashes (blake2b) of a shingle set, for exact Jaccard with little memory.

    Example:
        >>> len(shingle_hashes({"a b", "b c"}))
        2
    """
    import numpy as np

    return np.unique(np.fromiter((int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
                                  for s in shingle_set), dtype=np.uint64, count=len(shingle_set)))


def hashed_jaccard(a, b) -> float:
    """Jaccard of two sorted unique hash arrays.

    Example:
        >>> import numpy as np
        >>> hashed_jaccard(np.array([1, 2, 3], dtype=np.uint64), np.array([2, 3, 4], dtype=np.uint64))
        0.5
    """
    import numpy as np

    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter)


class DedupOptions(StrictModel):
    """Options of ``dedup``."""

    exact: bool = True
    near: bool = True
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard at or above which a record is a near duplicate")
    lsh_threshold: float | None = Field(None, gt=0.0, le=0.9, description="LSH banding target (default threshold - 0.1)")
    verify: Literal["exact", "minhash"] = "exact"
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    shingle: int = Field(5, ge=1, le=50, description="words per shingle")
    seed: int = 1
    max_examples: int = Field(20, ge=0, description="removed/kept id pairs listed in the report")


def shingles(tokens: list[str], size: int) -> set[str]:
    """Word ``size``-grams of ``tokens`` (the whole text as one shingle when it is shorter).

    Example:
        >>> sorted(shingles(["a", "b", "c"], 2))
        ['a b', 'b c']
        >>> shingles(["a"], 3)
        {'a'}
    """
    if len(tokens) <= size:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


@TRANSFORMS.register("dedup")
class Dedup(OptionsTransform):
    """Remove exact and near-duplicate records, keeping the first occurrence.

    Example:
        >>> recs = [Record(id=str(i), kind="note", text=t) for i, t in
        ...         enumerate(["Chest pain, troponin negative.", "chest pain troponin NEGATIVE", "Fever."])]
        >>> dd = Dedup()
        >>> [r.id for r in dd.apply(recs)]
        ['0', '2']
        >>> dd.report()["exact_removed"]
        1
    """

    deterministic = True  # seeded where it draws (see Transform.deterministic)

    name = "dedup"
    Options = DedupOptions

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.exact_removed = 0
        self.near_removed = 0
        self.by_kind: Counter = Counter()
        self.examples: list[dict[str, str]] = []

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        from datasketch import MinHash, MinHashLSH

        o = self.opts
        lsh_threshold = min(o.lsh_threshold or max(o.threshold - 0.1, 0.05), LSH_MAX_THRESHOLD)
        seen: dict[str, str] = {}  # sha256(kind + images + normalised text) -> id kept
        lsh: dict[str, MinHashLSH] = {}  # one index per kind and image list (those never collide)
        kept: dict[str, Any] = {}  # LSH key -> shingle hashes (verify=exact) or MinHash (verify=minhash)
        for rec in records:
            self.n_in += 1
            tokens = words(record_text(rec))
            group = "\x00".join([rec.kind, *rec.images])
            key = hashlib.sha256(f"{group}\x01{' '.join(tokens)}".encode()).hexdigest()
            if o.exact:
                if key in seen:
                    self._removed("exact", rec, seen[key])
                    continue
                seen[key] = rec.id
            if o.near and tokens:
                sh = shingles(tokens, o.shingle)
                mh = MinHash(num_perm=o.num_perm, seed=o.seed)
                mh.update_batch([s.encode("utf-8") for s in sorted(sh)])
                mine = shingle_hashes(sh) if o.verify == "exact" else mh
                index = lsh.get(group)
                if index is None:
                    index = lsh[group] = MinHashLSH(threshold=lsh_threshold, num_perm=o.num_perm)
                # verify each LSH candidate; name the earliest kept record that qualifies
                for cand in sorted(index.query(mh), key=lambda k: int(k.split("\x00", 1)[0])):
                    other = kept[cand]
                    similar = hashed_jaccard(mine, other) if o.verify == "exact" else other.jaccard(mh)
                    if similar >= o.threshold:
                        kept_id = cand.split("\x00", 1)[1]
                        self._removed("near", rec, kept_id)
                        if o.exact:  # a later exact copy of this record was kept as kept_id, not as rec
                            seen[key] = kept_id
                        break
                else:
                    key = f"{self.n_in}\x00{rec.id}"
                    index.insert(key, mh)
                    kept[key] = mine
                    self.n_out += 1
                    yield rec
                continue
            self.n_out += 1
            yield rec

    def _removed(self, how: str, rec: Record, kept_id: str) -> None:
        if how == "exact":
            self.exact_removed += 1
        else:
            self.near_removed += 1
        self.by_kind[rec.kind] += 1
        if len(self.examples) < self.opts.max_examples:
            self.examples.append({"removed": rec.id, "kept": kept_id, "how": how})

    def report(self) -> dict[str, Any]:
        """Counts in and out, exact and near duplicates removed, removals by kind, and example id pairs."""
        return {"in": self.n_in, "out": self.n_out, "exact_removed": self.exact_removed,
                "near_removed": self.near_removed, "removed_by_kind": dict(self.by_kind),
                "threshold": self.opts.threshold, "verify": self.opts.verify, "num_perm": self.opts.num_perm, "shingle": self.opts.shingle,
                "seed": self.opts.seed, "examples": self.examples}
