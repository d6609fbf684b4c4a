"""De-identification on real ICU nursing notes (PhysioNet deid gold standard): the reader, the scorer of issue 7,
and a floor on the HELD-OUT patients (never read while writing the ``notes`` recognizer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinforge.core.errors import DataError
from clinforge.data.deid import Deidentifier
from clinforge.data.deid.phrase_score import (
    count_occurrences,
    mask_spans,
    score_note,
    score_records,
    split_patients,
    summarize,
    unseen_phrases,
    wilson,
)
from clinforge.data.readers import get_reader


@pytest.fixture(scope="module")
def read(data_root: Path) -> tuple[list, object]:
    reader = get_reader("physionet_deid")
    return list(reader.read(data_root / "physionet-deid")), reader.report


@pytest.fixture(scope="module")
def notes(read: tuple[list, object]) -> list:
    return read[0]


def test_reader_counts_on_the_real_files(read: tuple[list, object]) -> None:
    notes, report = read
    assert len(notes) == 1450 and len({r.patient_id for r in notes}) == 82
    assert all(int(r.patient_id) % 2 == 1 for r in notes)  # the shared half: odd-numbered patients
    assert report.notes["phi"] == 999 and sum(report.skipped.values()) == 0  # type: ignore[attr-defined]
    assert report.notes["phi_by_type"] == {"HCPName": 324, "Date": 280, "Location": 202, "RelativeProxyName": 101,
                                           "PTName": 30, "DateYear": 29, "Phone": 25, "Age": 4, "Other": 2,
                                           "PTNameInitial": 2}
    first = notes[0]
    assert first.id == "physionet-deid-1-1" and first.patient_id == "1" and first.meta["note"] == 1
    assert all(r.text[g["start"]:g["end"]] == g["phrase"] for r in notes for g in r.meta["phi"])


def test_reader_names_the_bad_line(tmp_path: Path) -> None:
    (tmp_path / "id.text").write_text("START_OF_RECORD=1||||1||||\nSEEN BY DR SMITH.\n||||END_OF_RECORD\n")
    (tmp_path / "id-phi.phrase").write_text("1 1 11 16 HCPName SMITH\n1 1 3 7 HCPName JONES\n")
    with pytest.raises(DataError) as err:
        list(get_reader("physionet_deid").read(tmp_path))
    assert "id-phi.phrase" in str(err.value) and "line 2" in str(err.value)
    reader = get_reader("physionet_deid", on_error="skip")
    assert list(reader.read(tmp_path)) == [] and sum(reader.report.skipped.values()) == 1
    (tmp_path / "id-phi.phrase").write_text("1 1 11 16 Doctor SMITH\n")
    with pytest.raises(DataError, match="unknown PHI type"):
        list(get_reader("physionet_deid").read(tmp_path))
    (tmp_path / "id.text").write_text("START_OF_RECORD=1||||1||||\nno end marker\n")
    (tmp_path / "id-phi.phrase").unlink()
    with pytest.raises(DataError, match="END_OF_RECORD"):
        list(get_reader("physionet_deid").read(tmp_path))


def _phi(text: str, *items: tuple[str, str, int]) -> list[dict]:
    """Gold dicts for (type, phrase, occurrence index) in ``text``."""
    out = []
    for etype, phrase, k in items:
        start = -1
        for _ in range(k + 1):
            start = text.index(phrase, start + 1)
        out.append({"type": etype, "start": start, "end": start + len(phrase), "phrase": phrase})
    return out


def test_scorer_on_hand_checked_cases() -> None:
    # word-bounded, case-sensitive: "GHI" and "gh" are not occurrences of "GH"
    assert count_occurrences("TO GH. GHI gh (GH)", "GH") == 2
    text = "DR SMITH AND SMITH JR SAW PT 7/22; SMITHSON AWARE. 1992 NOTED."
    phi = _phi(text, ("HCPName", "SMITH", 0), ("HCPName", "SMITH", 1), ("Date", "7/22", 0), ("DateYear", "1992", 0))
    # both SMITHs must go: one removed is not enough for either instance; SMITHSON is no occurrence
    half = score_note(text, text.replace("DR SMITH", "DR [NAME]"), phi, [(3, 8, "NAME")])
    assert [(g.phrase, g.removed) for g in half.gold] == [("SMITH", False), ("SMITH", False), ("7/22", False)]
    spans = [(3, 8, "NAME"), (13, 18, "NAME"), (29, 33, "DATE"), (51, 55, "DATE"), (22, 25, "NAME")]
    out = mask_spans(text, spans)
    assert out == "DR [NAME] AND [NAME] JR [NAME] PT [DATE]; SMITHSON AWARE. [DATE] NOTED."
    full = score_note(text, out, phi, spans)
    assert all(g.removed for g in full.gold) and len(full.gold) == 3  # DateYear is not scored
    # precision: the 1992 hit touches only a DateYear (left out), "SAW" touches nothing (wrong)
    assert [p.correct for p in full.pred] == [True, True, True, None, False]
    s = summarize([full])
    assert (s["recall_all"].k, s["recall_all"].n, s["recall_name"].n, s["recall_date"].n) == (3, 3, 2, 1)
    assert (s["precision_all"].k, s["precision_all"].n) == (3, 4)
    assert (s["precision_NAME"].k, s["precision_NAME"].n) == (2, 3)
    # words kept: words outside gold spans (DR AND JR SAW PT SMITHSON AWARE NOTED = 8), SAW masked
    assert (s["words_kept"].k, s["words_kept"].n) == (7, 8)
    # a span that touches a gold PHI in part counts as correct (touching, not covering)
    assert score_note("AT MILLBROOK HOSPITAL", "AT [LOCATION]", _phi("AT MILLBROOK HOSPITAL", ("Location", "MILLBROOK", 0)),
                      [(3, 19, "LOCATION")]).pred[0].correct is True


def test_wilson_matches_statsmodels() -> None:
    from statsmodels.stats import proportion as statsmodels  # a dev dependency: its absence is a failure, not a skip
    for k, n in ((0, 10), (3, 10), (97, 100), (485, 500), (10, 10)):
        lo, hi = statsmodels.proportion_confint(k, n, alpha=0.05, method="wilson")
        ours = wilson(k, n)
        assert abs(ours[0] - lo) < 1e-9 and abs(ours[1] - hi) < 1e-9, (k, n)


def test_split_is_by_patient_and_seeded(notes: list) -> None:
    dev, held = split_patients([r.patient_id for r in notes], seed=0)
    assert dev.isdisjoint(held) and len(dev) + len(held) == 82 and len(dev) == 41
    assert (dev, held) == split_patients(reversed([r.patient_id for r in notes]), seed=0)
    assert split_patients([r.patient_id for r in notes], seed=1)[0] != dev


def test_heldout_real_notes_floor(notes: list) -> None:
    """Floors a little under the figures measured on the held-out patients (docs/deid.md); CI fails if a change
    loses PHI on real notes. (The issue's targets, 0.97 recall and 0.80 precision, are NOT met yet: see the doc.)"""
    dev_ids, held_ids = split_patients([r.patient_id for r in notes], seed=0)
    held = [r for r in notes if r.patient_id in held_ids]
    dev = [r for r in notes if r.patient_id in dev_ids]
    deid = Deidentifier(mode="mask")
    scores, _, _ = score_records(held, lambda t: [(s.start, s.end, s.entity_type) for s in deid.detect(t)])
    s = summarize(scores)
    assert s["recall_all"].n > 300
    assert s["recall_all"].value >= FLOORS["recall_all"], s["recall_all"]
    for group in ("name", "date", "location"):
        assert s[f"recall_{group}"].value >= FLOORS[f"recall_{group}"], (group, s[f"recall_{group}"])
    assert s["precision_all"].value >= FLOORS["precision_all"], s["precision_all"]
    assert s["words_kept"].value >= 0.99, s["words_kept"]
    # the clinical abbreviations the issue names survive wherever they occur outside gold PHI
    for word in ("CABG", "INR", "PEEP", "NGT", "AFIB", "cabg", "inr", "peep", "ngt", "afib"):
        before = sum(count_occurrences(r.text, word) for r in held)
        after = sum(count_occurrences(deid.deidentify(r.text).text, word) for r in held if word in r.text)
        assert after == before, (word, before, after)
    unseen = summarize(scores, keep_gold=unseen_phrases(held, dev))
    assert unseen["recall_all"].n > 50 and unseen["recall_all"].value >= FLOORS["unseen"], unseen["recall_all"]


# Measured on 2026-12-02 (benchmarks/deid.py, held-out 460 notes / 41 patients, general-lexicon round): recall
# 0.820, names 0.785, dates 0.929, locations 0.761, precision 0.790, unseen phrases 0.801. Floors about 0.03 below.
FLOORS = {"recall_all": 0.79, "recall_name": 0.75, "recall_date": 0.90, "recall_location": 0.73,
          "precision_all": 0.76, "unseen": 0.77}
