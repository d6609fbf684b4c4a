"""vlm_align -> vlm_sft recipes run end to end on real VQA-RAD images with the guarantees of text training: run
records with the trainable table per component, frozen components unchanged, loss tokens written, exact resume
after a real SIGKILL, and two CPU processes (torchrun, gloo) training as one DDP group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _tinyvlm import tiny_vlm
from conftest import free_port

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="session")
def siglip_llava(tmp_path_factory):
    return tiny_vlm(tmp_path_factory, "llava-siglip")


def _recipe(tmp: Path, model: Path, data_root: Path, *, steps: int = 4, save_every: int | None = None) -> Path:
    src = f'[{{reader: vqa_rad, path: "{data_root / "vqa-rad"}", limit: 64, options: {{split: train}}}}]'
    save = f", save_every: {save_every}, save_total_limit: null" if save_every else ""
    p = tmp / "recipe.yaml"
    p.write_text(f"""
model: {model}
seed: 5
tracking: {{tensorboard: true}}
stages:
  - name: align
    type: vlm_align
    data: {{sources: {src}}}
    train: {{max_steps: {steps}, batch_size: 4, max_length: 256, lr: 0.01, log_every: 2{save}}}
  - name: sft
    type: vlm_sft
    data: {{sources: {src}}}
    method: {{type: lora, r: 4, alpha: 8, dropout: 0.1}}
    train: {{max_steps: {steps}, batch_size: 4, max_length: 256, lr: 0.01, log_every: 2, warmup_steps: 1,
             scheduler: cosine{save}}}
""")
    return p


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")


def _cmd(recipe: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "clinforge", "train", str(recipe), "--out", str(out), *extra]


@pytest.mark.slow
def test_align_then_sft_run_records_and_frozen_parts(tmp_path, siglip_llava, data_root):
    from clinforge.train.pipeline import run_recipe_file

    out = tmp_path / "run"
    summary = run_recipe_file(_recipe(tmp_path, siglip_llava, data_root), out=str(out))
    assert [s["metrics"]["global_step"] for s in summary["stages"]] == [4, 4]
    run = json.loads((out / "run.json").read_text())
    align, sft = run["trainable_parameters"]["align"], run["trainable_parameters"]["sft"]
    assert align["vision"]["trainable"] == align["llm"]["trainable"] == 0 < align["connector"]["trainable"]
    assert sft["vision"]["trainable"] == 0 and 0 < sft["llm"]["trainable"] < sft["llm"]["total"]
    base = load_file(str(siglip_llava / "model.safetensors"))
    aligned = load_file(str(out / "stages/align/model/model.safetensors"))
    final = load_file(str(out / "model/model.safetensors"))
    for k, v in base.items():
        moved = not torch.equal(v, aligned[k])
        assert moved == ("multi_modal_projector" in k), k  # align: the connector only
        if "vision_tower" in k:
            assert torch.equal(v, final[k]), k  # never touched by either stage
    # LLaVA checkpoints name the LLM "language_model.model.layers.N" on disk
    assert any(not torch.equal(aligned[k], final[k]) for k in base if "language_model" in k and ".layers." in k)
    shown = [json.loads(line) for line in (out / "stages/sft/loss_tokens.jsonl").read_text().splitlines()]
    assert len(shown) == 5 and all(s["trained_on"].endswith("<|im_end|>\n") and "<image>x16" in s["masked_context"]
                                   for s in shown)
    stage = json.loads((out / "stages/sft/stage.json").read_text())
    assert stage["metrics"]["images_seen"] == 16 and stage["metrics"]["visual_tokens_per_image"] == 16
    # frozen SigLIP: every image the model saw came from the feature cache or was encoded once into it
    cache = run["vision_cache"]["sft"]
    assert cache == stage["metrics"]["vision_cache"] and cache["bypassed"] == 0
    assert cache["hits"] + cache["misses"] == 16 and cache["misses"] > 0 and cache["peak_bytes"] > 0
    assert stage["data_cards"][0]["dropped"] == {} and stage["data_cards"][0]["examples"] == 64
    assert (out / "stages/sft/adapter/adapter_model.safetensors").is_file()
    card = (out / "model/README.md").read_text()
    assert "### sft (vlm_sft)" in card and "alignment method" in card
    assert list((out / "tensorboard/sft").glob("events.out.tfevents.*"))
    from transformers import AutoModelForImageTextToText, AutoProcessor

    AutoModelForImageTextToText.from_pretrained(out / "model")
    assert AutoProcessor.from_pretrained(out / "model").image_token == "<image>"


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, siglip_llava, data_root):
    recipe = _recipe(tmp_path, siglip_llava, data_root, steps=8, save_every=2)
    full = tmp_path / "full"
    subprocess.run(_cmd(recipe, full), check=True, env=_env(), capture_output=True, timeout=600)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(_cmd(recipe, cut), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = cut / "stages/sft/checkpoints/checkpoint-4/trainer_state.json"
    deadline = time.time() + 600
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert target.exists(), "the run ended or stalled before the sft stage's step-4 checkpoint"
    proc.send_signal(signal.SIGKILL)  # a real kill -9 in the middle of the second stage
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (cut / "stages/sft/stage.json").exists()

    done = subprocess.run(_cmd(recipe, cut, "--resume"), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sft = json.loads((cut / "stages/sft/stage.json").read_text())
    assert sft["metrics"]["resumed_from_step"] >= 4 and sft["metrics"]["global_step"] == 8
    a = load_file(str(full / "model/model.safetensors"))
    b = load_file(str(cut / "model/model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bit-identical: same data order, optimiser, scheduler and RNG


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_one_vlm(tmp_path, siglip_llava, data_root):
    recipe = tmp_path / "r.yaml"
    src = f'[{{reader: vqa_rad, path: "{data_root / "vqa-rad"}", limit: 32, options: {{split: train}}}}]'
    recipe.write_text(f"""
model: {siglip_llava}
tracking: {{tensorboard: false}}
stages:
  - name: sft
    type: vlm_sft
    data: {{sources: {src}}}
    method: {{type: lora, r: 4, alpha: 8}}
    train: {{max_steps: 3, batch_size: 2, max_length: 256, lr: 0.01}}
""")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(free_port()), "-m", "clinforge", "train", str(recipe), "--out",
                           str(out)], env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / "stages/sft/ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["trainer_world_size"] for r in ranks] == [2, 2] and all(r["steps_run_here"] == 3 for r in ranks)
    assert ranks[0]["inputs_sha256_here"] != ranks[1]["inputs_sha256_here"]  # each rank saw its own shard
    assert ranks[0]["trainable_checksum"] == pytest.approx(ranks[1]["trainable_checksum"], rel=1e-9)
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
    assert (out / "stages/sft/adapter/adapter_model.safetensors").is_file()
    assert (out / "model/model.safetensors").is_file()
