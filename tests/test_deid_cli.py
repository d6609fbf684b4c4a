"""``deid`` transform on Records and ``clinforge data deid`` on real files through the real command line."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinforge.cli.main import app
from clinforge.core.errors import ConfigError
from clinforge.data.records import Message, Record
from clinforge.data.transforms.base import get_transform
from clinforge.data.transforms.deid import DeidTransform

runner = CliRunner()
NOTE = "Dr. Graves saw Martha Collins on 03/04/2021 for Graves disease. BP 120/80. Call 617-555-0134.\n"
MASKED = "Dr. [NAME] saw [NAME] on [DATE] for Graves disease. BP 120/80. Call [PHONE].\n"
PHI = ("Martha", "Collins", "03/04/2021", "617-555-0134")


def test_transform_rewrites_every_text_field_and_reports_counts() -> None:
    records = [
        Record(id="1", kind="note", text="Martha Collins, MRN 4456781.", patient_id="p1",
               meta={"author": "Dr. Kreutzmann", "n": 3}),
        Record(id="2", kind="dialogue", messages=[Message(role="user", content="hi , i'm martha collins ."),
                                                  Message(role="assistant", content="Hello Ms. Collins.")],
               target="Martha Collins seen 2023-01-02.", patient_id="p1"),
        Record(id="3", kind="mcq", question="Ms. Collins (DOB 01/02/1950) has?", choices=["Graves disease", "gout"],
               answer="A", context="Seen by Dr. Okafor.", patient_id="p2"),
        Record(id="4", kind="qa", question="What is Bell's palsy?", answer="A facial nerve palsy."),
    ]
    t = get_transform("deid", mode="mask")
    assert isinstance(t, DeidTransform)
    out = list(t.apply(records))
    joined = json.dumps([r.model_dump() for r in out])
    for phi in ("Martha", "martha", "Collins", "4456781", "Kreutzmann", "Okafor", "2023-01-02", "01/02/1950"):
        assert phi not in joined, phi
    assert out[2].choices == ["Graves disease", "gout"] and out[2].answer == "A"
    assert out[3] == records[3] and out[0].meta["n"] == 3
    rep = t.report()
    assert rep["in"] == rep["out"] == 4 and rep["records_changed"] == 3
    assert rep["phi_by_type"]["NAME"] >= 6 and rep["phi_by_type"]["MRN"] == 1 and rep["phi_by_type"]["DATE"] == 2
    dropped = list(DeidTransform(meta="drop").apply(records[:1]))[0]
    assert dropped.meta == {}
    with pytest.raises(ConfigError, match="meta"):
        DeidTransform(meta="hide")


def test_transform_surrogates_follow_the_patient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINFORGE_DEID_KEY", "test key")  # one surrogate draw, not one per run
    recs = [Record(id=str(i), kind="note", text="Martha Collins seen 01/10/2020.", patient_id=pid)
            for i, pid in enumerate(["a", "a", "b"])]
    step = get_transform("deid", mode="surrogate", seed=5)
    out = list(step.apply(recs))
    assert out[0].text == out[1].text != out[2].text and "Martha" not in out[0].text
    assert step.report()["surrogate_key"].startswith("HMAC-SHA256 with ")
    with pytest.raises(ConfigError, match="does not belong in a recipe"):  # a recipe lands in run.json
        get_transform("deid", mode="surrogate", surrogate_key="hospital secret")


def test_cli_text_file_to_stdout_and_to_file(tmp_path: Path) -> None:
    src = tmp_path / "note.txt"
    src.write_text(NOTE, encoding="utf-8")
    res = runner.invoke(app, ["data", "deid", str(src)])
    assert res.exit_code == 0, res.output
    assert res.stdout == MASKED
    out = tmp_path / "clean.txt"
    res = runner.invoke(app, ["data", "deid", str(src), "--out", str(out), "--mode", "redact"])
    assert res.exit_code == 0 and out.read_text() == "Dr. *** saw *** on *** for Graves disease. BP 120/80. Call ***.\n"
    assert res.stdout == ""
    res = runner.invoke(app, ["data", "deid", str(src), "--out", str(out)])
    assert res.exit_code != 0 and "--overwrite" in str(res.exception or res.output)
    assert "***" in out.read_text()  # untouched
    res = runner.invoke(app, ["data", "deid", str(src), "--out", str(out), "--overwrite"])
    assert res.exit_code == 0 and out.read_text() == MASKED


def test_cli_json_spans(tmp_path: Path) -> None:
    src = tmp_path / "note.txt"
    src.write_text(NOTE, encoding="utf-8")
    res = runner.invoke(app, ["data", "deid", str(src), "--json"])
    row = json.loads(res.stdout)
    assert row["text"] == MASKED
    assert [s["entity_type"] for s in row["spans"]] == ["NAME", "NAME", "DATE", "PHONE"]
    assert {"start", "end", "score", "explanation", "recognizer"} <= set(row["spans"][0])
    assert NOTE[row["spans"][1]["start"]:row["spans"][1]["end"]] == "Martha Collins"


def test_cli_folder(tmp_path: Path) -> None:
    src = tmp_path / "notes"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text(NOTE, encoding="utf-8")
    (src / "sub" / "b.txt").write_text("Patient: Teresa Kreutzmann, SSN 123-45-6789.", encoding="utf-8")
    res = runner.invoke(app, ["data", "deid", str(src)])
    assert res.exit_code != 0  # a folder needs --out
    out = tmp_path / "clean"
    res = runner.invoke(app, ["data", "deid", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "a.txt").read_text() == MASKED
    assert (out / "sub" / "b.txt").read_text() == "Patient: [NAME], SSN [SSN]."


@pytest.mark.parametrize("kind", ["folder", "jsonl", "text"])
def test_cli_progress_in_a_log_starts_with_its_total(tmp_path: Path, kind: str) -> None:
    """Piped to a log (no terminal), the bar's lines carry the total from the first; a bar reset after it had
    started used to leave a stray ``0text [00:00, ?text/s]`` line first."""
    if kind == "folder":
        src = tmp_path / "notes"
        src.mkdir()
        for i in range(3):
            (src / f"{i}.txt").write_text(NOTE, encoding="utf-8")
        total = 3
    elif kind == "jsonl":
        src = tmp_path / "notes.jsonl"
        src.write_text("".join(json.dumps({"text": NOTE}) + "\n" for _ in range(2)), encoding="utf-8")
        total = 2
    else:
        src = tmp_path / "note.txt"
        src.write_text(NOTE, encoding="utf-8")
        total = 1
    env = {k: v for k, v in os.environ.items() if k != "CLINFORGE_NO_PROGRESS"}
    proc = subprocess.run([sys.executable, "-m", "clinforge", "data", "deid", str(src), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bar_lines = [x for x in proc.stderr.splitlines() if x.startswith("de-identifying")]
    assert bar_lines and all(f"/{total} " in x for x in bar_lines), proc.stderr
    assert f"{total}/{total}" in bar_lines[-1]


def test_cli_jsonl_and_csv_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINFORGE_DEID_KEY", "test key")  # one surrogate draw, not one per run
    src = tmp_path / "notes.jsonl"
    src.write_text(json.dumps({"id": 1, "note": NOTE, "pid": "p1"}) + "\n" + json.dumps({"id": 2, "note": ""}) + "\n",
                   encoding="utf-8")
    out = tmp_path / "clean.jsonl"
    res = runner.invoke(app, ["data", "deid", str(src), "--text-column", "note", "--patient-column", "pid",
                              "--mode", "surrogate", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["id"] == 1 and rows[0]["pid"].startswith("pt-") and rows[1]["note"] == ""
    assert not any(p in rows[0]["note"] for p in PHI) and "Graves disease" in rows[0]["note"]
    res = runner.invoke(app, ["data", "deid", str(src), "--text-column", "body"])
    assert res.exit_code != 0 and "line 1, field body" in str(res.exception)

    csv_src = tmp_path / "notes.csv"
    with open(csv_src, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        w.writerow(["1", NOTE])
        w.writerow(["2", "No PHI here: BP 118/76."])
    res = runner.invoke(app, ["data", "deid", str(csv_src)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(res.stdout.splitlines(keepends=True)))
    assert rows[0]["text"] == MASKED and rows[1]["text"] == "No PHI here: BP 118/76."
    bad = tmp_path / "notes.xml"
    bad.write_text("<x/>")
    res = runner.invoke(app, ["data", "deid", str(bad)])
    assert res.exit_code != 0 and ".jsonl" in str(res.exception)


def test_cli_never_prints_phi_on_stderr(tmp_path: Path) -> None:
    src = tmp_path / "notes.jsonl"
    src.write_text(json.dumps({"text": NOTE}) + "\n" + json.dumps({"text": 5}) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    ok = subprocess.run([sys.executable, "-m", "clinforge", "data", "deid", str(src), "--out", str(tmp_path / "o.jsonl"),
                         "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 2  # row 2 is not text: error names file, line and field
    assert "line 2, field text" in " ".join(ok.stderr.split())  # rich wraps long lines
    assert not (tmp_path / "o.jsonl").exists()  # the failed run left no half-written output
    assert not any(p in ok.stderr + ok.stdout for p in PHI)
    src.write_text(json.dumps({"text": NOTE}) + "\n", encoding="utf-8")
    ok = subprocess.run([sys.executable, "-m", "clinforge", "data", "deid", str(src), "--out", str(tmp_path / "o.jsonl"),
                         "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "NAME 2" in " ".join(ok.stderr.split()) and not any(p in ok.stderr + ok.stdout for p in PHI)


def _deid(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run([sys.executable, "-m", "clinforge", "--no-progress", "data", "deid", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_reads_excel_csv_with_a_byte_order_mark_and_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINFORGE_DEID_KEY", "test key")  # one surrogate draw, not one per run
    # Excel's "CSV UTF-8" starts with a BOM; it used to end up in the first column's name, so --patient-column
    # mrn matched nothing and every note silently shared one date offset and one surrogate map
    src = tmp_path / "notes.csv"
    src.write_bytes(b"\xef\xbb\xbfmrn,note\r\n" + f'1,"{NOTE.strip()}"\r\n2,"{NOTE.strip()}"\r\n'.encode())
    out = tmp_path / "clean.csv"
    run = _deid(str(src), "--text-column", "note", "--patient-column", "mrn", "--mode", "surrogate", "-o", str(out))
    assert run.returncode == 0, run.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfmrn,note\n")  # written back as it came, for Excel
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert all(r["mrn"].startswith("pt-") for r in rows) and not any(p in r["note"] for r in rows for p in PHI)
    assert rows[0]["mrn"] != rows[1]["mrn"]
    # per-patient surrogates: the same note of two patients gets two different replacements
    assert rows[0]["note"] != rows[1]["note"]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_cli_pseudonymizes_the_patient_column_and_names_the_columns_it_kept(tmp_path: Path, suffix: str) -> None:
    """The patient column (an MRN is an identifier) leaves as keyed pseudonyms unless --patient-ids keep; with one
    $CLINFORGE_DEID_KEY two runs give the same pseudonyms; the other columns are named on stderr (not their
    values) since only the text column is de-identified."""
    rows = [{"mrn": "4456781", "note": NOTE.strip(), "visit": "2021-03-04"},
            {"mrn": "4456781", "note": "BP 118/76.", "visit": "2021-03-05"},
            {"mrn": "9920013", "note": NOTE.strip(), "visit": "2021-03-06"}]
    src = tmp_path / f"notes.{suffix}"
    if suffix == "csv":
        with open(src, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["mrn", "note", "visit"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def run(out: str, *extra: str, key: str | None = None) -> list[dict]:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        env.pop("CLINFORGE_DEID_KEY", None)
        if key:
            env["CLINFORGE_DEID_KEY"] = key
        done = subprocess.run([sys.executable, "-m", "clinforge", "--no-progress", "data", "deid", str(src),
                               "--text-column", "note", "--patient-column", "mrn", "-o", str(tmp_path / out), *extra],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        said = " ".join(done.stderr.split())
        assert "column(s) 'visit'" in said and "2021-03-04" not in said and "4456781" not in said
        text = (tmp_path / out).read_text(encoding="utf-8")
        return list(csv.DictReader(text.splitlines())) if suffix == "csv" else [json.loads(x) for x in text.splitlines()]

    first, second = run(f"a.{suffix}", key="site-key"), run(f"b.{suffix}", key="site-key")
    ids = [r["mrn"] for r in first]
    assert all(i.startswith("pt-") for i in ids) and ids[0] == ids[1] != ids[2]
    assert [r["mrn"] for r in second] == ids  # one key: the same pseudonyms, linkable across runs
    assert [r["mrn"] for r in run(f"c.{suffix}")] != ids  # a random per-run key: unlinkable
    assert [r["visit"] for r in first] == [r["visit"] for r in rows]  # kept, and said so
    kept = run(f"d.{suffix}", "--patient-ids", "keep")
    assert [r["mrn"] for r in kept] == ["4456781", "4456781", "9920013"]
    bad = _deid(str(src), "--text-column", "note", "--patient-ids", "hash", "-o", str(tmp_path / f"e.{suffix}"))
    assert bad.returncode == 2 and "must be one of pseudonymize, keep" in " ".join(bad.stderr.split())


def test_cli_refuses_table_options_for_plain_text(tmp_path: Path) -> None:
    """--patient-column / --text-column on a text file or a folder used to be ignored without a word (and the summary
    even said the patient column was pseudonymized): a user who meant per-patient surrogates got none."""
    note = tmp_path / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text(NOTE, encoding="utf-8")
    for args, option in (([str(note), "--patient-column", "mrn"], "--patient-column"),
                         ([str(note), "--text-column", "body"], "--text-column"),
                         ([str(note), "--patient-ids", "keep"], "--patient-ids"),
                         ([str(folder), "--out", str(tmp_path / "clean"), "--patient-column", "mrn"], "--patient-column")):
        run = _deid(*args)
        said = " ".join(run.stderr.split())
        assert run.returncode == 2 and f"{option}: applies to a JSONL or CSV input" in said, run.stderr
        assert not any(p in run.stderr + run.stdout for p in PHI)
    assert not (tmp_path / "clean").exists()
    assert _deid(str(note)).returncode == 0


def test_cli_names_a_patient_column_that_is_not_there(tmp_path: Path) -> None:
    src = tmp_path / "notes.csv"
    src.write_text(f'mrn,note\n1,"{NOTE.strip()}"\n', encoding="utf-8")
    run = _deid(str(src), "--text-column", "note", "--patient-column", "patient", "-o", str(tmp_path / "o.csv"))
    assert run.returncode == 2 and "line 1, field patient: no column 'patient' (columns: mrn, note)" in " ".join(
        run.stderr.split())
    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_text(json.dumps({"text": NOTE, "mrn": "1"}) + "\n", encoding="utf-8")
    run = _deid(str(jsonl), "--patient-column", "patient", "-o", str(tmp_path / "o.jsonl"))
    assert run.returncode == 2 and "field patient: no row has the --patient-column 'patient'" in " ".join(
        run.stderr.split())
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.jsonl").exists()
    assert not any(p in run.stderr + run.stdout for p in PHI)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_cli_names_the_line_of_text_that_is_not_utf8(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / f"notes.{suffix}"
    first = f'id,text\n1,"{NOTE.strip()}"\n' if suffix == "csv" else json.dumps({"text": NOTE}) + "\n"
    second = '2,"Seen by Dr. Müller."\n' if suffix == "csv" else json.dumps({"text": "Dr. Müller."},
                                                                          ensure_ascii=False) + "\n"
    src.write_bytes(first.encode() + second.encode("latin-1"))  # a Windows export, not UTF-8
    run = _deid(str(src), "-o", str(tmp_path / f"o.{suffix}"))
    line = 3 if suffix == "csv" else 2
    assert run.returncode == 2 and f"line {line}: not valid UTF-8 at byte" in " ".join(run.stderr.split())
    assert "Traceback" not in run.stderr and not (tmp_path / f"o.{suffix}").exists()


def test_a_misspelt_deid_option_is_an_error_naming_its_recipe_line(tmp_path: Path) -> None:
    # it used to be handed to the recognizers and ignored: `min_scor: 0.9` de-identified at the default 0.4
    with pytest.raises(ConfigError, match=r"min_scor: unknown de-identification option 'min_scor'; valid: .*min_score"):
        get_transform("deid", mode="mask", min_scor=0.9)
    t = get_transform("deid", mode="mask", min_score=0.9, meta="keep", context_chars=30)  # every real option still
    assert t.deid.min_score == 0.9 and t.deid.recognizers[1]._context == 30
    src = tmp_path / "notes.jsonl"
    src.write_text(json.dumps({"id": "n1", "kind": "note", "text": NOTE}) + "\n", encoding="utf-8")
    recipe = tmp_path / "prep.yaml"
    recipe.write_text(f"sources:\n  - {{reader: jsonl, path: {src}}}\nsteps:\n  - transform: deid\n"
                      "    options: {mode: mask, min_scor: 0.5}\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    run = subprocess.run([sys.executable, "-m", "clinforge", "--no-progress", "data", "prepare", str(recipe), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    err = " ".join(run.stderr.split())
    assert run.returncode == 2 and "prep.yaml:5: steps.0.options.min_scor: unknown de-identification option" in err
    assert not (tmp_path / "out").exists()


def test_name_columns_are_replaced_and_their_names_found_in_the_rows_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An EHR export carries the patient's name beside the note: `--name-column` replaces the cell and finds its
    words in that row's text in any case, where the rules alone find no cue (a lower-case first name alone)."""
    monkeypatch.setenv("CLINFORGE_DEID_KEY", "test key")  # one surrogate draw, not one per run
    note = "pt quenvaro seen, family aware. dastrelik stable. BP 120/80."
    src = tmp_path / "notes.csv"
    src.write_text(f'mrn,patient_name,note\n1,Quenvaro Dastrelik,"{note}"\n2,,"no name here; BP 120/80"\n')
    plain = _deid(str(src), "--text-column", "note", "-o", str(tmp_path / "plain.csv"))
    assert plain.returncode == 0, plain.stderr
    assert "quenvaro" in (tmp_path / "plain.csv").read_text()  # the rules alone keep it
    assert "written as they came" in plain.stderr and "patient_name" in plain.stderr
    run = _deid(str(src), "--text-column", "note", "--patient-column", "mrn", "--name-column", "patient_name",
                "-o", str(tmp_path / "clean.csv"))
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader((tmp_path / "clean.csv").read_text().splitlines()))
    assert rows[0]["patient_name"] == "[NAME]" and rows[1]["patient_name"] == ""
    assert rows[0]["note"] == "pt [NAME] seen, family aware. [NAME] stable. BP 120/80."
    assert rows[1]["note"] == "no name here; BP 120/80"
    err = " ".join(run.stderr.split())
    assert "name column(s) 'patient_name': 1 cell(s) replaced" in err and "written as they came" not in err
    assert "Quenvaro" not in run.stderr + run.stdout and "Dastrelik" not in run.stderr + run.stdout

    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_text(json.dumps({"id": 1, "name": "Quenvaro Dastrelik", "text": note}) + "\n")
    out = _deid(str(jsonl), "--name-column", "name", "--mode", "surrogate")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert row["name"] != "Quenvaro Dastrelik" and not re.search("(?i)quenvaro|dastrelik", json.dumps(row))
    given, surname = row["name"].split()
    assert f"pt {given.lower()} seen" in row["text"] and f"{surname.lower()} stable" in row["text"]  # consistent
    # a misspelt column stops the run (naming it); one that is the text column is refused
    typo = _deid(str(jsonl), "--name-column", "nmae")
    assert typo.returncode != 0 and "no row has the --name-column 'nmae'" in " ".join(typo.stderr.split())
    same = _deid(str(jsonl), "--name-column", "text")
    assert same.returncode != 0 and "--name-column cannot be the --text-column" in " ".join(same.stderr.split())
    text_file = tmp_path / "note.txt"
    text_file.write_text(note)
    refused = _deid(str(text_file), "--name-column", "name")
    assert refused.returncode != 0 and "applies to a JSONL or CSV input" in " ".join(refused.stderr.split())


