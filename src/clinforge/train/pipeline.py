"""Run a recipe's stages in order: each starts from the previous stage's model, writes ``OUT/stages/NAME/``, and
the last one becomes ``OUT/model``. Under ``torchrun`` / ``accelerate launch`` every rank runs the pipeline; rank 0
alone writes run records and model folders.

Example:
    >>> # summary = run_recipe_file("recipes/examples/tiny-sft-lora.yaml", out="runs/sft")
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.train.recipe import Recipe, load_recipe
from clinforge.train.stages import AFTER_STAGE_HOOKS, STAGES, StageContext, StageResult


def _init_distributed() -> None:
    """Start the process group early under torchrun (gloo on CPU) so ranks can wait for rank 0's folders."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def resolve_base_model(recipe: Recipe, run_dir: Path) -> str:
    """The model the first stage starts from; ``tiny:ARCH`` builds a tiny model in ``OUT/base`` (rank 0)."""
    from clinforge.train.hf_trainer import barrier, is_main_process

    if isinstance(recipe.model, dict):  # model: {vision: ..., connector: ..., llm: ...} composes a VLM in OUT/base
        return compose_base_vlm(recipe, run_dir)
    if not recipe.model.startswith("tiny:"):
        from clinforge.models.offline_models import resolve_model_ref

        return resolve_model_ref(recipe.model)  # model: smollm2-135m-instruct -> its fetched folder
    arch = recipe.model.split(":", 1)[1]
    out = run_dir / "base"
    if is_main_process() and not (out / "config.json").is_file():
        from clinforge.models.tiny import build_tiny

        opts = {"seed": recipe.seed, **recipe.tiny_options}
        build_tiny(arch=arch, out_dir=out, **opts)
    barrier()
    return str(out)


def compose_base_vlm(recipe: Recipe, run_dir: Path) -> str:
    """Build the vision-language model a recipe's ``model:`` mapping describes into ``OUT/base`` (rank 0, once)."""
    from clinforge.train.hf_trainer import barrier, is_main_process

    out = run_dir / "base"
    if is_main_process() and not (out / "config.json").is_file():
        from clinforge.models.vlm import build_vlm, save_vlm

        model, processor = build_vlm(dict(recipe.model), seed=recipe.seed)
        save_vlm(model, processor, out)
    barrier()
    return str(out)


def check_recipe(recipe: Recipe, *, recipe_file: str | None = None, lines: dict | None = None) -> None:
    """Validate every stage before any of them trains: stage type, options, ``dp:``, data readers and paths,
    stage references and stage-specific rules (``Stage.check``). A typo in the last stage fails in seconds, not
    after the first stages trained for minutes. Errors name the recipe file, line and key.

    Example:
        >>> # check_recipe(*load_recipe("recipes/examples/tiny-cpt-ift-dpo.yaml"), recipe_file=...)
    """
    for i, s in enumerate(recipe.stages):
        if s.type not in STAGES:
            raise ConfigError(f"unknown stage type {s.type!r}; valid: {', '.join(STAGES.names())}",
                              file=recipe_file, line=(lines or {}).get(("stages", i, "type")), key=f"stages.{i}.type")
    for i, s in enumerate(recipe.stages):
        STAGES.get(s.type).check(recipe, i, file=recipe_file, lines=lines or {})
    if isinstance(recipe.model, dict):  # a composed vision-language model: its names are checked now, not at build
        from clinforge.models.vlm import parse_vlm_spec

        try:
            parse_vlm_spec(recipe.model, recipe_file)
        except ConfigError as exc:
            key = exc.key or "model"
            parts = tuple(key.split("."))
            line = None
            while parts and line is None:  # the key itself, else its nearest parent present in the file
                line = (lines or {}).get(parts)
                parts = parts[:-1]
            raise ConfigError(exc.message, file=recipe_file, line=line, key=key) from None
        return
    if not recipe.model.startswith("tiny:") and not Path(recipe.model).exists():
        from clinforge.core.errors import ClinforgeError
        from clinforge.models.offline_models import resolve_model_ref

        try:  # a registered offline model that was never fetched fails now, saying which command fetches it
            resolve_model_ref(recipe.model)
        except ClinforgeError as exc:
            raise ConfigError(str(exc), file=recipe_file, line=(lines or {}).get(("model",)), key="model") from None
    if not recipe.model.startswith("tiny:") and Path(recipe.model).exists():
        from clinforge.core.errors import ClinforgeError
        from clinforge.models.load import check_model_folder

        try:  # a local model folder missing a file fails now, naming the file, not when stage 1 loads it
            check_model_folder(recipe.model)
        except ClinforgeError as exc:
            raise ConfigError(str(exc), file=recipe_file, line=(lines or {}).get(("model",)), key="model") from None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): value}


