"""``rl`` stage: online policy optimisation with TRL's stable trainers, ``RLOOTrainer`` (REINFORCE leave-one-out,
the default) or ``GRPOTrainer`` (group-relative advantages with PPO-style clipping), against a reward model,
named reward functions (``clinforge.train.align.rewards.REWARDS``), or both (TRL sums them with
``reward_weights``).

PPO is not offered: TRL 1.16 keeps it in ``trl.experimental``. When a reward model gives the reward, the model
card names the method **RLHF** (the reward model stands for human preferences); with rule rewards only it is
"RL with rule-based rewards".

For each prompt the policy samples ``num_generations`` completions; TRL fills each optimizer step with whole
groups, so ``batch_size * grad_accum`` must be a multiple of ``num_generations`` (checked with a clear error).

Recipe::

    - name: rl
      type: rl
      data: {sources: [{reader: pubmedqa, path: ..., limit: 32}]}
      options: {algorithm: rloo, reward_model: stage:rm, rewards: [mcq_letter], num_generations: 4}
      train: {lr: 1.0e-5, max_steps: 4, batch_size: 4}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from clinforge.core.config import StrictModel
from clinforge.core.errors import ConfigError
from clinforge.core.registry import UnknownComponentError
from clinforge.train.align.common import AlignStage, Cards, PromptOptions, final_metrics
from clinforge.train.align.rewards import build_reward
from clinforge.train.recipe import TrainArgs  # noqa: F401  (used by the check_rl_options example)
from clinforge.train.stages import STAGES
from clinforge.train.stages.base import StageResult


class RLOptions(StrictModel):
    """Options of the ``rl`` stage. ``reward_model``: ``stage:NAME`` (an earlier rm stage) or a folder."""

    algorithm: Literal["rloo", "grpo"] = "rloo"
    reward_model: str | None = None
    rewards: list[dict[str, Any] | str] = Field(default_factory=list)
    reward_weights: list[float] | None = None
    num_generations: int = Field(4, ge=2)
    max_completion_length: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    beta: float | None = Field(None, ge=0)  # KL coefficient; None: TRL's default for the algorithm
    prompts: PromptOptions = Field(default_factory=PromptOptions)


def rl_method_name(options: RLOptions) -> str:
    """The user-facing method name: RLHF when a learned reward model gives the reward.

    Example:
        >>> rl_method_name(RLOptions(reward_model="stage:rm"))
        'RLHF (RLOO against a learned reward model)'
        >>> rl_method_name(RLOptions(algorithm="grpo", rewards=["mcq_letter"]))
        'RL with rule-based rewards (GRPO: mcq_letter)'
    """
    algo = options.algorithm.upper()
    names = [r if isinstance(r, str) else str(r.get("name")) for r in options.rewards]
    if options.reward_model:
        extra = f" + {', '.join(names)}" if names else ""
        return f"RLHF ({algo} against a learned reward model{extra})"
    return f"RL with rule-based rewards ({algo}: {', '.join(names)})"


def check_rl_options(options: RLOptions, train: Any, *, has_reward_model: bool, key: str = "options") -> None:
    """The rules of an RL setup knowable before training (ConfigError with ``key`` + the field): a reward is
    given, the batch holds whole groups of ``num_generations``, every reward function exists and takes its
    options, and ``reward_weights`` has one weight per reward.

    Example:
        >>> check_rl_options(RLOptions(rewards=["length"]), TrainArgs(batch_size=4), has_reward_model=False)
    """
    if not has_reward_model and not options.rewards:
        raise ConfigError("rl: give reward_model (stage:NAME of an rm stage, or a folder) and/or rewards (named "
                          "reward functions: mcq_letter, length, format, ...)", key=f"{key}.rewards")
    per_step = train.batch_size * train.grad_accum
    if per_step % options.num_generations:
        raise ConfigError(f"rl: train.batch_size x train.grad_accum = {per_step} must be a multiple of "
                          f"num_generations = {options.num_generations}", key=f"{key}.num_generations")
    for j, reward in enumerate(options.rewards):
        try:
            build_reward(reward)
        except (ConfigError, UnknownComponentError) as exc:
            raise ConfigError(getattr(exc, "message", str(exc)), key=f"{key}.rewards.{j}") from None
    n_rewards = int(has_reward_model) + len(options.rewards)
    if options.reward_weights is not None and len(options.reward_weights) != n_rewards:
        raise ConfigError(f"rl: reward_weights has {len(options.reward_weights)} values for {n_rewards} "
                          "rewards (the reward model first, then rewards in order)", key=f"{key}.reward_weights")


def fit_rl(stage: AlignStage, model: Any, tokenizer: Any, rows: list[dict[str, Any]], options: RLOptions,
           reward_model_path: str | None, output_dir: Path | None = None) -> dict[str, Any]:
    """Optimise ``model`` on prompt rows against the reward model and/or reward functions; returns metrics."""
    from datasets import Dataset

    check_rl_options(options, stage.spec.train, has_reward_model=bool(reward_model_path))
    reward_funcs: list[Any] = []
    reward_tokenizers: list[Any] = []
    if reward_model_path:
        from clinforge.models.load import check_model_folder
        from clinforge.train.align.rm import load_reward_model

        check_model_folder(reward_model_path)
        rm, rm_tok = load_reward_model(reward_model_path, precision=stage.ctx.recipe.precision)
        rm.eval().requires_grad_(False)
        reward_funcs.append(rm)
        reward_tokenizers.append(rm_tok)
    for spec in options.rewards:
        reward_funcs.append(build_reward(spec))
        reward_tokenizers.append(None)
    tokenizer.padding_side = "left"  # generation pads on the left
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    extra: dict[str, Any] = dict(num_generations=options.num_generations,
                                 max_completion_length=options.max_completion_length,
                                 temperature=options.temperature, top_p=options.top_p,
                                 reward_weights=options.reward_weights,
                                 # training loads turn the KV cache off (packing); sampling still wants it
                                 generation_kwargs={"use_cache": True})
    if options.beta is not None:
        extra["beta"] = options.beta
    if options.algorithm == "rloo":
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer
    else:
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer
    kwargs = stage.trl_kwargs(output_dir, **extra)
    kwargs.pop("include_num_input_tokens_seen", None)
    args = Config(**kwargs)
    trainer = Trainer(model=model, reward_funcs=reward_funcs, args=args, train_dataset=Dataset.from_list(rows),
                      processing_class=tokenizer, reward_processing_classes=reward_tokenizers)
    metrics = stage.fit(trainer)
    names = sorted({k for row in trainer.state.log_history for k in row
                    if k.startswith(("rewards/", "mcq_letter/"))})
    metrics["prompts"] = len(rows)
    metrics["alignment_method"] = rl_method_name(options.model_copy(update={"reward_model": reward_model_path}))
    metrics["final"] = final_metrics(trainer.state.log_history, ("loss", "reward", "reward_std", "kl", *names))
    tokenizer.padding_side = "right"
    return metrics


def rl_configs(options: RLOptions) -> tuple[list[str], dict[str, str]]:
    """The TRL config an RL stage builds and the config keys its options set (for ``trainer_args``)."""
    from clinforge.train.trainer_args import TRL

    keys = {k: k for k in ("num_generations", "max_completion_length", "temperature", "top_p", "reward_weights",
                           "beta")}
    keys["generation_kwargs"] = "(fixed: use_cache on for sampling)"
    return [TRL[options.algorithm]], keys


class RLStage(AlignStage):
    """Online RL (RLOO / GRPO) of the policy against a reward model and/or reward functions."""

    type = "rl"
    Options = RLOptions

    @classmethod
    def trainer_configs(cls, recipe: Any, index: int, options: RLOptions) -> tuple[list[str], dict[str, str]]:
        """RLOOConfig or GRPOConfig, by ``options.algorithm``."""
        return rl_configs(options)
    default_format = "prompt"

    @classmethod
    def check_spec(cls, recipe: Any, index: int, options: RLOptions) -> None:
        """Online-stage rules, the reward model reference (an earlier stage, or an existing folder), RL rules."""
        super().check_spec(recipe, index, options)
        ref = options.reward_model
        if ref and ref.startswith("stage:"):
            earlier = {s.name: s.type for s in recipe.stages[:index]}
            name = ref.split(":", 1)[1]
            if name not in earlier:
                raise ConfigError(f"{ref}: no earlier stage named {name!r} (earlier stages: "
                                  f"{', '.join(earlier) or 'none'})", key="options.reward_model")
            if earlier[name] != "rm":
                raise ConfigError(f"{ref}: stage {name!r} is a {earlier[name]} stage, not a reward model (rm) stage",
                                  key="options.reward_model")
        elif ref and not Path(ref).exists():
            raise ConfigError(f"reward model folder not found: {ref}", key="options.reward_model")
        check_rl_options(options, recipe.stages[index].train, has_reward_model=bool(ref))

    def run(self) -> StageResult:
        rows, cards = self.load_prompts(self.options.prompts)
        reward_model = self.previous_stage_model(self.options.reward_model) if self.options.reward_model else None
        model, tokenizer = self.load_model()
        metrics = fit_rl(self, model, tokenizer, rows, self.options, reward_model)
        return self.finish(model, tokenizer, metrics=metrics, data=Cards(cards),
                           hyperparameters={"alignment_method": metrics["alignment_method"],
                                            "reward_model": reward_model})


STAGES.register("rl", RLStage)
