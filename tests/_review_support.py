"""Shared pieces of the review-app tests: a real PostgreSQL (scripts/start_postgres.sh, run as user postgres when
root), a fresh database per test on SQLite or PostgreSQL, and a real uvicorn server on a loopback port chosen by
the OS (port 0)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pg_binaries() -> bool:
    return shutil.which("initdb") is not None or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL cluster; ``new_database()`` returns the URL of a fresh empty database."""

    def __init__(self):
        last = ""
        for _ in range(3):  # the free port may be taken between probing and binding
            proc = subprocess.run(["bash", str(ROOT / "scripts" / "start_postgres.sh"), str(free_port())],
                                  capture_output=True, text=True, timeout=120)
            if proc.returncode == 0:
                self.dir, self.url = proc.stdout.strip().splitlines()[-1].split()
                return
            last = proc.stderr
        raise RuntimeError(f"PostgreSQL did not start: {last[-2000:]}")

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        subprocess.run(["bash", str(ROOT / "scripts" / "start_postgres.sh"), "--stop", self.dir], timeout=120,
                       check=False)


@pytest.fixture(scope="session")
def postgres():
    if not pg_binaries():
        if os.environ.get("CI"):
            pytest.fail("CI is set but PostgreSQL is not installed (scripts/install_system.sh installs it)")
        pytest.skip("PostgreSQL binaries absent (apt-get install -y postgresql)")
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh database: SQLite in tmp_path, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "review.db")
    return request.getfixturevalue("postgres").new_database()


class LiveServer:
    """The review app served by a real uvicorn on 127.0.0.1 with an OS-chosen port, in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@pytest.fixture
def live_server():
    """Start ``LiveServer(app)``s; every one started is stopped after the test."""
    started = []

    def start(app):
        started.append(LiveServer(app))
        return started[-1]

    yield start
    for server in started:
        server.stop()
