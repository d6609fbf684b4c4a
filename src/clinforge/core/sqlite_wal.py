"""Switch a SQLite connection to write-ahead logging, waiting out the moment another connection holds the file.

Switching to WAL needs a moment of exclusive access, and SQLite can answer "database is locked" at once instead of
waiting out the busy timeout while another connection opens the same file: two torchrun ranks opening one eval
cache failed that way (2026-12-04), and the review server opens a read and a write engine on one database.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def enable_wal(connection: Any, deadline_s: float = 60.0) -> None:
    """``PRAGMA journal_mode=WAL`` on ``connection`` (a ``sqlite3`` connection or cursor), retried with a short
    backoff while SQLite answers "database is locked", for up to ``deadline_s`` seconds; other errors raise at once.

    Example:
        >>> import sqlite3, tempfile, os
        >>> db = sqlite3.connect(os.path.join(tempfile.mkdtemp(), "x.sqlite"))
        >>> enable_wal(db); db.execute("PRAGMA journal_mode").fetchone()[0]
        'wal'
    """
    waited, pause = 0.0, 0.02
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or waited >= deadline_s:
                raise
        time.sleep(pause)
        waited += pause
        pause = min(pause * 2, 0.5)
