"""Running the review app: ``serve`` (uvicorn on loopback by default; SIGTERM drains in-flight requests and exits
0), ``create_admin`` (the first admin, from the command line) and ``export`` (a closed study's exchange files).

The access log stays off: request paths carry one-time invite tokens, and nothing about items belongs in a log.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from clinforge.apps.review.review_db import Study, User, open_database
from clinforge.core.errors import ConfigError
from clinforge.core.no_egress import is_loopback

LOOPBACK = ("127.0.0.1", "::1", "localhost")




def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to (host, port); port 0 lets the OS choose (read it back from the
    socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    return sock


def serve(db: str | None = None, *, host: str = "127.0.0.1", port: int = 8080, data_roots: list[Path] | None = None,
          n_boot: int = 1000, log_level: str = "warning") -> int:
    """Migrate the database, then serve the app until SIGTERM/SIGINT; returns 0 after a clean drain.

    Example:
        >>> serve("review.db", port=8080)  # doctest: +SKIP
    """
    import uvicorn

    from clinforge.apps.review.review_web import create_app

    database = open_database(db)
    app = create_app(database, data_roots=data_roots, n_boot=n_boot)
    sock = bind_socket(host, port)
    # listen now, so a client that reads the address below and connects at once waits in the backlog instead of
    # being refused before uvicorn has started
    sock.listen(2048)
    actual = sock.getsockname()[1]
    if not is_loopback(host):
        print(f"warning: listening on {host}, reachable from other machines; put it behind HTTPS "
              "(a reverse proxy) before real use", file=sys.stderr)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=30,
                            proxy_headers=False, server_header=False)
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has drained; a no-op handler makes that a clean return
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    shown = f"[{host}]" if ":" in host else host
    print(f"clinforge review: {database.url.split('://')[0]} database ready; listening on http://{shown}:{actual}",
          flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
        database.dispose()
    print("clinforge review: stopped after finishing in-flight requests", flush=True)
    return 0


def create_admin(db: str | None, username: str, password_env: str) -> str:
    """Create an admin account whose password is read from the environment variable ``password_env`` (never from
    the command line, where other users could see it); returns the username."""
    from clinforge.apps.review.review_auth import create_user

    password = os.environ.get(password_env)
    if not password:
        raise ConfigError(f"environment variable {password_env} is not set or empty (it must hold the password)")
    database = open_database(db)
    try:
        with database.write() as s:
            create_user(s, username, password, "admin")
    finally:
        database.dispose()
    return username


def export(db: str | None, study_id: int, out_dir: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Any]:
    """Write a closed study's exchange files into ``out_dir`` (see ``review_results.export_study``)."""
    from clinforge.apps.review.review_auth import audit
    from clinforge.apps.review.review_results import export_study

    database = open_database(db)
    try:
        with database.write() as s:
            study = s.get(Study, study_id)
            if study is None:
                raise ConfigError(f"no study with id {study_id}")
            manifest = export_study(s, study, out_dir, overwrite=overwrite)
            audit(s, None, "export.cli", study=study_id)
    finally:
        database.dispose()
    return manifest


def list_users(db: str | None) -> list[tuple[str, str]]:
    """(username, role) of every account."""
    database = open_database(db)
    try:
        with database.read() as s:
            return [(u.username, u.role) for u in s.query(User).order_by(User.username)]
    finally:
        database.dispose()
