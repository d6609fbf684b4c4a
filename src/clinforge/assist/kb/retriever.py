"""Retrieval over a knowledge base: BM25, dense, and their fusion, with metadata filters applied before ranking.

The interface other parts of clinforge call (the server's RAG, Chain-of-Verification, grounded answers) is
:class:`Retriever`: ``search(query, k=5, filters=None) -> list[ScoredChunk]``. A :class:`KnowledgeBase` implements
it over chunks plus a dense index (FAISS on local disk, or PostgreSQL + pgvector for several machines).

Filters are ``{field: value}`` (equality), ``{field: [v1, v2]}`` (any of), or ``{field: {"gte": a, "lte": b}}``
(range; ISO dates compare as strings), over a chunk's metadata (source, title, date, licence, doc_id, section and
the document's meta). They select the chunks that may be ranked *before* any ranking, so a filtered search returns
the best ``k`` of the allowed chunks, never fewer because better disallowed chunks took the places.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from clinforge.assist.kb.chunking import Chunk
from clinforge.assist.kb.fusion import rrf, weighted
from clinforge.core.errors import ConfigError

Mode = Literal["bm25", "dense", "hybrid"]
_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass
class ScoredChunk:
    """A retrieved chunk: content-hash id, the score of the ranking that placed it, text, and metadata.

    ``scores`` keeps each member's score and 1-based rank (``bm25``, ``bm25_rank``, ``dense``, ``dense_rank``,
    ``rerank``), so a caller can show why a passage came back.
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        return self.metadata["doc_id"]


class Retriever(Protocol):
    """Anything that returns scored passages for a query (what RAG and CoVe depend on)."""

    def search(self, query: str, k: int = 5, *, filters: dict[str, Any] | None = None) -> list[ScoredChunk]: ...


@dataclass
class SearchSettings:
    """How a :class:`KnowledgeBase` ranks: mode, fusion (``rrf`` with ``rrf_k``, or ``weighted`` with
    ``weights`` for bm25 and dense: default 1/1 for RRF, 0.5/0.5 for weighted), and ``candidates`` taken from each
    member before fusion."""

    mode: Mode = "hybrid"
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: float = 60.0
    weights: tuple[float, float] | None = None
    candidates: int = 100

    def __post_init__(self) -> None:
        if self.mode not in ("bm25", "dense", "hybrid"):
            raise ConfigError(f"mode must be bm25, dense or hybrid, not {self.mode!r}", key="mode")
        if self.fusion not in ("rrf", "weighted"):
            raise ConfigError(f"fusion must be rrf or weighted, not {self.fusion!r}", key="fusion")
        if self.candidates < 1:
            raise ConfigError("candidates must be >= 1", key="candidates")


def tokenize(text: str, stopwords: frozenset[str]) -> list[str]:
    """Lower-cased word tokens without stopwords (the BM25 analyzer; no stemming, so no extra dependency).

    Example:
        >>> tokenize("What are the symptoms of Flu?", frozenset({"what", "are", "the", "of"}))
        ['symptoms', 'flu']
    """
    return [t for t in _TOKEN.findall(text.lower()) if t not in stopwords]


class BM25Index:
    """bm25s over chunk texts (Lucene variant); scores every chunk, so filters can mask before ranking.

    Example:
        >>> ix = BM25Index(["fever and cough", "a rash"], k1=1.5, b=0.75)
        >>> [round(float(s), 3) for s in ix.scores("cough")]
        [0.241, 0.0]
    """

    def __init__(self, texts: list[str], *, k1: float = 1.5, b: float = 0.75, stopwords: str = "en"):
        import bm25s
        from bm25s.stopwords import STOPWORDS_EN

        self.stopwords = frozenset(STOPWORDS_EN) if stopwords == "en" else frozenset()
        self.n = len(texts)
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        # an empty token list would make bm25s drop the document's slot; "" keeps positions aligned
        self._bm25.index([tokenize(t, self.stopwords) or [""] for t in texts], show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        tokens = [t for t in tokenize(query, self.stopwords) if t in self._bm25.vocab_dict]
        if not tokens:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)


class DenseIndex(Protocol):
    """Nearest neighbours by inner product of normalised vectors (= cosine), restricted to allowed positions."""

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]: ...


class FaissFlatIndex:
    """An exact FAISS inner-product index (``IndexFlatIP``): same bytes for the same vectors, no training."""

    def __init__(self, index: Any):
        self.index = index

    @classmethod
    def from_vectors(cls, vectors: np.ndarray) -> FaissFlatIndex:
        import faiss

        index = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index)

    @classmethod
    def read(cls, path: str) -> FaissFlatIndex:
        import faiss

        return cls(faiss.read_index(path))

    def write(self, path: str) -> None:
        import faiss

        faiss.write_index(self.index, path)

    def vectors(self) -> np.ndarray:
        return self.index.reconstruct_n(0, self.index.ntotal) if self.index.ntotal else np.zeros(
            (0, self.index.d), dtype=np.float32)

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        import faiss

        params = None
        if allowed is not None:
            ids = np.flatnonzero(allowed).astype(np.int64)
            if not len(ids):
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids))
            k = min(k, len(ids))
        k = min(k, self.index.ntotal)
        if k <= 0:
            return []
        scores, idx = self.index.search(vector.reshape(1, -1).astype(np.float32), k, params=params)
        return [(int(i), float(s)) for i, s in zip(idx[0], scores[0], strict=True) if i >= 0]


