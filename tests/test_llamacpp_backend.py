"""The ``llamacpp:`` backend on the real SmolLM2-135M-Instruct GGUF: SPEC options and errors, the GGUF's chat
template rendered as transformers renders it, exact token counts, streaming that concatenates to the generated
text and stops when closed, stop strings, the context limit, and agreement with the hf backend on the same weights
(transformers de-quantises the Q4_1 GGUF to fp32; llama.cpp computes on the quantised blocks, so numbers differ a
little and the tests bound by how much)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clinforge.core.errors import ClinforgeError, ConfigError, ContextLengthError
from clinforge.models.backends import GenerationRequest, LoglikelihoodRequest, load_backend
from conftest import SMOLLM2, require_llama_cpp

pytestmark = [pytest.mark.real_model, pytest.mark.slow]
SAMPLES = Path(__file__).resolve().parents[1] / "src" / "clinforge" / "samples"
CHAT = [{"role": "user", "content": "What is the first test for a patient with chest pain?"}]


@pytest.fixture(scope="module")
def llamacpp(smollm2_gguf):
    require_llama_cpp()
    be = load_backend(f"llamacpp:{smollm2_gguf}#n_ctx=1024,n_threads=2")
    yield be
    be.close()


@pytest.fixture(scope="module")
def hf(smollm2_cache):
    be = load_backend(f"hf:{smollm2_cache / 'models' / SMOLLM2}", device="cpu")
    yield be
    be.close()


def test_spec_options_and_errors(tmp_path, smollm2_gguf, llamacpp):
    assert llamacpp.context_length == 1024 and llamacpp.model_name == smollm2_gguf.name
    with pytest.raises(ClinforgeError, match="GGUF file does not exist"):
        load_backend(f"llamacpp:{tmp_path / 'none.gguf'}")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ClinforgeError, match="bad.gguf: not a GGUF file"):
        load_backend(f"llamacpp:{bad}")
    with pytest.raises(ConfigError, match=r"unknown option 'nctx' \(did you mean 'n_ctx'\?\)"):
        load_backend(f"llamacpp:{smollm2_gguf}#nctx=10")
    with pytest.raises(ConfigError, match="n_ctx='many' is not a valid int"):
        load_backend(f"llamacpp:{smollm2_gguf}#n_ctx=many")


def test_prompt_threads_default_to_generation_threads(smollm2_gguf, llamacpp):
    # llama-cpp-python alone would evaluate prompts on every core (n_threads_batch = cpu_count)
    assert (llamacpp.llm.n_threads, llamacpp.llm.n_threads_batch) == (2, 2)
    one = load_backend(f"llamacpp:{smollm2_gguf}#n_ctx=256,n_threads=1,n_threads_batch=3")
    try:
        assert (one.llm.n_threads, one.llm.n_threads_batch) == (1, 3)
        assert one.llm.context_params.n_threads_batch == 3
    finally:
        one.close()
    with pytest.raises(ConfigError, match="n_threads_batch must be >= 1"):
        load_backend(f"llamacpp:{smollm2_gguf}#n_threads_batch=-2")


def test_chat_template_and_tokens_match_transformers(llamacpp, hf):
    request = GenerationRequest(messages=CHAT)
    assert llamacpp.render_prompt(request) == hf.render_prompt(request)
    assert llamacpp.prompt_tokens(request) == hf.tokenizer.encode(hf.render_prompt(request), add_special_tokens=False)
    for text in ("A 54-year-old man has crushing chest pain.", "Metformin 500 mg b.i.d.; HbA1c 7.2%",
                 "<|im_start|>user\nfever<|im_end|>"):
        assert llamacpp.count_tokens(text) == len(hf.tokenizer.encode(text, add_special_tokens=False)), text


def test_stream_is_generate_split_into_deltas_and_closing_stops_it(llamacpp):
    request = GenerationRequest(messages=CHAT, max_new_tokens=12)
    deltas = list(llamacpp.stream(request))
    assert len(deltas) >= 3 and all(deltas)
    assert "".join(deltas) == llamacpp.generate([request])[0]  # greedy: the same text both ways
    assert llamacpp.count_tokens("".join(deltas)) <= 12 + 1  # re-tokenising may merge or split one token

    stream = llamacpp.stream(GenerationRequest(prompt="The heart has four chambers:", max_new_tokens=500))
    first = next(stream)
    assert first and llamacpp._lock.locked()  # the stream holds the model while it runs
    stream.close()
    assert not llamacpp._lock.locked()  # closed by the consumer: generation stopped, the model is free again
    # a stop string is never emitted, and the text ends before it
    full = llamacpp.generate([GenerationRequest(messages=CHAT, max_new_tokens=12)])[0]
    word = full.split()[3]
    cut = llamacpp.generate([GenerationRequest(messages=CHAT, max_new_tokens=12, stop=[word])])[0]
    assert word not in cut and full.startswith(cut)


def test_context_limit_is_an_error_not_a_silent_cut(llamacpp):
    long_prompt = "chest pain " * 600
    with pytest.raises(ContextLengthError) as info:
        llamacpp.generate([GenerationRequest(prompt=long_prompt, max_new_tokens=16)])
    assert info.value.limit == 1024 and info.value.n_tokens > 1024


def test_agreement_with_the_hf_backend(llamacpp, hf):
    """Same weights, two engines: every multiple-choice question gets the same answer, summed log-likelihoods stay
    within 1.5 nats (measured max 1.01, mean 0.30 on 12 sample questions, 2026-12-02), and teacher-forced next-token
    predictions agree at >= 95% of positions (measured 98% on a 50-token clinical sentence)."""
    questions = [json.loads(line) for line in (SAMPLES / "mcq.jsonl").read_text().splitlines()[:4]]
    requests = [LoglikelihoodRequest(f"Question: {q['question']}\nAnswer:", f" {c}") for q in questions
                for c in q["choices"]]
    ours = np.array([s for s, _ in llamacpp.loglikelihood(requests)])
    ref = np.array([s for s, _ in hf.loglikelihood(requests)])
    assert np.abs(ours - ref).max() < 1.5
    start = 0
    for q in questions:
        n = len(q["choices"])
        assert ours[start:start + n].argmax() == ref[start:start + n].argmax(), q["id"]
        start += n

    import torch

    text = ("A 54-year-old man presents with crushing substernal chest pain radiating to the left arm, diaphoresis "
            "and nausea. The first test is a 12-lead electrocardiogram, followed by serial troponin measurements.")
    ids = llamacpp._tokenize(text, add_special=True)
    scorer = llamacpp._scoring_context()
    scorer.reset()
    scorer.eval(ids)
    ours_logits = np.asarray(scorer.scores[:len(ids)])
    with torch.no_grad():
        ref_logits = hf.model(torch.tensor([ids])).logits[0].numpy()
    assert (ours_logits.argmax(1) == ref_logits.argmax(1)).mean() >= 0.95


def test_an_amx_build_is_named_before_native_code_can_crash(capsys, monkeypatch):
    """llama.cpp's AMX backend segfaulted every decode on a Sapphire Rapids VM (2026-12-04): a segfault leaves no
    Python error, so loading warns first, once per process, and only for such a build."""
    import types

    from clinforge.models.backends import llamacpp as module

    monkeypatch.setattr(module, "_amx_warned", False)
    plain = types.SimpleNamespace(llama_print_system_info=lambda: b"CPU : AVX512 = 1 | REPACK = 1 | ")
    amx = types.SimpleNamespace(llama_print_system_info=lambda: b"CPU : AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 | ")
    assert module.warn_if_amx_build(plain) is False
    assert capsys.readouterr().err == ""
    assert module.warn_if_amx_build(amx) is True and module.warn_if_amx_build(amx) is True
    err = capsys.readouterr().err
    assert err.count("AMX backend") == 1 and "docs/edge.md" in err
