"""PHI in real clinical notes (nursing, progress, ICU notes): upper- or lower-case throughout, abbreviated.

What this recognizer (``notes``) adds to ``patterns`` and ``names`` for such text, in any letter case:

* names after a title or role (``dr okafor``, ``NP DELIA``, ``CASEWORKER IRMA KOVALSKI``), after a relative
  (``SON DAVID``, ``dtr marisol``, ``DAUGHTER-TAMMI``), before a credential (``j. morrow rrt``, ``TOM R.
  OKONKWO-BELL, RRT``), and ``per X`` / ``X aware`` with X a US first or last name or no English word;
  in notes (see ``looks_like_note``) a US first name alone that is no ordinary word (``SUSAN``);
* dates without a year (``note_dates``): month/day (``7/22``) and ranges of them (``5/6-5/8``), month/two-digit
  year (``8/87``), ordinals after ``the``/``on`` (``the 11th``), month names alone, lower-case month abbreviations
  with a day or year (``jan 5``); fractions (``1/2``), pain scores (``7/10``), motor grades, ratios and settings
  are not;
* phone and pager numbers (``note_phones``): ``301 944-5032``, ``wife (555-1234)``, ``Pager #54321``, ``PG 33445``;
* places: words before a facility word (``MILLBROOK HOSPITAL``, ``oakridge valley hosp``, ``BRIARWOOD HOUSE``),
  hospital abbreviations after a place cue (``TO GH``, ``at gh``, ``UMMC``), unknown words after a transfer cue
  (``TRANSFERRED TO WEXFORD``), US places of the GeoNames gazetteer (``lexicons.us_places``: 1,000+ people;
  one that is a word only after ``in/from/at`` or a verb of going), ``St. Mary's``-style saint names, and common
  US hospital names (``Sacred Heart``, ``Holy Cross``);
* every other occurrence in the note, in any case, of a name or place word found above.

Also: a common US surname alone in a note (census rank <= 5,000, no word), an initial after a title (``MS S.``),
a month-day with a hyphen after ``on/since`` (``on 7-8``), a first name alone at the end of a note (a signature).

The lexicons are general (faker's ``en_US`` names and the US Census 1990 name lists, gated by rank; the GeoNames
US places; the package's English word list; a hand-written list of nursing abbreviations); none comes from an
annotated corpus.
"""

from __future__ import annotations

import re

from clinforge.data.deid.facility_names import one_case_facility_names
from clinforge.data.deid.lexicons import (
    CENSUS_COMMON_RANK,
    CLINICAL_CAPITALISED,
    CLINICAL_TERMS,
    FUNCTION_WORDS,
    NOTE_TERMS,
    allow_words,
    census_names,
    census_tail,
    common_words,
    english_rank,
    english_words,
    looks_like_note,
    person_names,
    us_names,
    us_places,
)
from clinforge.data.deid.medical_words import medical_words
from clinforge.data.deid.name_patterns import (
    AFTER_TITLE,
    EPONYM_AFTER,
    MEDICAL_SHAPE,
    MR_STUDIES,
    NOTE_TOKEN,
    PER_NAME,
    PER_WORDS,
    PERSON_DID,
    PRESENT_AFTER,
    RELATIVE_CUE,
    SPOKE_WITH,
    SPOKE_WORDS,
    WORD_NAMES,
    graded_valve_before,
)
from clinforge.data.deid.note_dates import find_note_dates
from clinforge.data.deid.note_phones import find_note_phones
from clinforge.data.deid.note_place_words import (
    ABBREV_CUE_BEFORE,
    ABBREV_NOT_PLACE,
    AFTER_PLACE_CUE,
    COUNTY,
    FACILITY_HEAD,
    HOSPITAL_FIRST,
    HOSPITAL_NAME,
    PLACE_BEFORE,
    PLACE_CUE_BEFORE,
    PLACE_CUE_LAST,
    ROLE_ENDINGS,
    SAINT,
    STOP_BEFORE_FACILITY,
    UNIT_AFTER,
    UNIT_CUE_BEFORE,
    WARD_AFTER,
)
from clinforge.data.deid.note_text_search import (
    cue_word_before,
    derived_word,
    find_prefixed,
    find_word,
    find_words,
    matches_at,
)
from clinforge.data.deid.recognizers import RECOGNIZERS, Recognizer
from clinforge.data.deid.single_case_addresses import find_home_towns
from clinforge.data.deid.spans import Span
from clinforge.data.deid.word_dates import DIGIT_WORDS, SPOKEN_ID_CUES, find_spoken_ids

_TITLE_CUE = (r"dr|drs|doctor|docter|mr|mrs|mister|missus|ms|miss|md|np|rn|nurse|caseworker|case worker|case manager|"
              r"social worker|"
              r"attending|resident|intern|fellow|house staff|housestaff|pastor|rev|father|chaplain|pcp|guardian|"
              r"interpreter")
