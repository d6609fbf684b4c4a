"""Retrieval benchmark: hybrid (RRF) vs BM25-only (MedRAG's default) vs dense-only (MiniLM) on PubMedQA and MedQuAD.

Task: question -> its own passage. PubMedQA PQA-L: 1,000 questions, each abstract (``CONTEXTS``) a document.
MedQuAD: the first N question-answer pairs with an answer (reader order: subset folders and files sorted), each
answer a document, the question left out of the index. Chunks of ~1,000 characters (overlap 150); a document's rank
is its best chunk's. Figures: recall@1/5/10 and MRR@10 with 95 % bootstrap CIs (seed 0, 1,000 resamples), KB build
time (chunking + embedding + index, one torch thread unless --threads), and p50/p95 latency of one query end to end
(query embedding + BM25 + FAISS + fusion) over the first --latency-queries questions, in wall time and in the
process's CPU time (what the wall time is on an idle core; the load average is recorded with the results).

Target (issue 9): the best configuration reaches recall@5 >= 0.95 on PubMedQA with p95 < 50 ms. The last line is
``RESULT recall_at_5=X p95_ms=Y bm25_recall_at_5=Z`` for the best PubMedQA configuration (by recall@5, then p95).

    python benchmarks/retrieval.py --out runs/bench-retrieval [--medquad 2000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from clinforge.assist.kb import SearchSettings, SourceSpec
from clinforge.assist.kb.kb_eval import evaluate_kb, questions_from
from clinforge.assist.kb.kb_store import build_kb, open_kb
from clinforge.core.io import atomic_write_json


def _corpora(data: Path, medquad_n: int, pubmedqa_n: int | None) -> dict[str, SourceSpec]:
    return {"pubmedqa": SourceSpec(format="pubmedqa", path=str(data / "pubmedqa/data/ori_pqal.json"),
                                   limit=pubmedqa_n),
            "medquad": SourceSpec(format="medquad", path=str(data / "medquad"), limit=medquad_n)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("CLINFORGE_DATA", "../shared/data"))
    ap.add_argument("--out", default="runs/bench-retrieval", help="Folder for the KBs and results.json.")
    ap.add_argument("--medquad", type=int, default=2000, help="MedQuAD QA pairs (first N).")
    ap.add_argument("--pubmedqa", type=int, default=None, help="PubMedQA abstracts (default: all 1,000).")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rrf-k", type=float, default=60.0)
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="Reuse KBs already built in --out (no build time then).")
    args = ap.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                 "loadavg_start": os.getloadavg()},
                     "date": time.strftime("%Y-%m-%d"), "threads": args.threads, "seed": args.seed,
                     "rrf_k": args.rrf_k, "corpora": {}}
    previous = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    for name, spec in _corpora(data, args.medquad, args.pubmedqa).items():
        kb_dir = out / f"kb-{name}"
        # --reuse keeps the build time measured when the KB was built (results.json of that run)
        build_s = previous.get("corpora", {}).get(name, {}).get("build_s") if args.reuse else None
        if not (args.reuse and (kb_dir / "manifest.json").exists()):
            t0 = time.perf_counter()
            build_kb(kb_dir, [spec], threads=args.threads, overwrite=True)
            build_s = time.perf_counter() - t0
        kb = open_kb(kb_dir, settings=SearchSettings(rrf_k=args.rrf_k))
        qspec = spec.model_copy()
        ev = evaluate_kb(kb, questions_from(qspec), seed=args.seed, latency_queries=args.latency_queries)
        ev.update({"build_s": build_s, "documents": kb.manifest["counts"]["documents"],
                   "chunks": kb.manifest["counts"]["chunks"]})
        results["corpora"][name] = ev
        print(f"\n{name}: {ev['documents']} documents, {ev['chunks']} chunks, {ev['scored']} questions, build "
              f"{'-' if build_s is None else f'{build_s:.0f} s'}")
        print(f"{'mode':8s} {'R@1':>6s} {'R@5':>6s} {'R@10':>6s} {'MRR@10':>7s} {'p50 ms':>7s} {'p95 ms':>7s} "
              f"{'p95 CPU ms':>10s}")
        for mode, m in ev["modes"].items():
            print(f"{mode:8s} {m['recall@1']['value']:6.3f} {m['recall@5']['value']:6.3f} "
                  f"{m['recall@10']['value']:6.3f} {m['mrr@10']['value']:7.3f} {m['p50_ms']:7.1f} {m['p95_ms']:7.1f} "
                  f"{m['p95_cpu_ms']:10.1f}")
        sys.stdout.flush()
    results["machine"]["loadavg_end"] = os.getloadavg()
    atomic_write_json(out / "results.json", results)
    pm = results["corpora"]["pubmedqa"]["modes"]
    best = max(pm, key=lambda m: (pm[m]["recall@5"]["value"], -pm[m]["p95_ms"]))
    print(f"best PubMedQA configuration: {best}; full results in {out / 'results.json'}")
    print(f"RESULT recall_at_5={pm[best]['recall@5']['value']:.3f} p95_ms={pm[best]['p95_ms']:.1f} "
          f"bm25_recall_at_5={pm['bm25']['recall@5']['value']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