def test_cli_surrogates_are_keyed_and_say_by_what(tmp_path: Path) -> None:
    """Surrogates and date offsets come from an HMAC key: without $CLINFORGE_DEID_KEY a random one per run (two runs
    differ, and the seed alone cannot undo a date offset), with it the same in every run; stderr names the key's
    source, never the key."""
    note = tmp_path / "note.txt"
    note.write_text("Seen 03/14/2021 by Dr. Martha Collins, phone 617-555-0134.\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CLINFORGE_DEID_KEY"}
    runs = []
    for key in (None, None, "hospital secret 1", "hospital secret 1"):
        run_env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        if key:
            run_env["CLINFORGE_DEID_KEY"] = key
        proc = subprocess.run([sys.executable, "-m", "clinforge", "--no-progress", "data", "deid", str(note),
                               "--mode", "surrogate"], capture_output=True, text=True, env=run_env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "03/14/2021" not in proc.stdout and "Collins" not in proc.stdout
        assert "hospital secret" not in proc.stderr
        runs.append(proc)
    assert runs[0].stdout != runs[1].stdout
    assert "HMAC-SHA256 with random per-run key" in runs[0].stderr and "set $CLINFORGE_DEID_KEY" in runs[0].stderr
    assert runs[2].stdout == runs[3].stdout
    assert "HMAC-SHA256 with $CLINFORGE_DEID_KEY" in runs[2].stderr


def _export_folder(root: Path) -> Path:
    """A folder as hospital exports name them: by MRN and date, a patient folder, and one harmless name."""
    folder = root / "export"
    (folder / "MRN 4456781").mkdir(parents=True)
    (folder / "4456781_2021-03-14.txt").write_text("Dr. Okafor saw Martha Collins on 03/14/2021.", encoding="utf-8")
    (folder / "MRN 4456781" / "visit_2021-03-20.txt").write_text("Seen 03/20/2021, call 617-555-0134.",
                                                                  encoding="utf-8")
    (folder / "note_001.txt").write_text("Afebrile overnight. Son Hank at bedside.", encoding="utf-8")
    return folder


def test_cli_refuses_a_folder_whose_file_names_hold_phi_and_says_what_to_do(tmp_path: Path) -> None:
    folder = _export_folder(tmp_path)
    run = _deid(str(folder), "-o", str(tmp_path / "clean"))
    assert run.returncode != 0
    assert "2 of 3 file paths" in run.stderr and "--file-names pseudonymize" in run.stderr
    assert "DATE" in run.stderr and "4456781" not in run.stderr and "2021" not in run.stderr  # types, never names
    assert not (tmp_path / "clean").exists() and not list(tmp_path.glob(".clean*"))
    keep = _deid(str(folder), "-o", str(tmp_path / "kept"), "--file-names", "keep")
    assert keep.returncode == 0, keep.stderr
    assert (tmp_path / "kept" / "4456781_2021-03-14.txt").exists()
    wrong = _deid(str(folder / "note_001.txt"), "--file-names", "keep")
    assert wrong.returncode != 0 and "applies to a folder input" in wrong.stderr


def test_cli_pseudonymizes_file_and_folder_names_under_the_patient_key(tmp_path: Path, monkeypatch) -> None:
    from clinforge.data.deid import file_deid as fd
    from clinforge.data.deid.patient_ids import KEY_ENV, PatientPseudonymizer

    folder = _export_folder(tmp_path)
    monkeypatch.setenv(KEY_ENV, "hospital secret")
    kept = fd.deidentify_file(folder, tmp_path / "kept", file_names="keep", progress=False)
    sink = io.StringIO()
    summary = fd.deidentify_file(folder, tmp_path / "clean", file_names="pseudonymize", progress=False,
                                 json_out=True, stdout=sink)
    ids = PatientPseudonymizer()
    expected = {Path(ids.pseudonym("4456781_2021-03-14", "f-") + ".txt"),
                Path(ids.pseudonym("MRN 4456781", "f-"), ids.pseudonym("visit_2021-03-20", "f-") + ".txt"),
                Path(ids.pseudonym("note_001", "f-") + ".txt")}
    written = {p.relative_to(tmp_path / "clean") for p in (tmp_path / "clean").rglob("*.txt")}
    assert written == expected
    assert all(part.startswith("f-") and len(part.split(".")[0]) == 18 for p in written for part in p.parts)
    # the texts are those of a run that keeps the names, and the --json rows name the output files
    by_name = {ids.pseudonym(p.stem, "f-"): p.read_text() for p in (tmp_path / "kept").rglob("*.txt")}
    assert sorted(p.read_text() for p in (tmp_path / "clean").rglob("*.txt")) == sorted(by_name.values())
    rows = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert {Path(r["file"]) for r in rows} == expected and "4456781" not in sink.getvalue()
    assert summary["file_names_key"] == "pseudonymized: HMAC-SHA256 with $CLINFORGE_DEID_KEY"
    assert summary["phi"] == kept["phi"]
    again = fd.deidentify_file(folder, tmp_path / "again", file_names="pseudonymize", progress=False)
    assert {p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*.txt")} == expected
    assert again["items"] == 3


def test_cli_reads_one_text_from_standard_input(tmp_path: Path) -> None:
    """``cat note.txt | clinforge data deid -``: a pipe, as Unix tools take one."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "clinforge", "--no-progress", "data", "deid", "-"]
    run = subprocess.run(cmd, input=NOTE, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == MASKED
    out = tmp_path / "clean.txt"
    run = subprocess.run([*cmd, "--out", str(out), "--json"], input=NOTE, capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0 and out.read_text() == MASKED
    assert json.loads(run.stdout.splitlines()[0])["file"] == "-"
    bad = subprocess.run(cmd, input=b"\xff\xfe", capture_output=True, env=env, timeout=120)
    assert bad.returncode != 0 and b"standard input: not UTF-8 text" in bad.stderr
    wrong = subprocess.run([*cmd, "--patient-column", "mrn"], input="x", capture_output=True, text=True, env=env,
                           timeout=120)
    assert wrong.returncode != 0 and "standard input (one text" in wrong.stderr
    missing = subprocess.run([*cmd[:-1], str(tmp_path / "none.txt")], capture_output=True, text=True, env=env,
                             timeout=120)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
