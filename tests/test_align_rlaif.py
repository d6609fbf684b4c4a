"""The rlaif stage end to end: sample from a tiny policy, grade with an AI judge against a rubric, build pairs, train.

Two real judges: (1) a real OpenAI-compatible HTTP server on 127.0.0.1 (``align_helpers.JudgeServer``: the real
``openai:`` client talks the chat-completions protocol to it; its verdicts come from a deterministic rule, since no
language model can be downloaded here, and 1 reply in 32 is prose without a verdict); (2) a real tiny hf model
in-process through the ``hf:`` backend, whose verdicts are almost all unparsable: they must be counted and the
responses left unscored, never given a default score.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from align_helpers import JudgeServer
from clinforge.core.errors import DataError
from clinforge.core.io import read_jsonl

MEDQUAD = "medquad"


@pytest.fixture(scope="module")
def tiny_model(tiny_llama) -> Path:
    return tiny_llama  # conftest: built once per test run


def rlaif_recipe(model: Path, data_root: Path, judge: str, limit: int = 6, **options) -> dict:
    opts = {"judge": judge, "judge_scoring": "text", "judge_max_new_tokens": 16, "samples_per_prompt": 3,
            "max_new_tokens": 12, **options}
    return {"model": str(model), "tracking": {"tensorboard": False},
            "stages": [{"name": "rlaif", "type": "rlaif",
                        "data": {"sources": [{"reader": "medquad", "path": str(data_root / MEDQUAD), "limit": limit}]},
                        "options": opts, "train": {"max_steps": 2, "batch_size": 2, "max_length": 128}}]}


def run(recipe: dict, out: Path, **kw) -> dict:
    from clinforge.train.pipeline import run_pipeline
    from clinforge.train.recipe import Recipe

    return run_pipeline(Recipe.model_validate(recipe), out, **kw)


def check_counts(stage_dir: Path, criteria: int) -> tuple[dict, list[dict]]:
    """judging.json agrees with samples.jsonl; unparsable responses have no score (no default)."""
    judging = json.loads((stage_dir / "judging.json").read_text())
    samples = [obj for _, obj in read_jsonl(stage_dir / "samples.jsonl")]
    assert judging["samples"] == len(samples) == judging["prompts"] * 3
    assert judging["verdicts"] == len(samples) * criteria
    unparsable = [s for s in samples if any(v["met"] is None for v in s["verdicts"])]
    assert judging["samples_unparsable"] == len(unparsable)
    assert all(s["score"] is None and s["raw_score"] is None and not s["parsed"] for s in unparsable)
    assert all(s["score"] is not None and 0.0 <= s["score"] <= 1.0 for s in samples if s not in unparsable)
    assert judging["verdicts_unparsable"] == sum(v["met"] is None for s in samples for v in s["verdicts"])
    return judging, samples


def test_rlaif_dpo_with_openai_http_judge(tmp_path, tiny_model, data_root):
    from transformers import AutoModelForCausalLM

    with JudgeServer() as server:
        summary = run(rlaif_recipe(tiny_model, data_root, server.spec), tmp_path / "run")
        requests = server.requests_seen
    stage_dir = tmp_path / "run" / "stages" / "rlaif"
    judging, samples = check_counts(stage_dir, criteria=7)
    assert requests == judging["verdicts"] == 18 * 7  # one HTTP call per (response, criterion)
    assert judging["rubric"] == "clinical_default" and judging["pairs"] >= 1
    assert judging["pairs"] + sum(judging["prompts_dropped"].values()) == judging["prompts"]
    pairs = [obj for _, obj in read_jsonl(stage_dir / "pairs.jsonl")]
    assert len(pairs) == judging["pairs"]
    for p in pairs:
        assert p["meta"]["chosen_score"] > p["meta"]["rejected_score"]
        scored = [s for s in samples if s["prompt_id"] == p["id"] and s["score"] is not None]
        assert p["meta"]["chosen_score"] == max(s["score"] for s in scored)
        assert p["meta"]["rejected_score"] == min(s["score"] for s in scored)
    metrics = summary["stages"][0]["metrics"]
    assert metrics["alignment_method"] == "RLAIF (DPO on AI-judged rubric pairs)" and metrics["global_step"] == 2
    assert AutoModelForCausalLM.from_pretrained(summary["model"]).config.model_type == "llama"
    assert "RLAIF" in (Path(summary["model"]) / "README.md").read_text()


def test_rlaif_rm_rl_custom_rubric_and_resume_reuses_judgements(tmp_path, tiny_model, data_root):
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text("name: two\ncriteria:\n  - {criterion: Answers the question asked., points: 5}\n"
                      "  - {criterion: Gives an unsafe dose., points: -5}\n")
    recipe = rlaif_recipe(tiny_model, data_root, "", rubric=str(rubric), then="rm_rl", samples_per_prompt=3,
                          rm={}, rl={"num_generations": 2, "max_completion_length": 6})
    with JudgeServer() as server:
        recipe["stages"][0]["options"]["judge"] = server.spec
        summary = run(recipe, tmp_path / "run")
        first = server.requests_seen
        stage_dir = tmp_path / "run" / "stages" / "rlaif"
        judging, _ = check_counts(stage_dir, criteria=2)
        assert first == judging["verdicts"] and judging["rubric"] == "two"
        metrics = summary["stages"][0]["metrics"]
        assert metrics["alignment_method"] == "RLAIF (reward model on AI-judged rubric pairs + RLOO)"
        assert (stage_dir / "reward_model" / "config.json").is_file()
        # a resumed run whose stage did not finish reuses the judgements instead of asking the judge again
        (stage_dir / "stage.json").unlink()
        run(recipe, tmp_path / "run", resume=True)
        assert server.requests_seen == first
    assert json.loads((stage_dir / "judging.json").read_text())["reused_samples"] is True


def test_rlaif_with_tiny_hf_judge_counts_unparsable_verdicts(tmp_path, tiny_model, data_root):
    """A random tiny model as judge: its verdicts are unparsable, counted, and never turned into scores."""
    recipe = rlaif_recipe(tiny_model, data_root, f"hf:{tiny_model}", limit=3, judge_options={"batch_size": 32})
    stage_dir = tmp_path / "run" / "stages" / "rlaif"
    try:
        summary = run(recipe, tmp_path / "run")
    except DataError as exc:  # no pair survived: the error says why, with the counts
        judging, _ = check_counts(stage_dir, criteria=7)
        assert judging["pairs"] == 0 and "criterion verdicts unparsable" in str(exc)
        assert f"{judging['verdicts_unparsable']}/{judging['verdicts']}" in str(exc)
        assert judging["samples_unparsable"] > 0
    else:  # a chance parse made a pair: it trained, and the counts still add up
        judging, _ = check_counts(stage_dir, criteria=7)
        assert summary["stages"][0]["metrics"]["judging"]["pairs"] == judging["pairs"] >= 1
    assert judging["judge"] == f"hf:{tiny_model}"
    assert judging["samples_unparsable"] >= judging["samples"] // 2  # "mostly unparsable", as expected


def test_rlaif_loglik_judge_scores_every_criterion_and_equals_direct_scoring(tmp_path, tiny_model, data_root):
    """judge_scoring: loglik reads each verdict from the judge's log-likelihoods of " yes" / " no": nothing is
    unparsable, and each verdict equals the judge model's own next-token log-probabilities after the prompt."""
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from clinforge.judges import LikelihoodRubricJudge, load_rubric
    from clinforge.models.backends import load_backend

    recipe = rlaif_recipe(tiny_model, data_root, f"hf:{tiny_model}", limit=3, judge_scoring="loglik")
    stage_dir = tmp_path / "run" / "stages" / "rlaif"
    try:
        run(recipe, tmp_path / "run")
    except DataError as exc:  # a random judge may tie every answer; then the error names the ties
        assert "tie" in str(exc)
    judging, samples = check_counts(stage_dir, criteria=7)
    assert judging["samples_unparsable"] == 0 and judging["verdicts_unparsable"] == 0
    scores = [s["score"] for s in samples]
    assert len(set(scores)) > 1  # expected scores are continuous: a random judge still separates answers
    assert all(v["raw"].startswith("ll_yes=") and v["method"] == "loglik" for s in samples for v in s["verdicts"])
    # each verdict is the judge's next-token log-probabilities of " yes" / " no" after the whole rendered prompt
    judge = LikelihoodRubricJudge(load_backend(f"hf:{tiny_model}"), load_rubric())
    tok, model = AutoTokenizer.from_pretrained(tiny_model), AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    for criterion in load_rubric().criteria[:3]:
        yes_req, no_req = judge.requests_for("Is a fever of 39 C in a newborn urgent?", samples[0]["response"],
                                             criterion)
        assert yes_req.context == no_req.context and criterion.criterion in yes_req.context
        assert yes_req.context.endswith("Answer (yes or no):") and tok.chat_template
        (ll_yes, _), (ll_no, _) = judge.backend.loglikelihood([yes_req, no_req])
        prompt = tok(yes_req.context, add_special_tokens=False)["input_ids"]
        direct = []
        for word in (" yes", " no"):  # log p(word | whole prompt), summed over the word's tokens
            ids = tok(yes_req.context + word, add_special_tokens=False)["input_ids"]
            assert ids[:len(prompt)] == prompt
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
            direct.append(sum(logp[i - 1, ids[i]].item() for i in range(len(prompt), len(ids))))
        assert math.isclose(ll_yes, direct[0], abs_tol=1e-3) and math.isclose(ll_no, direct[1], abs_tol=1e-3)


