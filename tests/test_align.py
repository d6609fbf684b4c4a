"""Alignment stages (rm, rl, dpo + variants) and their building blocks, on real data with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clinforge.core.errors import ClinforgeError, ConfigError, DataError
from clinforge.data.load import load_records
from clinforge.data.records import Message, Record
from clinforge.data.transforms.base import TRANSFORMS, get_transform
from clinforge.train.align.rewards import REWARDS, build_reward, parse_answer_letter

PUBMEDQA = "pubmedqa/data/ori_pqal.json"


@pytest.fixture(scope="module")
def tiny_model(tiny_llama) -> Path:
    return tiny_llama  # conftest: built once per test run


def run_stage(tmp_path: Path, model: Path, stage: dict, **recipe) -> dict:
    from clinforge.train.pipeline import run_pipeline
    from clinforge.train.recipe import Recipe

    spec = Recipe.model_validate({"model": str(model), "tracking": {"tensorboard": False}, "stages": [stage],
                                  **recipe})
    return run_pipeline(spec, tmp_path / "run")


# ---- make_preference ---------------------------------------------------------------------------------------
def test_wrong_option_pairs_on_pubmedqa(data_root):
    records = load_records(str(data_root / PUBMEDQA), "pubmedqa", limit=40)
    transform = get_transform("make_preference", strategy="wrong_option", seed=3)
    pairs = list(transform.apply(records))
    assert len(pairs) == 40 and transform.report()["dropped_total"] == 0
    by_id = {r.id: r for r in records}
    for p in pairs:
        gold = by_id[p.id]
        assert p.kind == "preference" and p.prompt[-1].content.startswith(gold.question)
        assert p.chosen == f"{gold.answer}. {gold.choices[gold.answer_index]}"
        bad = p.meta["rejected_option"]
        assert bad != gold.answer and p.rejected == f"{bad}. {gold.choices['ABC'.index(bad)]}"
    again = [p.rejected for p in get_transform("make_preference", strategy="wrong_option", seed=3).apply(records)]
    assert again == [p.rejected for p in pairs]  # seeded, deterministic


def test_mismatched_answer_pairs_on_medquad(data_root):
    records = load_records(str(data_root / "medquad"), "medquad", limit=30)
    transform = get_transform("make_preference", strategy="mismatched_answer", seed=0)
    pairs = list(transform.apply(records))
    answers = {r.id: r.answer for r in records}
    assert pairs and len(pairs) + transform.report()["dropped_total"] == len(records)
    for p in pairs:
        assert p.chosen == answers[p.id]
        assert p.meta["rejected_from"] != p.id and p.rejected == answers[p.meta["rejected_from"]]
        assert p.rejected.strip() != p.chosen.strip()


def test_make_preference_counts_what_it_drops():
    dup = [Record(id=str(i), kind="qa", question=f"q{i}", answer="same answer") for i in range(3)]
    t = get_transform("make_preference", strategy="mismatched_answer")
    assert list(t.apply(dup + [Record(id="n", kind="note", text="x")])) == []
    assert t.report()["dropped"] == {"rejected answer identical to the chosen one": 3,
                                     "kind note has no free-text answer": 1}
    t = get_transform("make_preference", strategy="wrong_option")
    mcq = Record(id="m", kind="mcq", question="q", choices=["a", "a"], answer="A")
    assert list(t.apply([mcq])) == [] and t.report()["dropped_total"] == 1
    with pytest.raises(ConfigError, match="make_preference.strategy: Input should be 'wrong_option' or 'mismatched_answer'"):
        get_transform("make_preference", strategy="nope")
    assert "make_preference" in TRANSFORMS


# ---- rewards -----------------------------------------------------------------------------------------------
def test_reward_functions():
    assert parse_answer_letter("The answer is (C).") == "C" and parse_answer_letter("maybe later") is None
    logged = {}
    fn = build_reward("mcq_letter")
    got = fn(prompts=["q"] * 3, completions=[[{"role": "assistant", "content": "Answer: B. no"}], "A.", "hmm"],
             answer=["B", "B", "B"], log_metric=lambda k, v: logged.update({k: v}))
    assert got == [1.0, 0.0, 0.0] and logged == {"mcq_letter/unparsable_frac": pytest.approx(1 / 3)}
    assert build_reward({"name": "length", "min_words": 2, "max_words": 4, "tolerance": 2})(
        prompts=[""] * 3, completions=["a", "a b c", "a b c d e f"]) == [0.5, 1.0, 0.0]
    with pytest.raises(ClinforgeError, match="valid: format, length, mcq_letter"):
        build_reward("no-such-reward")
    with pytest.raises(ConfigError, match="needs an 'answer' column"):
        fn(prompts=["q"], completions=["A"])
    assert {"mcq_letter", "length", "format"} <= set(REWARDS.names())


def test_dpo_options_validate_loss_types():
    from clinforge.train.align.dpo import DPOOptions

    with pytest.raises(ValueError, match="valid: sigmoid, hinge, ipo"):
        DPOOptions(loss_type="orpo")
    with pytest.raises(ValueError, match="cannot be combined"):
        DPOOptions(loss_type=["kto", "sigmoid"])
    assert DPOOptions(loss_type=["sigmoid", "sft"], loss_weights=[1, 0.5]).method_name() == "DPO (loss sigmoid + sft)"


# ---- stages --------------------------------------------------------------------------------------------------
def test_dpo_ipo_with_lora_produces_a_loadable_model(tmp_path, tiny_model, data_root):
    from transformers import AutoModelForCausalLM

    stage = {"name": "ipo", "type": "dpo",
             "data": {"sources": [{"reader": "pubmedqa", "path": str(data_root / PUBMEDQA), "limit": 16}],
                      "eval_fraction": 0.25},
             "options": {"loss_type": "ipo", "beta": 0.2, "pairs": {"strategy": "wrong_option"}},
             "method": {"type": "lora", "r": 4, "merge": True},
             "train": {"lr": 1e-3, "max_steps": 2, "batch_size": 4, "max_length": 128, "eval_every": 1}}
    summary = run_stage(tmp_path, tiny_model, stage)
    metrics = summary["stages"][0]["metrics"]
    assert metrics["global_step"] == 2 and metrics["pairs"] == 12 and metrics["eval_pairs"] == 4
    assert metrics["final_eval_loss"] > 0 and len(metrics["eval_losses"]) == 2  # eval every step
    assert metrics["alignment_method"] == "DPO (loss ipo)" and "rewards/margins" in metrics["final"]
    model = AutoModelForCausalLM.from_pretrained(summary["model"])
    assert not (Path(summary["model"]) / "adapter_config.json").exists() and model.config.model_type == "llama"
    card = (Path(summary["model"]) / "README.md").read_text()
    assert "DPO (loss ipo)" in card and "clinician" in card


def test_kto_variant_trains_on_pairs(tmp_path, tiny_model, data_root):
    stage = {"name": "kto", "type": "dpo",
             "data": {"sources": [{"reader": "medquad", "path": str(data_root / "medquad"), "limit": 8}]},
             "options": {"loss_type": "kto", "pairs": {"strategy": "mismatched_answer"}},
             "train": {"max_steps": 2, "batch_size": 4, "max_length": 128}}
    metrics = run_stage(tmp_path, tiny_model, stage)["stages"][0]["metrics"]
    assert metrics["alignment_method"] == "KTO" and metrics["global_step"] == 2


def test_rm_then_grpo_rlhf(tmp_path, tiny_model, data_root):
    """rm -> rl: the reward model loads as a sequence classifier, rl starts from the policy, not from the rm."""
    from transformers import AutoModelForSequenceClassification

    src = {"reader": "pubmedqa", "path": str(data_root / PUBMEDQA), "limit": 8}
    eval_src = {"reader": "pubmedqa", "path": str(data_root / PUBMEDQA), "limit": 12}
    stages = [{"name": "rm", "type": "rm", "data": {"sources": [src], "eval_sources": [eval_src]},
               "options": {"pairs": {"strategy": "wrong_option"}},
               "train": {"max_steps": 2, "batch_size": 4, "max_length": 128}},
              {"name": "rl", "type": "rl", "data": {"sources": [src]},
               "options": {"algorithm": "grpo", "reward_model": "stage:rm", "num_generations": 2,
                           "max_completion_length": 6, "rewards": ["mcq_letter", {"name": "format",
                                                                                  "pattern": "^Answer"}]},
               "train": {"max_steps": 2, "batch_size": 4}}]
    from clinforge.train.pipeline import run_pipeline
    from clinforge.train.recipe import Recipe

    summary = run_pipeline(Recipe.model_validate({"model": str(tiny_model), "tracking": {"tensorboard": False},
                                                  "stages": stages}), tmp_path / "run")
    rm_dir = Path(summary["stages"][0]["model_dir"])
    reward_model = AutoModelForSequenceClassification.from_pretrained(rm_dir)
    assert reward_model.config.num_labels == 1
    rm_metrics = summary["stages"][0]["metrics"]
    assert rm_metrics["eval_pairs"] == 12 and 0.0 <= rm_metrics["eval_accuracy"] <= 1.0
    rl = summary["stages"][1]
    assert rl["base_model"] == str(tiny_model)  # the policy, not the reward model
    assert rl["metrics"]["alignment_method"] == "RLHF (GRPO against a learned reward model + mcq_letter, format)"
    final = rl["metrics"]["final"]
    assert {"rewards/mcq_letter/mean", "rewards/format/mean", "mcq_letter/unparsable_frac"} <= set(final)
    assert "RLHF" in (Path(summary["model"]) / "README.md").read_text()


def test_rl_errors_name_the_problem(tmp_path, tiny_model, data_root):
    src = {"reader": "pubmedqa", "path": str(data_root / PUBMEDQA), "limit": 4}
    with pytest.raises(ConfigError, match="reward_model .* and/or rewards"):
        run_stage(tmp_path / "a", tiny_model, {"name": "rl", "type": "rl", "data": {"sources": [src]},
                                               "train": {"max_steps": 1}})
    with pytest.raises(ConfigError, match="multiple of num_generations"):
        run_stage(tmp_path / "b", tiny_model, {"name": "rl", "type": "rl", "data": {"sources": [src]},
                                               "options": {"rewards": ["length"], "num_generations": 3},
                                               "train": {"max_steps": 1, "batch_size": 4}})
    with pytest.raises(ConfigError, match="no earlier stage named 'rm'"):
        run_stage(tmp_path / "c", tiny_model, {"name": "rl", "type": "rl", "data": {"sources": [src]},
                                               "options": {"reward_model": "stage:rm"},
                                               "train": {"max_steps": 1}})


def test_dpo_without_pairs_says_how_to_build_them(tmp_path, tiny_model, data_root):
    stage = {"name": "dpo", "type": "dpo",
             "data": {"sources": [{"reader": "pubmedqa", "path": str(data_root / PUBMEDQA), "limit": 4}]}}
    with pytest.raises(DataError, match="no usable preference examples"):
        run_stage(tmp_path, tiny_model, stage)


def test_dpo_reads_preference_records_from_jsonl(tmp_path, tiny_model, data_root):
    records = load_records(str(data_root / PUBMEDQA), "pubmedqa", limit=6)
    rows = [Record(id=r.id, kind="preference", prompt=[Message(role="user", content=r.question)],
                   chosen=r.target, rejected=r.choices[(r.answer_index + 1) % 3]).model_dump(exclude_none=True)
            for r in records]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stage = {"name": "dpo", "type": "dpo", "data": {"sources": [{"reader": "jsonl", "path": str(path)}]},
             "options": {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]},
             "train": {"max_steps": 1, "batch_size": 2, "max_length": 128}}
    metrics = run_stage(tmp_path, tiny_model, stage)["stages"][0]["metrics"]
    assert metrics["pairs"] == 6 and metrics["global_step"] == 1


def test_make_preference_as_a_prepare_step(tmp_path, data_root):
    """make_preference as a ``clinforge data prepare`` step: options validated with the step's key, pairs saved."""
    from clinforge.data.prepare import load_prepared, load_recipe, prepare

    recipe = load_recipe(data={"seed": 1, "sources": [{"reader": "medquad", "path": str(data_root / "medquad"),
                                                        "limit": 10}],
                               "steps": [{"transform": "make_preference", "options": {"strategy": "mismatched_answer"}}]})
    card = prepare(recipe, tmp_path / "prepared", progress=False)
    pairs = [r for recs in load_prepared(tmp_path / "prepared").values() for r in recs]
    assert len(pairs) == card["records_out"] >= 8
    assert all(p.kind == "preference" and p.chosen != p.rejected for p in pairs)
    with pytest.raises(ConfigError, match="steps.0.options.strategy"):
        load_recipe(data={"sources": [{"reader": "medquad", "path": str(data_root / "medquad")}],
                          "steps": [{"transform": "make_preference", "options": {"strategy": "typo"}}]})


