"""``dpo`` stage: direct preference optimisation on (prompt, chosen, rejected) pairs with TRL.

Variants are TRL 1.16's ``DPOConfig.loss_type`` values: ``sigmoid`` (DPO, the default), ``ipo`` (IPO), ``hinge``
(SLiC), ``robust`` (robust DPO, with ``label_smoothing`` as the flip rate), ``exo_pair``, ``nca_pair``,
``bco_pair``, ``sppo_hard``, ``aot``, ``aot_unpaired``, ``apo_zero``, ``apo_down``, ``discopop``, ``sft``,
``sigmoid_norm``. Several losses combine with ``loss_weights`` (``[sigmoid, sft]`` is RPO-style DPO + NLL).
``loss_type: kto`` (or ``apo_zero_unpaired``) trains with TRL's ``KTOTrainer`` instead, on the same pairs split into
desirable (chosen) and undesirable (rejected) completions. ORPO and CPO live in ``trl.experimental`` in TRL 1.16, so
they are not offered as stable variants.

Recipe::

    - name: dpo
      type: dpo
      data: {sources: [{reader: pubmedqa, path: ${CLINFORGE_DATA}/pubmedqa/data/ori_pqal.json, limit: 64}]}
      options: {loss_type: ipo, beta: 0.1, pairs: {strategy: mismatched_answer}}
      train: {lr: 5.0e-5, max_steps: 8, batch_size: 4, max_length: 256}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from clinforge.core.errors import ConfigError, DataError
from clinforge.train.align.common import AlignStage, Cards, WithPairs, conversational_pairs, final_metrics
from clinforge.train.stages import STAGES
from clinforge.train.stages.base import StageResult

# DPOConfig.loss_type values in TRL 1.16 (trl/trainer/dpo_config.py); KTOConfig.loss_type values after them.
DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                  "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")
KTO_LOSS_TYPES = ("kto", "apo_zero_unpaired")
DPO_METRICS = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


class DPOOptions(WithPairs):
    """Options of the ``dpo`` stage. ``beta``: strength of the pull towards the reference model (IPO's tau)."""

    loss_type: list[str] = Field(default_factory=lambda: ["sigmoid"])
    loss_weights: list[float] | None = None
    beta: float = Field(0.1, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    precompute_ref_log_probs: bool = False
    desirable_weight: float = Field(1.0, gt=0)  # kto only
    undesirable_weight: float = Field(1.0, gt=0)  # kto only

    @field_validator("loss_type", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        value = [value] if isinstance(value, str) else value
        for name in value or []:
            if name not in DPO_LOSS_TYPES + KTO_LOSS_TYPES:
                raise ValueError(f"unknown loss_type {name!r}; valid: {', '.join(DPO_LOSS_TYPES + KTO_LOSS_TYPES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DPOOptions:
        if not self.loss_type:
            raise ValueError("loss_type needs at least one loss")
        if any(t in KTO_LOSS_TYPES for t in self.loss_type) and len(self.loss_type) > 1:
            raise ValueError("kto / apo_zero_unpaired train with KTOTrainer and cannot be combined with other losses")
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError(f"loss_weights has {len(self.loss_weights)} values for {len(self.loss_type)} losses")
        return self

    @property
    def is_kto(self) -> bool:
        return self.loss_type[0] in KTO_LOSS_TYPES

    def method_name(self) -> str:
        """A readable name for the model card.

        Example:
            >>> DPOOptions().method_name(), DPOOptions(loss_type="ipo").method_name()
            ('DPO', 'DPO (loss ipo)')
        """
        if self.is_kto:
            return "KTO" if self.loss_type == ["kto"] else "KTO (loss apo_zero_unpaired)"
        return "DPO" if self.loss_type == ["sigmoid"] else "DPO (loss " + " + ".join(self.loss_type) + ")"


def fit_pairs_to_length(rows: list[dict[str, Any]], tokenizer: Any, max_length: int | None,
                        margin: int = 16) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Prepare TRL conversational pairs for ``max_length``-token training, as TRL would, but visibly.

    TRL tokenises each whole prompt + completion and only then keeps the first ``max_length`` tokens (its default
    ``keep_start``), silently dropping a pair whose prompt alone fills ``max_length``. A long answer (MedQuAD's run
    to thousands of tokens) thus made the tokenizer print a false "indexing errors" warning. Here a pair whose
    prompt fills ``max_length`` is dropped and counted, and each completion is cut after its first
    ``max_length + margin`` tokens (at a character offset, so TRL's own tokenisation and cut give the same training
    tokens). Returns the rows and ``{"pairs_dropped_prompt_too_long": n, "completions_cut": n}``.

    Example:
        >>> # rows, counts = fit_pairs_to_length(rows, tokenizer, 256)
    """
    counts = {"pairs_dropped_prompt_too_long": 0, "completions_cut": 0}
    if max_length is None:
        return rows, counts
    kept = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        if len(tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]) >= max_length:
            counts["pairs_dropped_prompt_too_long"] += 1
            continue
        new = dict(row)
        for side in ("chosen", "rejected"):
            text = row[side][0]["content"]
            offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                verbose=False)["offset_mapping"]
            if len(offsets) > max_length + margin:
                new[side] = [{**row[side][0], "content": text[:offsets[max_length + margin][0]]}]
                counts["completions_cut"] += 1
        kept.append(new)
    return kept, counts


def fit_preference(stage: AlignStage, model: Any, tokenizer: Any, examples: list[dict[str, Any]],
                   options: DPOOptions, output_dir: Path | None = None,
                   eval_examples: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train ``model`` on preference examples with DPO (or KTO); returns the stage metrics (with the final eval
    loss when ``eval_examples`` are given; ``train.eval_every`` also evaluates during training).

    Used by the ``dpo`` stage and by ``rlaif`` (on the pairs its judge built).
    """
    from datasets import Dataset

    from clinforge.train.data import check_eval_kept

    max_length = stage.spec.train.max_length
    rows, fitted = fit_pairs_to_length(conversational_pairs(examples), tokenizer, max_length)
    eval_rows, _ = fit_pairs_to_length(conversational_pairs(eval_examples or []), tokenizer, max_length)
    if not rows:
        raise DataError(f"stage {stage.spec.name}: every preference pair's prompt fills max_length {max_length} "
                        f"({fitted['pairs_dropped_prompt_too_long']} dropped); raise train.max_length")
    eval_paths = [str(src.path or src.prepared) for src in stage.spec.data.eval_sources]
    check_eval_kept(stage.spec.name, len(eval_examples or []), len(eval_rows), max_length, what="preference pairs",
                    origin=f"from {', '.join(eval_paths)}" if eval_paths else None)
    if options.is_kto:
        from trl import KTOConfig, KTOTrainer
        from trl.data_utils import unpair_preference_dataset

        dataset = unpair_preference_dataset(Dataset.from_list(rows))
        eval_set = unpair_preference_dataset(Dataset.from_list(eval_rows)) if eval_rows else None
        args = KTOConfig(**stage.trl_kwargs(output_dir, max_length=max_length, loss_type=options.loss_type[0],
                                            beta=options.beta, desirable_weight=options.desirable_weight,
                                            undesirable_weight=options.undesirable_weight))
        trainer = KTOTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=eval_set,
                             processing_class=tokenizer)
        keys: tuple[str, ...] = ("loss", "kl", "rewards/chosen_sum", "rewards/rejected_sum")
    else:
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**stage.trl_kwargs(output_dir, max_length=max_length, loss_type=list(options.loss_type),
                                            loss_weights=options.loss_weights, beta=options.beta,
                                            label_smoothing=options.label_smoothing,
                                            precompute_ref_log_probs=options.precompute_ref_log_probs))
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                             eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
                             processing_class=tokenizer)
        keys = DPO_METRICS
    metrics = stage.fit(trainer)
    metrics["pairs"] = len(rows)
    metrics.update(fitted)
    metrics["eval_pairs"] = len(eval_rows)
    if eval_rows:
        metrics["final_eval_loss"] = trainer.evaluate()["eval_loss"]
    metrics["alignment_method"] = options.method_name()
    metrics["final"] = final_metrics(trainer.state.log_history, keys)
    return metrics


def preference_configs(options: DPOOptions) -> tuple[list[str], dict[str, str]]:
    """The TRL config a preference stage builds and the config keys its options set (for ``trainer_args``)."""
    from clinforge.train.trainer_args import TRL

    keys = {"beta": "beta", "loss_type": "loss_type"}
    if options.is_kto:
        return [TRL["kto"]], {**keys, "desirable_weight": "desirable_weight",
                              "undesirable_weight": "undesirable_weight"}
    return [TRL["dpo"]], {**keys, "loss_weights": "loss_weights", "label_smoothing": "label_smoothing",
                          "precompute_ref_log_probs": "precompute_ref_log_probs"}


class DPOStage(AlignStage):
    """Direct preference optimisation (and its TRL variants) starting from the previous stage's model."""

    type = "dpo"
    Options = DPOOptions

    @classmethod
    def trainer_configs(cls, recipe: Any, index: int, options: DPOOptions) -> tuple[list[str], dict[str, str]]:
        """KTOConfig for a KTO loss, else DPOConfig; the keys set from ``options:``."""
        return preference_configs(options)
    default_format = "preference"

    def run(self) -> StageResult:
        examples, eval_examples, cards = self.load_pairs(self.options.pairs)
        model, tokenizer = self.load_model()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"{self.ctx.model_path}: the tokenizer has no chat template; dpo formats pairs as chat")
        metrics = fit_preference(self, model, tokenizer, examples, self.options, eval_examples=eval_examples)
        return self.finish(model, tokenizer, metrics=metrics, data=Cards(cards),
                           hyperparameters={"alignment_method": metrics["alignment_method"]})


STAGES.register("dpo", DPOStage)
