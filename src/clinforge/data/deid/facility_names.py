"""Names of hospitals and clinics in mixed-case text.

A facility name is one to four capitalised words before a facility word (``Mercy Hospital``, ``MD Anderson Cancer
Center``), where the words may be joined by ``and`` (``Brigham and Women's Hospital``) and the name may go on in an
``of`` phrase (``Hospital of the University of Pennsylvania``, ``Children's Hospital of Philadelphia``) or, after a
named facility, a ``for`` phrase (``Shriners Hospitals for Children``). Hospitals are also called by a name and
``General`` (``transferred to Mass General``, ``seen at Lutheran General``) or by a name and its emergency department
(``bring her to Tufts ED``); those forms are taken only after a place cue, since "General" opens exam sections and
"Pediatric ED" is a department. ``Mount`` or ``Mt.`` and a capitalised word (``Mount Auburn``, ``Mt. Sinai``) is a
place. A department before a clinic or a centre is no place (``Cardiology
Clinic``, ``Primary Care Clinic``, ``Breast Cancer Center``): only hospitals keep a generic name (``Rehabilitation
Hospital``), where a miss costs more than a masked word.

Case matters here: in a note written all in capitals or all in lower case the ``notes`` recognizer finds facility
names from the words before a facility word instead (``note_rules``).

Example:
    >>> t = "Transferred from Brigham and Women's Hospital; follow-up in Cardiology Clinic."
    >>> [t[a:b] for a, b, _ in find_facility_names(t)]
    ["Brigham and Women's Hospital"]
"""

from __future__ import annotations

import re
from collections.abc import Collection
from collections.abc import Set as AbstractSet  # (typing.AbstractSet is deprecated)

from clinforge.data.deid.lexicons import word_set
from clinforge.data.deid.medical_words import medical_words

# The words that make a name a facility's, as regex alternatives (longer forms before their prefixes)
FACILITY_HEADS = (r"Hospitals?", r"Medical Cent(?:er|re)", r"Health Cent(?:er|re)", r"Cancer Cent(?:er|re)",
                  r"Cancer Institute", r"Health[Cc]are System", r"Health System", r"Clinic", r"Infirmary",
                  r"Nursing Home", r"Rehabilitation Center", r"Hospice", r"Health[Cc]are",
                  # a child's school places the child as a clinic does ("attends Lincoln Elementary School")
                  r"Elementary School", r"Middle School", r"High School", r"Primary School", r"Intermediate School",
                  r"Junior High School", r"Preschool")
FACILITY = re.compile(r"(?:" + "|".join(FACILITY_HEADS) + r")\b")
# A place span that ends (or opens) with a facility word, in any case: surrogates keep that word, so a hospital
# stays a hospital ("Brigham and Women's Hospital" -> "Jameshaven Hospital", "Hospital of X" -> "Hospital of Y")
FACILITY_AT_END = re.compile(r"(?i)(?:[ \t]+(?:" + "|".join(FACILITY_HEADS + (r"General", r"Rehab", r"Medical Group"))
                             + r"))+$")
FACILITY_AT_START = re.compile(r"(?i)^(?:Hospitals?|Medical Cent(?:er|re)|Clinic)[ \t]+(?:of|for)[ \t]+(?:the[ \t]+)?")
_HOSPITAL_HEADS = ("Hospital", "Medical Cent", "Nursing Home", "Healthcare", "Health System")
CAP_WORD_BEFORE = re.compile(r"(?:St\.?|Saint|[A-ZÀ-ÖØ-Þ][\w'’.-]*)$")
_AND_BEFORE = re.compile(r"(?P<w>[A-ZÀ-ÖØ-Þ][\w'’-]*)[ \t]+(?:and|&)[ \t]+$")
_TITLE_WORD = r"[A-Z][a-z][\w'’-]*"
_OF_TAIL = re.compile(r"(?:[ \t]+of(?:[ \t]+the)?(?:[ \t]+" + _TITLE_WORD + r"){1,3}){1,2}")
_FOR_TAIL = re.compile(r"[ \t]+for(?:[ \t]+the)?(?:[ \t]+" + _TITLE_WORD + r"){1,2}")
_GENERAL = re.compile(r"(?<![A-Za-z])(?:at|to|from|in|into|of)[ \t]+(?:the[ \t]+)?(?P<name>(?:" + _TITLE_WORD
                      + r"[ \t]+){1,2})General\b(?![ \t]*[:(]|[ \t]+[A-Z])(?:[ \t]+(?P<after>[a-z]+))?")
# "Mount Auburn", "Mt. Sinai": a hospital or a place named after a hill
_MOUNT = re.compile(r"(?<![A-Za-z])(?:Mount|Mt\.?)[ \t]+" + _TITLE_WORD)
# "bring pt to Tufts ED", "seen at Mercy ER": a hospital named by its emergency department, after a place cue
_EMERGENCY = re.compile(r"(?<![A-Za-z])(?:at|to|from|in|into)[ \t]+(?:the[ \t]+)?(?P<name>" + _TITLE_WORD + r"(?:[ \t]+"
                        + _TITLE_WORD + r"){0,2})[ \t]+(?:ED|ER|E\.D\.|Emergency (?:Department|Room|Dept))(?![A-Za-z])")
