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
