"""Two CPU processes (torchrun, gloo) run one recipe as a single DDP group: both ranks take part, the run records
world size 2, and both ranks end with identical weights (gradients were all-reduced)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.slow
def test_torchrun_two_cpu_processes_both_train(tmp_path, data_root, tiny_llama):
    model = tiny_llama
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
model: {model}
tracking: {{tensorboard: false}}
stages:
  - name: cpt
    type: cpt
    data:
      sources: [{{reader: pubmedqa, path: "{data_root / 'pubmedqa/data/ori_pqal.json'}", limit: 16}}]
    train: {{max_steps: 3, batch_size: 2, max_length: 64, lr: 0.01}}
""")
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(free_port()), "-m", "clinforge", "train", str(recipe), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / "stages/cpt/ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    for r, info in enumerate(ranks):
        assert info["rank"] == r
        assert info["trainer_world_size"] == 2 and info["parallel_mode"] == "distributed"
        assert info["steps_run_here"] == 3
    # each rank computed its own shard (different inputs), yet both end with the same weights: the gradients
    # were all-reduced. Two independent single-process runs would have seen the same inputs.
    assert ranks[0]["inputs_sha256_here"] != ranks[1]["inputs_sha256_here"]
    assert ranks[0]["input_positions_here"] > 0 and ranks[1]["input_positions_here"] > 0
    assert ranks[0]["trainable_checksum"] == pytest.approx(ranks[1]["trainable_checksum"], rel=1e-9)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert (out / "model" / "model.safetensors").is_file()
