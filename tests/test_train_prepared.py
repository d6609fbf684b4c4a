"""Training from a ``clinforge data prepare`` output: cpt, sft and dpo stages each read a ``prepared:`` source
(the packaged samples run through src/clinforge/samples/prepare.yaml: de-id, dedup, filter, contamination,
patient-level split, chat format) and train a tiny model a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from clinforge.data.prepare import load_prepared, load_recipe, prepare
from clinforge.train.pipeline import run_pipeline
from clinforge.train.recipe import Recipe

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "clinforge" / "samples" / "prepare.yaml"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prep") / "samples"
    prepare(load_recipe(SAMPLES), out, progress=False)
    return out


def test_cpt_sft_dpo_train_from_a_prepared_dataset(tmp_path, prepared, tiny_llama):
    splits = load_prepared(prepared)
    kinds = {r.kind for r in splits["train"]}
    assert {"note", "preference"} <= kinds and "validation" in splits
    model = tiny_llama
    steps = {"max_steps": 2, "batch_size": 2, "max_length": 128, "log_every": 1}
    recipe = Recipe.model_validate({"model": str(model), "stages": [
        {"name": "cpt", "type": "cpt", "train": steps,
         "data": {"sources": [{"prepared": str(prepared)}]}},
        {"name": "sft", "type": "sft", "train": {**steps, "eval_every": 1},
         "data": {"sources": [{"prepared": str(prepared)}],
                  "eval_sources": [{"prepared": str(prepared), "split": "validation"}]}},
        {"name": "dpo", "type": "dpo", "train": steps,
         "data": {"sources": [{"prepared": str(prepared / "dataset")}]}},
    ]})
    summary = run_pipeline(recipe, tmp_path / "run")
    by_name = {s["name"]: s for s in summary["stages"]}
    for name, fmt in (("cpt", "text"), ("sft", "chat"), ("dpo", "preference")):
        card = by_name[name]["data_cards"][0]
        assert card["reader"] == "prepared:train" and card["format"] == fmt and card["examples"] > 0, card
        assert by_name[name]["metrics"]["global_step"] == 2
    # cpt trains on notes too (text form); sft only on records with a chat form; dpo only on preference pairs
    cpt_card, sft_card, dpo_card = (by_name[n]["data_cards"][0] for n in ("cpt", "sft", "dpo"))
    assert dpo_card["examples"] == sum(r.kind == "preference" for r in splits["train"])
    assert sft_card["unconvertible"].get("note record has no chat form", 0) == sum(
        r.kind == "note" for r in splits["train"])
    assert by_name["sft"]["data_cards"][1]["reader"] == "prepared:validation"
    assert by_name["sft"]["metrics"]["eval_losses"]
    AutoModelForCausalLM.from_pretrained(summary["model"])
    # the model card carries the prepared data's provenance; the full data cards sit beside it
    assert cpt_card["prepared"]["recipe"] == "clinforge-samples" and "deid" in cpt_card["prepared"]["steps"]
    readme = (Path(summary["model"]) / "README.md").read_text()
    assert "reader `prepared:train` on `samples`" in readme
    assert "prepared by `clinforge data prepare` (recipe `clinforge-samples`): steps deid, dedup" in readme
    assert "PHI spans de-identified: " in readme and "contamination checked against: samples-benchmark" in readme
    cards = json.loads((Path(summary["model"]) / "data_cards.json").read_text())
    assert set(cards) == {"cpt", "sft", "dpo"} and cards["dpo"][0]["prepared"]["data_card"].endswith("data_card.json")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert str(prepared) in json.dumps(run)
