"""Chain-of-Verification on real models: the tiny random Llama (format not followed: the failed plan is counted,
never defaulted) and the real SmolLM2-135M-Instruct on one medical question in every variant, proving that in
two_step and factored no verification prompt contains the draft."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinforge.assist.cove import VARIANTS, ChainOfVerification, parse_answers, parse_pairs, parse_questions
from clinforge.core.errors import ConfigError
from clinforge.models.backends import load_backend

QUESTION = [{"role": "user", "content": "Name three common side effects of metformin."}]


def _prompt_text(entry: dict) -> str:
    return "\n".join(m["content"] for m in entry["messages"])


def test_parsers() -> None:
    plan = "Here are questions:\n1. What is metformin's most common side effect?\n2) Does it cause lactic acidosis?\n"
    assert parse_questions(plan, 5) == ["What is metformin's most common side effect?",
                                        "Does it cause lactic acidosis?"]
    assert parse_questions(plan, 1) == ["What is metformin's most common side effect?"]
    assert parse_questions("", 3) == [] and parse_questions("No questions here.", 3) == []
    assert parse_pairs("Q1: What dose?\nA1: 500 mg\nQ2: How often?", 5) == [("What dose?", "500 mg"),
                                                                           ("How often?", "")]
    assert parse_answers("A2: two\nA1: one", 2) == ["one", "two"]
    with pytest.raises(ConfigError, match="unknown CoVe variant"):
        ChainOfVerification(None, variant="fast")
    with pytest.raises(ConfigError):
        ChainOfVerification(None, max_questions=0)


def test_tiny_model_failed_plan_is_counted_not_defaulted(tiny_lm: Path) -> None:
    backend = load_backend(f"hf:{tiny_lm}", device="cpu")
    for variant in ("factored", "joint"):
        result = ChainOfVerification(backend, variant=variant, max_new_tokens=12).run(QUESTION)
        assert result.draft and result.plan_failed and result.parse_failures == 1
        assert result.questions == [] and result.answers == [] and result.final == result.draft
        assert result.calls == 2 == len(result.trace) and [t["step"] for t in result.trace][0] == "draft"
        assert result.tokens == sum(t["tokens"] for t in result.trace) > 0 and result.tokens_exact


@pytest.fixture(scope="module")
def smollm2(smollm2_cache: Path):
    import os

    old = os.environ.get("CLINFORGE_CACHE")
    os.environ["CLINFORGE_CACHE"] = str(smollm2_cache)
    try:
        backend = load_backend("hf:smollm2-135m-instruct", device="cpu", batch_size=4)
    finally:
        if old is None:
            os.environ.pop("CLINFORGE_CACHE", None)
        else:
            os.environ["CLINFORGE_CACHE"] = old
    return backend


@pytest.mark.slow
@pytest.mark.real_model
@pytest.mark.parametrize("variant", VARIANTS)
def test_smollm2_every_variant_and_the_draft_never_reaches_verification(smollm2, variant: str) -> None:
    result = ChainOfVerification(smollm2, variant=variant, max_questions=2, max_new_tokens=64).run(QUESTION)
    assert len(result.draft) > 20
    steps = [t["step"] for t in result.trace]
    assert steps[0] == "draft" and result.calls == len(result.trace) and result.tokens > 0
    if result.plan_failed:  # counted, and then nothing was verified: the run must say so
        assert result.parse_failures >= 1 and result.final == result.draft and steps[-1] != "final"
        pytest.fail(f"SmolLM2 produced no parseable verification questions in {variant}: {result.trace[1]['output']!r}")
    assert 1 <= len(result.questions) <= 2 and len(result.answers) == len(result.questions)
    assert steps[-1] == "final" and result.final
    assert result.draft in _prompt_text(result.trace[-1])  # the final step revises the draft
    verify = [t for t in result.trace if t["step"] == "verify"]
    if variant == "two_step":
        assert len(verify) == 1 and all(q in _prompt_text(verify[0]) for q in result.questions)
    if variant in ("factored", "factor_revise"):
        assert len(verify) == len(result.questions)
        for i, entry in enumerate(verify):  # one question per prompt, and no other question
            text = _prompt_text(entry)
            assert result.questions[i] in text
            assert not any(q in text for j, q in enumerate(result.questions) if j != i and q not in result.questions[i])
    if variant in ("two_step", "factored"):
        for entry in verify:
            assert result.draft not in _prompt_text(entry)
    if variant == "factor_revise":
        assert len(result.verdicts) == len(result.questions)
        assert all(result.draft in _prompt_text(t) for t in result.trace if t["step"] == "cross_check")
    if variant == "joint":
        assert steps == ["draft", "plan_and_verify", "final"]


@pytest.mark.slow
@pytest.mark.real_model
def test_smollm2_factored_with_retrieval(smollm2, data_root: Path, tmp_path: Path) -> None:
    from clinforge.assist.kb import SearchSettings, SourceSpec
    from clinforge.assist.kb.kb_store import build_kb, open_kb

    build_kb(tmp_path / "kb", [SourceSpec(format="medquad", path=str(data_root / "medquad"), limit=20)],
             chunk_size=1000, overlap=150, threads=1)
    kb = open_kb(tmp_path / "kb", settings=SearchSettings(mode="bm25"))
    result = ChainOfVerification(smollm2, variant="factored", max_questions=2, retriever=kb,
                                 max_new_tokens=64).run(QUESTION)
    assert not result.plan_failed
    for entry in (t for t in result.trace if t["step"] == "verify"):
        system = entry["messages"][0]
        assert system["role"] == "system" and "<<<SOURCE 1 " in system["content"]
        assert result.draft not in _prompt_text(entry)
