"""A throwaway PostgreSQL with pgvector for tests: its own data folder, a free loopback port, its own OS user.

Where the binaries come from, first found wins: ``$CLINFORGE_PG_BIN`` (a folder with initdb/pg_ctl/postgres), a
system PostgreSQL whose extension folder has ``vector.control`` (Debian: ``postgresql-NN-pgvector``), or the
PostgreSQL + pgvector build inside the ``pgserver`` wheel (Debian bookworm ships no pgvector package).
PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user (or ``nobody``) from a copy
of the binaries in a folder that user can read (root's home is private).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _has_vector(bindir: Path) -> bool:
    cfg = bindir / "pg_config"
    if cfg.exists():
        share = subprocess.run([str(cfg), "--sharedir"], capture_output=True, text=True).stdout.strip()
        if share and (Path(share) / "extension" / "vector.control").exists():
            return True
    return (bindir.parent / "share" / "postgresql" / "extension" / "vector.control").exists()


def find_pg_bin() -> Path | None:
    """The folder of PostgreSQL binaries with pgvector, or None."""
    env = os.environ.get("CLINFORGE_PG_BIN")
    if env:
        return Path(env)
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / "initdb").exists() and _has_vector(base):
            return base
    import importlib.util

    spec = importlib.util.find_spec("pgserver")  # located, not imported: only its bundled binaries are used
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() and _has_vector(bindir) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """Start with :meth:`start`, connect with :attr:`dsn`, end with :meth:`stop` (data folder removed)."""

    def __init__(self, bindir: Path):
        self.root = Path(tempfile.mkdtemp(prefix="clinforge-pg-"))
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
            if self.user is None:
                raise RuntimeError("running as root and neither a postgres nor a nobody user exists")
            os.chmod(self.root, 0o755)
            if not _readable_by_others(bindir):
                # e.g. pgserver under root's private home: copy pginstall and, keeping the layout its RPATH
                # ($ORIGIN/../../../pgserver.libs) expects, the wheel's bundled libraries beside it
                pkg = bindir.parent.parent
                copy = self.root / "pg" / pkg.name
                shutil.copytree(bindir.parent, copy / bindir.parent.name, symlinks=True)
                libs = pkg.parent / f"{pkg.name}.libs"
                if libs.is_dir():
                    shutil.copytree(libs, self.root / "pg" / libs.name, symlinks=True)
                bindir = copy / bindir.parent.name / "bin"
                for dirpath, dirnames, filenames in os.walk(self.root / "pg"):
                    for name in [".", *dirnames, *filenames]:
                        p = os.path.join(dirpath, name)
                        if not os.path.islink(p):
                            os.chmod(p, os.stat(p).st_mode | 0o055)
        self.bindir = bindir
        self.data = self.root / "data"
        self.port = _free_port()
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def start(self) -> PgServer:
        self.data.mkdir()
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.data, pw.pw_uid, pw.pw_gid)
        r = self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                      "--no-sync", "-E", "UTF8")
        if r.returncode:
            raise RuntimeError(f"initdb failed: {r.stderr[-2000:]}")
        r = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-l",
                      str(self.data / "server.log"), "-o",
                      f"-p {self.port} -h 127.0.0.1 -k {self.data} -c fsync=off", "start")
        if r.returncode:
            log = (self.data / "server.log").read_text() if (self.data / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr[-1000:]} {log[-2000:]}")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                import psycopg

                psycopg.connect(self.dsn).close()
                return self
            except Exception:
                time.sleep(0.3)
        raise RuntimeError("PostgreSQL did not accept connections within 30 s")

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _readable_by_others(path: Path) -> bool:
    """Whether every folder from / down to ``path`` lets other users in."""
    p = path.resolve()
    return all(os.stat(q).st_mode & 0o001 for q in [p, *p.parents])


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
