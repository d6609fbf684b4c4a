"""HL7 v2 messages: the PHI fields of PID, NK1, PV1, OBR, OBX by position (``data/deid/hl7_fields.py``), the
report text by the prose rules, and ``clinforge data deid`` on a ``.hl7`` file keeping its CR segment ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clinforge.data.deid import Deidentifier
from clinforge.data.deid.hl7_fields import find_hl7_fields

MESSAGE = Path(__file__).parent / "fixtures" / "hl7" / "oru_r01.hl7"


def _message() -> str:
    with open(MESSAGE, encoding="utf-8", newline="") as fh:
        return fh.read()


def test_fields_by_position() -> None:
    text = _message()
    found = [(text[a:b], kind, why.split(" component")[0]) for a, b, kind, why in find_hl7_fields(text)]
    assert found == [
        ("202103141022", "DATE", "HL7 MSH-7"),
        ("55512345", "MRN", "HL7 PID-3"), ("123-45-6789", "MRN", "HL7 PID-3"),
        ("OKAFOR", "NAME", "HL7 PID-5"), ("CHIDI", "NAME", "HL7 PID-5"), ("E", "NAME", "HL7 PID-5"),
        ("19470815", "DATE", "HL7 PID-7"),
        ("77 BEACON ST", "ADDRESS", "HL7 PID-11"), ("APT 4", "ADDRESS", "HL7 PID-11"),
        ("BROOKLINE", "LOCATION", "HL7 PID-11"), ("02446", "ZIP", "HL7 PID-11"), ("NORFOLK", "LOCATION", "HL7 PID-11"),
        ("617", "PHONE", "HL7 PID-13"), ("5550199", "PHONE", "HL7 PID-13"),
        ("chidi@example.com", "EMAIL", "HL7 PID-13"),
        ("OKAFOR", "NAME", "HL7 NK1-2"), ("ADA", "NAME", "HL7 NK1-2"),
        ("77 BEACON ST", "ADDRESS", "HL7 NK1-4"), ("BROOKLINE", "LOCATION", "HL7 NK1-4"), ("02446", "ZIP", "HL7 NK1-4"),
        ("(617)555-0198", "PHONE", "HL7 NK1-5"),
        ("1234567890", "ID", "HL7 PV1-7"), ("HALE", "NAME", "HL7 PV1-7"), ("MEREDITH", "NAME", "HL7 PV1-7"),
        ("J", "NAME", "HL7 PV1-7"),
        ("V998877", "ID", "HL7 PV1-19"),
        ("PL12345", "ID", "HL7 OBR-2"), ("FL67890", "ID", "HL7 OBR-3"), ("20210314093000", "DATE", "HL7 OBR-7"),
        ("9876543", "ID", "HL7 OBR-16"), ("PATEL", "NAME", "HL7 OBR-16"), ("ANITA", "NAME", "HL7 OBR-16"),
        ("20210314101500", "DATE", "HL7 OBX-14"),
    ]


def test_what_is_no_phi_stays() -> None:
    text = "PID|1||X1^^^BWH^MR||DOE^JANE^^^MS^MD||1980|F|||^^^MA^^USA\rOBX|1|NM|2345-7^GLUCOSE^LN||182|mg/dL"
    kept = [text[a:b] for a, b, _, _ in find_hl7_fields(text)]
    # prefix MS, degree MD, a year alone, state, country, the assigning authority, the observation: no PHI
    assert kept == ["X1", "DOE", "JANE"]
    assert find_hl7_fields("Pain 3|10 at rest") == []  # a "|" in prose is no segment


def test_other_separators_from_msh() -> None:
    text = "MSH#*~\\&#A#B#C#D#20210314##ORU*R01\rPID#1##777*4*M11##ROE*RICHARD"
    assert [text[a:b] for a, b, _, _ in find_hl7_fields(text)] == ["20210314", "777", "ROE", "RICHARD"]


def test_deidentifier_masks_fields_and_report_text() -> None:
    out = Deidentifier(mode="mask").deidentify(_message()).text
    segments = out.split("\r")
    assert segments[1].startswith("PID|1||[MRN]^^^BWH^MR~[MRN]^^^SSA^SS||[NAME]^[NAME]^[NAME]^JR^MR||[DATE]|M|||")
    assert segments[5] == ("OBX|1|TX|71020^CHEST XRAY||Findings: No acute process. Compared with [DATE] study. "
                           "Dr. [NAME] discussed with Mr. [NAME].||||||F|||[DATE]")
    for phi in ("OKAFOR", "Okafor", "CHIDI", "BEACON", "5550199", "HALE", "PATEL", "Patel", "19470815", "V998877"):
        assert phi not in out


def test_cli_on_an_hl7_file_keeps_segment_ends(tmp_path: Path) -> None:
    out = tmp_path / "clean.hl7"
    run = subprocess.run([sys.executable, "-m", "clinforge", "data", "deid", str(MESSAGE), "--mode", "surrogate",
                          "-o", str(out)], capture_output=True, text=True, env={**os.environ, "CLINFORGE_DEID_KEY": "k"})
    assert run.returncode == 0, run.stderr
    data = out.read_bytes()
    assert data.count(b"\r") == 6 and b"\n" not in data  # six segments, each ended by CR as in the input
    segments = data.decode().split("\r")
    pid = segments[1].split("|")
    assert pid[0] == "PID" and pid[5].count("^") == 4 and "OKAFOR" not in pid[5]  # a name in each component
    birth = pid[7]
    assert len(birth) == 8 and birth.isdigit() and birth != "19470815"  # shifted, still YYYYMMDD
    assert "OKAFOR" not in data.decode() and "55512345" not in data.decode()
