"""Held-out data a stage was asked to evaluate on: a recipe with ``train.eval_every`` and no eval data is refused
when it is read, and eval examples that all lose their target to ``max_length`` stop the run with a message naming
the stage (not transformers' message about its own ``eval_strategy`` argument, which is what users got before).
The eval count dropped by truncation is on the eval data card, not a 0."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clinforge.core.errors import ConfigError, DataError
from clinforge.train.pipeline import run_pipeline
from clinforge.train.recipe import Recipe, load_recipe

SRC = str(Path(__file__).resolve().parents[1] / "src")
MEDQA = "mirage/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl"


def _long_and_short_eval(path: Path, long: int, short: int) -> Path:
    """QA records: ``long`` whose question alone is ~1,500 words, then ``short`` of one line."""
    rows = [{"id": f"long-{i}", "kind": "qa", "question": "Is the patient febrile today? " * 300, "answer": "No."}
            for i in range(long)]
    rows += [{"id": f"short-{i}", "kind": "qa", "question": f"What does CBC stand for ({i})?",
              "answer": "Complete blood count."} for i in range(short)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_every_without_eval_data_is_refused_with_the_recipe_line(tmp_path):
    p = tmp_path / "recipe.yaml"
    p.write_text("model: tiny:llama\nstages:\n  - name: sft\n    type: sft\n    data:\n"
                 "      sources: [{reader: medqa, path: x}]\n    train: {max_steps: 2, eval_every: 1}\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml:3: stages.0: .*stage sft: train.eval_every evaluates on "
                                          r"held-out data and the stage has none: give data.eval_sources"):
        load_recipe(p)
    p.write_text(p.read_text().replace("      sources:", "      eval_fraction: 0.2\n      sources:"))
    assert load_recipe(p)[0].stages[0].train.eval_every == 1


def test_eval_examples_all_too_long_stop_the_cli_naming_the_stage(tmp_path, tiny_llama, data_root):
    ev = _long_and_short_eval(tmp_path / "eval.jsonl", long=3, short=0)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""model: {tiny_llama}
tracking: {{tensorboard: false}}
stages:
  - name: sft
    type: sft
    data:
      sources: [{{reader: medqa, path: "{data_root / MEDQA}", limit: 8}}]
      eval_sources: [{{reader: jsonl, path: "{ev}"}}]
    train: {{max_steps: 2, batch_size: 2, max_length: 384, eval_every: 1}}
""")
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "clinforge", "train", str(recipe), "--out", str(tmp_path / "run")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-3000:]
    assert (f"stage sft: none of the 3 eval examples (from {ev}) keeps a target within max_length 384; raise "
            "train.max_length" in run.stderr), run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "eval_strategy" not in run.stderr


def test_eval_examples_partly_too_long_are_counted_on_the_eval_card(tmp_path, tiny_llama, data_root):
    ev = _long_and_short_eval(tmp_path / "eval.jsonl", long=2, short=3)
    recipe = Recipe.model_validate({"model": str(tiny_llama), "tracking": {"tensorboard": False}, "stages": [
        {"name": "sft", "type": "sft",
         "data": {"sources": [{"reader": "medqa", "path": str(data_root / MEDQA), "limit": 8}],
                  "eval_sources": [{"reader": "jsonl", "path": str(ev)}]},
         "train": {"max_steps": 2, "batch_size": 2, "max_length": 384, "eval_every": 1}}]})
    stage = run_pipeline(recipe, tmp_path / "run")["stages"][0]
    train_card, eval_card = stage["data_cards"]
    assert (train_card["role"], eval_card["role"]) == ("train", "eval")
    assert eval_card["examples"] == 5 and eval_card["dropped_no_target_after_truncation"] == 2
    assert stage["metrics"]["eval_examples"] == 3 and len(stage["metrics"]["eval_losses"]) == 2
    assert stage["metrics"]["eval_dropped_no_target_after_truncation"] == 2