# A word that names what a clinic does, not where it is
_DEPARTMENT_SUFFIX = re.compile(r"[a-z]*(?:ology|ologic|ological|iatry|iatric|iatrics|pedic|pedics|ics)")
DEPARTMENT_WORDS = word_set("""
primary care urgent family internal general medicine medical surgery surgical pain wound sleep memory travel diabetes
heart eye cancer breast women women's womens children's childrens child pediatric infectious disease diseases vascular
transplant liver lung kidney spine sports employee student community free walk-in outpatient ambulatory fertility
hiv aids anticoagulation coumadin warfarin dialysis renal chest allergy asthma headache weight obesity bariatric
nutrition vein foot hand skin hearing voice speech stroke epilepsy movement disorder disorders behavioral mental
health addiction methadone prenatal well baby adult senior geriatric veterans express same day after hours
rehabilitation rehab physical occupational therapy infusion wellness specialty multispecialty oncology neurology
cardiology hepatology nephrology urology dermatology endocrine endocrinology gastroenterology gi ent ob gyn ob/gyn
heme onc hematology radiation clinical research trauma emergency dental vision orthopedic orthopaedic spinal
cardiac pulmonary thoracic cardiothoracic neuro ortho hand foot ankle knee hip joint bone tumor tumour lipid
hypertension heart-failure chf copd cf ibd hepatitis tb std sti lactation fracture failure
""")
# Words before "General" that make it no hospital: a title ("Surgeon General") or a condition ("in Good General
# health")
_NOT_BEFORE_GENERAL = word_set("""
surgeon attorney inspector postmaster consul secretary major brigadier lieutenant governor accountant solicitor
good fair poor stable critical serious overall excellent
""")
_NOT_BEFORE_EMERGENCY = word_set("main our their this that local nearest nearby closest outside other another same")
_NOT_AFTER_GENERAL = word_set("""
condition conditions health appearance state status surgery surgeon medicine medical anesthesia practice practitioner
ward wards floor floors care impression exam examination well malaise weakness fatigue
""")


def is_department(word: str) -> bool:
    """Whether ``word`` names a department or a kind of care (``Cardiology``, ``Primary``, ``Wound``) rather than a
    place, as the words before a clinic do.

    Example:
        >>> is_department("Cardiology"), is_department("Primary"), is_department("Lahey")
        (True, True, False)
    """
    w = word.lower().rstrip(".")
    return w in DEPARTMENT_WORDS or w in medical_words() or _DEPARTMENT_SUFFIX.fullmatch(w) is not None


def capitalised_words_before(text: str, end: int, n: int) -> int | None:
    """Start of up to ``n`` capitalised words that end right at ``end`` (None if there is none), walking back over
    single spaces and hyphens.

    Example:
        >>> t = "seen at Good Samaritan Hospital"
        >>> t[capitalised_words_before(t, t.index(" Hospital"), 4):]
        'Good Samaritan Hospital'
    """
    pos = end
    start = None
    for _ in range(n):
        chunk = text[max(0, pos - 40):pos]
        m = CAP_WORD_BEFORE.search(chunk)
        if m is None:
            break
        start = pos - (len(chunk) - m.start())
        pos = start
        if pos == 0 or text[pos - 1] not in " -":
            break
        pos -= 1
    return start


# Verbs that open a sentence before a facility's name: capitalised there, yet no part of the name ("Transferred
# Mercy Hospital", "Attends Lincoln Elementary School")
OPENING_VERBS = ("admitted", "transferred", "transported", "visited", "visits", "attends", "attended", "called",
                 "calls", "seen", "sent", "discharged", "presented", "referred", "followed", "treated", "evaluated",
                 "brought", "returned", "arrived", "went", "works", "worked", "lives", "lived", "contacted", "spoke",
                 "faxed", "notified", "left", "discussed", "contact")
_OPENING_VERB = re.compile("(?:" + "|".join(v.title() for v in OPENING_VERBS) + r")[ \t]+")


