"""``clinforge judge``: AI judges (single, pairwise, rubric, axes; several ``--judge`` make a jury) and the
human-evaluation exchange (human-export, human-import, agreement).

Every command writes a run directory (``run.json``, ``summary.json``, per-item JSONL); judge commands resume when
run again on the same ``--out``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS

app = typer.Typer(no_args_is_help=True, help="AI judges and the human-evaluation exchange.")

JUDGE_OPT = typer.Option(..., "--judge", "-j", help="Judge model SPEC (hf:PATH, openai:URL#MODEL, vllm:PATH); "
                                                    "repeat for a jury.")
INPUT_OPT = typer.Option(..., "--input", "-i", exists=True, dir_okay=False, help="Items JSONL (see docs/judges.md).")
OUT_OPT = typer.Option(..., "--out", "-o", help="Run directory (rerun on the same one to resume).")
NEW_OUT_OPT = typer.Option(..., "--out", "-o", help="Output directory (new, or replaced with --overwrite).")
SYSTEM_OPT = typer.Option(True, "--system-prompt/--no-system-prompt",
                          help="Send the judge's system turn (turn off for chat templates without a system role).")


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    for name, block in summary.get("judges", {}).items():
        parts = [f"n={block['n']}", f"parsed={block['n_parsed']}", f"unparsable={block['n_unparsable']}"]
        if "mean_score" in block:
            parts.append(f"mean={_fmt(block['mean_score'])}")
        if "healthbench_score" in block:
            parts.append(f"healthbench={_fmt(block['healthbench_score'])}")
        if "win_rate_a" in block:
            parts.append(f"win_rate_A={_fmt(block['win_rate_a'])}")
            parts.append(f"position_consistency={_fmt(block['position_consistency'])}")
        parts.append(f"self_preference={block['self_preference']['flag']}")
        console.print(f"[bold]{escape(name)}[/]: " + " ".join(parts), highlight=False)  # a SPEC may hold [...]
    if "jury" in summary:
        jury = summary["jury"]
        console.print(f"[bold]jury ({jury['aggregation']})[/]: n_parsed={jury['n_parsed']} "
                      f"no_majority={jury['n_no_majority']}", highlight=False)


def _fmt(stat: dict) -> str:
    if stat.get("value") is None:
        return "n/a"
    ci = stat.get("ci")
    return f"{stat['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _run(kind: str, judges: list[str], input_path: Path, out: Path, **kwargs) -> None:
    from clinforge.eval.judge_report_html import write_judge_report
    from clinforge.judges.judge_runner import run_judging

    summary = run_judging(kind, judges, input_path, out, **kwargs)
    _print_summary(summary)
    report = write_judge_report(out)
    typer.echo(f"wrote {out / 'summary.json'} and {report}")


@app.command("single")
def single(judge: list[str] = JUDGE_OPT, input_path: Path = INPUT_OPT, out: Path = OUT_OPT,
           scale: str = typer.Option("1-10", help="Score scale LOW-HIGH (inclusive)."),
           aggregation: str = typer.Option("mean", help="Jury aggregation: mean or majority."),
           candidate_model: list[str] = typer.Option([], help="Candidate model name (self-preference check)."),
           seed: int = typer.Option(0, help="Seed for decoding and bootstrap CIs."),
           limit: int | None = typer.Option(None, help="Judge only the first N items."),
           batch_size: int = typer.Option(8, help="Items per backend batch."),
           max_new_tokens: int = typer.Option(512, help="Judge output budget."),
           overwrite: bool = typer.Option(False, help="Replace an existing --out instead of resuming."),
           system_prompt: bool = SYSTEM_OPT, no_progress: bool = NO_PROGRESS) -> None:
    """Grade single answers on a scale (several --judge: a jury)."""
    try:
        low, high = (float(x) for x in scale.split("-", 1))
    except ValueError:
        raise typer.BadParameter(f"--scale must look like 1-10, got {scale!r}") from None
    _run("single", judge, input_path, out, scale=(low, high), aggregation=aggregation, seed=seed, limit=limit,
         batch_size=batch_size, max_new_tokens=max_new_tokens, candidate_models=candidate_model, overwrite=overwrite,
         system_prompt=system_prompt)


@app.command("pairwise")
def pairwise(judge: list[str] = JUDGE_OPT, input_path: Path = INPUT_OPT, out: Path = OUT_OPT,
             aggregation: str = typer.Option("majority", help="Jury aggregation: majority or mean."),
             candidate_model: list[str] = typer.Option([], help="Candidate model name (self-preference check)."),
             seed: int = typer.Option(0, help="Seed for decoding and bootstrap CIs."),
             limit: int | None = typer.Option(None, help="Judge only the first N items."),
             batch_size: int = typer.Option(8, help="Pairs per backend batch (each judged in both orders)."),
             max_new_tokens: int = typer.Option(512, help="Judge output budget."),
             overwrite: bool = typer.Option(False, help="Replace an existing --out instead of resuming."),
             system_prompt: bool = SYSTEM_OPT, no_progress: bool = NO_PROGRESS) -> None:
    """Compare two answers per item, in both orders (inconsistent verdicts count as ties)."""
    _run("pairwise", judge, input_path, out, aggregation=aggregation, seed=seed, limit=limit, batch_size=batch_size,
         max_new_tokens=max_new_tokens, candidate_models=candidate_model, overwrite=overwrite,
         system_prompt=system_prompt)


@app.command("rubric")
def rubric(judge: list[str] = JUDGE_OPT, input_path: Path = INPUT_OPT, out: Path = OUT_OPT,
           rubric_path: Path | None = typer.Option(None, "--rubric", exists=True, dir_okay=False,
                                                   help="Rubric YAML (default: the packaged clinical rubric)."),
           aggregation: str = typer.Option("mean", help="Jury aggregation: mean or majority (per criterion)."),
           candidate_model: list[str] = typer.Option([], help="Candidate model name (self-preference check)."),
           seed: int = typer.Option(0, help="Seed for decoding and bootstrap CIs."),
           limit: int | None = typer.Option(None, help="Judge only the first N items."),
           batch_size: int = typer.Option(4, help="Items per backend batch (one call per criterion)."),
           max_new_tokens: int = typer.Option(256, help="Judge output budget per criterion."),
           overwrite: bool = typer.Option(False, help="Replace an existing --out instead of resuming."),
           system_prompt: bool = SYSTEM_OPT, no_progress: bool = NO_PROGRESS) -> None:
    """Grade answers against a HealthBench-style rubric (criteria with positive and negative points)."""
    _run("rubric", judge, input_path, out, rubric=rubric_path, aggregation=aggregation, seed=seed, limit=limit,
         batch_size=batch_size, max_new_tokens=max_new_tokens, candidate_models=candidate_model, overwrite=overwrite,
         system_prompt=system_prompt)


@app.command("axes")
def axes(judge: list[str] = JUDGE_OPT, input_path: Path = INPUT_OPT, out: Path = OUT_OPT,
         candidate_model: list[str] = typer.Option([], help="Candidate model name (self-preference check)."),
         seed: int = typer.Option(0, help="Seed for decoding."),
         limit: int | None = typer.Option(None, help="Judge only the first N items."),
         batch_size: int = typer.Option(8, help="Answers per backend batch."),
         max_new_tokens: int = typer.Option(512, help="Judge output budget."),
         overwrite: bool = typer.Option(False, help="Replace an existing --out instead of resuming."),
         system_prompt: bool = SYSTEM_OPT, no_progress: bool = NO_PROGRESS) -> None:
    """Rate answers on the Med-PaLM axes (writes labels.jsonl for `judge agreement --judge-labels`)."""
    _run("axes", judge, input_path, out, aggregation="majority", seed=seed, limit=limit, batch_size=batch_size,
         max_new_tokens=max_new_tokens, candidate_models=candidate_model, overwrite=overwrite,
         system_prompt=system_prompt)


@app.command("human-export")
def human_export(input_path: Path = INPUT_OPT, out: Path = NEW_OUT_OPT,
                 raters: str = typer.Option(..., help="Comma-separated rater ids, e.g. r1,r2,r3."),
                 seed: int = typer.Option(0, help="Seed of the blinding codes and the packet orders."),
                 overwrite: bool = typer.Option(False, help="Replace an existing --out."),
                 no_progress: bool = NO_PROGRESS) -> None:
    """Write blinded, randomised rating packets (CSV + JSONL per rater) and a separate blinding key."""
    from clinforge.eval.human import export_packets, load_candidates

    rater_ids = [r.strip() for r in raters.split(",") if r.strip()]
    manifest = export_packets(load_candidates(input_path), out, rater_ids, seed=seed, overwrite=overwrite,
                              source=input_path)
    typer.echo(f"wrote {manifest['n_rows']} rows x {len(rater_ids)} raters to {out / 'packets'}; "
               f"blinding key: {out / 'key' / 'blinding_key.json'} (keep it away from raters)")


@app.command("human-import")
def human_import(ratings: list[Path] = typer.Argument(..., exists=True, help="Filled packet files (CSV or JSONL)."),
                 key: Path = typer.Option(..., exists=True, dir_okay=False, help="blinding_key.json from human-export."),
                 out: Path = NEW_OUT_OPT,
                 overwrite: bool = typer.Option(False, help="Replace an existing --out."),
                 no_progress: bool = NO_PROGRESS) -> None:
    """Validate filled packets, unblind them with the key, and write ratings.jsonl."""
    from clinforge.eval.human import import_ratings_run

    summary = import_ratings_run(ratings, key, out, overwrite=overwrite)
    typer.echo(json.dumps({k: summary[k] for k in ("n_ratings", "raters", "n_missing")}, indent=2))


@app.command("agreement")
def agreement(ratings: Path = typer.Option(..., exists=True, dir_okay=False, help="ratings.jsonl from human-import."),
              out: Path = NEW_OUT_OPT,
              judge_labels: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                                       help="JSONL of judge labels per item_id, model and axis."),
              seed: int = typer.Option(0, help="Seed of the bootstrap CIs."),
              n_boot: int = typer.Option(1000, help="Bootstrap resamples."),
              overwrite: bool = typer.Option(False, help="Replace an existing --out."),
              no_progress: bool = NO_PROGRESS) -> None:
    """Inter-rater agreement (Cohen, Fleiss, Krippendorff) per axis, and judge-vs-human agreement."""
    from clinforge.eval.human import agreement_run

    summary = agreement_run(ratings, out, judge_labels=judge_labels, seed=seed, n_boot=n_boot, overwrite=overwrite)
    for axis, block in summary["axes"].items():
        alpha = block.get("krippendorff_alpha_nominal", {}).get("value")
        typer.echo(f"{axis}: n_units={block['n_units']} alpha_nominal={alpha}")
    typer.echo(f"wrote {out / 'summary.json'}")
