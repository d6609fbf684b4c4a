"""``rm`` stage: a reward model trained on preference pairs with ``trl.RewardTrainer`` (Bradley-Terry loss
``-log sigmoid(r(chosen) - r(rejected))``, optionally with the mean-zero centring term of Eisenstein et al.).

The stage output ``model/`` is a ``*ForSequenceClassification`` model with one label (the scalar reward) that
``AutoModelForSequenceClassification`` loads, with its tokenizer and chat template; an ``rl`` stage uses it with
``reward_model: stage:NAME``. An rm stage does not change the policy: the stage after it starts from the model the
rm stage started from (see ``clinforge.train.pipeline``).

Recipe::

    - name: rm
      type: rm
      data: {sources: [{reader: medqa, path: ..., limit: 64}]}
      options: {pairs: {strategy: wrong_option}}
      train: {lr: 1.0e-4, max_steps: 8, batch_size: 4, max_length: 256}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.train.align.common import AlignStage, Cards, WithPairs, conversational_pairs, final_metrics
from clinforge.train.stages import STAGES
from clinforge.train.stages.base import StageResult

RM_METRICS = ("loss", "accuracy", "margin", "min_reward", "mean_reward", "max_reward")


class RMOptions(WithPairs):
    """Options of the ``rm`` stage (``center_rewards_coefficient``: TRL's reward-centring weight, e.g. 0.01)."""

    center_rewards_coefficient: float | None = None


def load_reward_model(path: str, method: Any = None, *, precision: str = "fp32", seed: int = 0,
                      gradient_checkpointing: bool = False):
    """A one-label sequence-classification model and its tokenizer from a causal LM or reward-model folder, with
    ``method`` (a recipe ``MethodSpec``; None = full) applied. A causal LM gets a new score head, initialised
    randomly after seeding with ``seed``.

    Example:
        >>> model, tok = load_reward_model("runs/x/stages/rm/model")  # doctest: +SKIP
    """
    from transformers import AutoModelForSequenceClassification, set_seed

    from clinforge.train.methods import load_for_training
    from clinforge.train.recipe import MethodSpec

    set_seed(seed)
    model, tok = load_for_training(path, method or MethodSpec(), precision=precision,
                                   gradient_checkpointing=gradient_checkpointing,
                                   model_class=AutoModelForSequenceClassification, task_type="SEQ_CLS", num_labels=1)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    if not getattr(tok, "chat_template", None):
        raise ConfigError(f"{path}: the tokenizer has no chat template; reward models score chat-formatted text")
    return model, tok


def fit_reward_model(stage: AlignStage, model: Any, tokenizer: Any, examples: list[dict[str, Any]],
                     options: RMOptions, output_dir: Path | None = None,
                     eval_examples: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train a reward model on preference examples; returns the stage metrics (TRL's batch pairwise accuracy and
    mean margin at the last logged step under ``final``; with ``eval_examples`` the held-out loss and pairwise
    accuracy as ``final_eval_loss`` / ``eval_accuracy``)."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    args = RewardConfig(**stage.trl_kwargs(output_dir, max_length=stage.spec.train.max_length,
                                           center_rewards_coefficient=options.center_rewards_coefficient))
    eval_set = Dataset.from_list(conversational_pairs(eval_examples)) if eval_examples else None
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(conversational_pairs(examples)),
                            eval_dataset=eval_set, processing_class=tokenizer)
    metrics = stage.fit(trainer)
    metrics["pairs"] = len(examples)
    metrics["eval_pairs"] = len(eval_examples or [])
    if eval_set is not None:
        result = trainer.evaluate()
        metrics["final_eval_loss"] = result["eval_loss"]
        metrics["eval_accuracy"] = result.get("eval_accuracy")
    metrics["alignment_method"] = "reward model (Bradley-Terry)"
    metrics["final"] = final_metrics(trainer.state.log_history, RM_METRICS)
    return metrics


class RMStage(AlignStage):
    """Reward-model training on preference pairs."""

    type = "rm"
    Options = RMOptions

    @classmethod
    def trainer_configs(cls, recipe: Any, index: int, options: RMOptions) -> tuple[list[str], dict[str, str]]:
        """TRL's RewardConfig."""
        from clinforge.train.trainer_args import TRL

        return [TRL["rm"]], {}
    default_format = "preference"

    def run(self) -> StageResult:
        examples, eval_examples, cards = self.load_pairs(self.options.pairs)
        model, tokenizer = load_reward_model(self.ctx.model_path, self.spec.method, seed=self.ctx.seed,
                                             precision=self.ctx.recipe.precision,
                                             gradient_checkpointing=self.spec.train.gradient_checkpointing)
        metrics = fit_reward_model(self, model, tokenizer, examples, self.options, eval_examples=eval_examples)
        return self.finish(model, tokenizer, metrics=metrics, data=Cards(cards),
                           hyperparameters={"alignment_method": metrics["alignment_method"]})


STAGES.register("rm", RMStage)
