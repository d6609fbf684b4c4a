"""Where clinforge finds the shared real datasets, its own packaged samples and its cache."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """``$CLINFORGE_DATA`` or ``../shared/data`` relative to the working directory.

    Example:
        >>> isinstance(data_root(), Path)
        True
    """
    env = os.environ.get("CLINFORGE_DATA")
    return Path(env) if env else Path("..") / "shared" / "data"


def samples_dir() -> Path:
    """Small synthetic sample data shipped inside the package (works on a fresh clone, offline).

    Example:
        >>> samples_dir().name
        'samples'
    """
    return PACKAGE_ROOT / "samples"


def cache_root() -> Path:
    """``$CLINFORGE_CACHE`` or ``~/.cache/clinforge``: converted models, derived word lists.

    Example:
        >>> cache_root().name in ("clinforge", os.environ.get("CLINFORGE_CACHE", "clinforge").rstrip("/").split("/")[-1])
        True
    """
    env = os.environ.get("CLINFORGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clinforge"
