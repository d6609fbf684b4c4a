"""The gate of the learned PHI tagger: its rules, its choice on patients the tagger never saw, and that the gate saved
with a model is what ``TransformersNerRecognizer`` (and so ``clinforge data deid --ner-model``) applies. Models are
tiny BERTs trained for real in the test (no download)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinforge.core.errors import ConfigError, DataError
from clinforge.data.deid.ner_gate import GateScorer, NerGate, all_plain, choose_gate
from clinforge.data.deid.ner_gated_training import GATE_SEARCH_FILE, train_gated_deid_ner
from clinforge.data.deid.ner_training import train_deid_ner
from clinforge.data.deid.phrase_score import summarize
from test_deid_ner_training import SRC, _physionet_folder, _records, _tiny_base

TEXT = "PT STABLE. SON QUINN CALLED ON 3/9. SEEN BY DR AND PT STABLE."


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tagger that learned names and dates, saved with a gate that keeps names only."""
    root = tmp_path_factory.mktemp("gate")
    out = root / "model"
    train_deid_ner(_records(36), out, base=_tiny_base(root / "base"), seed=0, epochs=12, lr=3e-3, batch_size=8,
                   freeze_layers=-1, progress=False, gate={"types": ["NAME"], "min_score": {"NAME": 0.5}})
    return out


def test_gate_rules() -> None:
    gate = NerGate(types=("NAME", "LOCATION"), min_score={"NAME": 0.6, "LOCATION": 0.9}, plain_min_score=0.95)
    assert gate.keeps("NAME", 0.7, "Przybylo") and not gate.keeps("NAME", 0.5, "Przybylo")
    assert not gate.keeps("LOCATION", 0.8, "ZYXWOOD") and gate.keeps("LOCATION", 0.92, "ZYXWOOD")
    # a name made of ordinary words needs the higher score; a rare word does not
    assert not gate.keeps("NAME", 0.9, "Stable") and gate.keeps("NAME", 0.96, "Stable")
    assert all_plain("PT STABLE") and not all_plain("SON HANK PRZYBYLO") and all_plain("7/22")
    assert not gate.keeps("DATE", 0.99, "7/22")  # not among the types
    assert NerGate().keeps("DATE", 0.5, "7/22") and not NerGate().keeps("DATE", 0.49, "7/22")
    assert NerGate.from_json(json.loads(json.dumps(gate.to_json()))) == gate
    assert NerGate.from_json({"types": None}) == NerGate()
    with pytest.raises(ConfigError, match="unknown entity types"):
        NerGate(types=("PERSON",))
    with pytest.raises(ConfigError, match="bad gate"):
        NerGate.from_json({"min_score": {"NAME": "high"}})


def test_lexicon_names_need_a_census_name_and_no_eponym_after_it() -> None:
    gate = NerGate(types=("NAME",), lexicon_names=True)
    # the probe tagger's names beyond the rules on unseen dev patients: true ones, then false ones it was sure of
    assert gate.keeps("NAME", 0.96, "reid") and gate.keeps("NAME", 0.94, "don") and gate.keeps("NAME", 0.6, "MARY ANN")
    for shorthand_drug_or_typo in ("HO", "aldactone", "Milrinone", "TRAZADONE", "aline", "brwn", "tomrrow", "paged"):
        assert not gate.keeps("NAME", 0.95, shorthand_drug_or_typo), shorthand_drug_or_typo
    for eponym, after in (("Swan", "-Ganz in place"), ("Passy", " Muir valve"), ("HICKMAN", " CATHETER"),
                          ("Foley", " catheter")):
        assert not gate.keeps("NAME", 0.95, eponym, after) and NerGate(types=("NAME",)).keeps("NAME", 0.95, eponym)
    assert not gate.keeps("NAME", 0.4, "reid")  # the score threshold still applies
    assert NerGate.from_json(json.loads(json.dumps(gate.to_json()))) == gate


