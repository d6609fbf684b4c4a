"""Compare two or more evaluation runs (``clinforge eval`` run directories) item by item.

For every task the runs share: each run's headline score with its bootstrap CI (acc for multiple choice, flag_acc
for MEDEC, ROUGE-L for text tasks), the chance level and the majority-answer baseline (multiple choice), paired
tests of every run against the first (the reference) on the items both scored (McNemar for 0/1 scores, paired
bootstrap of the mean difference for every score), the per-item disagreements, and the distribution of each run's
answers with a warning when a run has collapsed to one answer (e.g. "A" to every MedQA question).

Writes ``OUT/summary.json`` (strict JSON), ``OUT/report.html`` (see ``compare_report_html``),
``OUT/disagreements/TASK.jsonl`` (every item on which the runs' answers or scores differ; ids, gold and answers,
no question text) and ``OUT/run.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError, DataError

COLLAPSE_SHARE = 0.9  # a run answering one option to this share of items (or more) is flagged
COLLAPSE_MIN_ITEMS = 10  # below this many items one repeated answer is too likely by chance to flag
DISAGREEMENTS_SHOWN = 50  # rows of the disagreement table in the HTML (the JSONL holds every one)
HEADLINE = (("acc", "acc_ci"), ("flag_acc", "flag_acc_ci"), ("rougeL", "rougeL_ci"))
SETTINGS = ("seed", "num_fewshot", "limit", "mode", "cot")

# Only the definitions of figures that appear on the page are copied into a report (see ``used_definitions``).
DEFINITIONS = {
    "acc": "share of items whose prediction equals the gold answer (loglikelihood mode: the option with the highest "
           "summed log-likelihood, as lm-evaluation-harness acc; generate mode: the parsed answer, unparsable = wrong)",
    "flag_acc": "MEDEC: share of notes whose error flag (Error: yes/no) is right; unparsable = wrong",
    "rougeL": "mean ROUGE-L F1 over items against the best reference (rouge-score-identical)",
    "ci": "95% percentile bootstrap CI over items, 1000 resamples, seeded with the eval run's seed",
    "n": "items the run scored for the task",
    "chance": "expected accuracy of guessing uniformly among the options: mean over items of 1 / number of options",
    "majority": "accuracy of always giving the most frequent gold answer of these items (the best constant answer)",
    "delta": "score of the run minus score of the reference run on the items both scored (paired)",
    "delta_ci": "95% paired bootstrap CI of delta (Koehn 2004): the same resampled items for both runs, 1000 "
                "resamples, seed given in the summary",
    "p_bootstrap": "two-sided paired bootstrap p-value of delta = 0 (clinforge.eval.metrics.significance)",
    "p_mcnemar": "McNemar test on paired right/wrong (exact binomial below 25 discordant pairs, else chi-square with "
                 "continuity correction); equals scipy/statsmodels",
    "only_run_right": "items the run got right and the reference got wrong (McNemar b)",
    "only_reference_right": "items the reference got right and the run got wrong (McNemar c)",
    "n_shared": "items scored by both runs (the paired tests use only these)",
    "answers": "how often each run gave each answer (parsed option; 'unparsed' = no option could be read)",
    "collapse": f"a run that gives one answer to at least {COLLAPSE_SHARE:.0%} of the items (at least "
                f"{COLLAPSE_MIN_ITEMS} items): its score reflects how often that answer is gold, not knowledge",
    "disagreement": "an item on which the runs' answers differ (multiple choice) or their item scores differ",
}


@dataclass
class EvalRun:
    """One evaluation run directory read from disk: its summary and its item rows by task."""

    label: str
    path: Path
    summary: dict[str, Any]
    items: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


def _read_items(path: Path) -> dict[str, dict[str, Any]]:
    from clinforge.core.io import read_jsonl

    rows: dict[str, dict[str, Any]] = {}
    for lineno, row in read_jsonl(path):
        if "id" not in row:
            raise DataError("item row has no id", file=str(path), line=lineno, field="id")
        rows[str(row["id"])] = row
    return rows


def load_run(path: str | Path, label: str) -> EvalRun:
    """Read an eval run directory (``summary.json`` and ``items/TASK.jsonl``); errors name the missing file.

    Example:
        >>> load_run("runs/eval/base", "base").summary["tasks"]  # doctest: +SKIP
    """
    path = Path(path)
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise ClinforgeError(f"{path} is not a finished eval run: {summary_path} not found (run clinforge eval "
                             "to the end first)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg})", file=str(summary_path), line=exc.lineno) from exc
    if not isinstance(summary.get("tasks"), dict):
        raise DataError("no 'tasks' object: not a clinforge eval summary", file=str(summary_path), field="tasks")
    run = EvalRun(label=label, path=path, summary=summary)
    for task in summary["tasks"]:
        item_path = path / "items" / f"{task}.jsonl"
        if not item_path.is_file():
            raise ClinforgeError(f"{item_path} not found: {summary_path} lists task {task} but its items are missing")
        run.items[task] = _read_items(item_path)
    return run


def default_labels(paths: list[Path]) -> list[str]:
    """Each run's folder name, or its last two path parts where folder names repeat.

    Example:
        >>> default_labels([Path("a/base"), Path("b/tuned")])
        ['base', 'tuned']
    """
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return ["/".join(p.resolve().parts[-2:]) for p in paths]


def headline(result: dict[str, Any]) -> tuple[str, float, list[float] | None] | None:
    """A task's main figure ``(name, value, CI)``: acc, else flag_acc, else rougeL.

    Example:
        >>> headline({"acc": 0.5, "acc_ci": [0.3, 0.7], "n": 10})
        ('acc', 0.5, [0.3, 0.7])
    """
    for key, ci in HEADLINE:
        if isinstance(result.get(key), (int, float)) and not isinstance(result.get(key), bool):
            return key, float(result[key]), result.get(ci)
    return None


def _item_score(row: dict[str, Any], metric: str) -> float | None:
    value = row.get(metric, row.get("score"))
    return float(value) if isinstance(value, (int, float)) else None


def _answer(row: dict[str, Any]) -> str | None:
    """The item's answer as a label for the distribution (multiple choice only; None for free text)."""
    if "choices" not in row:
        return None
    return str(row["parsed"]) if row.get("parsed") not in (None, "") else "unparsed"


