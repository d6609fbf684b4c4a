"""The regular expressions and word sets of the names recognizer (``names.NameRecognizer``): capitalised tokens,
titles, name and place cues, eponym heads, medical word shapes, and the lower-case (speech transcript) cues. Kept
apart so that the recognizer's module holds its logic; the notes recognizer shares the eponym and shape tests.
"""

from __future__ import annotations

import re
import sys

from clinforge.data.deid.lexicons import trie_regex, trie_regex_at_word_start, word_set


def _char_class(pred) -> str:
    """A regex character class of every BMP code point satisfying ``pred`` (ranges compressed)."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x41, min(sys.maxunicode, 0xFFFF) + 1):
        if 0xD800 <= cp <= 0xDFFF or not pred(chr(cp)):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_UPPER = _char_class(lambda c: c.isupper() or c.istitle())
# A capitalised token: upper-case letter, letters; O'Brien / D'Angelo; hyphenated parts (Jean-Pierre).
# (The look-behind sits after the first character so that the regex engine can jump between capitals.)
CAP_TOKEN = re.compile(rf"[{_UPPER}](?<![\w'’-].)[^\W\d_]*(?:['’][{_UPPER}][^\W\d_]+)?(?:-[^\W\d_]+)*(?![\w])")
# What may sit between two tokens of one name: one or two spaces, an initial's dot, a lower-case particle. Three
# spaces or a tab separate the columns of a form ("Nguyen, Thanh V.   Legal Sex: Male"), not the words of a name.
JOIN = re.compile(r"(?:\.? {1,2}| (?:van|von|de|del|della|der|den|di|da|du|la|le|bin|ibn|al|el|dos|das|ter|ten|"
                   r"y|e|zu|af|av) )")
TITLES = word_set("""
Dr Drs Mr Mrs Ms Mx Miss Mister Madam Prof Professor Sr Sra Srta Mme Mlle Herr Frau Rev Fr Sister Brother Nurse
Capt Sgt Lt Col Hon Judge Officer Doctor Dra Sig Sir Dame Lady Lord Pastor Rabbi Imam DR MR MRS MS dr mr mrs ms
""")
# Titles of four letters or more written with an abbreviation's dot ("Prof. Weber", "Capt. Ames", "Srta. Lopez")
ABBREVIATED_TITLES = frozenset({"prof", "capt", "srta", "sgt"})
# Phrases right before capitalised words that make them a name (compared lower-cased, last 1-4 words).
NAME_CUES = frozenset(c.strip() for c in """my name is|name is|his name is|her name is|their name is|name:|names:|
patient:|pt:|patient name:|called|named|dear|hi|hello|hey|thanks|thanks,|thank you|thank you,|cc:|signed by|seen by|
seen with|referred by|dictated by|transcribed by|electronically signed by|signed:|signature:|by:|attending:|
resident:|pcp:|provider:|physician:|surgeon:|nurse:|rn:|md:|says|said|told|asked|wrote|replied|according to|
contact:|emergency contact:|spouse:|mother:|father:|son:|daughter:|wife:|husband:|brother:|sister:|guardian:|nok:|
next of kin:|caregiver:|accompanied by|interview with|from dr|to dr|author:|meet|introducing|i'm|i am|this is|
call me|calls me|known as|goes by|last name is|first name is|surname is|last name?|name?|family name:|
first name:|last name:|surname:|mr and mrs|my son|my daughter|my wife|my husband|my mother|my father|my kid|
my brother|my sister|my friend|my partner|with ms.|with mr.|with mrs.|with dr.""".replace("\n", "").split("|"))
LOCATION_CUES = frozenset([
    'in', 'from', 'at', 'near', 'to', 'lives in', 'living in', 'born in', 'resides in', 'moved to', 'visiting',
    'returned from', 'travelled to', 'traveled to'
])
FACILITY_AFTER = re.compile(r"^(?:['’]s)? (?:Hospital|Medical Cent|Health Cent|Clinic|Infirmary|Nursing Home|"
                             r"Rehabilitation|Hospice|Healthcare|Memorial|University|College|School)")
PLACE_VERBS = frozenset({"flew to", "moved to", "travelled to", "traveled to", "drove to", "went to", "trip to",
                          "lives in", "born in", "located in", "living in", "lived in", "resides in", "moved from",
                          "grew up in", "raised in", "relocated to", "relocated from"})
# Weak evidence whose tokens are not searched for elsewhere in the text.
NO_PROPAGATION = frozenset({"unknown capitalised word inside a sentence", "capitalised word in a list of names",
                             "capitalised words alone on a line", "common-word name beside an unknown capitalised word"})
# Titles that are also clinical abbreviations (mental status, left, mitral regurgitation / magnetic resonance), and
# the studies after "MR" (see NameRecognizer._clinical_after_title).
AMBIGUOUS_TITLES = frozenset({"ms", "lt", "mr"})
MR_STUDIES = ("veno", "angio", "imag", "spectro", "entero", "cholangio", "arthro", "urogra", "perfusion", "elasto",
               "scan", "study", "sequence")
# Rules too weak for shorthand clinical notes (see NameRecognizer._holds_in_note).
NOTE_WEAK = frozenset({"unknown capitalised word inside a sentence", "unknown capitalised word before a verb",
                        "unknown capitalised words opening a sentence", "unknown capitalised word after a place preposition",
                        "lower-case name between commas", "capitalised words alone on a line",
                        "lower-case first and last name in a lower-case text", "capitalised word in a list of names",
                        "common-word name beside an unknown capitalised word", "unknown capitalised word after a first name",
                        "unknown capitalised word before a verb of a person"})
# Word shapes of drugs, procedures and findings (suffixes) and of units with inner capitals ("IgA", "mEq").
MEDICAL_SHAPE = re.compile(
    r"(?:itis|osis|emia|aemia|ectomy|otomy|ostomy|plasty|scopy|gram|graphy|pathy|algia|oma|omas|ema|ase|mab|nib|"
    r"pril|sartan|olol|dipine|statin|azole|cillin|mycin|floxacin|cycline|platin|tidine|prazole|done|pam|lam|"
    r"parin|gliptin|gliflozin|glutide|tropin|sone|olone|mide|xaban|gatran|vir|afil|tadine|azine|oxacin|"
    r"ulin|tide|mex|aar|ram|ium|opsy|ation|ysis|iasis|megaly|olic|ular|itis|sion)$|^[A-Z]{2,}[a-z]{1,2}$|"
    r"^[A-Z][a-z][A-Z]$")
LIST_GAP = re.compile(r",\s*|,? and |,? & |, and ")
LINE_START = re.compile(r"(?:^|\n|>|\n\s|>\s|  )$")
LINE_END = re.compile(r"\s*(?:$|\n|>|  )")
LOWER_ID_AFTER = re.compile(r"(?:date of birth|dob|mrn|medical record)\b")
LOWER_NAME_BEFORE_ID = re.compile(r"(?:(?P<name>[a-zß-ɏ]{3,}) )?(?P<name2>[a-zß-ɏ]{3,})\s?[,.:]?\s*(?:n- )?$")
LOWER_VERB = re.compile(r" (?:is|was|has|had|began|begins|lives|lived|will|says|said|spent)\b")
LOWER_VERB_BEFORE = re.compile(r"(?:^|[.,?!:\]]\s*|\n|\b(?:and|of|with|tell|ask|told|asked|let|so|okay) )"
                                r"(?P<name>[a-zß-ɏ]{3,})$")
MAYBE_TITLE = re.compile(r".*[A-Za-z]\.? $")
# Where MAYBE_TITLE holds, what NameRecognizer._titled decides: the word before the one space is a title (with at
# most one dot, since MAYBE_TITLE allows one; no title is long enough for _titled's 16-character window to cut it).
# analyze() looks this up in the title ends of TITLE_WORD_SCAN instead of calling _titled for each of the ~50
# capitalised words per kilobyte of a note.
assert max(map(len, TITLES)) <= 10, "a longer title needs a wider window in analyze() and _titled"
# Where a title and one space ("Dr. ", "MRS ") end, for every position of a text in one scan (a capitalised word
# right after one may be a name even when it is an ordinary word). At most one title fits at a place (none is a prefix
# of another followed by "." or " "), and no match can hide another (a match holds white space only at its end), so
# ``start in ends`` is what a search of "(?<!\S)TITLE\.? \Z" in the 12 characters before ``start`` said per word.
TITLE_WORD_SCAN = re.compile(trie_regex_at_word_start(sorted(TITLES), r"\S") + r"\.? ")
TITLE_BEFORE = re.compile(r"(?i:dr|mr|mrs|ms|miss|prof)\.[ \t]*$")
SENTENCE_END = frozenset(".!?:;>\"“(\n*•-")
# (PA and NP before a number or a view are the pulmonary artery, posteroanterior and "non-productive":
# "Hemodynamics PA 54/18", "PA and lateral view", "STRONG NP COUGH")
CREDENTIAL_AFTER = re.compile(r"^,?\s+(?:M\.?D\.?|D\.?O\.?|R\.?N\.?|N\.?P\.?|P\.?A\.?(?:-C)?|Ph\.?D\.?|MBBS|FRCP|"
                               r"DNP|CRNA|LPN|PharmD|DDS|DMD|MSW|LCSW|APRN|FNP|MPH|NP-C)\b"
                               r"(?![ \t]*(?:\d|(?:and|&|/)[ \t]*lat|view|film|line|cath|pressure|cough))")
# A dose right after a capitalised word: the word is a drug ("Ritalin 10 mg", "Humulin 20 units")
DOSE_AFTER = re.compile(r"^[ \t]*\d+(?:\.\d+)?[ \t]*(?:mg|mcg|µg|ug|g|gm|grams?|units?|iu|ml|meq|mmol|%|tabs?|tablets?|"
                        r"caps?|capsules?|puffs?|drops?|sprays?|patch(?:es)?)(?![a-z])", re.I)
# A species epithet after a capitalised word: the word is a genus ("Klebsiella pneumoniae", "Candida albicans")
SPECIES_AFTER = re.compile(r"^[ \t]+([a-z]{2,}(?:ae|is|us|um|ii|i|a|ens|ans|ium|ica|icus|ides|oides))(?![a-z])")
# A dotted credential after a name and a comma, not an initial in a list of names ("Jane Roe, D.O.", "Liu, R.N.")
DOTTED_CREDENTIAL = re.compile(r"(?:M\.D|D\.O|R\.N|N\.P|P\.A|Ph\.D|D\.D\.S|D\.M\.D|L\.P\.N|O\.D|D\.P\.M|C\.N\.M|B\.S\.N|"
                               r"M\.S\.N|P\.T|O\.T|R\.D|M\.B\.B\.S|F\.A\.C\.[SP])\.(?![A-Za-z])")
# After "seen by X": a service, not a person ("Seen by Liver team", "by Cardiac Transplant surgeon").
SERVICE_AFTER = re.compile(r"^(?:[ \t]+[A-Za-z]+)?[ \t]+(?:team|service|surgeon|surgery|consult|fellow|attending|"
                            r"transplant|clinic|doctors?|nurses?)\b", re.I)
VERB_AFTER = re.compile(r"^(?::|,? (?:is|was|has|had|have|will|would|began|begins|lives|lived|spent|says|said|"
                         r"told|asked|wrote|went|came|joined|works|worked|grew|moved|called|reports|reported|"
                         r"presents|presented|denies|denied|states|stated|explained|added|noted|announced|commented|"
                         r"confirmed|argued|insisted|believes|thinks|wants|needs|went|arrived|left|died|married)\b|,? and (?=[A-Z]))")
# Lower-case cues (speech transcripts): after a title any lexicon name counts; after a greeting only a first name
# or a name that is no frequent English word; after a discourse word ("so carolyn tell me") only a first name.
LOWER_TITLES = ("mr", "mrs", "ms", "miss", "mister", "dr", "doctor", "nurse", "patient is", "next patient is",
                 "dictating on", "patient name is", "patient")
LOWER_GREETINGS = ("hi", "hello", "hey", "bye", "goodbye", "thanks", "dear", "name is", "i'm", "i am", "this is",
                    "call me", "named", "called", "meet", "thank you", "see you", "morning", "afternoon", "evening")
LOWER_DISCOURSE = ("so", "okay", "alright", "mean")
# A speaker's label opening a line of a transcript ("Doctor: ", "Patient: ", "Guest_family: "); not a form's field
# label ("Name: Castañeda, Nazaret"), nor a relative's line in a form ("Mother: Xanthe, 555-0142")
SPEAKER_LABEL = re.compile(r"[ \t]*(?i:doctor|dr|patient|pt|nurse|physician|clinician|provider|guest_family|"
                           r"guest_clinician|guest|caregiver|interviewer|speaker[ _]?\d*)[ \t]*:[ \t]*")
SPEECH_AFTER = re.compile(r"[ \t]+[a-z]")  # the sentence goes on in lower case: speech, not a form's value
LOWER_CUE = re.compile(r"(?P<cue>" + trie_regex(LOWER_TITLES + LOWER_GREETINGS + LOWER_DISCOURSE)
                        + r")\s?\.?\s*,?\s+"
                        r"(?P<name>[^\W\d_]{2,}(?:[-'’][^\W\d_]+)?)(?:\s+(?P<name2>[^\W\d_]{2,}(?:[-'’][^\W\d_]+)?))?")
LOWER_VOCATIVE = re.compile(r"[,.?!]\s+(?P<name>[a-zß-ɏ]{3,})(?=\s*[,.?!])")  # look-ahead: ", a, b, c" chains
LOWER_AGE = re.compile(r" is an? \d{1,3}[- ]year")
LOWER_WORDS_BEFORE = re.compile(r"(?:(?P<name>[a-zß-ɏ]{3,}) )?(?P<name2>[a-zß-ɏ]{3,})$")
PERSON_VERB_AFTER = re.compile(r"^ (?:says|said|told|asked|replied|wrote|spent|married|joined|grew up|works|worked|"
                                r"lives|lived|thinks|believes|argued|insisted|announced|commented|explained)\b")
LOWER_WORD_AFTER = re.compile(r"^ [a-z]")
LOWER_NAME_LINE = re.compile(r"(?m)^[^\w\n]{0,6}(?P<name>(?P<t1>[a-zß-ɏ]{2,})(?: [a-z]\.?)? "
                              r"(?P<t2>[a-zß-ɏ]{2,}(?:-[a-zß-ɏ]{2,})?))[ \t]*$")
# (the word-start look-behinds sit after each cue's first letter so that the scan can jump between candidates)
LOWER_PREP_NAME = re.compile(r"(?P<cue>w(?<!\w.)ith|b(?<!\w.)y|t(?<!\w.)o|a(?<!\w.)nd|m(?<!\w.)e|c(?<!\w.)alls? me|"
                              r"n(?<!\w.)ame is)\s+(?P<name>[a-zß-ɏ]{3,})"
                              r"(?:\s(?P<name2>[a-zß-ɏ]{3,}))?\b")
# Every word start (zero-width, so overlapping pairs are all seen): first name, optional initial, surname.
LOWER_PAIR = re.compile(r"(?<![\w'’-])(?=(?P<t1>[a-zß-ɏ]{3,})(?: [a-z]\.?)? (?P<t2>[a-zß-ɏ]{3,})\b)")
# Three or more lower-case words joined by commas / "and" (possessive: no backtracking inside a word).
LOWER_LIST = re.compile(r"[a-zß-ɏ](?<![\w'’-].)[a-zß-ɏ]{2,}+, ?(?:[a-zß-ɏ]{3,}+(?:, ?|,? and ))+[a-zß-ɏ]{3,}")
LOWER_LIST_ITEM = re.compile(r"[a-zß-ɏ]{3,}")
SAYS_AFTER = re.compile(r"^,?\s+(?:says|said|told|asked|replied|wrote|reports|reported|stated|states|explained)\b")
STRICT_HEADS = (r"disease|diseases|syndrome|syndromes|palsy|fracture|fractures|score|scores|scale|criteria|"
                 r"classification|procedure|operation|reflex|reflexes|phenomenon|tumou?rs?|lymphoma|sarcoma|ulcers?|"
                 r"nodes?|cysts?|hernia|o?esophagus|catheter|stockings|triad|maneuver|manoeuvre|incision|lesions?|"
                 r"nodules?|disorder|dementia|encephalopathy|anomaly|malformation|thyroiditis|arthritis|neuroma|"
                 r"neuralgia|contracture|deformity|aneurysm|respirations?|murmur|staining|shunt|anastomosis|"
                 r"fundoplication|pouch|coma|sign|test|spots|bodies|cells|contracture|"
                 # surgical and radiological eponyms ("Hasson technique", "Kocher approach", "Waters view")
                 r"techniques?|approach|repair|stitch|sutures?|retractors?|forceps|clamps?|needles?|tubes?|"
                 r"views?|projection|regimen|protocol|index|splint|drain|"
                 r"wort|"  # St. John's wort, an herb in medication lists
                 r"proteins?|antigens?|antibod(?:y|ies)")  # "Bence Jones protein", "Tamm-Horsfall protein"
POSSESSIVE_HEADS = STRICT_HEADS + r"|signs|tests|point|points|body|law|method|position|solution|grade|stage|rule|biplane"
# A title right before a vocative's punctuation ("mrs . peterson ,", "good morning ms. reyes !")
TITLE_BEFORE_PUNCT = re.compile(r"(?<![a-z])(?i:mr|mrs|ms|miss|mister|missus|dr|doctor)[ \t]*$")
# Grades of a valve lesion before "MR" / "MS" (mitral regurgitation / stenosis), which then is no title
SEVERITY_WORDS = frozenset(["no", "trace", "trivial", "minimal", "mild", "moderate", "severe", "mod", "sev", "mild-moderate", "moderate-severe", "mild-mod", "mod-severe", "1+", "2+", "3+", "4+"])


def graded_valve_before(text: str, pos: int) -> bool:
    """Whether the word before ``pos`` (where "MR" or "MS" starts) grades a valve lesion: "Mild MR.", "moderate MS",
    "2+ MR" are mitral regurgitation / stenosis, not a title. Shared by the names and notes recognizers.

    Example:
        >>> t = "Moderate MR. RVSP 38"
        >>> graded_valve_before(t, t.index("MR")), graded_valve_before("Seen by MR. Smith", 8)
        (True, False)
    """
    before = text[max(0, pos - 20):pos].split()
    return bool(before) and before[-1].lower().rstrip(",") in SEVERITY_WORDS
# "Graves disease", "Bell's palsy", "Stevens-Johnson syndrome": the capitalised run is an eponym, not a person.
EPONYM_AFTER = re.compile(r"^(?:[\s-]+(?:[A-Z][\w'’-]*[\s-]+)?(?i:" + STRICT_HEADS + r")|['’]s?\s+(?:[A-Z][\w'’-]*\s+)?"
                           r"(?i:" + POSSESSIVE_HEADS + r"))\b")
# Organs and sites a pathology report labels its specimens with ("A. Colon, sigmoid, resection"; "B. Lung: wedge"):
# after a part letter they are no initial and surname ("Colon", "Lung" are surnames too)
SPECIMEN_SITES = frozenset([
    "colon", "liver", "prostate", "lung", "kidney", "stomach", "bladder", "thyroid", "bone", "appendix",
    "breast", "skin", "uterus", "cervix", "ovary", "rectum", "gallbladder", "lymph", "pancreas", "spleen",
    "esophagus", "oesophagus", "duodenum", "ileum", "cecum", "caecum", "adrenal", "testis", "tonsil", "marrow",
    "brain", "heart", "placenta", "endometrium", "omentum", "parotid", "larynx", "tongue", "lip", "bronchus",
    "pleura", "peritoneum", "vulva", "vagina", "penis"
])
# A people's name before "descent" / "ancestry" ("of Ashkenazi Jewish descent"): no person's name
DESCENT_WORDS = ("descent", "ancestry", "heritage", "origin", "extraction")
DESCENT_AFTER = re.compile(r"(?:[ \t]+[A-Z][a-z]+)?[ \t]+(?:" + "|".join(DESCENT_WORDS) + r")\b")
# US health insurers whose names hold a surname or read as one ("Blue Cross", "Cigna", "Humana", "Kaiser
# Permanente"): a payer is no identifier of the patient (the member number is), and its name is useful data.
INSURER_NAMES = ("Blue Cross", "Blue Shield", "BlueCross", "BlueShield", "Independence Blue Cross", "Horizon Blue Cross",
                 "Anthem Blue Cross", "Premera Blue Cross", "Florida Blue", "Kaiser Permanente", "Harvard Pilgrim",
                 "Molina Healthcare", "Oscar Health", "Tufts Health Plan", "UnitedHealthcare", "United Healthcare",
                 "Aetna", "Cigna", "Humana", "Tricare", "MassHealth", "Medi-Cal", "Centene", "WellCare", "Highmark",
                 "Ambetter", "Amerigroup", "CareSource", "EmblemHealth", "Regence", "Wellmark", "Champva")
_INSURER = re.compile("(?i:" + "|".join(re.escape(n).replace(r"\ ", r"[ \t]+")
                                        for n in sorted(INSURER_NAMES, key=len, reverse=True)) + r")(?![\w-])")
# The capitalised word that opens each name as written (the names recognizer meets it as a token, so one set test
# per run says whether ``insurer_at`` is worth a look; a regex over every text cost a quarter of the time)
INSURER_OPENERS = frozenset(f for n in INSURER_NAMES for f in (n.split()[0], n.split()[0].upper()))


def insurer_at(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` lies inside the name of a US health insurer (``_INSURER``).

    Example:
        >>> t = "Insurance: Blue Cross Blue Shield; Humana."
        >>> insurer_at(t, t.index("Cross"), t.index("Cross") + 5), insurer_at(t, t.index("Hum"), t.index("Hum") + 6)
        (True, True)
    """
    base = max(0, start - 24)
    return any(m.start() + base <= start and m.end() + base >= end
               for m in _INSURER.finditer(text[base:end + 24]))


