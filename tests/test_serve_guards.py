"""The assist/ guards inside the server: PHI placed in a model's output (the replay backend answers with it) never
reaches the client or the audit log, streamed or not; the crisis guard answers before the model is asked; retrieval
grounds chat answers, citations come back as chunk ids and /v1/embeddings uses the KB's embedder; CoVe runs for
non-streamed requests and refuses streams."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from _serve_support import serve_settings, sse_events
from clinforge.serve.api_keys import KeyStore
from clinforge.serve.serve_app import create_app, load_models

pytest_plugins = ["_review_support"]  # fixture: live_server

PHI_ANSWER = ("Summary for John Smith, MRN 4456781, phone 617-555-0199, seen on 2023-01-02: the cough improved "
              "and the inhaler can be reduced.")
PHI_STRINGS = ["4456781", "617-555-0199", "2023-01-02"]


@pytest.fixture
def start(live_server, tmp_path):
    def run(text: str, **model):
        path = tmp_path / f"answer{len(list(tmp_path.glob('answer*')))}.txt"
        path.write_text(text, encoding="utf-8")
        options = model.pop("backend_options", {"piece": 3})
        settings = serve_settings([{"name": "m", "spec": f"replay:{path}", "backend_options": options, **model}],
                                  audit_log=str(tmp_path / "audit.jsonl"))
        app = create_app(settings, keys=KeyStore([]), load_in_background=False)
        load_models(app.state.serve)
        assert app.state.serve.models["m"].status == "ready"
        server = live_server(app)
        server.backend = app.state.serve.models["m"].guarded.backend
        server.audit = tmp_path / "audit.jsonl"
        return server

    return run


def _chat(url: str, content: str, **kw):
    return openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0).chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}], max_tokens=1000, **kw)


def test_phi_in_model_output_never_reaches_client_or_log(start):
    server = start(PHI_ANSWER, guards=["phi"])
    full = _chat(server.url, "Summarise the visit.").choices[0].message.content
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=60,
                      json={"model": "m", "stream": True, "max_tokens": 1000,
                            "messages": [{"role": "user", "content": "Summarise the visit."}]}) as resp:
        events = sse_events(resp.iter_lines())
    streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    completion = openai.OpenAI(base_url=server.url + "/v1", api_key="none").completions.create(
        model="m", prompt="Summary:", max_tokens=1000).choices[0].text
    for text in (full, streamed, completion):
        assert "the cough improved" in text  # the answer itself still goes out
        for phi in PHI_STRINGS:
            assert phi not in text
    log = server.audit.read_text()
    for phi in [*PHI_STRINGS, "cough", "Summarise"]:
        assert phi not in log  # hashes only, never text
    events = [json.loads(line) for line in log.splitlines()]
    assert all(e["guards"]["phi"]["changed"] for e in events)
    assert all(len(e["output_sha256"]) == 64 and len(e["prompt_sha256"]) == 64 for e in events)


def test_phi_split_across_one_character_deltas_is_still_caught(start):
    server = start(PHI_ANSWER, guards=["phi"], backend_options={"piece": 1})
    with httpx.stream("POST", server.url + "/v1/completions", timeout=60,
                      json={"model": "m", "prompt": "x", "stream": True, "max_tokens": 1000}) as resp:
        events = sse_events(resp.iter_lines())
    streamed = "".join(e["choices"][0]["text"] for e in events[:-1])
    assert all(phi not in streamed for phi in PHI_STRINGS) and "inhaler" in streamed


def test_crisis_guard_answers_before_the_model(start):
    from clinforge.assist.crisis_guard import CrisisGuard

    message = "I have saved up my pills and I am going to take them all tonight to end my life."
    decision = CrisisGuard.from_config(None).assess(message)
    assert decision.action in ("safe_reply_escalate", "block_escalate")
    server = start("The model's own answer.", guards=["crisis"])
    out = _chat(server.url, message)
    assert out.choices[0].message.content == decision.reply
    assert server.backend.requests == []  # the model was not asked
    event = json.loads(server.audit.read_text().splitlines()[-1])
    assert event["guards"]["crisis"]["level"] == decision.level and "pills" not in server.audit.read_text()
    ok = _chat(server.url, "What is the usual dose of amoxicillin for otitis media?")
    assert ok.choices[0].message.content == "The model's own answer."


def test_cove_runs_for_whole_answers_and_refuses_streams(start):
    server = start("Metformin is first-line for type 2 diabetes.", cove={"variant": "factored", "max_questions": 2})
    out = _chat(server.url, "What is first-line for type 2 diabetes?")
    assert out.choices[0].message.content
    extra = out.model_extra["clinforge"]["cove"]
    assert extra["variant"] == "factored" and extra["calls"] >= 2 and len(server.backend.requests) >= 2
    with pytest.raises(openai.BadRequestError) as err:
        _chat(server.url, "x", stream=True)
    assert err.value.body["code"] == "cove_needs_no_stream"


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory):
    from clinforge.assist.kb import SourceSpec, build_kb

    docs = tmp_path_factory.mktemp("docs")
    (docs / "asthma.md").write_text("# Asthma\nAsthma is treated with inhaled corticosteroids and "
                                    "short-acting beta agonists for relief.\n", encoding="utf-8")
    (docs / "sepsis.md").write_text("# Sepsis\nSepsis needs early antibiotics and fluids within the first "
                                    "hour.\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("kb") / "kb"
    build_kb(out, [SourceSpec.parse(f"folder:{docs}")], chunk_size=500, overlap=50, threads=1)
    return out


def test_rag_grounds_answers_and_embeddings_use_the_kb(start, small_kb):
    server = start("Inhaled corticosteroids [1]; see also [9].", rag={"kb": str(small_kb), "k": 2})
    out = _chat(server.url, "How is asthma treated?")
    seen = server.backend.requests[-1].messages
    assert any("inhaled corticosteroids" in m["content"] for m in seen)  # the snippet reached the model
    extra = out.model_extra["clinforge"]
    assert extra["citations"] and extra["citations"][0] in extra["snippets"]
    assert extra["citations_out_of_range"] == [9]
    emb = openai.OpenAI(base_url=server.url + "/v1", api_key="none").embeddings.create(model="m",
                                                                                      input=["asthma", "sepsis"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384
    raw = httpx.post(server.url + "/v1/embeddings", json={"model": "m", "input": "asthma"}, timeout=60).json()
    assert raw["data"][0]["embedding"] == pytest.approx(emb.data[0].embedding, abs=1e-6)


def test_every_phi_guard_option_of_the_config_file_reaches_the_guard(tmp_path):
    from clinforge.serve.guarded_generation import GuardedModel
    from clinforge.serve.serve_config import config_from_flags

    answer = tmp_path / "answer.txt"
    answer.write_text(PHI_ANSWER, encoding="utf-8")
    path = tmp_path / "serve.yaml"
    path.write_text(f"port: 0\nmodels:\n  - name: m\n    spec: replay:{answer}\n    guards: [phi]\n"
                    "    phi: {holdback_chars: 40, mode: redact, context_chars: 200, step_chars: 8}\n",
                    encoding="utf-8")
    gm = GuardedModel.build(config_from_flags(str(path)).models[0])
    guard = gm.phi_guard
    assert (guard.holdback_chars, guard.context_chars, guard.step_chars) == (40, 200, 8)
    assert guard.deidentifier.mode == "redact"
    # the step decides how often a stream is scanned: 8 characters beyond the hold-back, not the default 32
    stream = guard.stream()
    out = "".join(stream.push(PHI_ANSWER[i:i + 2]) for i in range(0, len(PHI_ANSWER), 2)) + stream.flush()
    assert all(phi not in out for phi in PHI_STRINGS)
    assert stream.scans >= (len(PHI_ANSWER) - 40) // (40 + 8)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("context_chars", "-1", "models.0.phi.context_chars: Input should be greater than or equal to 0"),
    ("step_chars", "0", "models.0.phi.step_chars: Input should be greater than or equal to 1"),
    ("step_chars", "2.5", "models.0.phi.step_chars: Input should be a valid integer"),
    ("holdback_chars", "4", "models.0.phi.holdback_chars: Input should be greater than or equal to 8"),
    ("mode", "blur", "models.0.phi.mode: Input should be 'mask', 'redact' or 'surrogate'"),
    ("contxt_chars", "10", "models.0.phi.contxt_chars: unknown key (did you mean 'context_chars'?)"),
])
def test_bad_phi_guard_options_name_the_file_line_and_field(tmp_path, option, value, message):
    from clinforge.core.errors import ConfigError
    from clinforge.serve.serve_config import config_from_flags

    path = tmp_path / "serve.yaml"
    path.write_text(f"port: 0\nmodels:\n  - name: m\n    spec: hf:x\n    guards: [phi]\n    phi:\n"
                    f"      {option}: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        config_from_flags(str(path))
    assert f"{path}:7: {message}" in str(err.value)
