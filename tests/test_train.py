"""Training: recipe errors with file lines, records -> examples, assistant-only labels, packing isolation,
methods, DP-SGD accounting, and a real multi-stage run (cpt -> sft LoRA) on MedQuAD that transformers loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from clinforge.core.errors import ClinforgeError, ConfigError, DataError
from clinforge.data.records import Record
from clinforge.models.tiny import build_tiny
from clinforge.train.data import (
    IGNORE_INDEX,
    PackingCollator,
    record_to_messages,
    record_to_text,
    tokenize_chat,
)
from clinforge.train.methods import freeze_by_pattern, load_for_training
from clinforge.train.pipeline import run_pipeline, run_recipe_file
from clinforge.train.recipe import MethodSpec, Recipe, load_recipe


@pytest.fixture(scope="module")
def tiny(tiny_llama) -> Path:
    return tiny_llama  # conftest: built once per test run


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


def tensorboard_scalars(log_dir: Path) -> dict[str, list[float]]:
    """Every scalar written to the TensorBoard event files of ``log_dir``, read back with tensorboard itself."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def mlflow_metrics(store: Path, run_name: str) -> dict[str, float]:
    """The latest value of each metric of the MLflow run ``run_name`` in the local file store ``store``."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=store.resolve().as_uri())
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
            if r.info.run_name == run_name]
    assert len(runs) == 1, f"expected one MLflow run named {run_name}, found {len(runs)}"
    return dict(runs[0].data.metrics)


# ---- recipe errors ---------------------------------------------------------------------------------------
BASE = """model: tiny:llama
stages:
  - name: s
    type: sft
    data:
      sources: [{reader: medquad, path: x}]
