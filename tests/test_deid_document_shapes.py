"""Shapes of discharge summaries, reports and letters: hospital and clinic names in mixed-case text
(``facility_names``), a surname-first name in a form field (``form_names``), a dotted credential after a name, a
phone number in brackets."""

from __future__ import annotations

import re

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
    "Mount Auburn",
    "Mt. Sinai",
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
    "Presented to the Pediatric ED with fever.",
    "She was seen in our ED and went to the Main ED later.",
    "Amount Due: none.",
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


def test_hospital_named_by_its_emergency_department(deid: Deidentifier) -> None:
    assert masked(deid, "Advised to bring pt to Mount Auburn ED.") == "Advised to bring pt to ############ ED."
    assert masked(deid, "seen at Tufts ED overnight") == "seen at ##### ED overnight"
    assert masked(deid, "brought to Beth Israel Emergency Department") == "brought to ########### Emergency Department"


@pytest.mark.parametrize(("text", "expected"), [
    ("Patient: DOE, JANE A   MRN: 4481123", "Patient: ###########   MRN: #######"),
    ("PATIENT NAME: NGUYEN, THANH", "PATIENT NAME: #############"),
    ("Patient: KING, ROBERT", "Patient: ############"),
    ("Patient: Okonkwo, Chidi  DOB: 1/2/1950", "Patient: ##############  DOB: ########"),
])
def test_surname_first_in_a_form_field(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize("text", [
    "Patient: Yes, Doctor",
    "Patient: Yeah, um, fine",
    "Patient: Okay, doctor, thank you.",
    "Patient: No, Nothing else.",
])
def test_a_transcript_speaker_is_no_form_field(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("Pathologist: Miguel A. Santiago-Ortiz, M.D.  Signed", "Pathologist: ########################, M.D.  Signed"),
    ("Jane Roe, D.O.", "########, D.O."),
    ("Karen Liu, R.N.", "#########, R.N."),
])
def test_dotted_credential_is_no_initial(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("fam meeting w/ wife carol and dtr ann at 3pm.", "fam meeting w/ wife ##### and dtr ### at 3pm."),
    ("husband dawn updated", "husband #### updated"),
    ("WIFE PAT AWARE", "WIFE ### AWARE"),
])
def test_common_first_name_that_is_a_rarer_word_after_a_relative(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize("text", ["son will call later", "dtr may visit", "wife rose early"])
def test_everyday_words_after_a_relative_stay(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.mark.parametrize("text", [
    "Teacher reports improved focus on Ritalin 10 mg qAM.",
    "Continue Vyvanse 30mg daily and Intuniv 1 mg at night.",
    "She continues to take Enablex 50 mg.",
])
def test_a_drug_before_its_dose_is_no_name(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.mark.parametrize("text", [
    "Hospital course complicated by Klebsiella pneumoniae bacteremia and Enterococcus faecalis UTI.",
    "Cultures grew Staphylococcus aureus, Pseudomonas aeruginosa and Candida albicans.",
    "Trace edema in the right lower extremity.",
])
def test_a_genus_before_its_species_is_no_name(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


def test_a_name_before_a_verb_stays_a_name(deid: Deidentifier) -> None:
    # ("-es" is no species ending: "Okafor administers", "Wong declines")
    assert masked(deid, "Okafor administers the dose.").startswith("######")
    assert masked(deid, "Wong declines surgery.").startswith("####")


def test_extension_written_out(deid: Deidentifier) -> None:
    text = "Please call me at extension 4471 with any questions."
    assert masked(deid, text) == "Please call me at extension #### with any questions."


@pytest.mark.parametrize(("text", "expected"), [
    ("Labs from 03-2021 were normal.", "Labs from ####### were normal."),
    ("Seen 10-2019 and 11/2019.", "Seen ####### and #######."),
])
def test_month_year_with_a_hyphen(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize("text", ["Heparin dose 1-2000 units per hour.", "given 10-2000 mg over the day"])
def test_a_range_with_a_unit_is_no_month_year(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


def test_uk_postcode_after_a_place_name(deid: Deidentifier) -> None:
    assert masked(deid, "She moved to Leeds, LS1 3EX last year.").endswith("####### last year.")
    assert "4RT" not in Deidentifier(mode="mask").deidentify("14 Kingsley Road, Harrogate HG1 4RT.").text
    # in capitals the same shape is a dose schedule, and the look-behind wants a lower-case letter
    assert "#" not in masked(deid, "GIVEN Q4 2HR")


@pytest.mark.parametrize("text", [
    "Pneumoperitoneum established via Hasson technique.",
    "A Kocher approach was used and a Lichtenstein repair of the hernia done.",
    "Waters view obtained; Dobhoff tube placed.",
])
def test_surgical_and_radiological_eponyms_stay(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("PT TRANSFERRED FROM BRIGHAM AND WOMEN'S HOSPITAL TODAY.", "PT TRANSFERRED FROM ############################ TODAY."),
    ("pt transferred from mass general today.", "pt transferred from ############ today."),
    ("PT TRANSFERRED FROM MEMORIAL SLOAN KETTERING CANCER CENTER.", "PT TRANSFERRED FROM ###################################### ."
     .replace(" .", ".")),
    ("pt transferred from children's hospital of philadelphia", "pt transferred from ################### of ############"),
])
def test_hospital_names_in_one_case_text(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize("text", [
    "PT FROM THE GENERAL FLOOR", "TRANSFERRED TO GENERAL SURGERY", "TO CANCER CENTER FOR CHEMO",
    "SEEN AT BREAST CANCER CENTER", "at the beach in the summer",
])
def test_one_case_words_that_are_no_hospital(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.fixture(scope="module")
def surrogate() -> Deidentifier:
    return Deidentifier(mode="surrogate", surrogate_key="document-shapes-test-key")


def test_surrogates_keep_the_shape_of_the_original(surrogate: Deidentifier) -> None:
    out = surrogate.deidentify("Transferred from Brigham and Women's Hospital; follow up at Mass General.",
                               patient_id="p1").text
    assert "Brigham" not in out and "Mass General" not in out
    assert " Hospital;" in out and out.rstrip(".").endswith(" General")  # a hospital stays a hospital
    out = surrogate.deidentify("Patient: DOE, JANE A   MRN: 4481123", patient_id="p1").text
    surname, given = out.split("   ")[0].removeprefix("Patient: ").split(", ")
    given = given.split()[0]
    from faker.providers.person.en_US import Provider
    # surname first, as in the field: a surname drawn for DOE, a female given name (JANE's gender) for JANE
    assert surname.title() in Provider.last_names and given.title() in Provider.first_names_female, out
    out = surrogate.deidentify("Labs from 03-2021 and 04/2021.", patient_id="p1").text
    assert re.fullmatch(r"Labs from \d\d-\d{4} and \d\d/\d{4}\.", out), out  # shifted, each with its separator
    text = "Labs from 03-2021 and 04/2021."
    assert [text[s.start:s.end] for s in surrogate.detect(text) if s.entity_type == "DATE"] == ["03-2021", "04/2021"]
    assert surrogate.surrogates.replace("DATE", "03-2021", "p9") != "[DATE]"  # parsed and shifted, never masked


@pytest.mark.parametrize(("text", "expected"), [
    ("[doctor] hi mister hernandez how are you", "[doctor] hi mister ######### how are you"),
    ("[patient] yes on pleasant street", "[patient] yes on ###############"),
    ("We live off Maple Avenue now.", "We live off ############ now."),
])
def test_speech_shapes(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize("text", [
    "lives on a busy street", "parked on the side street", "went down memory lane", "in the fast lane",
    "the mister said so",
])
def test_streets_and_titles_that_are_no_identifier(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.mark.parametrize("text", [
    "Pt A&Ox3, pleasant. VSS.",
    "How's it going, buddy? I haven't seen you in a long time",
    "They have a dog, bird, and rabbits in the home.",
    "Indication: dyspnea. Mild MR. RVSP 38 mmHg. LVEF 55-60% by Simpson's biplane.",
    "Call the Heart Failure Clinic if you gain more than 3 lbs.",
])
def test_words_that_looked_like_names_in_short_notes(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("hello , mrs . peterson .", "hello , mrs . ########ERR"),
    ("thanks, john, see you soon", "thanks, ####, see you soon"),
])
def test_vocatives_that_stay_names(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text).startswith(expected.removesuffix("ERR"))


@pytest.mark.parametrize("text", [
    "Moderate MR. RVSP 42 mmHg.", "Echo: severe MS. Mean gradient 12.", "TTE: 2+ MR. LVEF 40%.",
])
def test_any_valve_grade_before_mr_or_ms(deid: Deidentifier, text: str) -> None:
    # (the first fix read only the 10 characters before the name: "Moderate" did not fit)
    assert "#" not in masked(deid, text)


def test_a_label_spaced_before_its_colon(deid: Deidentifier) -> None:
    assert masked(deid, "Patient : DOE, JANE A") == "Patient : ###########"


def test_surrogate_keeps_every_facility_word(surrogate: Deidentifier) -> None:
    out = surrogate.deidentify("Seen at MD Anderson Cancer Center.", patient_id="p2").text
    assert out.endswith(" Cancer Center.") and "Anderson" not in out


# A town that is also a name, after a verb of residence or a move: a place (its surrogate is a town, not a person)
@pytest.mark.parametrize(("text", "town"), [
    ("Pt lives in Boston with wife Carol.", "Boston"),
    ("She moved to Austin last year.", "Austin"),
    ("He grew up in Houston.", "Houston"),
    ("MOVED TO AUSTIN LAST YEAR.", "AUSTIN"),
    ("pt lives in new bedford with dtr", "new bedford"),
])
def test_town_after_a_verb_of_residence_is_a_place(deid: Deidentifier, text: str, town: str) -> None:
    spans = [(text[s.start:s.end], s.entity_type) for s in deid.detect(text)]
    assert (town, "LOCATION") in spans, spans


@pytest.mark.parametrize(("text", "expected"), [
    ("pt lives in fear of falling", []), ("moved to home yesterday", []), ("moved to bed 5", []),
    ("Pt moved to Rm 12 this am", []), ("sent to OR 3 at 10am", []), ("Seen by Dr. Jackson.", [("Jackson", "NAME")]),
])
def test_no_town_and_no_address_here(deid: Deidentifier, text: str, expected: list) -> None:
    assert [(text[s.start:s.end], s.entity_type) for s in deid.detect(text)] == expected


def test_town_surrogate_is_a_town(surrogate: Deidentifier) -> None:
    out = surrogate.deidentify("Pt lives in Boston with her son.", patient_id="p3").text
    town = surrogate.surrogates.replace("LOCATION", "Boston", "p3")
    assert out == f"Pt lives in {town} with her son.", out
    assert town != surrogate.surrogates.replace("NAME", "Boston", "p3")


# Lower-case "may" and "march" with a day: a date after a date cue, the day included; orders stay
@pytest.mark.parametrize(("text", "expected"), [
    ("On march 3 she fell.", "On ####### she fell."),
    ("on march 12th she fell", "on ########## she fell"),
    ("seen on 3 march", "seen on #######"),
    ("on may 3 she", "on ##### she"),
    ("since 12 may", "since ######"),
])
def test_lower_case_may_and_march_with_a_day(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize("text", ["may 3 times a day", "pt may 2 tabs", "Plan: may 2 more units"])
def test_may_before_a_count_is_no_date(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


def test_contact_label_after_an_address_block_stays(deid: Deidentifier) -> None:
    text = "Sincerely,\nDepartment of Medicine\n55 Fruit Street, Boston, MA 02114\nTel: (617) 726-2000 | Fax: 617.726.2001"
    address, phone, fax = "55 Fruit Street, Boston, MA 02114", "(617) 726-2000", "617.726.2001"
    assert masked(deid, text) == (f"Sincerely,\nDepartment of Medicine\n{'#' * len(address)}\n"
                                  f"Tel: {'#' * len(phone)} | Fax: {'#' * len(fax)}")


def test_iso_timestamp_is_one_date(deid: Deidentifier) -> None:
    for stamp in ("2021-03-14T10:22:00Z", "2021-03-14T10:22", "2021-03-14T10:22:00.123+01:00"):
        text = f"Visit {stamp} here"
        assert [(text[s.start:s.end], s.entity_type) for s in deid.detect(text)] == [(stamp, "DATE")]


@pytest.mark.parametrize("text", [
    "Insurance: Blue Cross Blue Shield of Massachusetts.", "She has Aetna through work and Medicare part B.",
    "Insurance is Cigna, previously Humana.", "Covered by Kaiser Permanente.", "CIGNA denied the claim.",
    "Her plan is UnitedHealthcare; secondary Tricare.",
])
def test_health_insurers_are_no_names(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("Mr. Cross was seen.", "Mr. ##### was seen."),
    ("Seen with Oscar Humana yesterday.", "Seen with ############ yesterday."),
])
def test_insurer_words_in_a_persons_name_stay_names(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Facebook handle @jdoe_1990. Twitter: @johnny_d.", "Facebook handle ##########. Twitter: #########."),
    ("IG @drsmith", "IG ########"),
    ("follows @jdoe1990 online", "follows ######### online"),
    ("O2 @2L NC, HR @1400 110, d/c @home, seen @bedside", "O2 @2L NC, HR @1400 110, d/c @home, seen @bedside"),
    ("sat 95% @ 4L, rate @q4h", "sat 95% @ 4L, rate @q4h"),
])
def test_social_media_handles(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize("text", ["Proband: 12 yo male of Ashkenazi Jewish descent.", "Proband of Irish ancestry."])
def test_a_people_before_descent_is_no_name(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("Attends Lincoln Elementary School, 2nd grade.", "Attends #########################, 2nd grade."),
    ("She attends Lincoln Elementary School.", "She attends #########################."),
    ("Visited Mercy Hospital yesterday.", "Visited ############## yesterday."),
    ("Seen Hospital.", "Seen Hospital."),
    ("He graduated from High School in 2001.", "He graduated from High School in 2001."),
])
def test_schools_are_places_and_an_opening_verb_is_no_part_of_a_name(deid: Deidentifier, text: str,
                                                                     expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Grandmother died of ovarian cancer in Tel Aviv.", "Grandmother died of ovarian cancer in ########."),
    ("Son called from Shanghai.", "Son called from ########."),
    ("I was born in Munich, Germany.", "I was born in ######, Germany."),
    ("She has lived in Arizona for 4 years.", "She has lived in Arizona for 4 years."),  # a state: no identifier
    ("Pain in Time.", "Pain in Time."),
    ("PT PULLS AWAY FROM ORAL THERMOMETER.", "PT PULLS AWAY FROM ORAL THERMOMETER."),
])
def test_cities_outside_the_us(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("works as a barista on Newbury St. He reports", "works as a barista on ########### He reports"),
    ("lives off Elm Ave near the park", "lives off ####### near the park"),
    ("placed on ST monitoring", "placed on ST monitoring"),
    ("on Lasix and St. Johns wort", "on Lasix and St. Johns wort"),  # an herb
    ("Takes St. John's wort daily.", "Takes St. John's wort daily."),
    ("Transferred to St. John's Hospital.", "Transferred to ###################."),
])
def test_abbreviated_street_without_a_number_and_st_johns_wort(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize(("text", "value"), [
    ("medical record number four four eight one one two three period", "four four eight one one two three"),
    ("my cell is six one seven five five five oh one four three", "six one seven five five five oh one four three"),
    ("call me at double five five one two three four five", "double five five one two three four five"),
    ("account number is one two three", None),  # three digits: no identifier
    ("he has one two three four five six seven kids", None),
])
def test_identifiers_read_out_digit_by_digit(deid: Deidentifier, text: str, value: str | None) -> None:
    assert masked(deid, text) == (text if value is None else text.replace(value, "#" * len(value)))


@pytest.mark.parametrize(("text", "expected"), [
    ("Subject: RE: pt Jane Doe (MRN 4481123)", "Subject: RE: pt ######## (MRN #######)"),
    ("She saw John Doe today.", "She saw ######## today."),
    ("c/o DOE and CP", "c/o DOE and CP"),  # dyspnoea on exertion
])
def test_an_allowed_word_that_is_a_surname_after_a_first_name(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("SPECIMEN: A. Colon, sigmoid, resection. B. Lung: wedge.", "SPECIMEN: A. Colon, sigmoid, resection. B. Lung: wedge."),
    ("Seen by A. Smith, RN", "Seen by ########, RN"),
])
def test_a_specimen_part_letter_and_site_is_no_initial_and_surname(deid: Deidentifier, text: str,
                                                                   expected: str) -> None:
    assert masked(deid, text) == expected


def test_gs1_udi_is_one_device_identifier(deid: Deidentifier, surrogate: Deidentifier) -> None:
    text = "UDI (01)07613327294910(17)241231(10)MHT7Y8."
    udi = "(01)07613327294910(17)241231(10)MHT7Y8"
    assert [(text[s.start:s.end], s.entity_type) for s in deid.detect(text)] == [(udi, "DEVICE")]
    out = surrogate.deidentify(text, patient_id="p4").text
    assert re.fullmatch(r"UDI \(01\)\d{14}\(17\)\d{6}\(10\)[A-Z]{3}\d[A-Z]\d\.", out) and udi not in out, out


def test_form_columns_are_no_name_words(deid: Deidentifier) -> None:
    text = "Patient Name: Nguyen, Thanh V.   Legal Sex: Male   DOB: 2/9/1961"
    # the next column's label ("Legal Sex") stays
    assert [text[s.start:s.end] for s in deid.detect(text)] == ["Nguyen, Thanh V.", "2/9/1961"]


@pytest.mark.parametrize(("text", "expected"), [
    ("Her daughter Yasmin called.", "Her daughter ###### called."),  # a contraceptive's brand, an allowed word
    ("children Yasmin (8) and Omar (5)", "children ###### (8) and #### (5)"),
    ("Started Yasmin for contraception.", "Started Yasmin for contraception."),
    ("Son Lasix", "Son Lasix"),
])
def test_an_allowed_word_that_is_a_first_name_after_a_relative(deid: Deidentifier, text: str, expected: str) -> None:
    assert masked(deid, text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Send to CVS Pharmacy #4471 today.", []),
    ("Walgreens store #12345", []),
    ("ROOM #1204", []),
    ("PAGER #54321", ["54321"]),
    ("paged #54321", ["54321"]),
])
def test_a_number_sign_after_a_store_or_room_is_no_pager(deid: Deidentifier, text: str, expected: list) -> None:
    assert [text[s.start:s.end] for s in deid.detect(text)] == expected


def test_a_relative_gives_a_surrogate_its_gender_and_a_given_name(surrogate: Deidentifier) -> None:
    from faker.providers.person.en_US import Provider

    out = surrogate.deidentify("Wife Ingrid updated by phone. Son Omar and daughter Yasmin visited.",
                               patient_id="p5").text
    m = re.fullmatch(r"Wife (\w+) updated by phone\. Son (\w+) and daughter (\w+) visited\.", out)
    assert m is not None, out
    assert m.group(1) in Provider.first_names_female and m.group(3) in Provider.first_names_female, out
    assert m.group(2) in Provider.first_names_male, out


@pytest.mark.parametrize("text", [
    "Bence Jones protein absent.", "Anti-Smith antibody levels ordered.", "a C-reactive protein of 25 mg/dL",
    "Exam: positive Murphy's sign, McBurney's point nontender, Babinski downgoing, Romberg negative.",
    "Placed in Trendelenburg for the Swan-Ganz. Foley in place. Holter monitor ordered; carotid Doppler normal.",
    "Child-Pugh B, Gleason 3+4, CHA2DS2-VASc 4, Coombs negative, s/p Whipple, Nissen and Roux-en-Y.",
])
def test_eponyms_a_clinician_writes_stay(deid: Deidentifier, text: str) -> None:
    assert "#" not in masked(deid, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("Device: Medtronic Azure XT DR MRI SureScan.", []),  # DR: dual-chamber rate-responsive; MRI: a test
    ("DR CHEN AWARE", ["CHEN"]),
    ("How are you Miss G?", ["G"]),
])
def test_an_imaging_test_after_a_title_is_no_name(deid: Deidentifier, text: str, expected: list) -> None:
    assert [text[s.start:s.end] for s in deid.detect(text)] == expected


def test_surname_first_field_with_a_surname_in_the_vocabulary(surrogate: Deidentifier) -> None:
    from faker.providers.person.en_US import Provider

    out = surrogate.deidentify("Patient Name: Nguyen, Thanh V.   Legal Sex: Male", patient_id="p6").text
    m = re.fullmatch(r"Patient Name: (\w+), (\w+) [A-Z]\.   Legal Sex: Male", out)
    assert m is not None and m.group(1) != "Nguyen", out
    assert m.group(1).title() in Provider.last_names and m.group(2).title() in Provider.first_names, out


def test_a_gendered_given_name_alone_stays_a_given_name(surrogate: Deidentifier) -> None:
    from faker.providers.person.en_US import Provider

    out = surrogate.deidentify("From: Smith, John <js@example.org>", patient_id="p7").text
    m = re.fullmatch(r"From: (\w+), (\w+) <[^>]+>", out)
    assert m is not None, out
    # "John" is also a surname in faker's lists; a given name of one gender stays a given name (male)
    assert m.group(2) in Provider.first_names_male and m.group(2) != "John", out


def test_lists_found_from_commas_are_the_list_patterns_matches() -> None:
    from clinforge.data.deid.lower_case_names import _lower_lists
    from clinforge.data.deid.name_patterns import LOWER_LIST

    texts = ["alice, bob, carol and dave came", "Xabc, def, ghi, jkl", "a, bc, def, ghi, jkl and mno",
             "seen: anna,bella, and cora, dora", "pt c/o \"gassy, sharp pain\" in abdomen, nausea, and chills",
             "no lists here", "one, two", "x, yyy, zzz, www, and vvv; aaa, bbb, ccc"]
    for text in texts:
        assert [m.span() for m in _lower_lists(text)] == [m.span() for m in LOWER_LIST.finditer(text)], text


@pytest.mark.parametrize(("text", "value"), [
    ("and your number is still four oh four , five five five , oh one nine nine ?",
     "four oh four , five five five , oh one nine nine"),
    ("[doctor] and you still work at the post office on ponce de leon avenue ?", "ponce de leon avenue"),
])
def test_transcript_phone_and_street_with_a_particle(deid: Deidentifier, text: str, value: str) -> None:
    assert masked(deid, text) == text.replace(value, "#" * len(value))
