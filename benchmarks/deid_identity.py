"""Prove that a change to the rules de-identifier leaves its output unchanged, span for span.

``record OUT.json`` runs ``Deidentifier().detect`` (and ``deidentify_many`` on each PhysioNet patient's notes, which
adds name propagation) over every PhysioNet deid note, the Presidio synthetic set, the generated clinical notes of
``benchmarks/deid.py`` and every string literal in the de-identification tests, and writes each text's SHA-256 with
its spans (start, end, type, score, explanation, recognizer): offsets and rule names only, never text. Keep the
file outside the repository (e.g. in /tmp). ``compare OUT.json`` recomputes and exits 1 on the first difference,
naming the set, the document index and the first differing span.

Example (before and after an optimisation)::

    git stash; python benchmarks/deid_identity.py record /tmp/deid_spans.json; git stash pop
    python benchmarks/deid_identity.py compare /tmp/deid_spans.json
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from clinforge.core.paths import data_root  # noqa: E402
from clinforge.data.deid import Deidentifier  # noqa: E402
from clinforge.data.deid.evaluate import load_presidio_synth  # noqa: E402
from clinforge.data.deid.synthetic import generate_notes  # noqa: E402

NOTES_SEED = 20251125  # the seed benchmarks/deid.py generates its clinical notes with


def test_literals() -> list[str]:
    """Every string literal of 8+ characters in tests/test_deid*.py and tests/test_assist_phi_guard.py."""
    out: list[str] = []
    for path in sorted([*ROOT.glob("tests/test_deid*.py"), ROOT / "tests" / "test_assist_phi_guard.py"]):
        if path.is_file():
            out += [n.value for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                    if isinstance(n, ast.Constant) and isinstance(n.value, str) and len(n.value) >= 8]
    return out


def text_sets() -> Iterator[tuple[str, list[str]]]:
    """(set name, texts) for every set the check covers; sets whose data folder is absent are skipped."""
    from clinforge.data.readers import get_reader

    root = data_root()
    if (root / "physionet-deid").is_dir():
        yield "physionet", [r.text for r in get_reader("physionet_deid").read(root / "physionet-deid")]
    presidio = root / "presidio-synth-pii" / "synth_dataset_v2.json"
    if presidio.is_file():
        yield "presidio", [text for text, _ in load_presidio_synth(presidio)]
    yield "generated-clinical", [n.text for n in generate_notes(300, seed=NOTES_SEED)]
    yield "test-literals", test_literals()


def _spans(found) -> list[list]:
    return [[s.start, s.end, s.entity_type, s.score, s.explanation, s.recognizer] for s in found]


def snapshot() -> dict[str, list]:
    """{set: [[sha256 of text, spans], ...]} plus {"many:physionet": per-patient deidentify_many spans}."""
    deid = Deidentifier()
    out: dict[str, list] = {}
    for name, texts in text_sets():
        out[name] = [[hashlib.sha256(t.encode()).hexdigest(), _spans(deid.detect(t))] for t in texts]
    root = data_root()
    if (root / "physionet-deid").is_dir():
        from clinforge.data.readers import get_reader

        by_patient: dict[str, list[str]] = {}
        for r in get_reader("physionet_deid").read(root / "physionet-deid"):
            by_patient.setdefault(r.patient_id, []).append(r.text)
        out["many:physionet"] = [[_spans(r.spans) for r in deid.deidentify_many(texts)]
                                 for _, texts in sorted(by_patient.items())[:40]]
    return out


def compare(old: dict[str, list], new: dict[str, list]) -> list[str]:
    """Differences between two snapshots, as readable lines (empty when identical)."""
    problems = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a is None or b is None or len(a) != len(b):
            problems.append(f"{name}: set missing or of different length")
            continue
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                first = next(((p, q) for p, q in zip(x[-1], y[-1], strict=False) if p != q),
                             f"{len(x[-1])} spans before, {len(y[-1])} now")
                problems.append(f"{name}[{i}]: {'text changed; ' if x[0] != y[0] else ''}first difference {first}")
                break
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("record", "compare"))
    parser.add_argument("path", type=Path, help="snapshot file (keep it outside the repository)")
    args = parser.parse_args(argv)
    t0 = time.process_time()
    snap = json.loads(json.dumps(snapshot()))  # round-trip so floats and tuples compare as stored
    counts = {k: (len(v), sum(len(d[1]) for d in v) if k[:5] != "many:" else len(v)) for k, v in snap.items()}
    if args.action == "record":
        args.path.write_text(json.dumps(snap))
        print(f"recorded {counts} in {time.process_time() - t0:.1f}s CPU to {args.path}")
        return
    problems = compare(json.loads(args.path.read_text()), snap)
    if problems:
        print("DIFFERENT:\n" + "\n".join(problems))
        raise SystemExit(1)
    print(f"IDENTICAL: {counts} ({time.process_time() - t0:.1f}s CPU)")


if __name__ == "__main__":
    main()
