"""The throughput benchmarks run end to end at smoke sizes (their figures come from full runs, never from tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, data_root: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TOKENIZERS_PARALLELISM="false", CLINFORGE_DATA=str(data_root))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--no-real", *args],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_eval_throughput_runs_and_checks_identity(data_root):
    last = _run("eval_throughput.py", data_root)
    m = re.fullmatch(r"RESULT speedup=\S+ identical=(\S+) max_abs_ll_diff=(\S+) clinforge_qps=\S+ lmeval_qps=\S+ "
                     r"speedup_3shot=\S+", last)
    assert m, last
    assert float(m.group(1)) == 1.0 and float(m.group(2)) <= 1e-4


@pytest.mark.slow
def test_eval_whole_machine_runs_both_command_lines_and_checks_identity(data_root):
    last = _run("eval_whole_machine.py", data_root, "--procs", "2")
    m = re.fullmatch(r"RESULT speedup=\S+ identical=(\S+) max_abs_ll_diff=(\S+) clinforge_qps=\S+ lmeval_qps=\S+ "
                     r"clinforge_config=clinforge_\S+ lmeval_config=lm-eval_bs1", last)
    assert m, last
    assert float(m.group(1)) == 1.0 and float(m.group(2)) <= 1e-4


@pytest.mark.slow
def test_train_throughput_runs_every_trl_candidate(data_root):
    last = _run("train_throughput.py", data_root, "--search-timeout-factor", "100")
    assert re.fullmatch(r"RESULT speedup_best=\S+ speedup_default=\S+ clinforge_tok_s=\d+ trl_best_tok_s=\d+ "
                        r"trl_default_tok_s=\d+(?: speedup_best_\w+=\S+)*", last), last


@pytest.mark.slow
def test_mllm_train_runs_both_trainers_on_the_same_loss_tokens(data_root):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TOKENIZERS_PARALLELISM="false", CLINFORGE_DATA=str(data_root))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mllm_train.py"), "--quick"],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"RESULT speedup=[\d.]+ clinforge_img_s=[\d.]+ trl_img_s=[\d.]+", out[-1]), out[-1]
    assert any(line.startswith("same loss tokens: True") for line in out), "\n".join(out)
    rows = {line.split()[0]: line.split() for line in out if line.split() and line.split()[0] in ("mlp", "avgpool")}
    assert rows["mlp"][1] == "16" and rows["avgpool"][1] == "4"  # visual tokens per image handed to the LLM