def test_small_places_need_a_word_below_state_level() -> None:
    # Safe Harbor removes places smaller than a state; the probes' false places on unseen dev patients were states,
    # continents, nationalities and shorthand, their true ones towns, regions of a state, hospitals and wards
    gate = NerGate(types=("LOCATION",), small_places=True)
    for place in ("Baltimore", "EASTERN SHORE", "QUARTERMAIN", "general", "Boston, MA", "St. Brigid"):
        assert gate.keeps("LOCATION", 0.9, place), place
    for large_or_short in ("CALIFORNIA", "Calif", "EUROPE", "Iranian", "New York", "russian", "gd", "GD", "Q7", "ST",
                           "c'g", "Puerto Rico", "middle east"):
        assert not gate.keeps("LOCATION", 0.9, large_or_short), large_or_short
        assert NerGate(types=("LOCATION",)).keeps("LOCATION", 0.9, large_or_short)
    assert not gate.keeps("LOCATION", 0.9, "Hickman", " catheter")  # an eponym, as for names
    assert gate.keeps("NAME", 0.9, "Georgia") is False and NerGate(small_places=True).keeps("NAME", 0.9, "Georgia")
    assert not gate.keeps("LOCATION", 0.4, "Baltimore")  # the score threshold still applies
    assert NerGate.from_json(json.loads(json.dumps(gate.to_json()))) == gate


@pytest.mark.parametrize(
    ("entity", "option", "gain", "cost"),
    [("LOCATION", "small_places", 0.03, 0.1), ("NAME", "lexicon_names", 0.05, 0.15)],
)
def test_choose_gate_tries_each_condition_only_with_its_type_and_keeps_it_when_it_holds_precision(
    entity: str, option: str, gain: float, cost: float
) -> None:
    def score(g: NerGate) -> tuple[float, float]:  # the type adds recall; only the condition keeps its precision
        on = entity in g.types
        return 0.90 + gain * on, 0.95 - (0.0 if getattr(g, option) else cost) * on

    best, table = choose_gate(score, extra=(), plain=(None,), min_precision=0.9)
    assert best is not None and best.types == (entity,) and getattr(best, option)
    assert any(r["gate"]["types"] == [entity] and not r["gate"][option] for r in table)
    assert not any(r["gate"][option] for r in table if entity not in r["gate"]["types"])


def test_choose_gate_takes_the_best_recall_that_keeps_precision() -> None:
    def score(g: NerGate) -> tuple[float, float]:
        recall = 0.90 + 0.04 * ("NAME" in g.types) + 0.02 * ("LOCATION" in g.types) + 0.01 * ("DATE" in g.types)
        precision = 0.95 - 0.06 * ("LOCATION" in g.types) - 0.2 * (g.min_score.get("NAME", 1.0) < 0.8)
        return recall, precision - 0.02 * (g.plain_min_score is None)

    best, table = choose_gate(score, min_precision=0.85)
    assert best is not None and set(best.types) == {"NAME", "LOCATION", "DATE"}
    assert best.min_score["NAME"] >= 0.8 and best.plain_min_score is not None
    assert all(r["precision"] < 0.85 or r["recall"] <= score(best)[0] for r in table)
    assert table[0]["gate"]["types"] == []  # the rules alone are a candidate
    assert choose_gate(score, min_precision=0.99)[0] is None


def test_a_saved_gate_is_applied_and_settings_override_it(trained: Path) -> None:
    from clinforge.data.deid.ner import TransformersNerRecognizer

    ungated = TransformersNerRecognizer(trained, gate=False)
    raw = {(TEXT[s.start:s.end], s.entity_type) for s in ungated.analyze(TEXT)}
    assert ("QUINN", "NAME") in raw and ("3/9", "DATE") in raw, raw
    assert {t for _, t in raw} <= {"NAME", "DATE"}
    assert all(0.5 <= s.score <= 1.0 for s in ungated.entities_of(TEXT))

    saved = TransformersNerRecognizer(trained)  # deid_training.json carries {"types": ["NAME"], ...}
    assert saved.gate.types == ("NAME",)
    assert {(TEXT[s.start:s.end], s.entity_type) for s in saved.analyze(TEXT)} == {("QUINN", "NAME")}
    dates = TransformersNerRecognizer(trained, types=["DATE"])
    assert {s.entity_type for s in dates.analyze(TEXT)} == {"DATE"}
    assert TransformersNerRecognizer(trained, min_score=1.01).analyze(TEXT) == []