def test_build_pairs_drops_and_counts_without_defaults():
    from clinforge.train.align.rlaif import RLAIFOptions, build_pairs

    rows = [{"id": f"q{i}", "prompt": [{"role": "user", "content": f"question {i}"}]} for i in range(5)]
    judged = []
    for p, scored in enumerate([[0.9, None, 0.2],  # pair: 0.9 vs 0.2 (the unparsable one is ignored)
                                [None, None, 0.5],  # one scored response: no pair
                                [0.4, 0.4, 0.4],  # tie
                                [0.7, 0.1, 0.7],  # first of the equal best is chosen
                                [0.6, 0.5, 0.3]]):  # margin 0.3
        for s, score in enumerate(scored):
            judged.append({"prompt_index": p, "response": f"r{p}-{s}", "score": score})
    judged[-1]["response"] = judged[-3]["response"]  # identical best and worst texts in prompt 4
    pairs, dropped = build_pairs(rows, judged)
    assert [(p.id, p.chosen, p.rejected) for p in pairs] == [("q0", "r0-0", "r0-2"), ("q3", "r3-0", "r3-1")]
    assert dropped == {"fewer than two responses with a parsable verdict": 1, "tie (best - worst <= min_margin)": 1,
                       "identical best and worst responses": 1}
    pairs, dropped = build_pairs(rows[:1], judged[:3], min_margin=0.7)
    assert pairs == [] and dropped == {"tie (best - worst <= min_margin)": 1}
    with pytest.raises(ValueError, match="sets rl.reward_model"):
        RLAIFOptions(judge="hf:x", rl={"reward_model": "y"})
    with pytest.raises(ValueError, match="remove dpo.pairs"):
        RLAIFOptions(judge="hf:x", dpo={"pairs": {"strategy": "wrong_option"}})
