"""Retrieval evaluation: each question should find its own passage (document).

Definitions (document level, since a document may have several chunks):

* the ranked documents of a query are its retrieved chunks (``depth`` of them, best first) with each document kept
  at its first chunk's place;
* ``recall@k`` = share of questions whose gold document is among the first ``k`` documents (one gold document per
  question, so this equals hit rate / success@k);
* ``MRR@10`` = mean of 1 / rank of the gold document, 0 when it is not in the first 10;
* 95 % percentile bootstrap intervals over questions (``n_boot`` resamples, seeded);
* a question whose gold document is not in the KB is not scored, and is counted (``gold_missing``);
* latency: wall time of one ``search`` per question, query embedding included, p50 / p95 in milliseconds (measured
  on ``latency_queries`` questions, one at a time; the recall figures embed the questions in one batch, which gives
  the same vectors); ``p95_cpu_ms`` is the same for the process's CPU time, which is what the wall time would be
  on an idle core (on a shared, loaded machine the wall time is mostly waiting for a core).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from clinforge.assist.kb.kb_sources import SourceSpec
from clinforge.assist.kb.retriever import KnowledgeBase, SearchSettings
from clinforge.core.errors import DataError
from clinforge.judges.bias import with_ci

KS = (1, 5, 10)


def questions_from(spec: SourceSpec) -> list[tuple[str, str]]:
    """``(question, gold document id)`` pairs from a reader source (the same ids the KB gave the documents).

    Example:
        >>> questions_from(SourceSpec.parse("pubmedqa:data/ori_pqal.json"))[0]  # doctest: +SKIP
        ('Do mitochondria play a role in remodelling lace plant leaves during programmed cell death?', '21645374')
    """
    from clinforge.data.readers import get_reader

    out = []
    for rec in get_reader(spec.format, **spec.options).read(spec.path):
        if not rec.question:
            raise DataError("no question to evaluate retrieval with", file=spec.path, record=rec.id, field="question")
        if rec.kind == "qa" and not rec.answer:
            continue  # no passage was indexed for it either
        out.append((rec.question, rec.id))
        if spec.limit is not None and len(out) >= spec.limit:
            break
    return out


def doc_ranks(kb: KnowledgeBase, questions: list[tuple[str, str]], settings: SearchSettings, depth: int = 100,
              vectors: np.ndarray | None = None) -> list[int | None]:
    """1-based rank of each question's gold document among the ranked documents (None: not in the top ``depth``)."""
    ranks: list[int | None] = []
    for i, (question, gold) in enumerate(questions):
        hits = kb.search(question, k=depth, settings=settings,
                         query_vector=None if vectors is None else vectors[i])
        seen: list[str] = []
        for h in hits:
            if h.doc_id not in seen:
                seen.append(h.doc_id)
        ranks.append(seen.index(gold) + 1 if gold in seen else None)
    return ranks


def retrieval_metrics(ranks: list[int | None], *, seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """recall@1/5/10 and MRR@10 with bootstrap CIs from gold ranks (see the module docstring).

    Example:
        >>> m = retrieval_metrics([1, 3, None, 12], n_boot=50)
        >>> m["recall@1"]["value"], m["recall@5"]["value"], m["mrr@10"]["value"]
        (0.25, 0.5, 0.3333333333333333)
    """
    r = np.array([np.inf if x is None else x for x in ranks], dtype=float)
    out: dict[str, Any] = {}
    for k in KS:
        hit = (r <= k).astype(float)
        out[f"recall@{k}"] = with_ci(lambda idx, hit=hit: float(hit[idx].mean()), len(r), seed, n_boot)
    rr = np.where(r <= 10, 1.0 / r, 0.0)
    out["mrr@10"] = with_ci(lambda idx: float(rr[idx].mean()), len(r), seed, n_boot)
    return out


def evaluate_kb(kb: KnowledgeBase, questions: list[tuple[str, str]], *, modes: tuple[str, ...] = ("bm25", "dense",
                "hybrid"), settings: SearchSettings | None = None, seed: int = 0, n_boot: int = 1000,
                latency_queries: int = 100) -> dict[str, Any]:
    """Recall@k, MRR@10 (with CIs) and query latency of each mode on ``questions``.

    Example:
        >>> out = evaluate_kb(kb, questions_from(spec), modes=("bm25",))  # doctest: +SKIP
        >>> out["modes"]["bm25"]["recall@1"]["value"]  # doctest: +SKIP
        0.94
    """
    base = settings or kb.settings
    known = {c.doc_id for c in kb.chunks}
    scored = [q for q in questions if q[1] in known]
    result: dict[str, Any] = {"questions": len(questions), "scored": len(scored),
                              "gold_missing": len(questions) - len(scored), "seed": seed, "n_boot": n_boot,
                              "kb_version": kb.version, "modes": {}}
    if not scored:
        raise DataError("no question's gold document is in the knowledge base (wrong source or ids?)",
                        field="questions")
    vectors = kb.embed_queries([q for q, _ in scored]) if any(m != "bm25" for m in modes) else None
    for mode in modes:
        s = SearchSettings(mode=mode, fusion=base.fusion, rrf_k=base.rrf_k, weights=base.weights,
                           candidates=base.candidates)
        ranks = doc_ranks(kb, scored, s, vectors=vectors)
        timings, cpu = [], []
        for q, _ in scored[:latency_queries]:
            t0, c0 = time.perf_counter(), time.process_time()
            kb.search(q, k=10, settings=s)
            timings.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        result["modes"][mode] = {**retrieval_metrics(ranks, seed=seed, n_boot=n_boot),
                                 "p50_ms": float(np.percentile(timings, 50)),
                                 "p95_ms": float(np.percentile(timings, 95)), "latency_queries": len(timings),
                                 "p95_cpu_ms": float(np.percentile(cpu, 95)),
                                 "settings": {"fusion": s.fusion, "rrf_k": s.rrf_k, "weights": s.weights,
                                              "candidates": s.candidates} if mode == "hybrid" else {}}
    return result


def eval_kb(kb_dir: str, questions: SourceSpec, *, modes: tuple[str, ...] = ("bm25", "dense", "hybrid"),
            settings: SearchSettings | None = None, seed: int = 0, n_boot: int = 1000,
            latency_queries: int = 100) -> dict[str, Any]:
    """Open the KB folder ``kb_dir`` and run :func:`evaluate_kb` on the questions of a reader source.

    Example:
        >>> eval_kb("kb/", SourceSpec.parse("pubmedqa:data/ori_pqal.json"))["modes"]["hybrid"]["recall@5"]  # doctest: +SKIP
    """
    from clinforge.assist.kb.kb_store import open_kb

    kb = open_kb(kb_dir, settings=settings)
    out = evaluate_kb(kb, questions_from(questions), modes=modes, settings=settings, seed=seed, n_boot=n_boot,
                      latency_queries=latency_queries)
    return {"kb": str(kb_dir), "questions_source": questions.model_dump(), **out}
