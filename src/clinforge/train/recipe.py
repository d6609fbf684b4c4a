"""The training recipe: one YAML file that describes a model, a list of stages and how each one trains.

Every section is a ``StrictModel`` so that a misspelt key is an error naming the file line (``core.config``).
Stage-specific settings (e.g. DPO's ``beta``) live under a stage's ``options:`` and are validated by the stage
class's own ``Options`` model (see ``clinforge.train.stages.base.Stage``), so new stages add settings without
touching this file.

Paths in a recipe may reference environment variables, ``${CLINFORGE_DATA}/medquad``; ``${CLINFORGE_DATA}``
defaults to ``../shared/data`` like ``clinforge.core.paths.data_root``.

Example:
    >>> r = Recipe.model_validate({"model": "tiny:llama", "stages": [{"name": "sft", "type": "sft",
    ...     "data": {"sources": [{"reader": "medquad", "path": "x"}]}}]})
    >>> r.stages[0].method.type, r.stages[0].train.lr
    ('full', 0.0002)
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from clinforge.core.config import StrictModel
from clinforge.core.errors import ConfigError
from clinforge.core.paths import data_root

StageType = Literal["cpt", "ift", "sft", "rm", "rl", "rlaif", "dpo", "vlm_align", "vlm_sft"]
STAGE_TYPES: tuple[str, ...] = StageType.__args__  # type: ignore[attr-defined]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_env(value: str) -> str:
    """Expand ``${VAR}`` / ``$VAR`` in a path; an unset variable is an error (``CLINFORGE_DATA`` has a default).

    Example:
        >>> os.environ["CF_DOC"] = "/d"; expand_env("${CF_DOC}/medquad")
        '/d/medquad'
    """

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in os.environ:
            return os.environ[name]
        if name == "CLINFORGE_DATA":
            return str(data_root())
        raise ConfigError(f"environment variable {name} is not set (used in {value!r})")

    return _ENV.sub(repl, value)


class SourceSpec(StrictModel):
    """One data source: a reader over a path (``reader`` + ``path``) or a prepared dataset folder (``prepared``).

    ``prepared`` is the run folder (or its ``dataset/``) written by ``clinforge data prepare``; ``split`` picks
    one of its splits (default ``train`` when it has splits). A folder holding ``records.jsonl`` or a single
    ``*.jsonl`` is read with the ``jsonl`` reader.
    """

    reader: str | None = None
    path: str | None = None
    prepared: str | None = None
    split: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(default=None, ge=1)
    on_error: Literal["skip", "fail"] = "skip"

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if self.prepared is None and (self.reader is None or self.path is None):
            raise ValueError("a source needs reader and path, or prepared")
        if self.prepared is not None and self.reader is not None:
            raise ValueError("give reader+path or prepared, not both")
        for f in ("path", "prepared"):
            v = getattr(self, f)
            if v is not None:
                setattr(self, f, expand_env(v))
        return self


class DataSpec(StrictModel):
    """The data of a stage: sources, an optional held-out eval set, and how records become training examples.

    ``format``: ``auto`` picks by stage (``cpt`` -> text, ``ift``/``sft`` -> chat); ``text`` / ``chat`` force it.
    ``system``: an optional system prompt put before chat examples.
    """

    sources: list[SourceSpec]
    eval_sources: list[SourceSpec] = Field(default_factory=list)
    eval_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    format: Literal["auto", "text", "chat", "preference"] = "auto"
    system: str | None = None
    shuffle: bool = True

    @field_validator("sources")
    @classmethod
    def _non_empty(cls, v: list[SourceSpec]) -> list[SourceSpec]:
        if not v:
            raise ValueError("a stage needs at least one data source")
        return v


class MethodSpec(StrictModel):
    """How the weights are adapted: ``full``, ``lora`` or ``qlora``; plus freezing by module-name pattern.

    ``target_modules``: a list of module-name suffixes, or ``all-linear`` (peft picks every linear layer but the
    output head). ``freeze``: glob patterns (``fnmatch``) over parameter names frozen in full fine-tuning, e.g.
    ``["model.embed_tokens.*", "model.layers.0.*"]``.
    """

    type: Literal["full", "lora", "qlora"] = "full"
    r: int = Field(default=8, ge=1)
    alpha: float = Field(default=16, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    modules_to_save: list[str] = Field(default_factory=list)
    freeze: list[str] = Field(default_factory=list)
    merge: bool = False


class TrainArgs(StrictModel):
    """Optimisation settings of one stage (the common subset of ``transformers.TrainingArguments``)."""

    lr: float = Field(default=2e-4, gt=0)
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = -1
    batch_size: int = Field(default=4, ge=1)
    eval_batch_size: int | None = None
    grad_accum: int = Field(default=1, ge=1)
    max_length: int = Field(default=512, ge=8)
    packing: bool = True
    group_by_length: bool = False
    gradient_checkpointing: bool = False
    eval_every: int | None = Field(default=None, ge=1)
    save_every: int | None = Field(default=None, ge=1)
    save_total_limit: int | None = 2
    log_every: int = Field(default=10, ge=1)
    warmup_steps: int = Field(default=0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts",
                       "polynomial"] = "linear"
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, ge=0)
    optimizer: Literal["adamw_torch", "adamw_torch_fused", "sgd", "adafactor"] = "adamw_torch"
    dataloader_workers: int = Field(default=0, ge=0)


class DPSpec(StrictModel):
    """DP-SGD through Opacus: give ``noise_multiplier`` or ``target_epsilon`` (with ``delta``).

    ``patient_level``: the privacy unit is a patient (all records with one ``patient_id`` form one unit that is
    sampled and clipped together); records without a patient id are each their own unit.
    """

    enabled: bool = True
    noise_multiplier: float | None = Field(default=None, ge=0)
    target_epsilon: float | None = Field(default=None, gt=0)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    patient_level: bool = True
    max_unit_tokens: int | None = Field(default=None, ge=8)

    @model_validator(mode="after")
    def _noise_or_eps(self) -> DPSpec:
        if self.enabled and (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError("dp needs exactly one of noise_multiplier or target_epsilon")
        return self


class StageSpec(StrictModel):
    """One stage of a recipe; its output lands in ``OUT/stages/<name>/``."""

    name: str
    type: StageType
    data: DataSpec
    method: MethodSpec = Field(default_factory=MethodSpec)
    train: TrainArgs = Field(default_factory=TrainArgs)
    dp: DPSpec | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    trainer_args: dict[str, Any] = Field(default_factory=dict)  # any option of the stage's trainer config class
    seed: int | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("a stage name uses letters, digits, '_', '-', '.' (it names a folder)")
        return v

    @model_validator(mode="after")
    def _eval_needs_data(self) -> StageSpec:
        # else transformers' Trainer stops at its first evaluation with a message about its own arguments
        if self.train.eval_every and not self.data.eval_sources and not self.data.eval_fraction:
            raise ValueError(f"stage {self.name}: train.eval_every evaluates on held-out data and the stage has none: "
                             "give data.eval_sources or data.eval_fraction, or remove train.eval_every")
        return self


class TrackingSpec(StrictModel):
    """Where metrics go: TensorBoard (``OUT/tensorboard``) and/or MLflow (local file store ``OUT/mlruns`` unless
    ``mlflow_uri`` names a server)."""

    tensorboard: bool = True
    mlflow: bool = False
    mlflow_uri: str | None = None
    experiment: str = "clinforge"


class Recipe(StrictModel):
    """A whole training recipe.

    ``model``: a local HF folder, a hub id, or ``tiny:ARCH`` (build a tiny random model with ``tiny_options`` and
    the packaged medical corpus first; ``clinforge.models.tiny``), or a multimodal mapping
    ``{vision: {tiny: siglip} | PATH, connector: {type: mlp, depth: 2}, llm: NAME | PATH | {tiny: llama}}``
    (``clinforge.models.vlm.parse_vlm_spec``). ``precision``: ``fp32``; ``bf16`` (bf16 weights, bf16 autocast);
    ``bf16-mixed`` (float32 weights and optimiser state, the forward and backward under bf16 autocast: mixed
    precision, as transformers' and TRL's ``bf16=True`` on a float32 model).
    ``merge``: merge LoRA adapters into the final ``OUT/model`` (else the folder holds the adapter plus base
    reference and transformers+peft loads it).
    """

    model: str | dict[str, Any]  # a mapping composes a vision-language model (clinforge.models.vlm.build_vlm)
    tiny_options: dict[str, Any] = Field(default_factory=dict)
    out: str | None = None
    seed: int = 0
    precision: Literal["bf16", "bf16-mixed", "fp32"] = "fp32"
    deterministic: bool = False
    attn_implementation: str | None = "sdpa"
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    merge: bool = True
    intended_use: str = ("Research and development of medical language models. Not a medical device; "
                         "not for clinical decision making.")
    stages: list[StageSpec]

    @property
    def is_multimodal(self) -> bool:
        """Whether ``model`` is a ``{vision, connector, llm}`` mapping (``clinforge.models.vlm.build_vlm``)."""
        return isinstance(self.model, dict)

    @model_validator(mode="after")
    def _checks(self) -> Recipe:
        if not self.stages:
            raise ValueError("a recipe needs at least one stage")
        names = [s.name for s in self.stages]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dup)}")
        if self.out is not None:
            self.out = expand_env(self.out)
        if isinstance(self.model, str) and not self.model.startswith("tiny:"):
            self.model = expand_env(self.model)
        return self


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> tuple[Recipe, dict[tuple, int]]:
    """Read and validate a recipe file; returns the recipe and the key-path -> line map (for option errors).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.yaml"
        >>> _ = p.write_text("model: tiny:llama\\nstages:\\n  - name: a\\n    type: sftx\\n    data: {sources: []}\\n")
        >>> try:
        ...     load_recipe(p)
        ... except ConfigError as err:
        ...     print(err.line, err.key)
        4 stages.0.type
    """
    from clinforge.core.config import apply_overrides, load_yaml, validate

    data, lines = load_yaml(path)
    data = apply_overrides(data, overrides)
    return validate(Recipe, data, file=str(path), lines=lines), lines


def valid_keys_at(path: list[str]) -> list[str]:
    """The keys a recipe section accepts, for a dotted path such as ``stages.0.train`` (list indices skipped).

    Example:
        >>> valid_keys_at(["stages", "0", "dp"])[:3]
        ['delta', 'enabled', 'max_grad_norm']
    """
    from clinforge.core.config import keys_at

    return keys_at(Recipe, path) or []
