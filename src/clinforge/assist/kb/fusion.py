"""Fusing ranked lists: reciprocal rank fusion and weighted min-max score fusion.

* RRF (Cormack et al., 2009): ``score(d) = sum_i w_i / (k + rank_i(d))`` with 1-based ranks; a list that does not
  contain ``d`` adds nothing. ``k`` (default 60) damps the head of each list.
* Weighted: each list's scores are min-max normalised to [0, 1] over the candidates it returned (all equal -> 1),
  a candidate missing from a list gets 0 there, and ``score(d) = sum_i w_i * norm_i(d)``.

Ties are broken by the candidate key (a chunk's position), so fused rankings are deterministic.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def rrf(rankings: Sequence[Sequence[Hashable]], k: float = 60.0,
        weights: Sequence[float] | None = None) -> list[tuple[Hashable, float]]:
    """Reciprocal rank fusion of best-first lists of keys; returns ``(key, score)`` best first.

    Example:
        >>> [(d, round(s, 5)) for d, s in rrf([["a", "b"], ["b", "c"]], k=1)]
        [('b', 0.83333), ('a', 0.5), ('c', 0.33333)]
    """
    if k < 0:
        raise ValueError(f"RRF k must be >= 0, got {k}")
    w = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(w) != len(rankings):
        raise ValueError(f"{len(w)} weights for {len(rankings)} rankings")
    scores: dict[Hashable, float] = {}
    for weight, ranking in zip(w, rankings, strict=True):
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def weighted(scored: Sequence[Sequence[tuple[Hashable, float]]],
             weights: Sequence[float]) -> list[tuple[Hashable, float]]:
    """Weighted sum of min-max normalised scores; ``scored`` holds one ``[(key, score), ...]`` list per retriever.

    Example:
        >>> weighted([[("a", 10.0), ("b", 5.0)], [("b", 0.9), ("c", 0.3)]], weights=[0.5, 0.5])
        [('a', 0.5), ('b', 0.5), ('c', 0.0)]
    """
    if len(weights) != len(scored):
        raise ValueError(f"{len(weights)} weights for {len(scored)} score lists")
    out: dict[Hashable, float] = {}
    for weight, pairs in zip(weights, scored, strict=True):
        if not pairs:
            continue
        values = [s for _, s in pairs]
        lo, hi = min(values), max(values)
        for key, s in pairs:
            norm = 1.0 if hi == lo else (s - lo) / (hi - lo)
            out[key] = out.get(key, 0.0) + weight * norm
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))
