"""Saving what training produced: a stage's model folder (adapters merged on request), the final ``OUT/model``
folder with chat template, resolved recipe and a model card.

Example:
    >>> # result = save_stage_output(stage, model, tokenizer, metrics={...})
    >>> # finalize_model(run_dir, recipe, results)   -> OUT/model loads with AutoModelForCausalLM
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from clinforge.core.io import atomic_path, atomic_write_json, atomic_write_text
from clinforge.train.recipe import Recipe
from clinforge.train.stages.base import StageResult

CLINICIAN_WARNING = ("Outputs of this model are machine-generated and can be wrong, incomplete or unsafe. "
                     "Every output used in care must be reviewed by a qualified clinician.")


def is_peft(model) -> bool:
    """True for a peft-wrapped model."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def save_model_folder(model, tokenizer, out: Path, *, merge: bool) -> bool:
    """Save ``model`` + ``tokenizer`` into ``out`` atomically; merge adapters when ``merge``. Returns True when
    the folder holds an (unmerged) adapter. ``model`` must hold its full weights in this process (see
    :func:`save_trained` for sharded models)."""
    adapter = is_peft(model) and not merge
    base_config = model.get_base_model().config if is_peft(model) else model.config
    base_config.use_cache = True  # training turned the KV cache off; inference wants it back
    with atomic_path(out) as tmp:
        if is_peft(model) and merge:
            import copy

            merged = copy.deepcopy(model).merge_and_unload()
            merged.save_pretrained(tmp, safe_serialization=True)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return adapter


def is_sharded(model) -> bool:
    """True when ``model``'s parameters are split across ranks by FSDP (FSDP2's DTensors or FSDP1 wrappers)."""
    from torch.distributed.tensor import DTensor

    if any(isinstance(p, DTensor) for p in model.parameters()):
        return True
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:
        return False
    return any(isinstance(m, FullyShardedDataParallel) for m in model.modules())


def gather_full_state_dict(model, trainer=None) -> dict[str, Any] | None:
    """The full (unsharded) state dict of a model trained under FSDP or DeepSpeed ZeRO, or None when ``model``
    already holds its full weights in every process (one process, DDP, ZeRO-1/2).

    A COLLECTIVE: every rank must call it (each contributes its shard); rank 0 receives the tensors, on CPU.
    DeepSpeed goes through accelerate's ``get_state_dict`` on the engine (ZeRO-3 gathers the 16-bit weights, which
    needs ``zero3_save_16bit_model: true`` / ``stage3_gather_16bit_weights_on_model_save``); FSDP (1 or 2) through
    ``torch.distributed.checkpoint``'s full-state-dict API, which is also what accelerate uses for FSDP2.

    Example:
        >>> import torch
        >>> gather_full_state_dict(torch.nn.Linear(2, 2)) is None   # not sharded: save as usual
        True
    """
    from clinforge.core.errors import ClinforgeError

    if trainer is not None and getattr(trainer, "is_deepspeed_enabled", False):
        try:
            return trainer.accelerator.get_state_dict(trainer.deepspeed)
        except ValueError as exc:  # ZeRO-3 without 16-bit gathering: the module holds empty placeholders
            raise ClinforgeError("DeepSpeed ZeRO-3 cannot gather the full weights for saving: set "
                                 "zero3_save_16bit_model: true in the accelerate config (deepspeed: "
                                 f"stage3_gather_16bit_weights_on_model_save) ({exc})") from None
    wrapped = trainer.model if trainer is not None and getattr(trainer, "is_fsdp_enabled", False) else model
    if not is_sharded(wrapped):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


@contextlib.contextmanager
def single_process_construction() -> Iterator[None]:
    """Build models as plain single-process modules even inside a DeepSpeed ZeRO-3 run.

    While the Trainer's ZeRO-3 config is registered, transformers builds every model (``from_pretrained``,
    ``_from_config``) inside ``deepspeed.zero.Init``, a collective that partitions the new weights across ranks.
    Rank 0 building its save copy or loading the adapter to merge would enter it alone while the other ranks wait
    at the save barrier: a deadlock (seen with ``recipes/accelerate/deepspeed_zero3.yaml`` on two CPU ranks).

    Example:
        >>> with single_process_construction():
        ...     pass   # AutoModelForCausalLM.from_pretrained(...) here holds full tensors on this rank
    """
    try:
        from transformers.integrations import deepspeed as hf_deepspeed
    except ImportError:  # no deepspeed integration in this transformers: nothing to suspend
        yield
        return
    # transformers keeps the registered config behind a module-level weak reference and offers set/unset only
    ref = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)
    config = ref() if ref is not None else None
    if config is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)


