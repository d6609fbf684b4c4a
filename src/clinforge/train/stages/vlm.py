"""Vision-language stages: ``vlm_align`` (encoder and LLM frozen, the connector learns to map visual features into
the LLM's embedding space on image-text pairs) and ``vlm_sft`` (connector plus LoRA or full fine-tuning of the LLM,
optionally the vision encoder too), trained with ``transformers.Trainer`` like the text stages, so exact resume
after a kill, DDP under torchrun, TensorBoard / MLflow tracking and the model card come the same way.

Output of a vlm stage: ``model/`` holds the full model (LoRA merged) and its processor, the folder the next stage
and ``OUT/model`` start from; with LoRA, ``adapter/`` holds the peft adapter with the connector (and an unfrozen
encoder) saved fully beside it (``modules_to_save``), checked after saving by reading the files back;
``loss_tokens.jsonl`` shows the decoded loss tokens of the first examples; ``trainable_parameters.json`` the table
of trainable parameters per component (also in ``stage.json`` and ``run.json``).

Example recipe (``recipes/examples/tiny-vlm-mlp.yaml``)::

    stages:
      - {name: align, type: vlm_align, data: {sources: [{reader: vqa_rad, path: ...}]}, train: {max_steps: 8}}
      - {name: sft, type: vlm_sft, method: {type: lora, r: 8}, options: {unfreeze_vision: false}, ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from clinforge.core.config import StrictModel
from clinforge.core.errors import ConfigError, DataError
from clinforge.train.stages import STAGES
from clinforge.train.stages.base import Stage, StageResult


class VlmAlignOptions(StrictModel):
    """``options:`` of a vlm_align stage. ``loss_token_examples``: how many examples ``loss_tokens.jsonl`` shows;
    ``question_template``: the user turn of a VQA record (``{question}`` is replaced), e.g. the evaluation prompt
    ``"{question}\nAnswer with a single word or phrase."`` so the model trains on the format it is scored on;
    ``vision_cache``: encode each distinct image once while the vision encoder is frozen and deterministic
    (``clinforge.models.vlm.vision_cache``; exact, off by itself when the encoder trains), bounded by
    ``vision_cache_mb`` megabytes."""

    loss_token_examples: int = Field(default=5, ge=0)
    question_template: str = "{question}"
    vision_cache: bool = True
    vision_cache_mb: int = Field(default=1024, ge=1)

    @field_validator("question_template")
    @classmethod
    def _has_question(cls, v: str) -> str:
        if "{question}" not in v:
            raise ValueError("must contain {question}")
        v.format(question="")  # other braces are a format error now, not at the first record
        return v


class VlmSftOptions(VlmAlignOptions):
    """``options:`` of a vlm_sft stage: ``train_connector`` (default true), ``unfreeze_vision`` (train the vision
    encoder fully), ``vision_lora`` (LoRA on the vision encoder's linear layers as well; never by default)."""

    train_connector: bool = True
    unfreeze_vision: bool = False
    vision_lora: bool = False


class InputCounter:
    """Counts what a model is fed in training forward passes (a forward pre-hook, so a collator's prefetched batch
    is not counted): images, input positions (padding included) and loss tokens (labels kept by the one-step
    shift that are not -100).

    Example:
        >>> import torch
        >>> class Model(torch.nn.Module):
        ...     def forward(self, **inputs):
        ...         return None
        >>> m = Model()
        >>> with InputCounter(m) as seen:
        ...     _ = m(input_ids=torch.zeros(2, 5), labels=torch.tensor([[-100, 1, 2, -100, -100]] * 2))
        >>> seen.positions, seen.loss_tokens, seen.images
        (10, 4, 0)
    """

    def __init__(self, model):
        self.model = model
        self.images = self.positions = self.loss_tokens = 0
        self.hook = None

    def _seen(self, module, fargs, fkwargs) -> None:
        if not module.training:
            return
        pv, ids, labels = fkwargs.get("pixel_values"), fkwargs.get("input_ids"), fkwargs.get("labels")
        self.images += int(pv.shape[0]) if pv is not None else 0
        self.positions += int(ids.numel()) if ids is not None else 0
        self.loss_tokens += int((labels[:, 1:] != -100).sum()) if labels is not None else 0

    def __enter__(self) -> InputCounter:
        self.hook = self.model.register_forward_pre_hook(self._seen, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self.hook.remove()


class VlmStage(Stage):
    """Shared body of vlm_align and vlm_sft: image-text data, per-component method, Trainer, save."""

    default_format: ClassVar[str] = "chat"
    supports_dp: ClassVar[bool] = False

    @classmethod
    def check_spec(cls, recipe, index, options) -> None:
        super().check_spec(recipe, index, options)
        spec = recipe.stages[index]
        if spec.method.type == "qlora":
            raise ConfigError("vlm stages take method full or lora (QLoRA of composed vision-language models is not "
                              "supported)", key="method.type")
        if spec.data.format not in ("auto", "chat"):
            raise ConfigError(f"vlm stages train on image-text chat examples; data.format {spec.data.format!r} "
                              "does not apply (use auto)", key="data.format")

    def component_switches(self) -> dict[str, bool]:
        """Which components train (``apply_vlm_method`` keyword arguments)."""
        raise NotImplementedError

    def run(self) -> StageResult:
        from transformers import Trainer, TrainingArguments
        from transformers.trainer_callback import PrinterCallback
        from transformers.trainer_callback import ProgressCallback as HFProgress

        from clinforge.core.io import atomic_write_json
        from clinforge.models.vlm import check_device_memory, vlm_family
        from clinforge.train.data import check_eval_kept
        from clinforge.train.hf_trainer import barrier, is_main_process
        from clinforge.train.stages.lm import tok_pad
        from clinforge.train.vlm_data import (
            PixelCache,
            VlmDataset,
            describe_loss_tokens,
            image_tokens_of,
            load_vlm_stage_data,
            tokenize_vlm_chat,
            write_loss_tokens,
        )
        from clinforge.train.vlm_methods import apply_vlm_method, load_vlm_for_training, trainable_table
        from clinforge.train.vlm_packing import vlm_collator

        t = self.spec.train
        model, processor = load_vlm_for_training(self.ctx.model_path, precision=self.ctx.recipe.precision)
        image = image_tokens_of(processor)
        tok = getattr(processor, "tokenizer", processor)
        data = load_vlm_stage_data(self.spec.data, image_token=image.token, seed=self.ctx.seed,
                                   question_template=self.options.question_template)
        dropped_examples: list[tuple[dict[str, Any], str]] = []
        rows, dropped = tokenize_vlm_chat(data.train, tok, image, t.max_length, dropped_examples)
        eval_rows, eval_dropped = (tokenize_vlm_chat(data.eval, tok, image, t.max_length, dropped_examples)
                                   if data.eval else ([], {}))
        # by reason, each card for its own source's examples (train and, with eval_fraction, eval)
        for card, counts in zip(data.cards, data.count_dropped_per_card(dropped_examples), strict=True):
            card["dropped"] = dict(counts)
        if not rows:
            raise DataError(f"stage {self.spec.name}: no image-text example fits max_length {t.max_length} "
                            f"(dropped: {dict(dropped)})")
        check_eval_kept(self.spec.name, len(data.eval), len(eval_rows), t.max_length, what="image-text examples",
                        origin=data.eval_origin())
        if is_main_process():
            write_loss_tokens(self.ctx.out_dir / "loss_tokens.jsonl",
                              describe_loss_tokens(rows, tok, image, self.options.loss_token_examples))
        model = apply_vlm_method(model, self.spec.method, gradient_checkpointing=t.gradient_checkpointing,
                                 **self.component_switches())
        table = trainable_table(model)
        if not table["all"]["trainable"]:
            raise ConfigError(f"stage {self.spec.name}: nothing to train (every component is frozen)",
                              key=f"stages.{self.ctx.index}.options")
        # what this stage trains must fit: the estimate and the way out (LoRA, freezing) before the first step
        check_device_memory(model, trainable=table["all"]["trainable"])
        if is_main_process():
            atomic_write_json(self.ctx.out_dir / "trainable_parameters.json", table)
        collator = vlm_collator(model, image.mode, packing=t.packing, max_row_tokens=t.max_length,
                                pad_token_id=tok_pad(tok))
        pixels = PixelCache(processor) if image.mode != "none" else None  # prompt augmentation: text only
        args = TrainingArguments(**self.training_kwargs())
        # processing_class: the tokenizer, with which Trainer counts the non-padding tokens it was fed
        trainer = Trainer(model=model, args=args, train_dataset=VlmDataset(rows, pixels),
                          eval_dataset=VlmDataset(eval_rows, pixels) if eval_rows else None, data_collator=collator,
                          processing_class=tok, callbacks=self.callbacks())
        trainer.remove_callback(HFProgress)
        trainer.remove_callback(PrinterCallback)
        with InputCounter(model) as seen, self._vision_cache(model, image.mode) as cache:
            metrics = self.train_with_resume(trainer)
        if cache is not None:  # derived state, rebuilt by a resumed run: counted here, never saved
            metrics["vision_cache"] = cache.stats()
        metrics.update(train_examples=len(rows), eval_examples=len(eval_rows), images_seen=seen.images,
                       positions_seen=seen.positions, loss_tokens_seen=seen.loss_tokens,
                       padding_tokens=collator.padding, real_tokens=collator.tokens,
                       visual_tokens_per_image=image.per_image, dropped=dict(dropped))
        if eval_rows:
            metrics["final_eval_loss"] = trainer.evaluate()["eval_loss"]
        result = self._save(model, processor, metrics=metrics, data=data,
                            hyperparameters={"collator": type(collator).__name__, "trainable_parameters": table,
                                             "alignment_method": vlm_family(model)})
        barrier()
        return result

    def _vision_cache(self, model, image_mode: str):
        """The vision feature cache for this stage's training (``options.vision_cache``), or a null context."""
        import contextlib

        from clinforge.models.vlm import vlm_components
        from clinforge.models.vlm.vision_cache import vision_feature_cache

        if not self.options.vision_cache or image_mode == "none":
            return contextlib.nullcontext()
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        return vision_feature_cache(vlm_components(model)["vision"], model=base,
                                    max_bytes=self.options.vision_cache_mb << 20)

    def _save(self, model, processor, *, metrics: dict[str, Any], data, hyperparameters: dict[str, Any]
              ) -> StageResult:
        """Write ``model/`` (merged), ``adapter/`` (LoRA with modules_to_save, verified) and ``stage.json``."""
        from clinforge.core.io import atomic_write_json
        from clinforge.train.export import is_peft, is_sharded
        from clinforge.train.hf_trainer import barrier, is_main_process

        if is_sharded(model):
            raise ConfigError("vlm stages save from one process or DDP; FSDP-sharded vision-language models are "
                              "not supported yet")
        ctx = self.ctx
        out = ctx.out_dir / "model"
        hp = {"method": self.spec.method.model_dump(), "train": self.spec.train.model_dump(),
              "options": self.options.model_dump(), "seed": ctx.seed, "precision": ctx.recipe.precision,
              **hyperparameters}
        peft = is_peft(model)
        if peft:
            hp["adapter_dir"] = str(ctx.out_dir / "adapter")
        if is_main_process():
            if peft:
                save_adapter_verified(model, ctx.out_dir / "adapter", processor)
            save_vlm_folder(model, processor, out)  # merges the adapter in place: the stage ends here
        barrier()
        result = StageResult(name=self.spec.name, type=self.spec.type, model_dir=out, adapter=False,
                             base_model=ctx.model_path, metrics=metrics, data_cards=list(data.cards),
                             hyperparameters=hp)
        if is_main_process():
            atomic_write_json(ctx.out_dir / "stage.json", result.as_dict())
        return result


OUTSIDE_PEFT_FILE = "trained_outside_adapter.safetensors"


def save_adapter_verified(model, out: Path, processor=None) -> Path:
    """Save a peft model's adapter to ``out`` (atomically) and prove that the fully trained modules are in it with
    the trained values: ``modules_to_save`` (the connector, an unfrozen encoder) in the adapter file, and trained
    parameters peft does not save (a gated cross-attention connector, trained in place) in
    ``trained_outside_adapter.safetensors`` beside it. Both files are read back and compared tensor by tensor.

    Example:
        >>> # save_adapter_verified(peft_model, Path("OUT/stages/sft/adapter"))
    """
    import torch
    from safetensors.torch import load_file, save_file

    from clinforge.core.errors import ClinforgeError
    from clinforge.core.io import atomic_path

    outside = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
               if p.requires_grad and "lora_" not in n and ".modules_to_save." not in n}
    with atomic_path(out, overwrite=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if outside:
            save_file(outside, str(tmp / OUTSIDE_PEFT_FILE))
        if processor is not None:
            processor.save_pretrained(tmp)
    saved = load_file(str(out / "adapter_model.safetensors"))
    trained = {n: p for n, p in model.named_parameters() if ".modules_to_save." in n}
    missing = []
    for name, p in trained.items():
        # peft stores "base_model.model.X.modules_to_save.default.Y" as "base_model.model.X.Y"
        key = name.replace(".modules_to_save.default.", ".")
        if key not in saved or not torch.equal(saved[key].to(p.dtype), p.detach().cpu()):
            missing.append(key)
    if outside:
        back = load_file(str(out / OUTSIDE_PEFT_FILE))
        missing += [n for n, t in outside.items() if n not in back or not torch.equal(back[n], t)]
    wanted = model.peft_config[model.active_adapter].modules_to_save or []
    if missing or (wanted and not trained):
        raise ClinforgeError(f"the saved adapter in {out} lacks trained weights ({wanted or 'connector'}): "
                             f"{missing[:3] or 'no modules_to_save parameters'}")
    return out


def save_vlm_folder(model, processor, out: Path) -> Path:
    """Save the full model and its processor to ``out`` with the KV cache back on, through
    ``clinforge.models.vlm.save_vlm`` (atomic, verified by reload-and-compare). Returns ``out``.

    A peft model is merged IN PLACE (call this last: the adapter is gone afterwards). Not on a deep copy: a copy of
    a model whose connector hooks into the LLM (gated cross-attention) would keep calling the original's hooks.

    Example:
        >>> # save_adapter_verified(model, out / "adapter"); save_vlm_folder(model, processor, out / "model")
    """
    from clinforge.models.vlm import save_vlm
    from clinforge.train.export import is_peft

    full = model.merge_and_unload() if is_peft(model) else model
    for cfg in (full.config, getattr(full.config, "text_config", None)):
        if cfg is not None:
            cfg.use_cache = True  # training turned the cache off; generation wants it
    save_vlm(full, processor, out, overwrite=True)
    return out


class VlmAlignStage(VlmStage):
    """Modality alignment: only the connector trains; the vision encoder and the LLM stay frozen."""

    type = "vlm_align"
    Options = VlmAlignOptions

    @classmethod
    def check_spec(cls, recipe, index, options) -> None:
        super().check_spec(recipe, index, options)
        if recipe.stages[index].method.type != "full":
            raise ConfigError("vlm_align trains the connector only, fully: use method full (LoRA belongs to "
                              "vlm_sft)", key="method.type")

    def component_switches(self) -> dict[str, bool]:
        return {"train_connector": True, "train_llm": False, "train_vision": False}


class VlmSftStage(VlmStage):
    """Visual instruction tuning: connector + LLM (LoRA or full), the vision encoder only when asked."""

    type = "vlm_sft"
    Options = VlmSftOptions

    def component_switches(self) -> dict[str, bool]:
        o = self.options
        return {"train_connector": o.train_connector, "train_llm": True, "train_vision": o.unfreeze_vision,
                "vision_lora": o.vision_lora}


STAGES.register("vlm_align", VlmAlignStage)
STAGES.register("vlm_sft", VlmSftStage)
