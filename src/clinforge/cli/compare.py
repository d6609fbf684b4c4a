"""``clinforge compare``: one report comparing two or more eval run directories (the first is the reference)."""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def command(
    runs: list[Path] = typer.Argument(..., help="Eval run directories (clinforge eval --out), reference first."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for report.html, summary.json, disagreements/."),
    labels: str = typer.Option(None, "--labels", help="Comma-separated names of the runs, e.g. base,tuned "
                                                      "(default: the folder names)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the paired bootstrap."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Compare eval runs: scores with CIs side by side, paired tests (McNemar, paired bootstrap), disagreements,
    answer distributions with collapse warnings, chance level.

    Example: clinforge compare runs/eval/base runs/eval/tuned --out runs/compare --labels base,tuned
    """
    from clinforge.eval.compare_runs import compare_runs, console_lines

    names = [s.strip() for s in labels.split(",")] if labels else None
    summary = compare_runs(runs, out, labels=names, seed=seed, overwrite=overwrite)
    for line in console_lines(summary):
        typer.echo(line)
    typer.echo(f"wrote {out}/report.html, {out}/summary.json")
