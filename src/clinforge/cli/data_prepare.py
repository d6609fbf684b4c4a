"""``clinforge data prepare RECIPE.yaml``: run a data-preparation recipe into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def print_card_summary(card: dict[str, Any], out_dir: Path) -> None:
    """Print the data card's headline numbers (steps in/out, PHI, duplicates, contamination, splits)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{card['recipe']}: {card['records_in']} records in, {card['records_out']} out")
    for col in ("step", "in", "out", "removed"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for s in card["steps"]:
        table.add_row(s["step"], str(s["in"]), str(s["out"]), str(s["removed"]))
    console.print(table)
    if card["skipped_rows"]:
        console.print(f"skipped rows: {card['skipped_rows']}")
    if card["phi_by_type"] is not None:
        phi = ", ".join(f"{k} {v}" for k, v in sorted(card["phi_by_type"].items())) or "none"
        console.print(f"PHI found: {phi}")
    for s in card["steps"]:  # ids go into the dataset as they came; an MRN or a date in them is PHI
        rep = s["report"]
        if s["transform"] == "deid" and rep.get("record_ids_with_phi") and rep.get("record_ids") == "kept as in the source":
            console.print(f"[yellow]warning[/yellow]: step {s['step']}: {rep['record_ids_with_phi']} record ids hold what "
                          "looks like PHI (an MRN, a date, a name) and are kept in the dataset; set the step's option "
                          "record_ids: pseudonymize", soft_wrap=True)
    if card["duplicates_removed"] is not None:
        d = card["duplicates_removed"]
        console.print(f"duplicates removed: {d['exact']} exact, {d['near']} near")
    for bench, c in (card["contamination"] or {}).items():
        console.print(f"contamination vs {bench}: {c['train_records_hit']} training records share a long n-gram "
                      f"with {c['benchmark_items_hit']} of {c['items']} benchmark items")
    console.print("splits: " + ", ".join(f"{n} {s['records']}" for n, s in card["splits"].items())
                  + ("" if card["groups_crossing_splits"] is None
                     else f" (patients crossing splits: {card['groups_crossing_splits']}; "
                          f"fingerprint {card['split_fingerprint'][:12]})"))
    console.print(f"written: {out_dir}/dataset, {out_dir}/data_card.md")


def register(app: typer.Typer) -> None:
    """Add ``prepare`` to the ``clinforge data`` group."""

    @app.command("prepare")
    def prepare_command(
        recipe: Path = typer.Argument(..., help="YAML recipe: sources, steps (transforms in order), seed."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Run directory (default: the recipe's output.dir)."),
        set_: list[str] | None = typer.Option(None, "--set", help="Override a recipe key: a.b=value (repeatable)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
        json_: bool = typer.Option(False, "--json", help="Print the data card as JSON instead of a summary."),
        no_progress: bool = NO_PROGRESS,
    ) -> None:
        """Read sources, run de-identification, de-duplication, filters, contamination check, split and chat
        formatting as the recipe says; write a HF datasets folder, a data card and a run record."""
        import json

        from clinforge.core.errors import ConfigError
        from clinforge.data.prepare import load_recipe, prepare

        if not recipe.is_file():
            raise ConfigError("recipe file not found", file=str(recipe))
        rec = load_recipe(recipe, set_)
        target = out or (Path(rec.output.dir) if rec.output.dir else None)
        if target is None:
            raise ConfigError("no output directory: pass --out DIR or set output.dir", file=str(recipe), key="output.dir")
        card = prepare(rec, target, overwrite=overwrite, recipe_file=str(recipe))
        if json_:
            typer.echo(json.dumps(card, indent=2, ensure_ascii=False, default=str))
        else:
            print_card_summary(card, target)
