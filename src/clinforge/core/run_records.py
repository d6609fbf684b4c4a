"""Run directories: every command that produces results records how the result was made.

A run directory holds ``run.json`` (command, resolved config, sha256 of every input file, package versions,
git revision, seed, start/end times) and ``summary.json`` (the machine-readable result). Outputs are written to
a temporary folder and moved into place on success, so a crash never leaves a half-written run that looks whole.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from clinforge import __version__
from clinforge.core.errors import OutputExistsError
from clinforge.core.interrupts import interruption_in
from clinforge.core.io import atomic_write_json, sha256_tree

TRACKED_PACKAGES = (
    "torch", "transformers", "tokenizers", "datasets", "peft", "trl", "accelerate", "pydantic", "numpy",
    "sacrebleu", "rouge-score", "pycocoevalcap", "nltk", "bert-score", "sentence-transformers", "opacus",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that change results (absent ones omitted).

    Example:
        >>> sorted(package_versions(("numpy",)))
        ['clinforge', 'numpy', 'python']
    """
    out = {"python": platform.python_version(), "clinforge": __version__}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def git_revision(path: str | os.PathLike | None = None) -> str | None:
    """The git commit of the clinforge source tree (``-dirty`` if modified), or None outside git.

    Example:
        >>> import tempfile
        >>> git_revision(tempfile.mkdtemp()) is None  # not a git checkout
        True
    """
    cwd = Path(path) if path else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def unfinished_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a run that failed or was interrupted before it produced a result (its ``run.json``
    says ``failed`` or ``interrupted`` and there is no ``summary.json``).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> RunRecord(d, command="x").fail(ValueError()); unfinished_run(d)
        True
    """
    import json

    out = Path(path)
    meta = out / "run.json"
    if not meta.is_file() or (out / "summary.json").exists():
        return False
    try:
        status = json.loads(meta.read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError):
        return False
    return status in ("failed", "interrupted")


def prepare_output_dir(path: str | os.PathLike, *, overwrite: bool = False, resume: bool = False,
                       replace_unfinished: bool = False) -> Path:
    """Create ``path`` for a new run; refuse to touch an existing non-empty one unless asked.

    ``resume=True`` keeps what is there (the caller resumes from it); ``overwrite=True`` removes it first;
    ``replace_unfinished=True`` removes a run that failed or was interrupted before producing a result
    (``unfinished_run``): such a folder holds nothing to protect, and must not block the corrected command.

    Example:
        >>> import tempfile, pathlib
        >>> d = prepare_output_dir(pathlib.Path(tempfile.mkdtemp()) / "run")
        >>> d.is_dir()
        True
    """
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        if resume:
            return out
        if not overwrite and not (replace_unfinished and unfinished_run(out)):
            raise OutputExistsError(f"{out} exists and is not empty; pass --overwrite to replace it or --resume")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


class RunRecord:
    """Writes ``run.json`` and ``summary.json`` for one run.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> run = RunRecord(d, command="data prepare", config={"seed": 0}, seed=0)
        >>> run.finish({"records_out": 3})["records_out"]
        3
        >>> sorted(p.name for p in d.iterdir())
        ['run.json', 'summary.json']
    """

    def __init__(self, out_dir: str | os.PathLike, *, command: str, config: dict[str, Any] | None = None,
                 inputs: list[str | os.PathLike] | None = None, seed: int | None = None):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.started = _dt.datetime.now(_dt.timezone.utc)
        self.meta: dict[str, Any] = {
            "command": command,
            "argv": sys.argv,
            "config": config or {},
            "inputs": {},
            "seed": seed,
            "packages": package_versions(),
            "git_revision": git_revision(),
            "platform": platform.platform(),
            "started": self.started.isoformat(),
            "status": "running",
        }
        for item in inputs or []:
            self.add_input(item)
        self._write_meta()

    def add_input(self, path: str | os.PathLike) -> None:
        """Record sha256 of an input file or of every file in an input folder."""
        if Path(path).exists():
            self.meta["inputs"].update(sha256_tree(path))
        else:
            self.meta["inputs"][str(path)] = None  # a hub id or something not on disk

    def _write_meta(self) -> None:
        atomic_write_json(self.dir / "run.json", self.meta)

    def finish(self, summary: dict[str, Any], *, status: str = "ok") -> dict[str, Any]:
        """Write the summary and close the run record; returns the summary."""
        ended = _dt.datetime.now(_dt.timezone.utc)
        self.meta.update(status=status, ended=ended.isoformat(),
                         seconds=round((ended - self.started).total_seconds(), 3))
        atomic_write_json(self.dir / "summary.json", summary)
        self._write_meta()
        return summary

    def fail(self, error: BaseException) -> None:
        """Mark the run failed, or ``interrupted`` after Ctrl-C / SIGTERM (the error type only: messages may quote
        data)."""
        status = "interrupted" if interruption_in(error) is not None else "failed"
        self.meta.update(status=status, error_type=type(error).__name__)
        self._write_meta()


__all__ = ["RunRecord", "prepare_output_dir", "unfinished_run", "package_versions", "git_revision", "OutputExistsError"]