def test_each_data_card_counts_the_examples_its_own_source_lost(tmp_path, tiny_llama, data_root):
    # three sources: real MedQA (fits), one file with 2 long of 5, one with 1 long of 4; before, every train card
    # carried the stage total (3) whatever its source lost
    a = _long_and_short_eval(tmp_path / "a.jsonl", long=2, short=3)
    b = _long_and_short_eval(tmp_path / "b.jsonl", long=1, short=3)
    ev = _long_and_short_eval(tmp_path / "eval.jsonl", long=1, short=2)
    recipe = Recipe.model_validate({"model": str(tiny_llama), "tracking": {"tensorboard": False}, "stages": [
        {"name": "sft", "type": "sft",
         "data": {"sources": [{"reader": "medqa", "path": str(data_root / MEDQA), "limit": 4},
                              {"reader": "jsonl", "path": str(a)}, {"reader": "jsonl", "path": str(b)}],
                  "eval_sources": [{"reader": "jsonl", "path": str(ev)}]},
         "train": {"max_steps": 1, "batch_size": 2, "max_length": 1024}}]})
    stage = run_pipeline(recipe, tmp_path / "run")["stages"][0]
    cards = stage["data_cards"]
    assert [(c["role"], c["examples"], c["dropped_no_target_after_truncation"]) for c in cards] == [
        ("train", 4, 0), ("train", 5, 2), ("train", 4, 1), ("eval", 3, 1)]
    assert stage["metrics"]["train_examples"] == 13 - 3 and stage["metrics"]["eval_examples"] == 2
    assert stage["metrics"]["eval_dropped_no_target_after_truncation"] == 1


def test_with_eval_fraction_a_card_counts_its_examples_dropped_from_either_set(tmp_path, tiny_llama):
    a = _long_and_short_eval(tmp_path / "a.jsonl", long=4, short=6)
    b = _long_and_short_eval(tmp_path / "b.jsonl", long=0, short=10)
    recipe = Recipe.model_validate({"model": str(tiny_llama), "tracking": {"tensorboard": False}, "stages": [
        {"name": "sft", "type": "sft",
         "data": {"sources": [{"reader": "jsonl", "path": str(a)}, {"reader": "jsonl", "path": str(b)}],
                  "eval_fraction": 0.5},
         "train": {"max_steps": 1, "batch_size": 2, "max_length": 384}}]})
    stage = run_pipeline(recipe, tmp_path / "run")["stages"][0]
    cards, m = stage["data_cards"], stage["metrics"]
    # the 4 long examples of a.jsonl are split between train and eval by the seeded shuffle; a's card has all 4
    assert [c["dropped_no_target_after_truncation"] for c in cards] == [4, 0]
    assert m["train_examples"] + m["eval_examples"] == 16 and m["eval_dropped_no_target_after_truncation"] < 4


def test_dpo_eval_pairs_all_too_long_name_their_file(tmp_path, tiny_llama):
    def pairs(path: Path, words: int, n: int) -> Path:
        rows = [{"id": f"p{i}", "kind": "preference",
                 "prompt": [{"role": "user", "content": "Is the patient febrile today? " * words + str(i)}],
                 "chosen": "No.", "rejected": "Maybe."} for i in range(n)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    train, ev = pairs(tmp_path / "train.jsonl", 2, 4), pairs(tmp_path / "eval.jsonl", 300, 2)
    recipe = Recipe.model_validate({"model": str(tiny_llama), "tracking": {"tensorboard": False}, "stages": [
        {"name": "dpo", "type": "dpo",
         "data": {"sources": [{"reader": "jsonl", "path": str(train)}],
                  "eval_sources": [{"reader": "jsonl", "path": str(ev)}]},
         "train": {"max_steps": 1, "batch_size": 2, "max_length": 128}}]})
    with pytest.raises(DataError, match=rf"stage dpo: none of the 2 eval preference pairs \(from {re.escape(str(ev))}\) keeps a "
                                        r"target within max_length 128"):
        run_pipeline(recipe, tmp_path / "run")