def chance_level(rows: list[dict[str, Any]]) -> float | None:
    """Mean over items of 1 / number of options; None when the items are not multiple choice.

    Example:
        >>> round(chance_level([{"choices": ["A", "B", "C", "D"]}, {"choices": ["yes", "no", "maybe"]}]), 4)
        0.2917
    """
    sizes = [len(r["choices"]) for r in rows if r.get("choices")]
    return sum(1 / n for n in sizes) / len(sizes) if sizes and len(sizes) == len(rows) else None


def collapse_of(answers: Counter, n: int) -> dict[str, Any] | None:
    """``{"answer", "count", "n", "share"}`` when one answer covers >= COLLAPSE_SHARE of ``n`` items, else None.

    Example:
        >>> collapse_of(Counter({"A": 50}), 50)["share"]
        1.0
    """
    if n < COLLAPSE_MIN_ITEMS or not answers:
        return None
    answer, count = answers.most_common(1)[0]
    return {"answer": answer, "count": count, "n": n, "share": count / n} if count / n >= COLLAPSE_SHARE else None


def _paired(ref_scores: list[float], scores: list[float], binary: bool, seed: int) -> dict[str, Any]:
    from clinforge.eval.metrics.significance import mcnemar, paired_bootstrap

    boot = paired_bootstrap(scores, ref_scores, seed=seed)
    out: dict[str, Any] = {"n_shared": len(scores), "delta": boot["delta"], "delta_ci": boot["delta_ci"],
                           "p_bootstrap": boot["p_value"], "bootstrap": {k: boot[k] for k in ("n_resamples", "seed")}}
    if binary:
        test = mcnemar(scores, ref_scores)
        out.update(p_mcnemar=test["p_value"], mcnemar_method=test["method"], only_run_right=test["b"],
                   only_reference_right=test["c"],
                   both_right=sum(1 for a, b in zip(scores, ref_scores, strict=True) if a and b),
                   both_wrong=sum(1 for a, b in zip(scores, ref_scores, strict=True) if not a and not b))
    return out


