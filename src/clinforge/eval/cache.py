"""SQLite request cache and crash-safe per-item JSON Lines: what makes a killed evaluation resumable.

* ``RequestCache``: results of backend requests keyed by (model fingerprint, sha256 of the request). A rerun asks
  the backend only for what is not cached, so work done before a kill is never recomputed. SQLite in WAL mode with a
  busy timeout lets several shard processes share one file.
* ``ItemLog``: rows appended one JSON line at a time, flushed and fsynced; on open, a torn last line (the process
  died mid-write) is cut off, and rows are de-duplicated by item id, so no item is lost or counted twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from clinforge.core.errors import DataError
from clinforge.core.sqlite_wal import enable_wal


def request_key(kind: str, request: Any) -> str:
    """A stable hash of a request (its dataclass fields, sorted), prefixed by the request kind.

    Example:
        >>> from clinforge.models.backends.base import LoglikelihoodRequest
        >>> request_key("loglikelihood", LoglikelihoodRequest("Q:", " A"))[:12]
        'c0ec7eb814c8'
    """
    payload = dataclasses.asdict(request) if dataclasses.is_dataclass(request) else request
    text = json.dumps({"kind": kind, "request": payload}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RequestCache:
    """Persistent map (fingerprint, key) -> JSON value.

    Example:
        >>> import tempfile, pathlib
        >>> c = RequestCache(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite", "model-a")
        >>> c.put_many({"k": [-1.5, True]}); c.get_many(["k", "x"])
        {'k': [-1.5, True]}
    """

    def __init__(self, path: str | os.PathLike, fingerprint: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fingerprint = hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()
        self._db = sqlite3.connect(str(self.path), timeout=60.0)
        enable_wal(self._db, deadline_s=60.0)  # shard processes open one file at once
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS results (fingerprint TEXT, key TEXT, value TEXT, "
                         "PRIMARY KEY (fingerprint, key))")
        self._db.commit()

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """Cached values of ``keys`` (missing keys are absent from the result)."""
        out: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, value FROM results WHERE fingerprint = ? AND key IN ({marks})",
                                    [self.fingerprint, *chunk]).fetchall()
            out.update({k: json.loads(v) for k, v in rows})
        return out

    def put_many(self, values: dict[str, Any]) -> None:
        """Store values in one transaction."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                                 [(self.fingerprint, k, json.dumps(v)) for k, v in values.items()])

    def close(self) -> None:
        self._db.close()


def read_rows(path: str | os.PathLike, *, repair: bool = False) -> list[dict[str, Any]]:
    """Rows of an item log; a torn final line is dropped (and cut from the file when ``repair``).

    A bad line that is not the last one is real corruption and raises DataError with its line number.
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    # every row is written as one "json\n" write: complete lines are whole rows, bytes after the last newline are a
    # torn write of a killed process
    cut = data.rfind(b"\n") + 1
    rows: list[dict[str, Any]] = []
    for lineno, raw in enumerate(data[:cut].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            rows.append(json.loads(raw))
        except ValueError as exc:
            raise DataError(f"corrupt item log ({exc})", file=str(p), line=lineno) from exc
    if repair and cut < len(data):
        with open(p, "r+b") as fh:
            fh.truncate(cut)
    return rows


class ItemLog:
    """Append-only, fsynced JSON Lines of scored items, de-duplicated by ``id``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = read_rows(self.path, repair=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for appends, closed in close()

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write rows and force them to disk before returning."""
        for row in rows:
            self._fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.rows.extend(rows)

    def close(self) -> None:
        self._fh.close()


def dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first row of each ``id``, ordered by ``index`` (the item's position in the task's data).

    Example:
        >>> dedupe([{"id": "b", "index": 1}, {"id": "a", "index": 0}, {"id": "b", "index": 1}])
        [{'id': 'a', 'index': 0}, {'id': 'b', 'index': 1}]
    """
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["id"], row)
    return sorted(seen.values(), key=lambda r: r["index"])
