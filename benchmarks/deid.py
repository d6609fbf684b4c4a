"""De-identification benchmark: clinforge beside presidio-analyzer, on two sets, side by side.

Sets
  presidio   the Presidio synthetic PII set (``$CLINFORGE_DATA/presidio-synth-pii/synth_dataset_v2.json``), split
             by a seeded shuffle (seed 0) into a DEV half (used while writing the recognizers) and a HELD-OUT half
             (never looked at), reported separately and together. Labels are mapped to Safe Harbor groups by
             ``clinforge.data.deid.evaluate.presidio_gold_group`` (organisations, nationalities, titles,
             countries/US states, bare years, weekdays and ages <= 89 are not PHI and are not scored).
  clinical   synthetic clinical notes with gold spans from ``clinforge.data.deid.synthetic.generate_notes``
             (seed 20251125, a seed never used during development), 20% of the names from a syllable generator
             that is in no lexicon ("novel" names: recall of the context rules alone).

  physionet  real ICU nursing notes of the PhysioNet deid gold standard (``$CLINFORGE_DATA/physionet-deid``, the
             ``physionet_deid`` reader), split BY PATIENT with ``split_patients(seed=0)`` into a DEV part (its errors
             were read while writing the ``notes`` recognizer) and a HELD-OUT part (measured only), scored with
             ``clinforge.data.deid.phrase_score`` (the issue-7 definitions: a gold instance is removed when the
             masked output holds fewer word-bounded occurrences of its phrase, by at least its number of gold
             instances in the note; DateYear not scored; precision = predicted spans touching a gold PHI; Wilson
             95% intervals). "unseen" = held-out gold phrases that occur in no dev gold phrase.

Systems
  clinforge  ``Deidentifier(mode="mask")`` with its default recognizers (patterns + names), no model.
  presidio   ``AnalyzerEngine`` with every predefined recognizer over a blank spaCy English pipeline
             (``spacy.blank("en")``): its strongest setting without a downloaded model. Its spaCy NER
             recognizer finds nothing without a trained model, so presidio finds no names or places here.

Matching (see ``clinforge.data.deid.evaluate``): by group (name, date, age, location, contact, id); a gold span is
found when predictions of its group cover >= 50% of its non-space characters; a prediction is correct when >= 50%
of it lies on gold of its group. recall / precision are micro-averaged over spans with a Wilson 95% interval;
F2 = 5PR/(4P+R). Speed is UTF-8 megabytes of input per CPU second (``time.process_time``, one process, one
thread), analysis of each document separately, as a pipeline would call it.

The last line is ``RESULT recall=R precision=P mb_s=M presidio_recall=R2 presidio_mb_s=M2 real_recall=R3
real_precision=P3 real_unseen_recall=R4 real_mb_s=M3 real_presidio_recall=R5 real_presidio_precision=P5`` where
recall and precision are clinforge's micro figures over the TARGET groups (name, date, id) on the Presidio and
synthetic clinical sets together, presidio_recall the same for presidio, mb_s the speed over those sets, and the
real_* figures clinforge's (and presidio's) on the HELD-OUT PhysioNet notes.

With ``--ner-model DIR`` (a model from ``clinforge data deid-train --part dev``) a third system, ``clinforge+ner``
(the rules plus that model's entities that pass the gate saved with it, their union; ``--ner-ungated`` adds the
rules plus every entity of score >= 0.5 as a fourth), is scored on the held-out notes only (the benchmark refuses a model whose
``deid_training.json`` lists a held-out patient), and the RESULT line adds ``real_ner_recall``,
``real_ner_precision``, ``real_ner_unseen_recall`` and ``real_ner_mb_s``.

Run: ``python benchmarks/deid.py [--notes 300] [--limit N] [--ner-model DIR]`` (``--only-real``: the PhysioNet
notes alone)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from clinforge.core.intervals import wilson  # noqa: E402
from clinforge.core.paths import data_root  # noqa: E402
from clinforge.data.deid import Deidentifier  # noqa: E402
from clinforge.data.deid.evaluate import (  # noqa: E402
    GROUP_OF_TYPE,
    GROUPS,
    PRESIDIO_GROUP,
    GoldSpan,
    Tally,
    load_presidio_synth,
    score_document,
    split_halves,
)
from clinforge.data.deid.phrase_score import (  # noqa: E402
    PHI_GROUPS,
    score_records,
    split_patients,
    summarize,
    unseen_phrases,
)
from clinforge.data.deid.synthetic import generate_notes  # noqa: E402

TARGET_GROUPS = ("name", "date", "id")
NOTES_SEED = 20251125


def load_presidio(path: Path, limit: int | None) -> dict[str, list[tuple[str, list[GoldSpan]]]]:
    dev, held = split_halves(load_presidio_synth(path), seed=0)
    if limit:
        dev, held = dev[:limit], held[:limit]
    return {"presidio-heldout": held, "presidio-dev": dev}


def load_clinical(n: int) -> tuple[list[tuple[str, list[GoldSpan]]], list[list[tuple[int, int]]], list[bool]]:
    notes = generate_notes(n, seed=NOTES_SEED)
    docs, protected, novel = [], [], []
    for note in notes:
        gold = [GoldSpan(s["start"], s["end"], GROUP_OF_TYPE[s["entity_type"]],
                         "NAME(novel)" if s["novel"] else s["entity_type"]) for s in note.spans]
        docs.append((note.text, gold))
        protected.append(note.protected)
    return docs, protected, novel


class ClinforgeSystem:
    name = "clinforge"

    def __init__(self) -> None:
        self.deid = Deidentifier(mode="mask")

    def predict(self, text: str) -> list[tuple[int, int, str | None]]:
        return [(s.start, s.end, GROUP_OF_TYPE.get(s.entity_type)) for s in self.deid.detect(text)]

    def predict_many(self, texts: list[str]) -> list[list[tuple[int, int, str | None]]]:
        return [[(s.start, s.end, GROUP_OF_TYPE.get(s.entity_type)) for s in r.spans]
                for r in self.deid.deidentify_many(texts)]


class ClinforgeNerSystem(ClinforgeSystem):
    """The rules plus a local token-classification model (``clinforge data deid-train``): their union."""

    name = "clinforge+ner"

    def __init__(self, model: Path, gated: bool = True, int8: bool = False) -> None:
        from clinforge.data.deid.ner import TransformersNerRecognizer
        from clinforge.data.deid.recognizers import DEFAULT_RECOGNIZERS

        self.model = model
        ner = TransformersNerRecognizer(model, gate=gated, int8=int8)
        if not gated:
            self.name = "clinforge+ner(ungated)"
        if int8:
            self.name += "(int8)"
        print(f"{self.name}: {model}, gate {ner.gate.to_json()}")
        self.deid = Deidentifier(mode="mask", recognizers=[*DEFAULT_RECOGNIZERS, ner])

    def trained_on(self) -> set[str]:
        """The patients the model saw (its ``deid_training.json``); empty when it has no card."""
        import json

        card = self.model / "deid_training.json"
        return set(json.loads(card.read_text())["patients"]) if card.is_file() else set()


class PresidioSystem:
    name = "presidio"

    def __init__(self) -> None:
        import spacy
        import tldextract
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine

        # tldextract would try to download the public-suffix list; use its bundled snapshot (no network here).
        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())

        class BlankSpacyNlpEngine(SpacyNlpEngine):
            """presidio's spaCy engine over ``spacy.blank('en')`` (tokenizer only: no model download)."""

            def load(self) -> None:
                self.nlp = {"en": spacy.blank("en")}

        engine = BlankSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank:en"}])
        engine.load()
        self.analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
        self.unknown: set[str] = set()

    def predict_many(self, texts: list[str]) -> list[list[tuple[int, int, str | None]]]:
        return [self.predict(t) for t in texts]

    def predict(self, text: str) -> list[tuple[int, int, str | None]]:
        out = []
        for r in self.analyzer.analyze(text, language="en"):
            if r.entity_type not in PRESIDIO_GROUP:
                self.unknown.add(r.entity_type)
            out.append((r.start, r.end, PRESIDIO_GROUP.get(r.entity_type, "id")))
        return out