def unsharded_copy(model, state_dict: dict[str, Any]):
    """A plain, single-process copy of ``model`` (a transformers model or a peft model around one) holding
    ``state_dict``: the object :func:`save_model_folder` saves and merges when the trained one is sharded.

    Example:
        >>> # full = gather_full_state_dict(model, trainer); copy = unsharded_copy(model, full)  (rank 0)
    """
    import copy

    from transformers import PreTrainedModel

    from clinforge.core.errors import ClinforgeError

    peft = is_peft(model)
    base = model.get_base_model() if peft else model
    # FSDP2 swaps the class for a generated ``FSDP<Name>`` subclass; build the original transformers class
    cls = next(c for c in type(base).__mro__ if issubclass(c, PreTrainedModel) and not c.__name__.startswith("FSDP"))
    dtype = next((t.dtype for t in state_dict.values() if t.is_floating_point()), None)
    with single_process_construction():
        fresh = cls._from_config(copy.deepcopy(base.config), dtype=dtype)
    if getattr(base, "generation_config", None) is not None:
        fresh.generation_config = copy.deepcopy(base.generation_config)
    if peft:
        from peft import get_peft_model

        fresh = get_peft_model(fresh, model.peft_config[model.active_adapter])
    result = fresh.load_state_dict(state_dict, strict=False)
    # a tied output layer may be stored once (as the embedding); anything else missing means a mismatch
    tied = getattr(base.config, "tie_word_embeddings", False)
    missing = [k for k in result.missing_keys if not (tied and k.endswith("lm_head.weight"))]
    if missing or result.unexpected_keys:
        raise ClinforgeError(f"the gathered state dict does not match the model: missing {missing[:5]}, "
                             f"unexpected {result.unexpected_keys[:5]}")
    return fresh


def save_trained(model, tokenizer, out: Path, *, merge: bool, trainer=None) -> bool:
    """Save a trained model from any launch: one process, DDP, FSDP or DeepSpeed. Call it on EVERY rank: the
    full state is gathered from all ranks (FSDP / ZeRO-3 shards), and rank 0 alone writes ``out`` atomically.
    Returns True when the folder holds an unmerged adapter.

    Example:
        >>> # adapter = save_trained(model, tok, Path("OUT/stages/sft/model"), merge=False, trainer=trainer)
    """
    from clinforge.train.hf_trainer import barrier, is_main_process

    full = gather_full_state_dict(model, trainer)
    adapter = is_peft(model) and not merge
    if is_main_process():
        save_model_folder(unsharded_copy(model, full) if full is not None else model, tokenizer, out, merge=merge)
    barrier()
    return adapter


def save_stage_output(stage, model, tokenizer, *, metrics: dict[str, Any], data=None, privacy: dict | None = None,
                      hyperparameters: dict | None = None) -> StageResult:
    """Write ``OUT/stages/NAME/model`` and ``stage.json`` and return the StageResult. Every rank calls it (a
    sharded model's weights are gathered from all of them); rank 0 writes."""
    from clinforge.train.hf_trainer import barrier, is_main_process

    ctx = stage.ctx
    out = ctx.out_dir / "model"
    # a method: lora stage keeps its adapter unless merge is asked for; the next stage continues from it
    merge = stage.spec.method.merge
    adapter = is_peft(model) and not merge
    hp = {"method": stage.spec.method.model_dump(), "train": stage.spec.train.model_dump(),
          "options": stage.options.model_dump(), "seed": ctx.seed, "precision": ctx.recipe.precision,
          **(hyperparameters or {})}
    if stage.spec.dp is not None:
        hp["dp"] = stage.spec.dp.model_dump()
    result = StageResult(name=stage.spec.name, type=stage.spec.type, model_dir=out, adapter=adapter,
                         base_model=ctx.model_path, metrics=metrics, data_cards=list(data.cards) if data else [],
                         privacy=privacy, hyperparameters=hp)
    save_trained(model, tokenizer, out, merge=merge, trainer=getattr(stage, "trainer", None))
    if is_main_process():
        atomic_write_json(ctx.out_dir / "stage.json", result.as_dict())
    barrier()
    return result


def load_stage_result(out_dir: Path) -> StageResult | None:
    """The result of a finished stage (``stage.json`` + model folder present), else None."""

    meta = out_dir / "stage.json"
    if not meta.is_file() or not (out_dir / "model").is_dir():
        return None
    d = json.loads(meta.read_text(encoding="utf-8"))
    return StageResult(name=d["name"], type=d["type"], model_dir=Path(d["model_dir"]), adapter=d["adapter"],
                       base_model=d.get("base_model"), metrics=d.get("metrics", {}),
                       data_cards=d.get("data_cards", []), privacy=d.get("privacy"),
                       hyperparameters=d.get("hyperparameters", {}))


