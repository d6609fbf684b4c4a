"""``rlaif`` stage: reinforcement learning from AI feedback against a written clinical rubric.

1. **Sample**: the current policy (the stage's input model) samples ``samples_per_prompt`` responses per prompt
   (``temperature``/``top_p`` sampling, seeded).
2. **Judge**: an AI judge grades every response against the rubric with :class:`clinforge.judges.RubricJudge`
   (HealthBench-style: one verdict per criterion; score = met points / positive points, clipped to [0, 1]). The
   judge is any backend SPEC: ``hf:FOLDER`` (a local model in-process) or ``openai:BASE_URL#MODEL`` (vLLM, Ollama,
   llama.cpp, any OpenAI-compatible server). The rubric defaults to the packaged ``clinical_default`` rubric of
   ``clinforge.judges``; ``rubric: path.yaml`` gives your own.
3. **Pairs**: per prompt, chosen = the highest-scored response, rejected = the lowest-scored one, among responses
   whose every criterion verdict parsed. A response with any unparsable verdict has no score (never a default);
   a prompt with fewer than two scored responses, a tie (best - worst <= ``min_margin``) or identical texts gives
   no pair. All of these are counted in the summary; ``samples.jsonl`` keeps every judgement (raw verdicts
   included) and ``pairs.jsonl`` the pairs, both in the stage folder.
4. **Train**: ``then: dpo`` (default) trains the policy with DPO on the pairs; ``then: rm_rl`` trains a reward model
   on the pairs and then the policy with RLOO/GRPO against it (the model card calls it RLAIF either way).

Sampling and judging are written once (``samples.jsonl`` with a fingerprint of the settings); ``--resume`` reuses
them when the fingerprint matches, so a killed run does not pay for the judge twice.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from clinforge.core.config import StrictModel
from clinforge.core.errors import ConfigError, DataError
from clinforge.core.io import atomic_write_json, read_jsonl, write_jsonl
from clinforge.core.seed import seed_everything
from clinforge.data.records import Message, Record
from clinforge.train.align.common import AlignStage, Cards, PromptOptions
from clinforge.train.align.dpo import DPOOptions, fit_preference, preference_configs
from clinforge.train.align.rl import RLOptions, check_rl_options, fit_rl, rl_configs
from clinforge.train.align.rm import RMOptions, fit_reward_model, load_reward_model
from clinforge.train.stages import STAGES
from clinforge.train.stages.base import StageResult


class RLAIFOptions(StrictModel):
    """Options of the ``rlaif`` stage (see the module docstring)."""

    # default: a local model from clinforge's offline registry (``clinforge models fetch smollm2-135m-instruct``),
    # so the stage runs without any server; any backend SPEC works (hf:PATH, openai:URL#MODEL, vllm:PATH)
    judge: str = Field("hf:smollm2-135m-instruct", min_length=1)
    # loglik: each criterion is a yes/no question scored by the judge's log-likelihood of " yes" vs " no" (nothing
    # to parse; clinforge.judges.likelihood_rubric); text: the judge writes a JSON verdict that is parsed
    judge_scoring: Literal["loglik", "text"] = "loglik"
    judge_options: dict[str, Any] = Field(default_factory=dict)  # backend constructor options (batch_size, ...)
    judge_max_new_tokens: int = Field(256, ge=1)
    judge_batch_items: int = Field(16, ge=1)  # responses graded per backend batch (x criteria requests)
    rubric: str | None = None  # a rubric YAML; None: clinforge.judges' packaged clinical_default rubric
    samples_per_prompt: int = Field(4, ge=2)
    max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    sample_batch_size: int = Field(8, ge=1)
    min_margin: float = Field(0.0, ge=0)
    prompts: PromptOptions = Field(default_factory=PromptOptions)
    then: Literal["dpo", "rm_rl"] = "dpo"
    dpo: DPOOptions = Field(default_factory=DPOOptions)
    rm: RMOptions = Field(default_factory=RMOptions)
    rl: RLOptions = Field(default_factory=RLOptions)

    @model_validator(mode="after")
    def _inner(self) -> RLAIFOptions:
        if self.dpo.pairs is not None or self.rm.pairs is not None:
            raise ValueError("rlaif builds its pairs from the judge's scores; remove dpo.pairs / rm.pairs")
        if self.rl.reward_model:
            raise ValueError("rlaif sets rl.reward_model to the reward model it trains; remove it")
        return self


def sample_responses(model_path: str | Path, prompts: list[list[dict[str, str]]], *, k: int, max_new_tokens: int,
                     temperature: float, top_p: float, seed: int, batch_size: int = 8) -> list[list[str]]:
    """``k`` sampled responses for each chat prompt from the causal LM at ``model_path`` (left-padded batches).

    Example:
        >>> sample_responses("runs/sft/model", [[{"role": "user", "content": "Asthma?"}]], k=2, max_new_tokens=8,
        ...                  temperature=1.0, top_p=1.0, seed=0)  # doctest: +SKIP
        [['Asthma is ...', 'It is a ...']]
    """
    import torch

    from clinforge.models.load import load_llm

    model, tokenizer = load_llm(model_path, "fp32")
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    seed_everything(seed)
    from clinforge.core.progress import progress_bar

    out: list[list[str]] = []
    for start in progress_bar(range(0, len(prompts), batch_size), desc="rlaif: sampling", unit="batch"):
        chunk = prompts[start:start + batch_size]
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in chunk]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            gen = model.generate(**enc, do_sample=True, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, num_return_sequences=k,
                                 pad_token_id=tokenizer.pad_token_id)
        new = gen[:, enc["input_ids"].shape[1]:]
        decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
        out += [[t.strip() for t in decoded[i * k:(i + 1) * k]] for i in range(len(chunk))]
    return out


def build_pairs(rows: list[dict[str, Any]], judged: list[dict[str, Any]], min_margin: float = 0.0
                ) -> tuple[list[Record], Counter]:
    """Best-vs-worst preference records from judged samples; returns (pairs, drops by reason).

    ``judged`` holds one entry per sample: ``prompt_index``, ``response``, ``score`` (None when unparsable).
    Among equal best (or worst) scores the first sampled response is taken, so the result is deterministic.

    Example:
        >>> rows = [{"id": "q1", "prompt": [{"role": "user", "content": "q"}]}]
        >>> judged = [{"prompt_index": 0, "response": r, "score": s} for r, s in [("a", 0.9), ("b", None), ("c", 0.1)]]
        >>> pairs, dropped = build_pairs(rows, judged)
        >>> (pairs[0].chosen, pairs[0].rejected, dict(dropped))
        ('a', 'c', {})
    """
    by_prompt: dict[int, list[dict[str, Any]]] = {}
    for item in judged:
        by_prompt.setdefault(item["prompt_index"], []).append(item)
    pairs, dropped = [], Counter()
    for index, row in enumerate(rows):
        scored = [s for s in by_prompt.get(index, []) if s["score"] is not None]
        if len(scored) < 2:
            dropped["fewer than two responses with a parsable verdict"] += 1
            continue
        best = max(scored, key=lambda s: s["score"])
        worst = min(scored, key=lambda s: s["score"])
        if best["score"] - worst["score"] <= min_margin:
            dropped["tie (best - worst <= min_margin)"] += 1
            continue
        if best["response"].strip() == worst["response"].strip():
            dropped["identical best and worst responses"] += 1
            continue
        pairs.append(Record(id=str(row.get("id", index)), kind="preference",
                            prompt=[Message(**m) for m in row["prompt"]], chosen=best["response"],
                            rejected=worst["response"],
                            meta={"pair_strategy": "rlaif_best_vs_worst", "chosen_score": best["score"],
                                  "rejected_score": worst["score"]}))
    return pairs, dropped


def _fingerprint(options: RLAIFOptions, model_path: str | Path, rows: list[dict[str, Any]], seed: int) -> str:
    keys = ("judge", "judge_scoring", "judge_options", "judge_max_new_tokens", "rubric", "samples_per_prompt", "max_new_tokens",
            "temperature", "top_p", "prompts")
    blob = json.dumps({"options": options.model_dump(include=set(keys)), "model": str(model_path), "seed": seed,
                       "prompts": [r["prompt"] for r in rows]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def judge_samples(options: RLAIFOptions, rows: list[dict[str, Any]], samples: list[list[str]]) -> list[dict[str, Any]]:
    """Grade every sampled response with the rubric judge; one entry per sample (score None if unparsable)."""
    from clinforge.judges import LikelihoodRubricJudge, RubricJudge, load_rubric
    from clinforge.models.backends import load_backend

    rubric = load_rubric(options.rubric)
    backend = load_backend(options.judge, **options.judge_options)
    try:
        if options.judge_scoring == "loglik":
            judge: RubricJudge = LikelihoodRubricJudge(backend, rubric)
        else:
            judge = RubricJudge(backend, rubric, max_new_tokens=options.judge_max_new_tokens)
        items, index = [], []
        for p, responses in enumerate(samples):
            for s, response in enumerate(responses):
                items.append({"prompt": rows[p]["prompt"], "response": response})
                index.append((p, s))
        from clinforge.core.progress import progress_bar

        results = []
        step = max(1, options.judge_batch_items)
        for start in progress_bar(range(0, len(items), step), desc="rlaif: judging", unit="batch"):
            results += judge.grade_many(items[start:start + step])
    finally:
        backend.close()
    judged = []
    for (p, s), item, result in zip(index, items, results, strict=True):
        judged.append({"prompt_index": p, "prompt_id": rows[p].get("id"), "sample": s, "response": item["response"],
                       "score": result.score, "raw_score": result.raw_score, "parsed": result.parsed,
                       "n_unparsable_criteria": result.n_unparsable,
                       "verdicts": [{"id": c.id, "met": c.met, "method": c.method, "error": c.error, "raw": c.raw}
                                    for c in result.per_criterion]})
    return judged


def _check_judge(spec: str) -> None:
    """Fail before any sampling when the judge cannot work: an unfetched registry model, a missing local folder."""
    from clinforge.core.errors import ClinforgeError
    from clinforge.models.backends import parse_spec
    from clinforge.models.offline_models import resolve_model_ref

    scheme, target = parse_spec(spec)
    if scheme not in ("hf", "vllm"):
        return
    try:
        resolve_model_ref(target)
    except ClinforgeError as exc:
        raise ConfigError(str(exc), key="options.judge") from None


class RLAIFStage(AlignStage):
    """Sample from the policy, judge against a clinical rubric, build pairs, train with DPO or RM + RL."""

    type = "rlaif"
    Options = RLAIFOptions

    @classmethod
    def trainer_configs(cls, recipe: Any, index: int, options: RLAIFOptions) -> tuple[list[str], dict[str, str]]:
        """The configs of what the stage trains after judging: DPO (or KTO), or a reward model then RL; a
        ``trainer_args`` key applies to each of them, so it must fit all."""
        from clinforge.train.trainer_args import TRL

        if options.then == "dpo":
            classes, keys = preference_configs(options.dpo)
            return classes, {k: f"dpo.{v}" for k, v in keys.items()}
        classes, keys = rl_configs(options.rl)
        return [TRL["rm"], *classes], {k: f"rl.{v}" for k, v in keys.items()}
    default_format = "prompt"

    @classmethod
    def check_spec(cls, recipe: Any, index: int, options: RLAIFOptions) -> None:
        """Online-stage rules, the rubric file, and (``then: rm_rl``) the RL rules of ``options.rl``."""
        super().check_spec(recipe, index, options)
        if options.rubric and not Path(options.rubric).is_file():
            raise ConfigError(f"rubric file not found: {options.rubric}", key="options.rubric")
        from clinforge.judges import load_rubric

        load_rubric(options.rubric)  # a malformed rubric names its own file, line and key
        _check_judge(options.judge)
        if options.then == "rm_rl":
            check_rl_options(options.rl, recipe.stages[index].train, has_reward_model=True, key="options.rl")

    def judged_samples(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """Sample and judge (on the main process only; other ranks wait and read the result), or reuse
        ``samples.jsonl`` when its fingerprint matches (on resume, and on the other ranks)."""
        from clinforge.train.hf_trainer import barrier, is_main_process

        opts = self.options
        samples_path, meta_path = self.ctx.out_dir / "samples.jsonl", self.ctx.out_dir / "samples.meta.json"
        fingerprint = _fingerprint(opts, self.ctx.model_path, rows, self.ctx.seed)

        def saved() -> bool:
            return samples_path.is_file() and meta_path.is_file() and \
                json.loads(meta_path.read_text(encoding="utf-8")).get("fingerprint") == fingerprint

        if self.ctx.resume and saved():
            return [obj for _, obj in read_jsonl(samples_path)], True
        if not is_main_process():
            barrier()  # rank 0 samples and judges once for everybody
            if not saved():
                raise DataError(f"stage {self.spec.name}: rank 0 wrote no judged samples", file=str(samples_path))
            return [obj for _, obj in read_jsonl(samples_path)], False
        samples = sample_responses(self.ctx.model_path, [r["prompt"] for r in rows], k=opts.samples_per_prompt,
                                   max_new_tokens=opts.max_new_tokens, temperature=opts.temperature,
                                   top_p=opts.top_p, seed=self.ctx.seed, batch_size=opts.sample_batch_size)
        judged = judge_samples(opts, rows, samples)
        write_jsonl(samples_path, judged)
        atomic_write_json(meta_path, {"fingerprint": fingerprint, "judge": opts.judge, "rubric": opts.rubric})
        barrier()
        return judged, False

    def run(self) -> StageResult:
        from clinforge.judges import healthbench_aggregate, load_rubric

        opts = self.options
        rubric = load_rubric(opts.rubric)  # a bad rubric fails before any sampling
        rows, cards = self.load_prompts(opts.prompts)
        self.ctx.out_dir.mkdir(parents=True, exist_ok=True)
        judged, reused = self.judged_samples(rows)
        pairs, dropped = build_pairs(rows, judged, opts.min_margin)
        from clinforge.train.hf_trainer import is_main_process

        main = is_main_process()
        if main:
            write_jsonl(self.ctx.out_dir / "pairs.jsonl", [p.model_dump(exclude_none=True) for p in pairs])
        scored = [j["raw_score"] for j in judged if j["parsed"]]
        verdicts = [v for j in judged for v in j["verdicts"]]
        judging = {
            "judge": opts.judge, "rubric": rubric.name, "criteria": len(rubric.criteria), "prompts": len(rows),
            "samples": len(judged), "samples_scored": len(scored), "samples_unparsable": len(judged) - len(scored),
            "verdicts": len(verdicts), "verdicts_unparsable": sum(v["met"] is None for v in verdicts),
            "healthbench_score_of_samples": healthbench_aggregate(scored), "pairs": len(pairs),
            "prompts_dropped": dict(dropped), "reused_samples": reused,
        }
        if main:
            atomic_write_json(self.ctx.out_dir / "judging.json", judging)
        if not pairs:
            why = "; ".join(f"{n} x {reason}" for reason, n in sorted(dropped.items()))
            raise DataError(f"stage {self.spec.name}: no preference pair survived judging ({why}; "
                            f"{judging['verdicts_unparsable']}/{judging['verdicts']} criterion verdicts unparsable); "
                            f"see {self.ctx.out_dir / 'samples.jsonl'}. Use a stronger judge or more "
                            "samples_per_prompt")
        examples = [{"prompt": [m.model_dump() for m in p.prompt or []], "chosen": p.chosen, "rejected": p.rejected}
                    for p in pairs]
        if opts.then == "dpo":
            model, tokenizer = self.load_model()
            metrics = fit_preference(self, model, tokenizer, examples, opts.dpo)
            method = f"RLAIF ({metrics['alignment_method']} on AI-judged rubric pairs)"
        else:
            rm_dir = self.ctx.out_dir / "reward_model"
            rm_metrics = None
            if not (self.ctx.resume and (rm_dir / "config.json").is_file()):
                rm, rm_tok = load_reward_model(self.ctx.model_path, seed=self.ctx.seed,
                                               precision=self.ctx.recipe.precision)
                rm_metrics = fit_reward_model(self, rm, rm_tok, examples, opts.rm,
                                              output_dir=self.ctx.out_dir / "rm_checkpoints")
                from clinforge.train.export import save_trained

                save_trained(rm, rm_tok, rm_dir, merge=True, trainer=self.trainer)  # every rank: shards gathered
                del rm
            model, tokenizer = self.load_model()
            metrics = fit_rl(self, model, tokenizer, rows, opts.rl, str(rm_dir))
            metrics["reward_model_training"] = rm_metrics
            method = f"RLAIF (reward model on AI-judged rubric pairs + {opts.rl.algorithm.upper()})"
        metrics["alignment_method"] = method
        metrics["judging"] = judging
        return self.finish(model, tokenizer, metrics=metrics, data=Cards(cards),
                           hyperparameters={"alignment_method": method, "judge": opts.judge, "rubric": rubric.name})


STAGES.register("rlaif", RLAIFStage)