def run(system, docs, protected=None) -> dict:
    tallies: dict[str, Tally] = {}
    by_label: dict[str, Tally] = {}
    nbytes = 0
    cpu = 0.0
    broken = total_protected = 0
    for i, (text, gold) in enumerate(docs):
        nbytes += len(text.encode("utf-8"))
        t0 = time.process_time()
        pred = system.predict(text)
        cpu += time.process_time() - t0
        score_document(text, gold, pred, tallies)
        for g in gold:
            if g.group is not None:
                score_document(text, [g], pred, by_label.setdefault(g.label, {}))
        if protected is not None:
            for a, b in protected[i]:
                total_protected += 1
                broken += any(s < b and a < e for s, e, _ in pred)
    out = {"tallies": tallies, "by_label": {k: v.get("all", Tally()) for k, v in by_label.items()},
           "mb_s": nbytes / cpu / 1e6 if cpu else float("nan"), "bytes": nbytes, "cpu_s": cpu}
    if protected is not None:
        out["protected"] = (total_protected - broken, total_protected)
    return out


def aci_name_removal(systems, root: Path) -> None:
    """ACI-Bench dialogues and notes (all splits): the metadata names each encounter's patient and doctor; report
    the share of their occurrences (whole word, any case) left inside predicted spans. No name list is given to
    the systems; clinforge cleans each record's fields together (as the ``deid`` transform does)."""
    import re

    from clinforge.data.load import load_records

    folder = root / "aci-bench" / "challenge_data"
    files = sorted(p for p in folder.glob("*.csv") if not p.stem.endswith("_metadata"))
    records = [r for f in files for r in load_records(f, "aci_bench")]
    print(f"\n=== ACI-Bench encounter names ({len(records)} encounters, {len(files)} files) ===")
    for system in systems:
        found = total = 0
        for r in records:
            m = r.meta["metadata"]
            tokens = {t.lower() for key in ("patient_firstname", "patient_familyname", "doctor_name")
                      for t in re.findall(r"[^\W\d_]{3,}", m.get(key) or "")}
            texts = r.texts()
            spans = system.predict_many(texts)
            for text, pred in zip(texts, spans, strict=True):
                for t in tokens:
                    for occ in re.finditer(r"\b" + re.escape(t) + r"\b", text, re.IGNORECASE):
                        total += 1
                        found += any(a <= occ.start() and occ.end() <= b for a, b, _ in pred)
        lo, hi = wilson(found, total)
        print(f"{system.name}: name occurrences removed {found}/{total} = {found / total:.3f} [{lo:.3f}, {hi:.3f}]")


