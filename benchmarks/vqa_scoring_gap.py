"""VQA-RAD scored two ways on the same model outputs: clinforge's definitions vs LLaVA-Med's legacy script.

Runs a model on the VQA-RAD test split (450 questions, real images) once, then scores the very same outputs with
the ``vqa_rad`` task (closed-vocabulary exact match, unparsable counted; open exact / token F1 / recall) and with
``vqa_rad_llava_med_legacy`` (substring yes/no test with wrong answers dropped from the denominator; open recall),
and counts the items where the two disagree and why. With a text-only model (the default, SmolLM2-135M-Instruct
from the offline registry) the images are dropped and the run is labelled a **question-only baseline**: VQA-RAD's
closed questions are answerable above chance from the text alone, a known bias of the set.

Usage: python benchmarks/vqa_scoring_gap.py [--model hf:DIR] [--limit N] [--quick]
Last line: ``RESULT closed_clinforge=A closed_legacy=B legacy_dropped=N open_exact=C open_recall_legacy=D``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model SPEC (default: hf: SmolLM2-135M-Instruct, question-only)")
    ap.add_argument("--limit", type=int, default=None, help="first N test questions (default: all 450)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 questions")
    ap.add_argument("--out", default=None, help="write the per-item outputs and both scorings as JSON here")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from clinforge.eval.tasks import get_task
    from clinforge.models.backends import load_backend
    from clinforge.models.backends.hf_vision import HFVisionBackend

    limit = 20 if args.quick else args.limit
    if args.model is None:
        from clinforge.models.offline_models import fetch_model

        spec = f"hf:{fetch_model('smollm2-135m-instruct')}"
    else:
        spec = args.model
    ours, legacy = get_task("vqa_rad"), get_task("vqa_rad_llava_med_legacy")
    records = ours.records(None, limit)
    backend = load_backend(spec, batch_size=8)
    with_images = isinstance(backend, HFVisionBackend) or spec.startswith("openai:")
    requests = []
    for rec in records:
        req = ours.build(rec, "generate", [])["requests"][0]
        if not with_images:
            req.images = []
        if getattr(backend, "tokenizer", None) is not None and getattr(backend.tokenizer, "chat_template", None):
            req.messages, req.prompt = [{"role": "user", "content": req.prompt}], None
        requests.append(req)
    start = time.perf_counter()
    outputs = backend.generate(requests)
    seconds = time.perf_counter() - start
    rows = [ours.score(rec, {}, [o]) for rec, o in zip(records, outputs, strict=True)]
    legacy_rows = [legacy.score(rec, {}, [o]) for rec, o in zip(records, outputs, strict=True)]
    a, b = ours.aggregate(rows, 0, "generate"), legacy.aggregate(legacy_rows, 0, "generate")
    why = {"legacy hit, clinforge wrong (substring, e.g. 'normal'/'unknown' for 'no')": 0,
           "legacy dropped (wrong yes/no answer left out)": 0,
           "legacy 0, clinforge right (answer without yes/no, e.g. 'left')": 0}
    for r, lr in zip(rows, legacy_rows, strict=True):
        if r["answer_type"] != "CLOSED":
            continue
        hit = lr["legacy_closed_hit"]
        if hit is None:
            why["legacy dropped (wrong yes/no answer left out)"] += 1
        elif hit == 1 and not r["correct"]:
            why["legacy hit, clinforge wrong (substring, e.g. 'normal'/'unknown' for 'no')"] += 1
        elif hit == 0 and r["correct"]:
            why["legacy 0, clinforge right (answer without yes/no, e.g. 'left')"] += 1
    label = "with images" if with_images else "QUESTION-ONLY baseline (text model, images dropped)"
    print(f"model {spec} ({label}); {len(records)} VQA-RAD test questions; generation {seconds:.1f} s")
    print(f"{'figure':46s} {'clinforge':>12s} {'llava-med-legacy':>18s}")
    fmt = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
    print(f"{'closed accuracy':46s} {fmt(a['closed_acc']):>12s} {fmt(b['legacy_closed_acc']):>18s}")
    print(f"{'  closed questions counted':46s} {a['n_closed']:>12d} {b['legacy_closed_n']:>18d}")
    print(f"{'  closed unparsable (clinforge)':46s} {a['closed_unparsed']:>12d} {'-':>18s}")
    print(f"{'open exact match':46s} {fmt(a['open_exact']):>12s} {fmt(b['legacy_open_exact']):>18s}")
    print(f"{'open token recall':46s} {fmt(a['open_recall']):>12s} {fmt(b['legacy_open_recall']):>18s}")
    print(f"{'open token F1':46s} {fmt(a['open_f1']):>12s} {fmt(b['legacy_open_f1']):>18s}")
    print(f"closed_acc 95% CI (clinforge, bootstrap seed 0): {a.get('closed_acc_ci')}")
    for reason, n in why.items():
        print(f"  {reason}: {n}")
    if args.out:
        Path(args.out).write_text(json.dumps({"model": spec, "label": label, "clinforge": a, "legacy": b, "why": why,
                                              "items": [{"id": rec.id, "output": o, "gold": rec.answer,
                                                         "answer_type": r["answer_type"],
                                                         "clinforge": r.get("correct", r.get("open_exact")),
                                                         "legacy": lr.get("legacy_closed_hit", lr.get("legacy_recall"))}
                                                        for rec, o, r, lr in zip(records, outputs, rows, legacy_rows,
                                                                                 strict=True)]},
                                             indent=1, default=str))
    print(f"RESULT closed_clinforge={fmt(a['closed_acc'])} closed_legacy={fmt(b['legacy_closed_acc'])} "
          f"legacy_dropped={b['legacy_closed_dropped']} open_exact={fmt(a['open_exact'])} "
          f"open_recall_legacy={fmt(b['legacy_open_recall'])}")


if __name__ == "__main__":
    main()
