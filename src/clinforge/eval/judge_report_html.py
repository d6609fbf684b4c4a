"""A self-contained HTML report of a judge run (``report.html`` beside ``summary.json``): a table per judge and the
jury, plots of the headline scores with their CIs, the bias diagnostics (position consistency, length-bias
correlation with CIs) and a length-vs-verdict scatter per judge.

Like the evaluation report it embeds the plots as base64 PNG and never includes item texts (they may hold PHI; the
per-item JSONL holds them). Lengths are whitespace word counts, as in the summary's length-bias definitions.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from clinforge.core.io import atomic_write_text
from clinforge.eval.eval_report_html import definitions_footer, png_data_uri

HEADLINES = {"single": "mean_score", "rubric": "healthbench_score", "pairwise": "win_rate_a"}
_PREF = {"A": 1.0, "tie": 0.5, "B": 0.0}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _blocks(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    blocks = list(summary.get("judges", {}).items())
    if "jury" in summary:
        blocks.append((f"jury ({summary['jury'].get('aggregation')})", summary["jury"]))
    return blocks


def _bars(title: str, ylabel: str, entries: list[tuple[str, dict]], ylim: tuple[float, float] | None) -> str | None:
    """Bar chart of ``{"value", "ci"}`` stats with CI error bars; None when no stat is defined."""
    rows = [(name, s["value"], s.get("ci")) for name, s in entries if s and s.get("value") is not None]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), 3.4))
    lows = [v - ci[0] if ci else 0.0 for _, v, ci in rows]
    highs = [ci[1] - v if ci else 0.0 for _, v, ci in rows]
    ax.bar(range(len(rows)), [v for _, v, _ in rows], yerr=[lows, highs], capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(rows)), [n[-40:] for n, _, _ in rows], rotation=30, ha="right", fontsize=7)
    if ylim:
        ax.set_ylim(*ylim)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    uri = png_data_uri(fig)
    plt.close(fig)
    return uri


def length_scatter(kind: str, name: str, rows: list[dict[str, Any]]) -> str | None:
    """Verdict vs length for one judge: pairwise = preference for A vs relative length difference; single/rubric =
    score vs answer length. Only parsed verdicts are drawn."""
    xs, ys = [], []
    for row in rows:
        res = row.get("judges", {}).get(name)
        if not res or not res.get("parsed"):
            continue
        if kind == "pairwise":
            wa, wb = len(row["response_a"].split()), len(row["response_b"].split())
            xs.append((wa - wb) / (wa + wb) if wa + wb else 0.0)
            ys.append((_PREF[res["verdict_ab"]] + _PREF[res["verdict_ba"]]) / 2)
        else:
            xs.append(len(row["response"].split()))
            ys.append(res["score"])
    if not xs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.scatter(xs, ys, s=12, alpha=0.6, color="#c44e52")
    ax.set_xlabel("(wA - wB) / (wA + wB)" if kind == "pairwise" else "answer length (words)", fontsize=8)
    ax.set_ylabel("preference for A" if kind == "pairwise" else "score", fontsize=8)
    ax.set_title(f"length vs verdict: {name[-40:]}", fontsize=8)
    uri = png_data_uri(fig)
    plt.close(fig)
    return uri


def _stat(s: Any) -> str:
    if not isinstance(s, dict) or s.get("value") is None:
        return "n/a"
    ci = s.get("ci")
    return f"{s['value']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "") + f" (n={s.get('n')})"


def render_judge_html(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The report page as one HTML string (no item texts)."""
    kind = summary["kind"]
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>clinforge judge report</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
             "img{margin:0.5em}</style></head><body>",
             f"<h1>Judge run: {html.escape(kind)}</h1>",
             f"<p>items: {summary.get('n_items')}, seed: {summary.get('seed')}, bootstrap resamples: "
             f"{summary.get('n_boot')}, candidate models: {html.escape(', '.join(summary.get('candidate_models', [])))}"
             "</p>"]
    blocks = _blocks(summary)
    parts.append("<h2>Judges</h2><table><tr><th>judge</th><th>n</th><th>parsed</th><th>unparsable</th>"
                 "<th>headline (95% CI)</th><th>position consistency</th><th>length-bias correlation</th>"
                 "<th>self-preference</th></tr>")
    for name, b in blocks:
        headline = HEADLINES.get(kind)
        lb = b.get("length_bias", {}).get("correlation")
        sp = b.get("self_preference", {}).get("flag", "")
        parts.append(f"<tr><td>{html.escape(name)}</td><td>{b.get('n')}</td><td>{b.get('n_parsed')}</td>"
                     f"<td>{b.get('n_unparsable')}</td><td>{html.escape(headline or '')}: "
                     f"{_stat(b.get(headline)) if headline else 'n/a'}</td>"
                     f"<td>{_stat(b.get('position_consistency'))}</td><td>{_stat(lb)}</td>"
                     f"<td>{html.escape(str(sp))}</td></tr>")
    parts.append("</table>")
    if kind in HEADLINES:
        ylim = (0, 1) if kind != "single" else None
        uri = _bars(f"{HEADLINES[kind]} per judge", "value (95% bootstrap CI)",
                    [(n, b.get(HEADLINES[kind])) for n, b in blocks], ylim)
        if uri:
            parts.append(f"<h2>Scores</h2><img alt='scores' src='{uri}'>")
    parts.append("<h2>Judge bias</h2>")
    if kind == "pairwise":
        uri = _bars("position consistency", "share consistent", [(n, b.get("position_consistency"))
                                                                  for n, b in summary["judges"].items()], (0, 1))
        if uri:
            parts.append(f"<img alt='position consistency' src='{uri}'>")
    uri = _bars("length bias (correlation)", "correlation", [(n, b.get("length_bias", {}).get("correlation"))
                                                             for n, b in summary.get("judges", {}).items()], (-1, 1))
    if uri:
        parts.append(f"<img alt='length bias' src='{uri}'>")
    if kind in HEADLINES:
        for name in summary.get("judges", {}):
            uri = length_scatter(kind, name, rows)
            if uri:
                parts.append(f"<img alt='length scatter' src='{uri}'>")
    parts.append(definitions_footer(summary))
    return "".join(parts)


def write_judge_report(out_dir: str | Path) -> Path:
    """Write ``DIR/report.html`` for a judge run directory (reads ``summary.json`` and ``items.jsonl``).

    Example:
        >>> write_judge_report("runs/judge-pairwise")  # doctest: +SKIP
        PosixPath('runs/judge-pairwise/report.html')
    """
    out = Path(out_dir)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = []
    items = out / "items.jsonl"
    if items.exists():
        rows = [json.loads(line) for line in items.read_text(encoding="utf-8").splitlines() if line.strip()]
    path = out / "report.html"
    atomic_write_text(path, render_judge_html(summary, rows))
    return path