# Words for a relative or proxy (a regex alternation): a name cue after them, a phone cue before a number.
# (the in-law forms first: a regex takes the first alternative that matches, and "son" would leave "-in-law
# deshawn" behind as if "-in-law" were the name)
RELATIVE_CUE = (r"(?:sister|brother|son|daughter|mother|father)-in-law|"
                r"son|sons|daughter|daughters|dtr|dau|wife|husband|hus|spouse|brother|bro|sister|sis|mother|mom|"
                r"father|dad|niece|nephew|grand ?son|grand ?daughter|grand ?child|aunt|uncle|cousin|friend|fiance|"
                r"fiancee|boyfriend|girlfriend|partner|proxy|hcp|neighbor|neighbour|"
                r"step ?daughter|step ?son|grandmother|grandfather")

# The same words, one by one, and words for children: the word right before an allowed word that is a first name
# ("daughter Yasmin": a contraceptive's brand and a daughter's name)
RELATIVE_WORDS = frozenset(re.sub(r"\(\?:.*?\)-in-law\|", "", RELATIVE_CUE).replace(" ?", "").split("|")) | {
    "children", "child", "kids", "kid", "grandchildren", "twins", "stepson", "stepdaughter"}
# The gender a relative states, for surrogate names ("wife Ingrid" keeps a woman's given name)
RELATIVE_GENDER = {**{w: "female" for w in ("wife", "daughter", "daughters", "dtr", "dau", "mother", "mom", "sister",
                                            "sis", "aunt", "niece", "grandmother", "granddaughter", "girlfriend",
                                            "fiancee", "stepdaughter")},
                   **{w: "male" for w in ("husband", "hus", "son", "sons", "father", "dad", "brother", "bro", "uncle",
                                          "nephew", "grandfather", "grandson", "boyfriend", "fiance", "stepson")}}


