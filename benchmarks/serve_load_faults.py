"""Injected faults for ``benchmarks/serve_load.py``, under the same concurrency as its load.

One ``clinforge serve`` process serves three models: ``m`` (the real model, guarded), ``hang`` (an ``openai:``
proxy to an upstream that accepts connections and never answers) and ``die`` (an ``openai:`` proxy to an upstream
that drops every connection: at once, or after one streamed delta, i.e. half-way through an answer). Then:

1. a mixed load of ``n`` requests, ``concurrency`` at a time, in turn: ``hang`` (must be 504 within ``timeout_s``
   + 1 s), ``die`` (must be 500, or for a stream that had started, an error chunk then ``[DONE]``), a client that
   leaves (streamed: after the first chunk; not streamed: after 1 s, usually while still queued for the model's
   only slot), and a normal request to ``m`` (must be a complete 200). Every request is counted:
   ``sent = ok + fault_errors + left``; anything else is ``lost``;
2. the slots: every model's ``clinforge_in_flight`` and ``clinforge_queued`` must be back to 0 once the load has
   ended, and a client that leaves a long stream after its first chunk must see the slot freed at once (the time
   from closing the connection to ``clinforge_in_flight`` = 0 is measured, 8 times);
3. recovery: the ``die`` upstream comes back (answers properly) and requests to ``die`` and ``m`` must succeed.

Example:
    >>> FaultUpstream("hang").mode  # doctest: +SKIP
    'hang'
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from typing import Any

from serve_load import QUESTIONS, one_request


class FaultUpstream:
    """A TCP server playing a broken OpenAI-compatible model server: ``hang`` accepts and never answers; ``die``
    drops each connection (half of them after sending the headers and one delta: it dies mid-answer); ``ok``
    answers every request with a short proper event stream (the upstream has recovered; set ``mode`` any time)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.kept: list[socket.socket] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.mode == "hang":
                self.kept.append(conn)
            else:
                threading.Thread(target=self._answer, args=(conn, self.connections), daemon=True).start()

    def _answer(self, conn: socket.socket, number: int) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            m = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
            while m and len(body) < int(m.group(1)):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            event = json.dumps({"choices": [{"index": 0, "delta": {"content": "recovered "}}]})
            start = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
                     + f"data: {event}\n\n".encode())
            if self.mode == "die":
                if number % 4 >= 2:  # not every other one: requests alternate streamed / not
                    conn.sendall(start)  # one delta, then the connection drops: the model died mid-answer
                return
            conn.sendall(start + f"data: {event}\n\ndata: [DONE]\n\n".encode())

    def close(self) -> None:
        self.sock.close()
        for c in self.kept:
            c.close()


