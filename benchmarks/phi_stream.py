"""Streamed PHI output guard vs full-text de-identification on the same texts (issue 9 target: within 1.5 points).

Each text is treated as a model's output and fed to ``PhiOutputGuard().stream()`` in random deltas of 1-8
characters (about one to two tokens; ``random.Random(seed)``, seed 0); the streamed output is compared with
``Deidentifier(mode="mask").deidentify(text)`` of the whole text.

Sets
  physionet  all 1,450 real ICU nursing notes of the PhysioNet deid gold standard (``$CLINFORGE_DATA/physionet-deid``)
             scored with ``clinforge.data.deid.phrase_score`` (a gold instance is removed when the output holds fewer
             word-bounded occurrences of its phrase, by at least its number of gold instances; DateYear not scored;
             Wilson 95% intervals). Miss rate = 1 - recall.
  presidio   the 1,500 sentences of the Presidio synthetic PII set, scored with
             ``clinforge.data.deid.evaluate.score_document`` (by group; a gold span is found when predictions of its
             group cover >= 50% of its non-space characters).

Speed: CPU seconds of the guard per MB of text, full text and streamed.

The last line is ``RESULT stream_miss=X full_miss=Y gap_points=Z presidio_stream_miss=A presidio_full_miss=B
late_spans=N stream_mb_s=S`` (PhysioNet figures unless prefixed).

Run: ``python benchmarks/phi_stream.py [--limit N] [--seed 0] [--holdback 64]``
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Iterator

from clinforge.assist.phi_guard import GuardedText, PhiOutputGuard
from clinforge.core.paths import data_root


def deltas(text: str, rng: random.Random, low: int = 1, high: int = 8) -> Iterator[str]:
    """``text`` cut into pieces of ``low``..``high`` characters drawn from ``rng`` (token-sized stream deltas)."""
    pos = 0
    while pos < len(text):
        step = rng.randint(low, high)
        yield text[pos:pos + step]
        pos += step


def streamed(guard: PhiOutputGuard, text: str, rng: random.Random) -> tuple[GuardedText, int]:
    """The streamed output of ``text`` through ``guard`` and the number of late spans."""
    f = guard.stream()
    out = [f.push(d) for d in deltas(text, rng)]
    out.append(f.flush())
    return GuardedText("".join(out), list(f.spans), bool(f.spans)), f.late_spans


def main(argv: list[str] | None = None) -> int:
    from clinforge.data.deid.evaluate import GROUP_OF_TYPE, load_presidio_synth, score_document
    from clinforge.data.deid.phrase_score import score_note, summarize
    from clinforge.data.readers import get_reader

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="first N texts of each set (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdback", type=int, default=64)
    args = ap.parse_args(argv)
    guard = PhiOutputGuard(holdback_chars=args.holdback)
    root = data_root()
    notes = list(get_reader("physionet_deid").read(root / "physionet-deid"))
    if args.limit:
        notes = notes[:args.limit]
    rng = random.Random(args.seed)
    full_scores, stream_scores = [], []
    late = 0
    cpu_full = cpu_stream = 0.0
    nbytes = 0
    for r in notes:
        nbytes += len(r.text.encode())
        t0 = time.process_time()
        full = guard.filter_text(r.text)
        t1 = time.process_time()
        s, n_late = streamed(guard, r.text, rng)
        t2 = time.process_time()
        cpu_full += t1 - t0
        cpu_stream += t2 - t1
        late += n_late
        phi = r.meta["phi"] or []
        full_scores.append(score_note(r.text, full.text, phi, full.spans, r.patient_id or "", r.meta["note"]))
        stream_scores.append(score_note(r.text, s.text, phi, s.spans, r.patient_id or "", r.meta["note"]))
    fs, ss = summarize(full_scores), summarize(stream_scores)
    print(f"PhysioNet notes: {len(notes)}, {nbytes / 1e6:.2f} MB, seed {args.seed}, hold-back {args.holdback}")
    for key in ("recall_all", "recall_name", "recall_date", "recall_location", "recall_phone", "precision_all",
                "words_kept"):
        if key in fs:
            print(f"  {key:16s} full {fs[key]}   streamed {ss[key]}")
    full_miss, stream_miss = 1 - fs["recall_all"].value, 1 - ss["recall_all"].value
    print(f"  late spans (found after part was emitted, rest masked): {late}")
    print(f"  speed: full {nbytes / 1e6 / cpu_full:.3f} MB/s, streamed {nbytes / 1e6 / cpu_stream:.3f} MB/s (CPU)")

    docs = load_presidio_synth(root / "presidio-synth-pii" / "synth_dataset_v2.json")
    if args.limit:
        docs = docs[:args.limit]
    tallies_full: dict = {}
    tallies_stream: dict = {}
    for text, gold in docs:
        full = guard.filter_text(text)
        s, n_late = streamed(guard, text, rng)
        late += n_late
        score_document(text, gold, [(a, b, GROUP_OF_TYPE.get(t)) for a, b, t in full.spans], tallies_full)
        score_document(text, gold, [(a, b, GROUP_OF_TYPE.get(t)) for a, b, t in s.spans], tallies_stream)
    p_full = 1 - tallies_full["all"].recall
    p_stream = 1 - tallies_stream["all"].recall
    print(f"Presidio synth: {len(docs)} texts; recall full {tallies_full['all'].recall:.4f} "
          f"({tallies_full['all'].found}/{tallies_full['all'].gold}), streamed {tallies_stream['all'].recall:.4f} "
          f"({tallies_stream['all'].found}/{tallies_stream['all'].gold}); precision full "
          f"{tallies_full['all'].precision:.4f}, streamed {tallies_stream['all'].precision:.4f}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"RESULT stream_miss={stream_miss:.4f} full_miss={full_miss:.4f} "
          f"gap_points={100 * (stream_miss - full_miss):.2f} presidio_stream_miss={p_stream:.4f} "
          f"presidio_full_miss={p_full:.4f} late_spans={late} stream_mb_s={nbytes / 1e6 / cpu_stream:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