def relative_before(text: str, start: int) -> str | None:
    """The relative named by the word right before ``start`` (after a space, a colon, a comma or a bracket),
    lower-cased, else None.

    Example:
        >>> relative_before("Son: Omar", 5), relative_before("wife (Ingrid", 6), relative_before("seen by Omar", 8)
        ('son', 'wife', None)
    """
    for word in reversed(text[max(0, start - 16):start].split()[-2:]):
        word = word.strip(",:;(").lower()
        if word:
            return word if word in RELATIVE_WORDS else None
    return None

# Words that look like first names but are ordinary words in notes (and the months): never a name alone.
WORD_NAMES = word_set("""
will may mark bill pat grace hope joy faith rose june april august art bob don jack jean sue guy rich ray ted
dean drew chase hunter ivy lily iris ruby amber crystal dawn eve frank gene sky summer autumn angel carol chip
chuck cliff dale dick earl glen hal herb jay kit lance lou max miles nick norm rob rod sal sterling ward wade
bud buck christian major royal king prince precious mercy sunny misty brandy candy cherry tag lane mae ada al
ed em ali lea ina ira abe doc ken lee rocky young page golden love win major penny star tom neil bay clay
terry kelly shirley carter cole mason tyler parker porter baker cook price rich long short small hall wall
ginger pearl hazel olive violet earnest kay jan mack noel roman rex israel georgia geneva dallas flora
marshall santos dixie stella
""")
# After a relative and a name, what a person did ("DAUGHTER TESSA CALLED")
PERSON_DID = frozenset({"called", "calls", "phoned", "visited", "visiting", "updated", "aware", "here", "present",
                         "states", "stated", "said", "says", "spoke", "came", "arrived", "left", "wants", "wishes",
                         "requests", "requested", "agrees", "agreed", "declined"})
