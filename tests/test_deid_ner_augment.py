"""Surrogate copies of annotated notes for the PHI tagger (``ner_augment``): spans move with the text, names and places
change, everything else stays, the copies are seeded, and training with them records it."""

from __future__ import annotations

import json
from pathlib import Path

from clinforge.data.deid.ner_augment import surrogate_copies
from clinforge.data.records import Record


def _note(text: str, phi: list[tuple[str, str]], pid: str = "1") -> Record:
    gold, pos = [], 0
    for phi_type, phrase in phi:
        start = text.index(phrase, pos)
        gold.append({"type": phi_type, "start": start, "end": start + len(phrase), "phrase": phrase})
        pos = start + len(phrase)
    return Record(id=f"n{pid}", kind="note", text=text, patient_id=pid, meta={"note": 1, "phi": gold})


def test_copies_replace_names_and_places_and_keep_the_rest() -> None:
    note = _note("SON DAVID CALLED 7/22. TO CALVERT HOSPITAL. DR healey AWARE. DAVID TO VISIT. AT GH.",
                 [("RelativeProxyName", "DAVID"), ("Date", "7/22"), ("Location", "CALVERT HOSPITAL"),
                  ("HCPName", "healey"), ("RelativeProxyName", "DAVID"), ("Location", "GH")])
    first, second = surrogate_copies([note], 2, seed=0)
    for copy in (first, second):
        spans = copy.meta["phi"]
        assert [g["type"] for g in spans] == [g["type"] for g in note.meta["phi"]]
        assert all(copy.text[g["start"]:g["end"]] == g["phrase"] for g in spans)
        by_type = [g["phrase"] for g in spans]
        assert by_type[1] == "7/22"  # dates stay
        assert by_type[0] != "DAVID" and by_type[0].isupper() and by_type[0] == by_type[4]  # one surrogate a note
        assert by_type[2].endswith(" HOSPITAL") and by_type[2] != "CALVERT HOSPITAL"  # the facility word stays
        assert by_type[3].islower() and by_type[3] != "healey"  # letter case follows the note
        assert len(by_type[5]) == 2 and by_type[5].isupper()  # an abbreviation: other capitals
        assert copy.text.startswith("SON ") and " CALLED 7/22. TO " in copy.text and copy.id != note.id
    assert first.text != second.text
    assert [c.text for c in surrogate_copies([note], 2, seed=0)] == [first.text, second.text]  # seeded
    assert surrogate_copies([note], 1, seed=1)[0].text != first.text


def test_notes_with_overlapping_or_no_gold_are_not_copied() -> None:
    overlapping = Record(id="o", kind="note", text="DR JOHN SMITH", patient_id="1", meta={"note": 1, "phi": [
        {"type": "HCPName", "start": 3, "end": 13, "phrase": "JOHN SMITH"},
        {"type": "HCPName", "start": 8, "end": 13, "phrase": "SMITH"}]})
    plain = Record(id="p", kind="note", text="PT STABLE", patient_id="1", meta={"note": 1, "phi": []})
    assert surrogate_copies([overlapping, plain], 3) == []


def test_copies_of_real_notes_keep_every_span_on_its_text(data_root: Path) -> None:
    from clinforge.data.deid.ner_training import training_records

    notes = [r for r in training_records(data_root / "physionet-deid", "dev") if r.meta["phi"]][:120]
    copies = surrogate_copies(notes, 1, seed=0)
    assert len(copies) >= 100
    changed = 0
    for copy in copies:
        for g in copy.meta["phi"]:
            assert copy.text[g["start"]:g["end"]] == g["phrase"]
        changed += sum(g["phrase"] != o["phrase"] for g, o in zip(
            copy.meta["phi"], next(n for n in notes if n.id == copy.id.split("#")[0]).meta["phi"], strict=True))
    assert changed > 100


def test_training_with_copies_records_them_and_probes_are_not_reused_across_settings(tmp_path: Path) -> None:
    from clinforge.data.deid.ner_gated_training import _probe_matches
    from clinforge.data.deid.ner_training import train_deid_ner
    from test_deid_ner_training import _records, _tiny_base

    base = _tiny_base(tmp_path / "base")
    kw = dict(base=base, seed=0, epochs=1, lr=3e-3, batch_size=8, freeze_layers=-1, progress=False)
    plain = train_deid_ner(_records(12), tmp_path / "plain", **kw)
    more = train_deid_ner(_records(12), tmp_path / "aug", augment=2, **kw)
    assert plain["augment"] == 0 and more["augment"] == 2
    assert 2.5 * plain["windows_with_phi"] <= more["windows_with_phi"] <= 3.5 * plain["windows_with_phi"]
    assert more["notes"] == plain["notes"] and more["patients"] == plain["patients"]  # the card counts real notes
    card = json.loads((tmp_path / "aug" / "deid_training.json").read_text())
    ids = set(card["patients"])
    settings = {"epochs": 1, "first_piece": True, "augment": 2}
    assert _probe_matches(tmp_path / "aug", ids, set(), settings)
    assert not _probe_matches(tmp_path / "aug", ids, set(), {**settings, "augment": 0})
    assert _probe_matches(tmp_path / "plain", ids, set(), {**settings, "augment": 0})


def test_zero_copies_is_nothing() -> None:
    assert surrogate_copies([_note("DR SMITH", [("HCPName", "SMITH")])], 0) == []