"""


def test_unknown_key_names_key_and_line(tmp_path):
    p = _write(tmp_path, BASE + "    train:\n      lr: 0.1\n      epochz: 2\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(p)
    assert e.value.line == 9 and e.value.key == "stages.0.train.epochz" and "valid keys here" in str(e.value)


def test_unknown_stage_type_and_method_name_line(tmp_path):
    p = _write(tmp_path, BASE.replace("type: sft", "type: sftt"))
    with pytest.raises(ConfigError, match=r"recipe.yaml:4: stages.0.type: Input should be 'cpt'"):
        load_recipe(p)
    p = _write(tmp_path, BASE + "    method: {type: dora}\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml:7: stages.0.method.type: Input should be 'full', 'lora'"):
        load_recipe(p)


def test_unknown_stage_option_names_line(tmp_path, tiny):
    from clinforge.train.stages import STAGES, StageContext

    p = _write(tmp_path, BASE + "    options:\n      beta: 0.1\n")
    recipe, lines = load_recipe(p)
    ctx = StageContext(recipe=recipe, spec=recipe.stages[0], index=0, model_path=str(tiny), base_model=str(tiny),
                       out_dir=tmp_path / "o", run_dir=tmp_path, recipe_file=str(p), lines=lines)
    with pytest.raises(ConfigError) as e:
        STAGES.get("sft")(ctx)
    assert e.value.line == 8 and e.value.key == "stages.0.options.beta"


def test_env_expansion_and_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINFORGE_DATA", "/data/here")
    p = _write(tmp_path, BASE.replace("path: x", "path: \"${CLINFORGE_DATA}/medquad\""))
    recipe, _ = load_recipe(p, ["stages.0.train.lr=3e-4", "seed=9"])
    assert recipe.stages[0].data.sources[0].path == "/data/here/medquad"
    assert recipe.stages[0].train.lr == 3e-4 and recipe.seed == 9
    monkeypatch.delenv("CLINFORGE_UNSET_VAR", raising=False)
    p = _write(tmp_path, BASE.replace("path: x", "path: \"${CLINFORGE_UNSET_VAR}/m\""))
    with pytest.raises(ConfigError, match="CLINFORGE_UNSET_VAR is not set"):
        load_recipe(p)


def test_dp_needs_exactly_one_of_noise_or_epsilon(tmp_path):
    p = _write(tmp_path, BASE + "    dp: {delta: 1.0e-5}\n")
    with pytest.raises(ConfigError, match="exactly one of noise_multiplier or target_epsilon"):
        load_recipe(p)


# ---- records -> examples ---------------------------------------------------------------------------------
def test_record_conversions():
    mcq = Record(id="1", kind="mcq", question="Which drug?", choices=["a", "b"], answer="B", target="because")
    assert record_to_text(mcq) == "Which drug?\nA. a\nB. b\nAnswer: B\nbecause"
    assert record_to_messages(mcq)[-1] == {"role": "assistant", "content": "B. b"}
    dlg = Record(id="2", kind="dialogue", text="Doctor: hi\nPatient: cough",
                 messages=[{"role": "assistant", "content": "hi"}, {"role": "user", "content": "cough"}],
                 target="Cough for 3 days.", meta={"section_header": "HPI"})
    msgs = record_to_messages(dlg, system="sys")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert "the HPI section" in msgs[1]["content"] and msgs[2]["content"] == "Cough for 3 days."
    assert record_to_messages(Record(id="3", kind="note", text="x")) is None


def test_assistant_only_labels(tiny):
    tok = AutoTokenizer.from_pretrained(tiny)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is BP?"},
            {"role": "assistant", "content": "Blood pressure."}, {"role": "user", "content": "And HR?"},
            {"role": "assistant", "content": "Heart rate."}]
    rows, dropped = tokenize_chat([{"messages": msgs}], tok, 512)
    ids, labels = rows[0]["input_ids"], rows[0]["labels"]
    kept = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX])
    assert kept == "Blood pressure.<|im_end|>\nHeart rate.<|im_end|>\n"
    assert dropped == 0
    rows, dropped = tokenize_chat([{"messages": msgs[:3]}], tok, 8)  # the cut removes every assistant token
    assert rows == [] and dropped == 1


def test_packed_examples_do_not_attend_across(tiny):
    model, _ = load_for_training(str(tiny), MethodSpec(type="full"), attn_implementation="sdpa")
    model.eval()  # the training model: use_cache is off, which packed position_ids need
    a = {"input_ids": [5, 9, 14, 22, 7], "labels": [5, 9, 14, 22, 7]}
    b = {"input_ids": [30, 31, 40], "labels": [30, 31, 40]}
    batch = PackingCollator()([a, b])
    assert batch["labels"][0, 5].item() == IGNORE_INDEX  # no target across the boundary
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        alone_a = model(input_ids=torch.tensor([a["input_ids"]])).logits[0]
        with_cache = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=True).logits[0]
        alone_b = model(input_ids=torch.tensor([b["input_ids"]])).logits[0]
        crossed = model(input_ids=batch["input_ids"]).logits[0]  # no position reset: attention crosses
    torch.testing.assert_close(packed[:5], alone_a, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[5:], alone_b, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(crossed[5:], alone_b, atol=1e-3)
    # why training turns the cache off: with a cache transformers ignores packed positions and attention crosses
    assert not torch.allclose(with_cache[5:], alone_b, atol=1e-3)


def test_state_space_models_are_padded_not_packed(tmp_path):
    from clinforge.train.data import supports_packed_positions

    m = build_tiny("mamba", tmp_path / "mamba", vocab_size=300, hidden_size=32)
    assert not supports_packed_positions(AutoModelForCausalLM.from_pretrained(m).config)


# ---- methods ---------------------------------------------------------------------------------------------
def test_freeze_lora_and_qlora_errors(tiny):
    model, _ = load_for_training(str(tiny), MethodSpec(type="full", freeze=["model.embed_tokens.*", "model.layers.0.*"]))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "model.embed_tokens.weight" in frozen and any(n.startswith("model.layers.0.") for n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("model.layers.1."))
    with pytest.raises(ConfigError, match="matches no parameter"):
        freeze_by_pattern(model, ["nothing.*"])
    lora, _ = load_for_training(str(tiny), MethodSpec(type="lora", r=2, target_modules=["q_proj", "v_proj"]))
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in trainable)
    if not torch.cuda.is_available():
        with pytest.raises(ClinforgeError, match="qlora needs a CUDA GPU"):
            load_for_training(str(tiny), MethodSpec(type="qlora"))


# ---- data errors -----------------------------------------------------------------------------------------
def test_no_usable_rows_says_reader_count_and_reason(tmp_path, tiny):
    data = tmp_path / "notes.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "kind": "note", "text": f"note {i}"}) + "\n" for i in range(3)))
    recipe = Recipe.model_validate({"model": str(tiny), "tracking": {"tensorboard": False}, "stages": [
        {"name": "sft", "type": "sft", "data": {"sources": [{"reader": "jsonl", "path": str(data)}]}}]})
    with pytest.raises(DataError) as e:
        run_pipeline(recipe, tmp_path / "run")
    msg = str(e.value)
    assert "reader 'jsonl'" in msg and "3 rows read" in msg and "3 x note record has no chat form" in msg


# ---- real runs -------------------------------------------------------------------------------------------
def test_cpt_then_sft_lora_on_medquad(tmp_path, tiny, data_root):
    seen = []
    p = _write(tmp_path, f"""
