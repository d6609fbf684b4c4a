"""``core.sqlite_wal.enable_wal``: the switch to WAL waits out another connection's lock instead of failing."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from clinforge.core.sqlite_wal import enable_wal


def test_the_switch_waits_for_a_lock_that_a_plain_pragma_fails_on(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # another process opening the file, as a torchrun rank did
    other = sqlite3.connect(path, timeout=0)  # answers "locked" at once, as SQLite did there
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("PRAGMA journal_mode=WAL")
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    enable_wal(other, deadline_s=10)
    assert time.monotonic() - started >= 0.25  # it waited for the holder ...
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # ... then switched
    release.join()


def test_it_gives_up_after_the_deadline_and_raises_other_errors_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(other, deadline_s=0.2)
    assert time.monotonic() - started < 5
    holder.execute("COMMIT")
    closed = sqlite3.connect(path)
    closed.close()
    with pytest.raises(sqlite3.ProgrammingError):
        enable_wal(closed)
