"""`clinforge review` as a user runs it: admin creation from an environment variable, `serve` on loopback with an
OS-chosen port that exits 0 after SIGTERM, and `export` of a closed study (never over an existing folder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from clinforge.apps.review.review_auth import create_user
from clinforge.apps.review.review_db import Assignment, open_database
from clinforge.apps.review.review_studies import assign, close_study, create_study, save_rating
from clinforge.judges.axes import AXES

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cli(*args, env=None, cwd=None, **kw):
    full_env = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    return subprocess.run([sys.executable, "-m", "clinforge", "review", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=180, **kw)


def test_admin_create_reads_the_password_from_the_environment(tmp_path):
    r = _cli("admin", "create", "boss", "--password-env", "REVIEW_PW", env={"REVIEW_PW": "a long password 1"},
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "review.db").is_file()  # default database in the current folder
    again = _cli("admin", "create", "boss", "--password-env", "REVIEW_PW", env={"REVIEW_PW": "a long password 1"},
                 cwd=tmp_path)
    assert again.returncode == 2 and "exists already" in again.stderr
    missing = _cli("admin", "create", "boss2", "--password-env", "NOT_SET_ANYWHERE", cwd=tmp_path)
    assert missing.returncode == 2 and "NOT_SET_ANYWHERE" in missing.stderr
    short = _cli("admin", "create", "boss3", "--password-env", "REVIEW_PW", env={"REVIEW_PW": "short"}, cwd=tmp_path)
    assert short.returncode == 2 and "at least 10" in short.stderr


def test_serve_binds_loopback_and_exits_0_on_sigterm(tmp_path):
    db = tmp_path / "r.db"
    proc = subprocess.Popen([sys.executable, "-m", "clinforge", "review", "serve", "--db", str(db), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC}, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.strip().rsplit(" ", 1)[1]
        deadline = time.time() + 30
        while True:
            try:
                assert httpx.get(url + "/login", timeout=5).status_code == 200
                break
            except httpx.TransportError:
                assert time.time() < deadline
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped after finishing in-flight requests" in out


def _closed_study(tmp_path):
    answers = tmp_path / "a.jsonl"
    answers.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Q{i}?", "responses": {"m1": "A", "m2": "B"}})
                               + "\n" for i in range(3)))
    db = open_database(str(tmp_path / "r.db"))
    with db.write() as s:
        admin = create_user(s, "admin", "a long password 1", "admin")
        rater = create_user(s, "rater", "a long password 1", "rater")
        study = create_study(s, admin, name="x", kind="single", sources=[str(answers)], k_raters=1)
        assign(s, admin, study, [rater.id])
    with db.write() as s:
        for a in s.query(Assignment).all():
            save_rating(s, rater, a.id, {"values": {ax.name: ax.values[0] for ax in AXES.values()}}, submit=True)
        close_study(s, admin, s.merge(study))
    db.dispose()


def test_export_writes_the_exchange_files_and_never_overwrites(tmp_path):
    _closed_study(tmp_path)
    r = _cli("export", "1", "--out", str(tmp_path / "exp"), "--db", str(tmp_path / "r.db"))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert manifest["n_rows"] == 6 and (tmp_path / "exp" / "key" / "blinding_key.json").is_file()
    again = _cli("export", "1", "--out", str(tmp_path / "exp"), "--db", str(tmp_path / "r.db"))
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_sigterm_drains_a_request_in_flight(tmp_path):
    """A login whose body is still arriving when SIGTERM comes is answered before the server exits 0."""
    import re
    import threading

    _closed_study(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "clinforge", "review", "serve", "--db", str(tmp_path / "r.db"),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC}, cwd=tmp_path)
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        client = httpx.Client(base_url=url, timeout=120)
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        sent_first, answer = threading.Event(), {}

        def body():  # the request is in flight (headers and half the body sent) when the signal arrives
            yield b"username=admin&password=a+long"
            sent_first.set()
            time.sleep(2.0)
            yield b"+password+1&csrf=" + token.encode()

        def login():
            answer["response"] = client.post("/login", content=body(), headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            answer["at"] = time.monotonic()

        worker = threading.Thread(target=login)
        worker.start()
        assert sent_first.wait(60)
        time.sleep(0.3)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=120)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answer["response"].status_code == 303 and answer["at"] > signalled  # logged in, after the signal
    assert proc.returncode == 0, err
    assert "stopped after finishing in-flight requests" in out
