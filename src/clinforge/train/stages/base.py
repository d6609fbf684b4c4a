"""The stage interface every training stage implements (cpt, ift, sft here; rm, rl, rlaif, dpo in align's modules).

A stage receives a ``StageContext`` (its recipe section, the folder of the model it starts from, its output
folder) and returns a ``StageResult`` whose ``model_dir`` is a folder ``transformers`` loads (full weights, or a
peft adapter folder when adapters are kept unmerged). The pipeline chains stages: stage *k+1* starts from stage
*k*'s ``model_dir``.

Writing a stage::

    from clinforge.train.stages import STAGES
    from clinforge.train.stages.base import Stage, StageResult

    class DPOStage(Stage):
        type = "dpo"
        default_format = "preference"
        class Options(StrictModel):          # validated from the recipe's ``options:`` with file/line errors
            beta: float = 0.1
        def run(self) -> StageResult:
            data = self.load_data()                         # records -> StageData (+ data cards)
            model, tok = self.load_model()                  # method (full/lora/qlora/freeze) applied
            args = self.training_kwargs()                   # kwargs for TrainingArguments / any TRL *Config
            ...  trainer = DPOTrainer(..., args=DPOConfig(**args, beta=self.options.beta))
            self.train_with_resume(trainer)                 # exact resume from OUT/stages/NAME/checkpoints
            return self.finish(model, tok, metrics={...}, data=data)   # saves, merges, writes stage card

    STAGES.register("dpo", DPOStage)

Shared building blocks, each usable on its own: ``clinforge.train.data`` (records -> text / chat / preference
examples, tokenisation with assistant-only labels, packing collator), ``clinforge.train.methods`` (load a model and
apply full / LoRA / QLoRA / freezing), ``clinforge.train.export`` (save, merge adapters, model card),
``clinforge.train.hf_trainer`` (TrainingArguments from a recipe, callbacks, resume).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clinforge.core.config import StrictModel, validate
from clinforge.train.recipe import Recipe, StageSpec


class NoOptions(StrictModel):
    """A stage without stage-specific options (any key under ``options:`` is an error)."""


@dataclass
class StageContext:
    """Everything a stage needs to know about where it runs.

    ``model_path``: the folder (or hub id) the stage starts from; ``base_model``: the recipe's original model;
    ``out_dir``: ``OUT/stages/NAME``; ``lines``: key path -> line of the recipe file (for option errors).
    """

    recipe: Recipe
    spec: StageSpec
    index: int
    model_path: str
    base_model: str
    out_dir: Path
    run_dir: Path
    resume: bool = False
    recipe_file: str | None = None
    lines: dict[tuple, int] = field(default_factory=dict)
    previous: list[StageResult] = field(default_factory=list)

    @property
    def seed(self) -> int:
        """The stage seed: the stage's own ``seed`` or the recipe seed plus the stage index."""
        return self.spec.seed if self.spec.seed is not None else self.recipe.seed + self.index


