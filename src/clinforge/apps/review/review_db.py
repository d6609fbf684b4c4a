"""Storage of the review app: SQLAlchemy 2 models, the engine (SQLite by default, PostgreSQL by URL) and the Alembic
migrations shipped in this package (``migrations/``), applied on every start.

Why two session kinds on SQLite: a deferred SQLite transaction that reads and then writes can fail at once with
"database is locked" when another writer got in between (no busy wait for a lock upgrade), so write transactions
there start with ``BEGIN IMMEDIATE`` and wait on ``busy_timeout`` instead; reads stay concurrent under WAL.
PostgreSQL needs nothing of the sort: ratings are written with ``INSERT ... ON CONFLICT DO UPDATE`` on a unique key
on both databases, so parallel submissions of the same rating leave exactly one row.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from clinforge.core.sqlite_wal import enable_wal

DEFAULT_DB = "review.db"


def utcnow() -> dt.datetime:
    """Timezone-aware now (stored as UTC).

    Example:
        >>> utcnow().tzinfo is not None
        True
    """
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every review table (``Base.metadata`` is what the migrations must reproduce)."""

    type_annotation_map = {dt.datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """An account: ``role`` is ``admin`` or ``rater``; ``password_hash`` is an Argon2id hash."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A login session; only the SHA-256 of the cookie token is stored, with the session's CSRF token."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()


class LoginFailure(Base):
    """A failed login (username and client address), counted for the login rate limit."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class Invite(Base):
    """A one-time invitation link (only its SHA-256 is stored); accepting it creates a rater account."""

    __tablename__ = "invites"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="rater")
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class Study(Base):
    """A study: ``kind`` single (rate one answer on the rubric's axes) or pairwise (which of two answers is
    better); ``rubric`` is a list of axes ``{name, question, values, ordered}``; ``status`` open or closed."""

    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    rubric: Mapped[list[Any]] = mapped_column()
    k_raters: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")
    sources: Mapped[list[Any]] = mapped_column()
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class StudyItem(Base):
    """One unit to rate: an answer (single) or a pair of answers (pairwise, ``a`` and ``b`` in a fixed order; the
    left/right side is drawn per assignment). ``code`` is the only identifier a rater sees."""

    __tablename__ = "study_items"
    __table_args__ = (UniqueConstraint("study_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[str] = mapped_column(String(300))
    question: Mapped[str] = mapped_column(Text)
    answer_a: Mapped[str] = mapped_column(Text)
    model_a: Mapped[str] = mapped_column(String(300))
    answer_b: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_b: Mapped[str | None] = mapped_column(String(300), nullable=True)
    judge_labels: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)


class Assignment(Base):
    """Item ``item_id`` given to rater ``rater_id`` at ``position`` in that rater's own random order; ``swapped``
    (pairwise) records that answer b was shown on the left."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("item_id", "rater_id"), UniqueConstraint("study_id", "rater_id", "position"))
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("study_items.id", ondelete="CASCADE"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)


class Rating(Base):
    """A rater's answer for one assignment (single studies): ``values`` axis -> value or None; ``submitted`` is
    False while only autosaved. One row per assignment (unique), written by upsert."""

    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    values: Mapped[dict[str, Any]] = mapped_column()
    unsure: Mapped[bool] = mapped_column(Boolean, default=False)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PairwiseChoice(Base):
    """A rater's choice for one pairwise assignment: ``choice`` left/right/tie as shown, ``winner`` a/b/tie after
    undoing the recorded swap (None when not chosen). One row per assignment (unique), written by upsert."""

    __tablename__ = "pairwise_choices"
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    choice: Mapped[str | None] = mapped_column(String(8), nullable=True)
    winner: Mapped[str | None] = mapped_column(String(8), nullable=True)
    unsure: Mapped[bool] = mapped_column(Boolean, default=False)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Adjudication(Base):
    """An admin's resolution of a flagged item: the agreed values (single) or winner (pairwise) and a note."""

    __tablename__ = "adjudications"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("study_items.id", ondelete="CASCADE"), unique=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    values: Mapped[dict[str, Any]] = mapped_column()
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Who did what, by id only (``detail`` never holds item text, so no patient data reaches the audit log)."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


def database_url(db: str | None) -> str:
    """A SQLAlchemy URL from ``--db``: None -> ``review.db`` in the current folder; a path -> SQLite at that path;
    ``postgresql://`` URLs use psycopg 3.

    Example:
        >>> database_url("x/r.db"), database_url("postgresql://u@h:5/d")
        ('sqlite:///x/r.db', 'postgresql+psycopg://u@h:5/d')
    """
    db = db or DEFAULT_DB
    if "://" not in db:
        return f"sqlite:///{db}"
    if db.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    return db


class Database:
    """The engine plus ``read()``/``write()`` transactional sessions; ``Database(url).migrate()`` brings the
    schema to the newest migration.

    Example:
        >>> import tempfile, os
        >>> db = Database(os.path.join(tempfile.mkdtemp(), "r.db")); db.migrate()
        >>> with db.read() as s: s.query(User).count()
        0
    """

    def __init__(self, db: str | None = None):
        self.url = database_url(db)
        self.is_sqlite = make_url(self.url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = self._sqlite_engine(immediate=False)
            self._write_engine = self._sqlite_engine(immediate=True)
        else:
            self.engine = create_engine(self.url, pool_size=10, max_overflow=40, pool_pre_ping=True)
            self._write_engine = self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

    def _sqlite_engine(self, *, immediate: bool) -> Engine:
        engine = create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_size=20, max_overflow=60)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below emit BEGIN itself
            cur = dbapi_conn.cursor()
            enable_wal(cur)  # the read and the write engine may both open the file first
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA synchronous=FULL")  # a crash never loses a committed rating
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (committed on exit, so it may also write rarely contended rows)."""
        with self._read.begin() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction takes the write lock first (SQLite) and commits on exit."""
        with self._write.begin() as session:
            yield session

    def migrate(self) -> None:
        """Apply every Alembic migration shipped in ``clinforge.apps.review.migrations`` (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self._write_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self._write_engine is not self.engine:
            self._write_engine.dispose()


def open_database(db: str | None = None) -> Database:
    """``Database(db)`` with its migrations applied; ``db`` falls back to ``$CLINFORGE_REVIEW_DB``, then
    ``review.db`` in the current folder.

    Example:
        >>> import tempfile, os
        >>> open_database(os.path.join(tempfile.mkdtemp(), "r.db")).is_sqlite
        True
    """
    database = Database(db or os.environ.get("CLINFORGE_REVIEW_DB"))
    database.migrate()
    return database