RESUME_STAGES = {
    "dpo": {"options": {"pairs": {"strategy": "wrong_option"}}, "train": {"max_length": 128}},
    "rm": {"options": {"pairs": {"strategy": "wrong_option"}}, "train": {"max_length": 128}},
    # online RL: sampling draws from the restored RNG, so the resumed run must sample the same completions
    "rl": {"options": {"algorithm": "grpo", "num_generations": 2, "max_completion_length": 6,
                       "rewards": [{"name": "length", "min_words": 3, "max_words": 3, "tolerance": 3}],
                       "temperature": 1.5}, "train": {"lr": 0.05}},
}


@pytest.mark.parametrize("kind", sorted(RESUME_STAGES))
def test_resume_ends_with_the_same_weights(tmp_path, tiny_model, data_root, kind):
    """An interrupted dpo / rm / rl stage resumed from its step-2 checkpoint ends where an uninterrupted run ends
    (weights, optimiser, scheduler, RNG and data position restored)."""
    import shutil

    from safetensors.torch import load_file

    from clinforge.train.pipeline import run_pipeline
    from clinforge.train.recipe import Recipe

    extra = RESUME_STAGES[kind]
    stage = {"name": kind, "type": kind,
             "data": {"sources": [{"reader": "pubmedqa", "path": str(data_root / PUBMEDQA), "limit": 16}]},
             "options": extra["options"],
             "train": {"lr": 1e-3, "max_steps": 4, "batch_size": 4, "save_every": 2, **extra["train"]}}
    recipe = Recipe.model_validate({"model": str(tiny_model), "tracking": {"tensorboard": False}, "stages": [stage]})
    full = run_pipeline(recipe, tmp_path / "full")
    cut = tmp_path / "cut"
    run_pipeline(recipe, cut)
    stage_dir = cut / "stages" / kind  # make it look killed after the step-2 checkpoint
    # no checkpoint after the last step: the stage output holds that state (hf_trainer.NoFinalCheckpoint)
    assert not (stage_dir / "checkpoints" / "checkpoint-4").exists()
    (stage_dir / "stage.json").unlink()
    shutil.rmtree(stage_dir / "model")
    resumed = run_pipeline(recipe, cut, resume=True)
    assert resumed["stages"][0]["metrics"]["resumed_from_step"] == 2
    a = load_file(Path(full["stages"][0]["model_dir"]) / "model.safetensors")
    b = load_file(Path(resumed["stages"][0]["model_dir"]) / "model.safetensors")
    base = load_file(Path(tiny_model) / "model.safetensors")
    assert any(k in base and a[k].shape == base[k].shape and not torch.equal(a[k], base[k]) for k in a), \
        "training did not change the weights; the comparison would prove nothing"
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() < 1e-5, key


def test_no_pairs_names_each_reader_and_why(tmp_path, tiny_model, data_root):
    stage = {"name": "dpo", "type": "dpo", "train": {"max_steps": 1},
             "data": {"sources": [{"reader": "medquad", "path": str(data_root / "medquad"), "limit": 3}]},
             "options": {"pairs": {"strategy": "wrong_option"}}}
    with pytest.raises(DataError) as e:
        run_stage(tmp_path, tiny_model, stage)
    msg = str(e.value)
    assert "built no train pairs" in msg and "reader 'medquad'" in msg and "3 records, 3 x " in msg