def find_facility_names(text: str) -> list[tuple[int, int, str]]:
    """(start, end, explanation) of each facility name in ``text`` (see the module docstring).

    Example:
        >>> t = "Seen at the Hospital of the University of Pennsylvania, then Shriners Hospitals for Children."
        >>> [t[a:b] for a, b, _ in find_facility_names(t)]
        ['Hospital of the University of Pennsylvania', 'Shriners Hospitals for Children']
    """
    out: list[tuple[int, int, str]] = []
    if text.isupper() or text.islower():
        return out  # every form here holds capitalised words, which a text in one case has none of
    for m in FACILITY.finditer(text):
        head = m.group()
        start = None
        if m.start() and text[m.start() - 1] == " ":
            start = capitalised_words_before(text, m.start() - 1, 4)
        while start is not None and (opening := _OPENING_VERB.match(text, start, m.start())) is not None:
            start = opening.end() if opening.end() < m.start() else None  # "Attends Lincoln Elementary School"
        if start is not None:
            words = re.findall(r"[\w'’-]+", text[start:m.start()])
            if not head.startswith(_HOSPITAL_HEADS) and all(is_department(w) for w in words):
                start = None  # "Cardiology Clinic", "Primary Care Clinic": a department
        if start is not None:
            bridge = _AND_BEFORE.search(text, max(0, start - 40), start)
            if bridge is not None and not is_department(bridge.group("w")):
                start = bridge.start()  # "Brigham and Women's Hospital"
        end = m.end()
        tail = _OF_TAIL.match(text, end) or (_FOR_TAIL.match(text, end) if start is not None else None)
        if tail is not None:
            end = tail.end()
        if start is None and tail is None:
            continue
        out.append((m.start() if start is None else start, end,
                    "facility name" + (" with its of/for phrase" if tail is not None else "")))
    if "Mount" in text or "Mt" in text:
        for m in _MOUNT.finditer(text):
            out.append((m.start(), m.end(), "place name with Mount"))
    if " ED" in text or " ER" in text or " E.D." in text or " Emergency" in text:
        for m in _EMERGENCY.finditer(text):
            names = m.group("name").split()
            if not any(is_department(w) or w.lower() in _NOT_BEFORE_EMERGENCY for w in names):
                out.append((m.start("name"), m.end("name"), "name before an emergency department after a place cue"))
    if "General" in text:
        for m in _GENERAL.finditer(text):
            names = m.group("name").split()
            if any(w.lower() in _NOT_BEFORE_GENERAL or is_department(w) for w in names) or (
                    m.group("after") or "") in _NOT_AFTER_GENERAL:
                continue
            out.append((m.start("name"), m.start("name") + len(m.group("name")) + len("General"),
                        "name + General after a place cue"))
    return out


_ONE_CASE_GENERAL = re.compile(r"(?<![a-z])(?:from|to|at|into)[ \t]+(?:the[ \t]+)?(?P<w>[a-z]{3,})[ \t]+general(?![a-z])"
                               r"(?:[ \t]+(?P<after>[a-z]+))?")
_ONE_CASE_AND = re.compile(r"(?<![a-z'’])(?P<a>[a-z]{3,})[ \t]+(?:and|&)[ \t]+[a-z]+['’]s[ \t]+(?:hospital|hosp|medical "
                           r"center|clinic)(?![a-z])")
_POSSESSIVE_FACILITY = re.compile(r"['’]s[ \t]+(?:hospital|hosp|medical center|clinic)(?![a-z])")
_ONE_CASE_CANCER = re.compile(r"(?<![a-z'’])(?P<name>(?:[a-z][a-z'’-]+[ \t]+){1,3})cancer[ \t]+(?:center|centre|"
                              r"institute)(?![a-z])")


def one_case_facility_names(lower: str, stop: Collection[str], common: Collection[str],
                            words: AbstractSet[str] | None = None) -> list[tuple[int, int, str]]:
    """The forms above that a text written in one case still shows, on its lower-cased text: a name and ``general``
    after a place cue (``TRANSFERRED FROM MASS GENERAL``), a name joined by ``and`` to a possessive before a
    facility word (``BRIGHAM AND WOMEN'S HOSPITAL``), and up to three names before ``cancer center`` / ``cancer
    institute`` (``sloan kettering cancer center``). ``stop`` and ``common`` are the caller's lower-case sets of
    words that are no name (cues, clinical words) and everyday words; ``words``, the text's distinct lower-case words
    when the caller has them, spare three scans.

    Example:
        >>> t = "pt transferred from mass general, then brigham and women's hospital"
        >>> [t[a:b] for a, b, _ in one_case_facility_names(t, stop={"pt"}, common={"then"})]
        ['mass general', "brigham and women's hospital"]
    """
    out: list[tuple[int, int, str]] = []
    words = set(re.findall(r"[a-z]+", lower)) if words is None else words
    if "general" in words:
        for m in _ONE_CASE_GENERAL.finditer(lower):
            w = m.group("w")
            if w in stop or w in _NOT_BEFORE_GENERAL or is_department(w) or (m.group("after") or "") in \
                    _NOT_AFTER_GENERAL or m.group("after") in DEPARTMENT_WORDS:
                continue
            out.append((m.start("w"), m.end("w") + len(" general"), "name + general after a place cue"))
    if not words.isdisjoint(("hospital", "hosp", "medical", "clinic")) and _POSSESSIVE_FACILITY.search(lower):
        for m in _ONE_CASE_AND.finditer(lower):
            a = m.group("a")
            if a not in stop and a not in common and not is_department(a):
                out.append((m.start("a"), m.end(), "facility name joined by 'and'"))
    if "cancer" in words:
        for m in _ONE_CASE_CANCER.finditer(lower):
            names = list(re.finditer(r"[a-z][a-z'’-]+", m.group("name")))
            start = None
            for w in reversed(names):  # the names right before "cancer center", up to a cue or a plain word
                if w.group() in stop or w.group() in common or is_department(w.group()):
                    break
                start = m.start("name") + w.start()
            if start is not None:
                out.append((start, m.end(), "name before 'cancer center'"))
    return out
