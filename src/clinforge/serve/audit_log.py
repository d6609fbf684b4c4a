"""The server's audit log: one JSON line per request, never raw text.

A line holds the request id, the key id (first 12 hex digits of the key's SHA-256), model, endpoint, status, token
counts, latency, guard decisions (levels, actions, rule names and span counts: no text) and the SHA-256 of the
prompt and of the text that was sent to the client (after the PHI guard). Each line is written with one ``write``
on a file opened with ``O_APPEND`` under a lock, so concurrent requests never interleave lines and a crash leaves
at most one incomplete last line.

Example:
    >>> import tempfile, json, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
    >>> log = AuditLog(path)
    >>> log.write({"request_id": "r1", "prompt_sha256": sha256_text("hi")})
    >>> json.loads(path.read_text())["prompt_sha256"][:8]
    '8f434346'
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any


def sha256_text(text: str) -> str:
    """Hex SHA-256 of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditLog:
    """Append-only JSONL audit log; ``path=None`` keeps nothing (``write`` is a no-op)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._fd: int | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, event: dict[str, Any]) -> None:
        """Append one event (a ``ts`` is added); values must already be free of raw text."""
        if self._fd is None:
            return
        line = json.dumps({"ts": round(time.time(), 3), **event}, ensure_ascii=False, sort_keys=True) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