def physionet_notes(systems, root: Path) -> dict[str, dict]:
    """The PhysioNet deid notes: each system on the dev and held-out patients; returns the held-out summaries."""
    from clinforge.data.readers import get_reader

    records = list(get_reader("physionet_deid").read(root / "physionet-deid"))
    dev_ids, held_ids = split_patients([r.patient_id for r in records], seed=0)
    for system in systems:
        leaked = system.trained_on() & held_ids if hasattr(system, "trained_on") else set()
        if leaked:
            raise SystemExit(f"{system.name}: the model was trained on {len(leaked)} held-out patients; "
                             "train it with --part dev")
    parts = {"dev": [r for r in records if r.patient_id in dev_ids],
             "held-out": [r for r in records if r.patient_id in held_ids]}
    unseen = unseen_phrases(parts["held-out"], parts["dev"])
    held_out: dict[str, dict] = {}
    for part, recs in parts.items():
        print(f"\n=== PhysioNet deid real notes, {part} ({len(recs)} notes, "
              f"{len({r.patient_id for r in recs})} patients) ===")
        for system in systems:
            if hasattr(system, "trained_on") and system.trained_on() & {r.patient_id for r in recs}:
                print(f"-- {system.name}: not scored here (its model was trained on these patients)")
                continue

            def predict(text: str, system=system) -> list[tuple[int, int, str]]:
                return [(a, b, group or "OTHER") for a, b, group in system.predict(text)]

            scores, cpu, nbytes = score_records(recs, predict)
            summary = summarize(scores)
            mb_s = nbytes / cpu / 1e6 if cpu else float("nan")
            print(f"-- {system.name} ({mb_s:.3f} MB/s)")
            for key in ("recall_all", *(f"recall_{g}" for g in PHI_GROUPS), "precision_all"):
                if key in summary:
                    print(f"   {key:18s} {summary[key]}")
            by_type = [k for k in summary if k.startswith("precision_") and k != "precision_all"]
            print("   precision by predicted group: " + "; ".join(f"{k[10:]} {summary[k]}" for k in by_type))
            print(f"   {'words_kept':18s} {summary['words_kept']}")
            if part == "held-out":
                novel = summarize(scores, keep_gold=unseen)
                print(f"   recall on phrases unseen in dev: {novel['recall_all']}")
                held_out[system.name] = {"summary": summary, "unseen": novel, "mb_s": mb_s}
    return held_out


