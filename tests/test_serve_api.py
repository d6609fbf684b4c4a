"""``clinforge serve`` over real HTTP: a uvicorn server on a free loopback port, the official ``openai`` client and
raw SSE parsing with httpx, against the tiny model and the replay backend (tests/_serve_support.py)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from _serve_support import serve_settings, sse_events
from clinforge.serve.api_keys import KeyStore
from clinforge.serve.serve_app import create_app

pytest_plugins = ["_review_support"]  # fixture: live_server (uvicorn in a thread, port chosen by the OS)


@pytest.fixture(scope="module")
def tiny_app(tiny_llama):
    """One server for the tiny-model tests (loading the model once)."""
    from _review_support import LiveServer

    app = create_app(serve_settings([{"name": "tiny", "spec": f"hf:{tiny_llama}", "slots": 2,
                                      "backend_options": {"device": "cpu"}}]), keys=KeyStore([]),
                     load_in_background=False)
    from clinforge.serve.serve_app import load_models

    load_models(app.state.serve)
    server = LiveServer(app)
    yield server
    server.stop()


def _client(url: str, key: str = "none", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, **kw)


def test_openai_client_chat_completions_and_streams(tiny_app):
    client = _client(tiny_app.url)
    assert [m.id for m in client.models.list()] == ["tiny"]
    messages = [{"role": "user", "content": "What is an ECG?"}]
    full = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12)
    assert full.choices[0].finish_reason in ("length", "stop")
    assert full.usage.completion_tokens <= 12 and full.usage.prompt_tokens > 5
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == full.choices[0].message.content  # greedy: the stream is the same answer
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    text = client.completions.create(model="tiny", prompt="Diagnosis:", max_tokens=6)
    parts = list(client.completions.create(model="tiny", prompt="Diagnosis:", max_tokens=6, stream=True))
    assert "".join(p.choices[0].text for p in parts) == text.choices[0].text


def test_raw_sse_order_role_deltas_finish_usage_done(tiny_app):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", tiny_app.url + "/v1/chat/completions", json=body, timeout=60) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp.iter_lines())
    assert events[-1] == "[DONE]"
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 5
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    assert all(e["choices"][0]["finish_reason"] is None for e in events[1:-3])
    assert len({e["id"] for e in events[:-1]}) == 1
    body["stream_options"] = None  # no usage chunk unless asked
    with httpx.stream("POST", tiny_app.url + "/v1/chat/completions", json=body, timeout=60) as resp:
        events = sse_events(resp.iter_lines())
    assert all("usage" not in e for e in events[:-1])


def test_errors_have_the_openai_shape_and_status(tiny_app):
    url = tiny_app.url
    r = httpx.post(url + "/v1/chat/completions", content=b"{not json", timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert r.headers["x-should-retry"] == "false"
    r = httpx.post(url + "/v1/chat/completions", json={"model": "tiny", "messages": "hi"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("messages")
    r = httpx.post(url + "/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user",
                                                                                      "content": "x"}]}, timeout=30)
    assert r.status_code == 404 and r.json()["error"] == {
        "message": "the model 'nope' does not exist; served: tiny", "type": "invalid_request_error",
        "param": "model", "code": "model_not_found"}
    r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 10**6}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "max_tokens_exceeded"
    r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "word " * 3000}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    r = httpx.post(url + "/v1/completions", content=b"x" * (5 * 1024 * 1024), timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    r = httpx.post(url + "/v1/embeddings", json={"model": "tiny", "input": "x"}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "embeddings_not_available"
    r = httpx.get(url + "/v1/nothing", timeout=30)
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_malformed_request_is_sent_once_by_the_openai_client(tiny_app):
    client = _client(tiny_app.url, max_retries=3)
    before = _requests_seen(tiny_app)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=[{"role": "robot", "content": "x"}])
    assert err.value.status_code == 400 and "messages.0.role" in str(err.value)
    # uvicorn counts a request in its protocol task, which may run just after the client has the response: wait for
    # the count, then longer than the openai client's first retry delay (0.5 s) before checking that none came
    deadline = time.time() + 5
    while _requests_seen(tiny_app) < before + 1 and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(1.0)
    assert _requests_seen(tiny_app) == before + 1  # no retries


def _requests_seen(server) -> int:
    return int(server.server.server_state.total_requests)  # every HTTP request uvicorn received


@pytest.fixture
def replay_server(live_server, tmp_path):
    """Start a server on the replay backend: ``start(text, guards=..., **model_settings)``."""
    backends = []

    def start(text: str, *, top: dict | None = None, keys: list[str] | None = None, **model):
        path = tmp_path / f"answer{len(list(tmp_path.glob('answer*')))}.txt"
        path.write_text(text, encoding="utf-8")
        options = model.pop("backend_options", {})
        settings = serve_settings([{"name": "replay", "spec": f"replay:{path}", "backend_options": options,
                                    **model}], audit_log=str(tmp_path / "audit.jsonl"), **(top or {}))
        app = create_app(settings, keys=KeyStore(keys or []), load_in_background=False)
        from clinforge.serve.serve_app import load_models

        load_models(app.state.serve)
        server = live_server(app)
        server.backend = app.state.serve.models["replay"].guarded.backend
        backends.append(server.backend)
        server.audit = tmp_path / "audit.jsonl"
        return server

    yield start
    # a hung replay backend waits for release; free it so no thread outlives the test by a minute
    for backend in backends:
        backend.release()


def test_auth_rate_limit_and_health(replay_server):
    server = replay_server("ok", keys=["k-one", "k-two"], top={"rate_limit": {"requests_per_minute": 6, "burst": 2}})
    assert httpx.get(server.url + "/health", timeout=30).json() == {"status": "ok", "models": {"replay": "ready"}}
    r = httpx.get(server.url + "/v1/models", timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(server.url + "/v1/models", headers={"Authorization": "Bearer k-wrong"}, timeout=30)
    assert r.status_code == 401
    client = _client(server.url, key="k-two", max_retries=0)
    assert client.chat.completions.create(model="replay", messages=[{"role": "user", "content": "x"}]).choices[
        0].message.content == "ok"
    client.models.list()
    with pytest.raises(openai.RateLimitError) as err:
        client.models.list()
    assert int(err.value.response.headers["retry-after"]) >= 1
    # the other key has its own bucket
    assert _client(server.url, key="k-one", max_retries=0).models.list().data[0].id == "replay"
    audit = [json.loads(line) for line in server.audit.read_text().splitlines()]
    assert audit[0]["key"] != "k-two" and len(audit[0]["key"]) == 12


def test_model_loading_is_503(live_server, tmp_path):
    (tmp_path / "a.txt").write_text("x")
    app = create_app(serve_settings([{"name": "m", "spec": f"replay:{tmp_path / 'a.txt'}"}]), keys=KeyStore([]),
                     load_in_background=False)
    server = live_server(app)
    r = httpx.post(server.url + "/v1/completions", json={"model": "m", "prompt": "x"}, timeout=30)
    assert r.status_code == 503 and r.json()["error"]["code"] == "model_loading" and r.headers["retry-after"]
    assert httpx.get(server.url + "/health", timeout=30).status_code == 503


def test_backend_that_hangs_is_504_and_frees_its_slot(replay_server):
    server = replay_server("abcdefghij", slots=1, timeout_s=1.0, backend_options={"hang_after": 1})
    t0 = time.monotonic()
    r = httpx.post(server.url + "/v1/completions", json={"model": "replay", "prompt": "x"}, timeout=30)
    assert r.status_code == 504 and r.json()["error"]["code"] == "backend_timeout"
    assert time.monotonic() - t0 < 10
    # streamed: the first delta arrives, then the model hangs -> an error chunk, then [DONE]
    with httpx.stream("POST", server.url + "/v1/completions", timeout=30,
                      json={"model": "replay", "prompt": "x", "stream": True}) as resp:
        assert resp.status_code == 200
        events = sse_events(resp.iter_lines())
    assert events[0]["choices"][0]["text"] == "abc"
    assert events[-2]["error"]["code"] == "backend_timeout" and events[-1] == "[DONE]"
    server.backend.release()


def test_backend_that_dies_is_500_without_paths(replay_server):
    server = replay_server("abcdefghij", backend_options={"fail_after": 0})
    r = httpx.post(server.url + "/v1/chat/completions", timeout=30,
                   json={"model": "replay", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 500 and r.json()["error"]["code"] == "backend_error"
    assert "secret" not in r.text and "Traceback" not in r.text
    server2 = replay_server("abcdefghij", backend_options={"fail_after": 2})
    with httpx.stream("POST", server2.url + "/v1/chat/completions", timeout=30,
                      json={"model": "replay", "messages": [{"role": "user", "content": "x"}], "stream": True}) as resp:
        events = sse_events(resp.iter_lines())
    assert [e["choices"][0]["delta"].get("content") for e in events[1:3]] == ["abc", "def"]
    assert events[-2]["error"]["code"] == "backend_error" and "secret" not in json.dumps(events)
    assert events[-1] == "[DONE]"


def test_client_disconnect_cancels_generation_and_frees_the_slot(replay_server):
    server = replay_server("x" * 3000, slots=1, backend_options={"piece": 1, "delay": 0.02})
    body = {"model": "replay", "messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 1024}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30) as resp:
        lines = resp.iter_lines()
        for _ in range(6):
            next(lines)
    # the stream was closed after a few deltas; the only slot must be free at once
    t0 = time.monotonic()
    r = httpx.post(server.url + "/v1/completions", json={"model": "replay", "prompt": "x", "max_tokens": 5},
                   timeout=30)
    assert r.status_code == 200
    assert time.monotonic() - t0 < 30 * 0.02 * 10  # far less than the 60 s the first stream needed
    deadline = time.monotonic() + 10
    while server.backend.closed < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.backend.closed == 1  # the backend's stream was closed: generation stopped
    assert server.backend.pieces < 1000
    audit = [json.loads(line) for line in server.audit.read_text().splitlines()]
    assert any(a["status"] == "cancelled" and a["error"] == "client_disconnected" for a in audit)


def test_images_pass_as_data_uris_and_anything_else_is_400(replay_server):
    server = replay_server("seen")
    pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    content = [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": pixel}}]
    out = _client(server.url).chat.completions.create(model="replay", messages=[{"role": "user", "content": content}])
    assert out.choices[0].message.content == "seen"
    assert server.backend.requests[-1].images == [pixel]
    assert server.backend.requests[-1].messages[-1]["content"] == "describe"
    content[1]["image_url"]["url"] = "http://example.org/x.png"
    with pytest.raises(openai.BadRequestError) as err:
        _client(server.url, max_retries=0).chat.completions.create(
            model="replay", messages=[{"role": "user", "content": content}])
    assert "data:image" in str(err.value)


def test_slots_bound_concurrency(replay_server):
    server = replay_server("abcdef", slots=1, queue_timeout_s=0.5, backend_options={"piece": 1, "delay": 0.5})
    results: list[int] = []

    def call() -> None:
        results.append(httpx.post(server.url + "/v1/completions", json={"model": "replay", "prompt": "x"},
                                  timeout=30).status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 503]


def test_non_streamed_request_cancelled_when_the_client_leaves(replay_server):
    server = replay_server("z" * 3000, slots=1, backend_options={"piece": 1, "delay": 0.02})
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", json={"model": "replay", "prompt": "x", "max_tokens": 1000},
                   timeout=0.5)
    deadline = time.monotonic() + 10
    while server.backend.closed < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.backend.closed == 1 and server.backend.pieces < 1000
    r = httpx.post(server.url + "/v1/completions", json={"model": "replay", "prompt": "x", "max_tokens": 3},
                   timeout=10)
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "zzz"
    assert any(json.loads(line)["status"] == "cancelled" for line in server.audit.read_text().splitlines())


def test_several_models_from_one_config(live_server, tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.txt").write_text(f"answer {name}")
    settings = serve_settings([{"name": n, "spec": f"replay:{tmp_path / (n + '.txt')}"} for n in ("a", "b")])
    app = create_app(settings, keys=KeyStore([]), load_in_background=False)
    from clinforge.serve.serve_app import load_models

    load_models(app.state.serve)
    server = live_server(app)
    client = _client(server.url)
    assert sorted(m.id for m in client.models.list()) == ["a", "b"]
    assert client.models.retrieve("b").id == "b"
    for n in ("a", "b"):
        out = client.completions.create(model=n, prompt="x", max_tokens=50)
        assert out.choices[0].text == f"answer {n}"


def test_vision_model_answers_image_requests_streamed_and_not(live_server, tmp_path_factory, data_root):
    import base64

    from _tinyllava import build_tiny_llava
    from clinforge.serve.serve_app import load_models
    from conftest import build_once

    folder = build_once(tmp_path_factory, "tiny-llava-clip", build_tiny_llava)
    image = sorted((data_root / "vqa-rad" / "images").glob("*.jpg"))[0]
    uri = "data:image/jpeg;base64," + base64.b64encode(image.read_bytes()).decode()
    app = create_app(serve_settings([{"name": "vlm", "spec": f"hf:{folder}", "backend_options": {"device": "cpu"}}]),
                     keys=KeyStore([]), load_in_background=False)
    load_models(app.state.serve)
    server = live_server(app)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Is there a mass?"},
                                             {"type": "image_url", "image_url": {"url": uri}}]}]
    client = _client(server.url)
    whole = client.chat.completions.create(model="vlm", messages=messages, max_tokens=6)
    chunks = list(client.chat.completions.create(model="vlm", messages=messages, max_tokens=6, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert whole.usage.prompt_tokens > 0
