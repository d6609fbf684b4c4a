"""Person names (patients, relatives, clinicians) and place names found by lexicon + context, without a model.

How a name is found, in order of confidence:

1. a title or role before capitalised words ("Dr. Graves", "Mrs. O'Neil", "Patient: Kreutzmann") — even an
   eponym or common word after a title is a name;
2. a run of capitalised tokens with at least one token in the first/last-name lexicon (extracted from faker's
   86 locales) that is not a common English or clinical word; unknown capitalised neighbours, weak names
   ("Hill", "Becker") and initials are absorbed ("Teresa Kreutzmann", "Vanessa P. Hertzog");
3. capitalised words after a strong context cue ("my name is", "says", "Dear", "signed by") or before a
   credential (", MD", " RN");
4. (score 0.5) an UNKNOWN capitalised word — in no name list, no allow-list and not among the ~21k frequent
   English words of ``english_words.txt``, and without a drug/procedure word shape — inside a sentence, or at
   a sentence start before a verb ("is", "had", "began", a speaker colon); after "in/from/at" it is a place;
   two or three of them opening a sentence that goes on in lower case ("Zargan Vedzizhev from ..."); after a
   first name that is also a word ("Jan Jílek"); before a verb only people take ("Alvir spent"), whatever
   its suffix;
5. capitalised words chained by commas / "and" to a found name ("Kónya, Becker and Vasquez"), and runs of
   unknown words alone on a line (address blocks);
6. lower-case names (speech transcripts) only in context: after a title ("mrs . peterson"), a greeting ("hi ,
   martha"), a discourse word ("so carolyn tell me"), as a vocative between commas, before "is a 50-year-old",
   a verb, or a date of birth / MRN; alone on a line with a lexicon name ("aksel kristensen" in a signature
   block); a first name that is no English word after "with / by / to / and / me / call me" ("follow up with
   monika žilková"); three or more first names in a comma list; first + last name pairs when the whole text
   is lower case (these rules live in ``lower_case_names.py``);
7. every other occurrence, in the same text (and, through ``Deidentifier.deidentify_many``, in the other
   fields of the record), of a name token found by 1-6, in any case: "Hakuba had given Hakuba his address".

A run is dropped when the word after it shows an eponym ("Graves disease", "Bell's palsy", "Hodgkin lymphoma")
or a facility ("Mercy Medical Center" is a place). Only capitalised tokens are visited (one regex scan, one set
lookup each), so the cost grows with the number of capitalised words, not with the size of the lexicons.
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

from clinforge.data.deid.form_names import surname_first_fields
from clinforge.data.deid.lexicons import (
    CLINICAL_TERMS,
    EPONYMS,
    FUNCTION_WORDS,
    NOTE_SHORTHAND,
    allow_words,
    city_names,
    common_words,
    english_rank,
    english_words,
    looks_like_note,
    person_names,
    trie_regex,
    us_names,
    us_places,
    world_cities,
)
from clinforge.data.deid.lower_case_names import LowerCaseNames
from clinforge.data.deid.medical_words import medical_words
from clinforge.data.deid.name_patterns import (
    ABBREVIATED_TITLES,
    AMBIGUOUS_TITLES,
    CAP_TOKEN,
    CREDENTIAL_AFTER,
    DESCENT_AFTER,
    DESCENT_WORDS,
    DOSE_AFTER,
    DOTTED_CREDENTIAL,
    EPONYM_AFTER,
    FACILITY_AFTER,
    INSURER_OPENERS,
    JOIN,
    LINE_END,
    LINE_START,
    LIST_GAP,
    LOCATION_CUES,
    LOWER_WORD_AFTER,
    MAYBE_TITLE,
    MEDICAL_SHAPE,
    MR_STUDIES,
    NAME_CUES,
    NO_PROPAGATION,
    NOTE_WEAK,
    PERSON_VERB_AFTER,
    PLACE_VERBS,
    SAYS_AFTER,
    SENTENCE_END,
    SERVICE_AFTER,
    SPEAKER_LABEL,
    SPECIES_AFTER,
    SPECIMEN_SITES,
    SPEECH_AFTER,
    TITLE_BEFORE,
    TITLE_WORD_SCAN,
    TITLES,
    VERB_AFTER,
    graded_valve_before,
    insurer_at,
    relative_before,
)
from clinforge.data.deid.place_scale import large_place_phrases
from clinforge.data.deid.recognizers import RECOGNIZERS, Recognizer
from clinforge.data.deid.spans import Span


def _words_before(text: str, start: int, n: int = 4) -> list[str]:
    """The last ``n`` whitespace-separated words before ``start``, lower-cased (a cheap look-behind)."""
    return text[max(0, start - 40):start].lower().split()[-n:]


def _phrase_hit(words: list[str], phrases: frozenset[str]) -> str | None:
    for k in range(min(len(words), 4), 0, -1):
        phrase = " ".join(words[-k:])
        if phrase in phrases:
            return phrase
        if phrase.endswith(",") and phrase[:-1] in phrases:
            return phrase[:-1]
    return None


@lru_cache(maxsize=64)
def _token_regex(tokens: frozenset[str]) -> re.Pattern[str]:
    """One compiled prefix-tree regex per set of names (a record's turns share it)."""
    return re.compile(trie_regex(sorted(tokens)))


_PLACE_CUE_ENDS = ("in ", "to ", "from ", "near ", "IN ", "TO ", "FROM ", "NEAR ", "In ", "To ", "From ", "Near ")
_CITY_WORD_RANK = 3000  # a world city's one-word name after "in" must be rarer English than this ("in Time")


class NameRecognizer(Recognizer):
    """Names of people (NAME) and cities from faker's lists (LOCATION) by lexicon, titles and context.

    Example:
        >>> r = NameRecognizer()
        >>> t = "Dr. Graves saw Martha Collins for Graves disease."
        >>> [t[s.start:s.end] for s in r.analyze(t)]
        ['Graves', 'Martha Collins']
    """

    name = "names"
    option_names = ("context_chars",)
    entities = ("NAME", "LOCATION")

    def __init__(self, **options):
        super().__init__(**options)
        first, last = person_names()
        allow = allow_words()
        common = common_words()
        self._names = first | last
        self._strong = self._names - allow  # a name that is no ordinary word
        self._weak = (self._names & common) - EPONYMS - CLINICAL_TERMS - FUNCTION_WORDS  # "Will", "Rose", "Hill": names only beside one
        self._eponym_names = self._names & EPONYMS  # "Hartmann", "Becker": a name beside a first name
        self._common = common
        self._first = first
        # What _first_lower needs of any token (english_ok or not): one set test rejects most "with X" / "to X"
        self._first_strong = (first & self._strong) - common
        self._english = english_words() - self._names
        self._english_all = english_words()
        self._medical = medical_words()
        self._us_first, self._us_last = us_names()
        self._rank = english_rank()  # the vocabulary's order, frequent words first
        self._allow = allow
        self._cities = city_names() - common
        self._world = world_cities()
        self._large_places = large_place_phrases()
        self._places = self._cities | us_places() | self._world  # for a name-lexicon word after a place verb
        self._context = int(options.get("context_chars", 40))
        self._kind_cache: dict[str, str] = {}  # token -> kind: a few thousand distinct capitalised words recur
        # allowed words that are also first names, in title case ("Yasmin", "Hope", "Faith"): names after a relative
        self._allowed_first = frozenset(w.title() for w in first & allow)
        self._lower = LowerCaseNames(names=self._names, strong=self._strong, first=first,
                                     first_strong=self._first_strong, common=common, allow=allow,
                                     english_all=self._english_all, rank=self._rank, us_first=self._us_first,
                                     us_last=self._us_last, span=self.span)

    def _classify(self, token: str) -> str:
        """N strong name, W weak name, A allowed word, F allowed word that is a first name ("Yasmin": a name only
        right after a relative), E known English word, U unknown, C all-caps name, I initial."""
        kind = self._kind_cache.get(token)
        if kind is None:
            if len(self._kind_cache) > 200_000:  # bound the memory on an endless stream of novel words
                self._kind_cache.clear()
            kind = self._kind_cache[token] = self._classify_uncached(token)
        return kind

    def _classify_uncached(self, token: str) -> str:
        if len(token) == 1:
            return "I"
        low = token.lower()
        if token.isupper():
            if low in self._strong and len(token) > 2:
                return "C"
            return "A"
        if low in self._strong:
            return "N"
        if "-" in low:
            parts = low.split("-")
            if low in self._allow or any(p in self._allow for p in parts if p):
                return "A"
            if any(p in self._strong for p in parts):
                return "N"
            return "U"
        if low in self._weak or low in self._eponym_names:
            return "W"
        if low in self._allow:
            return "F" if token in self._allowed_first else "A"  # F: "Yasmin", "Hope" (a name after a relative)
        if low in self._english or low in self._medical:  # "Trachea is midline", "Norovirus is suspected"
            return "E"
        return "U"

    def analyze(self, text: str) -> list[Span]:
        runs: list[list[tuple[int, int, str]]] = []
        current: list[tuple[int, int, str]] = []
        kinds_of = self._kind_cache
        title_ends: set[int] | None = None  # where "TITLE.? " ends (TITLE_WORD_SCAN), found at the first need
        for m in CAP_TOKEN.finditer(text):
            start, end = m.span()
            token = m.group()
            kind = kinds_of.get(token) or self._classify(token)
            if kind == "F":  # an allowed word that is a first name: a name right after a relative ("daughter Yasmin")
                kind = "N" if relative_before(text, start) is not None else "A"
            if kind == "I" and not text.startswith(".", end) and not (current and current[-1][1] == start - 1):
                kind = "A"  # a lone capital letter that is not an initial ("I", "A")
            elif kind == "A" and current and current[-1][1] == start - 1 and current[-1][2] == "N" \
                    and token[1:2].islower() and text[start - 1] == " " and token.lower() in self._names \
                    and text[current[-1][0]:current[-1][1]].lower() in self._first:
                kind = "W"  # an allowed word that is also a surname, after a first name: "Jane Doe" (DOE: dyspnoea)
            if kind != "A":
                if current and start - current[-1][1] <= 7 and JOIN.fullmatch(text, current[-1][1], start) and (
                        text[current[-1][1]] != "." or current[-1][1] - current[-1][0] == 1):  # a dot only after an initial
                    current.append((start, end, kind))
                    continue
                if current:
                    runs.append(current)
                current = [(start, end, kind)]
                continue
            # Nine capitalised words in ten (in notes) are allowed words: the shortest path through the loop.
            if current:
                runs.append(current)
                current = []
            # One allowed word ("The", "HISTORY") is a run of its own and a name only after a title; untitled it
            # is dropped here (most capitalised words end here), so it no longer links "X, The, Y" into one list
            # of names (no change on the 1800 benchmark texts).
            if title_ends is None:
                title_ends = {t.end() for t in TITLE_WORD_SCAN.finditer(text)}
            if start in title_ends and MAYBE_TITLE.match(text, start - 6 if start > 6 else 0, start):
                runs.append([(start, end, kind)])
        if current:
            runs.append(current)
        out: list[Span] = []
        judged: list[Span | None] = []
        # A rare shape, tested once per text rather than once per capitalised run
        descent = bool(runs) and any(w in text for w in DESCENT_WORDS)
        for run in runs:
            span = self._judge(text, run, descent)
            judged.append(span)
            if span is not None:
                out.append(span)
        out += self._beside_names(text, runs, judged)
        # (English less names: the vocabulary holds "nguyen", which made "Patient Name: Nguyen, Thanh V." prose)
        for start, end in surname_first_fields(text, self._first, self._english):
            out.append(self.span(start, end, "NAME", 0.8, "surname-first name in a form field"))
        note = looks_like_note(text)
        if not text.isupper():  # every lower-case rule needs a lower-case letter (a-z, ß-ɏ)
            out += self._lower.find(text, note)
        elif text.isascii() and not note:
            # capitals throughout carry no case signal: the caseless rules, on the same offsets ("MY NAME IS
            # RUBIJA"); a note in capitals is left to the notes recognizer ("COLACE AND SENNA" is no name)
            out += self._lower.find(text.lower(), note)
        if note:
            out = [s for s in out if self._holds_in_note(text, s)]
        out += self._propagate(text, out)
        return out

    def _holds_in_note(self, text: str, span: Span) -> bool:
        """In a shorthand clinical note, capitalised drug names, devices and headers ("Dopamine", "Aline",
        "Resp") are no evidence of a name: keep titled / cued spans, and lexicon hits only on a US name that is
        no ordinary word; drop the guesses from unknown capitalised words and lower-case vocatives."""
        expl = span.explanation
        first, last = self._us_first, self._us_last
        tokens = re.findall(r"[^\W\d_]{2,}", text[span.start:span.end].lower())
        if expl in NOTE_WEAK:  # kept only as two or more words in no list ("Xanmabel Umvel", not "Dopamine")
            return len(tokens) >= 2 and all(len(t) > 2 and t not in self._english_all and t not in self._allow
                                            and not MEDICAL_SHAPE.search(t) for t in tokens)
        if expl == "name lexicon":  # a US name that is no word, or in mixed case a name of any locale in no list
            before = text[max(0, span.start - 3):span.start].rstrip(" \t|")
            if len(tokens) == 1 and tokens[0] in self._english_all and (not before or before[-1] in SENTENCE_END) \
                    and not TITLE_BEFORE.search(text, max(0, span.start - 8), span.start):
                return False  # "Brown soft stool", "Post transfusion HCT", "Pearl 2-3 mm": a word opening a line
            return bool(tokens) and all(t not in self._allow and (
                (t in first or t in last) and t not in self._english
                or (t in self._strong and t not in self._english_all and not text.isupper())) for t in tokens)
        if expl == "name lexicon + neighbours":  # "HELD POST", "ORANGE S/P": needs one US name that is no word
            return any((t in first or t in last) and t not in self._allow and t not in self._common for t in tokens)
        if expl.startswith(("capitalised words after a title", "capitalised words after a name cue")):
            return bool(tokens) and tokens[0] not in self._common and tokens[0] not in FUNCTION_WORDS \
                and tokens[0] not in CLINICAL_TERMS and tokens[0] not in NOTE_SHORTHAND  # "MS AND", "MS CONT", "MS. OOB"
        return expl != "city lexicon"  # real cities come from the notes recognizer's gazetteer

    def _clinical_after_title(self, text: str, start: int, end: int) -> bool:
        """Whether the title before ``start`` is "MS" (mental status, morphine), "Lt." (left) or "MR" (mitral
        regurgitation) followed by a word that is no US name but an English word or clinical shorthand: "no affect
        on MS. Verbal support", "S/P Lt. Hip", "IF MS CONT" ("Ms. Brown", "Mr. Hall" stay names); or, in capitals,
        any title followed by an English or medical word ending in -ing / -ed that is no US name ("DR REGARDING")."""
        before = text[max(0, start - 10):start].split()
        if not before:
            return False
        word = text[start:end].split()[0].lower().strip(".,")
        if 2 <= len(word) <= 4 and text[start:start + len(word)].isupper() and word in CLINICAL_TERMS \
                and word not in self._us_first and word not in self._us_last:
            return True  # "Azure XT DR MRI SureScan" (DR: dual-chamber rate-responsive): an imaging test is no person
        if text[start:end].isupper() and word.endswith(("ing", "ed")) and word not in self._us_first \
                and word not in self._us_last and (word in self._english_all or word in self._medical):
            return True  # in capitals a verb after any title: "LIMITS SET BY DR REGARDING EATING", "MS WAXING"
        if before[-1].rstrip(".,").lower() not in AMBIGUOUS_TITLES:
            return False
        if len(before) > 1 and before[-2].lower() == "an":
            return True  # "an MR venography": an em-ar, the acronym
        if graded_valve_before(text, text.rfind(before[-1], 0, start)):
            return True  # "Mild MR. RVSP 38", "moderate MS": a valve lesion graded, not a title
        if before[-1].lower() == "mr" and word.startswith(MR_STUDIES):
            return True  # "MR venogram", "MR angiography": magnetic resonance
        return (word in self._english_all or word in NOTE_SHORTHAND or word in CLINICAL_TERMS) \
            and word not in self._us_first and word not in self._us_last

    @staticmethod
    def _titled(text: str, start: int) -> bool:
        """A title ("Dr", "Mrs.") and white space right before ``start``."""
        if start == 0 or not text[start - 1].isspace():
            return False
        prev = text[start - 16 if start > 16 else 0:start].split()
        if not prev:
            return False
        word = prev[-1].rstrip(".")
        # a full-word title before a full stop ends its sentence: "Hi Doctor. I'm the mother", "Thank you, Nurse. I'll"
        return word in TITLES and (word == prev[-1] or len(word) <= 3 or word.lower() in ABBREVIATED_TITLES)

    def _judge(self, text: str, run: list[tuple[int, int, str]], descent: bool = True) -> Span | None:
        """The span of a run of capitalised words, or None; ``descent``: whether the text holds a word such as
        "descent" or "ancestry" (``analyze`` tests the text once)."""
        start, end = run[0][0], run[-1][1]
        if len(run) == 1 and run[0][2] == "A" and not MAYBE_TITLE.match(text, max(0, start - 6), start):
            return None  # fast path: one allowed word, no title before it
        if text[end:end + 2] in ("'t", "’t"):
            return None  # a contraction: "Con't" (continue), "Don't"
        kinds = "".join(k for _, _, k in run)
        if kinds[0] == "I" and len(run) == 2 and text[end:end + 1] in (",", ":", ";") \
                and text[run[1][0]:end].lower() in SPECIMEN_SITES:
            return None  # "A. Colon, sigmoid": a pathology report's part letter and site
        titled = self._titled(text, start)
        if kinds == "A" and not titled:
            return None
        after = text[end:end + 60]
        if not titled and (EPONYM_AFTER.match(after) or FACILITY_AFTER.match(after)):
            return None
        if descent and not titled and DESCENT_AFTER.match(after):
            return None  # "of Ashkenazi Jewish descent", "of Irish ancestry": a people, no person
        if not titled and self._insurer_word_at(text, run) and insurer_at(text, start, end):
            return None  # "Blue Cross", "Cigna": a health insurer
        if titled:
            if self._clinical_after_title(text, start, end):
                return None
            return self.span(start, end, "NAME", 0.9, "capitalised words after a title")
        if len(run) == 1 and self._species_after(after):
            return None  # "Klebsiella pneumoniae", "Candida albicans": a genus before its species
        # (every place cue below ends in "in", "to", "from" or "near": one C call rules most runs out)
        if len(run) <= 3 and text.endswith(_PLACE_CUE_ENDS, max(0, start - 5), start) \
                and (phrase := text[start:end].lower()) in self._places:
            before = _words_before(text, start, 3)
            if phrase in self._large_places:
                return None  # "lived in Arizona", "moved to Jordan": a state or a country is no identifier
            if not set(kinds).isdisjoint("NCWU") and _phrase_hit(before, PLACE_VERBS) is not None:
                # "lives in Boston", "moved to Austin": a place that is also a name, after a verb that takes places
                # (its type decides the surrogate: a city, not a person's name)
                return self.span(start, end, "LOCATION", 0.75, "place name after a place verb")
            if before and before[-1] in ("in", "from", "near") and phrase in self._world and not text.isupper() \
                    and self._city_word(phrase):
                return self.span(start, end, "LOCATION", 0.6, "city outside the US after in/from/near")
        if "N" in kinds or ("C" in kinds and len(run) > 1):
            score = 0.85 if len(run) > 1 else 0.7
            return self.span(start, end, "NAME", score, "name lexicon" + (" + neighbours" if len(run) > 1 else ""))
        if "W" in kinds and len(run) > 1 and set(kinds) <= {"W", "U", "I"} and "U" in kinds:
            return self.span(start, end, "NAME", 0.55, "common-word name beside an unknown capitalised word")
        if CREDENTIAL_AFTER.match(after):
            return self.span(start, end, "NAME", 0.8, "capitalised words before a credential")
        words = _words_before(text, start)
        if _phrase_hit(words, NAME_CUES) is not None and not SERVICE_AFTER.match(after) and not (
                SPEAKER_LABEL.fullmatch(text, text.rfind("\n", 0, start) + 1, start) and (
                    any(text[a:b] == "I" for a, b, _ in run) or len(run) == 1 and (
                        after[:1] in (",", ".", "!", "?", "'", "’") or SPEECH_AFTER.match(after) is not None
                        or text[start:end].lower() in self._english_all))):
            # (after "Patient: " opening a line, words holding "I", or one word followed by a comma, a stop, an
            # apostrophe or lower-case words, or one English word, are a speaker's first words: "Nope I have not",
            # "Patient: Um, I'm fine", "Um kind of", "Doctor: Welcome in"; "Patient: Ewelina Korda." in a form
            # stays a name)
            return self.span(start, end, "NAME", 0.65, "capitalised words after a name cue")
        prev = text[max(0, start - 4):start].rstrip(" \t")
        at_sentence_start = not prev or prev[-1] in SENTENCE_END
        if not at_sentence_start and len(run) <= 3 and SAYS_AFTER.match(after):
            return self.span(start, end, "NAME", 0.6, "capitalised words before a speech verb")
        phrase = text[start:end].lower()
        if phrase in self._cities and (len(run) > 1 or _phrase_hit(words, LOCATION_CUES) is not None) and not (
                len(run) == 1 and phrase in self._english_all and (text.isupper() or text.islower())):
            # (without letter case an English word after "in" is the word: "AMBULATED IN HALL")
            return self.span(start, end, "LOCATION", 0.55, "city lexicon")
        if "U" not in kinds:
            return None
        if len(run) == 1 and DOSE_AFTER.match(after):
            return None  # "focus on Ritalin 10 mg", "Zyprexa 2.5mg": a drug before its dose
        if len(run) == 1 and len(text[start:end]) > 2 and PERSON_VERB_AFTER.match(after):
            # "Alvir spent a year", "Ubaldo told me": verbs that only people take outweigh a drug-like suffix
            return self.span(start, end, "NAME", 0.5, "unknown capitalised word before a verb of a person")
        if len(run) == 1 and (len(text[start:end]) <= 2 or MEDICAL_SHAPE.search(text[start:end])):
            return None  # "Gy", "Hg", "IgA"; "Erythema", "Cisplatin", "Bumex": units and medical-looking words
        if len(run) == 1 and words and words[-1][:1].isalpha() and text[start - 2:start - 1].isalpha():
            prev_word = text[max(0, start - 30):start].split()[-1]
            if prev_word[:1].isupper():  # a Title Case phrase ("Abdominal Pain"), not a name ...
                if prev_word.isalpha() and prev_word.lower() in self._first and text[start - 1] == " ":
                    # ... unless the word before is a first name that is also a word ("Jan Jílek", "Bill Oduya")
                    return self.span(start - 1 - len(prev_word), end, "NAME", 0.55,
                                     "unknown capitalised word after a first name")
                return None
        if not at_sentence_start:
            if len(run) == 1 and words and (words[-1] in ("in", "from", "near", "at")
                                            or " ".join(words[-2:]) in PLACE_VERBS):
                return self.span(start, end, "LOCATION", 0.5, "unknown capitalised word after a place preposition")
            return self.span(start, end, "NAME", 0.5, "unknown capitalised word inside a sentence")
        if 2 <= len(run) <= 3 and set(kinds) == {"U"} and LOWER_WORD_AFTER.match(after) and not any(
                MEDICAL_SHAPE.search(text[a:b]) for a, b, _ in run):
            # "Zargan Vedzizhev from ...": two or three unknown words opening a sentence that goes on in lower case
            return self.span(start, end, "NAME", 0.5, "unknown capitalised words opening a sentence")
        verb = VERB_AFTER.match(after)
        if verb and (len(run) == 1 or not verb.group().startswith(":")):  # "Ubul:" a speaker, "Lipid Panel:" a header
            return self.span(start, end, "NAME", 0.5, "unknown capitalised word before a verb")
        return None

    @staticmethod
    def _insurer_word_at(text: str, run: list[tuple[int, int, str]]) -> bool:
        """Whether the run, or the word right before it, opens a health insurer's name ("Cross" after "Blue")."""
        # (only "Blue" is an allowed word that opens a name and so stands outside the run: four letters back)
        return text[max(0, run[0][0] - 5):run[0][0] - 1] in ("Blue", "BLUE") or any(
            text[a:b] in INSURER_OPENERS for a, b, _ in run)

    def _city_word(self, phrase: str) -> bool:
        """Whether a world city's name after "in" / "from" reads as the city: a phrase of several words ("Tel Aviv"),
        or one word that is no US name ("Paris", "Florence" may be people) and no frequent English or medical word
        ("in Time", "from Split", "Tunica")."""
        if " " in phrase:
            return True
        return phrase not in self._us_first and phrase not in self._us_last and phrase not in self._medical \
            and self._rank.get(phrase, _CITY_WORD_RANK) >= _CITY_WORD_RANK

    def _species_after(self, after: str) -> bool:
        """Whether ``after`` opens with a species epithet: a lower-case Latin word (``pneumoniae``, ``faecalis``,
        ``aureus``, ``albicans``) that is a medical word or in no English list."""
        if after[:1] != " " or not after[1:2].islower():
            return False  # (a string test first: most capitalised words are followed by no lower-case word)
        m = SPECIES_AFTER.match(after)
        return m is not None and (m.group(1) in self._medical or m.group(1) not in self._english_all)

    def _beside_names(self, text: str, runs: list, judged: list[Span | None]) -> list[Span]:
        """Capitalised runs chained to a found name by commas / "and" ("Kónya, Becker and Vasquez"), or alone on a
        line with an unknown word ("Einojuhani Pyysalo" as an address-block line)."""
        out = []
        n = len(runs)
        # A list gap starts with "," or " a(nd)" / " &": test that first, the regex only on the few candidates.
        linked = [i + 1 < n and (text[runs[i][-1][1]:runs[i][-1][1] + 1] == "," or
                                 text[runs[i][-1][1]:runs[i][-1][1] + 2] in (" a", " &"))
                  and LIST_GAP.fullmatch(text, runs[i][-1][1], runs[i + 1][0][0]) is not None
                  for i in range(n)]
        i = 0
        while i < n:
            j = i
            while j < n - 1 and linked[j]:
                j += 1
            chain = range(i, j + 1)
            if len(chain) > 1 and any(judged[k] is not None and judged[k].entity_type == "NAME" for k in chain):
                for k in chain:
                    kinds = {kind for _, _, kind in runs[k]}
                    if judged[k] is None and "A" not in kinds and "E" not in kinds and not \
                            DOTTED_CREDENTIAL.match(text, runs[k][0][0]):  # "Santiago-Ortiz, M.D."
                        out.append(self.span(runs[k][0][0], runs[k][-1][1], "NAME", 0.5,
                                             "capitalised word in a list of names"))
            i = j + 1
        for run, span in zip(runs, judged, strict=True):
            if span is not None or len(run) < 2:
                continue
            kinds = {k for _, _, k in run}
            if "A" in kinds or "U" not in kinds:
                continue
            start, end = run[0][0], run[-1][1]
            if any(MEDICAL_SHAPE.search(text[a:b]) for a, b, _ in run):
                continue
            if LINE_START.search(text, max(0, start - 3), start) and LINE_END.match(text, end):
                out.append(self.span(start, end, "NAME", 0.5, "capitalised words alone on a line"))
        return out

    def propagation_tokens(self, text: str, spans: list[Span]) -> set[str]:
        """Lower-cased name tokens of ``spans`` worth searching for elsewhere (this text, or a record's other
        fields): tokens of confident name spans that are no ordinary word."""
        tokens = set()
        for span in spans:
            if span.entity_type != "NAME" or span.score < 0.5 or span.explanation in NO_PROPAGATION:
                continue
            lexicon_only = span.explanation.startswith("name lexicon")
            for token in re.findall(r"[^\W\d_]{3,}", text[span.start:span.end]):
                low = token.lower()
                if low in self._strong or (not lexicon_only and low not in self._allow):
                    tokens.add(low)
        return tokens

    def find_tokens(self, text: str, tokens: set[str] | frozenset[str], covered: list[tuple[int, int]],
                    explanation: str = "same name found elsewhere in the text") -> list[Span]:
        """Spans for every whole-word occurrence (any case) of ``tokens`` in ``text`` outside ``covered``.

        One scan of the text for all tokens (a prefix-tree regex), and a binary search in the sorted covered
        spans per hit: linear in the text, whatever the number of names.
        """
        if not tokens:
            return []
        lower = text.lower()
        if len(lower) != len(text):  # a few characters change length when lower-cased: keep offsets exact
            lower = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        starts = sorted(covered)
        begins = [a for a, _ in starts]
        if len(tokens) <= 8:  # a few names: str.find is cheaper than compiling a regex
            hits = []
            for token in tokens:
                pos = lower.find(token)
                while pos >= 0:
                    hits.append((pos, pos + len(token)))
                    pos = lower.find(token, pos + len(token))
        else:
            hits = [m.span() for m in _token_regex(frozenset(tokens)).finditer(lower)]
        out = []
        for pos, end in hits:
            if pos and (lower[pos - 1].isalnum() or lower[pos - 1] in "'’-_"):
                continue
            if end < len(lower) and (lower[end].isalnum() or lower[end] == "_"):
                continue
            i = bisect.bisect_right(begins, pos) - 1
            if i >= 0 and starts[i][0] <= pos < starts[i][1]:
                continue
            if EPONYM_AFTER.match(text, end):
                continue
            out.append(self.span(pos, end, "NAME", 0.6, explanation))
        return out

    def _propagate(self, text: str, spans: list[Span]) -> list[Span]:
        """Find every other occurrence (any case) of the name tokens already found in this text."""
        return self.find_tokens(text, self.propagation_tokens(text, spans), [(s.start, s.end) for s in spans])


RECOGNIZERS.register("names", NameRecognizer)