def compare_task(task: str, runs: list[EvalRun], seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The comparison of one task across ``runs`` (those that ran it) and its disagreement rows."""
    present = [r for r in runs if task in r.summary["tasks"]]
    heads = {r.label: headline(r.summary["tasks"][task]) for r in present}
    metric = next((h[0] for h in heads.values() if h), None)
    result: dict[str, Any] = {"metric": metric, "runs": [r.label for r in present], "scores": {}, "warnings": []}
    for r in present:
        res, h = r.summary["tasks"][task], heads[r.label]
        score = {"value": h[1] if h and h[0] == metric else None, "ci": h[2] if h and h[0] == metric else None,
                 "n": res.get("n")}
        for extra in ("unparsed", "abstained", "empty"):
            if isinstance(res.get(extra), int) and res[extra]:
                score[extra] = res[extra]
        result["scores"][r.label] = score
    rows_by_run = {r.label: r.items[task] for r in present}
    all_rows = [row for rows in rows_by_run.values() for row in rows.values()]
    multiple_choice = bool(all_rows) and all("choices" in row for row in all_rows)
    if multiple_choice:
        first = next(iter(rows_by_run.values()))
        result["chance"] = chance_level(list(first.values()))
        gold = Counter(str(row["gold"]) for row in first.values())
        result["majority"] = {"answer": gold.most_common(1)[0][0], "value": gold.most_common(1)[0][1] / len(first)}
        result["answers"] = {"gold": dict(sorted(gold.items()))}
        for label, rows in rows_by_run.items():
            counts = Counter(_answer(row) or "unparsed" for row in rows.values())
            result["answers"][label] = dict(sorted(counts.items()))
            collapsed = collapse_of(counts, len(rows))
            if collapsed:
                result.setdefault("collapse", {})[label] = collapsed
                gold_share = gold.get(collapsed["answer"], 0)
                result["warnings"].append(
                    f"{label} answers {collapsed['answer']!r} to {collapsed['count']} of {collapsed['n']} {task} "
                    f"items (the gold answer of {gold_share} of them); its {metric} measures how often "
                    f"that answer is right, not knowledge")
    else:
        for label, rows in rows_by_run.items():  # free text: flag identical outputs, without quoting them (PHI)
            counts = Counter(str(row.get("parsed")) for row in rows.values())
            collapsed = collapse_of(counts, len(rows))
            if collapsed:
                result.setdefault("collapse", {})[label] = {k: v for k, v in collapsed.items() if k != "answer"}
                result["warnings"].append(f"{label} gives one identical output for {collapsed['count']} of "
                                          f"{collapsed['n']} {task} items")
    if metric is None or len(present) < 2:
        return result, []
    ref = present[0]
    binary = metric in ("acc", "flag_acc")
    for other in present[1:]:
        shared = [i for i in rows_by_run[ref.label] if i in rows_by_run[other.label]]
        pairs = [(_item_score(rows_by_run[ref.label][i], metric), _item_score(rows_by_run[other.label][i], metric))
                 for i in shared]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            result["warnings"].append(f"{other.label} and {ref.label} share no scored {task} item")
            continue
        result.setdefault("paired", {})[other.label] = _paired([a for a, _ in pairs], [b for _, b in pairs],
                                                               binary, seed)
        missing = len(rows_by_run[ref.label]) + len(rows_by_run[other.label]) - 2 * len(shared)
        if missing:
            result["warnings"].append(f"{task}: {missing} items were scored by only one of {ref.label} and "
                                      f"{other.label}; the paired tests use the {len(shared)} shared items")
    disagreements = _disagreements(rows_by_run, metric, multiple_choice)
    result["disagreements"] = len(disagreements)
    return result, disagreements


def _disagreements(rows_by_run: dict[str, dict[str, dict[str, Any]]], metric: str,
                   multiple_choice: bool) -> list[dict[str, Any]]:
    labels = list(rows_by_run)
    shared = [i for i in rows_by_run[labels[0]] if all(i in rows_by_run[lb] for lb in labels[1:])]
    out = []
    for item in shared:
        rows = {lb: rows_by_run[lb][item] for lb in labels}
        scores = {lb: _item_score(row, metric) for lb, row in rows.items()}
        answers = {lb: _answer(row) for lb, row in rows.items()} if multiple_choice else {}
        if len(set(answers.values())) > 1 or len(set(scores.values())) > 1:
            entry: dict[str, Any] = {"id": item, "scores": scores}
            if multiple_choice:
                entry.update(gold=str(rows[labels[0]]["gold"]), answers=answers)
            out.append(entry)
    if not multiple_choice:  # continuous scores: the largest differences first
        out.sort(key=lambda e: -(max(v or 0 for v in e["scores"].values()) - min(v or 0 for v in e["scores"].values())))
    return out


def _settings_warnings(runs: list[EvalRun]) -> list[str]:
    out = []
    for key in SETTINGS:
        values = {r.label: r.summary.get(key) for r in runs}
        if len({json.dumps(v) for v in values.values()}) > 1:
            shown = ", ".join(f"{lb} {v if v is not None else 'default'}" for lb, v in values.items())
            out.append(f"the runs differ in {key} ({shown}); differences in score may come from that")
    return out


def used_definitions(summary: dict[str, Any]) -> dict[str, str]:
    """The definitions of exactly the figures a comparison shows (no others).

    Example:
        >>> sorted(used_definitions({"tasks": {"t": {"metric": "rougeL", "scores": {}}}}))
        ['ci', 'n', 'rougeL']
    """
    keys = ["ci", "n"]
    for res in summary["tasks"].values():
        keys.append(res.get("metric") or "")
        keys += [k for k in ("chance", "majority", "answers", "collapse") if res.get(k)]
        if res.get("disagreements"):
            keys.append("disagreement")
        for paired in res.get("paired", {}).values():
            keys += [k for k in ("n_shared", "delta", "delta_ci", "p_bootstrap", "p_mcnemar", "only_run_right",
                                 "only_reference_right") if k in paired]
    return {k: DEFINITIONS[k] for k in dict.fromkeys(keys) if k in DEFINITIONS}


def compare(runs: list[EvalRun], seed: int = 0) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The comparison summary of loaded runs (first = reference) and every task's disagreement rows.

    Example:
        >>> summary, _ = compare([load_run("runs/eval/base", "base"), load_run("runs/eval/tuned", "tuned")])  # doctest: +SKIP
    """
    from clinforge.eval.eval_runner import _strict_json

    tasks = list(dict.fromkeys(t for r in runs for t in r.summary["tasks"]))
    summary: dict[str, Any] = {
        "reference": runs[0].label, "seed": seed,
        "runs": [{"label": r.label, "dir": str(r.path), "model": r.summary.get("model"),
                  **{k: r.summary.get(k) for k in SETTINGS}} for r in runs],
        "tasks": {}, "warnings": _settings_warnings(runs),
    }
    disagreements = {}
    for task in tasks:
        summary["tasks"][task], disagreements[task] = compare_task(task, runs, seed)
        summary["warnings"] += summary["tasks"][task]["warnings"]
    summary["definitions"] = used_definitions(summary)
    return _strict_json(summary), disagreements


def fmt_score(value: float | None, ci: list[float] | None = None) -> str:
    """``0.240 (95% CI 0.140-0.360)``; an undefined value reads "n/a".

    Example:
        >>> fmt_score(0.24, [0.14, 0.36])
        '0.240 (95% CI 0.140-0.360)'
    """
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def fmt_p(p: float | None) -> str:
    """A p-value as shown: three decimals, "<0.001" below that.

    Example:
        >>> fmt_p(0.0001), fmt_p(0.4321)
        ('<0.001', '0.432')
    """
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def console_lines(summary: dict[str, Any]) -> list[str]:
    """The comparison for a terminal: each run's score with its CI, the paired tests, and every warning.

    Example:
        >>> console_lines({"reference": "a", "tasks": {}, "warnings": ["x"]})
        ['warning: x']
    """
    lines = []
    for task, res in summary["tasks"].items():
        baseline = [f"chance {res['chance']:.3f}"] if res.get("chance") is not None else []
        if res.get("majority"):
            baseline.append(f"majority answer {res['majority']['value']:.3f}")
        lines.append(f"{task} ({res['metric']}{', ' + ', '.join(baseline) if baseline else ''}):")
        for label, score in res["scores"].items():
            lines.append(f"  {label}: {fmt_score(score['value'], score['ci'])}, n={score['n']}")
        for label, paired in res.get("paired", {}).items():
            tests = f"paired bootstrap p = {fmt_p(paired['p_bootstrap'])}"
            if "p_mcnemar" in paired:
                tests = f"McNemar p = {fmt_p(paired['p_mcnemar'])}, " + tests
            lines.append(f"  {label} - {summary['reference']}: {paired['delta']:+.3f} (95% CI "
                         f"{paired['delta_ci'][0]:+.3f} to {paired['delta_ci'][1]:+.3f}), {tests}, "
                         f"n={paired['n_shared']}")
    return lines + [f"warning: {w}" for w in summary["warnings"]]


def compare_runs(run_dirs: list[str | Path], out: str | Path, *, labels: list[str] | None = None, seed: int = 0,
                 overwrite: bool = False) -> dict[str, Any]:
    """Compare eval run directories (the first is the reference) and write the report into ``out``.

    Example:
        >>> compare_runs(["runs/eval/base", "runs/eval/tuned"], "runs/compare", labels=["base", "tuned"])  # doctest: +SKIP
    """
    from clinforge.core.io import write_jsonl
    from clinforge.core.run_records import RunRecord, prepare_output_dir
    from clinforge.eval.compare_report_html import write_compare_report

    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise ClinforgeError(f"compare needs at least two eval run directories (got {len(paths)})")
    labels = list(labels) if labels else default_labels(paths)
    if len(labels) != len(paths):
        raise ClinforgeError(f"--labels gives {len(labels)} labels for {len(paths)} run directories")
    if len(set(labels)) != len(labels) or not all(lb.strip() for lb in labels):
        raise ClinforgeError(f"--labels must be distinct and non-empty (got {', '.join(labels)})")
    runs = [load_run(p, lb) for p, lb in zip(paths, labels, strict=True)]
    out = prepare_output_dir(out, overwrite=overwrite)
    inputs = [p / "summary.json" for p in paths] + [p / "items" for p in paths]
    record = RunRecord(out, command="compare", config={"runs": [str(p) for p in paths], "labels": labels,
                                                       "seed": seed}, inputs=inputs, seed=seed)
    try:
        summary, disagreements = compare(runs, seed)
        for task, rows in disagreements.items():
            if rows:
                write_jsonl(out / "disagreements" / f"{task}.jsonl", rows)
        write_compare_report(out, summary, disagreements)
    except BaseException as exc:
        record.fail(exc)
        raise
    return record.finish(summary)


__all__ = ["compare_runs", "console_lines", "fmt_score", "fmt_p", "compare", "compare_task", "load_run", "EvalRun", "DEFINITIONS", "chance_level",
           "collapse_of", "headline", "used_definitions", "default_labels"]