@dataclass
class StageResult:
    """What a stage produced. ``model_dir`` loads with transformers (or peft when ``adapter`` is True)."""

    name: str
    type: str
    model_dir: Path
    adapter: bool = False
    base_model: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    data_cards: list[dict[str, Any]] = field(default_factory=list)
    privacy: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (paths as strings)."""
        return {"name": self.name, "type": self.type, "model_dir": str(self.model_dir), "adapter": self.adapter,
                "base_model": self.base_model, "metrics": self.metrics, "data_cards": self.data_cards,
                "privacy": self.privacy, "hyperparameters": self.hyperparameters}


class Stage:
    """Base class of a training stage. Subclasses set ``type`` and implement ``run``.

    Class attributes: ``Options`` (a StrictModel for the recipe's ``options:``), ``default_format`` (how records
    become examples when ``data.format`` is ``auto``: ``text``, ``chat`` or ``preference``), ``supports_dp``.
    """

    type: ClassVar[str] = ""
    Options: ClassVar[type[StrictModel]] = NoOptions
    default_format: ClassVar[str] = "chat"
    supports_dp: ClassVar[bool] = False

    def __init__(self, ctx: StageContext):
        self.ctx = ctx
        self.spec = ctx.spec
        self.trainer = None  # the last Trainer fitted: its accelerator gathers FSDP / DeepSpeed shards for saving
        self.options = self.check(ctx.recipe, ctx.index, file=ctx.recipe_file, lines=ctx.lines)

    @classmethod
    def validated_options(cls, recipe: Recipe, index: int, *, file: str | None = None,
                          lines: dict[tuple, int] | None = None) -> StrictModel:
        """Stage ``index``'s ``options:`` validated by ``cls.Options`` (and ``dp:`` checked against
        ``supports_dp``); errors name the recipe file, line and key.

        Example:
            >>> # STAGES.get("dpo").validated_options(recipe, 2, file="r.yaml", lines=lines).beta -> 0.1
        """
        from clinforge.core.errors import ConfigError

        lines = lines or {}
        spec = recipe.stages[index]
        prefix = ("stages", index, "options")
        option_lines = {k[len(prefix):]: v for k, v in lines.items() if k[: len(prefix)] == prefix}
        try:
            options = validate(cls.Options, dict(spec.options), file=file, lines=option_lines)
        except ConfigError as exc:
            key = f"stages.{index}.options" + (f".{exc.key}" if exc.key else "")
            raise ConfigError(exc.message, file=exc.file, line=exc.line or lines.get(prefix), key=key) from None
        if spec.dp is not None and spec.dp.enabled and not cls.supports_dp:
            raise ConfigError(f"stage type {cls.type!r} does not support dp (DP-SGD is offered for cpt, ift, sft)",
                              file=file, line=lines.get(("stages", index, "dp")), key=f"stages.{index}.dp")
        return options

    @classmethod
    def check(cls, recipe: Recipe, index: int, *, file: str | None = None,
              lines: dict[tuple, int] | None = None) -> StrictModel:
        """Validate everything about stage ``index`` that is knowable before any training: its options, ``dp:``,
        the readers and paths of its data sources, and the stage-specific rules of ``check_spec``. The pipeline
        calls this for every stage up front, so a typo in stage 3 fails before stages 1-2 train. Returns the
        options. Errors name the recipe file, the line and the full key (``stages.2.options.beta``).

        Example:
            >>> # STAGES.get("rl").check(recipe, 1, file="r.yaml", lines=lines)
        """
        from clinforge.core.errors import ConfigError

        lines = lines or {}
        options = cls.validated_options(recipe, index, file=file, lines=lines)
        cls._check_trainer_args(recipe, index, options, file=file, lines=lines)
        try:
            cls.check_spec(recipe, index, options)
        except ConfigError as exc:
            if exc.file is not None or exc.key is None:
                raise
            parts = tuple(int(p) if p.isdigit() else p for p in exc.key.split("."))
            line = None
            while parts and line is None:  # the key itself, else its nearest parent present in the file
                line = lines.get(("stages", index, *parts))
                parts = parts[:-1]
            raise ConfigError(exc.message, file=file, line=line or lines.get(("stages", index)),
                              key=f"stages.{index}.{exc.key}") from None
        return options

    @classmethod
    def trainer_configs(cls, recipe: Recipe, index: int, options: StrictModel) -> tuple[list[str], dict[str, str]]:
        """The trainer config classes this stage builds (dotted names) and the config keys it sets from its
        ``options:`` (config key -> option key); ``trainer_args:`` keys are checked against both. Stages that
        build a TRL config override this."""
        from clinforge.train.trainer_args import TRAINING_ARGUMENTS

        return [TRAINING_ARGUMENTS], {}

    @classmethod
    def _check_trainer_args(cls, recipe: Recipe, index: int, options: StrictModel, *, file: str | None,
                            lines: dict[tuple, int]) -> None:
        from clinforge.core.errors import ConfigError
        from clinforge.train.trainer_args import check_trainer_args

        spec = recipe.stages[index]
        if not spec.trainer_args:
            return  # nothing to check: transformers / trl are imported only when a recipe uses trainer_args
        if spec.dp is not None and spec.dp.enabled:
            raise ConfigError("a dp stage trains with clinforge's DP-SGD loop, not a Trainer: remove trainer_args",
                              file=file, line=lines.get(("stages", index, "trainer_args")),
                              key=f"stages.{index}.trainer_args")
        classes, stage_keys = cls.trainer_configs(recipe, index, options)
        check_trainer_args(spec.trainer_args, classes, index=index, stage_keys=stage_keys, file=file, lines=lines)

    @classmethod
    def check_spec(cls, recipe: Recipe, index: int, options: StrictModel) -> None:
        """Stage rules checked before training; raise ``ConfigError(message, key=KEY)`` with ``KEY`` relative to the
        stage (``train.grad_accum``, ``data.sources.0.path``), ``check`` adds the file and line. Subclasses extend
        this and call ``super().check_spec``. The base checks data sources, QLoRA's GPU, and DP's grad_accum.
        """
        from clinforge.core.errors import ConfigError
        from clinforge.train.data import check_source

        spec = recipe.stages[index]
        for group in ("sources", "eval_sources"):
            for j, src in enumerate(getattr(spec.data, group)):
                check_source(src, key=f"data.{group}.{j}")
        if spec.method.type == "qlora" and not _cuda_available():
            raise ConfigError("method qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); none is available here. "
                              "Use method lora on CPU.", key="method.type")
        if spec.dp is not None and spec.dp.enabled and spec.train.grad_accum != 1:
            raise ConfigError("dp stages take grad_accum 1 (the expected batch is batch_size units per step)",
                              key="train.grad_accum")

    # ---- building blocks shared by every stage -------------------------------------------------------------
    @property
    def data_format(self) -> str:
        """The example format this stage trains on (``data.format`` or the stage default)."""
        fmt = self.spec.data.format
        return self.default_format if fmt == "auto" else fmt

    def load_data(self):
        """Read the stage's sources into a ``clinforge.train.data.StageData`` (examples + eval + data cards)."""
        from clinforge.train.data import load_stage_data

        return load_stage_data(self.spec.data, fmt=self.data_format, seed=self.ctx.seed,
                               file=self.ctx.recipe_file, lines=self.ctx.lines, stage_index=self.ctx.index)

    def load_model(self, **kwargs):
        """Load the starting model and tokenizer with the stage's method applied (``clinforge.train.methods``)."""
        from clinforge.train.methods import load_for_training

        return load_for_training(self.ctx.model_path, self.spec.method, precision=self.ctx.recipe.precision,
                                 attn_implementation=self.ctx.recipe.attn_implementation,
                                 gradient_checkpointing=self.spec.train.gradient_checkpointing, **kwargs)

    def training_kwargs(self, **extra) -> dict[str, Any]:
        """Keyword arguments for ``transformers.TrainingArguments`` or any TRL ``*Config`` built on it."""
        from clinforge.train.hf_trainer import training_kwargs

        return training_kwargs(self.ctx, **extra)

    def callbacks(self) -> list:
        """Trainer callbacks: progress bar with loss, tokens/s and ETA, and the run-summary recorder."""
        from clinforge.train.hf_trainer import default_callbacks

        return default_callbacks(self.ctx)

    def train_with_resume(self, trainer) -> dict[str, Any]:
        """Train, resuming from the newest checkpoint in ``out_dir/checkpoints`` when the run is resumed."""
        from clinforge.train.hf_trainer import train_with_resume

        self.trainer = trainer
        return train_with_resume(trainer, self.ctx)

    def finish(self, model, tokenizer, *, metrics: dict[str, Any], data=None, privacy: dict | None = None,
               hyperparameters: dict | None = None) -> StageResult:
        """Save the stage output in ``out_dir/model`` (merging adapters if ``method.merge``), return the result."""
        from clinforge.train.export import save_stage_output

        return save_stage_output(self, model, tokenizer, metrics=metrics, data=data, privacy=privacy,
                                 hyperparameters=hyperparameters)

    def run(self) -> StageResult:
        """Train and return the result. Subclasses implement this."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")


def _cuda_available() -> bool:
    # torch is imported only for a QLoRA stage: recipe checks run before heavy imports (seconds, not ten)
    import torch

    return torch.cuda.is_available()


AfterStageHook = Callable[[StageContext, StageResult], "dict[str, Any] | None"]
AFTER_STAGE_HOOKS: list[AfterStageHook] = []


def register_after_stage(hook: AfterStageHook) -> AfterStageHook:
    """Run ``hook(ctx, result)`` after every stage of every pipeline in this process (e.g. an evaluation task).

    A returned dict is stored under ``hooks`` in the stage summary.

    Example:
        >>> @register_after_stage
        ... def count(ctx, result):
        ...     return {"seen": result.name}
        >>> AFTER_STAGE_HOOKS.remove(count)
    """
    AFTER_STAGE_HOOKS.append(hook)
    return hook