def model_card(recipe: Recipe, results: list[StageResult], *, base_model: str, merged: bool) -> str:
    """A markdown model card: base model, stages with hyper-parameters and data, privacy, intended use, warning."""
    lines = ["---", "library_name: transformers", "tags: [clinforge, medical]", "---", "",
             "# Model trained with clinforge", "", f"**Base model:** `{base_model}`", "",
             f"**Precision:** {recipe.precision}  **Seed:** {recipe.seed}  **Deterministic:** {recipe.deterministic}",
             f"**Adapters:** {'merged into the weights' if merged else 'kept as a peft adapter'}", "",
             "## Stages", ""]
    for r in results:
        hp = r.hyperparameters
        m, t = hp.get("method", {}), hp.get("train", {})
        method = m.get("type", "?") + (f" (r={m.get('r')}, alpha={m.get('alpha')}, targets={m.get('target_modules')})"
                                       if m.get("type") in ("lora", "qlora") else "")
        lines += [f"### {r.name} ({r.type})", "", f"- method: {method}",
                  f"- lr {t.get('lr')}, epochs {t.get('epochs')}, max_steps {t.get('max_steps')}, batch size "
                  f"{t.get('batch_size')} x grad accumulation {t.get('grad_accum')}, max_length {t.get('max_length')}, "
                  f"packing {t.get('packing')}, scheduler {t.get('scheduler')}, warmup {t.get('warmup_steps')}",
                  f"- steps: {r.metrics.get('global_step')}, final train loss: {r.metrics.get('final_train_loss')}"]
        if hp.get("alignment_method"):
            lines.append(f"- alignment method: **{hp['alignment_method']}**")
        if hp.get("options"):
            lines.append(f"- options: {hp['options']}")
        for c in r.data_cards:
            skipped = sum((c.get("reader_skipped") or {}).values()) + sum((c.get("unconvertible") or {}).values())
            lines.append(f"- data ({c.get('role', 'train')}): reader `{c.get('reader')}` on `{_source_name(c)}`"
                         f" -> {c.get('examples')} examples ({c.get('rows')} rows read, skipped {skipped})")
            prep = c.get("prepared")
            if prep:
                phi = sum((prep.get("phi_by_type") or {}).values()) if prep.get("phi_by_type") is not None else None
                dups = prep.get("duplicates_removed")
                lines.append(f"  - prepared by `clinforge data prepare` (recipe `{prep.get('recipe')}`): steps "
                             f"{', '.join(str(s) for s in prep.get('steps') or []) or 'none'}; records "
                             f"{prep.get('records_in')} -> {prep.get('records_out')}"
                             + (f"; PHI spans de-identified: {phi}" if phi is not None else "")
                             + (f"; duplicates removed: {dups}" if dups else "")
                             + (f"; contamination checked against: {', '.join(prep['contamination'])}"
                                if prep.get("contamination") else ""))
        if r.privacy:
            p = r.privacy
            lines.append(f"- **differential privacy**: DP-SGD, epsilon = {p.get('epsilon')} at delta = {p.get('delta')}"
                         f" (privacy unit: {p.get('unit')}, noise multiplier {p.get('noise_multiplier')}, "
                         f"clipping norm {p.get('max_grad_norm')})")
        lines.append("")
    lines += ["## Intended use", "", recipe.intended_use, "", "## Warning", "", f"**{CLINICIAN_WARNING}**", "",
              "The full data cards are in `data_cards.json`, the resolved recipe in `clinforge_recipe.yaml`; the run record (inputs with sha256, package "
              "versions, git revision) is in the run folder's `run.json`.", ""]
    return "\n".join(lines)


def _source_name(card: dict[str, Any]) -> str:
    """A short, unambiguous name of a source: the file or folder, or the prepared run folder (not ``dataset``)."""
    path = Path(str(card.get("path")))
    return path.parent.name if path.name == "dataset" else path.name


def finalize_model(run_dir: Path, recipe: Recipe, results: list[StageResult], *, base_model: str) -> Path:
    """Write ``OUT/model``: the last stage's model (adapters merged when ``recipe.merge``), model card, recipe."""
    last = results[-1]
    final = run_dir / "model"
    merged = True
    with atomic_path(final) as tmp:
        if last.adapter and recipe.merge:
            from clinforge.models.load import load_llm

            with single_process_construction():  # rank 0 alone: no ZeRO-3 partitioning collective
                model, tok = load_llm(last.model_dir, recipe.precision)
            model = model.merge_and_unload()
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
        else:
            shutil.copytree(last.model_dir, tmp)
            merged = not last.adapter
        (tmp / "README.md").write_text(model_card(recipe, results, base_model=base_model, merged=merged),
                                       encoding="utf-8")
        # the full data cards (reader counts, skips by reason, prepared-data provenance) beside the model card
        (tmp / "data_cards.json").write_text(json.dumps({r.name: r.data_cards for r in results}, indent=2,
                                                        default=str), encoding="utf-8")
        (tmp / "clinforge_recipe.yaml").write_text(
            yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True), encoding="utf-8")
    atomic_write_text(run_dir / "recipe.resolved.yaml",
                      yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    return final
