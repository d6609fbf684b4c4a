"""An output that survives an interruption: written in a hidden ``.NAME.partial`` folder beside it, with the
progress saved in ``state.json``, resumed by the same command, moved onto ``NAME`` in one step when complete.

``atomic_path`` gives all-or-nothing outputs: right for a run of seconds, wasteful for one of hours (a
de-identification of a million notes stopped at 90% by a scheduler's SIGTERM starts again from the first note).
``PartialOutput`` keeps what was finished. The state holds a **fingerprint** of the input and the options (sizes,
times, hashes, flags; never data): a later run with the same fingerprint resumes, one with another fingerprint is
refused unless ``overwrite`` (then the partial output is discarded), so two different runs are never stitched
together. The state is written atomically, after the output it counts has been flushed to disk, so a crash between
checkpoints loses at most the work since the last one. Nothing here holds PHI: a caller whose progress cannot be
saved without it (a surrogate map, a per-run pseudonym key) does not checkpoint (see ``file_deid``).

Example:
    >>> import json, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "clean.jsonl"
    >>> p = PartialOutput(out, {"input": "notes.jsonl", "mode": "mask"})
    >>> p.start() is None                      # nothing to resume: a fresh run
    True
    >>> _ = p.path.write_text("line 1\\n"); p.checkpoint({"done": 1})
    >>> PartialOutput(out, {"input": "notes.jsonl", "mode": "mask"}).start()["done"]   # the same run, later
    1
    >>> p.commit(); out.read_text(), p.folder.exists()
    ('line 1\\n', False)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clinforge.core.errors import OutputExistsError
from clinforge.core.io import replace_path

STATE_FILE = "state.json"
CHECKPOINT_S = 30.0  # seconds between saves of a long run's progress (and at an interruption)


def file_fingerprint(path: str | os.PathLike, files: Iterable[Path] | None = None) -> dict[str, Any]:
    """What identifies a file's content cheaply: resolved path, size and modification time (nanoseconds); a
    folder: the same for each file under it (or each of ``files``, when the caller has listed them), hashed.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"; _ = p.write_text("x")
        >>> sorted(file_fingerprint(p))
        ['mtime_ns', 'path', 'size']
    """
    p = Path(path).resolve()
    if p.is_dir():
        digest = hashlib.sha256()
        for f in sorted(Path(q).resolve() for q in files) if files is not None else sorted(
                q for q in p.rglob("*") if q.is_file()):
            st = f.stat()
            digest.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return {"path": str(p), "files": digest.hexdigest()}
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a small file's bytes (a site list, a config): its content, not its name, decides a resume.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"; _ = p.write_text("x")
        >>> content_hash(p)[:12]
        '2d711642b726'
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class PartialOutput:
    """The in-progress output of one run for ``target`` (a file or a folder), resumable across processes.

    ``path`` is where the caller writes (``.NAME.partial/NAME``); ``start()`` returns the saved state of an
    earlier run with the same ``fingerprint`` (resume) or ``None`` (fresh: any other partial output is discarded
    when ``overwrite``, refused otherwise); ``checkpoint(state)`` saves progress; ``commit()`` moves the output onto
    ``target`` (replacing it when ``overwrite``) and removes the folder; ``discard()`` removes it.
    """

    def __init__(self, target: str | os.PathLike, fingerprint: dict[str, Any], *, overwrite: bool = False):
        self.target = Path(target)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        self.overwrite = overwrite
        self.folder = self.target.parent / f".{self.target.name}.partial"
        self.path = self.folder / self.target.name

    def saved_state(self) -> dict[str, Any] | None:
        """The state an earlier run saved here (``None`` if there is none or it cannot be read)."""
        try:
            return json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def start(self) -> dict[str, Any] | None:
        """Resume or begin: the saved state when an earlier run with this fingerprint checkpointed here, else
        ``None`` with an empty folder ready for a fresh run."""
        if self.folder.exists():
            saved = self.saved_state()
            if saved is not None and saved.get("fingerprint") == self.fingerprint and self.path.exists():
                return saved.get("progress", {})
            if saved is not None and not self.overwrite:
                old = saved.get("fingerprint") or {}
                differ = sorted(k for k in set(old) | set(self.fingerprint) if old.get(k) != self.fingerprint.get(k))
                raise OutputExistsError(
                    f"{self.folder} holds an unfinished run of {self.target} with other input or options "
                    f"(differing: {', '.join(differ) or 'none'}); run that command again to resume it, or pass "
                    "--overwrite to discard it and start again")
            shutil.rmtree(self.folder)  # no state: a run that never reached a checkpoint, or --overwrite
        self.folder.mkdir(parents=True)
        return None

    def checkpoint(self, progress: dict[str, Any]) -> None:
        """Save ``progress`` (JSON) for a later resume; call it after flushing the output it describes."""
        state = {"fingerprint": self.fingerprint, "progress": progress}
        tmp = self.folder / f".{STATE_FILE}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / STATE_FILE)

    def commit(self) -> None:
        """Move the finished output onto ``target`` in one step and remove the partial folder."""
        if self.target.exists() and not self.overwrite:
            raise OutputExistsError(f"{self.target} exists; pass --overwrite to replace it")
        replace_path(self.path, self.target)
        shutil.rmtree(self.folder, ignore_errors=True)

    def discard(self) -> None:
        """Remove the partial output and its state (a run that cannot be resumed, or failed on bad input)."""
        shutil.rmtree(self.folder, ignore_errors=True)
