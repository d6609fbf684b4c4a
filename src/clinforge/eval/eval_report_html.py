"""A self-contained HTML report of an evaluation run: tables plus matplotlib plots embedded as base64 PNG.

Plots: per-task scores with their bootstrap CIs (acc for multiple choice, rougeL for text tasks, flag_acc for
MEDEC), and a reliability diagram (calibration curve) per multiple-choice task scored by log-likelihood. The file
has no external links, so it can be archived or mailed as is. Item texts are not included (they may hold PHI in a
user's own data); the per-item JSONL files hold them.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from clinforge.core.io import atomic_write_text

HEADLINE = (("acc", "acc_ci"), ("flag_acc", "flag_acc_ci"), ("rougeL", "rougeL_ci"))


def headline(result: dict[str, Any]) -> tuple[str, float, list[float] | None] | None:
    """The task's main number: (name, value, CI) — acc, else flag_acc, else rougeL."""
    for key, ci in HEADLINE:
        if isinstance(result.get(key), (int, float)):
            return key, float(result[key]), result.get(ci)
    return None


def png_data_uri(fig: Any) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI, so reports need no files beside them."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def scores_plot(summary: dict[str, Any]) -> str | None:
    """Bar chart of each task's headline score with its CI as error bars (base64 PNG data URI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(name, *h) for name, res in summary["tasks"].items() if (h := headline(res))]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(rows) + 2), 3.6))
    values = [r[2] for r in rows]
    lows = [r[2] - r[3][0] if r[3] else 0.0 for r in rows]
    highs = [r[3][1] - r[2] if r[3] else 0.0 for r in rows]
    ax.bar(range(len(rows)), values, yerr=[lows, highs], capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(rows)), [f"{r[0]}\n({r[1]})" for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (95% bootstrap CI)")
    ax.set_title(f"{summary.get('model', '')}")
    uri = png_data_uri(fig)
    plt.close(fig)
    return uri


def calibration_plot(name: str, bins: list[dict[str, Any]]) -> str | None:
    """Reliability diagram: accuracy vs mean confidence per non-empty bin, with the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(b["confidence"], b["accuracy"], b["count"]) for b in bins if b.get("count")]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(3.4, 3.4))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="#c44e52")
    for c, a, n in pts:
        ax.annotate(str(n), (c, a), fontsize=7, textcoords="offset points", xytext=(3, 3))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"calibration: {name}", fontsize=9)
    uri = png_data_uri(fig)
    plt.close(fig)
    return uri


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return "[" + ", ".join(_fmt(float(v)) for v in value) + "]"
    return html.escape(str(value))


def render_html(summary: dict[str, Any]) -> str:
    """The report page as one HTML string."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>clinforge eval report</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
             "img{margin:0.5em}</style></head><body>",
             f"<h1>Evaluation of {html.escape(str(summary.get('model')))}</h1>",
             "<p>" + ", ".join(f"{k}: {html.escape(str(summary.get(k)))}" for k in
                               ("seed", "num_fewshot", "limit", "mode", "cot")) + "</p>"]
    uri = scores_plot(summary)
    if uri:
        parts.append(f"<h2>Scores</h2><img alt='per-task scores' src='{uri}'>")
    parts.append("<h2>Tasks</h2>")
    for name, res in summary["tasks"].items():
        parts.append(f"<h3>{html.escape(name)}</h3><table>")
        for key, value in res.items():
            if key == "calibration_bins":
                continue
            parts.append(f"<tr><th>{html.escape(key)}</th><td>{_fmt(value)}</td></tr>")
        parts.append("</table>")
        if res.get("calibration_bins"):
            cal = calibration_plot(name, res["calibration_bins"])
            if cal:
                parts.append(f"<img alt='calibration {html.escape(name)}' src='{cal}'>")
    if summary.get("groups"):
        parts.append("<h2>Groups</h2><table><tr><th>group</th><th>acc_macro</th><th>CI</th><th>acc_micro</th>"
                     "<th>CI</th><th>n</th><th>complete</th></tr>")
        for g, res in summary["groups"].items():
            parts.append(f"<tr><td>{html.escape(g)}</td><td>{_fmt(res['acc_macro'])}</td>"
                         f"<td>{_fmt(res.get('acc_macro_ci'))}</td><td>{_fmt(res['acc_micro'])}</td>"
                         f"<td>{_fmt(res['acc_micro_ci'])}</td><td>{res['n']}</td><td>{res['complete']}</td></tr>")
        parts.append("</table>")
    parts.append(definitions_footer(summary))
    return "".join(parts)


def definitions_footer(summary: dict[str, Any]) -> str:
    """The closing HTML of a report: a table of every figure's definition and the raw ``summary.json``."""
    rows = "".join(f"<tr><th>{html.escape(key)}</th><td>{html.escape(text)}</td></tr>"
                   for key, text in summary.get("definitions", {}).items())
    return ("<h2>Definitions</h2><table>" + rows + "</table><details><summary>summary.json</summary><pre>"
            + html.escape(json.dumps(summary, indent=1, default=str)) + "</pre></details></body></html>")


def write_report(out_dir: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``DIR/report.html`` atomically and return its path."""
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, render_html(summary))
    return path
