"""The README's set-up scripts, run as a user runs them: ``scripts/install.sh`` (where torch comes from, visible
progress) and ``scripts/test.sh`` (the full suite by default, ``--quick`` only when asked)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bash(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)


def pip_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("pip ")]


def test_install_takes_cpu_torch_from_the_pytorch_index_only_when_asked():
    # CLINFORGE_PIP replaces the pip command (e.g. "uv pip"); "echo pip" shows the commands the script would run
    cpu = bash("install.sh", CLINFORGE_PIP="echo pip", CLINFORGE_TORCH_INDEX="cpu")
    assert cpu.returncode == 0, cpu.stderr
    lines = pip_lines(cpu.stdout)
    torch_line = next(line for line in lines if line.endswith(" torch"))
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_line and "-c constraints.txt" in torch_line
    assert lines[-1] == "pip install -c constraints.txt -e .[all]"  # clinforge itself from the usual index
    assert not any(" -q" in line for line in lines)  # progress is shown
    assert "== [2/3] torch 2.13.0 from https://download.pytorch.org/whl/cpu" in cpu.stdout

    default = bash("install.sh", CLINFORGE_PIP="echo pip", CLINFORGE_TORCH_INDEX="")
    assert default.returncode == 0 and not any("--index-url" in line for line in pip_lines(default.stdout))
    cuda = bash("install.sh", CLINFORGE_PIP="echo pip", CLINFORGE_TORCH_INDEX="cu126")
    assert "--index-url https://download.pytorch.org/whl/cu126" in cuda.stdout
    bad = bash("install.sh", CLINFORGE_PIP="echo pip", CLINFORGE_TORCH_INDEX="gpu")
    assert bad.returncode == 2 and "expected cpu, cuXYZ" in bad.stderr and not pip_lines(bad.stdout)


def test_test_script_runs_everything_unless_quick(tmp_path: Path):
    def collected(*args: str) -> set[str]:
        # its own scratch folder: the default one may belong to a suite that is running
        proc = bash("test.sh", *args, "--collect-only", "tests/test_train_examples.py",
                    CLINFORGE_SKIP_INSTALL="1", CLINFORGE_TEST_WORKERS="0", CLINFORGE_TEST_TMP=str(tmp_path / "t"))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return {line.split("::")[1] for line in proc.stdout.splitlines() if "::" in line}

    full, quick = collected(), collected("--quick")
    assert {"test_tiny_sft_lora", "test_tiny_dpo", "test_every_example_recipe_has_a_run_test"} <= full
    assert quick and quick < full and "test_tiny_sft_lora" not in quick


def test_test_script_writes_under_one_scratch_folder_and_checks_free_space_first(tmp_path: Path):
    scratch = tmp_path / "scratch"
    (scratch / "pytest").mkdir(parents=True)
    (scratch / "pytest" / "left-by-a-killed-run").write_text("x")
    ok = bash("test.sh", "--collect-only", "tests/test_scripts.py", CLINFORGE_SKIP_INSTALL="1",
              CLINFORGE_TEST_WORKERS="0", CLINFORGE_TEST_TMP=str(scratch))
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert not scratch.exists()  # emptied at the start, removed after a passing run

    full = bash("test.sh", "--collect-only", "tests/test_scripts.py", CLINFORGE_SKIP_INSTALL="1", CLINFORGE_TEST_WORKERS="0",
                CLINFORGE_TEST_TMP=str(scratch), CLINFORGE_TEST_MIN_FREE_GB="100000000")
    assert full.returncode == 1
    assert f"GB free under {scratch}" in full.stderr and "CLINFORGE_TEST_MIN_FREE_GB" in full.stderr
    assert "test suite:" not in full.stdout  # pytest never started
