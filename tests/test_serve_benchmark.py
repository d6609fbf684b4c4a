"""benchmarks/serve_load.py runs end to end at smoke size (its figures come from full runs, never from tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_serve_load_smoke_run_handles_faults_and_loses_nothing():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), "--quick", "--no-real"],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    m = re.fullmatch(r"RESULT overhead=(\S+) p95_ms=(\d+) errors_5xx=(\d+) lost=(\d+)", lines[-1])
    assert m, lines[-1]
    assert int(m.group(3)) == 0 and int(m.group(4)) == 0
    assert "injected faults handled as expected: True" in lines[-2]