def fmt(x: float) -> str:
    return "  -  " if x != x else f"{x:.3f}"


def target(tallies: dict[str, Tally]) -> Tally:
    t = Tally()
    for g in TARGET_GROUPS:
        v = tallies.get(g)
        if v:
            t.gold += v.gold
            t.found += v.found
            t.pred += v.pred
            t.correct += v.correct
    return t


def print_set(name: str, results: dict[str, dict]) -> None:
    print(f"\n=== {name} ===")
    systems = list(results)
    header = f"{'group':10s} {'gold':>5s} " + " ".join(f"{s + ' R':>13s} {'P':>6s} {'F2':>6s}" for s in systems)
    print(header)
    for group in (*GROUPS, "target", "all"):
        row = []
        gold = None
        for s in systems:
            tallies = results[s]["tallies"]
            t = target(tallies) if group == "target" else tallies.get(group, Tally())
            gold = t.gold if gold is None else gold
            row.append(f"{fmt(t.recall):>13s} {fmt(t.precision):>6s} {fmt(t.f2):>6s}")
        if gold:
            print(f"{group:10s} {gold:5d} " + " ".join(row))
    first = results[systems[0]]
    t = target(first["tallies"])
    lo, hi = wilson(t.found, t.gold)
    print(f"{systems[0]} target recall 95% CI [{lo:.3f}, {hi:.3f}]")
    print("speed MB/s: " + ", ".join(f"{s} {results[s]['mb_s']:.3f}" for s in systems))
    if "protected" in first:
        print("clinical terms left intact: " + ", ".join(
            f"{s} {results[s]['protected'][0]}/{results[s]['protected'][1]}" for s in systems))
    labels = sorted(first["by_label"])
    print("recall by gold label: " + "; ".join(
        f"{lab} {first['by_label'][lab].found}/{first['by_label'][lab].gold}"
        + "".join(f" ({s} {results[s]['by_label'].get(lab, Tally()).found})" for s in systems[1:])
        for lab in labels))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=300, help="synthetic clinical notes (default 300)")
    parser.add_argument("--limit", type=int, default=None, help="documents per Presidio half (default all)")
    parser.add_argument("--only-real", action="store_true", help="only the PhysioNet real notes")
    parser.add_argument("--ner-model", type=Path, default=None,
                        help="also score the rules + this local model (clinforge data deid-train --part dev)")
    parser.add_argument("--ner-ungated", action="store_true",
                        help="with --ner-model: also the rules + every entity of the model at score >= 0.5 (no gate)")
    parser.add_argument("--ner-int8", action="store_true",
                        help="with --ner-model: also the rules + that model with int8 linear layers (faster, not exact)")
    args = parser.parse_args(argv)
    extra = [ClinforgeNerSystem(args.ner_model)] if args.ner_model else []
    if args.ner_model and args.ner_int8:
        extra.append(ClinforgeNerSystem(args.ner_model, int8=True))
    if args.ner_model and args.ner_ungated:
        extra.append(ClinforgeNerSystem(args.ner_model, gated=False))
    if args.only_real:
        systems = [ClinforgeSystem(), PresidioSystem(), *extra]
        for s in systems:
            s.predict("Warm up: Dr. Smith saw Jane Doe on 01/02/2023 at 555-123-4567.")
        real = physionet_notes(systems, data_root())
        print(real_result(real))
        return

    path = data_root() / "presidio-synth-pii" / "synth_dataset_v2.json"
    if not path.is_file():
        raise SystemExit(f"Presidio synthetic set not found at {path}; set CLINFORGE_DATA")
    sets = load_presidio(path, args.limit)
    clinical, protected, _ = load_clinical(args.notes)
    systems = [ClinforgeSystem(), PresidioSystem(), *extra]
    for s in systems:  # warm-up: lexicons, regex compilation, spaCy
        s.predict("Warm up: Dr. Smith saw Jane Doe on 01/02/2023 at 555-123-4567.")

    combined: dict[str, dict] = {s.name: {"tallies": {}, "bytes": 0, "cpu_s": 0.0} for s in systems}
    for set_name, docs in [*sets.items(), ("clinical", clinical)]:
        results = {s.name: run(s, docs, protected if set_name == "clinical" else None) for s in systems}
        print_set(f"{set_name} ({len(docs)} documents)", results)
        for s in systems:
            c = combined[s.name]
            for group, t in results[s.name]["tallies"].items():
                acc = c["tallies"].setdefault(group, Tally())
                acc.gold += t.gold
                acc.found += t.found
                acc.pred += t.pred
                acc.correct += t.correct
            c["bytes"] += results[s.name]["bytes"]
            c["cpu_s"] += results[s.name]["cpu_s"]
    for c in combined.values():
        c["mb_s"] = c["bytes"] / c["cpu_s"] / 1e6
        c["by_label"] = {}
    print_set("all sets together", combined)
    import os

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min); "
          "MB/s is CPU time of this process, yet it falls when the machine is oversubscribed")
    if (data_root() / "aci-bench").is_dir():
        aci_name_removal(systems, data_root())
    real = physionet_notes(systems, data_root()) if (data_root() / "physionet-deid").is_dir() else {}
    if systems[1].unknown:
        print(f"presidio types scored as id: {sorted(systems[1].unknown)}")
    ours, theirs = target(combined["clinforge"]["tallies"]), target(combined["presidio"]["tallies"])
    print(f"RESULT recall={ours.recall:.4f} precision={ours.precision:.4f} mb_s={combined['clinforge']['mb_s']:.3f} "
          f"presidio_recall={theirs.recall:.4f} presidio_mb_s={combined['presidio']['mb_s']:.3f}"
          + (" " + real_result(real).removeprefix("RESULT ") if real else ""))


def real_result(real: dict[str, dict]) -> str:
    """The RESULT fields of the held-out PhysioNet notes."""
    ours, theirs = real["clinforge"], real["presidio"]
    return (f"RESULT real_recall={ours['summary']['recall_all'].value:.4f} "
            f"real_precision={ours['summary']['precision_all'].value:.4f} "
            f"real_unseen_recall={ours['unseen']['recall_all'].value:.4f} real_mb_s={ours['mb_s']:.3f} "
            f"real_presidio_recall={theirs['summary']['recall_all'].value:.4f} "
            f"real_presidio_precision={theirs['summary']['precision_all'].value:.4f}"
            + ("" if "clinforge+ner" not in real else
               f" real_ner_recall={real['clinforge+ner']['summary']['recall_all'].value:.4f}"
               f" real_ner_precision={real['clinforge+ner']['summary']['precision_all'].value:.4f}"
               f" real_ner_unseen_recall={real['clinforge+ner']['unseen']['recall_all'].value:.4f}"
               f" real_ner_mb_s={real['clinforge+ner']['mb_s']:.4f}"))


if __name__ == "__main__":
    main()
