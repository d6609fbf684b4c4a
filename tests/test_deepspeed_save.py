"""Saving a model trained under DeepSpeed ZeRO-3 (parameters sharded across ranks) and ZeRO-2: ``accelerate launch``
with the shipped ``recipes/accelerate/deepspeed_zero{3,2}.yaml`` on two CPU ranks (DeepSpeed's CPU accelerator, gloo) trains a
recipe, and OUT/model must hold the weights that the same recipe reaches under plain DDP (``torchrun``, the same
two data shards, the same steps): full tensors, not ZeRO-3's empty placeholders, and the same numbers.

Before the fix in ``train/export.py`` (``single_process_construction``) this run hung at the save: rank 0 built
its unsharded copy inside ``deepspeed.zero.Init``, a collective the other rank never joined.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from clinforge.models.tiny import build_tiny
from conftest import free_port, short_qa, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def require_deepspeed() -> None:
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI is set but deepspeed is missing (pip install 'clinforge[deepspeed]')")
        pytest.skip("deepspeed is not installed (pip install 'clinforge[deepspeed]')")


def launch(cmd: list[str], cwd: Path, **extra_env: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", **extra_env)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]


def write_recipe(tmp_path: Path, data_root: Path, method: str, precision: str = "fp32") -> tuple[Path, Path]:
    """A tiny random Llama and a 3-step SFT recipe on 16 short real examples (a PubMedQA question and the first
    sentence of its answer); returns (model folder, recipe file)."""
    model_dir = build_tiny("llama", tmp_path / "tiny", vocab_size=512, hidden_size=64, num_heads=4, seed=0)
    data = write_jsonl(tmp_path / "qa.jsonl", short_qa(data_root, 16))
    stage = {"name": "sft", "type": "sft", "data": {"sources": [{"reader": "jsonl", "path": str(data)}]},
             "train": {"max_steps": 3, "batch_size": 2, "max_length": 128, "lr": 1e-3}}
    if method == "lora":  # merged into OUT/model at the end (recipe merge: true), by rank 0 alone
        stage["method"] = {"type": "lora", "r": 4, "alpha": 8, "dropout": 0.0}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model": str(model_dir), "precision": precision,
                                      "tracking": {"tensorboard": False}, "stages": [stage]}))
    return model_dir, recipe


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="two CPU ranks; on a GPU machine the GPU test below runs")
@pytest.mark.parametrize(("zero", "method"), [(3, "full"), (3, "lora"), (2, "full")])
def test_deepspeed_on_two_cpu_ranks_saves_what_ddp_reaches(tmp_path, data_root, zero, method):
    require_deepspeed()
    from safetensors.torch import load_file

    model_dir, recipe = write_recipe(tmp_path, data_root, method)
    # the shipped config, sized for two CPU processes (fp32: the DDP reference runs in fp32 too)
    config = yaml.safe_load((ROOT / f"recipes/accelerate/deepspeed_zero{zero}.yaml").read_text())
    assert config["deepspeed_config"]["zero_stage"] == zero
    assert zero != 3 or config["deepspeed_config"]["zero3_save_16bit_model"]
    config.update(num_processes=2, mixed_precision="no")
    (tmp_path / "zero.yaml").write_text(yaml.safe_dump(config))
    launch([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(tmp_path / "zero.yaml"),
            "--main_process_port", str(free_port()), "-m", "clinforge", "train", str(recipe), "--out", "deepspeed"],
           tmp_path, DS_ACCELERATOR="cpu")
    launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
            "clinforge", "train", str(recipe), "--out", "ddp"], tmp_path)

    saved = load_file(tmp_path / "deepspeed" / "model" / "model.safetensors")
    ddp = load_file(tmp_path / "ddp" / "model" / "model.safetensors")
    base = load_file(model_dir / "model.safetensors")
    assert set(saved) == set(base)  # plain weight names: merged, no lora_ keys, no ZeRO bookkeeping
    moved = max((ddp[k].float() - base[k].float()).abs().max().item() for k in base)
    assert moved > 1e-4  # training moved the weights, so agreeing with DDP is not agreeing with the start
    for key, tensor in base.items():
        assert saved[key].shape == tensor.shape, key  # full tensors, not ZeRO-3's empty placeholders
        torch.testing.assert_close(saved[key], ddp[key], rtol=1e-4, atol=1e-5, msg=key)
    if method == "lora":
        adapter = tmp_path / "deepspeed" / "stages" / "sft" / "model"
        assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/device_checks.sh)")
def test_deepspeed_zero3_shipped_config_on_gpus_saves_a_full_model(tmp_path, data_root):
    """The shipped ZeRO-3 config as it is (bf16) on min(2, GPUs) processes: OUT/model holds full tensors, shaped
    like the base model, changed by training, that transformers loads."""
    require_deepspeed()
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model_dir, recipe = write_recipe(tmp_path, data_root, "full", precision="bf16")
    launch([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ROOT / "recipes/accelerate/deepspeed_zero3.yaml"), "--num_processes",
            str(min(2, torch.cuda.device_count())), "--main_process_port", str(free_port()), "-m", "clinforge",
            "train", str(recipe), "--out", "deepspeed"], tmp_path)
    saved = load_file(tmp_path / "deepspeed" / "model" / "model.safetensors")
    base = load_file(model_dir / "model.safetensors")
    assert set(saved) == set(base)
    for key, tensor in base.items():
        assert saved[key].shape == tensor.shape and saved[key].numel() > 0, key
    assert any(not torch.equal(saved[k].float(), base[k].float()) for k in base)
    AutoModelForCausalLM.from_pretrained(tmp_path / "deepspeed" / "model")


def test_importing_clinforge_keeps_deepspeeds_cpu_notice_off_stdout() -> None:
    """accelerate imports deepspeed from every ``save_pretrained``; without a GPU deepspeed then logs "Setting
    accelerator to CPU" on stdout, which ``path=$(clinforge models fetch NAME)`` captured with the path."""
    require_deepspeed()
    if torch.cuda.is_available():
        pytest.skip("deepspeed prints the notice only where it finds no accelerator")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DS_ACCELERATOR", None)
    plain = subprocess.run([sys.executable, "-c", "import deepspeed"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert "Setting accelerator to CPU" in plain.stdout  # what deepspeed does on its own
    ours = subprocess.run([sys.executable, "-c", "import clinforge, deepspeed; print('ok')"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0 and ours.stdout == "ok\n", ours.stdout + ours.stderr[-2000:]
