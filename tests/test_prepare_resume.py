"""A stopped ``clinforge data prepare`` keeps what its first (deid) step finished and the same command continues:
the dataset and the data card's counts are those of an uninterrupted run (data/prepare_resume.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clinforge.core.errors import DataError, OutputExistsError
from clinforge.core.interrupts import Interrupted, take_notes
from clinforge.data.deid import Deidentifier
from clinforge.data.deid.patient_ids import KEY_ENV
from clinforge.data.prepare import load_prepared, load_recipe, prepare
from clinforge.data.transforms import TRANSFORMS
from clinforge.data.transforms.base import Transform
from test_prepare import sample_recipe

SPILL = ".prefix.jsonl.partial"


def _stop_at(monkeypatch: pytest.MonkeyPatch, call: int, signum: int = signal.SIGINT) -> None:
    """Make the ``call``-th de-identification of a record raise what a signal would."""
    real = Deidentifier.detect_many
    seen = [0]

    def detect_many(self, *args, **kwargs):
        seen[0] += 1
        if seen[0] == call:
            raise Interrupted(signum)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Deidentifier, "detect_many", detect_many)


def _recipe(folder: Path, edit=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = sample_recipe(folder, drop=())
    if edit is not None:
        data = yaml.safe_load(path.read_text())
        edit(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _result(run: Path) -> tuple[dict, dict]:
    """The records by split and the data card without its creation time."""
    records = {name: [r.model_dump() for r in recs] for name, recs in load_prepared(run).items()}
    card = json.loads((run / "data_card.json").read_text())
    card.pop("created")
    return records, card


def _run(recipe: Path, out: Path, **kwargs) -> dict:
    return prepare(load_recipe(recipe), out, recipe_file=str(recipe), progress=False, **kwargs)


def _stopped(monkeypatch: pytest.MonkeyPatch, recipe: Path, out: Path, call: int, **kwargs) -> list[str]:
    """Run the recipe, stopped at the ``call``-th de-identification as by Ctrl-C; returns the interruption notes
    (only this run's: the notes are process-wide, and an earlier test in this worker may have left some)."""
    take_notes()
    with monkeypatch.context() as m:
        _stop_at(m, call)
        with pytest.raises(KeyboardInterrupt):
            _run(recipe, out, **kwargs)
    return take_notes()[0]


@pytest.mark.parametrize("call", [2, 23])  # early (a few notes done) and later
def test_a_stopped_run_resumes_to_the_dataset_and_card_of_an_uninterrupted_one(tmp_path: Path, call: int,
                                                                                 monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a site key")  # keyed pseudonyms: the run can resume
    recipe = _recipe(tmp_path / "r")
    _run(recipe, tmp_path / "ref")
    out = tmp_path / "run"
    notes = _stopped(monkeypatch, recipe, out, call)
    assert notes and f"{call - 1} records through step 1:deid are kept" in notes[0]
    state = json.loads((out / SPILL / "state.json").read_text())
    assert state["progress"]["records"] == call - 1
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"

    _run(recipe, out)  # the same call again continues
    assert _result(out) == _result(tmp_path / "ref")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "ref").iterdir())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_after_records"] == call - 1
    card = json.loads((out / "data_card.json").read_text())
    deid = card["steps"][0]
    assert deid["kinds_processed"] and deid["passed_through"] > 0 and deid["report"]["phi_total"] > 20


def test_a_second_stop_after_a_resume_keeps_both_parts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a site key")
    recipe = _recipe(tmp_path / "r")
    _run(recipe, tmp_path / "ref")
    out = tmp_path / "run"
    for call in (5, 9):  # 4 records, then 8 more
        _stopped(monkeypatch, recipe, out, call)
    assert json.loads((out / SPILL / "state.json").read_text())["progress"]["records"] == 12
    _run(recipe, out)
    assert _result(out) == _result(tmp_path / "ref")