_RELATIVE_CUE = RELATIVE_CUE
_TOKEN = NOTE_TOKEN
# (English-list ranks are positions in BERT's vocabulary, roughly commoner words first but no frequency count.)
# A name of some locale that is also in the English word list but past its 10,000th entry ("tyrone",
# "dmitri"; not "tom", "sue", "will") is taken as a name right after a relative ("son dmitri visited")
_RARE_WORD_RANK = 10_000
# After a relative, a name of some locale past the English list's 3,000th entry is taken as a name when
# the next word says what a person did ("DAUGHTER TESSA CALLED": "tessa" is the 9,340th word); "wife sad at bedside" and
# "son will call" stay words (an adjective, and a word in the early part of the list)
_CONFIRMED_NAME_RANK = 3_000
# Short first names ("al", "sue", "ted"): us_names keeps names of 4+ letters; after a relative and before what a
# person did they are names too. Census rank <= 1,000 of either gender.
_SHORT_FIRST_RANK = 1000
# A first name of census rank <= 500 (either gender) past the English list's 3,000th entry is a name right after a
# relative with nothing else said ("wife carol", "dtr ann"); "son will", "dtr may", "wife rose" stay words (early in
# the list) unless a verb of a person follows
_COMMON_FIRST_RANK = 500
_CUED_NAME = re.compile(
    r"(?<![a-z])(?P<cue>" + _TITLE_CUE + r"|" + _RELATIVE_CUE + r")(?:'s)?(?:\.|\b)[ \t]*(?:[,:()?-]+[ \t]*|-+)?"
    r"(?P<t1>" + _TOKEN + r")(?:\.?[ \t]+(?!and\b)(?P<t2>" + _TOKEN + r"))?(?:[ \t]+(?:and|&)[ \t]+(?P<t3>" + _TOKEN + r"))?")
_WORDS = re.compile(r"[a-z][a-z]*")  # [a-z]+, written so that re skips non-letters in C (a repeat has no first set)
# An initial after a title: "MS S. CARE", "mr I remained" (a capital in a note that is not all capitals).
_TITLE_INITIAL = re.compile(r"(?<![a-z])(?:(?:dr|mr|mrs|ms)\.?|miss)[ \t]+(?P<i>[a-z])(?P<dot>\.)?(?=[ \t,;:]|$)")
_TITLE_INITIAL_CUES = frozenset({"dr", "mr", "mrs", "ms", "miss"})
# The end of a note (its last line or sentence) when it is only a name, a signature: one to three words, the
# first a first name.
_LAST_LINE = re.compile(r"(?:^|\n|[.!?][ \t]+)[ \t]*(?P<n>[a-z][a-z'’-]+(?:\.?[ \t]+[a-z][a-z'’-]*\.?){0,2})[ \t|]*\s*$")
# After a first name: a surname, or a middle name / initial and a surname.
_PAIR_TAIL = re.compile(r"[ \t]+(?P<l>[a-z][a-z'’-]{2,})(?![a-z])")
_PAIR_TAIL_MIDDLE = re.compile(r"[ \t]+(?P<m>[a-z]+|[a-z]\.)[ \t]+(?P<l>[a-z][a-z'’-]{2,})(?![a-z])")
_HOUSE_WORD_AFTER = re.compile(r"[ \t]*(?:diet|staff|officer|md|doctor|call|keeping)")
_FACILITY_WORDS = frozenset(["hospital", "hosp", "hospiatal", "medical", "med", "memorial", "rehab", "rehabilitation", "nursing", "house", "campus", "clinic", "hospice", "health", "healthcare", "manor", "infirmary"])
_NP_NOT_CREDENTIAL = re.compile(r"[ \t]*(?:\d|cough|coughing|sputum|secretions|at[ \t]*\d|o2)")
# Before "clinic", "health": a specialty names a department, not a place ("NEUROLOGY CLINIC", "pain clinic")
_SPECIALTY = re.compile(r"[a-z]*(?:ology|ologic|iatry|iatric|iatrics|pedic|pedics|surgical|surgery|medicine)|pain|neuro|"
                        r"ortho|cardiac|renal|transplant|dialysis|wound|diabetes|heart|eye|cancer|infusion|"
                        r"anticoagulation|coumadin|methadone|urgent|walk-in|fertility|sleep|memory|headache")
_AWARE_WORDS = frozenset(["aware", "notified", "paged", "see", "family"])
_CREDENTIALS = frozenset(["rn", "rrt", "crt", "rpt", "lpn", "msw", "licsw", "lcsw", "np", "slp", "otr", "cna", "bsn", "ccrn",
                          "md"])
_NAME_PARTICLES = frozenset({"van", "von", "de", "del", "della", "der", "den", "da", "di", "du", "le", "la", "bin",
                             "ben", "al", "el", "st", "mac", "mc"})
_LIST_NEXT = re.compile(r"(?:[ \t]*,[ \t]*(?:and[ \t]+)?|[ \t]+(?:and|&)[ \t]+)(?P<n>[a-z][a-z'’-]+)(?![a-z])")
_SPEAKER_START = re.compile(r"(?:^|\n)[ \t]*$")
_ARTICLE_BEFORE = re.compile(r"(?<![a-z])(?:the|a|her|his|their|your|my|our|its)[ \t]+$")
_STRONG_TITLES = frozenset({"dr", "drs", "doctor", "docter", "mr", "mrs", "mister", "missus"})  # (spelled out in speech)
_CUE_WORDS = frozenset(w.split()[0].split("-")[0] for w in re.sub(r"\?|\(\?:|\)|\\", "", (
    _TITLE_CUE + "|" + _RELATIVE_CUE).replace(" ?", " ")).split("|")) | {
    "grandson", "granddaughter", "grandchild", "stepdaughter", "stepson"}
