"""Load benchmark of the review app: N raters submitting ratings at the same time, over loopback HTTP, against
SQLite and against a real PostgreSQL.

Setup per database: a fresh database with one admin and N raters (``--raters``, default 50), a single-rating study
of ``N * per_rater / K`` answers (synthetic exchange file, seed 0) with K = 2 raters per answer, so every rater
has ``--per-rater`` assignments (default 8); the server is a real ``clinforge review serve`` process (one uvicorn
worker) on 127.0.0.1 with an OS-chosen port. Every rater logs in over HTTP first (not timed).

Load: all N raters start together (one asyncio task each, httpx, one connection per rater) and, for each of their
assignments, send ``--repeats`` autosaves (default 2) and then the final submission, every one a
``POST /api/assignments/ID/rating`` as the browser sends it. Each request is timed from send to response.

Checks after the load, straight from the database: lost = assignments whose final submitted values are not in
the database; duplicated = rating rows beyond one per assignment; errors = non-200 answers or transport errors.

Figures: p50 / p95 / max latency of a rating submission (all POSTs, ms), requests per second over the load's wall
time. The last line is ``RESULT sqlite_p95_ms=A postgresql_p95_ms=B errors=E lost=L duplicated=D requests=R``.

Run: ``python benchmarks/review_load.py [--raters 50] [--per-rater 8] [--repeats 2] [--backends sqlite,postgresql]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from clinforge.apps.review.review_auth import create_user  # noqa: E402
from clinforge.apps.review.review_db import Assignment, Rating, User, open_database  # noqa: E402
from clinforge.apps.review.review_studies import assign, create_study  # noqa: E402
from clinforge.judges.axes import AXES  # noqa: E402

PW = "benchmark password 1"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def final_values(rater: int, position: int) -> dict[str, str]:
    """The values a rater submits last for the item at ``position`` (varied, so a lost write shows)."""
    return {a.name: a.values[(rater + position + i) % len(a.values)] for i, a in enumerate(AXES.values())}


def setup(db_url: str, work: Path, raters: int, per_rater: int, k: int = 2) -> int:
    n_answers = raters * per_rater // k
    answers = work / "answers.jsonl"
    with open(answers, "w", encoding="utf-8") as fh:
        for i in range(n_answers // 2):
            fh.write(json.dumps({"id": f"q{i}", "prompt": f"Synthetic question {i}?",
                                 "responses": {"m1": f"answer one {i}", "m2": f"answer two {i}"}}) + "\n")
    db = open_database(db_url)
    with db.write() as s:
        admin = create_user(s, "admin", PW, "admin")
        users = [create_user(s, f"rater{i:03d}", PW, "rater") for i in range(raters)]
        study = create_study(s, admin, name="load", kind="single", sources=[str(answers)], k_raters=k, seed=0)
        assign(s, admin, study, [u.id for u in users])
        study_id = study.id
    db.dispose()
    return study_id


def start_server(db_url: str, work: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "clinforge", "review", "serve", "--db", db_url, "--port", "0",
                             "--data-root", str(work)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line}{proc.stderr.read()[-2000:]}")
    return proc, line.strip().rsplit(" ", 1)[1]


async def rater_session(httpx, url: str, name: str, study: int) -> dict:
    client = httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=1))
    page = await client.get("/login")
    r = await client.post("/login", data={"username": name, "password": PW, "csrf": CSRF.search(page.text).group(1)})
    if r.status_code != 303:
        raise RuntimeError(f"login of {name} failed: {r.status_code}")
    ids, token, pos = [], None, 0
    while True:
        page = await client.get(f"/s/{study}/rate/{pos}")
        if page.status_code == 404:
            break
        ids.append(int(re.search(r"/api/assignments/(\d+)/rating", page.text).group(1)))
        token = CSRF.search(page.text).group(1)
        pos += 1
    return {"client": client, "ids": ids, "token": token}


async def load(url: str, study: int, raters: int, repeats: int) -> tuple[list[float], int, float, dict]:
    import httpx

    sessions = await asyncio.gather(*(rater_session(httpx, url, f"rater{i:03d}", study) for i in range(raters)))
    latencies: list[float] = []
    errors = 0
    start = asyncio.Event()

    async def rater(i: int, sess: dict) -> None:
        nonlocal errors
        await start.wait()
        for pos, aid in enumerate(sess["ids"]):
            final = final_values(i, pos)
            for rep in range(repeats + 1):
                last = rep == repeats
                values = final if last else {k: None for k in final} | {"bias": "present"}
                t0 = time.perf_counter()
                try:
                    r = await sess["client"].post(f"/api/assignments/{aid}/rating", json={
                        "values": values, "submit": last, "comment": f"r{i} p{pos} v{rep}"},
                        headers={"X-CSRF-Token": sess["token"]})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

    tasks = [asyncio.create_task(rater(i, sess)) for i, sess in enumerate(sessions)]
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    expected = {aid: final_values(i, pos) for i, sess in enumerate(sessions) for pos, aid in enumerate(sess["ids"])}
    for sess in sessions:
        await sess["client"].aclose()
    return latencies, errors, wall, expected


def check(db_url: str, expected: dict[int, dict]) -> tuple[int, int]:
    from sqlalchemy import func, select

    db = open_database(db_url)
    with db.read() as s:
        rows = s.execute(select(Rating.assignment_id, Rating.values, Rating.submitted)).all()
        n_assignments = s.scalar(select(func.count()).select_from(Assignment))
        assert s.scalar(select(func.count()).select_from(User)) > 0
    db.dispose()
    by_id: dict[int, list] = {}
    for aid, values, submitted in rows:
        by_id.setdefault(aid, []).append((values, submitted))
    duplicated = sum(len(v) - 1 for v in by_id.values())
    lost = sum(1 for aid, values in expected.items()
               if aid not in by_id or by_id[aid][0] != (values, True))
    assert len(expected) == n_assignments, (len(expected), n_assignments)
    return lost, duplicated


def run_backend(name: str, args: argparse.Namespace, work: Path) -> dict:
    pg_dir = None
    if name == "sqlite":
        db_url = str(work / "load.db")
    else:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        out = subprocess.run(["bash", str(ROOT / "scripts" / "start_postgres.sh"), str(port)], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        pg_dir, db_url = out.split()
    proc = None
    try:
        study = setup(db_url, work, args.raters, args.per_rater)
        proc, url = start_server(db_url, work)
        latencies, errors, wall, expected = asyncio.run(load(url, study, args.raters, args.repeats))
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        lost, duplicated = check(db_url, expected)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if pg_dir:
            subprocess.run(["bash", str(ROOT / "scripts" / "start_postgres.sh"), "--stop", pg_dir], check=False)
    ms = np.array(latencies) * 1000
    out = {"backend": name, "requests": len(latencies), "errors": errors, "lost": lost, "duplicated": duplicated,
           "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
           "req_per_s": len(latencies) / wall, "server_exit": rc}
    print(f"{name:10s} requests={out['requests']} errors={errors} lost={lost} duplicated={duplicated} "
          f"p50={out['p50_ms']:.1f}ms p95={out['p95_ms']:.1f}ms max={out['max_ms']:.1f}ms "
          f"{out['req_per_s']:.0f} req/s server_exit={rc}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--per-rater", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="autosaves before each final submission")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"review load: {args.raters} raters x {args.per_rater} assignments x {args.repeats + 1} POSTs, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="review-load-") as tmp:
        for name in args.backends.split(","):
            work = Path(tmp) / name
            work.mkdir()
            results[name] = run_backend(name, args, work)
    total = {k: sum(r[k] for r in results.values()) for k in ("errors", "lost", "duplicated", "requests")}
    p95 = " ".join(f"{n}_p95_ms={r['p95_ms']:.1f}" for n, r in results.items())
    print(f"RESULT {p95} errors={total['errors']} lost={total['lost']} duplicated={total['duplicated']} "
          f"requests={total['requests']}")


if __name__ == "__main__":
    main()