def test_a_saved_lexicon_gate_keeps_its_lexicon_condition(trained: Path, tmp_path: Path) -> None:
    # the 14th held-out look ran without it: the folder's gate lost lexicon_names on loading
    import shutil

    from clinforge.data.deid.ner import TransformersNerRecognizer

    folder = tmp_path / "model"
    shutil.copytree(trained, folder)
    card = json.loads((folder / "deid_training.json").read_text())
    card["gate"] = {**card["gate"], "lexicon_names": True}
    (folder / "deid_training.json").write_text(json.dumps(card))
    for recognizer in (TransformersNerRecognizer(folder), TransformersNerRecognizer(folder, min_score=0.5),
                       TransformersNerRecognizer(folder, types=["NAME", "DATE"])):
        assert recognizer.gate.lexicon_names, recognizer.gate
    text = "PT STABLE. SON QUINN CALLED ON 3/9. SWAN GANZ IN PLACE."
    kept = {text[s.start:s.end] for s in TransformersNerRecognizer(folder).analyze(text)}
    assert "QUINN" in kept and "SWAN" not in kept


def test_gate_scorer_matches_the_engine_on_the_same_notes(trained: Path) -> None:
    """The cached scoring used to choose a gate gives what the engine with the gated tagger gives."""
    from clinforge.data.deid import Deidentifier
    from clinforge.data.deid.ner import TransformersNerRecognizer
    from clinforge.data.deid.phrase_score import score_records

    records = _records(12)
    gate = NerGate(types=("NAME",), min_score={"NAME": 0.6})
    scorer = GateScorer(TransformersNerRecognizer(trained, gate=False), records)
    engine = Deidentifier(recognizers=["patterns", "names", "notes", TransformersNerRecognizer(trained, gate=gate)])
    direct, _, _ = score_records(records, lambda t: [(s.start, s.end, s.entity_type) for s in engine.detect(t)])
    assert scorer.summary(gate) == summarize(direct)
    rules = Deidentifier()
    alone, _, _ = score_records(records, lambda t: [(s.start, s.end, s.entity_type) for s in rules.detect(t)])
    assert scorer.summary(NerGate(types=())) == summarize(alone)


