"""Rerankers: rescore a retriever's candidates with a slower, stronger model.

* :class:`CrossEncoderReranker` — a local sentence-transformers cross-encoder folder (safetensors only: a folder
  with a pickle/joblib/``.bin`` file is refused, since unpickling runs code);
* :class:`LoglikelihoodReranker` — any clinforge backend that implements ``loglikelihood`` (in-process HF, vLLM):
  the score is ``log P(" yes") - log P(" no")`` after a prompt that asks whether the passage answers the question.

Both return the candidates re-sorted by the new score (ties keep the retriever's order), with the retriever's score
kept in ``scores["retriever"]`` and the new one in ``scores["rerank"]``. :class:`RerankedRetriever` wraps a
retriever so that callers keep the one ``search`` interface.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from clinforge.assist.kb.embedders import resolve_model_folder
from clinforge.assist.kb.retriever import Retriever, ScoredChunk

RELEVANCE_PROMPT = ("Passage:\n{passage}\n\nQuestion: {question}\n"
                    "Does the passage contain the answer to the question? Answer yes or no.\nAnswer:")


class Reranker(Protocol):
    """Rescore and re-sort candidates for a query."""

    def rerank(self, query: str, candidates: list[ScoredChunk]) -> list[ScoredChunk]: ...


def _resort(candidates: list[ScoredChunk], scores: list[float]) -> list[ScoredChunk]:
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
    return [replace(candidates[i], score=float(scores[i]),
                    scores={**candidates[i].scores, "retriever": candidates[i].score, "rerank": float(scores[i])})
            for i in order]


class CrossEncoderReranker:
    """A local cross-encoder folder (e.g. an MS MARCO MiniLM cross-encoder copied onto the machine).

    Example:
        >>> rr = CrossEncoderReranker("/models/ms-marco-MiniLM-L-6-v2")  # doctest: +SKIP
        >>> rr.rerank("asthma inhaler", kb.search("asthma inhaler", k=20))[0].scores["rerank"]  # doctest: +SKIP
    """

    def __init__(self, folder: str, *, batch_size: int = 16, max_length: int = 512):
        from sentence_transformers import CrossEncoder

        self.folder = resolve_model_folder(folder, what="reranker")
        self.batch_size = batch_size
        self.model = CrossEncoder(str(self.folder), device="cpu", max_length=max_length, local_files_only=True)

    def rerank(self, query: str, candidates: list[ScoredChunk]) -> list[ScoredChunk]:
        if not candidates:
            return []
        raw = self.model.predict([(query, c.text) for c in candidates], batch_size=self.batch_size,
                                 show_progress_bar=False, convert_to_numpy=True)
        flat = [float(x if getattr(x, "ndim", 0) == 0 else x[-1]) for x in raw]  # 2-label heads: "relevant" last
        return _resort(candidates, flat)


class LoglikelihoodReranker:
    """An LLM as reranker through a backend's ``loglikelihood`` (see the module docstring).

    Example:
        >>> from clinforge.models.backends import load_backend  # doctest: +SKIP
        >>> rr = LoglikelihoodReranker(load_backend("hf:models/smollm2"))  # doctest: +SKIP
    """

    def __init__(self, backend: Any, *, prompt: str = RELEVANCE_PROMPT, max_passage_chars: int = 2000):
        self.backend = backend
        self.prompt = prompt
        self.max_passage_chars = max_passage_chars

    def rerank(self, query: str, candidates: list[ScoredChunk]) -> list[ScoredChunk]:
        from clinforge.models.backends.base import LoglikelihoodRequest

        if not candidates:
            return []
        requests = []
        for c in candidates:
            ctx = self.prompt.format(passage=c.text[: self.max_passage_chars], question=query)
            requests += [LoglikelihoodRequest(ctx, " yes"), LoglikelihoodRequest(ctx, " no")]
        out = self.backend.loglikelihood(requests)
        scores = [out[2 * i][0] - out[2 * i + 1][0] for i in range(len(candidates))]
        return _resort(candidates, scores)


class RerankedRetriever:
    """``search`` = the inner retriever's top ``candidates``, reranked, cut to ``k``.

    Example:
        >>> rr = RerankedRetriever(kb, CrossEncoderReranker("/models/ce"), candidates=20)  # doctest: +SKIP
        >>> rr.search("asthma", k=3)  # doctest: +SKIP
    """

    def __init__(self, inner: Retriever, reranker: Reranker, *, candidates: int = 20):
        self.inner, self.reranker, self.candidates = inner, reranker, candidates

    def search(self, query: str, k: int = 5, *, filters: dict[str, Any] | None = None) -> list[ScoredChunk]:
        hits = self.inner.search(query, k=max(k, self.candidates), filters=filters)
        return self.reranker.rerank(query, hits)[:k]