def gauges(text: str) -> dict[str, float]:
    """``{'in_flight/m': 0.0, 'queued/m': 0.0, 'cancelled/m': 3.0, ...}`` from a /metrics exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'clinforge_(in_flight|queued|cancelled_total)\{model="([^"]+)"\} (\S+)', line)
        if m:
            out[f"{m.group(1).removesuffix('_total')}/{m.group(2)}"] = float(m.group(3))
    return out


async def _leave(client: Any, url: str, model: str, i: int, max_tokens: int) -> dict[str, Any]:
    """A client that leaves: a stream after its first chunk (i odd), a plain request after 1 s (i even)."""
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0.0,
            "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}
    if i % 2:
        async with client.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    break  # the connection closes with the block
        return {"left": "stream"}
    try:
        await asyncio.wait_for(client.post(url + "/v1/chat/completions", json=body), 1.0)
        return {"left": None}  # answered within the second: not a disconnect after all
    except (TimeoutError, asyncio.TimeoutError):
        return {"left": "queued_or_generating"}


async def run_faults(url: str, n: int, concurrency: int, max_tokens: int, hang_timeout: float,
                     die: FaultUpstream) -> dict[str, Any]:
    """The mixed fault load, the slot checks and the recovery (see the module docstring)."""
    import httpx

    kinds = ["hang", "die", "leave", "normal"]
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=900, limits=limits) as client:
        before = gauges((await client.get(url + "/metrics")).text)

        async def task(i: int) -> dict[str, Any]:
            kind = kinds[i % 4]
            async with sem:
                if kind == "leave":
                    out = await _leave(client, url, "m", i // 4, max_tokens)
                else:
                    out = await one_request(client, url, "m" if kind == "normal" else kind, i // 4, max_tokens,
                                            stream=(i // 4) % 2 == 1)
            return {**out, "kind": kind}

        t0 = time.perf_counter()
        results = await asyncio.gather(*(task(i) for i in range(n)))
        wall = time.perf_counter() - t0
        settle_t0 = time.perf_counter()
        while True:  # the slots of every model must come back
            after = gauges((await client.get(url + "/metrics")).text)
            busy = sum(v for k, v in after.items() if k.startswith(("in_flight/", "queued/")))
            if busy == 0 or time.perf_counter() - settle_t0 > 10:
                break
            await asyncio.sleep(0.05)
        settle_ms = (time.perf_counter() - settle_t0) * 1000
        free_ms = []
        for i in range(8):  # a long stream left after its first chunk: how soon is its slot free?
            body = {"model": "m", "stream": True, "max_tokens": 256, "temperature": 0.0,
                    "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}
            async with client.stream("POST", url + "/v1/chat/completions", json=body) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        break
            left = time.perf_counter()
            while gauges((await client.get(url + "/metrics")).text).get("in_flight/m", 0) > 0:
                if time.perf_counter() - left > 30:
                    break
                await asyncio.sleep(0.01)
            free_ms.append((time.perf_counter() - left) * 1000)
        die.mode = "ok"  # the upstream is back
        recovered = [await one_request(client, url, "die", i, 8, stream=i % 2 == 1) for i in range(8)]
        normal_after = [await one_request(client, url, "m", i, max_tokens, stream=i % 2 == 1) for i in range(8)]
        final = gauges((await client.get(url + "/metrics")).text)
    by = {k: [r for r in results if r["kind"] == k] for k in kinds}
    hang_ok = [r for r in by["hang"] if r["status"] == 504]
    # a stream that had started gets 200 and an error chunk (one_request reads that as status 500) then [DONE]
    die_ok = [r for r in by["die"] if r["status"] == 500]
    normal_ok = [r for r in by["normal"] if r["status"] == 200 and r["complete"]]
    left = [r for r in by["leave"] if r.get("left")]
    ok = len(normal_ok) + sum(1 for r in by["leave"] if not r.get("left"))
    return {
        "sent": n, "concurrency": concurrency, "wall_s": round(wall, 1), "ok": ok,
        "fault_errors": len(hang_ok) + len(die_ok), "left": len(left),
        "lost": n - ok - len(hang_ok) - len(die_ok) - len(left),
        "hang_504": len(hang_ok), "hang_sent": len(by["hang"]),
        "hang_504_max_s": round(max((r["latency"] for r in hang_ok), default=0.0), 2),
        "hang_within_timeout": sum(r["latency"] <= hang_timeout + 1.0 for r in hang_ok),
        "die_500": len(die_ok), "die_sent": len(by["die"]),
        "die_midstream": sum(1 for r in die_ok if r.get("complete")),
        "normal_ok": len(normal_ok), "normal_sent": len(by["normal"]),
        "left_streams": sum(r.get("left") == "stream" for r in left),
        "left_plain": sum(r.get("left") == "queued_or_generating" for r in left),
        "cancelled_counted": int(final.get("cancelled/m", 0) - before.get("cancelled/m", 0)),
        "slots_busy_after": busy, "slots_settle_ms": round(settle_ms, 1),
        "slot_free_after_disconnect_ms": [round(x, 1) for x in free_ms],
        "die_recovered": sum(r["status"] == 200 and r["complete"] for r in recovered), "die_recover_sent": 8,
        "ok_after_faults": sum(r["status"] == 200 and r["complete"] for r in normal_after), "sent_after_faults": 8,
        "slots_busy_final": sum(v for k, v in final.items() if k.startswith(("in_flight/", "queued/"))),
    }


def faults_ok(f: dict[str, Any]) -> bool:
    """Every injected fault handled as it must be (see the module docstring)."""
    return (f["lost"] == 0 and f["hang_504"] == f["hang_sent"] == f["hang_within_timeout"]
            and f["die_500"] == f["die_sent"] and f["normal_ok"] == f["normal_sent"]
            and f["slots_busy_after"] == 0 and f["slots_busy_final"] == 0
            and f["die_recovered"] == f["die_recover_sent"] and f["ok_after_faults"] == f["sent_after_faults"])