model: {tiny}
seed: 0
tracking: {{tensorboard: true, mlflow: true}}
stages:
  - name: cpt
    type: cpt
    data:
      sources: [{{reader: medquad, path: "${{CLINFORGE_DATA}}/medquad", limit: 24}}]
      eval_fraction: 0.2
    train: {{max_steps: 4, batch_size: 4, max_length: 96, eval_every: 2, lr: 0.005}}
  - name: sft
    type: sft
    data:
      sources: [{{reader: medquad, path: "${{CLINFORGE_DATA}}/medquad", limit: 24}}]
    method: {{type: lora, r: 4, alpha: 8, target_modules: all-linear}}
    train: {{max_steps: 3, batch_size: 4, max_length: 512, lr: 0.005}}
""")
    summary = run_recipe_file(p, out=str(tmp_path / "run"), after_stage=[lambda ctx, r: seen.append(r.name) or
                                                                          {"loss": r.metrics["final_train_loss"]}])
    run = tmp_path / "run"
    assert seen == ["cpt", "sft"]
    cpt, sft = summary["stages"]
    assert cpt["metrics"]["global_step"] == 4 and len(cpt["metrics"]["eval_losses"]) == 2
    assert sft["adapter"] is True and sft["base_model"].endswith("stages/cpt/model")
    card = cpt["data_cards"][0]
    assert card["reader"] == "medquad" and card["records"] == 24 and card["examples"] == 24
    model = AutoModelForCausalLM.from_pretrained(run / "model")  # merged: plain transformers loads it
    tok = AutoTokenizer.from_pretrained(run / "model")
    assert tok.chat_template and model.config.model_type == "llama"
    readme = (run / "model" / "README.md").read_text()
    assert f"`{tiny}`" in readme and "reviewed by a qualified clinician" in readme and "### sft (sft)" in readme
    assert (run / "model" / "clinforge_recipe.yaml").is_file()
    tb = tensorboard_scalars(run / "tensorboard" / "cpt")
    assert len(tb["loss"]) >= 1 and len(tb["eval_loss"]) >= 2 and "tokens_per_second" in tb
    assert "loss" in mlflow_metrics(run / "mlruns", "run-cpt") and "loss" in mlflow_metrics(run / "mlruns", "run-sft")
    assert json.loads((run / "run.json").read_text())["status"] == "ok"
    assert summary["hooks"]["sft"]["<lambda>"]["loss"] == sft["metrics"]["final_train_loss"]
    with pytest.raises(ClinforgeError, match="--overwrite"):
        run_recipe_file(p, out=str(run))


def test_unmerged_adapter_output_loads_with_peft(tmp_path, tiny, data_root):
    recipe = Recipe.model_validate({"model": str(tiny), "merge": False, "tracking": {"tensorboard": False},
                                    "stages": [{"name": "sft", "type": "sft", "data": {"sources": [
                                        {"reader": "medquad", "path": str(data_root / "medquad"), "limit": 8}]},
                                        "method": {"type": "lora", "r": 2}, "train": {"max_steps": 1, "batch_size": 4,
                                                                                       "max_length": 512}}]})
    run_pipeline(recipe, tmp_path / "run")
    assert (tmp_path / "run/model/adapter_config.json").is_file()
    from clinforge.models.load import load_llm

    model, tok = load_llm(tmp_path / "run/model")
    assert type(model).__name__.startswith("Peft") and tok.chat_template


def test_dp_sgd_patient_level_epsilon_matches_opacus(tmp_path, tiny):
    from opacus.accountants import RDPAccountant

    rows = [{"id": f"{p}-{v}", "kind": "qa", "patient_id": f"P{p}", "question": f"Plan for visit {v}?",
             "answer": f"Repeat labs in {v + 2} weeks."} for p in range(8) for v in range(3)]
    data = tmp_path / "visits.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe.model_validate({"model": str(tiny), "tracking": {"tensorboard": True, "mlflow": True},
                                    "stages": [
        {"name": "sft", "type": "sft", "data": {"sources": [{"reader": "jsonl", "path": str(data)}],
                                                "eval_sources": [{"reader": "jsonl", "path": str(data), "limit": 4}]},
         "method": {"type": "lora", "r": 2, "merge": True},
         "train": {"max_steps": 3, "batch_size": 2, "max_length": 64, "lr": 0.01, "log_every": 1, "eval_every": 1},
         "dp": {"noise_multiplier": 1.1, "max_grad_norm": 0.5, "delta": 1e-3}}]})
    summary = run_pipeline(recipe, tmp_path / "run")
    priv = summary["stages"][0]["privacy"]
    assert priv["unit"] == "patient" and priv["units"] == 8 and priv["patients"] == 8 and priv["rows"] == 24
    # a DP stage is tracked like any other: loss, epsilon and eval loss every eval_every steps, in TB and MLflow
    assert len(summary["stages"][0]["metrics"]["eval_losses"]) == 3
    tb = tensorboard_scalars(tmp_path / "run" / "tensorboard" / "sft")
    assert {"loss", "epsilon", "eval_loss", "learning_rate"} <= set(tb) and len(tb["eval_loss"]) >= 3
    ml = mlflow_metrics(tmp_path / "run" / "mlruns", "run-sft")
    assert {"loss", "epsilon", "eval_loss"} <= set(ml)
    assert ml["epsilon"] == pytest.approx(priv["epsilon"], abs=1e-4)
    ref = RDPAccountant()
    ref.history = [(1.1, 2 / 8, 3)]
    assert priv["epsilon"] == pytest.approx(ref.get_epsilon(1e-3), abs=1e-4)
    assert summary["epsilon"] == {"sft": priv["epsilon"]}
    assert "epsilon = " in (tmp_path / "run/model/README.md").read_text()
    AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")


def test_dp_resume_from_checkpoint_matches_uninterrupted(tmp_path, tiny):
    """A DP-SGD stage resumed from its step-2 checkpoint ends with the uninterrupted run's weights and epsilon
    (weights, optimiser, scheduler, accountant, Poisson sampler and noise RNG restored)."""
    import shutil

    from safetensors.torch import load_file

    rows = [{"id": str(i), "kind": "qa", "patient_id": f"P{i % 5}", "question": f"Dose {i}?",
             "answer": f"{i} mg daily."} for i in range(15)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe.model_validate({"model": str(tiny), "tracking": {"tensorboard": False}, "stages": [
        {"name": "sft", "type": "sft", "data": {"sources": [{"reader": "jsonl", "path": str(data)}]},
         "method": {"type": "lora", "r": 2, "dropout": 0.1, "merge": True},
         "train": {"max_steps": 4, "batch_size": 2, "max_length": 64, "lr": 0.02, "save_every": 2},
         "dp": {"noise_multiplier": 0.8, "max_grad_norm": 0.5, "delta": 1e-3}}]})
    full = run_pipeline(recipe, tmp_path / "full")
    cut = tmp_path / "cut"
    run_pipeline(recipe, cut)
    assert (cut / "stages/sft/checkpoints/dp-step-2.pt").is_file()
    for p in ("stages/sft/stage.json", "stages/sft/model", "model", "summary.json"):  # as if killed after step 2
        shutil.rmtree(cut / p) if (cut / p).is_dir() else (cut / p).unlink()
    again = run_pipeline(recipe, cut, resume=True)
    assert again["stages"][0]["metrics"]["resumed_from_step"] == 2
    assert again["epsilon"] == full["epsilon"]
    a, b = load_file(tmp_path / "full/model/model.safetensors"), load_file(cut / "model/model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_bf16_checkpointing_grouping_accumulation_and_lora_then_full(tmp_path, tiny, data_root):
    """bf16, gradient checkpointing, length-grouped padded batches, grad accumulation, deterministic mode; a full
    stage after an unmerged LoRA stage merges the adapter first and trains with frozen embeddings."""
    src = [{"reader": "medquad", "path": str(data_root / "medquad"), "limit": 12}]
    recipe = Recipe.model_validate({"model": str(tiny), "precision": "bf16", "deterministic": True,
                                    "tracking": {"tensorboard": False}, "stages": [
        {"name": "a", "type": "ift", "data": {"sources": src}, "method": {"type": "lora", "r": 2},
         "train": {"max_steps": 2, "batch_size": 4, "max_length": 512, "gradient_checkpointing": True,
                   "group_by_length": True, "packing": False, "grad_accum": 2}},
        {"name": "b", "type": "sft", "data": {"sources": src},
         "method": {"type": "full", "freeze": ["model.embed_tokens.*"]},
         "train": {"max_steps": 2, "batch_size": 4, "max_length": 512, "gradient_checkpointing": True}}]})
    summary = run_pipeline(recipe, tmp_path / "run")
    a, b = summary["stages"]
    assert a["adapter"] and a["hyperparameters"]["collator"] == "PaddingCollator"
    assert not b["adapter"] and b["hyperparameters"]["collator"] == "PackingCollator"
    from safetensors.torch import load_file

    before = load_file(tiny / "model.safetensors")["model.embed_tokens.weight"]
    final = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    assert final.dtype == torch.bfloat16 and final.config.use_cache is True
    torch.testing.assert_close(final.model.embed_tokens.weight.float(), before.to(torch.bfloat16).float())


def test_every_stage_is_checked_before_any_stage_trains(tmp_path, data_root):
    """A mistake in the last stage (option typo, missing path, unknown reader, bad reward, missing rubric) fails
    up front, naming file, line and key, before stage 1 trains or anything is written."""
    medquad = data_root / "medquad"
    head = f"""model: tiny:llama
