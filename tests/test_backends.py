"""Backends on a real tiny Llama: lm-eval HFLM parity, batched generation, and the OpenAI client against a real
HTTP server on 127.0.0.1 that serves the same model."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clinforge.core.errors import ClinforgeError, ConfigError
from clinforge.models.backends import GenerationRequest, LoglikelihoodRequest, load_backend, parse_spec

MEDQA = "mirage/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl"


@pytest.fixture(scope="session")
def hf_backend(tiny_lm):
    return load_backend(f"hf:{tiny_lm}", batch_size=3, device="cpu")


def medqa_requests(data_root: Path, n: int = 4) -> list[LoglikelihoodRequest]:
    """lm-eval medqa_4options requests (letters) plus option-text continuations (multi-token, KV-cache path)."""
    reqs = []
    with open(data_root / MEDQA, encoding="utf-8") as fh:
        for _, line in zip(range(n), fh, strict=False):
            row = json.loads(line)
            opts = "".join(f"{k}. {v}\n" for k, v in row["options"].items())
            ctx = f"Question: {row['question']}\n{opts}Answer:"
            reqs += [LoglikelihoodRequest(ctx, f" {k}") for k in "ABCD"]
            reqs += [LoglikelihoodRequest(ctx, f" {v}") for v in row["options"].values()]
    reqs.append(LoglikelihoodRequest("", "Hypertension"))  # empty context -> BOS, as lm-eval
    reqs.append(LoglikelihoodRequest("Answer: ", "aspirin"))  # trailing space moves to the continuation
    return reqs


@pytest.mark.parametrize("batch_size", [3, 16])  # 16: several questions' option-text rows share one KV-cache batch
def test_loglikelihood_matches_lm_eval_hflm(tiny_lm, hf_backend, data_root, batch_size):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    reqs = medqa_requests(data_root)
    backend = hf_backend if batch_size == 3 else load_backend(f"hf:{tiny_lm}", batch_size=batch_size, device="cpu")
    ours = backend.loglikelihood(reqs)
    lm = HFLM(pretrained=str(tiny_lm), batch_size=5, device="cpu", dtype="float32")
    ref = lm.loglikelihood([Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(reqs)],
                           disable_tqdm=True)
    assert len(ours) == len(ref) == len(reqs)
    for (a, ga), (b, gb) in zip(ours, ref, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
        assert ga == gb
    # tokenisation is exactly lm-eval's split
    for r in reqs[:8] + reqs[-2:]:
        if r.context:
            assert hf_backend.encode_pair(r.context, r.continuation) == lm._encode_pair(r.context, r.continuation)


def test_shared_prefix_costs_one_forward_per_question(hf_backend, data_root, monkeypatch):
    reqs = [r for r in medqa_requests(data_root, n=3) if len(r.continuation) == 2]  # " A".." D": 12 requests
    calls = []
    original = hf_backend.model.forward

    def counting(*args, **kwargs):
        calls.append(args[0].shape if args else kwargs["input_ids"].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(hf_backend.model, "forward", counting)
    hf_backend.loglikelihood(reqs)
    assert sum(shape[0] for shape in calls) == 3  # one row per question, not per option


def test_shared_fewshot_prefix_runs_once_and_matches_lm_eval(tiny_lm, data_root, monkeypatch):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    plain = medqa_requests(data_root, n=6)  # 8 requests per question: letters, then option texts
    shot = plain[8].context + plain[8].continuation + "\n\n"  # question 2, solved, as a one-shot example
    reqs = [LoglikelihoodRequest(shot + r.context, r.continuation) for r in plain[:8] + plain[16:48]]
    backend = load_backend(f"hf:{tiny_lm}", batch_size=4, device="cpu")
    rows = []
    original = backend.model.forward

    def counting(*args, **kwargs):
        rows.append(int((args[0] if args else kwargs["input_ids"]).numel()))
        return original(*args, **kwargs)

    monkeypatch.setattr(backend.model, "forward", counting)
    ours = backend.loglikelihood(reqs)
    shared_tokens = sum(rows)
    backend.min_shared_prefix = 10**9  # the plain path: every input in full
    rows.clear()
    full = backend.loglikelihood(reqs)
    assert sum(rows) - shared_tokens >= 4 * 200  # the ~250-token example ran once, not once for each of 5 questions
    lm = HFLM(pretrained=str(tiny_lm), batch_size=4, device="cpu", dtype="float32")
    ref = lm.loglikelihood([Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(reqs)],
                           disable_tqdm=True)
    for (a, ga), (b, gb), (c, gc) in zip(ours, ref, full, strict=True):
        assert a == pytest.approx(b, abs=1e-4) and a == pytest.approx(c, abs=1e-5)
        assert ga == gb == gc


def test_shared_prefix_clusters_keep_scored_tokens_out_of_the_prefix():
    from clinforge.models.backends.hf_inprocess import shared_prefix_clusters

    prefix = list(range(100, 140))
    inputs = [prefix + [1, 2], prefix + [1, 3, 4], prefix[:5] + [9], prefix + [1]]
    clusters, alone = shared_prefix_clusters(inputs, [1, 2, 1, 1], min_shared=32)
    assert clusters == [(40, [0, 1, 3])] and alone == [2]  # input 1 keeps its last 2 tokens out of the prefix
    assert shared_prefix_clusters(inputs, [1, 2, 1, 1], min_shared=41) == ([(41, [0, 1])], [2, 3])
    assert shared_prefix_clusters(inputs, [1, 2, 1, 1], min_shared=42) == ([], [0, 1, 2, 3])


def test_batched_generation_equals_one_by_one(hf_backend):
    prompts = ["Question: fever and cough\nAnswer:", "A 45-year-old man presents with chest pain", "Dose?"]
    reqs = [GenerationRequest(prompt=p, max_new_tokens=6) for p in prompts]
    batched = hf_backend.generate(reqs)
    single = [hf_backend.generate([r])[0] for r in reqs]
    assert batched == single
    assert all(isinstance(t, str) and t for t in batched)


def test_chat_uses_the_chat_template(hf_backend):
    msgs = [{"role": "user", "content": "What is sepsis?"}]
    rendered = hf_backend.render_prompt(GenerationRequest(messages=msgs))
    assert rendered == "<|user|>\nWhat is sepsis?\n<|assistant|>\n"
    assert hf_backend.chat(msgs, max_new_tokens=4) == hf_backend.generate(
        [GenerationRequest(messages=msgs, max_new_tokens=4)])[0]


def test_stop_strings_cut_output(hf_backend):
    out = hf_backend.generate([GenerationRequest(prompt="Question: x", max_new_tokens=12)])[0]
    stop = out[3:5]
    cut = hf_backend.generate([GenerationRequest(prompt="Question: x", max_new_tokens=12, stop=[stop])])[0]
    assert cut == out[: out.index(stop)]


def test_unknown_spec_lists_valid(tmp_path, monkeypatch):
    # other tests of the same worker may register their own backends (e.g. a replaying one): they are listed too
    with pytest.raises(ClinforgeError, match=r"valid: hf, llamacpp, openai, (\w+, )*vllm"):
        load_backend("nosuch:thing", device="cpu")
    # a typo of a scheme is named as such before any model loading, never taken for an hf path
    for typo in ("opnai:http://127.0.0.1:8000/v1#m", "hff:runs/tiny", "VLLM:x"):
        with pytest.raises(ConfigError, match=f"unknown scheme '{typo.split(':')[0]}'; valid: hf, llamacpp, openai, vllm"):
            parse_spec(typo)
    # a bare local path still means hf, even one holding a colon
    odd = tmp_path / "run:3"
    odd.mkdir()
    monkeypatch.chdir(tmp_path)
    assert parse_spec("run:3") == ("hf", "run:3") and parse_spec("runs/tiny") == ("hf", "runs/tiny")


def test_vllm_without_vllm_is_a_clear_error():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed")
    except ImportError:
        pass
    with pytest.raises(ClinforgeError, match="pip install 'clinforge\\[vllm\\]'"):
        load_backend("vllm:some/model")


# ----------------------------------------------------------------------------- a real OpenAI-compatible server
class _Server:
    """http.server app serving the tiny model: /v1/completions (echo + logprobs) and /v1/chat/completions."""

    def __init__(self, backend, *, fail_first: int = 0, logprobs: bool = True):
        import torch

        self.backend, self.fail_left, self.logprobs, self.torch = backend, fail_first, logprobs, torch
        self.calls = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                server.calls += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server.fail_left > 0:
                    server.fail_left -= 1
                    return self._send(503, {"error": "busy"})
                if self.path == "/v1/completions":
                    return self._send(200, server.completions(body))
                if self.path == "/v1/chat/completions":
                    text = server.backend.chat(body["messages"], max_new_tokens=body["max_tokens"])
                    return self._send(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})
                return self._send(404, {"error": "no route"})

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def completions(self, body):
        if isinstance(body["prompt"], list):  # list prompts, as vLLM / llama.cpp accept
            choices = [self.completions({**body, "prompt": p})["choices"][0] for p in body["prompt"]]
            return {"choices": [{**c, "index": i} for i, c in reversed(list(enumerate(choices)))]}
        torch, be = self.torch, self.backend
        prompt = body["prompt"]
        if not body.get("echo"):
            text = be.generate([GenerationRequest(prompt=prompt, max_new_tokens=body["max_tokens"])])[0]
            return {"choices": [{"text": text}]}
        if not self.logprobs:
            return {"choices": [{"text": prompt, "logprobs": None}]}
        enc = be.tokenizer(prompt, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        with torch.no_grad():
            logp = torch.log_softmax(be.model(torch.tensor([ids])).logits[0].float(), -1)
        tokens, lps, tops, starts = [], [], [], []
        for i, (tid, (start, _end)) in enumerate(zip(ids, offsets, strict=True)):
            tokens.append(be.tokenizer.convert_ids_to_tokens(tid))
            starts.append(start)
            if i == 0:
                lps.append(None)
                tops.append(None)
                continue
            lps.append(float(logp[i - 1, tid]))
            best = int(logp[i - 1].argmax())
            tops.append({be.tokenizer.convert_ids_to_tokens(best): float(logp[i - 1, best])})
        return {"choices": [{"text": prompt, "logprobs": {"tokens": tokens, "token_logprobs": lps,
                                                          "top_logprobs": tops, "text_offset": starts}}]}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(hf_backend):
    srv = _Server(hf_backend)
    yield srv
    srv.close()


def test_openai_loglikelihood_and_generation_against_real_server(server, hf_backend, data_root):
    client = load_backend(f"openai:{server.url}#tiny", concurrency=2)
    reqs = [r for r in medqa_requests(data_root, n=2) if r.context]
    ours = client.loglikelihood(reqs)
    ref = hf_backend.loglikelihood(reqs)
    for (a, ga), (b, gb) in zip(ours, ref, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
        assert ga == gb
    batched = load_backend(f"openai:{server.url}#tiny", prompts_per_call=3)
    calls_before = server.calls
    assert batched.loglikelihood(reqs) == ours
    assert server.calls - calls_before == -(-len(reqs) // 3)  # ceil: 3 prompts per HTTP call
    chat = client.chat([{"role": "user", "content": "What is sepsis?"}], max_new_tokens=5)
    assert chat == hf_backend.chat([{"role": "user", "content": "What is sepsis?"}], max_new_tokens=5)
    gen = client.generate([GenerationRequest(prompt="Question: fever", max_new_tokens=5)])
    assert gen == hf_backend.generate([GenerationRequest(prompt="Question: fever", max_new_tokens=5)])
    client.close()


def test_openai_retries_transient_errors(hf_backend):
    srv = _Server(hf_backend, fail_first=2)
    try:
        client = load_backend(f"openai:{srv.url}#tiny", backoff=0.01, max_retries=3, concurrency=1)
        assert client.generate([GenerationRequest(prompt="Dose?", max_new_tokens=3)])[0] == \
            hf_backend.generate([GenerationRequest(prompt="Dose?", max_new_tokens=3)])[0]
        assert srv.calls == 3
    finally:
        srv.close()


def test_openai_without_prompt_logprobs_is_a_clear_error(hf_backend):
    srv = _Server(hf_backend, logprobs=False)
    try:
        client = load_backend(f"openai:{srv.url}#tiny", concurrency=1)
        with pytest.raises(ClinforgeError, match="cannot score log-likelihoods"):
            client.loglikelihood([LoglikelihoodRequest("Answer:", " A")])
    finally:
        srv.close()


def test_openai_bad_spec_and_unreachable_server():
    with pytest.raises(ClinforgeError, match="BASE_URL#MODEL"):
        load_backend("openai:127.0.0.1:9/v1")
    import socket
    import time

    with socket.socket() as s:  # a free port nothing listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    client = load_backend(f"openai:{url}#m", max_retries=5, backoff=1.0, timeout=2)
    start = time.perf_counter()
    with pytest.raises(ClinforgeError, match=f"cannot connect to {url}.*Start one first"):
        client.generate([GenerationRequest(prompt="x", max_new_tokens=1)])
    assert time.perf_counter() - start < 1.0  # no retry with backoff on a refused connection


def test_eval_runner_through_the_openai_backend(server, hf_backend, tmp_path):
    from clinforge.eval.eval_runner import EvalConfig, evaluate

    api = evaluate(EvalConfig(model=f"openai:{server.url}#tiny", tasks=["medqa"], out=str(tmp_path / "api"), limit=3,
                              backend_options={"prompts_per_call": 4}), progress=False)
    local = evaluate(EvalConfig(model="hf:tiny", tasks=["medqa"], out=str(tmp_path / "hf"), limit=3),
                     backend=hf_backend, progress=False)
    assert api["tasks"]["medqa"]["acc"] == local["tasks"]["medqa"]["acc"]
    rows = [json.loads(x) for x in (tmp_path / "api" / "items" / "medqa.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (tmp_path / "hf" / "items" / "medqa.jsonl").read_text().splitlines()]
    for a, b in zip(rows, ref, strict=True):
        assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-4) and a["parsed"] == b["parsed"]
