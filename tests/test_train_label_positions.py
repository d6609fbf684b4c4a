"""The LM head and loss at labelled positions only (clinforge.train.label_positions) give the plain path's loss
and gradients, full and LoRA, packed and padded, with and without gradient accumulation; and the stage writes no
checkpoint after its last step (the stage output is the final state)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from clinforge.train.data import PackingCollator, PaddingCollator, tokenize_chat
from clinforge.train.label_positions import LabeledPositionsTrainer, labeled_positions_loss, next_token_mask
from clinforge.train.pipeline import run_pipeline
from clinforge.train.recipe import Recipe

CHATS = [
    [{"role": "user", "content": "Summarise: patient reports chest pain radiating to the left arm since morning."},
     {"role": "assistant", "content": "Chest pain radiating to the left arm since this morning."}],
    [{"role": "user", "content": "What is the plan for her hypertension?"},
     {"role": "assistant", "content": "Continue lisinopril, recheck blood pressure in two weeks."}],
    [{"role": "user", "content": "List the allergies."}, {"role": "assistant", "content": "Penicillin (rash)."}],
    [{"role": "user", "content": "Write the assessment for a 60 year old with a cough and fever for three days, "
                                 "crackles at the right base and a raised white cell count."},
     {"role": "assistant", "content": "Likely right lower lobe community-acquired pneumonia."}],
]


def _rows(model_dir: Path):
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows, dropped = tokenize_chat([{"messages": m} for m in CHATS], tok, 256)
    assert dropped == 0 and len(rows) == 4
    return tok, rows


def _model(model_dir: Path, lora: bool):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
    return model.train()


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_next_token_mask_marks_positions_whose_next_token_has_a_label():
    labels = torch.tensor([[-100, -100, 3, 4, -100], [-100, 9, -100, -100, 1]])
    assert next_token_mask(labels).tolist() == [[False, True, True, False, False], [True, False, False, True, False]]


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("collate", ["packed", "padded"])
@pytest.mark.parametrize("num_items", [None, 13])
def test_loss_and_gradients_equal_the_plain_path(tiny_llama, lora, collate, num_items):
    tok, rows = _rows(tiny_llama)
    batch = (PackingCollator(max_row_tokens=64, pad_token_id=0) if collate == "packed" else PaddingCollator(0))(rows)
    if collate == "packed":
        assert batch["input_ids"].shape[0] > 1, "rows bounded by max_row_tokens: several rows, with filler"
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert 0 < labelled < batch["labels"].numel() // 2, "the saving needs unlabelled positions to skip"

    model = _model(tiny_llama, lora)
    kw = {"num_items_in_batch": torch.tensor(num_items)} if num_items is not None else {}
    plain = model(**batch, **kw).loss
    plain.backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)

    loss, out = labeled_positions_loss(model, batch, num_items_in_batch=kw.get("num_items_in_batch"))
    assert out.logits.shape == (labelled, model.config.vocab_size)
    loss.backward()
    got = _grads(model)
    torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-6)
    assert want.keys() == got.keys() and want
    assert any(float(g.abs().sum()) > 0 for g in want.values())
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=f"gradient of {name} differs")


def _train(cls, model_dir: Path, rows, out: Path, grad_accum: int):
    model = _model(model_dir, lora=False)
    args = TrainingArguments(output_dir=str(out), max_steps=3, per_device_train_batch_size=2, learning_rate=5e-3,
                             gradient_accumulation_steps=grad_accum, logging_steps=1, report_to="none",
                             save_strategy="no", seed=0, data_seed=0, use_cpu=True, disable_tqdm=True,
                             remove_unused_columns=False, lr_scheduler_type="linear")
    trainer = cls(model=model, args=args, train_dataset=[{"input_ids": r["input_ids"], "labels": r["labels"]}
                                                         for r in rows],
                  data_collator=PackingCollator(max_row_tokens=64, pad_token_id=0))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return losses, {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_trainer_ends_with_the_plain_trainers_weights(tiny_llama, tmp_path, grad_accum):
    """Three optimiser steps (with gradient accumulation: the loss normalisation over the accumulated batch must
    match too): the same logged losses and the same final weights as transformers' own Trainer."""
    _, rows = _rows(tiny_llama)
    rows = rows * 3
    want_losses, want = _train(Trainer, tiny_llama, rows, tmp_path / "plain", grad_accum)
    got_losses, got = _train(LabeledPositionsTrainer, tiny_llama, rows, tmp_path / "gathered", grad_accum)
    assert len(want_losses) == 3
    assert got_losses == pytest.approx(want_losses, rel=1e-5)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).state_dict()
    assert any(not torch.equal(want[n], base[n]) for n in want if n in base), "training changed nothing"
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=f"{name} differs")


def test_eval_loss_takes_the_plain_path(tiny_llama, tmp_path):
    _, rows = _rows(tiny_llama)
    model = _model(tiny_llama, lora=False).eval()
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, disable_tqdm=True,
                             remove_unused_columns=False, per_device_eval_batch_size=4)
    collator = PackingCollator(max_row_tokens=64, pad_token_id=0)
    trainer = LabeledPositionsTrainer(model=model, args=args, data_collator=collator)
    batch = collator(rows)
    with torch.no_grad():
        want = float(model(**batch).loss)
    got = trainer.evaluate(eval_dataset=[{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
    assert got["eval_loss"] == pytest.approx(want, rel=1e-5)


def test_sft_stage_writes_no_checkpoint_after_its_last_step(tiny_llama, tmp_path, data_root):
    src = {"reader": "medquad", "path": str(data_root / "medquad"), "limit": 8}
    recipe = Recipe.model_validate({"model": str(tiny_llama), "tracking": {"tensorboard": False}, "stages": [
        {"name": "sft", "type": "sft", "data": {"sources": [src]},
         "train": {"max_steps": 3, "batch_size": 2, "max_length": 64, "lr": 0.01, "save_every": 1,
                   "save_total_limit": None}}]})
    run_pipeline(recipe, tmp_path / "run")
    ckpts = sorted(p.name for p in (tmp_path / "run/stages/sft/checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-1", "checkpoint-2"]  # step 3 is the stage output, not a checkpoint
    assert (tmp_path / "run/model/model.safetensors").is_file()
