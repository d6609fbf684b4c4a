"""Summaries of judge runs: counts (parsed / unparsable, never defaulted), means with bootstrap CIs, and the bias
diagnostics of :mod:`clinforge.judges.bias`, per judge and for the jury.

Input: the per-item rows a run writes (``items.jsonl``); each row holds the item, each judge's result dict under
``judges[name]`` and, with several judges, the jury result under ``jury``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from clinforge.judges.bias import (
    first_position_rate,
    model_family,
    pairwise_length_bias,
    position_consistency,
    score_length_bias,
    self_preference,
    with_ci,
)
from clinforge.judges.rubric import healthbench_aggregate

DEFINITIONS = {
    "unparsable": "verdicts neither the JSON step nor the documented regex fallback could read; excluded, never defaulted",
    "mean_score": "mean over parsed items; 95% percentile bootstrap CI over items",
    "healthbench_score": "clip(mean of per-example raw scores, 0, 1), raw = met points / positive points (HealthBench)",
    "win_rate_a": "mean over parsed pairs of A=1, tie=0.5, B=0 (inconsistent orders count as ties)",
    "position_consistency": "share of pairs parsed in both orders whose winner is the same in both orders",
    "first_position_win_rate": "share of decisive single-order verdicts choosing the answer shown first (0.5 = none)",
    "length_bias": "see the definition field; positive = longer answers preferred",
    "self_preference": "flag = judge family equals a candidate's family (None when a family is unknown)",
}


def _counts(results: list[dict]) -> dict[str, Any]:
    n = len(results)
    parsed = sum(bool(r.get("parsed")) for r in results)
    return {"n": n, "n_parsed": parsed, "n_unparsable": n - parsed,
            "unparsable_rate": (n - parsed) / n if n else None}


def _mean_ci(values: list[float], seed: int, n_boot: int) -> dict:
    arr = np.asarray(values, dtype=float)
    return with_ci(lambda idx: float(arr[idx].mean()), len(arr), seed, n_boot)


def _methods(results: list[dict], keys: tuple[str, ...]) -> dict[str, int]:
    counter: Counter = Counter()
    for r in results:
        for key in keys:
            if r.get(key):
                counter[r[key]] += 1
    return dict(counter)


def summarize_single(rows: list[dict], results: list[dict], *, seed: int, n_boot: int) -> dict:
    """Summary of single-answer results (``results[i]`` belongs to ``rows[i]``).

    Example:
        >>> out = summarize_single([{"response": "a b"}, {"response": "a"}],
        ...                        [{"parsed": True, "score": 4.0}, {"parsed": False}], seed=0, n_boot=20)
        >>> out["n_unparsable"], out["mean_score"]["value"]
        (1, 4.0)
    """
    ok = [(row, r) for row, r in zip(rows, results, strict=True) if r.get("parsed")]
    scores = [r.get("score", r.get("value")) for _, r in ok]
    out = {**_counts(results), "parse_methods": _methods(results, ("method",)),
           "mean_score": _mean_ci(scores, seed, n_boot)}
    out["length_bias"] = score_length_bias([row["response"] for row, _ in ok], scores, seed=seed, n_boot=n_boot)
    return out


def summarize_rubric(rows: list[dict], results: list[dict], *, seed: int, n_boot: int) -> dict:
    """Summary of rubric results: clipped mean, HealthBench aggregate with CI, per-criterion met rates."""
    ok = [(row, r) for row, r in zip(rows, results, strict=True) if r.get("parsed")]
    scores = [r.get("score", r.get("value")) for _, r in ok]
    raws = [r["raw_score"] for _, r in ok]
    raw_arr = np.asarray(raws, dtype=float)
    hb = with_ci(lambda idx: healthbench_aggregate(list(raw_arr[idx])), len(raw_arr), seed, n_boot)
    per: dict[str, dict[str, int]] = {}
    n_crit_unparsable = 0
    for r in results:
        for c in r.get("per_criterion", []):
            key = c.get("id") or c["criterion"][:60]
            slot = per.setdefault(key, {"points": c["points"], "met": 0, "not_met": 0, "unparsable": 0})
            if c["met"] is None:
                slot["unparsable"] += 1
                n_crit_unparsable += 1
            else:
                slot["met" if c["met"] else "not_met"] += 1
    for slot in per.values():
        decided = slot["met"] + slot["not_met"]
        slot["met_rate"] = slot["met"] / decided if decided else None
    methods: Counter = Counter()
    for r in results:
        methods.update(c["method"] for c in r.get("per_criterion", []) if c.get("method"))
    return {**_counts(results), "criteria_verdicts_unparsable": n_crit_unparsable, "parse_methods": dict(methods),
            "mean_score": _mean_ci(scores, seed, n_boot), "healthbench_score": hb, "per_criterion": per,
            "length_bias": score_length_bias([row["response"] for row, _ in ok], scores, seed=seed, n_boot=n_boot)}


def summarize_pairwise(rows: list[dict], results: list[dict], *, seed: int, n_boot: int,
                       with_orders: bool = True) -> dict:
    """Summary of pairwise results: win counts and rate, inconsistent-as-tie count, consistency, length bias.

    Example:
        >>> rows = [{"response_a": "a b c", "response_b": "a"}, {"response_a": "a", "response_b": "a b"}]
        >>> results = [{"parsed": True, "winner": "A", "verdict_ab": "A", "verdict_ba": "A", "consistent": True},
        ...            {"parsed": True, "winner": "tie", "verdict_ab": "A", "verdict_ba": "B", "consistent": False}]
        >>> out = summarize_pairwise(rows, results, seed=0, n_boot=20)
        >>> out["wins"], out["n_inconsistent_counted_as_tie"]
        ({'A': 1, 'B': 0, 'tie': 1}, 1)
    """
    ok = [(row, r) for row, r in zip(rows, results, strict=True) if r.get("parsed")]
    winners = [r.get("winner", r.get("value")) for _, r in ok]
    wins = Counter(winners)
    pref = [{"A": 1.0, "tie": 0.5, "B": 0.0}[w] for w in winners]
    out = {**_counts(results), "wins": {k: wins.get(k, 0) for k in ("A", "B", "tie")},
           "win_rate_a": _mean_ci(pref, seed, n_boot)}
    if with_orders:
        out["parse_methods"] = _methods(results, ("method_ab", "method_ba"))
        out["n_inconsistent_counted_as_tie"] = sum(r.get("consistent") is False for _, r in ok)
        out["position_consistency"] = position_consistency([(r["verdict_ab"], r["verdict_ba"]) for _, r in ok],
                                                           seed=seed, n_boot=n_boot)
        out["first_position_win_rate"] = first_position_rate([(r["verdict_ab"], r["verdict_ba"]) for _, r in ok],
                                                             seed=seed, n_boot=n_boot)
        out["length_bias"] = pairwise_length_bias(
            [(row["response_a"], row["response_b"], r["verdict_ab"], r["verdict_ba"]) for row, r in ok],
            seed=seed, n_boot=n_boot)
    return out


def summarize_axes(rows: list[dict], results: list[dict], *, seed: int, n_boot: int) -> dict:
    """Summary of Med-PaLM-axes ratings: per axis, the count of each value and of unparsable verdicts.

    Example:
        >>> summarize_axes([{}], [{"labels": {"bias": "absent", "consensus": None}}], seed=0, n_boot=10)["per_axis"]
        {'bias': {'absent': 1}, 'consensus': {'unparsable': 1}}
    """
    per_axis: dict[str, dict[str, int]] = {}
    for r in results:
        labels = r.get("labels", r.get("value")) or {}
        for axis, value in labels.items():
            slot = per_axis.setdefault(axis, {})
            key = value if value is not None else "unparsable"
            slot[key] = slot.get(key, 0) + 1
    return {**_counts(results), "per_axis": per_axis,
            "length_bias": {"note": "not computed for categorical axes"}}


SUMMARIZERS = {"axes": summarize_axes, "single": summarize_single, "rubric": summarize_rubric, "pairwise": summarize_pairwise}


def candidate_models(rows: list[dict], extra: list[str] | None = None) -> list[str]:
    """Candidate model names from the items (``model``, ``model_a``, ``model_b``) plus any given explicitly.

    Example:
        >>> candidate_models([{"model_a": "m1", "model_b": "m2"}, {"model": "m1"}], ["m3"])
        ['m1', 'm2', 'm3']
    """
    names = set(extra or [])
    for row in rows:
        for key in ("model", "model_a", "model_b"):
            if row.get(key):
                names.add(str(row[key]))
    return sorted(names)


def summarize_run(kind: str, rows: list[dict], judges: list[dict], *, seed: int = 0, n_boot: int = 1000,
                  candidates: list[str] | None = None, aggregation: str | None = None) -> dict:
    """The ``summary.json`` of a judge run.

    ``judges`` = each judge's ``describe()`` dict (needs ``name`` and ``model``/``family``); ``rows`` = the per-item
    rows with ``judges`` (and ``jury``) result dicts.
    """
    summarize = SUMMARIZERS[kind]
    models = candidate_models(rows, candidates)
    families = [model_family(m) for m in models]
    out: dict[str, Any] = {"kind": kind, "n_items": len(rows), "seed": seed, "n_boot": n_boot,
                           "candidate_models": models, "judges": {}}
    for desc in judges:
        name = desc["name"]
        results = [row["judges"][name] for row in rows]
        block = summarize(rows, results, seed=seed, n_boot=n_boot)
        block["self_preference"] = self_preference(desc.get("family"), families) if models else {
            "flag": None, "judge_family": desc.get("family"), "candidate_families": [], "shared": [],
            "note": "no candidate model names given (items' model/model_a/model_b or --candidate-model)"}
        block["judge"] = desc
        out["judges"][name] = block
    if len(judges) > 1:
        jury_results = [row["jury"] for row in rows]
        if kind == "pairwise":
            block = summarize_pairwise(rows, jury_results, seed=seed, n_boot=n_boot, with_orders=False)
        elif kind == "axes":
            block = summarize_axes(rows, jury_results, seed=seed, n_boot=n_boot)
        elif kind == "rubric":
            block = summarize_rubric(rows, [{**r, "score": r["value"]} for r in jury_results], seed=seed,
                                     n_boot=n_boot)
        else:
            block = summarize_single(rows, jury_results, seed=seed, n_boot=n_boot)
        block["aggregation"] = aggregation
        block["n_no_majority"] = sum(bool(r.get("no_majority")) for r in jury_results)
        out["jury"] = block
    out["definitions"] = DEFINITIONS
    return out