def check_same_recipe(run_dir: Path, recipe: Recipe, *, recipe_file: str | None = None) -> None:
    """Refuse ``--resume`` with a recipe that differs from the one the run started with (other than ``out``):
    finished stages and checkpoints were made under the old settings, so the result would match neither recipe.

    Example:
        >>> # check_same_recipe(Path("runs/sft"), recipe)  -> ConfigError naming e.g. stages.0.train.lr
    """
    import json

    meta = run_dir / "run.json"
    if not meta.is_file():
        return
    before = _flatten(json.loads(meta.read_text(encoding="utf-8")).get("config") or {})
    now = _flatten(recipe.model_dump(mode="json"))
    changed = sorted(k for k in set(before) | set(now) if k != "out" and before.get(k) != now.get(k))
    if changed:
        shown = ", ".join(f"{k} ({before.get(k)!r} -> {now.get(k)!r})" for k in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        raise ConfigError(f"--resume with a different recipe than the run in {run_dir} started with: {shown}{more}. "
                          "Resume with the original recipe, or start a new run (--overwrite or another --out)",
                          file=recipe_file, key=changed[0])


def run_pipeline(recipe: Recipe, out_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
                 recipe_file: str | None = None, lines: dict | None = None,
                 after_stage: list[Callable[[StageContext, StageResult], Any]] | None = None) -> dict[str, Any]:
    """Run every stage of ``recipe`` into ``out_dir``; returns the run summary (also in ``summary.json``).

    ``resume``: finished stages are kept and the interrupted one continues from its newest checkpoint.
    ``after_stage``: callables run after each stage (plus hooks registered with ``register_after_stage``).
    """
    check_recipe(recipe, recipe_file=recipe_file, lines=lines)  # before torch/transformers load: seconds, not ten

    from clinforge.core.run_records import RunRecord, prepare_output_dir
    from clinforge.core.seed import seed_everything
    from clinforge.train.export import finalize_model, load_stage_result
    from clinforge.train.hf_trainer import barrier, is_main_process, world_info

    _init_distributed()
    run_dir = Path(out_dir)
    if resume:
        check_same_recipe(run_dir, recipe, recipe_file=recipe_file)
    if is_main_process():
        # a run that failed or was interrupted before any stage finished or saved a checkpoint holds nothing
        # to resume: the corrected command replaces it instead of asking for --overwrite
        kept = [*run_dir.glob("stages/*/stage.json"), *run_dir.glob("stages/*/checkpoints/checkpoint-*")]
        prepare_output_dir(run_dir, overwrite=overwrite, resume=resume, replace_unfinished=not kept)
    barrier()
    seed_everything(recipe.seed, deterministic=recipe.deterministic)
    record = None
    if is_main_process():
        inputs = [recipe_file] if recipe_file else []
        for s in recipe.stages:
            inputs += [src.path or src.prepared for src in s.data.sources + s.data.eval_sources]
        record = RunRecord(run_dir, command="train", config=recipe.model_dump(mode="json"), inputs=inputs,
                           seed=recipe.seed)
    from clinforge.core.interrupts import rerun_command, resume_note

    try:
        with resume_note(lambda: _saved_progress(recipe, run_dir),
                         resume=rerun_command(add=("--resume",), drop=("--overwrite",))):
            base = resolve_base_model(recipe, run_dir)
            results: list[StageResult] = []
            current = base
            hooks_out: dict[str, Any] = {}
            for i, spec in enumerate(recipe.stages):
                stage_dir = run_dir / "stages" / spec.name
                ctx = StageContext(recipe=recipe, spec=spec, index=i, model_path=current, base_model=base,
                                   out_dir=stage_dir, run_dir=run_dir, resume=resume, recipe_file=recipe_file,
                                   lines=lines or {}, previous=list(results))
                done = load_stage_result(stage_dir) if resume else None
                if done is None:
                    stage_dir.mkdir(parents=True, exist_ok=True)
                    stage = STAGES.get(spec.type)(ctx)
                    # every stage, built-in or a user's, starts from the same RNG state for the same recipe
                    seed_everything(ctx.seed, deterministic=recipe.deterministic)
                    result = stage.run()
                else:
                    result = done
                results.append(result)
                if result.type != "rm":  # a reward model is not a policy: the next stage continues the policy
                    current = str(result.model_dir)
                for hook in list(after_stage or []) + list(AFTER_STAGE_HOOKS):
                    got = hook(ctx, result)
                    if got:
                        hooks_out.setdefault(spec.name, {})[getattr(hook, "__name__", "hook")] = got
            final = None
            if is_main_process():
                final = finalize_model(run_dir, recipe, results, base_model=base)
            barrier()
            rank, world = world_info()
            summary = {
                "model": str(final) if final else str(run_dir / "model"),
                "base_model": f"{recipe.model} ({base})" if isinstance(recipe.model, dict)
                or recipe.model.startswith("tiny:") else recipe.model,
                "world_size": world,
                "stages": [r.as_dict() for r in results],
                "epsilon": {r.name: r.privacy.get("epsilon") for r in results if r.privacy} or None,
                "hooks": hooks_out,
            }
            if record is not None:
                tables = {r.name: r.hyperparameters["trainable_parameters"] for r in results
                          if "trainable_parameters" in r.hyperparameters}
                if tables:  # vision-language stages: trainable parameters per component, in the run record
                    record.meta["trainable_parameters"] = tables
                caches = {r.name: r.metrics["vision_cache"] for r in results if "vision_cache" in r.metrics}
                if caches:  # vision-language stages: images served from the frozen encoder's feature cache
                    record.meta["vision_cache"] = caches
                record.finish(summary)
            return summary
    except BaseException as exc:
        if record is not None:
            record.fail(exc)
        raise


def _saved_progress(recipe: Recipe, run_dir: Path) -> str:
    """What an interrupted run kept: finished stages, and the newest complete checkpoint of the next one."""
    from clinforge.train.export import load_stage_result
    from clinforge.train.hf_trainer import complete_checkpoints

    finished, parts = [], []
    for spec in recipe.stages:
        stage_dir = run_dir / "stages" / spec.name
        if load_stage_result(stage_dir) is not None:
            finished.append(spec.name)
            continue
        found = complete_checkpoints(stage_dir / "checkpoints") if (stage_dir / "checkpoints").is_dir() else []
        parts.append(f"stage {spec.name}: " + (f"checkpoint {found[-1].name} in {found[-1].parent}" if found else
                                                "no checkpoint yet (it restarts from its beginning)"))
        break
    return "; ".join([f"finished stages: {', '.join(finished) or 'none'}", *parts]) + f" (in {run_dir})"


def run_recipe_file(path: str | os.PathLike, *, out: str | None = None, overrides: list[str] | None = None,
                    resume: bool = False, overwrite: bool = False, after_stage=None) -> dict[str, Any]:
    """Load a recipe file (with ``--set`` overrides) and run it; ``out`` overrides the recipe's ``out``."""
    recipe, lines = load_recipe(path, overrides)
    out_dir = out or recipe.out
    if not out_dir:
        raise ConfigError("no output folder: give --out DIR or set out: in the recipe", file=str(path))
    return run_pipeline(recipe, out_dir, resume=resume, overwrite=overwrite, recipe_file=str(path), lines=lines,
                        after_stage=after_stage)
