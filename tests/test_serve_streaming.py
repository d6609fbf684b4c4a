"""``Backend.stream``: the hf backend streams the same text ``generate`` returns, stops generating when the consumer
closes the stream, and cuts at stop strings split across deltas; the openai backend passes a real server's SSE
deltas through (clinforge serve itself is that server here)."""

from __future__ import annotations

import threading
import time

import pytest

from _serve_support import serve_settings
from clinforge.models.backends import GenerationRequest, load_backend
from clinforge.models.backends.base import cut_stream_at_stop

pytest_plugins = ["_review_support"]  # fixture: live_server


@pytest.fixture(scope="module")
def hf(tiny_llama):
    return load_backend(f"hf:{tiny_llama}", device="cpu")


def test_hf_stream_equals_generate(hf):
    for request in (GenerationRequest(messages=[{"role": "user", "content": "What is a stroke?"}], max_new_tokens=16),
                    GenerationRequest(prompt="Asthma is", max_new_tokens=9)):
        pieces = list(hf.stream(request))
        assert len(pieces) > 1
        assert "".join(pieces) == hf.generate([request])[0]
    assert hf.count_prompt_tokens(GenerationRequest(prompt="Asthma is")) == len(hf.tok_encode("Asthma is"))
    assert hf.context_length == hf.max_length


def test_hf_stream_close_stops_generation(hf):
    stream = hf.stream(GenerationRequest(prompt="x", max_new_tokens=100_000))
    next(stream)
    assert any(t.name == "clinforge-hf-stream" for t in threading.enumerate())
    t0 = time.monotonic()
    stream.close()
    assert time.monotonic() - t0 < 5
    # close() returns only after the generation thread ended: nothing keeps the model busy
    assert not any(t.name == "clinforge-hf-stream" and t.is_alive() for t in threading.enumerate())


def test_stop_strings_split_across_deltas():
    closed = []

    def deltas():
        try:
            yield from ["The answer", " is B.\nQue", "stion 2: ...", "never read"]
        finally:
            closed.append(True)

    assert "".join(cut_stream_at_stop(deltas(), ["\nQuestion"])) == "The answer is B."
    assert closed == [True]
    assert list(cut_stream_at_stop(iter(["a", "b"]), [])) == ["a", "b"]
    assert "".join(cut_stream_at_stop(iter(["ab", "c"]), ["xyz"])) == "abc"


def test_openai_backend_streams_through_a_real_server(live_server, tiny_llama, hf):
    from clinforge.serve.api_keys import KeyStore
    from clinforge.serve.guarded_generation import GuardedModel
    from clinforge.serve.serve_app import create_app

    settings = serve_settings([{"name": "tiny", "spec": f"hf:{tiny_llama}"}])
    app = create_app(settings, keys=KeyStore([]), preloaded={"tiny": GuardedModel(settings.models[0], hf)})
    server = live_server(app)
    proxy = load_backend(f"openai:{server.url}/v1#tiny", max_retries=0)
    request = GenerationRequest(messages=[{"role": "user", "content": "Define sepsis."}], max_new_tokens=12)
    pieces = list(proxy.stream(request))
    assert len(pieces) > 1 and "".join(pieces) == hf.generate([request])[0]
    plain = GenerationRequest(prompt="Sepsis is", max_new_tokens=7)
    assert "".join(proxy.stream(plain)) == hf.generate([plain])[0]


def test_openai_backend_stream_cut_before_done_is_an_error_not_an_answer():
    # an upstream that dies half-way through a connection-delimited event stream: at the HTTP level the body just
    # ends; only the missing [DONE] tells a cut answer from a whole one (found by benchmarks/serve_load.py)
    import socket

    from clinforge.models.backends.openai import BackendHTTPError

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def serve() -> None:
        for _ in range(2):
            conn, _ = sock.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                # read the whole request body too: closing a socket with unread input sends a reset, which the
                # client sees as a broken connection rather than the clean end of the body this test is about
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
                             b'data: {"choices": [{"index": 0, "delta": {"content": "Sepsis is"}}]}\n\n')

    threading.Thread(target=serve, daemon=True).start()
    proxy = load_backend(f"openai:http://127.0.0.1:{sock.getsockname()[1]}/v1#m", max_retries=0, timeout=10)
    request = GenerationRequest(messages=[{"role": "user", "content": "Define sepsis."}], max_new_tokens=12)
    pieces = []
    with pytest.raises(BackendHTTPError, match="without \\[DONE\\]"):
        for piece in proxy.stream(request):
            pieces.append(piece)
    assert pieces == ["Sepsis is"]  # what arrived was passed on; the end is the error
    with pytest.raises(BackendHTTPError, match="without \\[DONE\\]"):
        "".join(proxy.stream(request))
    sock.close()


def test_progress_marks_are_thinned_but_results_and_cancellation_are_not():
    import asyncio

    from clinforge.serve.thread_stream import ThreadedIterator

    generated = []

    def steps():
        for i in range(200):  # 200 "tokens" in ~0.4 s, then the answer
            time.sleep(0.002)
            generated.append(i)
            yield None
        yield "answer"

    async def drain(progress_every: float) -> list:
        it = ThreadedIterator(steps, progress_every=progress_every)
        out = []
        while True:
            kind, value = await it.next(5.0)
            out.append(value)
            if kind != "item":
                return out

    every = asyncio.run(drain(0.0))
    assert every[:-2].count(None) == 200 and every[-2:] == ["answer", None]  # marks, the answer, the end
    generated.clear()
    started = time.monotonic()
    thinned = asyncio.run(drain(0.1))
    at_most = (time.monotonic() - started) / 0.1 + 1  # one mark per 0.1 s, however slow the machine is
    assert 1 <= thinned[:-2].count(None) <= at_most < 200
    assert thinned[-2:] == ["answer", None]  # the answer is never dropped

    async def cancel_early() -> None:
        generated.clear()
        it = ThreadedIterator(steps, progress_every=10.0)  # no mark would reach the loop before the end
        await asyncio.sleep(0.05)
        it.cancel()
        assert await asyncio.to_thread(it.finished.wait, 5.0)

    asyncio.run(cancel_early())
    assert len(generated) < 200  # cancellation is checked at every step, not only at forwarded ones
