"""Record ids go into a prepared dataset as they came, and exports build them from MRNs, dates and names: the deid
step counts the ids that hold PHI, ``data prepare`` warns, and ``record_ids: pseudonymize`` replaces them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clinforge.data.deid.patient_ids import KEY_ENV, PatientPseudonymizer
from clinforge.data.records import Record
from clinforge.data.transforms import get_transform

RECORDS = [Record(id="4456781_2021-03-14", kind="note", text="Dr. Okafor saw Martha Collins.", patient_id="4456781"),
           Record(id="note-002", kind="note", text="Afebrile overnight.", patient_id="4456781"),
           Record(id="Collins, Martha", kind="note", text="Son Hank at bedside.", patient_id="5550001")]


def test_the_step_counts_ids_with_phi_and_pseudonymizes_them_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "hospital secret")
    keep = get_transform("deid", mode="mask")
    out = list(keep.apply(RECORDS))
    assert [r.id for r in out] == [r.id for r in RECORDS]
    assert keep.report()["record_ids_with_phi"] == 2 and keep.report()["record_ids"] == "kept as in the source"
    hide = get_transform("deid", mode="mask", record_ids="pseudonymize")
    out = list(hide.apply(RECORDS))
    ids = PatientPseudonymizer()
    assert [r.id for r in out] == [ids.pseudonym(r.id, prefix="rec-") for r in RECORDS]
    assert all(r.id.startswith("rec-") for r in out) and len({r.id for r in out}) == 3
    assert out[0].patient_id == out[1].patient_id == ids.pseudonym("4456781")  # patients still group
    assert hide.report()["record_ids"].startswith("pseudonymized: HMAC-SHA256 with $CLINFORGE_DEID_KEY")
    two = get_transform("deid", mode="mask", record_ids="pseudonymize", workers=2)  # ids made in the main process
    assert [r.model_dump() for r in two.apply(RECORDS)] == [r.model_dump() for r in out]
    with pytest.raises(Exception, match="record_ids"):
        get_transform("deid", record_ids="hash")


def test_per_run_record_pseudonyms_block_a_resume_and_keyed_ones_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    step = get_transform("deid", mode="mask", patient_ids="keep", record_ids="pseudonymize")
    assert "record ids are pseudonymised under a random per-run key" in step.resume_blocker()
    monkeypatch.setenv(KEY_ENV, "hospital secret")
    assert get_transform("deid", mode="mask", record_ids="pseudonymize").resume_blocker() is None


def test_data_prepare_warns_about_ids_with_phi_as_a_user_sees_it(tmp_path: Path) -> None:
    src = tmp_path / "notes.jsonl"
    src.write_text("".join(json.dumps(r.model_dump(mode="json")) + "\n" for r in RECORDS), encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    steps = [{"transform": "deid", "options": {"mode": "mask"}}]
    recipe.write_text(yaml.safe_dump({"name": "ids", "sources": [{"reader": "jsonl", "path": str(src)}],
                                      "steps": steps}))
    env = {**os.environ, "COLUMNS": "200"}
    run = subprocess.run([sys.executable, "-m", "clinforge", "--no-progress", "data", "prepare", str(recipe),
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    said = run.stdout + run.stderr
    assert "warning: step 1:deid: 2 record ids hold what looks like PHI" in said and "record_ids: pseudonymize" in said
    assert "4456781" not in said and "Collins" not in said
    steps[0]["options"]["record_ids"] = "pseudonymize"
    recipe.write_text(yaml.safe_dump({"name": "ids", "sources": [{"reader": "jsonl", "path": str(src)}],
                                      "steps": steps}))
    run = subprocess.run([sys.executable, "-m", "clinforge", "--no-progress", "data", "prepare", str(recipe),
                          "--out", str(tmp_path / "run2")], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "warning" not in run.stdout + run.stderr
    from clinforge.data.prepare import load_prepared

    assert all(r.id.startswith("rec-") for r in load_prepared(tmp_path / "run2")["all"])


def test_visit_and_billing_numbers_in_meta_are_identifiers_even_as_numbers() -> None:
    rec = Record(id="n1", kind="note", text="Seen.", meta={
        "encounter_id": "E-998877", "hadm_id": 123456, "csn": "55512", "mrn": 4456781, "accession_number": "A1-9",
        "visit_date": "2021-03-14", "score": 5, "section": "HPI", "final": True, "fine_tuned": "yes"})
    step = get_transform("deid", mode="mask")
    meta = next(iter(step.apply([rec]))).meta
    assert meta == {"encounter_id": "[ID]", "hadm_id": "[ID]", "csn": "[ID]", "mrn": "[MRN]",
                    "accession_number": "[ID]", "visit_date": "[DATE]", "score": 5, "section": "HPI", "final": True,
                    "fine_tuned": "yes"}
    assert step.report()["phi_by_type"]["ID"] == 4


def test_the_data_card_does_not_list_file_names_that_hold_phi(tmp_path: Path) -> None:
    from clinforge.data.prepare import load_recipe, prepare

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "4456781_2021-03-14.txt").write_text("Dr. Okafor saw Martha Collins.", encoding="utf-8")
    (folder / "note_002.txt").write_text("Afebrile overnight.", encoding="utf-8")
    (folder / "Collins_Martha.txt").write_text("", encoding="utf-8")  # an empty file: an error example naming it
    recipe = load_recipe(data={"name": "f", "sources": [{"reader": "text", "path": str(folder), "on_error": "skip"}],
                               "steps": [{"transform": "deid", "options": {"mode": "mask"}}]})
    card = prepare(recipe, tmp_path / "run", progress=False)
    written = (tmp_path / "run" / "data_card.json").read_text() + (tmp_path / "run" / "data_card.md").read_text()
    assert "4456781" not in written and "Collins" not in written
    files = card["sources"]["text:export"]["files"]
    assert files["count"] == 3 and "2 file names hold what looks like PHI" in files["not_listed"]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "note_001.txt").write_text("Afebrile overnight.", encoding="utf-8")
    card = prepare(load_recipe(data={"sources": [{"reader": "text", "path": str(plain)}]}), tmp_path / "run2",
                   progress=False)
    assert card["sources"]["text:plain"]["files"] == [str(plain / "note_001.txt")]  # harmless names stay listed


@pytest.mark.parametrize(("name", "types"), [
    ("4456781_2021-03-14", {"DATE"}), ("mrn_4456781", {"MRN"}), ("encounter_99812345", {"ID"}),
    ("smith_john", {"NAME"}), ("martha.collins", {"NAME"}), ("dr.okafor.note", {"NAME"}), ("2021.03.14", {"DATE"}),
    ("note_000123", set()), ("report.final", set()), ("ct.chest", set()), ("v1.2", set())])
def test_names_built_from_identifiers_are_found_and_plain_ones_are_not(name: str, types: set[str]) -> None:
    from clinforge.data.deid.phi_in_names import phi_in_name

    assert set(phi_in_name(name)) == types