def test_gated_training_chooses_on_other_patients_and_resumes_from_its_probe(tmp_path: Path) -> None:
    base = _tiny_base(tmp_path / "base")
    out = tmp_path / "gated"
    kw = dict(base=base, seed=0, epochs=6, lr=3e-3, batch_size=8, freeze_layers=-1, progress=False)
    card = train_gated_deid_ner(_records(36), out, min_precision=0.5, **kw)
    probe, probe_2 = tmp_path / "gated.gate-probe", tmp_path / "gated.gate-probe-2"
    probe_card = json.loads((probe / "deid_training.json").read_text())
    probe_card_2 = json.loads((probe_2 / "deid_training.json").read_text())
    # each probe trained on one part of the patients and was validated (and scored) on the other: cross-fitting
    assert not set(probe_card["patients"]) & set(probe_card["val_patients"])
    assert set(probe_card["patients"]) | set(probe_card["val_patients"]) == set(card["patients"])
    assert (probe_card_2["patients"], probe_card_2["val_patients"]) == (probe_card["val_patients"],
                                                                        probe_card["patients"])
    for pc in (probe_card, probe_card_2):
        assert 1 <= pc["best_epoch"] <= 6 and len(pc["val_loss_by_epoch"]) >= pc["best_epoch"]
        val = pc["val_loss_by_epoch"]  # early stopping kept the epoch of the lowest validation loss
        assert pc["best_epoch"] == 1 + val.index(min(val)) and len(val) - pc["best_epoch"] <= 2
    assert card["epochs"] == (probe_card["best_epoch"] + probe_card_2["best_epoch"]) // 2 and card["val_patients"] == []
    on = card["gate"]["chosen_on"]
    # the gate was chosen on every patient's notes, each scored by the probe that did not train on it
    assert on["cross_fit"] and on["patients"] == 12 and on["notes"] == 36
    assert on["probe_best_epochs"] == [probe_card["best_epoch"], probe_card_2["best_epoch"]]
    assert on["precision"] >= 0.5 and on["recall"] >= on["rules_recall"]
    search = json.loads((probe / GATE_SEARCH_FILE).read_text())
    assert search["chosen"] == {k: v for k, v in card["gate"].items() if k != "chosen_on"} and len(search["table"]) > 50
    # the bar is the stricter of 0.5 and "at most 1 point under the rules alone on the probe notes" (the default)
    bar = on["precision_bar"]
    assert on["max_precision_loss"] == 0.01 and abs(bar - max(0.5, on["rules_precision"] - 0.01)) < 1e-3
    assert on["precision"] >= bar - 1e-4
    assert not [g for g in search["table"] if g["precision"] >= bar + 1e-4 and g["recall"] > on["recall"] + 1e-4]
    stamps = [(p / "model.safetensors").stat().st_mtime_ns for p in (probe, probe_2)]
    again = train_gated_deid_ner(_records(36), out, min_precision=0.5, overwrite=True, **kw)
    # the finished probes were reused
    assert [(p / "model.safetensors").stat().st_mtime_ns for p in (probe, probe_2)] == stamps
    assert again["gate"] == card["gate"]
    one = train_gated_deid_ner(_records(36), tmp_path / "one", min_precision=0.5, cross_fit=False, **kw)
    assert one["gate"]["chosen_on"]["patients"] == 6 and not one["gate"]["chosen_on"]["cross_fit"]
    assert not (tmp_path / "one.gate-probe-2").exists() and one["epochs"] == probe_card["best_epoch"]
    with pytest.raises(DataError, match="at least 4 annotated patients"):
        train_gated_deid_ner(_records(6), tmp_path / "few", **kw)


