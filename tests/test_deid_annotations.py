"""A team's own annotated notes: the brat and i2b2 2014 readers, `clinforge data deid-eval` and `deid-train` on them.

The real-data tests write real PhysioNet notes (dev patients only) in each format and check that every format gives
the same records and the same figures as the corpus's own format, through the command lines a user runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest

from clinforge.core.errors import ConfigError, DataError
from clinforge.data.readers import get_reader
from clinforge.data.readers.deid_annotations import detect_format, read_annotated

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "CLINFORGE_NO_PROGRESS": "1"}
I2B2_LABEL = {"HCPName": "DOCTOR", "PTName": "PATIENT", "PTNameInitial": "INITIALS", "RelativeProxyName": "RELATIVE",
              "Date": "DATE", "DateYear": "YEAR", "Location": "HOSPITAL", "Phone": "PHONE", "Age": "AGE",
              "Other": "IDNUM"}


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clinforge", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def test_brat_notes_spans_labels_and_patients(tmp_path: Path) -> None:
    text = "Seen by Dr Okafor\r\non 7/22 at Sacred Heart.\r\nSon Hank called 555-0134."
    (tmp_path / "12-01.txt").write_bytes(text.encode("utf-8"))
    start = text.index("Sacred")
    ann = ["T1\tDOCTOR 11 17\tOkafor", f"T2\tDATE {text.index('7/22')} {text.index('7/22') + 4}\t7/22",
           f"T3\tHOSPITAL {start} {start + 6};{start + 7} {start + 12}\tSacred Heart",  # discontinuous
           "R1\tRel Arg1:T1 Arg2:T2", "#1\tAnnotatorNotes T1\tcheck",
           f"T4\tfamily {text.index('Hank')} {text.index('Hank') + 4}\tHank",  # labels are case-insensitive
           f"T5\tPROFESSION {text.index('Son')} {text.index('Son') + 3}\tSon"]
    (tmp_path / "12-01.ann").write_text("\n".join(ann) + "\n")
    (tmp_path / "12-02.txt").write_text("No annotations for this one.")
    reader = get_reader("brat_deid", patient_pattern=r"^(\d+)-")
    first, second = list(reader.read(tmp_path))
    assert first.text == text  # \r\n kept: brat offsets count both characters
    assert first.patient_id == second.patient_id == "12" and first.meta["note"] == "12-01"
    got = [(g["type"], g["phrase"], g["label"]) for g in first.meta["phi"]]
    assert got == [("HCPName", "Okafor", "DOCTOR"), ("Date", "7/22", "DATE"), ("Location", "Sacred", "HOSPITAL"),
                   ("Location", "Heart", "HOSPITAL"), ("RelativeProxyName", "Hank", "family"),
                   ("Unscored", "Son", "PROFESSION")]
    assert second.meta["phi"] is None
    assert reader.report.notes["phi_by_type"]["Location"] == 2
    assert [r.patient_id for r in get_reader("brat_deid").read(tmp_path)] == ["12-01", "12-02"]  # default: per file


def test_brat_errors_name_file_line_and_field_never_the_text(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Seen by Dr Okafor.")
    ann = tmp_path / "a.ann"
    ann.write_text("T1\tDOCTOR 11 17\tOkafor\nT2\tSURGEON 11 17\tOkafor\n")
    with pytest.raises(DataError) as err:
        list(get_reader("brat_deid").read(tmp_path))
    assert (err.value.file, err.value.line, err.value.field) == (str(ann), 2, "label") and "label_map" in str(err.value)
    assert "Okafor" not in str(err.value)
    assert [g["type"] for g in next(get_reader("brat_deid", label_map={"surgeon": "HCPName"}).read(tmp_path))
            .meta["phi"]] == ["HCPName", "HCPName"]
    ann.write_text("T1\tDOCTOR 11 16\tOkafor\n")  # off by one
    with pytest.raises(DataError) as err:
        list(get_reader("brat_deid").read(tmp_path))
    assert (err.value.line, err.value.field) == (1, "text") and "Okafor" not in str(err.value)
    ann.write_text("T1\tDOCTOR eleven 17\tOkafor\n")
    with pytest.raises(DataError, match="LABEL START END") as err:
        list(get_reader("brat_deid").read(tmp_path))
    ann.write_text("T1\tDOCTOR 11 99\tOkafor\n")
    with pytest.raises(DataError, match="outside the note"):
        list(get_reader("brat_deid").read(tmp_path))
    skipped = get_reader("brat_deid", on_error="skip")
    assert list(skipped.read(tmp_path)) == [] and sum(skipped.report.skipped.values()) == 1
    with pytest.raises(ConfigError, match="label_map"):
        get_reader("brat_deid", label_map={"SURGEON": "Doctor"})
    with pytest.raises(ConfigError, match="patient_pattern"):
        get_reader("brat_deid", patient_pattern="(")


def _i2b2_xml(text: str, tags: list[tuple[str, int, int, str]]) -> str:
    elements = "\n".join(f'<{"NAME" if t in ("DOCTOR", "PATIENT") else t} id="P{i}" start="{s}" end="{e}" '
                         f'text={quoteattr(phrase)} TYPE="{t}" comment="" />'
                         for i, (t, s, e, phrase) in enumerate(tags))
    return (f'<?xml version="1.0" encoding="UTF-8" ?>\n<deIdi2b2>\n<TEXT><![CDATA[{text}]]></TEXT>\n<TAGS>\n'
            f"{elements}\n</TAGS>\n</deIdi2b2>\n")


def test_i2b2_2014_xml_notes(tmp_path: Path) -> None:
    text = "Record date: 2067-05-03\n\nDr. Oscar Pena saw Mr. Quinn & family at Valley Hospital."
    tags = [("DATE", 13, 23, "2067-05-03"), ("DOCTOR", 29, 39, "Oscar Pena"), ("PATIENT", 48, 53, "Quinn"),
            ("HOSPITAL", 66, 81, "Valley Hospital")]
    (tmp_path / "110-01.xml").write_text(_i2b2_xml(text, tags))
    (tmp_path / "110-02.xml").write_text(_i2b2_xml("Nothing here & nothing there.", []))
    assert detect_format(tmp_path) == "i2b2"
    records, reader = read_annotated(tmp_path)
    assert reader == "i2b2_deid" and [r.patient_id for r in records] == ["110", "110"]
    assert [(g["type"], g["phrase"]) for g in records[0].meta["phi"]] == [
        ("Date", "2067-05-03"), ("HCPName", "Oscar Pena"), ("PTName", "Quinn"), ("Location", "Valley Hospital")]
    assert records[1].meta["phi"] == [] and records[1].text == "Nothing here & nothing there."
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "7-01.xml").write_text(_i2b2_xml(text, [("DOCTOR", 29, 38, "Oscar Pena")]))
    with pytest.raises(DataError) as err:
        read_annotated(bad)
    assert err.value.field == "text" and "TAGS element 1" in str(err.value) and "Oscar" not in str(err.value)
    (bad / "7-01.xml").write_text("<deIdi2b2><TEXT>unclosed</deIdi2b2>")
    with pytest.raises(DataError, match="not well-formed XML") as err:
        read_annotated(bad)
    assert err.value.line == 1


def test_the_format_is_detected_or_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot tell the annotation format"):
        detect_format(tmp_path)
    (tmp_path / "a.ann").write_text("")
    (tmp_path / "a.xml").write_text("")
    with pytest.raises(DataError, match="both .xml and .ann"):
        detect_format(tmp_path)
    with pytest.raises(ConfigError, match="unknown annotation format"):
        read_annotated(tmp_path, "conll")
    (tmp_path / "id.text").write_text("")
    assert detect_format(tmp_path) == "physionet"
    with pytest.raises(ConfigError, match="only for brat and i2b2"):
        read_annotated(tmp_path, patient_pattern="x")


@pytest.fixture(scope="module")
def real_formats(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real PhysioNet notes of 6 dev patients, written in the corpus's own format, as brat and as i2b2 2014 XML."""
    from clinforge.data.deid.ner_training import training_records

    dev = training_records(data_root / "physionet-deid", "dev")
    patients = sorted({r.patient_id for r in dev}, key=int)[:6]
    notes = [r for r in dev if r.patient_id in patients]
    root = tmp_path_factory.mktemp("formats")
    folders = {f: root / f for f in ("physionet", "brat", "i2b2")}
    for folder in folders.values():
        folder.mkdir()
    (folders["physionet"] / "id.text").write_text("".join(
        f"START_OF_RECORD={r.patient_id}||||{r.meta['note']}||||\n{r.text}||||END_OF_RECORD\n" for r in notes))
    (folders["physionet"] / "id-phi.phrase").write_text("".join(
        f"{r.patient_id} {r.meta['note']} {g['start']} {g['end']} {g['type']} {g['phrase']}\n"
        for r in notes for g in r.meta["phi"]))
    for r in notes:
        stem = f"{r.patient_id}-{r.meta['note']:03d}"
        (folders["brat"] / f"{stem}.txt").write_text(r.text, newline="")
        (folders["brat"] / f"{stem}.ann").write_text("".join(
            f"T{i}\t{g['type']} {g['start']} {g['end']}\t{g['phrase']}\n" for i, g in enumerate(r.meta["phi"], 1)))
        tags = [(I2B2_LABEL[g["type"]], g["start"], g["end"], g["phrase"]) for g in r.meta["phi"]]
        assert "]]>" not in r.text  # a CDATA section cannot hold it
        (folders["i2b2"] / f"{stem}.xml").write_text(_i2b2_xml(r.text, tags))
    return folders