_TITLE_WORDS = frozenset(re.sub(r"\\?[ ]", " ", _TITLE_CUE).split("|"))
_CREDENTIAL = re.compile(r"(?<![a-z])(?:rn|rrt|crt|rpt|lpn|msw|licsw|lcsw|np|slp|otr|cna|bsn|ccrn|md)(?![a-z])")
_BEFORE_CREDENTIAL = re.compile(r"((?:[a-z]\.?[ \t]+)?(?:" + _TOKEN + r"\.?[ \t]+){0,2}" + _TOKEN + r")[ \t]*,?[ \t]*$")
# "(son)", "(brother/hcp)", "(dtr, hcp)": a relation in brackets after the name
_RELATIVE_IN_PARENS = re.compile(r"\((?:" + _RELATIVE_CUE + r")(?:[ \t]*[/,][ \t]*(?:" + _RELATIVE_CUE + r"))?\)")
_TWO_TOKENS_BEFORE = re.compile(r"(?<![a-z'’-])(?:(?P<t1>" + _TOKEN + r")[ \t]+)?(?P<t2>" + _TOKEN + r")[ \t]*$")
_TOKEN_BEFORE = re.compile(r"(?<![a-z'’-])(" + _TOKEN + r")[ \t]+$")
def us_cities() -> frozenset[str]:
    """US cities, towns and villages of 1,000+ people (the GeoNames gazetteer, ``lexicons.us_places``), lower-cased,
    without the names of states (a state is no Safe Harbor identifier).

    Example:
        >>> "baltimore" in us_cities() and "catonsville" in us_cities() and "california" not in us_cities()
        True
    """
    return us_places()


