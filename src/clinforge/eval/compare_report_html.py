"""The self-contained HTML page of a run comparison (``clinforge compare``): one file, plots as base64 PNG.

Top to bottom: the runs compared (model, settings), warnings (answer collapse, differing settings), a plot of every
task's scores with CIs beside its chance level, then per task a table of scores and paired tests, the answer
distribution and the first disagreements, and at the end the definitions of exactly the figures shown. Question
texts are never included (a user's own items may hold PHI); ``disagreements/TASK.jsonl`` lists every item id.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from clinforge.core.io import atomic_write_text
from clinforge.eval.compare_runs import DISAGREEMENTS_SHOWN, fmt_p, fmt_score

COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
STYLE = ("body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222}table{border-collapse:collapse;"
         "margin:0.6em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
         "th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}"
         ".warn{background:#fff3cd;border:1px solid #e0c36c;padding:0.5em 1em;margin:0.5em 0}"
         ".muted{color:#666;font-size:13px}h3{margin-top:1.6em}")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _setting(key: str, value: Any) -> str:
    """Run settings in words: no ``None`` on the page."""
    if value is None:
        return {"limit": "all items", "mode": "each task's default"}.get(key, "not set")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def scores_plot(summary: dict[str, Any]) -> str | None:
    """Grouped bars: every task's headline score per run with its 95% CI, and the task's chance level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clinforge.eval.eval_report_html import png_data_uri

    tasks = [(t, r) for t, r in summary["tasks"].items() if r.get("metric")]
    if not tasks:
        return None
    labels = [r["label"] for r in summary["runs"]]
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.4 * len(tasks) * max(1, len(labels) / 2) + 2), 3.8))
    for j, label in enumerate(labels):
        xs, ys, lo, hi = [], [], [], []
        for i, (_, res) in enumerate(tasks):
            score = res["scores"].get(label)
            if not score or score["value"] is None:
                continue
            ci = score["ci"] or [score["value"], score["value"]]
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(score["value"])
            lo.append(score["value"] - ci[0])
            hi.append(ci[1] - score["value"])
        ax.bar(xs, ys, width * 0.92, yerr=[lo, hi], capsize=3, label=label, color=COLORS[j % len(COLORS)])
    for i, (_, res) in enumerate(tasks):
        if res.get("chance") is not None:
            ax.hlines(res["chance"], i - 0.45, i + 0.45, colors="#c00", linestyles="dashed", linewidth=1.2,
                      label="chance" if i == 0 or "chance" not in ax.get_legend_handles_labels()[1] else None)
        if res.get("majority"):
            ax.hlines(res["majority"]["value"], i - 0.45, i + 0.45, colors="#555", linestyles="dotted",
                      linewidth=1.2, label="majority answer"
                      if "majority answer" not in ax.get_legend_handles_labels()[1] else None)
    ax.set_xticks(range(len(tasks)), [f"{t}\n({r['metric']})" for t, r in tasks], fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score, 95% bootstrap CI")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    uri = png_data_uri(fig)
    plt.close(fig)
    return uri


def _runs_table(summary: dict[str, Any]) -> str:
    keys = ("seed", "num_fewshot", "limit", "mode", "cot")
    head = "".join(f"<th>{_e(k.replace('_', ' '))}</th>" for k in ("run", "model", *keys))
    rows = []
    for run in summary["runs"]:
        ref = " (reference)" if run["label"] == summary["reference"] else ""
        cells = "".join(f"<td>{_e(_setting(k, run.get(k)))}</td>" for k in keys)
        rows.append(f"<tr><td><b>{_e(run['label'])}</b>{ref}</td><td>{_e(run.get('model') or run['dir'])}</td>"
                    f"{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _task_section(task: str, res: dict[str, Any], reference: str, disagreements: list[dict[str, Any]]) -> str:
    metric = res["metric"] or "score"
    parts = [f"<h3>{_e(task)}</h3>"]
    baselines = []
    if res.get("chance") is not None:
        baselines.append(f"chance {res['chance']:.3f}")
    if res.get("majority"):
        baselines.append(f"majority answer ({_e(res['majority']['answer'])}) {res['majority']['value']:.3f}")
    if baselines:
        parts.append(f"<p class='muted'>Baselines: {'; '.join(baselines)}.</p>")
    for warning in res.get("warnings", []):  # also listed at the top of the page
        parts.append(f"<p class='muted'>&#9888; {_e(warning)}</p>")
    rows = [f"<tr><th>run</th><th>{_e(metric)} (95% CI)</th><th>n</th><th>{_e(metric)} - {_e(reference)} "
            "(95% CI)</th><th>McNemar p</th><th>paired bootstrap p</th><th>only run right / only reference right"
            "</th></tr>"]
    for label, score in res["scores"].items():
        paired = res.get("paired", {}).get(label)
        extra = "".join(f", {score[k]} {k}" for k in ("unparsed", "abstained", "empty") if score.get(k))
        if paired:
            delta = (f"{paired['delta']:+.3f} ({paired['delta_ci'][0]:+.3f} to {paired['delta_ci'][1]:+.3f}), "
                     f"n={paired['n_shared']}")
            mcn = fmt_p(paired.get("p_mcnemar")) if "p_mcnemar" in paired else "not 0/1"
            split = (f"{paired['only_run_right']} / {paired['only_reference_right']}" if "only_run_right" in paired
                     else "not 0/1")
            tests = (f"<td class='num'>{delta}</td><td class='num'>{mcn}</td>"
                     f"<td class='num'>{fmt_p(paired['p_bootstrap'])}</td><td class='num'>{split}</td>")
        else:
            tests = "<td colspan='4' class='muted'>reference</td>" if label == reference else \
                    "<td colspan='4' class='muted'>no shared items</td>"
        rows.append(f"<tr><td>{_e(label)}</td><td class='num'>{fmt_score(score['value'], score['ci'])}</td>"
                    f"<td class='num'>{_e(score['n'])}{_e(extra)}</td>{tests}</tr>")
    parts.append("<table>" + "".join(rows) + "</table>")
    if res.get("answers"):
        answers = res["answers"]
        options = sorted({a for counts in answers.values() for a in counts}, key=lambda a: (a == "unparsed", a))
        head = "".join(f"<th>{_e(a)}</th>" for a in options)
        collapsed = res.get("collapse", {})
        body = "".join(f"<tr{' class=warn' if who in collapsed else ''}><td>{_e(who)}</td>"
                       + "".join(f"<td class='num'>{counts.get(a, 0)}</td>" for a in options) + "</tr>"
                       for who, counts in answers.items())
        parts.append(f"<p class='muted'>Answers given (gold = the correct answers of these items):</p>"
                     f"<table><tr><th></th>{head}</tr>{body}</table>")
    if disagreements:
        labels = list(res["scores"])
        shown = disagreements[:DISAGREEMENTS_SHOWN]
        has_answers = "answers" in shown[0]
        head = "<th>item</th>" + ("<th>gold</th>" if has_answers else "") + "".join(
            f"<th>{_e(lb)}</th>" for lb in labels)
        body = []
        for d in shown:
            cells = []
            for lb in labels:
                value = d["scores"].get(lb)
                shown_value = d["answers"][lb] if has_answers else ("n/a" if value is None else f"{value:.3f}")
                mark = (" &#10003;" if value == 1.0 else " &#10007;") if has_answers and value is not None else ""
                cells.append(f"<td>{_e(shown_value)}{mark}</td>")
            body.append(f"<tr><td>{_e(d['id'])}</td>" + (f"<td>{_e(d['gold'])}</td>" if has_answers else "")
                        + "".join(cells) + "</tr>")
        more = (f" (the first {len(shown)}; all in disagreements/{_e(task)}.jsonl)"
                if len(disagreements) > len(shown) else f" (also in disagreements/{_e(task)}.jsonl)")
        what = "answers (&#10003; right, &#10007; wrong)" if has_answers else f"item {_e(metric)}, largest gaps first"
        opened = " open" if len(disagreements) <= 20 else ""  # a short list is read at once; a long one on demand
        parts.append(f"<details{opened}><summary>{len(disagreements)} items on which the runs disagree{more}: {what}"
                     f"</summary><table><tr>{head}</tr>{''.join(body)}</table></details>")
    elif res.get("paired"):
        parts.append("<p class='muted'>The runs agree on every shared item.</p>")
    return "".join(parts)


def render_compare_html(summary: dict[str, Any], disagreements: dict[str, list[dict[str, Any]]]) -> str:
    """The comparison page as one HTML string.

    Example:
        >>> page = render_compare_html({"reference": "a", "runs": [], "tasks": {}, "warnings": [],
        ...                             "definitions": {}}, {})
        >>> page.startswith("<!doctype html>")
        True
    """
    labels = [r["label"] for r in summary["runs"]]
    title = " vs ".join(labels) or "runs"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>clinforge comparison: {_e(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>Comparison: {_e(title)}</h1>", _runs_table(summary)]
    if summary["warnings"]:
        parts.append("<h2>Warnings</h2>" + "".join(f"<div class='warn'>{_e(w)}</div>" for w in summary["warnings"]))
    uri = scores_plot(summary) if summary["tasks"] else None
    if uri:
        parts.append(f"<h2>Scores</h2><img alt='scores per task and run' src='{uri}'>")
    parts.append("<h2>Tasks</h2>")
    for task, res in summary["tasks"].items():
        parts.append(_task_section(task, res, summary["reference"], disagreements.get(task, [])))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in summary["definitions"].items())
    parts.append(f"<h2>Definitions</h2><table>{rows}</table><p class='muted'>Paired tests compare each run with the "
                 f"reference ({_e(summary['reference'])}), bootstrap seed {_e(summary.get('seed', 0))}.</p>"
                 "</body></html>")
    return "".join(parts)


def write_compare_report(out_dir: str | Path, summary: dict[str, Any],
                         disagreements: dict[str, list[dict[str, Any]]]) -> Path:
    """Write ``DIR/report.html`` atomically and return its path."""
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, render_compare_html(summary, disagreements))
    return path


__all__ = ["render_compare_html", "write_compare_report", "scores_plot"]