def test_real_notes_read_alike_in_every_format(real_formats: dict[str, Path]) -> None:
    base, _ = read_annotated(real_formats["physionet"])
    brat, _ = read_annotated(real_formats["brat"], patient_pattern=r"^(\d+)-")
    i2b2, _ = read_annotated(real_formats["i2b2"])
    assert len(base) == len(brat) == len(i2b2) > 20
    base, brat, i2b2 = ([r for r in sorted(rs, key=lambda r: (r.patient_id, r.text))] for rs in (base, brat, i2b2))
    for a, b, c in zip(base, brat, i2b2, strict=True):
        assert a.text == b.text == c.text and a.patient_id == b.patient_id == c.patient_id
        spans = [(g["start"], g["end"], g["phrase"]) for g in a.meta["phi"]]
        assert spans == [(g["start"], g["end"], g["phrase"]) for g in b.meta["phi"]]
        assert spans == [(g["start"], g["end"], g["phrase"]) for g in c.meta["phi"]]


def test_deid_eval_gives_the_same_figures_in_every_format_and_prints_no_phi(real_formats: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    runs = {}
    for fmt, folder in real_formats.items():
        extra = ["--patient-pattern", r"^(\d+)-"] if fmt == "brat" else []
        done = _cli("data", "deid-eval", str(folder), "--json", *extra)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[fmt] = json.loads(done.stdout)
    figures = {f: {k: r[k] for k in ("recall", "precision", "words_kept", "notes", "patients")} for f, r in runs.items()}
    assert figures["brat"] == figures["physionet"] == figures["i2b2"]
    rec = figures["physionet"]["recall"]["all"]
    assert rec["n"] > 50 and 0.5 < rec["value"] <= 1.0 and rec["ci"][0] <= rec["value"] <= rec["ci"][1]
    assert set(runs["physionet"]["definitions"]) == {"recall", "precision", "words_kept", "mb_s"}

    out = tmp_path / "eval.json"
    table = _cli("data", "deid-eval", str(real_formats["brat"]), "--patient-pattern", r"^(\d+)-", "--out", str(out))
    assert table.returncode == 0, table.stderr[-2000:]
    assert "recall all" in table.stdout and json.loads(out.read_text())["recall"] == figures["brat"]["recall"]
    records, _ = read_annotated(real_formats["physionet"])
    names = {g["phrase"] for r in records for g in r.meta["phi"] if g["type"].endswith("Name") and len(g["phrase"]) > 3}
    assert names and not [n for n in names if n in table.stdout + table.stderr + out.read_text()]
    again = _cli("data", "deid-eval", str(real_formats["brat"]), "--out", str(out))
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_deid_train_reads_brat_notes_with_their_patients(real_formats: dict[str, Path], tmp_path: Path) -> None:
    from test_deid_ner_training import _tiny_base

    out = tmp_path / "tagger"
    done = _cli("data", "deid-train", str(real_formats["brat"]), "--out", str(out), "--part", "dev",
                "--patient-pattern", r"^(\d+)-", "--base", str(_tiny_base(tmp_path / "base")), "--epochs", "1",
                "--augment", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((out / "deid_training.json").read_text())
    records, _ = read_annotated(real_formats["brat"], patient_pattern=r"^(\d+)-")
    patients = {r.patient_id for r in records}
    assert set(card["patients"]) < patients and len(card["patients"]) == 3  # the dev half, by patient
    assert card["augment"] == 1 and card["windows_with_phi"] > 0
    scored = _cli("data", "deid-eval", str(real_formats["i2b2"]), "--ner-model", str(out), "--json")
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert json.loads(scored.stdout)["ner_model"]["path"] == str(out)
    assert json.loads(scored.stdout)["ner_model"]["int8"] is False
    small = _cli("data", "deid-eval", str(real_formats["i2b2"]), "--ner-model", str(out), "--ner-int8", "--json")
    assert small.returncode == 0, small.stderr[-2000:]
    assert json.loads(small.stdout)["ner_model"]["int8"] is True


def test_unscored_labels_count_neither_way() -> None:
    from clinforge.data.deid.annotated_eval import evaluate_annotated
    from clinforge.data.records import Record

    text = "Dr Okafor, a nurse from Boston, saw him."
    phi = [{"type": "HCPName", "start": 3, "end": 9, "phrase": "Okafor"},
           {"type": "Unscored", "start": 24, "end": 30, "phrase": "Boston"}]
    note = Record(id="n", kind="note", text=text, patient_id="1", meta={"note": 1, "phi": phi})
    result = evaluate_annotated([note, Record(id="m", kind="note", text="No gold.", meta={"phi": None})])
    assert result["recall"]["all"]["n"] == 1 and result["notes_without_annotations"] == 1
    # the rules mask "Boston" too; a span on unscored gold only is neither right nor wrong
    from clinforge.data.deid.deidentifier import Deidentifier

    assert len(Deidentifier(mode="mask").detect(text)) == 2
    assert result["precision"]["all"]["n"] == result["precision"]["all"]["k"] == 1
    with pytest.raises(DataError, match="no annotated note"):
        evaluate_annotated([Record(id="m", kind="note", text="No gold.", meta={"phi": None})])
