"""``clinforge train RECIPE.yaml``: run a training recipe (stages cpt, ift, sft, rm, rl, rlaif, dpo)."""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def command(
    recipe: Path = typer.Argument(..., exists=True, dir_okay=False, help="Recipe YAML file."),
    out: str | None = typer.Option(None, "--out", "-o", help="Run folder (default: the recipe's out:)."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: --set stages.0.train.lr=1e-4"),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in the same folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Train a model from RECIPE; the final model lands in OUT/model, each stage in OUT/stages/NAME.

    Example: clinforge train recipes/examples/tiny-sft-lora.yaml --out runs/sft --set seed=1
    """
    from rich.console import Console

    from clinforge.train.pipeline import run_recipe_file

    # the recipe is validated (file, line, key) before torch and transformers are imported
    summary = run_recipe_file(recipe, out=out, overrides=set_, resume=resume, overwrite=overwrite)
    from clinforge.train.hf_trainer import is_main_process

    if is_main_process():
        con = Console()
        for st in summary["stages"]:
            m = st["metrics"]
            con.print(f"[bold]{st['name']}[/] ({st['type']}): steps {m.get('global_step')}, "
                      f"final train loss {m.get('final_train_loss')}, eval loss {m.get('final_eval_loss')}")
        if summary.get("epsilon"):
            con.print(f"DP epsilon spent: {summary['epsilon']}")
        con.print(f"model: {summary['model']}  (world size {summary['world_size']})")