def filter_mask(metas: list[dict[str, Any]], filters: dict[str, Any] | None) -> np.ndarray | None:
    """Boolean mask of the chunks that pass every filter (``None`` when there is no filter).

    Example:
        >>> metas = [{"source": "a", "date": "2001"}, {"source": "b", "date": "2015"}, {"source": "b", "date": None}]
        >>> filter_mask(metas, {"source": "b", "date": {"gte": "2010"}}).tolist()
        [False, True, False]
    """
    if not filters:
        return None
    mask = np.ones(len(metas), dtype=bool)
    for name, cond in filters.items():
        if isinstance(cond, dict):
            unknown = set(cond) - {"gte", "lte", "gt", "lt"}
            if unknown:
                raise ConfigError(f"unknown range operator(s) {', '.join(sorted(unknown))}; use gte, lte, gt, lt",
                                  key=f"filters.{name}")

            def ok(v: Any, cond: dict = cond) -> bool:
                if v is None:
                    return False
                v = str(v)
                return all((op != "gte" or v >= str(x)) and (op != "lte" or v <= str(x)) and
                           (op != "gt" or v > str(x)) and (op != "lt" or v < str(x)) for op, x in cond.items())
        elif isinstance(cond, list | tuple | set):
            allowed = {str(x) for x in cond}

            def ok(v: Any, allowed: set = allowed) -> bool:
                return v is not None and str(v) in allowed
        else:
            def ok(v: Any, want: Any = cond) -> bool:
                return v is not None and str(v) == str(want)
        mask &= np.fromiter((ok(m.get(name)) for m in metas), dtype=bool, count=len(metas))
    return mask


class KnowledgeBase:
    """Chunks + BM25 + a dense index + the embedder that made it: the default :class:`Retriever`.

    Open one with :func:`clinforge.assist.kb.kb_store.open_kb`.

    Example:
        >>> kb = open_kb("kb/")  # doctest: +SKIP
        >>> [c.metadata["title"] for c in kb.search("treatment of asthma", k=3, filters={"source": "medquad"})]  # doctest: +SKIP
    """

    def __init__(self, chunks: list[Chunk], dense: DenseIndex, embedder: Any, *, manifest: dict[str, Any],
                 settings: SearchSettings | None = None):
        self.chunks = chunks
        self.dense = dense
        # an embedder, or a zero-argument function that loads it: BM25-only use never pays for the model
        self._embedder = None if callable(embedder) and not hasattr(embedder, "encode") else embedder
        self._embedder_factory = embedder if self._embedder is None else None
        self.manifest = manifest
        self.settings = settings or SearchSettings()
        bm = manifest.get("bm25", {})
        self.bm25 = BM25Index([c.text for c in chunks], k1=bm.get("k1", 1.5), b=bm.get("b", 0.75),
                              stopwords=bm.get("stopwords", "en"))
        self.metas = [c.metadata() for c in chunks]

    @property
    def embedder(self) -> Any:
        """The query embedder (loaded on first use)."""
        if self._embedder is None:
            self._embedder = self._embedder_factory()
        return self._embedder

    @property
    def version(self) -> int:
        return int(self.manifest.get("version", 0))

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        """Query vectors in one batch (evaluation embeds all questions at once)."""
        return self.embedder.encode(queries)

    def search(self, query: str, k: int = 5, *, filters: dict[str, Any] | None = None,
               settings: SearchSettings | None = None, query_vector: np.ndarray | None = None) -> list[ScoredChunk]:
        """Best ``k`` chunks for ``query`` among those that pass ``filters`` (see the module docstring)."""
        s = settings or self.settings
        mask = filter_mask(self.metas, filters)
        n_cand = max(k, s.candidates)
        bm25_hits: list[tuple[int, float]] = []
        dense_hits: list[tuple[int, float]] = []
        if s.mode in ("bm25", "hybrid"):
            scores = self.bm25.scores(query)
            if mask is not None:
                scores = np.where(mask, scores, 0.0)
            # only chunks sharing a term with the query are BM25 candidates; ties broken by position
            order = np.lexsort((np.arange(len(scores)), -scores))[:n_cand]
            bm25_hits = [(int(i), float(scores[i])) for i in order if scores[i] > 0]
        if s.mode in ("dense", "hybrid"):
            vec = query_vector if query_vector is not None else self.embedder.encode([query])[0]
            dense_hits = self.dense.search(np.asarray(vec, dtype=np.float32), n_cand, mask)
        ranks = {"bm25": {i: r for r, (i, _) in enumerate(bm25_hits, 1)},
                 "dense": {i: r for r, (i, _) in enumerate(dense_hits, 1)}}
        member = {"bm25": dict(bm25_hits), "dense": dict(dense_hits)}
        if s.mode == "bm25":
            fused = bm25_hits
        elif s.mode == "dense":
            fused = dense_hits
        elif s.fusion == "rrf":
            fused = rrf([[i for i, _ in bm25_hits], [i for i, _ in dense_hits]], k=s.rrf_k, weights=s.weights)
        else:
            fused = weighted([bm25_hits, dense_hits], weights=s.weights or (0.5, 0.5))
        out = []
        for pos, score in fused[:k]:
            c = self.chunks[pos]
            detail = {f"{m}{suffix}": float(v[pos]) for m in ("bm25", "dense")
                      for suffix, v in (("", member[m]), ("_rank", ranks[m])) if pos in v}
            out.append(ScoredChunk(id=c.id, score=float(score), text=c.text, metadata=dict(self.metas[pos]),
                                   scores=detail))
        return out
