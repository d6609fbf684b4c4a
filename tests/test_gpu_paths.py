"""The training paths that only a CUDA GPU runs: QLoRA (bitsandbytes 4-bit NF4 base weights, bf16 LoRA adapters) and
bf16 full fine-tuning on the GPU, each through ``clinforge train`` as a user runs it, each required to learn.

CI has no GPU, so these are skipped there; ``scripts/device_checks.sh`` runs them on a lent GPU machine (the README
says when they last ran and on what). The data are real (PubMedQA questions with the first sentence of their long
answer); the models are tiny random Llamas built here, hidden size 64 so that every linear layer is a whole number
of bitsandbytes' 64-value quantisation blocks.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clinforge.models.tiny import build_tiny
from conftest import short_qa, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/device_checks.sh)")


def train(tmp_path: Path, model: Path, data_root: Path, *, method: dict, precision: str, steps: int,
          lr: float) -> tuple[list[float], dict, Path]:
    """``clinforge train`` on four real examples (full batch each step) in a subprocess; returns the per-step
    training losses, the stage's metrics and the run folder."""
    src = {"reader": "jsonl", "path": str(write_jsonl(tmp_path / "data.jsonl", short_qa(data_root, 4)))}
    recipe = tmp_path / "recipe.yaml"  # JSON is YAML
    recipe.write_text(json.dumps({
        "model": str(model), "precision": precision, "tracking": {"tensorboard": False},
        "stages": [{"name": "sft", "type": "sft", "method": method,
                    "data": {"sources": [src], "eval_sources": [src]},
                    "train": {"max_steps": steps, "batch_size": 4, "max_length": 96, "lr": lr, "log_every": 1,
                              "save_every": steps, "warmup_steps": 0, "scheduler": "constant"}}]}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "clinforge", "train", str(recipe), "--out", str(run_dir)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    stage = summary["stages"][0]
    history = json.loads((Path(stage["model_dir"]).parent / "log_history.json").read_text())
    losses = [row["loss"] for row in history if "loss" in row]
    print(f"{method['type']} {precision}: losses {[round(x, 3) for x in losses]} metrics {stage['metrics']}")
    return losses, stage["metrics"], run_dir


@pytest.fixture(scope="module")
def tiny64(tmp_path_factory) -> Path:
    """A tiny random Llama whose (tied) embeddings are scaled by 8. At the usual random init (std 0.02) the output
    logits stay within about +-1.3 (RMS-normed hidden states against 0.02-scale embeddings), so adapters alone
    cannot move the output distribution away from uniform (measured: LoRA sits at ~6.1 nats, ln 512 = 6.24); with
    the scaled embeddings LoRA memorises four examples as full fine-tuning does."""
    from transformers import AutoModelForCausalLM

    path = build_tiny("llama", tmp_path_factory.mktemp("tiny") / "m", vocab_size=512, hidden_size=64, num_heads=4,
                      seed=0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(8)
    model.save_pretrained(path)
    return path


def test_qlora_loads_4bit_base_weights_and_trains_only_adapters(tiny64):
    """The model a QLoRA stage trains: every linear layer of the decoder is a bitsandbytes 4-bit layer on the GPU
    whose stored weight is packed NF4 (two values a byte), and only the LoRA parameters are trainable."""
    bnb = pytest.importorskip("bitsandbytes")
    from clinforge.train.methods import load_for_training
    from clinforge.train.recipe import MethodSpec

    model, _ = load_for_training(str(tiny64), MethodSpec(type="qlora", r=8, target_modules=["q_proj", "v_proj"]),
                                 precision="bf16")
    four_bit = {n: m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    # q/k/v/o and gate/up/down in each of the 2 layers; lm_head stays unquantised (transformers never quantises it)
    assert len(four_bit) == 7 * 2, sorted(four_bit)
    for name, layer in four_bit.items():
        assert layer.weight.device.type == "cuda" and layer.weight.dtype == torch.uint8, name
        assert layer.weight.numel() * 2 == layer.in_features * layer.out_features, name
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == {"q_proj", "v_proj"}


def test_qlora_sft_learns_and_saves_an_adapter_and_a_merged_model(tmp_path, tiny64, data_root):
    """QLoRA through ``clinforge train``: the loss on four real examples falls from ~10 nats to under 1.5 in 40
    steps (bf16 LoRA on CPU, same settings: 10.0 -> 0.26), the stage folder holds the peft adapter, and OUT/model is
    the adapter merged into the unquantised base: full tensors, changed by training, that transformers loads."""
    pytest.importorskip("bitsandbytes")  # the qlora extra; without it the stage stops with that advice
    method = {"type": "qlora", "r": 16, "alpha": 32, "dropout": 0.0}
    losses, metrics, run_dir = train(tmp_path, tiny64, data_root, method=method, precision="bf16", steps=40, lr=2e-2)
    assert losses[0] > math.log(100)
    assert metrics["final_eval_loss"] < min(1.5, losses[0] / 5), (losses, metrics)
    stage_model = run_dir / "stages" / "sft" / "model"
    assert (stage_model / "adapter_config.json").is_file() and (stage_model / "adapter_model.safetensors").is_file()
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    merged = load_file(run_dir / "model" / "model.safetensors")
    base = load_file(tiny64 / "model.safetensors")
    assert set(merged) == set(base)  # plain weight names: no 4-bit quant state, no lora_ keys
    for key, tensor in base.items():
        assert merged[key].shape == tensor.shape, key
    assert any(not torch.allclose(merged[k].float(), base[k].float(), atol=1e-2) for k in base if "proj" in k)
    reloaded = AutoModelForCausalLM.from_pretrained(run_dir / "model", dtype=torch.float32)
    assert not any("4bit" in type(m).__name__ for m in reloaded.modules())


def test_bf16_full_sft_on_the_gpu_learns(tmp_path, tiny64, data_root):
    """Full fine-tuning at ``precision: bf16`` on the GPU (bf16 weights, SDPA attention, packed rows): the loss on
    four real examples falls by a factor of 5 in 30 steps, and OUT/model holds the changed full weights."""
    losses, metrics, run_dir = train(tmp_path, tiny64, data_root, method={"type": "full"}, precision="bf16",
                                     steps=30, lr=1e-2)
    assert losses[0] > math.log(100)
    assert metrics["final_eval_loss"] < losses[0] / 5, (losses, metrics)
    from safetensors.torch import load_file

    saved = load_file(run_dir / "model" / "model.safetensors")
    base = load_file(tiny64 / "model.safetensors")
    assert set(saved) == set(base) and any(not torch.equal(saved[k].float(), base[k].float()) for k in base)
