"""``clinforge demo``: the main job end to end on embedded defaults (offline, CPU, no server).

A clear sequence of steps, each writing its own sub-folder of the demo run directory and adding its summary to
the demo's ``summary.json``: (1) prepare data (de-identify, de-duplicate, filter, decontaminate, split by patient,
chat-format), (2) build a tiny model and train it (continual pre-training, then LoRA SFT) on the prepared data,
(3) evaluate the base and the trained model on held-out multiple-choice questions, (4) compare them in one
report (CIs, paired tests, answer distributions). The model is tiny and random at the start, so its accuracy
is near chance: the demo shows the workflow and its records, not a useful model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from clinforge.cli.shared_options import NO_PROGRESS

DATA_CHOICES = ("samples", "real")


def _recipe_path(data: str) -> Path:
    from clinforge.core.errors import ClinforgeError
    from clinforge.core.paths import data_root, samples_dir

    if data == "samples":
        return samples_dir() / "prepare.yaml"
    root = data_root()
    if not root.is_dir():
        raise ClinforgeError(f"--data real needs the real datasets, not found at {root}; set CLINFORGE_DATA "
                             "to the folder holding them (see docs/prepare.md)")
    return samples_dir() / "prepare_real.yaml"


def step_prepare(ctx: dict[str, Any]) -> dict[str, Any]:
    """Step 1: run the data-preparation recipe into ``<out>/prepare``; returns the data card."""
    from clinforge.cli.data_prepare import print_card_summary
    from clinforge.data.prepare import load_recipe, prepare

    recipe_file = _recipe_path(ctx["data"])
    out = ctx["out"] / "prepare"
    card = prepare(load_recipe(recipe_file), out, recipe_file=str(recipe_file))
    print_card_summary(card, out)
    ctx["prepared"] = out  # later steps train and evaluate on this
    return {k: card[k] for k in ("records_in", "records_out", "phi_by_type", "duplicates_removed", "contamination",
                                 "splits", "groups_crossing_splits")}


def step_train(ctx: dict[str, Any]) -> dict[str, Any]:
    """Step 2: build a tiny model and run the demo training recipe on the prepared data into ``<out>/train``."""
    from clinforge.core.paths import samples_dir
    from clinforge.train.pipeline import run_recipe_file

    recipe_file = samples_dir() / ("train_real.yaml" if ctx["data"] == "real" else "train.yaml")
    prepared = str(ctx["prepared"].resolve())
    overrides = [f"stages.{i}.data.sources.0.prepared={prepared}" for i in range(2)]
    overrides.append(f"stages.1.data.eval_sources.0.prepared={prepared}")
    out = ctx["out"] / "train"
    summary = run_recipe_file(recipe_file, out=str(out), overrides=overrides)
    ctx["base_model"] = out / "base"
    ctx["model"] = out / "model"
    stages = summary.get("stages", {})
    return {"model": str(ctx["model"]), "stages": stages if isinstance(stages, dict | list) else str(stages)}


def _benchmark_tasks(ctx: dict[str, Any]) -> list[str]:
    """The tasks the demo evaluates: the synthetic benchmark MCQs, or MedQA + PubMedQA with ``--data real``."""
    if ctx["data"] == "real":
        return ["medqa", "pubmedqa"]
    import yaml

    from clinforge.core.paths import samples_dir
    from clinforge.eval.tasks.yaml_tasks import task_from_dict

    spec = yaml.safe_load((samples_dir() / "benchmark_task.yaml").read_text(encoding="utf-8"))
    spec["path"] = str(samples_dir() / spec["path"])
    task = task_from_dict(spec, file=str(samples_dir() / "benchmark_task.yaml"))
    from clinforge.eval.tasks.base import TASKS

    TASKS.register(task.name, task, override=True)
    return [task.name]


def step_evaluate(ctx: dict[str, Any]) -> dict[str, Any]:
    """Step 3: evaluate the base and the trained model (log-likelihood MCQ) on the held-out questions."""
    from clinforge.eval.eval_runner import EvalConfig, evaluate

    tasks = _benchmark_tasks(ctx)
    limit = 50 if ctx["data"] == "real" else None
    result: dict[str, Any] = {}
    for label, model in (("base", ctx["base_model"]), ("trained", ctx["model"])):
        out = ctx["out"] / "eval" / label
        summary = evaluate(EvalConfig(model=f"hf:{model}", tasks=tasks, out=str(out), limit=limit, seed=0))
        result[label] = {t: {k: summary["tasks"][t][k] for k in ("acc", "acc_ci", "n") if k in summary["tasks"][t]}
                         for t in tasks}
    result["note"] = ("accuracy = share of questions whose gold option has the highest log-likelihood "
                      "(lm-evaluation-harness acc); CI = seeded percentile bootstrap; the tiny model starts random, "
                      "so near-chance accuracy is expected")
    return result


def step_compare(ctx: dict[str, Any]) -> dict[str, Any]:
    """Step 4: one report comparing base and trained (``<out>/compare/report.html``): CIs, paired tests, answer
    distributions and collapse warnings, chance level."""
    from rich.console import Console
    from rich.markup import escape

    from clinforge.eval.compare_runs import compare_runs, console_lines

    out = ctx["out"] / "compare"
    summary = compare_runs([ctx["out"] / "eval" / "base", ctx["out"] / "eval" / "trained"], out,
                           labels=["base", "trained"])
    console = Console()
    for line in console_lines(summary):
        console.print(escape(line), highlight=False, soft_wrap=True)
    console.print(f"comparison report: {out / 'report.html'}")
    return {"report": str(out / "report.html"), "tasks": summary["tasks"], "warnings": summary["warnings"]}


# (name, function) in order; each function takes the shared context and returns its summary.
STEPS: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("prepare", step_prepare),
    ("train", step_train),
    ("evaluate", step_evaluate),
    ("compare", step_compare),
]


def run_demo(out: Path, *, data: str = "samples", overwrite: bool = False) -> dict[str, Any]:
    """Run every demo step into ``out``; refuses an existing non-empty ``out`` unless ``overwrite``.

    Example:
        >>> import tempfile, pathlib
        >>> summary = run_demo(pathlib.Path(tempfile.mkdtemp()) / "demo")  # doctest: +SKIP
    """
    from rich.console import Console

    from clinforge.core.errors import ConfigError, OutputExistsError
    from clinforge.core.run_records import RunRecord, prepare_output_dir

    if data not in DATA_CHOICES:
        raise ConfigError(f"unknown --data {data!r}; valid: {', '.join(DATA_CHOICES)}")
    recipe_file = _recipe_path(data)
    try:
        out = prepare_output_dir(out, overwrite=overwrite, replace_unfinished=True)
    except OutputExistsError:  # the core message also offers --resume, which the demo does not have
        raise OutputExistsError(f"{out} exists and is not empty; pass --overwrite to replace it") from None
    run = RunRecord(out, command="demo", config={"data": data, "steps": [n for n, _ in STEPS]},
                    inputs=[recipe_file], seed=0)
    ctx: dict[str, Any] = {"out": out, "data": data}
    summary: dict[str, Any] = {}
    console = Console()
    try:
        for i, (name, fn) in enumerate(STEPS, start=1):
            console.rule(f"step {i}/{len(STEPS)}: {name}")
            summary[name] = fn(ctx)
    except BaseException as exc:
        run.fail(exc)
        if isinstance(exc, KeyboardInterrupt):
            from clinforge.core.interrupts import note_interrupted, rerun_command

            note_interrupted(f"the demo's steps so far in {out} (the run record says interrupted)",
                             rerun_command(drop=("--overwrite",)))
        raise
    run.finish(summary)
    console.print(f"demo finished: {out}")
    return summary


def command(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory of the demo."),
    data: str = typer.Option("samples", "--data",
                             help="samples: the synthetic data shipped with clinforge; real: the public datasets "
                                  "under $CLINFORGE_DATA (default ../shared/data)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing demo run directory."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Run the main job end to end on embedded defaults: prepare the sample data (de-identify, de-duplicate,
    filter, decontaminate, split by patient, chat-format), train a tiny model on it (CPT then LoRA SFT), and
    evaluate the base and trained model on held-out questions with confidence intervals."""
    run_demo(out, data=data, overwrite=overwrite)