def test_cli_choose_gate_saves_it_and_deid_applies_it(tmp_path: Path) -> None:
    folder = _physionet_folder(tmp_path / "corpus", 24)
    out = tmp_path / "model"
    env = {**os.environ, "PYTHONPATH": SRC, "CLINFORGE_NO_PROGRESS": "1"}
    done = subprocess.run([sys.executable, "-m", "clinforge", "data", "deid-train", str(folder), "--out", str(out),
                           "--base", str(_tiny_base(tmp_path / "base")), "--part", "all", "--epochs", "2",
                           "--choose-gate", "--min-precision", "0.5", "--max-precision-loss", "-1"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    said = " ".join(done.stderr.split())  # the console wraps long lines
    assert "gate: types" in said and "notes of 8 patients, each scored by the probe that did not train on it: recall" in said
    card = json.loads((out / "deid_training.json").read_text())
    assert card["gate"]["chosen_on"]["max_precision_loss"] is None and card["gate"]["chosen_on"]["precision_bar"] == 0.5
    assert card["gate"]["chosen_on"]["patients"] == 8 and (tmp_path / "model.gate-probe" / GATE_SEARCH_FILE).is_file()
    assert (tmp_path / "model.gate-probe-2" / "deid_training.json").is_file()


def test_a_prepare_recipe_can_join_the_tagger_to_the_rules(trained: Path, tmp_path: Path) -> None:
    # `clinforge data prepare` users get what `clinforge data deid --ner-model` gives: the deid step's ner_model

    from clinforge.data.deid.ner import TransformersNerRecognizer
    from clinforge.data.prepare import load_prepared, load_recipe, prepare
    from clinforge.data.records import Record
    from clinforge.data.transforms.deid import DeidTransform

    text = "PT STABLE. SON QUINN CALLED ON 3/9. SEEN BY DR AND PT STABLE."
    joined = DeidTransform(mode="mask", ner_model=str(trained))
    assert isinstance(joined.deid.recognizers[-1], TransformersNerRecognizer)
    spans = joined.deid.detect(text)
    tagger_only = TransformersNerRecognizer(trained).analyze(text)
    assert tagger_only and all(any(s.start <= t.start and t.end <= s.end for s in spans) for t in tagger_only)
    out = list(joined.apply([Record(id="n", kind="note", text=text)]))
    assert "QUINN" not in out[0].text
    src = tmp_path / "notes.jsonl"
    src.write_text("".join(json.dumps({"id": f"n{i}", "kind": "note", "text": text, "patient_id": str(i)}) + "\n"
                           for i in range(4)))
    recipe = tmp_path / "prep.yaml"
    recipe.write_text(f"sources:\n  - {{reader: jsonl, path: {src}}}\nsteps:\n"
                      f"  - {{transform: deid, options: {{mode: mask, ner_model: {trained}}}}}\n")
    prepare(load_recipe(recipe), tmp_path / "run", recipe_file=str(recipe), progress=False)
    card = json.loads((tmp_path / "run" / "data_card.json").read_text())
    step = card["steps"][0]["report"]
    assert step["ner_model"] == {"path": str(trained), "gate": NerGate(types=("NAME",), min_score={"NAME": 0.5})
                                 .to_json(), "int8": False}, step
    assert all("QUINN" not in r.text for recs in load_prepared(tmp_path / "run").values() for r in recs)
    inputs = json.loads((tmp_path / "run" / "run.json").read_text())["inputs"]
    assert any(str(trained) in str(k) for k in inputs), inputs  # the tagger's files are hashed in the run record


def test_an_int8_tagger_finds_what_the_float_one_finds_on_every_user_path(trained: Path, tmp_path: Path) -> None:
    """``int8=True`` (``--ner-int8``, the deid step's ``ner_int8``): every linear layer runs in int8, the entities
    stay those of the float model on a text it learned, and each user path refuses it without a tagger."""
    import torch

    from clinforge.data.deid.ner import TransformersNerRecognizer
    from clinforge.data.transforms.deid import DeidTransform

    plain = TransformersNerRecognizer(trained, gate=False)
    small = TransformersNerRecognizer(trained, gate=False, int8=True)
    linear = [m for m in small.model.modules() if type(m).__name__ == "Linear"]
    assert linear and all(type(m).__module__.startswith("torch.ao.nn.quantized") for m in linear)
    assert not any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear for m in small.model.modules())
    float_entities = {(TEXT[s.start:s.end], s.entity_type): s.score for s in plain.entities_of(TEXT)}
    int8_entities = {(TEXT[s.start:s.end], s.entity_type): s.score for s in small.entities_of(TEXT)}
    assert ("QUINN", "NAME") in float_entities and set(int8_entities) == set(float_entities)
    assert all(abs(int8_entities[k] - v) < 0.05 for k, v in float_entities.items())
    with pytest.raises(ConfigError, match="int8 runs the tagger on the CPU"):
        TransformersNerRecognizer(trained, int8=True, device="cuda")

    note = tmp_path / "note.txt"
    note.write_text(TEXT, encoding="utf-8")
    env = {**os.environ, "CLINFORGE_NO_PROGRESS": "1"}
    cli = [sys.executable, "-m", "clinforge", "data", "deid", str(note)]
    refused = subprocess.run([*cli, "--ner-int8"], capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode == 2 and "--ner-int8 needs --ner-model" in refused.stderr, refused.stderr
    used = subprocess.run([*cli, "--ner-model", str(trained), "--ner-int8"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert used.returncode == 0, used.stderr[-2000:]
    assert "QUINN" not in used.stdout and "[NAME]" in used.stdout

    step = DeidTransform(mode="mask", ner_model=str(trained), ner_int8=True)
    assert step.deid.recognizers[-1].int8 and step.report()["ner_model"]["int8"] is True
    with pytest.raises(ConfigError, match="needs ner_model"):
        DeidTransform(mode="mask", ner_int8=True)
    with pytest.raises(ConfigError, match="true or false"):
        DeidTransform(mode="mask", ner_model=str(trained), ner_int8="yes")
