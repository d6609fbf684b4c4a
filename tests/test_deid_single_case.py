"""Text written in one case: legacy exports in capitals throughout, typed notes in lower case throughout, and the
speaker labels of transcripts. Every literal here is written in this file; the real-data tests read MTS-Dialog."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from clinforge.data.deid import Deidentifier
from clinforge.data.deid.synthetic import generate_notes


@pytest.fixture(scope="module")
def deid() -> Deidentifier:
    return Deidentifier(mode="mask")


def masked(deid: Deidentifier, text: str) -> list[tuple[str, str]]:
    return [(text[s.start:s.end], s.entity_type) for s in deid.detect(text)]


def covered(deid: Deidentifier, text: str, value: str) -> bool:
    at = text.index(value)
    return any(s.start <= at and at + len(value) <= s.end for s in deid.detect(text))


@pytest.mark.parametrize("text, value", [
    ("MEDICAL RECORD NUMBER: LI914000", "LI914000"),
    ("PACEMAKER SERIAL NUMBER SN-54634GM.", "SN-54634GM"),
    ("PATIENT PORTAL: HTTPS://WWW.EXAMPLE-CLINIC.ORG/PORTAL.", "HTTPS://WWW.EXAMPLE-CLINIC.ORG/PORTAL"),
    ("PLAN FOR CATH ON JAN 5TH.", "JAN 5TH"),
    ("ON MARCH 3RD PT WAS INTUBATED", "MARCH 3RD"),
    ("dob: 25-jun-2023", "25-jun-2023"),
    ("seen on may 18, 2020 in clinic", "may 18, 2020"),
    ("date of service: may 10th", "may 10th"),
    ("license plate r25 7dp.", "r25 7dp"),
    ("LIVES AT 12 ELM STREET, SALEM, MA 01970 WITH HIS WIFE.", "12 ELM STREET, SALEM, MA 01970"),
    ("lives at 1040 cooke walk suite 645, noahland, co 97721.", "1040 cooke walk suite 645, noahland, co 97721"),
    ("lives in boston, ma 02115 with wife.", "boston"),
    ("mail to psc 0413, box 8144, apo ae 09012", "09012"),
    ("CALL DAUGHTER AT 617-555-0142 X 221 WITH QUESTIONS.", "617-555-0142 X 221"),
])
def test_identifiers_written_in_one_case_are_found(deid: Deidentifier, text: str, value: str) -> None:
    assert covered(deid, text, value), masked(deid, text)


@pytest.mark.parametrize("text", [
    "BS CLEAR IN ALL 4 LUNG FIELDS. 2 UNITS PRBC RUN OVER 2 HRS. PT HAD 3 EPISODES ST IN 130S.",
    "2 MM ST DEPRESSION IN V4-V6, RESOLVED.",
    "pt may 10 mg prn for pain. may 2 tabs at hs.",
    "pt lives at home with wife. 2 mm st depression lead ii, will repeat ekg.",
    "PT LIVES AT HOME WITH WIFE. 2 MM ST DEPRESSION.",
    "family states she walked 2 blocks down the road yesterday.",
    "Lives at home with wife and 2 kids. Works as a teacher.",
    "lives at home with mother, father, and 2 other siblings.  there are no ill contacts",
])
def test_clinical_text_in_one_case_keeps_its_readings(deid: Deidentifier, text: str) -> None:
    assert not [m for m in masked(deid, text) if m[1] in ("ADDRESS", "DATE", "LOCATION", "ZIP")], masked(deid, text)


def test_generated_notes_lose_no_identifier_when_upper_or_lower_cased(deid: Deidentifier) -> None:
    """Structured identifiers do not depend on case: the gold spans found in a note as written are found in the
    same note in capitals and in lower case (names and places are left out: without capitals a name needs a
    lexicon or a cue, which the generated foreign names do not always have)."""
    structured = {"DATE", "MRN", "URL", "DEVICE", "PHONE", "EMAIL", "SSN", "ADDRESS", "ZIP", "VEHICLE", "ID",
                  "ACCOUNT", "HEALTH_PLAN", "LICENSE", "IP", "AGE"}
    lost: Counter[tuple[str, str]] = Counter()
    found = 0
    def hits(text: str, gold: list[dict]) -> list[bool]:
        spans = deid.detect(text)
        return [any(s.start < g["end"] and g["start"] < s.end for s in spans) for g in gold]

    for note in generate_notes(120, seed=11):
        gold = [g for g in note.spans if g["entity_type"] in structured]
        base = hits(note.text, gold)
        found += sum(base)
        for case, text in (("upper", note.text.upper()), ("lower", note.text.lower())):
            for g, was, now in zip(gold, base, hits(text, gold), strict=True):
                lost[(case, g["entity_type"])] += was and not now
    assert found > 1000
    # a few addresses in generated formats (a house number before a rare suffix and no ZIP) stay cased-only
    assert sum(lost.values()) <= 0.01 * found, lost.most_common()


def test_speaker_labels_are_no_titles(deid: Deidentifier) -> None:
    text = ("Doctor: Oh, that's good to hear. Welcome back.\nPatient: Um, I'm fine. Nope, no pain.\n"
            "Doctor: That's great.\nGuest_family: Yeah, he's been sleeping.")
    assert not [m for m in masked(deid, text) if m[1] == "NAME"], masked(deid, text)
    assert ("said", "NAME") not in masked(deid, "the doctor said it was fine, thank you doctor.")
    # a title said to someone ends there
    for text in ("Guest_family: Hello doctor, I'm her daughter.", "Patient: Yes doctor, that's correct.",
                 "Guest_family: Hi Doctor. I'm the mother.", "Doctor: Thank you, Nurse. I'll see her now.",
                 "Doctor: Hello, nice to meet you, miss. I will be taking care of you."):
        assert not [m for m in masked(deid, text) if m[1] == "NAME"], (text, masked(deid, text))
    assert covered(deid, "Seen by Dr. Smith and Prof. Weber today.", "Weber")
    assert covered(deid, "Yes doctor, Mary Jones is my sister.", "Mary")
    # a form's field keeps its value masked
    assert covered(deid, "Patient: Ewelina Korda\nMRN: 38455108", "Ewelina Korda")
    assert covered(deid, "NAME: CASTANEDA, NAZARET\nDATE OF SERVICE: 08/01/2021", "NAZARET")
    assert covered(deid, "Emergency contacts\nMother: Xanthe, 617-555-0142", "Xanthe")  # a relative's line in a form


def test_mts_dialog_interjections_are_not_masked_as_names(data_root: Path) -> None:
    """Real doctor-patient dialogues (MTS-Dialog validation set): a speaker's first word ("Oh", "Um", "Nope",
    "That's") was masked as a name after "Doctor:" / "Patient:", ~2,000 false names on 3,000 texts."""
    path = data_root / "mts-dialog" / "Main-Dataset" / "MTS-Dialog-ValidationSet.csv"
    dialogues = [r["dialogue"] for r in csv.DictReader(path.open(encoding="utf-8"))]
    assert len(dialogues) >= 100
    deid = Deidentifier(mode="mask")
    interjections = {"oh", "um", "uh", "hm", "nope", "yeah", "yep", "okay", "that's", "i'm", "it's", "let's", "wow",
                     "i", "i've", "i'll"}
    names = Counter(text[s.start:s.end].lower() for text in dialogues for s in deid.detect(text)
                    if s.entity_type == "NAME")
    assert not interjections & set(names), names.most_common(20)


# Shorthand that makes a text a nursing note (``looks_like_note``), in each case.
VITALS = " NEURO: A&OX3. CV: HR 80S NSR, BP 110/60. RESP: PEEP 5, FIO2 40%, ABG OK. GI: NGT TO LWS."


@pytest.mark.parametrize("case", [str.upper, str.lower])
@pytest.mark.parametrize("text, value", [
    ("DR.HARDING PLACED A LINE.", "HARDING"),                       # a surname ending in -ing, glued to "dr."
    ("HER PSYCH DOCTER MCBRIDE PHONED.", "MCBRIDE"),                 # a common misspelling of the title
    ("SEEN BY K. WU, MD. PAIN RESOLVED.", "WU"),                     # a short surname after an initial
    ("OKAFOR-BYRNE MD PLANS TO PLACE A LINE.", "OKAFOR-BYRNE"),      # a hyphenated name before MD
    ("SONS BRANKO, ZDENKO AND ROGER IN TO VISIT.", "ZDENKO"),        # a list after a relative
    ("DAUGHTERS TESSA AND ROGER IN.", "TESSA"),                      # a name, then "and" another
    ("PT DEVOTED. DORCAS VIMBLY CELL# 617-555-0142.", "DORCAS VIMBLY"),  # whose number
    ("DR. O MALLEY AT BEDSIDE.", "O MALLEY"),
    ("NURSING PROGRESS NOTE\n14 OCT, 19 0700-1900\n", "14 OCT, 19"),
])
def test_note_rules_read_names_and_dates_in_either_case(case, text: str, value: str) -> None:
    deid = Deidentifier(mode="mask")
    note = case(text + VITALS)
    assert covered(deid, note, case(value)), masked(deid, note)


@pytest.mark.parametrize("case", [str.upper, str.lower])
def test_readings_drugs_and_verbs_in_one_case_are_no_phi(case) -> None:
    deid = Deidentifier(mode="mask")
    note = case("HR 80S-90S, A/C 600-12-PEEP 5, RR 12-20BPM, CV-SR-80-90 NO ECTOPY, UO 50-120CCHR. "
                "RECEIVING COLACE AND SENNA. LIMITS SET BY DR REGARDING EATING." + VITALS)
    assert not [m for m in masked(deid, note) if m[1] in ("ID", "NAME")], masked(deid, note)
    assert covered(deid, "SPECIMEN X7Q-48213 SENT." + VITALS, "X7Q-48213")  # a code stays one


@pytest.mark.parametrize("case", [str.upper, str.lower])
def test_surrogates_follow_the_case_of_the_note(case) -> None:
    """A mixed-case surrogate in a note written in one case would stand out and tell what was replaced."""
    note = case("Dr. Harding placed a line, lives at 12 Elm Street, Salem, MA 01970, daughter Maureen Olsen aware."
                + VITALS)
    out = Deidentifier(mode="surrogate", seed=0, surrogate_key="test key").deidentify(note)  # one draw
    assert out.replacements and "harding" not in out.text.lower()
    for new in out.replacements:
        letters = [c for c in new if c.isalpha()]
        assert letters and case("".join(letters)) == "".join(letters), (new, out.text)
