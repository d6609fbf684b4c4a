"""``trainer_args:``: any option of the trainer config class a stage uses, passed through from the recipe.

clinforge mirrors the common optimisation settings in a stage's ``train:`` section; everything else that the
underlying config class takes (``transformers.TrainingArguments`` for cpt/ift/sft, TRL's ``DPOConfig`` /
``KTOConfig`` / ``RewardConfig`` / ``GRPOConfig`` / ``RLOOConfig`` for the alignment stages) goes under the
stage's ``trainer_args:``, without a code change::

    stages:
      - name: sft
        type: sft
        train: {lr: 2.0e-4}
        trainer_args: {adam_beta2: 0.95, lr_scheduler_kwargs: {num_cycles: 2}}

Each key is checked against the fields of every config class the stage will build (an rlaif stage builds a
reward model and a policy trainer: a key must fit both), before any training and naming the file, line and the
closest valid key. Keys that clinforge sets from the recipe are refused with the recipe key to use instead, so
one setting never has two places.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from clinforge.core.errors import ConfigError, did_you_mean

# config keys clinforge sets from the recipe -> the recipe key that sets them
FROM_RECIPE = {
    "learning_rate": "train.lr", "num_train_epochs": "train.epochs", "max_steps": "train.max_steps",
    "per_device_train_batch_size": "train.batch_size", "per_device_eval_batch_size": "train.eval_batch_size",
    "gradient_accumulation_steps": "train.grad_accum", "lr_scheduler_type": "train.scheduler",
    "warmup_steps": "train.warmup_steps or train.warmup_ratio", "warmup_ratio": "train.warmup_ratio",
    "weight_decay": "train.weight_decay", "max_grad_norm": "train.max_grad_norm", "optim": "train.optimizer",
    "logging_steps": "train.log_every", "save_steps": "train.save_every", "save_total_limit": "train.save_total_limit",
    "eval_steps": "train.eval_every", "dataloader_num_workers": "train.dataloader_workers",
    "gradient_checkpointing": "train.gradient_checkpointing", "max_length": "train.max_length",
    "activation_checkpointing": "train.gradient_checkpointing",  # transformers 5.x's name for it
    "train_sampling_strategy": "train.group_by_length", "group_by_length": "train.group_by_length",
    "bf16": "precision", "seed": "seed (or the stage's seed)", "data_seed": "seed (or the stage's seed)",
    "full_determinism": "deterministic",
}
# keys clinforge's run records, resume and progress depend on: fixed, whatever the recipe says
FIXED = {"output_dir": "the stage folder (resume and run records rely on it)",
         "overwrite_output_dir": "the stage folder (resume relies on it)",
         "report_to": "tracking: (TensorBoard / MLflow through clinforge's callbacks)",
         "disable_tqdm": "clinforge's progress bar (--no-progress)", "save_strategy": "train.save_every",
         "eval_strategy": "train.eval_every", "use_cpu": "the devices found (CPU when no GPU)",
         "remove_unused_columns": "clinforge's data collators", "logging_first_step": "train.log_every",
         "include_num_input_tokens_seen": "clinforge's tokens/s figure",
         "resume_from_checkpoint": "clinforge train --resume"}

# the dotted names of the config classes, by what a stage builds
TRAINING_ARGUMENTS = "transformers.TrainingArguments"
TRL = {"dpo": "trl.DPOConfig", "kto": "trl.KTOConfig", "rm": "trl.RewardConfig", "grpo": "trl.GRPOConfig",
       "rloo": "trl.RLOOConfig"}


def config_fields(dotted: str) -> set[str]:
    """The init fields of a config dataclass given by dotted name (imports it: transformers or trl).

    Example:
        >>> "adam_beta2" in config_fields("transformers.TrainingArguments")  # doctest: +SKIP
        True
    """
    module, _, name = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return {f.name for f in dataclasses.fields(cls) if f.init}


def check_trainer_args(args: dict[str, Any], classes: list[str], *, index: int, stage_keys: dict[str, str] | None = None,
                       file: str | None = None, lines: dict[tuple, int] | None = None) -> None:
    """Refuse a ``trainer_args`` key that a config class in ``classes`` does not take, that clinforge sets from
    the recipe, or that the stage sets from its ``options:`` (``stage_keys``: config key -> option key). Errors
    name the file, line and ``stages.N.trainer_args.KEY``.

    Example:
        >>> check_trainer_args({"learning_rate": 1e-4}, [], index=0)
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: stages.0.trainer_args.learning_rate: set by the recipe's train.lr; set it there
    """
    lines = lines or {}
    stage_keys = stage_keys or {}
    for key in args:
        where = {"file": file, "line": lines.get(("stages", index, "trainer_args", key))
                 or lines.get(("stages", index, "trainer_args")), "key": f"stages.{index}.trainer_args.{key}"}
        if key in FROM_RECIPE:
            raise ConfigError(f"set by the recipe's {FROM_RECIPE[key]}; set it there", **where)
        if key in FIXED:
            raise ConfigError(f"not settable: clinforge fixes it ({FIXED[key]})", **where)
        if key in stage_keys:
            raise ConfigError(f"set by this stage's options.{stage_keys[key]}; set it there", **where)
        for dotted in classes:
            valid = config_fields(dotted)
            if key not in valid:
                raise ConfigError(f"unknown option of {dotted.rpartition('.')[2]}{did_you_mean(key, valid)} (this "
                                  f"stage builds {', '.join(c.rpartition('.')[2] for c in classes)}; see its "
                                  "documentation for the valid keys)", **where)


__all__ = ["check_trainer_args", "config_fields", "FROM_RECIPE", "FIXED", "TRAINING_ARGUMENTS", "TRL"]
