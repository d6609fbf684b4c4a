"""Hospital and clinic names in mixed-case text (``facility_names``), and a phone number in brackets."""

from __future__ import annotations

import pytest

from clinforge.data.deid import Deidentifier
from clinforge.data.deid.facility_names import find_facility_names, is_department


@pytest.fixture(scope="module")
def deid() -> Deidentifier:
    return Deidentifier(mode="mask")


def masked(deid: Deidentifier, text: str) -> str:
    """``text`` with every character inside a detected span replaced by '#'."""
    spans = deid.detect(text)
    return "".join("#" if any(s.start <= i < s.end for s in spans) else c for i, c in enumerate(text))


# Names as US hospitals are written: joined by "and", going on in an "of" / "for" phrase, a name before "Cancer
# Center" or "HealthCare", "X General" after a place cue
@pytest.mark.parametrize("name", [
    "Brigham and Women's Hospital",
    "Hospital of the University of Pennsylvania",
    "Children's Hospital of Philadelphia",
    "Shriners Hospitals for Children",
    "Memorial Sloan Kettering Cancer Center",
    "MD Anderson Cancer Center",
    "Hartford HealthCare",
    "VA Boston Healthcare System",
    "Mass General",
    "Lutheran General",
    "Good Samaritan Hospital",
    "Mayo Clinic",
])
def test_whole_hospital_name_is_masked(deid: Deidentifier, name: str) -> None:
    text = f"He was transferred from {name} yesterday."
    out = masked(deid, text)
    assert out == "He was transferred from " + "#" * len(name) + " yesterday.", out


# A department before a clinic or a centre names a kind of care, not a place; "General" in other roles stays
@pytest.mark.parametrize("text", [
    "Follow up in Cardiology Clinic in 2 weeks.",
    "Seen in Vascular Surgery Clinic today.",
    "Welcome back to the Pulmonary Medicine Clinic.",
    "He referred me to a Pain Clinic, and epidurals were discussed.",
    "Follow up with Primary Care Clinic and Hand Clinic.",
    "Referred to the Breast Cancer Center for imaging.",
    "Patient in Good General condition.",
    "General: NAD. HEENT: normal.",
    "Per the Surgeon General guidance on smoking.",
    "Admitted to Hospital for Chest Pain workup.",
    "Her Health Care Proxy is her son.",
])
def test_departments_and_other_words_stay(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


def test_spans_and_explanations() -> None:
    t = "Seen at the Hospital of the University of Pennsylvania, then Shriners Hospitals for Children."
    assert [(t[a:b], why) for a, b, why in find_facility_names(t)] == [
        ("Hospital of the University of Pennsylvania", "facility name with its of/for phrase"),
        ("Shriners Hospitals for Children", "facility name with its of/for phrase"),
    ]
    t = "transferred to Mass General; seen at Brigham and Women's Hospital"
    assert sorted((t[a:b], why) for a, b, why in find_facility_names(t)) == [
        ("Brigham and Women's Hospital", "facility name"),
        ("Mass General", "name + General after a place cue"),
    ]
    # "for" goes on only after a named facility; all-caps text is the notes recognizer's
    assert find_facility_names("Admitted to Hospital for Chest Pain") == []
    assert find_facility_names("TRANSFERRED FROM BRIGHAM AND WOMEN'S HOSPITAL") == []


def test_is_department() -> None:
    assert [is_department(w) for w in ("Cardiology", "Rheumatology", "Primary", "Wound", "Lahey", "Mass")] == [
        True, True, True, True, False, False]


@pytest.mark.parametrize(("text", "phone"), [
    ("His daughter (cell 617-555-0143) is his proxy.", "617-555-0143"),
    ("call (617) 555-0143) today", "(617) 555-0143"),
    ("Pager (617) 555-0143.", "(617) 555-0143"),
])
def test_phone_in_brackets_leaves_the_closing_bracket(deid: Deidentifier, text: str, phone: str) -> None:
    found = [text[s.start:s.end] for s in deid.detect(text) if s.entity_type == "PHONE"]
    assert found == [phone]