stages:
  - name: cpt
    type: cpt
    data:
      sources: [{{reader: medquad, path: "{medquad}", limit: 4}}]
    train: {{max_steps: 1}}
  - name: sft
    type: sft
    data:
      sources: [{{reader: medquad, path: "{medquad}", limit: 4}}]
"""
    cases = [
        ("  - name: dpo\n    type: dpo\n    data:\n      sources: [{reader: medquad, path: x}]\n"
         "    options:\n      betta: 0.1\n", 17, "stages.2.options.betta"),
        ("  - name: dpo\n    type: dpo\n    data:\n      sources:\n        - {reader: medquad, path: /nonexistent/q}\n",
         16, "stages.2.data.sources.0.path"),
        ("  - name: dpo\n    type: dpo\n    data:\n      sources:\n        - {reader: medquadd, path: /}\n",
         16, "stages.2.data.sources.0.reader"),
        ("  - name: rl\n    type: rl\n    data:\n      sources: [{reader: medquad, path: /}]\n"
         "    options:\n      rewards: [lenght]\n", 17, "stages.2.options.rewards.0"),
        ("  - name: rl\n    type: rl\n    data:\n      sources: [{reader: medquad, path: /}]\n"
         "    options:\n      reward_model: stage:rm\n      rewards: [length]\n", 17, "stages.2.options.reward_model"),
        ("  - name: rl\n    type: rl\n    data:\n      sources: [{reader: medquad, path: /}]\n"
         "    options:\n      reward_model: stage:sft\n", 17, "stages.2.options.reward_model"),
        ("  - name: rl\n    type: rlaif\n    data:\n      sources: [{reader: medquad, path: /}]\n"
         "    options:\n      judge: hf:x\n      rubric: /nonexistent.yaml\n", 18, "stages.2.options.rubric"),
        ("  - name: rl\n    type: rl\n    data:\n      sources: [{reader: medquad, path: /}]\n      eval_fraction: 0.1\n"
         "    options:\n      rewards: [length]\n", 16, "stages.2.data.eval_fraction"),
        ("  - name: d\n    type: sft\n    dp: {noise_multiplier: 1.0}\n    train: {grad_accum: 2}\n    data:\n"
         "      sources: [{reader: medquad, path: /}]\n", 15, "stages.2.train.grad_accum"),
    ]
    if not torch.cuda.is_available():  # QLoRA's missing GPU is known before training too
        cases.append(("  - name: q\n    type: sft\n    method: {type: qlora}\n    data:\n"
                      "      sources: [{reader: medquad, path: /}]\n", 14, "stages.2.method.type"))
    for i, (stage3, line, key) in enumerate(cases):
        p = tmp_path / f"r{i}.yaml"
        p.write_text(head + stage3)
        out = tmp_path / f"out{i}"
        with pytest.raises(ConfigError) as e:
            run_recipe_file(p, out=str(out))
        assert (e.value.file, e.value.line, e.value.key) == (str(p), line, key), (i, str(e.value))
        assert not out.exists(), f"case {i}: something was written before the recipe was checked"


def test_resume_keeps_finished_stages_and_refuses_a_changed_recipe(tmp_path, tiny, data_root):
    """Killed in stage 2 of 2: --resume keeps stage 1 as it is and re-runs stage 2 to the same weights; a resume
    with a changed recipe is refused, naming the changed key, instead of mixing two recipes in one model."""
    import shutil

    from safetensors.torch import load_file

    src = {"reader": "medquad", "path": str(data_root / "medquad"), "limit": 8}
    train = {"max_steps": 2, "batch_size": 2, "max_length": 64, "lr": 0.01}
    recipe = Recipe.model_validate({"model": str(tiny), "tracking": {"tensorboard": False}, "stages": [
        {"name": "cpt", "type": "cpt", "data": {"sources": [src]}, "train": train},
        {"name": "sft", "type": "sft", "data": {"sources": [src]}, "train": train}]})
    run = tmp_path / "run"
    run_pipeline(recipe, run)
    first = load_file(run / "model" / "model.safetensors")
    cpt_stamp = (run / "stages/cpt/stage.json").stat().st_mtime_ns
    for p in ("stages/sft/stage.json", "stages/sft/model", "stages/sft/checkpoints", "model", "summary.json"):
        shutil.rmtree(run / p) if (run / p).is_dir() else (run / p).unlink()
    changed = recipe.model_copy(deep=True)
    changed.stages[1].train.lr = 0.02
    with pytest.raises(ConfigError, match=r"stages\.1\.train\.lr \(0\.01 -> 0\.02\)") as e:
        run_pipeline(changed, run, resume=True)
    assert e.value.key == "stages.1.train.lr"
    again = run_pipeline(recipe, run, resume=True)
    assert (run / "stages/cpt/stage.json").stat().st_mtime_ns == cpt_stamp  # stage 1 was not trained again
    assert [s["name"] for s in again["stages"]] == ["cpt", "sft"]
    second = load_file(run / "model" / "model.safetensors")
    for k in first:
        torch.testing.assert_close(first[k], second[k], rtol=1e-5, atol=1e-6)


def test_model_folder_missing_a_file_is_named_before_training(tmp_path, tiny):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (broken / "model.safetensors").unlink()
    p = _write(tmp_path, BASE.replace("tiny:llama", str(broken)).replace("path: x", f"path: {tiny}"))
    with pytest.raises(ConfigError, match=r"recipe.yaml:1: model: .*broken: model folder has no weights"):
        run_recipe_file(p, out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    from transformers import AutoModelForSequenceClassification

    from clinforge.train.methods import load_for_training

    (broken / "model.safetensors").write_bytes((tiny / "model.safetensors").read_bytes())
    (broken / "config.json").unlink()
    with pytest.raises(ClinforgeError, match="model folder has no config.json"):  # the reward-model path too
        load_for_training(str(broken), MethodSpec(), model_class=AutoModelForSequenceClassification)


def test_bf16_mixed_keeps_float32_weights_and_trains_under_autocast(tmp_path, tiny, data_root):
    """``precision: bf16-mixed`` is mixed precision (transformers' / TRL's ``bf16=True`` over a float32 model): the
    weights and the saved model stay float32, while the forward and backward run under bf16 autocast, so the
    losses differ slightly from a float32 run of the same batches (and the bf16-weight run saves bf16)."""
    src = [{"reader": "medquad", "path": str(data_root / "medquad"), "limit": 8}]
    runs = {}
    for name in ("fp32", "fp32-again", "bf16-mixed", "bf16"):
        precision = name.removesuffix("-again")
        recipe = Recipe.model_validate({"model": str(tiny), "precision": precision, "tracking": {"tensorboard": False},
                                        "stages": [{"name": "sft", "type": "sft", "data": {"sources": src},
                                                    "method": {"type": "full"},
                                                    "train": {"max_steps": 2, "batch_size": 2, "lr": 1e-3}}]})
        summary = run_pipeline(recipe, tmp_path / name)
        model = AutoModelForCausalLM.from_pretrained(tmp_path / name / "model")
        runs[name] = (summary["stages"][0]["metrics"]["final_train_loss"], model.dtype)
    assert runs["fp32"] == runs["fp32-again"]  # a float32 run repeats exactly, so a difference below is autocast's
    assert runs["fp32"][1] == torch.float32 and runs["bf16-mixed"][1] == torch.float32
    assert runs["bf16"][1] == torch.bfloat16
    fp32_loss, mixed_loss = runs["fp32"][0], runs["bf16-mixed"][0]
    assert mixed_loss != fp32_loss  # autocast was on
    assert abs(mixed_loss - fp32_loss) < 0.05 * fp32_loss, runs  # and it is the same training, to bf16 rounding