# ...or where it says the person is there: "SISTER SUE AT BEDSIDE", "son bob in to visit", "wife al on the phone"
PRESENT_AFTER = re.compile(r"[ \t]+(?:at[ \t]+(?:the[ \t]+)?(?:bedside|bs)|in[ \t]+to[ \t]+(?:visit|see)|"
                           r"on[ \t]+(?:the[ \t]+)?phone|(?:is|was)[ \t]+here)\b")
# Words that follow "dr" in notes without being a name ("dr aware", "dr here", "dr's order").
AFTER_TITLE = word_set("""
aware notified paged called here there in made updated informed present team office rounds note notes order orders
to at on of and or re see said says was is will would also who with for from by into about re: please
""")
# One word of a note read in lower case ("o'brien", "smith-jones")
NOTE_TOKEN = r"[a-z][a-z'’]*(?:-[a-z]+)?"
# A name after "per" / "with" / "called" ... ("per kowalski"); PER_WORDS, their words, gate the regex
PER_NAME = re.compile(r"(?<![a-z])(?:per|with|w/|d/w|by|called|paged|notified|spoke to|spoke with)[ \t]+(?P<a>" + NOTE_TOKEN
                      + r")\b")
PER_WORDS = frozenset(["per", "with", "w", "d", "by", "called", "paged", "notified", "spoke"])  # "d/w": discussed with
# A person is the object of these verbs ("spoke with kowalczyk", "d/w przybylski", "paged okonkwo"): the cue is strong
# enough for any census name that is no word (``census_tail``), where a bare "with" / "by" / "per" needs a common one.
SPOKE_WITH = re.compile(r"(?<![a-z])(?:(?:spoke|spoken|talked|discussed)[ \t]+(?:with|to)|d/w|paged|notified|"
                        r"informed|(?:called|seen|evaluated|examined)[ \t]+by|signed[ \t]+out[ \t]+to|"
                        r"handed[ \t]+off[ \t]+to|report[ \t]+(?:given[ \t]+)?to)[ \t]+(?P<a>" + NOTE_TOKEN + r")\b")
SPOKE_WORDS = frozenset(["spoke", "spoken", "talked", "discussed", "d", "paged", "notified", "informed", "called",
                         "seen", "evaluated", "examined", "signed", "handed", "report"])
