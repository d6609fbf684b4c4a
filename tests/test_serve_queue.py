"""The request queue of ``clinforge serve`` under concurrency, over real HTTP (uvicorn on a free loopback port):
slots capped by what the backend generates at once, a bounded queue, clients that leave while queued or before
the first token. Found by ``benchmarks/serve_load.py`` at 32 concurrent clients (docs/serve.md)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from _serve_support import serve_settings
from clinforge.serve.api_keys import KeyStore
from clinforge.serve.serve_app import create_app, load_models

pytest_plugins = ["_review_support"]  # fixture: live_server


@pytest.fixture()
def start(live_server, tmp_path):
    """``start(text, **model_settings)``: a server on the replay backend (tests/_serve_support.py)."""
    backends = []

    def run(text: str, **model):
        path = tmp_path / f"answer{len(backends)}.txt"
        path.write_text(text, encoding="utf-8")
        options = model.pop("backend_options", {})
        settings = serve_settings([{"name": "replay", "spec": f"replay:{path}", "backend_options": options, **model}],
                                  audit_log=str(tmp_path / f"audit{len(backends)}.jsonl"))
        app = create_app(settings, keys=KeyStore([]), load_in_background=False)
        load_models(app.state.serve)
        server = live_server(app)
        server.entry = app.state.serve.models["replay"]
        server.backend = server.entry.guarded.backend
        server.audit = tmp_path / f"audit{len(backends)}.jsonl"
        backends.append(server.backend)
        return server

    yield run
    for backend in backends:
        backend.release()


def gauge(url: str, name: str) -> float:
    """One model's gauge read from /metrics (what an operator's scraper sees)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


def parallel_posts(url: str, bodies: list[dict], timeout: float = 60) -> list[tuple[int, float]]:
    """POST every body at once from its own thread; (status, seconds) in the bodies' order."""
    out: list[tuple[int, float] | None] = [None] * len(bodies)

    def call(i: int) -> None:
        t0 = time.monotonic()
        r = httpx.post(url + "/v1/completions", json=bodies[i], timeout=timeout)
        out[i] = (r.status_code, time.monotonic() - t0)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
        time.sleep(0.05)  # in this order into the queue
    for t in threads:
        t.join()
    return out  # type: ignore[return-value]


def test_slots_are_capped_by_the_backend_so_queued_requests_are_not_timed_out(start):
    # 4 slots on a backend that generates one stream at a time (llama.cpp): uncapped, three requests would wait
    # inside the backend with the 0.5 s hang clock running and get 504 (each answer takes ~0.3 s)
    server = start("abcdef", slots=4, timeout_s=0.5, backend_options={"piece": 1, "delay": 0.05, "parallel": 1})
    assert server.entry.slot_count == 1
    results = parallel_posts(server.url, [{"model": "replay", "prompt": "x", "max_tokens": 6}] * 5)
    assert [status for status, _ in results] == [200] * 5
    assert max(seconds for _, seconds in results) > 0.5 * 2  # the last ones did wait longer than timeout_s
    assert gauge(server.url, "clinforge_in_flight") == 0 and gauge(server.url, "clinforge_queued") == 0


def test_a_full_queue_is_503_at_once_and_a_short_queue_wait_still_served(start):
    server = start("abcdefgh", slots=1, max_queue=1, backend_options={"piece": 1, "delay": 0.1})
    results = parallel_posts(server.url, [{"model": "replay", "prompt": "x", "max_tokens": 8}] * 3)
    assert [status for status, _ in results] == [200, 200, 503]
    assert results[2][1] < 0.5  # refused at once, not after a wait
    events = [json.loads(line) for line in server.audit.read_text().splitlines()]
    assert sorted(e["status"] for e in events) == [200, 200, 503]
    assert [e["error"] for e in events if e["status"] == 503] == ["queue_full"]


def test_a_client_that_leaves_while_queued_never_reaches_the_backend(start):
    server = start("y" * 400, slots=1, backend_options={"piece": 1, "delay": 0.01})
    holder = threading.Thread(target=httpx.post, args=(server.url + "/v1/completions",),
                              kwargs={"json": {"model": "replay", "prompt": "x", "max_tokens": 400}, "timeout": 60})
    holder.start()
    time.sleep(0.3)  # the holder generates (4 s)
    for stream in (False, True):
        with pytest.raises(httpx.ReadTimeout):  # queued behind the holder; the client gives up after 0.3 s
            httpx.post(server.url + "/v1/completions", timeout=0.3,
                       json={"model": "replay", "prompt": "x", "max_tokens": 5, "stream": stream})
    deadline = time.monotonic() + 1
    while gauge(server.url, "clinforge_queued") and time.monotonic() < deadline:
        time.sleep(0.05)
    # they left the queue when their clients did, while the holder still generates
    assert gauge(server.url, "clinforge_queued") == 0 and holder.is_alive()
    holder.join()
    assert len(server.backend.requests) == 1  # only the holder was ever generated
    events = [json.loads(line) for line in server.audit.read_text().splitlines()]
    assert sorted(e["error"] or "" for e in events) == ["", "client_disconnected_queued",
                                                         "client_disconnected_queued"]


def test_a_stream_whose_client_leaves_before_the_first_token_frees_its_slot_at_once(start):
    # the backend hangs before its first token and timeout_s is long: only the disconnect can free the slot
    server = start("abc", slots=1, timeout_s=60, backend_options={"hang_after": 0})
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", timeout=0.5,
                   json={"model": "replay", "prompt": "x", "stream": True})
    while gauge(server.url, "clinforge_in_flight") and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert gauge(server.url, "clinforge_in_flight") == 0
    assert time.monotonic() - t0 < 3  # at once, not after the 60 s timeout
    events = [json.loads(line) for line in server.audit.read_text().splitlines()]
    assert [(e["status"], e["error"]) for e in events] == [("cancelled", "client_disconnected")]


def test_a_queued_request_cancelled_by_the_server_does_not_leak_a_slot():
    # the request's own task is cancelled while it waits (server shutdown, a cut connection): the slot it was
    # waiting for must go to the next request, not to nobody
    import asyncio

    from clinforge.serve.serve_app import ModelEntry, ServerState, _acquire_slot
    from clinforge.serve.serve_config import ModelSettings
    from clinforge.serve.serve_metrics import ServeMetrics

    async def main() -> tuple[int, bool]:
        entry = ModelEntry(ModelSettings(name="m", spec="replay:x"), asyncio.Semaphore(1), slot_count=1)
        state = ServerState(None, None, None, None, ServeMetrics(), {"m": entry})
        never = asyncio.get_running_loop().create_future()  # a client that stays
        await entry.slots.acquire()  # the slot is busy
        waiting = asyncio.ensure_future(_acquire_slot(state, entry, never))
        await asyncio.sleep(0.05)
        assert entry.waiting == 1
        waiting.cancel()
        entry.slots.release()  # the slot comes free in the same instant
        await asyncio.sleep(0.05)
        got = await asyncio.wait_for(_acquire_slot(state, entry, never), 2)  # the next request gets it
        return entry.waiting, got

    assert asyncio.run(main()) == (0, True)