class NoteRecognizer(Recognizer):
    """Names, dates, phones and places as written in real clinical notes (see the module docstring).

    Example:
        >>> t = "PT TRANSFERRED TO GH 7/22. SON DAVID CALLED, PAGER #54321. DR okafor AWARE."
        >>> from clinforge.data.deid import merge_spans
        >>> [(t[s.start:s.end], s.entity_type) for s in merge_spans(NoteRecognizer().analyze(t))]
        [('GH', 'LOCATION'), ('7/22', 'DATE'), ('DAVID', 'NAME'), ('54321', 'PHONE'), ('okafor', 'NAME')]
    """

    name = "notes"
    option_names = ()
    entities = ("NAME", "DATE", "PHONE", "LOCATION", "MRN")

    def __init__(self, **options):
        super().__init__(**options)
        self._first, self._last = us_names()
        english = english_words() | medical_words()  # "coronary", "pediatrician": words, not rare names
        self._stop = (FUNCTION_WORDS | CLINICAL_TERMS | CLINICAL_CAPITALISED | NOTE_TERMS | WORD_NAMES
                      | STOP_BEFORE_FACILITY)
        self._rank = english_rank()
        # Common census names past the English list's 10,000th entry (the list is BERT's vocabulary, which holds many
        # surnames there: "kowalski" is its 20,889th; its order is no frequency order, hence the census condition):
        # names where a cue says one follows ("NP KOWALSKI AWARE").
        census = census_names()
        self._rare_word_names = frozenset(
            n for key in ("last", "male", "female") for n, rank in census[key].items()
            if rank <= CENSUS_COMMON_RANK[key] and len(n) >= 4 and n.isalpha()
            and self._rank.get(n, 0) >= _RARE_WORD_RANK and n not in medical_words()) - self._stop - allow_words()
        # An ordinary word: in the English list and no US name (frequent names are in the English list too).
        self._english = english - self._first - self._last - self._rare_word_names
        first_all, last_all = person_names()
        self._names_all = (first_all | last_all | self._first | self._last | census_tail()
                           | self._rare_word_names) - self._stop
        self._short_first = frozenset(n for key in ("male", "female") for n, rank in census[key].items()
                                      if 2 <= len(n) <= 3 and rank <= _SHORT_FIRST_RANK) - self._stop - FUNCTION_WORDS
        # Common US first names that are also rarer words ("carol", "dawn", "sue"; WORD_NAMES, which need a cue, kept):
        # a name right after a relative
        self._common_first = frozenset(
            n for key in ("male", "female") for n, rank in census[key].items()
            if rank <= _COMMON_FIRST_RANK and self._rank.get(n, _CONFIRMED_NAME_RANK) >= _CONFIRMED_NAME_RANK
        ) - (FUNCTION_WORDS | CLINICAL_TERMS | CLINICAL_CAPITALISED | NOTE_TERMS | STOP_BEFORE_FACILITY)
        self._plain = english - self._names_all  # a word that is no name in any of faker's locales
        self._tail = census_tail() - self._stop - english - allow_words()
        self._english_all = english
        self._common = common_words()
        self._allow = allow_words()
        # Surnames common enough to stand alone in a note (census rank <= CENSUS_COMMON_RANK) and no word, not even
        # inflected ("blocker", "redden"): the rarer tail is shorthand too often ("fick", "riss").
        self._surnames_alone = frozenset(
            t for t in self._last - self._first if len(t) >= 4 and t not in self._stop and t not in self._english_all
            and t not in self._allow and not self._is_word(t) and not derived_word(t, english)
            and not MEDICAL_SHAPE.search(t))
        self._cities = frozenset(c for c in us_cities() if c not in self._stop and len(c) >= 4
                                 and c not in common_words() and c not in WORD_NAMES and c not in allow_words())
        self._towns = us_cities() - self._stop  # any town after "lives in" / "moved to" in one-case text
        self._city_first: dict[str, list[str]] = {}
        for c in self._cities:
            self._city_first.setdefault(c.split()[0], []).append(c)
        # The same cities by first word, then by length: each occurrence of a first word is compared with the
        # cities of each length that start with it (one slice and a set test), instead of one str.find through the
        # note per city ("new" alone starts ~150 of them).
        self._city_by_len: dict[str, tuple[tuple[int, frozenset[str]], ...]] = {
            f: tuple((n, frozenset(c for c in cities if len(c) == n)) for n in sorted({len(c) for c in cities}))
            for f, cities in self._city_first.items()}

    def _is_word(self, token: str) -> bool:
        """An English word that is no US name, also inflected ("sedated", "faxed", "paged", "outlined")."""
        if token in self._english:
            return True
        for suffix in ("ed", "d", "ing", "s", "es", "ly"):
            if token.endswith(suffix) and token[:-len(suffix)] in self._english_all:
                return True
        return False

    def _name_like(self, token: str, generous: bool = False) -> bool:
        """A US first/last name (``generous``: a name of any faker locale), or a word in no list (a rare surname)."""
        if token in self._stop or len(token) < 2:
            return False
        if token in self._first or token in self._last or (generous and token in self._names_all) \
                or token in self._rare_word_names:
            return True
        return (len(token) >= 4 and not self._is_word(token) and token.replace("-", "").isalpha()
                and not MEDICAL_SHAPE.search(token))

    def _relative_name(self, text: str, lower: str, m: re.Match[str], sep: str, mixed: bool) -> bool:
        """Whether the word after a relative (``m``'s ``t1``) is a name, each reason in turn."""
        t1, t2, t3 = m.group("t1"), m.group("t2"), m.group("t3")
        if "-" in t1:
            return False
        if self._appositive(text, lower, m, sep, mixed) or self._name_like(t1):  # "Son, Ed,"; "dtr marisol"
            return True
        did = t2 in PERSON_DID or PRESENT_AFTER.match(lower, m.end("t1")) is not None
        if t2 in PERSON_DID and (t1 in self._names_all or t1 in self._first) and t1 not in self._stop \
                and t1 not in FUNCTION_WORDS and self._rank.get(t1, _CONFIRMED_NAME_RANK) >= _CONFIRMED_NAME_RANK:
            return True  # "DAUGHTER TESSA CALLED"
        if did and t1 in self._first and t1 not in FUNCTION_WORDS:  # a US name, not any locale's ("wife sad at")
            return True  # "dtr faith called", "SISTER JOY VISITED": a US first name that is a word, between a
            # relative and what a person did, is a name even on the stop list
        if t1 in self._common_first and "." not in sep:
            return True  # "wife carol and dtr ann": a common US first name that is no everyday word
        if did and t1 in self._short_first:
            return True  # "husband al called", "SISTER SUE AT BEDSIDE"
        if t1 in self._first and t1 not in FUNCTION_WORDS and "." not in sep and (
                "(" in sep and lower.startswith(")", m.end("t1"))
                or mixed and text[m.start("t1")].isupper() and text[m.start("t1") + 1:m.end("t1")].islower()):
            return True  # "son (mark)", "husband Ed": a first name in brackets, or capitalised in text with case
        if t1 in self._names_all and (t1 not in self._english_all or self._rank.get(t1, 0) >= _RARE_WORD_RANK):
            return True  # "son dmitri visited"
        if t1 in self._names_all and (mixed and text[m.start("t1")].isupper() or (t2 is not None and self._name_like(
                t2)) or (t3 is not None and self._name_like(t3))):
            return True  # "Son Tessa", "daughter tessa kowalski", "daughters tessa and roger"
        # a first name that is also a word, then a surname in no word list ("husband rich martino")
        return t1 in WORD_NAMES and t2 is not None and self._name_like(t2) and t2 not in self._english_all

    def _appositive(self, text: str, lower: str, m: re.Match[str], sep: str, mixed: bool) -> bool:
        """In text with case, a word written capitalised and set off by commas right after a relative, the way a name
        is given in passing ("Son, Ed, was updated"): a name of some locale, or a word in no English list that is two
        letters long or no clinical term. "ED" in capitals (the department), "Wife, Lasix, given", "Wife, Son, and
        Daughter" and "Husband, However," stay; text in one case has its own relative rules."""
        t1 = m.group("t1")
        if not mixed or "," not in sep or not lower.startswith(",", m.end("t1")) or len(t1) < 2:
            return False
        written = text[m.start("t1"):m.end("t1")]
        if not (written[0].isupper() and written[1:].islower()) or t1 in _CUE_WORDS or t1 in FUNCTION_WORDS:
            return False
        unknown = not self._is_word(t1) and t1 not in self._english_all
        clinical = t1 in NOTE_TERMS or t1 in CLINICAL_TERMS or MEDICAL_SHAPE.search(t1) is not None
        return t1 in self._names_all or unknown and (len(t1) == 2 or not clinical)

    def analyze(self, text: str) -> list[Span]:
        lower = text.lower()
        if len(lower) != len(text):  # keep offsets exact when a character changes length when lower-cased
            lower = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        out: list[Span] = []
        # The distinct words, once: each rule below runs only when its cue words occur (set intersections in C),
        # so a note pays for the few scans it needs, not for all of them.
        words = set(_WORDS.findall(lower))
        self._names(text, lower, words, out)
        find_note_dates(text, lower, words, out, self.span)
        find_note_phones(lower, words, out, self.span, self._phone_owner)
        if not words.isdisjoint(SPOKEN_ID_CUES) and len(words & DIGIT_WORDS) >= 2:  # (the word set gates it)
            for start, end, etype, why in find_spoken_ids(text, lower):  # "record number four four eight ..."
                out.append(self.span(start, end, etype, 0.75, why))
        self._places(text, lower, words, out)
        out += self._propagate(text, lower, out)
        return out

    def _names(self, text: str, lower: str, words: set[str], out: list[Span]) -> None:
        add = out.append
        mixed = not text.isupper() and not text.islower()
        for m in matches_at(_CUED_NAME, lower, words & _CUE_WORDS):
            cue = m.group("cue")
            titled = cue in _TITLE_WORDS
            t1 = m.group("t1")
            strong = cue in _STRONG_TITLES
            if titled and cue in ("mr", "ms", "mrs") and ("," in lower[m.end("cue"):m.start("t1")]
                                                        or lower[max(0, m.start() - 3):m.start()] == "an "):
                continue  # "-MR, inf hypokinesis", "MS, alert", "an MR venogram": mitral regurgitation, mental
                # status, magnetic resonance; no title
            if cue == "mr" and t1.startswith(MR_STUDIES):
                continue  # "MR venogram", "mr angiography": magnetic resonance
            if cue in ("mr", "ms") and graded_valve_before(lower, m.start()):
                continue  # "Mild MR. RVSP 38", "moderate MS": a graded valve lesion
            if cue == "doctor" and _ARTICLE_BEFORE.search(lower, max(0, m.start() - 8), m.start()):
                continue  # "her doctor despite", "the doctor because": the noun, not a title
            sep = lower[m.end("cue"):m.start("t1")]
            if titled and (":" in sep and _SPEAKER_START.search(lower, max(0, m.start() - 4), m.start())
                           or len(cue) > 3 and ("," in sep or "." in sep)) and not (
                    "'" not in t1 and (self._name_like(t1) or t1 in self._names_all)):
                continue  # a speaker's label opening a line ("Doctor: Oh, that's good") or a title said to someone
                # ("Yes doctor, that's correct", "Hi Doctor. I'm the mother"): what follows is speech
            if strong:
                # (a word ending in -ed / -ing is a verb after "dr" ("dr ordered") unless it is a US surname or
                # first name ("DR.KING", "dr reed"); so is a note term ("dr. foley"))
                census = t1 in self._last or t1 in self._first
                if len(t1) == 1 and m.group("t2") and self._name_like(m.group("t2"), generous=True):
                    census = True  # "dr. o rourke", "dr d angelo": the surname's O' / D' written apart; "dr. v.
                    # patel": an initial and the surname
                ok = ((len(t1) >= 2 or census) and t1 not in AFTER_TITLE and t1 not in FUNCTION_WORDS
                      and (census or (t1 not in NOTE_TERMS and t1 not in CLINICAL_TERMS
                                      and not t1.endswith(("ed", "ing")))))
            elif titled:  # a role ("np", "ms", "caseworker"): a name of some locale ("ms sedated" is no name)
                ok = (t1 in self._first or t1 in self._last or t1 in self._names_all) and t1 not in self._stop \
                    and not self._is_word(t1)
            else:
                ok = self._relative_name(text, lower, m, sep, mixed)
            if not ok:
                continue
            end = m.end("t1")
            t2 = m.group("t2")
            if t2 and self._name_like(t2, generous=True) and t2 not in self._plain and (
                    t2 in _NAME_PARTICLES or t2 in self._first or t2 in self._last
                    or self._rank.get(t2, _RARE_WORD_RANK) >= _RARE_WORD_RANK
                    or (mixed and text[m.start("t2")].isupper())):
                # (a frequent word that is no US name, lower-case or in a text without case, is the next word of
                # the sentence: "Dr. Smith said", "DR GRIFFIN MADE AWARE"; "Ayla Montenegro" stays a name)
                end = m.end("t2")
            add(self.span(m.start("t1"), end, "NAME", 0.8 if titled else 0.7,
                          "name after a title" if titled else "name after a relative"))
            pos = end
            while not titled or cue == "drs":  # "sons smokey, morris and roger", "drs smith, jones and lee": the
                # other names of a list after a relative or doctors
                nxt = _LIST_NEXT.match(lower, pos)
                if nxt is None or nxt.group("n") in FUNCTION_WORDS or not (
                        nxt.group("n") in self._first or nxt.group("n") in self._last or self._name_like(nxt.group("n"))):
                    break
                add(self.span(nxt.start("n"), nxt.end("n"), "NAME", 0.65, "name in a list after a relative"))
                pos = nxt.end()
            t3 = m.group("t3")
            if titled and t3 and self._name_like(t3):
                add(self.span(m.start("t3"), m.end("t3"), "NAME", 0.7, "second name after a title"))
        for m in matches_at(_CREDENTIAL, lower, words & _CREDENTIALS):
            line_start = lower.rfind("\n", 0, m.start()) + 1
            before = _BEFORE_CREDENTIAL.search(lower, max(line_start, m.start() - 40), m.start())
            if before is None:
                continue
            tokens = list(re.finditer(r"[a-z][a-z'’-]*", before.group(1)))
            keep: list[re.Match[str]] = []
            for i in range(len(tokens) - 1, -1, -1):  # the longest run of name-like words (or initials) ending at
                word = tokens[i].group()                 # the credential
                initial = before.start(1) + tokens[i - 1].start() if i > 0 and len(tokens[i - 1].group()) == 1 else -1
                after_initial = initial >= 0 and lower[initial + 1:initial + 2] == "." and not (
                    initial and lower[initial - 1].isalpha()) and word not in self._english_all \
                    and word not in FUNCTION_WORDS and word not in NOTE_TERMS  # "j. yi, md": a short surname
                if not (len(word) == 1 or self._name_like(word, generous=True) or after_initial
                        or (word in self._names_all and word not in FUNCTION_WORDS)):
                    break
                keep.append(tokens[i])
            if lower[m.start():m.end()] == "md" and not any(len(t.group()) == 1 for t in keep):
                # "paged md", "icu md aware": the physician; without an initial ("j. yi, md") a name before it is
                # a US name or a hyphenated one ("stord-painter md")
                keep = [t for t in keep if t.group() in self._first or t.group() in self._last or "-" in t.group()]
            if lower[m.start():m.end()] == "np":  # also "nasal prongs": only after a name of some locale
                keep = [t for t in keep if len(t.group()) == 1 or t.group() in self._names_all]
                if _NP_NOT_CREDENTIAL.match(lower, m.end()):
                    continue  # "STRONG NP COUGH": non-productive; "NP 4L": nasal prongs
            if any(len(t.group()) > 1 for t in keep):
                add(self.span(before.start(1) + keep[-1].start(), before.start(1) + keep[0].end(), "NAME", 0.75,
                              "name before a credential"))
        for m in (_RELATIVE_IN_PARENS.finditer(lower) if "(" in lower and not words.isdisjoint(_CUE_WORDS) else ()):
            before = _TWO_TOKENS_BEFORE.search(lower, max(0, m.start() - 40), m.start())
            if before is None:  # "hank przybylo (son)": the name written before its relation
                continue
            t1, t2 = before.group("t1"), before.group("t2")
            # a first name that is also a word ("tom", "bill") is a name right before its relation in brackets
            if not (self._name_like(t2, generous=True) and t2 not in self._plain or t2 in self._first
                    and t2 not in FUNCTION_WORDS):
                continue
            start = before.start("t1") if t1 and (t1 in self._names_all or self._name_like(t1)) else before.start("t2")
            add(self.span(start, before.end("t2"), "NAME", 0.7, "name before a relation in brackets"))
        if not (words.isdisjoint(self._first) and words.isdisjoint(self._last)):
            for m in matches_at(PER_NAME, lower, words & PER_WORDS):
                token = m.group("a")
                if token not in self._stop and ((token in self._first and token not in WORD_NAMES)
                                                or (token in self._last and token not in self._english_all)) \
                        and not EPONYM_AFTER.match(text[m.end("a"):m.end("a") + 60]):  # "with Whipple disease"
                    add(self.span(m.start("a"), m.end("a"), "NAME", 0.6, "name after 'per' / 'with'"))
        for m in matches_at(SPOKE_WITH, lower, words & SPOKE_WORDS):
            token = m.group("a")
            if (token in self._tail or token in self._rare_word_names) and not self._is_word(token) \
                    and not MEDICAL_SHAPE.search(token) \
                    and not EPONYM_AFTER.match(text[m.end("a"):m.end("a") + 60]):
                add(self.span(m.start("a"), m.end("a"), "NAME", 0.6, "census name after 'spoke with' / 'paged'"))
        for aware, _ in find_words(lower, words & _AWARE_WORDS):
            before = _TOKEN_BEFORE.search(lower, max(0, aware - 40), aware)
            if before is None:
                continue
            token, start = before.group(1), before.start(1)
            if token == "made":  # "X made aware"
                before = _TOKEN_BEFORE.search(lower, max(0, start - 40), start)
                if before is None:
                    continue
                token, start = before.group(1), before.start(1)
            if not (self._name_like(token) and token not in self._english):
                continue
            end = start + len(token)
            prev = _TOKEN_BEFORE.search(lower, max(0, start - 20), start)
            if prev and len(prev.group(1)) > 1 and self._name_like(prev.group(1), generous=True) \
                    and prev.group(1) not in self._plain:
                start = prev.start(1)
            add(self.span(start, end, "NAME", 0.6, "name before 'aware'"))
        for start, end in find_words(lower, (words & self._first) - self._stop):
            for tail in (_PAIR_TAIL, _PAIR_TAIL_MIDDLE):  # "karen dzierba", "karen ann dzierba", "tom r. bell"
                m = tail.match(lower, end)
                if m is None:
                    continue
                last = m.group("l")
                middle = m.groupdict().get("m")
                if middle and len(middle.rstrip(".")) > 1 and (middle in FUNCTION_WORDS or middle not in self._first):
                    continue  # "wilson at johnson": a middle name is a first name or an initial
                if last in self._stop or not (
                        self._name_like(last) and last not in self._english_all
                        or (last in self._last and last not in self._common and not self._is_word(last))):
                    continue
                add(self.span(start, m.end("l"), "NAME", 0.65, "first name + surname"))
                break
        found = {t for t in words & self._first if len(t) >= 4 and t not in self._stop
                 and t not in self._english}
        if found and looks_like_note(text):
            for start, end in find_words(lower, found):
                if not EPONYM_AFTER.match(text[end:end + 60]):  # "Wilson disease"
                    add(self.span(start, end, "NAME", 0.55, "US first name in a note"))
        for m in matches_at(_TITLE_INITIAL, lower, words & _TITLE_INITIAL_CUES):
            if m.group("dot") or (text[m.start("i")].isupper() and not text.isupper()):
                add(self.span(m.start("i"), m.end(), "NAME", 0.7, "initial after a title"))
        tail = _LAST_LINE.search(lower, max(0, len(lower) - 60))
        if tail is not None:
            tokens = re.findall(r"[a-z][a-z'’-]*", tail.group("n"))
            if tokens[0] in self._first and tokens[0] not in self._stop and all(
                    t in _CREDENTIALS or len(t) == 1 or self._name_like(t, generous=True) for t in tokens):
                add(self.span(tail.start("n"), tail.end("n"), "NAME", 0.6, "name alone on the last line"))
        alone = words & self._surnames_alone
        if alone and looks_like_note(text):  # "LINDGREN FOLLOWING", "d/w castellano": a common surname, no word
            for start, end in find_words(lower, alone):
                if not EPONYM_AFTER.match(text[end:end + 60]):
                    add(self.span(start, end, "NAME", 0.55, "US surname in a note"))

    def _phone_owner(self, a: str, b: str) -> bool:
        """Whether the two words before a phone number ("lopie certusi cell# 410-...", "daughter ann 555-...") are
        the name of its owner: two words in no word list, or a first name and such a word, and no relation word."""
        parts = set(re.split(r"[-'’]", a + "-" + b))
        return parts.isdisjoint(_CUE_WORDS) and "grand" not in parts and self._name_like(
            b, generous=True) and b not in self._plain and (
            self._name_like(a, generous=True) and a not in self._plain or a in self._first)

    def _places(self, text: str, lower: str, words: set[str], out: list[Span]) -> None:
        add = out.append
        for m in matches_at(FACILITY_HEAD, lower, words & _FACILITY_WORDS):
            before = list(re.finditer(r"[a-z][a-z'’.-]*", lower[max(0, m.start() - 40):m.start()]))
            start = None
            base = max(0, m.start() - 40)
            # a department before "clinic" ("NEUROLOGY CLINIC"); before "hospital" a specialty is part of a name
            # ("X Orthopedic Hospital"), so it does not stop the walk there
            department_head = not m.group().startswith("hosp")
            for w in reversed(before[-3:]):
                token = w.group().rstrip(".")
                if token in STOP_BEFORE_FACILITY or token in FUNCTION_WORDS or token in NOTE_TERMS \
                        or (department_head and _SPECIALTY.fullmatch(token)):
                    break
                if lower[base + w.end():m.start()].strip(" \t'’s-") or len(token) < 3 or token in self._common:
                    break  # punctuation, a line break or a plain word between the word and the facility word
                start = base + w.start()
                base_end = base + w.start()
                if lower[base_end - 1:base_end] == "\n":
                    break
            if start is None:
                continue
            head = m.group()
            if head == "house" and _HOUSE_WORD_AFTER.match(lower, m.end()):
                continue  # "tolerating house diet", "house staff"
            if not head.startswith("hosp") and head not in ("medical center", "medical ctr", "med center") and any(
                    t in self._english for t in lower[start:m.start()].split()):
                continue
            add(self.span(start, m.end(), "LOCATION", 0.75, "name before a facility word"))
        # Words in no list (typos, rare names, surrogate place names) are few per note: find them by set algebra,
        # then look at what stands before and after each, instead of scanning the note once per cue.
        rare = words - self._english_all - self._stop
        unknown: set[str] = set()  # the rare words the two place rules after the loop may accept
        for w in rare:
            n = len(w)
            if n < 6 and (w[-1] == "h" or w.endswith("mc")):  # an abbreviation ("gh", "bmch") or initials ("ummc")
                abbrev = 1 < n < 5 and w not in ABBREV_NOT_PLACE
                initials = n > 2 and w.endswith("mc") and w.isalpha()
                found = find_word(lower, w) if abbrev or initials else []
                for start, end in (found if abbrev else ()):
                    if ABBREV_CUE_BEFORE.search(lower, max(0, start - 12), start):
                        add(self.span(start, end, "LOCATION", 0.6, "hospital abbreviation after a place cue"))
                if initials:  # "UMMC", "BWMC": a medical center's initials
                    for start, end in found:
                        add(self.span(start, end, "LOCATION", 0.6, "medical-center initials"))
                    continue
            if n >= 4 and w not in self._first and w not in self._last and w.isalpha():
                unknown.add(w)
        size = len(lower)
        for m in (AFTER_PLACE_CUE.finditer(lower) if unknown else ()):
            w = m.group("w")
            if w not in unknown:
                continue
            start = m.end()
            end = start + len(w)
            if end < size and (lower[end].isalpha() or lower[end] in "'’"):
                continue  # not a whole word (find_word's bound)
            if w.endswith(ROLE_ENDINGS) or WARD_AFTER.match(lower, end):
                continue  # "presented to the pediatrician", "admitted to the coronary care unit": no place
            if cue_word_before(lower, start) in PLACE_CUE_LAST and PLACE_CUE_BEFORE.search(
                    lower, max(0, start - 40), start):
                add(self.span(start, end, "LOCATION", 0.6, "unknown word after a place cue"))
            elif (UNIT_AFTER.match(lower, end) and UNIT_CUE_BEFORE.search(lower, max(0, start - 8), start)
                  and self._name_like(w)):
                add(self.span(start, end, "LOCATION", 0.6, "unknown word before a unit number"))
        if text.isupper() or text.islower():
            for start, end, why in one_case_facility_names(lower, self._stop, self._common, words):
                add(self.span(start, end, "LOCATION", 0.6, why))
            find_home_towns(lower, words, add, self.span, self._towns, self._plain)
        for m in (COUNTY.finditer(lower) if "county" in words else ()):
            if m.group("w") not in self._stop and m.group("w") not in self._common:
                add(self.span(m.start(), m.end(), "LOCATION", 0.7, "county name"))
        for m in (SAINT.finditer(lower) if "st" in words or "saint" in words else ()):
            if m.group("w") in self._names_all:
                add(self.span(m.start(), m.end(), "LOCATION", 0.7, "saint's name (hospital)"))
        for m in (HOSPITAL_NAME.finditer(lower) if not words.isdisjoint(HOSPITAL_FIRST) else ()):
            add(self.span(m.start(), m.end(), "LOCATION", 0.7, "common hospital name"))
        firsts = words & self._city_first.keys()
        if firsts:  # a regex of only the cities whose first word occurs here (one set intersection per text)
            mixed = not text.isupper() and not text.islower()
            city_ends: set[int] = set()
            for start, end in find_prefixed(lower, [(f, self._city_by_len[f]) for f in firsts]):
                if mixed and not text[start].isupper():
                    continue
                if lower[start:end] in self._english_all and not PLACE_BEFORE.search(
                        lower, max(0, start - 24), start) and start - 1 not in city_ends:
                    continue  # "ORANGE", "reading": a word unless a place cue, or a city found and a hyphen
                    # ("Melrose-Wakefield"; not "hawkins-kennedy test", where "hawkins" had no cue either)
                if lower[end:end + 1] == "-":
                    city_ends.add(end)
                add(self.span(start, end, "LOCATION", 0.6, "US city (GeoNames)"))

    def _propagate(self, text: str, lower: str, spans: list[Span]) -> list[Span]:
        """Every other occurrence of a name or place word found in this text (any case)."""
        tokens: dict[str, str] = {}
        for s in spans:
            if s.entity_type not in ("NAME", "LOCATION") or s.score < 0.6:
                continue
            plain = self._plain if s.entity_type == "NAME" else self._common
            for t in re.findall(r"[a-z][a-z'’-]{2,}", lower[s.start:s.end]):
                if t not in self._stop and t not in plain and not FACILITY_HEAD.fullmatch(t):
                    tokens.setdefault(t, s.entity_type)
        if not tokens:
            return []
        covered = {(s.start, s.end) for s in spans}
        out = []
        for start, end in find_words(lower, tokens):
            if (start, end) not in covered and not EPONYM_AFTER.match(text[end:end + 60]):
                out.append(self.span(start, end, tokens[lower[start:end]], 0.6, "same word found elsewhere in the note"))
        return out


RECOGNIZERS.register("notes", NoteRecognizer)