def test_other_input_or_first_step_options_are_refused_until_overwrite(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a site key")
    recipe = _recipe(tmp_path / "r")
    out = tmp_path / "run"
    _stopped(monkeypatch, recipe, out, 10)
    redact = _recipe(tmp_path / "r2", lambda d: d["steps"][0]["options"].update(mode="redact"))
    with pytest.raises(OutputExistsError, match=r"differing: steps\)"):
        _run(redact, out)
    monkeypatch.setenv(KEY_ENV, "another key")  # other pseudonyms: the two parts would not link a patient
    with pytest.raises(OutputExistsError, match=r"differing: step_inputs\)"):
        _run(recipe, out)
    monkeypatch.setenv(KEY_ENV, "a site key")
    assert (out / SPILL / "state.json").exists()  # refusals leave the saved run as it was
    card = _run(redact, out, overwrite=True)  # discards it and starts again
    assert card["steps"][0]["report"]["mode"] == "redact"
    assert json.loads((out / "summary.json").read_text())["resumed_after_records"] == 0
    assert not (out / SPILL).exists()


class _FailsOnce(Transform):
    """A later step that fails on its 30th record while a flag file exists (a bug, fixed by removing the file)."""

    name = "fails_once"

    def apply(self, records):
        for i, rec in enumerate(records):
            if i == 29 and Path(self.options["flag"]).exists():
                raise DataError("a later step failed", record=rec.id)
            yield rec


def test_a_failed_later_step_keeps_the_first_steps_work_and_a_corrected_run_resumes(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a site key")
    TRANSFORMS.register("fails_once", _FailsOnce, override=True)
    flag = tmp_path / "flag"
    flag.write_text("")
    recipe = _recipe(tmp_path / "r", lambda d: d["steps"].insert(1, {"transform": "fails_once",
                                                                      "options": {"flag": str(flag)}}))
    plain = _recipe(tmp_path / "p")
    _run(plain, tmp_path / "ref")
    out = tmp_path / "run"
    with pytest.raises(DataError, match="a later step failed"):
        _run(recipe, out)
    kept = json.loads((out / SPILL / "state.json").read_text())["progress"]["records"]
    assert kept >= 30
    flag.unlink()
    _run(recipe, out)  # later steps are not part of the fingerprint: the deid output is replayed
    assert json.loads((out / "summary.json").read_text())["resumed_after_records"] == kept
    records, card = _result(out)
    ref_records, ref_card = _result(tmp_path / "ref")
    assert records == ref_records
    assert card["steps"][0] == ref_card["steps"][0]


@pytest.mark.parametrize("setting", ["surrogate", "per-run key"])
def test_runs_under_a_per_run_key_save_nothing(tmp_path: Path, monkeypatch, setting: str) -> None:
    # a random per-run key (surrogates or patient pseudonyms) is never stored: a resumed run could not continue it
    monkeypatch.delenv(KEY_ENV, raising=False)
    edit = (lambda d: d["steps"][0]["options"].update(mode="surrogate", patient_ids="keep")) \
        if setting == "surrogate" else None
    recipe = _recipe(tmp_path / "r", edit)
    out = tmp_path / "run"
    notes = _stopped(monkeypatch, recipe, out, 10)
    assert "progress is not saved" in notes[0] and KEY_ENV in notes[0]
    assert ("surrogates are drawn under a random per-run key" in notes[0]) == (setting == "surrogate")
    assert not (out / SPILL).exists()
    card = _run(recipe, out)  # the unfinished run record is replaced, as before
    assert card["records_out"] > 50
    assert json.loads((out / "summary.json").read_text())["resumed_after_records"] == 0


def test_a_stopped_overwrite_run_keeps_the_old_dataset_and_resumes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a site key")
    old = _recipe(tmp_path / "old", lambda d: d["steps"].pop())  # without chat_format
    new = _recipe(tmp_path / "new")
    out = tmp_path / "run"
    _run(old, out)
    before = _result(out)
    _run(new, tmp_path / "ref")
    notes = _stopped(monkeypatch, new, out, 10, overwrite=True)
    assert "untouched" in notes[0]
    assert _result(out) == before  # the finished run is still there
    assert (tmp_path / ".run.new" / SPILL / "state.json").exists()
    _run(new, out, overwrite=True)
    assert _result(out) == _result(tmp_path / "ref")
    assert json.loads((out / "summary.json").read_text())["resumed_after_records"] == 9
    assert not (tmp_path / ".run.new").exists()


@pytest.mark.parametrize("mode", ["mask", "surrogate"])
def test_sigterm_to_the_command_then_the_same_command(tmp_path: Path, data_root: Path, mode: str) -> None:
    # real PhysioNet notes (three readings of them, as three sources), as a user runs the command; in surrogate mode
    # under a site key, after a filter (the role memory is saved by the signal's checkpoint; the filter runs again)
    notes = str(data_root / "physionet-deid")
    recipe = tmp_path / "recipe.yaml"
    first = [{"transform": "filter", "options": {"min_words": 5}}] if mode == "surrogate" else []
    recipe.write_text(yaml.safe_dump({
        "name": "icu-notes", "seed": 0,
        "sources": [{"name": f"deid-{i}", "reader": "physionet_deid", "path": notes} for i in range(3)],
        "steps": [*first, {"transform": "deid", "options": {"mode": mode, "patient_ids": "keep"}},
                  {"transform": "split", "options": {"fractions": {"train": 0.9, "test": 0.1}}}]}, sort_keys=False))
    cmd = [sys.executable, "-m", "clinforge", "--no-progress", "data", "prepare", str(recipe)]
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    if mode == "surrogate":
        env[KEY_ENV] = "a site key"
    label = f"{len(first) + 1}:deid"
    ref = subprocess.run([*cmd, "--out", str(tmp_path / "ref")], capture_output=True, text=True, env=env)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    spill = out / SPILL / "prefix.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not (spill.exists() and spill.stat().st_size > 50_000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"records through step {label} are kept" in err and "clinforge" in err
    state = json.loads((out / SPILL / "state.json").read_text())["progress"]
    kept = state["records"]
    assert 0 < kept < 3 * 1450
    assert bool(state["step"].get("roles", {}).get("roles")) == (mode == "surrogate")

    again = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {kept} records through step {label}" in again.stderr
    assert _result(out) == _result(tmp_path / "ref")


def test_records_written_after_the_last_checkpoint_are_cut_off(tmp_path: Path, monkeypatch) -> None:
    # a SIGKILL between two checkpoints leaves records in the saved output that no checkpoint counts
    monkeypatch.setenv(KEY_ENV, "a site key")
    recipe = _recipe(tmp_path / "r")
    _run(recipe, tmp_path / "ref")
    out = tmp_path / "run"
    _stopped(monkeypatch, recipe, out, 15)
    spill = out / SPILL / "prefix.jsonl"
    with open(spill, "a", encoding="utf-8") as fh:
        fh.write('{"id": "not counted", "kind": "note", "text": "half a rec')
    _run(recipe, out)
    assert _result(out) == _result(tmp_path / "ref")


def test_a_deid_step_in_workers_resumes_to_the_one_process_dataset(tmp_path: Path, monkeypatch) -> None:
    # the workers read ahead of what the step has yielded; the checkpoint must count only what it yielded
    from clinforge.data.transforms.deid import DeidTransform

    monkeypatch.setenv(KEY_ENV, "a site key")
    one = _recipe(tmp_path / "one")
    two = _recipe(tmp_path / "two", lambda d: d["steps"][0]["options"].update(workers=2))
    _run(one, tmp_path / "ref")
    out = tmp_path / "run"
    real, seen = DeidTransform.pseudonym, [0]

    def pseudonym(self, patient_id):  # made in the main process, one per yielded record with a patient id
        seen[0] += 1
        if seen[0] == 12:
            raise Interrupted(signal.SIGTERM)
        return real(self, patient_id)

    with monkeypatch.context() as m:
        m.setattr(DeidTransform, "pseudonym", pseudonym)
        with pytest.raises(KeyboardInterrupt):
            _run(two, out)
    take_notes()
    kept = json.loads((out / SPILL / "state.json").read_text())["progress"]["records"]
    assert kept >= 11
    _run(two, out)
    records, card = _result(out)
    ref_records, ref_card = _result(tmp_path / "ref")
    assert records == ref_records
    assert card["steps"][1:] == ref_card["steps"][1:]
    assert card["steps"][0]["report"] == ref_card["steps"][0]["report"]
    assert card["steps"][0]["kinds_processed"] == ref_card["steps"][0]["kinds_processed"]


def test_data_deid_refuses_to_resume_under_another_pseudonym_key(tmp_path: Path, monkeypatch) -> None:
    from clinforge.data.deid import file_deid as fd

    src = tmp_path / "notes.jsonl"
    src.write_text("".join(json.dumps({"mrn": f"M{i % 3}", "text": f"Dr. Okafor saw the patient on 3/{i + 1}."})
                           + "\n" for i in range(20)), encoding="utf-8")
    monkeypatch.setenv(KEY_ENV, "key one")
    real, seen = Deidentifier.deidentify, [0]

    def deidentify(self, text, patient_id=None):
        seen[0] += 1
        if seen[0] == 8:
            raise Interrupted(signal.SIGINT)
        return real(self, text, patient_id)

    with monkeypatch.context() as m:
        m.setattr(Deidentifier, "deidentify", deidentify)
        with pytest.raises(KeyboardInterrupt):
            fd.deidentify_file(src, tmp_path / "out.jsonl", patient_column="mrn", progress=False)
    take_notes()
    monkeypatch.setenv(KEY_ENV, "key two")  # the first rows' pseudonyms would not match the rest
    with pytest.raises(OutputExistsError, match="patient_key"):
        fd.deidentify_file(src, tmp_path / "out.jsonl", patient_column="mrn", progress=False)
    monkeypatch.setenv(KEY_ENV, "key one")
    summary = fd.deidentify_file(src, tmp_path / "out.jsonl", patient_column="mrn", progress=False)
    assert summary["resumed_after"] == 7


def _role_notes(path: Path) -> None:
    """Notes of one patient where a lone surname after "Dr." (no gender: its role comes from the memory) follows the
    full name by many records: the role memory must survive a stop in between."""
    rows = [{"id": "n0", "kind": "note", "patient_id": "P1", "text": "Seen with Quenvaro Dastrelik, his son, on 2/30/2020."}]
    rows += [{"id": f"n{i}", "kind": "note", "patient_id": "P1", "text": f"Vitals stable on 3/{i}/2020. Afebrile."}
             for i in range(1, 12)]
    rows += [{"id": "n12", "kind": "note", "patient_id": "P1", "text": "Called Dr. Quenvaro about the plan."},
             {"id": "n13", "kind": "note", "patient_id": "P1", "text": "Dr. Dastrelik agrees. Seen 4/31/2020."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_a_surrogate_run_under_a_site_key_resumes_with_its_name_roles_and_writes_no_name(tmp_path: Path,
                                                                                         monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a site key")
    _role_notes(tmp_path / "notes.jsonl")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "roles", "seed": 0, "sources": [{"reader": "jsonl", "path": str(tmp_path / "notes.jsonl")}],
        "steps": [{"transform": "deid", "options": {"mode": "surrogate"}}]}))
    _run(recipe, tmp_path / "ref")
    ref = _result(tmp_path / "ref")
    (records,) = ref[0].values()
    texts = {r["id"]: r["text"] for r in records}
    given = texts["n0"].split("with ")[1].split()[0]
    assert "Quenvaro" not in texts["n12"] and f"Dr. {given} " in texts["n12"]  # the lone word took its given name
    assert ref[1]["steps"][0]["report"]["unparsed_dates_masked"] == 2  # 2/30 before the stop, 4/31 after it
    out = tmp_path / "run"
    notes = _stopped(monkeypatch, recipe, out, 6)  # after the full name, before the lone words
    assert "5 records through step 1:deid are kept" in notes[0]
    saved = (out / SPILL / "state.json").read_text()
    assert json.loads(saved)["progress"]["step"]["roles"]["roles"]  # the memory is saved, as keyed tags ...
    for word in ("quenvaro", "dastrelik", "P1"):  # ... and never as a name or a patient id
        assert word.lower() not in saved.lower()
    _run(recipe, out)
    assert _result(out) == ref


def test_a_stop_while_a_record_of_another_kind_goes_out_counts_the_steps_work_once(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    # A record of a kind the deid step does not process goes out after the step made its next output (whose counts
    # it holds); a real SIGTERM on MedQuAD + MTS-Dialog landed there and the resumed card counted one dialogue twice
    from clinforge.data.records import Record

    monkeypatch.setenv(KEY_ENV, "a site key")
    recipe = _recipe(tmp_path / "r")
    _run(recipe, tmp_path / "ref")
    kinds = set(yaml.safe_load(recipe.read_text())["steps"][0]["kinds"])
    out = tmp_path / "run"
    real, seen = Record.model_dump_json, [0]

    def model_dump_json(self, *args, **kwargs):
        if self.kind not in kinds:
            seen[0] += 1
            if seen[0] == 4:
                raise Interrupted(signal.SIGTERM)
        return real(self, *args, **kwargs)

    take_notes()
    with monkeypatch.context() as m:
        m.setattr(Record, "model_dump_json", model_dump_json)
        with pytest.raises(KeyboardInterrupt):
            _run(recipe, out)
    take_notes()
    assert json.loads((out / SPILL / "state.json").read_text())["progress"]["records"] > 3
    _run(recipe, out)
    assert _result(out) == _result(tmp_path / "ref")


def _steps_first(*names: str):
    """A recipe edit: the named steps moved in front of the deid step, in that order."""
    def edit(d: dict) -> None:
        moved = [next(s for s in d["steps"] if s["transform"] == n) for n in names]
        d["steps"] = moved + [s for s in d["steps"] if s not in moved]
    return edit


@pytest.mark.parametrize("first", [("filter",), ("dedup", "filter")])
def test_cheap_steps_before_the_deid_step_run_again_and_the_deid_step_resumes(tmp_path: Path, monkeypatch,
                                                                              first: tuple[str, ...]) -> None:
    # a filter (or dedup) first spares the de-identifier the records it drops; the run still resumes at the deid
    # step, the steps before it reading everything again, and ends as an uninterrupted run
    monkeypatch.setenv(KEY_ENV, "a site key")
    recipe = _recipe(tmp_path / "r", _steps_first(*first))
    _run(recipe, tmp_path / "ref")
    out = tmp_path / "run"
    label = f"{len(first) + 1}:deid"
    notes = _stopped(monkeypatch, recipe, out, 15)
    assert f"14 records through step {label} are kept" in notes[0]
    _run(recipe, out)
    assert json.loads((out / "summary.json").read_text())["resumed_after_records"] == 14
    assert _result(out) == _result(tmp_path / "ref")
    records, card = _result(out)
    assert [s["step"] for s in card["steps"]][:len(first) + 1] == [f"{i + 1}:{n}" for i, n in
                                                                   enumerate((*first, "deid"))]

    # other options of a step before it change what the deid step saw: refused
    _stopped(monkeypatch, recipe, tmp_path / "again", 15)
    stricter = _recipe(tmp_path / "r2", lambda d: (_steps_first(*first)(d), d["steps"][len(first) - 1][
        "options"].update(min_words=9)))
    with pytest.raises(OutputExistsError, match=r"differing: steps\)"):
        _run(stricter, tmp_path / "again")


class _Shuffles(Transform):
    """A plug-in step that does not declare itself deterministic."""

    name = "shuffles"

    def apply(self, records):
        yield from records


def test_a_step_before_the_deid_step_that_may_differ_from_run_to_run_blocks_the_resume(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a site key")
    TRANSFORMS.register("shuffles", _Shuffles, override=True)
    recipe = _recipe(tmp_path / "r", lambda d: d["steps"].insert(0, {"transform": "shuffles"}))
    out = tmp_path / "run"
    notes = _stopped(monkeypatch, recipe, out, 10)
    assert "progress is not saved: step 1:shuffles comes before 2:deid and does not declare" in notes[0]
    assert not (out / SPILL).exists()


def test_a_run_that_could_resume_but_will_not_says_so_at_the_start_and_a_quick_one_says_nothing(tmp_path: Path
                                                                                                ) -> None:
    notes = tmp_path / "n.jsonl"
    notes.write_text(json.dumps({"id": "1", "kind": "note", "text": "Afebrile and stable overnight."}) + "\n")
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    said = {}
    for name, steps in (("filter only", [{"transform": "filter"}]),
                        ("per-run surrogates", [{"transform": "deid", "options": {"mode": "surrogate",
                                                                                  "patient_ids": "keep"}}])):
        recipe = tmp_path / f"{len(said)}.yaml"
        recipe.write_text(yaml.safe_dump({"name": "x", "sources": [{"reader": "jsonl", "path": str(notes)}],
                                          "steps": steps}))
        res = subprocess.run([sys.executable, "-m", "clinforge", "data", "prepare", str(recipe), "--out",
                              str(tmp_path / f"out{len(said)}")], capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr
        said[name] = "note: if this run is stopped" in res.stderr
    assert said == {"filter only": False, "per-run surrogates": True}
