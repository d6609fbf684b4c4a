"""Regular-expression recognizers for the structured Safe Harbor identifiers (everything except free-form names).

Every pattern is compiled once at import. Patterns that need a nearby cue word ("MRN", "fax", "serial") carry the
cue inside the regex, so one ``finditer`` per pattern scans the text; Python code runs only on matches
(checksums, calendar validity), never per token. Rules that decide what is NOT PHI:

* a number pair ``120/80`` is never a date: month/day without a year needs a date cue before it ("on 1/2",
  "since 3/14", "DOB 4/5"), so vitals (``BP 120/80``), Apgar (``8/9``), strength (``5/5``) and doses survive;
* a bare year (``2019``) and a weekday (``on Monday``) are not dates under Safe Harbor and are kept;
* an age is PHI only above 89; scores (``GCS 15``, ``NIHSS 4``) and lab values have no pattern here.
"""

from __future__ import annotations

import re

from clinforge.data.deid.contact_patterns import find_contacts
from clinforge.data.deid.facility_names import capitalised_words_before, find_facility_names
from clinforge.data.deid.hl7_fields import find_hl7_fields
from clinforge.data.deid.lexicons import (
    US_TERRITORY_CODES,
    allow_words,
    english_words,
    looks_like_note,
    trie_regex,
    word_set,
)
from clinforge.data.deid.pattern_checks import (
    day_first_valid,
    iban_valid,
    ipv4_valid,
    is_reading,
    luhn_valid,
    month_year_valid,
    ssn_valid,
    valid_numeric_date,
)
from clinforge.data.deid.pattern_words import (
    CAP,
    DAY,
    END_NUM,
    GLUED_SUFFIX,
    MONTH,
    MONTH_ABBR_FORMS,
    MONTH_FULL_FORMS,
    ORD,
    PREFIX_STREET,
    STATE_NAMES,
    STATES,
    STREET_SUFFIX,
    UNIT,
    YEAR,
    month_regex,
)
from clinforge.data.deid.recognizers import RECOGNIZERS, Recognizer
from clinforge.data.deid.single_case_addresses import (
    find_named_streets,
    find_single_case_addresses,
    has_strong_suffix,
)
from clinforge.data.deid.spans import Span
from clinforge.data.deid.word_dates import WORD_RULE_GATES, WORD_RULES

# Each rule: (entity type, explanation, regex, score, characters that may NOT precede the match).
# Possessive quantifiers (*+) where giving characters back can never let the next item match (a letter run before
# a digit) keep the lookaheads linear on long capitalised words.
# Regexes start with a literal or a character class (no leading \b or look-behind) so that Python's regex engine
# can jump between candidate positions; the left-boundary test runs in Python on the few matches instead.
# "Start with" means the very first item is ONE character class or literal: ``\d\d{0,5}`` rather than ``\d{1,6}``,
# ``(?:Plate|plate)`` rather than ``(?:[Pp]late)``, ``[A-Z0-9](?:(?<=[A-Z])...|(?<=\d)...)`` rather than
# ``(?:[A-Z]...|\d...)``. A leading repeat or a branch not led by literals gives ``re`` no first-character set, and
# it then tries the whole pattern at every character (the same matches, several times slower).
_NUMERIC_LEFT = "0123456789./:-"
_WORD_LEFT = "WORD"  # any letter, digit or underscore
Rule = tuple[str, str, "re.Pattern[str]", float, str]

_MONTH_CASED = month_regex(sorted(m for m in MONTH_FULL_FORMS if not m.islower()), sorted(MONTH_ABBR_FORMS))
# The lower-case month names themselves (not fragments such as "ember", which "remember" and "member" contain): when
# none is in the text the lower-case alternatives cannot match, and the cheaper cased patterns find the same dates.
_LOWER_MONTH_HINTS = tuple(sorted(m for m in MONTH_FULL_FORMS if m.islower()))

RULES: list[Rule] = [
    ("DATE", "numeric date with year", re.compile(r"\d\d?([/-])\d\d?\1(?:\d{4}|\d{2})" + END_NUM), 0.85, _NUMERIC_LEFT),
    ("DATE", "numeric date with year", re.compile(r"\d\d?\.\d\d?\.\d{4}" + END_NUM), 0.8, _NUMERIC_LEFT),
    # (with the time of an ISO 8601 timestamp, which an ID rule would otherwise cut at "T10": "2021-03-14T10:22Z")
    ("DATE", "ISO date", re.compile(r"(?:1[89]|2[01])\d\d([/.-])(?:0?[1-9]|1[0-2])\1" + DAY
                                    + r"(?:T\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?" + END_NUM), 0.9,
     _NUMERIC_LEFT),
    ("DATE", "month name with day or year", re.compile(
        MONTH + r"(?:[\s-]?" + DAY + ORD + r"\b(?:,?[\s-]+(?:" + YEAR + r"|'\d\d)\b)?|,?\s+(?:of\s+)?" + YEAR
        + r"\b)"), 0.85, _WORD_LEFT),
    # (a month ends at a word end: "3-DECREASED", "2 MARKED" hold no date)
    ("DATE", "day month-name [year]", re.compile(r"\d\d?" + ORD + r"(?:\s+of)?[\s-]+" + MONTH + r"(?![^\W\d_])"
                                                 + r"(?:,?[\s-]+(?:" + YEAR + r"|\d\d)\b)?"), 0.85, _WORD_LEFT),
    # ("03-2021" with a hyphen only for a two-digit month and no unit after: "1-2000 units" is a range)
    ("DATE", "month/year", re.compile(r"(?:\d\d?/|(?:0[1-9]|1[0-2])-)" + YEAR + END_NUM
                                      + r"(?![ \t]*(?i:units?|u\b|iu|mg|mcg|ml|cc|l\b|%|x\b))"), 0.7, _NUMERIC_LEFT),
    ("AGE", "age > 89 before 'year(s) old/yo'", re.compile(
        r"(?P<value>9\d|1[0-4]\d)(?:\s*|-)(?:[Yy]ears?|YEARS?|[Yy]rs?|[Yy]\.?\s?[Oo]\.?|[Yy]/[Oo]|yo)(?![a-z])"), 0.9,
     _WORD_LEFT),
    ("AGE", "age > 89 as a decade of life", re.compile(r"(?i:in\s+(?:his|her|their)\s+(?:(?:early|mid|late)[\s-]+)?)"
                                                      r"(?P<value>(?:9|1[0-4])0'?[sS])\b"), 0.8, _WORD_LEFT),
    ("AGE", "age > 89 after 'age/aged'", re.compile(r"(?:Age|age|AGE)(?:[Dd]|\s+of)?\s*:?\s*(?P<value>9\d|1[0-4]\d)\b"
                                                   r"(?!\.\d)"), 0.85, _WORD_LEFT),
    ("AGE", "age > 89 before sex letter", re.compile(r"(?:9\d|1[0-4]\d)\s?(?:M|F|yoM|yoF|yM|yF)\b"), 0.6, _WORD_LEFT),
    ("URL", "URL with scheme or www", re.compile(r"(?i:https?://|ftp://|www\.)[^\s<>\"'\])}]+[^\s<>\"'\])}.,;:!?]"), 0.9,
     _WORD_LEFT),
    ("IP", "IPv4 address", re.compile(r"\d\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d]|\.\d)"), 0.9, "0123456789."),
    ("VEHICLE", "17-character VIN", re.compile(r"[A-HJ-NPR-Z0-9][A-HJ-NPR-Z0-9]{16}\b"), 0.75, _WORD_LEFT),
    # (?<![\w-].) is the rule's left test done in the scan: every character the rule matches is one the left test
    # forbids, so a refused match never hides an accepted one, and the look-aheads no longer run inside each word.
    ("ID", "code of letters and 4+ digits", re.compile(
        r"[A-Z0-9](?<![\w-].)(?:(?<=[A-Z])(?=(?:[A-Z-]*+\d){4})|(?<=\d)(?=[0-9-]*+[A-Z])(?=(?:[A-Z-]*+\d){3}))[A-Z0-9]*(?:-[A-Z0-9]+)*\b"), 0.5, _WORD_LEFT + "-"),
    ("ID", "number of 7+ digits", re.compile(r"\d\d{6,}(?![\d]|[.,]\d)"), 0.5, "0123456789.,"),
    ("ADDRESS", "number + street name + suffix", re.compile(
        r"\d\d{0,5}[A-Za-z]?[ \t]+(?:[NSEW]\.?[ \t]+)?(?:" + CAP + r"[ \t]+){0,4}?(?:" + STREET_SUFFIX + r")\b\.?" + UNIT), 0.85,
     _WORD_LEFT),
    ("ADDRESS", "street-type prefix + name + number", re.compile(
        r"(?:" + PREFIX_STREET + r")\s+(?:[\w'’.-]+\s+){0,4}?\d{1,5}[A-Za-z]?\b" + UNIT), 0.75, _WORD_LEFT + "-"),
    ("ADDRESS", "number + street-type prefix + name", re.compile(
        r"\d\d{0,4}[A-Za-z]?\s+(?:" + PREFIX_STREET + r")\s+(?:" + CAP + r"|de|del|la|di|da|du|des)"
        r"(?:\s+(?:" + CAP + r"|de|del|la|di|da|du|des)){0,3}"), 0.75, _WORD_LEFT),
    # a GS1 UDI in its human-readable form: the device identifier (01) and the production identifiers after it
    # (lot 10, serial 21, dates 11/17 ...), one identifier of the implant ("UDI (01)07613327294910(17)241231(10)MHT7Y8")
    ("DEVICE", "GS1 UDI with its application identifiers", re.compile(
        r"\(01\)\d{14}(?:\((?:10|11|17|21|30|240|7003)\)[^\s().,;:]+(?:[.,;:-][^\s().,;:]+)*)*"), 0.85, _WORD_LEFT),
    ("ADDRESS", "apartment / suite / PO box", re.compile(
        "|".join(w + r"\.?\s*#?\s*\d+[A-Za-z]?\b" for w in ("Apt", "Apartment", "Suite", "Ste", "Unit"))
        + r"|P\.?\s?O\.?\s*Box\s+\d+\b"), 0.7, _WORD_LEFT),
    ("VEHICLE", "value after a plate label", re.compile(
        r"(?:Plate|plate|PLATE)(?![A-Za-z])(?:\s*(?:number|no\.?|#))?\s*[:#]?\s*(?P<value>[A-Z0-9]{1,4}[ -]?[A-Z0-9]{2,5})\b"), 0.8,
     _WORD_LEFT),
    # text in lower case: "license plate r25 7dp" (a plate with a digit; after "licence plate" or "plate:/#/no")
    ("VEHICLE", "lower-case plate after a licence plate label", re.compile(
        r"(?:licen[cs]e[ \t]+plate|plate[ \t]*(?:number|no\.?|#|:))[ \t]*[:#]?[ \t]*"
        r"(?P<value>[a-z0-9]{1,4}[ -]?[a-z0-9]{2,5})\b"), 0.8, _WORD_LEFT),
    # lower-case "may" and "march" are verbs unless an ordinal day or a year follows ("on may 8th", "may 18, 2020")
    # (one rule per word, each led by its literal, which re finds by a substring search)
    *[("DATE", f"lower-case {word} with an ordinal day or a year", re.compile(
        word + r"[ \t]+" + DAY + r"(?:(?:st|nd|rd|th)\b|,?[ \t]+" + YEAR + r"\b)"), 0.8, _WORD_LEFT)
      for word in ("may", "march")],
    *[(etype, name, pattern, score, _WORD_LEFT) for etype, name, pattern, score in WORD_RULES],
    ("DATE", "day-month-year, month abbreviated in lower case", re.compile(
        r"\d\d?-(?:jan|feb|mar|apr|may|jun|jul|aug|sept?|oct|nov|dec)-(?:\d{4}|\d\d)" + END_NUM), 0.85,
     _NUMERIC_LEFT),
]

# Cheap whole-text tests that let a rule be skipped: it cannot match without one of these substrings.
_NEEDS: dict[str, tuple[str, ...]] = {
    "URL with scheme or www": ("http", "www.", "ftp:", "WWW.", "HTTP", "Http", "FTP:"),
    "lower-case plate after a licence plate label": ("license plate", "licence plate", "plate#", "plate #", "plate:",
                                                     "plate no", "plate number", "plate :"),
    "day-month-year, month abbreviated in lower case": tuple(f"-{m}-" for m in (
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    "lower-case may with an ordinal day or a year": ("may ", "may\t"),
    "lower-case march with an ordinal day or a year": ("march ", "march\t"),
    "IPv4 address": (".",),
    "numeric date with year": ("/", "-", "."),
    "month/year": ("/", "-"),
    "apartment / suite / PO box": ("Apt", "Apartment", "Suite", "Ste", "Unit", "Box"),
    "GS1 UDI with its application identifiers": ("(01)",),
    "value after a plate label": ("late", "LATE"),
    "age > 89 after 'age/aged'": ("ge", "GE"),
}

# The month rules again without lower-case month names, for the (common) texts that contain none: the lower-case
# alternatives start at frequent letters and cost a third of the scan.
_CASED_MONTH_RULES: dict[str, re.Pattern[str]] = {
    expl: re.compile(pattern.pattern.replace(MONTH, _MONTH_CASED)) for _, expl, pattern, _, _ in RULES
    if MONTH in pattern.pattern}
# One search for any month name decides whether the (costly) month rules run at all: four texts in five have none.
_MONTH_RULES = frozenset(_CASED_MONTH_RULES)
_ANY_MONTH = re.compile(MONTH)
_ANY_CASED_MONTH = re.compile(_MONTH_CASED)
# (No str "in" pre-test of the 24 cased three-letter month prefixes before that search: those 24 substring scans
# cost three times the one regex search, which re already skips through by the months' first letters.)

# Triggers found by a fast literal scan; the full extent is then worked out in Python around each hit.
_SSN = re.compile(r"\d{3}([- ])\d\d\1\d{4}(?![\d-])")
_DIGIT_GROUPS = re.compile(r"[+(\d](?:(?<=[+(])\d|(?<=\d))(?=[\d() .+-]{6})[\d()]*(?:[ .-]\(?\d+\)?)+")  # one class first: fast scan
_PHONE_US = re.compile(r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}")
_EXTENSION = re.compile(r"\s*(?i:x|ext\.?|extension)\s*\d{1,5}")  # "X 221", "EXT 12" in capitals too
_DECIMAL_IN = re.compile(r"(?<!\d)\d{1,2}\.\d|\d\.\d{1,2}(?!\d)")
_PHONE_CUES = re.compile(r"(?i:phone|tel\b|telephone|fax|facsimile|cell|mobile|call|contact|number|no\.|#|reach|"
                         r"dial|text|sms|whatsapp|answering|registered|ring|pager|beeper|landline|hotline|\bat\b)")
_MONTH_DAY = re.compile(r"\d\d?[/-]\d\d?" + END_NUM)
_DATE_CUES = word_set("""
on since from until till by dated date dos dob admitted discharged seen due started stopped through thru between
effective born expires exp exp. onset
""")
_RANGE_UNIT_AFTER = re.compile(r"\s?(?:[a-zA-Z]|%)")
_FIVE_DIGITS = re.compile(r"\d\d{4}(?:-\d{4})?(?![\d-])")
_STATE_WORDS = frozenset(w.lower() for w in STATE_NAMES)
_TERRITORY_WORDS = frozenset(c.lower() for c in US_TERRITORY_CODES)  # "APO AE 09012": a ZIP after them too
# "Salem, MA." / "Salem, MA 01970"; before a lower-case word ("lives in Lebanon, NH with her son") only a state
# name or a code that is no word and no clinical shorthand ("Neuro, MS unchanged", "Pt, OR today" are no places)
_UNAMBIGUOUS_STATES = trie_regex([s for s in STATE_NAMES if len(s) > 2] + [
    "AK", "AZ", "CT", "DC", "FL", "IA", "KS", "KY", "MA", "MN", "NH", "NJ", "NM", "NV", "NY", "RI", "TN", "TX", "UT",
    "VT", "WI", "WV", "WY"])
_STATE_COMMA = re.compile(r", ?(?:(?:" + STATES + r")\b(?=\s+\d{5}|\s*[,.\n]|\s*$)|(?:" + _UNAMBIGUOUS_STATES
                          + r")\b(?=[ \t]+[a-z]))")
_GLUED_STREET = re.compile(r"(?:" + GLUED_SUFFIX + r")\s+\d{1,5}[A-Za-z]?\b" + UNIT)
# A number with a unit or a vital-sign / ventilator label glued to it (nursing notes write "1300CC", "AC700X10").
# "ON 10/5 BIPAP": pressure support / PEEP settings, not a date
_VENT_AFTER = re.compile(r"[ \t]*(?:cpap|bipap|bi-pap|psv|peep|ps|simv)\b", re.I)
_GRAVIDA_PARA = re.compile(r"G\d\d?P\d+(?:-\d+)*")
# Before "NN F": a temperature cue, or a Celsius reading the Fahrenheit one repeats.
_TEMPERATURE_BEFORE = re.compile(r"(?<![A-Za-z])(?i:temp|t\s?max|t\s?current|fever|febrile|afebrile)|(?<![A-Za-z])T[ :]*$|\d\s?°?C\s*\(\s*$|°")
_MEASUREMENT = re.compile(r"(?:[A-Z]{1,5})?[\d-]+(?:X\d+)*(?:CC|ML|MLS|MG|MGS|MCG|MCGS|MEQ|L|U|UNITS?|HR|HRS|NSR|ST|SB|X|"
                          r"MMHG|CM|MM|KG|G|GM|GMS|MIN|SEC|APPROX|S|AM|PM)?"
                          # a clock time or a reading glued to the next word by a hyphen: "2300-REMAINS", "TMAX-99"
                          r"|\d{1,4}-[A-Z]{4,}|[A-Z]{3,5}-\d{1,3}")
# A full UK postcode right after a place name in mixed case ("Harrogate HG1 4RT", "London, SW1A 1AA"); the inward
# code's letters never include C I K M O V. In a text written in capitals "Q4 2HR" has the same shape, hence the
# lower-case letter before.
# (found from the inward code, a digit and two capitals, which is rare in a note; then the outward code before it)
_UK_INWARD = re.compile(r"\d[ABD-HJLNP-UW-Z]{2}(?![A-Za-z0-9])")
_UK_OUTWARD_BEFORE = re.compile(r"(?:(?<=[a-z] )|(?<=[a-z], ))[A-PR-UWYZ][A-HK-Y]?\d[A-HJKPSTUW\d]? $")
_ZIP_CUE = re.compile(r"(?i:zip|postal code|postcode)(?: code)?\s*:?\s*(?P<value>[A-Z0-9]{3,5}(?:[ -][A-Z0-9]{3,4})?)\b")

# Labelled identifiers: LABEL [number|no.|#|id] [:] VALUE (value with a digit), one pass for every type.
_VALUE = r"(?P<value>(?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9-]{2,}[A-Za-z0-9])"
# (case-insensitive like the labels: "MEDICAL RECORD NUMBER: LI914000" in a note written in capitals)
_LABEL_TAIL = r"(?i:\s*(?:number|num|nbr|no\.?|#|id|code))?(?i:\s*(?:is|was|of))?\s*[:#=]?\s*#?\s*"
LABELLED_IDS: list[tuple[str, str]] = [
    ("SSN", r"ssn|ss#|social security(?:\s+number)?|soc\.? sec\.?"),
    ("MRN", r"mrn|mr#|medical record|med\.? rec\.?|record|chart|hospital(?: number| no)|patient id|pt id|unit no|"
            r"unit number|emr|ehr id|fin|csn"),
    ("HEALTH_PLAN", r"member(?: id)?|policy|insurance(?: id)?|subscriber(?: id)?|group(?= *(?:number|no|#))|medicaid|"
                    r"medicare|hicn|mbi|beneficiary|health plan|plan id|payer id"),
    ("ACCOUNT", r"account|acct\.?|billing(?: account)?|invoice|credit card|debit card|card|iban|routing|"
                r"bank account|claim"),
    ("VEHICLE", r"vin|vehicle(?: id)?|licen[cs]e plate|plate|tag"),
    ("LICENSE", r"licen[cs]e|lic\.?|dl|driver'?s? licen[cs]e|dea|npi|certificate|cert\.?|passport|registration"),
    ("DEVICE", r"serial|s/n|sn|device(?: id)?|udi|implant(?: id)?|pacemaker(?: serial)?|lot|model"),
    ("ID", r"accession|acc\.?|specimen|sample(?: id)?|case|encounter|visit(?: id)?|order|requisition|lab id|"
           r"study id|ticket|reference|ref\.?|confirmation|tracking|id|identifier"),
]
_LABELLED = re.compile(r"(?i:(?:" + "|".join(f"(?P<{etype}>{labels})" for etype, labels in LABELLED_IDS) + r"))"
                       + _LABEL_TAIL + _VALUE + r"\b")
# Literal first letters of every label: found with str.find, then the label regex is tried at each hit only.
_LABEL_STARTS = ("ss", "soc", "mr", "med", "rec", "chart", "hosp", "patient", "pt", "unit", "emr", "ehr", "fin",
                 "csn", "member", "polic", "insur", "subscr", "group", "medica", "hicn", "mbi", "benef", "health",
                 "plan", "payer", "acc", "bill", "invoice", "credit", "debit", "card", "iban", "routing",
                 "bank", "claim", "vin", "vehicle", "lic", "plate", "tag", "dl", "driver", "dea", "npi", "cert",
                 "passport", "registration", "serial", "s/n", "sn", "device", "udi", "implant", "pacemaker", "lot",
                 "model", "specimen", "sample", "case", "encounter", "visit", "order", "requisition", "lab", "study",
                 "ticket", "ref", "confirmation", "tracking", "id")
# A label starts a word ((?<!\w) is exactly the WORD left test: str.isalnum or "_") and has a digit within 48
# characters: both tests in the scan, so Python only sees the few plausible hits.
_LABEL_START_RE = re.compile(r"(?<!\w)(?:" + trie_regex(_LABEL_STARTS) + r")(?=[\s\S]{0,47}?\d)")
_PLATE_VALUE = re.compile(r"[A-Z0-9]{1,4}[ -]?[A-Z0-9]{2,5}\b")
_IBAN = re.compile(r"[A-Z][A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# After a street address: ", City", "\nCITY", ", ST", " 12345", ", Country" (capitalised words, codes, postcodes).
# (a contact label on the next line is no city: "55 Fruit Street, Boston, MA 02114\nTel: (617) ..." kept "Tel")
_CONTACT_LABEL = r"(?!(?:Tel|TEL|Telephone|Phone|PHONE|Ph|Fax|FAX|E-?mail|EMAIL|Cell|Mobile|Pager|Office|Desk|Web)\b)"
# A street named without a number, its suffix abbreviated, after on/off in mixed case ("a cafe on Newbury St.",
# "off Elm Ave"; the spelled-out suffixes in any case are single_case_addresses.find_named_streets'); run only on
# texts holding one of the suffixes after a space (a regex led by "on|off" would be tried at every "o")
_ABBREVIATED_STREET = re.compile(r"(?<![A-Za-z])(?:on|off|On|Off)[ \t]+(?P<value>(?:[A-Z][a-z][a-z'’-]*[ \t]+){1,2}?"
                                 r"(?:St|Ave|Rd|Blvd|Ln|Pkwy|Hwy)\b\.?)")
_SENTENCE_OPENER = re.compile(r"[ \t]+(?:He|She|They|We|I|It|The|This|That|His|Her|Their|Pt|Patient|Plan|No|Has|"
                              r"Is|Was|Will|Her|Denies|Reports|Lives|Works)\b")
_ADDRESS_TAIL = re.compile(r"(?:(?:[ \t]*,[ \t]*|[ \t]*\n[ \t>]*|[ \t]{1,4})(?:" + _CONTACT_LABEL +
                           r"[A-ZÀ-Þ][\w'’.-]*(?: [A-ZÀ-Þ][\w'’.-]*){0,2}|"
                           r"\d{4,6}(?:-\d{3,4})?|[A-Z]{2}(?= \d|\b)|Suite \d+|Apt\.? \d+)){1,6}")
_NO_ADDRESS_AFTER_CUE = re.compile(r"(?:home|(?:a|an|the|her|his|their)[ \t]+(?:nursing home|group home|rehab|hospital|"
                                   r"facility|shelter))\b")
# The first number after an address cue is no house number when it counts a duration or times.
_FIRST_NUMBER = re.compile(r"\d")
_NOT_HOUSE_NUMBER = re.compile(r"\d+[ \t]*(?:-[ \t]*)?(?:years?|yrs?|months?|mos?|weeks?|wks?|days?|hours?|hrs?|"
                               r"minutes?|mins?|times|am|pm|o'clock)\b", re.I)
# ... nor when it numbers a bed, a room or a unit of the hospital ("moved to bed 5", "sent to rm 12", "to OR 3")
_ROOM_BEFORE_NUMBER = re.compile(r"(?<![a-z])(?:beds?|rm|room|floor|fl|unit|pod|bay|or|icu|ccu|micu|sicu|ward)[ \t]*"
                                 r"(?:#|no\.?)?[ \t]*$")
_ADDRESS_CUE = re.compile("(?:" + trie_regex([
    "address is", "addresses are", "address was", "address:", "lives at", "living at", "live at", "located at",
    "resides at", "reside at", "sent to", "send it to", "send this to", "send them to", "mail to", "mailed to",
    "ship to", "shipped to", "deliver to", "delivered to", "moved to", "meet me at", "drop you off at",
    "drops you off at"]) + r")\s+")  # matched on ascii_lower(text)
_SENTENCE_STOP = re.compile(r"(?<![A-Z][a-z])(?<!\b[A-Z])\.(?=\s+[A-Z]|\s*$)|[?!](?:\s|$)|\n\n|\s(?:in case|for|and I|because|but|last|yesterday|today|tomorrow|on "
                            r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday))\b")
# The same for text in one case (matched on its lower-cased form): a full stop before a space ends a sentence
# unless it closes an initial or an abbreviation of an address ("45 maple st. apt 2").
_ONE_CASE_STOP = re.compile(r"(?<!\b[a-z])(?<!\b(?:st|dr|rd|mt|ft|jr|sr|no))(?<!\b(?:ave|apt|ste))\.(?=\s)|[?!;](?:\s|$)|"
                            r"\n\n|\s(?:in case|for|because|but|last|yesterday|today|tomorrow)\b")
_PREFIX_STREET_RE = re.compile(r"(?:" + PREFIX_STREET + r")\s")
_PREFIX_RULES = frozenset({"street-type prefix + name + number", "number + street-type prefix + name"})
# Shapes that every match of a rule contains, led by a rare character (a separator), so that one search of the text
# is cheap: without one the rule, which re tries at every digit, is skipped. Two numbers after separators for the
# dates and IPv4 (d/d/yy, d.d.yyyy, yyyy-m-d, a.b.c.d: "[/.-]\d{1,3}[/.-]\d" inside each; found in 4 digit-holding
# notes in 10), a slash and a year for month/year. One search per text serves every rule that shares the shape.
_DATE_SHAPE = re.compile(r"[/.-]\d\d?\d?[/.-]\d")
_SHAPES: dict[str, re.Pattern[str]] = {"numeric date with year": _DATE_SHAPE, "ISO date": _DATE_SHAPE,
                                       "IPv4 address": _DATE_SHAPE, "month/year": re.compile(r"[/-]" + YEAR)}
# Rules that only match lower-case letters: skipped in a text written in capitals (half of the nursing notes).
_LOWER_CASE_RULES = frozenset({"lower-case plate after a licence plate label", "lower-case may with an ordinal day or a year",
                               "lower-case march with an ordinal day or a year",
                               "day-month-year, month abbreviated in lower case"})
# The same, searched for in the lower-cased text (substrings, or a pattern where one search is cheaper).
_NEEDS_IN_LOWER: dict[str, tuple[str, ...] | re.Pattern[str]] = WORD_RULE_GATES
# Per rule, looked up once instead of per text: (rule, needs a digit, street-prefix rule, month rule, substrings
# one of which it needs, its pattern without lower-case month names, a shape it needs, lower-case only, substrings
# one of which its lower-cased text needs).
_RULE_PLAN = [(rule, rule[0] != "URL" and rule[1] not in _NEEDS_IN_LOWER, rule[1] in _PREFIX_RULES, rule[1] in _MONTH_RULES,
               _NEEDS.get(rule[1]), _CASED_MONTH_RULES.get(rule[1], rule[2]), _SHAPES.get(rule[1]),
               rule[1] in _LOWER_CASE_RULES, _NEEDS_IN_LOWER.get(rule[1]))
              for rule in RULES]


def _value_bounds(m: re.Match[str]) -> tuple[int, int]:
    if "value" in m.re.groupindex and m.group("value") is not None:
        return m.start("value"), m.end("value")
    return m.start(), m.end()


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower-case A-Z only: unlike ``str.lower`` it never changes the length, so offsets stay valid.

    Example:
        >>> ascii_lower("MRN İ") == "mrn İ"
        True
    """
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)  # str.lower: same result, 7x faster


_CHECKS = {"numeric date with year": valid_numeric_date, "IPv4 address": ipv4_valid,
           "month/year": month_year_valid, "day month-name [year]": day_first_valid}


def _left_ok(text: str, start: int, forbidden: str) -> bool:
    if start == 0:
        return True
    prev = text[start - 1]
    if forbidden is _WORD_LEFT or forbidden.startswith(_WORD_LEFT):
        if prev.isalnum() or prev == "_":
            return False
        return prev not in forbidden[len(_WORD_LEFT):]
    return prev not in forbidden


_PT_SUFFIX = re.compile(r"[ \t](?:Pt|PT|pt)\.?(?:[ \t]|$)")

class PatternRecognizer(Recognizer):
    """Dates, ages > 89, contact details, SSN, labelled and standalone ids, cards, IBANs, addresses, ZIP codes.

    Example:
        >>> [(s.entity_type, s.start) for s in PatternRecognizer().analyze("Seen on 03/04/2021, MRN: 889123")]
        [('DATE', 8), ('MRN', 25)]
    """

    name = "patterns"
    option_names = ()
    entities = ("DATE", "AGE", "PHONE", "EMAIL", "URL", "IP", "SSN", "MRN", "HEALTH_PLAN", "ACCOUNT", "LICENSE",
                "VEHICLE", "DEVICE", "ID", "ADDRESS", "LOCATION", "ZIP", "NAME")  # NAME: HL7 name fields

    def analyze(self, text: str) -> list[Span]:
        out: list[Span] = []
        add = out.append
        has_digit = any(c in text for c in "0123456789")
        has_prefix = has_digit and _PREFIX_STREET_RE.search(text) is not None
        lower_months = any(h in text for h in _LOWER_MONTH_HINTS)
        has_month = has_digit and (_ANY_MONTH if lower_months else _ANY_CASED_MONTH).search(text) is not None
        lower = ascii_lower(text)  # computed once: the label, ZIP and address-cue scans share it
        shapes: dict[re.Pattern[str], bool] = {}
        upper = text.isupper()
        for rule, needs_digit, is_prefix, is_month, needs, cased, shape, lower_only, needs_lower in _RULE_PLAN:
            if (needs_digit and not has_digit) or (is_prefix and not has_prefix) or (is_month and not has_month) \
                    or (lower_only and upper):
                continue
            if needs_lower is not None and not isinstance(needs_lower, tuple):  # a pattern to search for
                if needs_lower.search(lower) is None:
                    continue
            elif needs is not None or needs_lower is not None:
                haystack = text if needs is not None else lower
                for n in needs or needs_lower:  # (a loop, not any() over a generator: this runs ~5 times per text)
                    if n in haystack:
                        break
                else:
                    continue
            if shape is not None:
                found = shapes.get(shape)
                if found is None:
                    found = shapes[shape] = shape.search(text) is not None
                if not found:
                    continue
            pattern = rule[2] if lower_months else cased
            if "value" not in pattern.groupindex:  # most rules: the match itself is the value
                for m in pattern.finditer(text):
                    start, end = m.span()
                    self._rule_match(text, rule, start, start, end, add)
                continue
            for m in pattern.finditer(text):
                start, end = _value_bounds(m)
                self._rule_match(text, rule, m.start(), start, end, add)
        find_contacts(text, add, self.span)
        if not upper and (" St" in text or " Ave" in text or " Rd" in text or " Blvd" in text or " Ln" in text
                          or " Pkwy" in text or " Hwy" in text):
            for m in _ABBREVIATED_STREET.finditer(text):
                add(self.span(m.start("value"), m.end("value"), "ADDRESS", 0.6,
                              "capitalised street with an abbreviated suffix after on/off"))
        if "|" in text or "MSH" in text:  # HL7 v2 segments (PID, NK1, PV1 ...): their PHI fields by position
            for start, end, etype, why in find_hl7_fields(text):
                add(self.span(start, end, etype, 0.9, why))
        if has_digit:
            self._numbers(text, add, lower)
            self._labelled(text, add, lower)
        self._places(text, add, has_digit)
        self._extend_addresses(text, out, lower)
        strong = has_strong_suffix(lower)  # (one scan for street suffixes serves both address finders)
        if has_digit:  # capitals or lower case throughout: what the cased address rules cannot read
            find_single_case_addresses(text, lower, add, self.span, strong)
        find_named_streets(lower, add, self.span, strong)
        return out

    def _rule_match(self, text: str, rule: Rule, match_start: int, start: int, end: int, add) -> None:
        etype, expl, _, score, left = rule
        if not _left_ok(text, match_start, left):
            return
        check = _CHECKS.get(expl)
        if check is not None and not check(text[start:end]):
            return
        if etype == "ID" and expl.startswith("code"):
            value = text[start:end]
            if len(value) < 6 or sum(c.isdigit() for c in value) < 4 or not any(c.isalpha() for c in value):
                return
            if _MEASUREMENT.fullmatch(value) or is_reading(value):  # "1300CC", "AC700X10", "80S-90S": a reading
                return
            if _GRAVIDA_PARA.fullmatch(value):  # "G3P1010": gravida / para (term, preterm, abortions, living)
                return
        elif expl == "age > 89 before sex letter" and text[end - 1] == "F" and _TEMPERATURE_BEFORE.search(
                text, max(0, start - 24), start):
            return  # "36.7 C (98 F)", "fever of 104 F", "T 99 F": degrees Fahrenheit, not a 98-year-old woman
        elif expl == "numeric date with year" and (text[end:end + 1] == "%" or text[start - 1:start] in ("x", "X")):
            return  # ventilator settings "12/10/40%", "800x12/10/40"
        elif etype == "VEHICLE" and expl.startswith("17") and (
                sum(c.isdigit() for c in text[start:end]) < 2 or text[start:end].isdigit()):
            return
        elif expl == "value after a plate label" and not any(c.isdigit() for c in text[start:end]) and not any(
                c in ":#" for c in text[match_start:start]):
            return  # "A LARGE CEMENT PLATE WHILE": an all-letter plate needs "plate:" or "plate #"
        elif expl == "lower-case plate after a licence plate label" and not any(c.isdigit() for c in text[start:end]):
            return
        elif expl == "number + street name + suffix" and _PT_SUFFIX.search(text, start, end) and looks_like_note(text):
            return  # "4 Pt", "0400 Pt developed": in a clinical note "Pt" is the patient, not a Point
        elif expl == "number of 7+ digits":
            if 13 <= end - start <= 19 and luhn_valid(text[start:end]):
                add(self.span(start, end, "ACCOUNT", 0.9, "card number (Luhn valid)"))
                return
            if end - start <= 15 and _PHONE_CUES.search(text, max(0, start - 30), start) is not None:
                add(self.span(start, end, "PHONE", 0.7, "digits after a phone/fax cue"))
                return
        add(self.span(start, end, etype, score, expl))

    def _extend_addresses(self, text: str, out: list[Span], lower: str) -> None:
        """Grow street addresses over the city / region / postcode / country that follow them, and add the text
        after an address cue ("lives at", "address:") up to the end of the sentence."""
        for i, span in enumerate(out):
            if span.entity_type == "ADDRESS":
                tail = _ADDRESS_TAIL.match(text, span.end)
                if tail is not None and text[span.end - 1] == "." and _SENTENCE_OPENER.match(text, span.end):
                    tail = None  # "on Newbury St. He reports": the sentence ends there ("12 Elm St. Salem, MA" goes on)
                if tail is not None and tail.end() > span.end:
                    out[i] = Span(span.start, tail.end(), "ADDRESS", span.score, span.explanation + " + city/postcode",
                                  span.recognizer)
        one_case = text.isupper() or text.islower()
        for m in _ADDRESS_CUE.finditer(lower):
            start, end = m.end(), m.end()
            if _NO_ADDRESS_AFTER_CUE.match(lower, start):
                continue  # "lives at home with wife and 2 kids", "moved to a nursing home": no address follows
            stop = (_ONE_CASE_STOP.search(lower, start, min(len(text), start + 120)) if one_case
                    else _SENTENCE_STOP.search(text, start, min(len(text), start + 120)))
            end = stop.start() if stop else min(len(text), start + 120)
            first_number = _FIRST_NUMBER.search(text, start, end)
            if end - start >= 4 and first_number is not None and not _NOT_HOUSE_NUMBER.match(
                    text, first_number.start(), end) and not _ROOM_BEFORE_NUMBER.search(
                    lower, start, first_number.start()):  # "moved to Nevada 6 months ago" holds no address
                out.append(self.span(start, end, "ADDRESS", 0.6, "text after an address cue"))

    def _numbers(self, text: str, add, lower: str) -> None:
        for m in _DIGIT_GROUPS.finditer(text):
            start, end = m.span()
            value = m.group()
            if value.endswith(")") and value.count(")") > value.count("("):
                end -= 1  # "(cell 617-555-0143)": the bracket closes the sentence's, not an area code's
                value = value[:-1]
            ext = _EXTENSION.match(text, end)
            if ext is not None:
                end = ext.end()
            if not _left_ok(text, start, _WORD_LEFT + ".,/:+-") or text[end:end + 1].isalnum():
                continue
            if text[end:end + 1] in (".", ",", "-", "/", ":") and text[end + 1:end + 2].isdigit():
                continue
            if _SSN.fullmatch(value) and ssn_valid(value):
                add(self.span(start, end, "SSN", 0.85, "SSN ddd-dd-dddd"))
                continue
            digits = sum(c.isdigit() for c in value)
            if 13 <= digits <= 19 and "." not in value and luhn_valid("".join(c for c in value if c.isdigit())):
                add(self.span(start, end, "ACCOUNT", 0.9, "card number (Luhn valid)"))
                continue
            if not 7 <= digits <= 15:
                continue
            if _PHONE_US.fullmatch(value) or (value.startswith("+") and digits >= 8):
                add(self.span(start, end, "PHONE", 0.8, "phone number"))
                continue
            cue = _PHONE_CUES.search(text, max(0, start - 40), start) is not None
            numbers = re.findall(r"\d+", value)
            groups = len(numbers)
            if (_DECIMAL_IN.search(value) or (groups == 2 and numbers[0][-1] == numbers[1][-1] == "0")) \
                    and looks_like_note(text):
                continue  # in a note, a lab value ("7.38-33-169", "102-102.4") or a round range ("900-1000")
            if cue:
                add(self.span(start, end, "PHONE", 0.7, "digit groups after a phone/fax cue"))
            elif groups >= 3 and "." not in value:
                add(self.span(start, end, "PHONE", 0.45, "three or more digit groups"))
        for m in _MONTH_DAY.finditer(text):
            start = m.start()
            if not _left_ok(text, start, _WORD_LEFT + _NUMERIC_LEFT):
                continue
            month, day = (int(x) for x in re.split("[/-]", m.group()))
            # (not day/month, "on 22/7": in ICU notes "on 13/10" is pressure support over PEEP, and a dev note
            # said so; a day-first site adds its dates with a year or a month name, which are found)
            if not (1 <= month <= 12 and 1 <= day <= 31):
                continue
            words = text[max(0, start - 24):start].lower().replace(":", " ").split()
            if "-" in m.group() and _RANGE_UNIT_AFTER.match(text, m.end()):
                continue  # "on 2-4 L", "by 2-3 breaths", "on 1-2 pillows": a range, not a date
            if words and words[-1] in _DATE_CUES and not _VENT_AFTER.match(text, m.end()):
                add(self.span(start, m.end(), "DATE", 0.75, "month/day after a date cue"))
        for m in _IBAN.finditer(text):
            if _left_ok(text, m.start(), _WORD_LEFT) and iban_valid(m.group()):
                add(self.span(m.start(), m.end(), "ACCOUNT", 0.95, "IBAN (mod-97 valid)"))
        for m in _FIVE_DIGITS.finditer(text):
            start = m.start()
            if not _left_ok(text, start, _WORD_LEFT + "-.,"):
                continue
            if m.end() - start == 10:
                add(self.span(start, m.end(), "ZIP", 0.8, "ZIP+4"))
                continue
            words = text[max(0, start - 20):start].replace(",", " ").replace(".", " ").split()
            if words and (words[-1].lower() in _STATE_WORDS or " ".join(words[-2:]).lower() in _STATE_WORDS):
                add(self.span(start, m.end(), "ZIP", 0.85, "ZIP after a state"))
            elif words and words[-1].lower() in _TERRITORY_WORDS:  # (below an address's score: the union stays one)
                add(self.span(start, m.end(), "ZIP", 0.55, "ZIP after a territory or military post code"))
        for m in (() if text.isupper() else _UK_INWARD.finditer(text)):  # (it wants a lower-case letter before)
            outward = _UK_OUTWARD_BEFORE.search(text, max(0, m.start() - 6), m.start())
            if outward is not None:
                add(self.span(outward.start(), m.end(), "ZIP", 0.75, "UK postcode after a place name"))
        if "zip" not in lower and "post" not in lower:
            return
        for m in _ZIP_CUE.finditer(text):
            add(self.span(*_value_bounds(m), "ZIP", 0.85, "ZIP / postcode after a cue"))

    def _labelled(self, text: str, add, lower: str) -> None:
        for hit in _LABEL_START_RE.finditer(lower):
            m = _LABELLED.match(text, hit.start())
            if m is None:
                continue
            etype = m.lastgroup if m.lastgroup != "value" else next(k for k, _ in LABELLED_IDS if m.group(k))
            start, end = m.span("value")
            if etype == "ID" and m.group("ID").lower() == "id" and not text[start:end].isdigit() \
                    and looks_like_note(text):
                continue  # "ID: TMAX-99, WBC 12.1": in a note "ID" heads the infectious-disease section
            if etype == "VEHICLE":
                plate = _PLATE_VALUE.match(text, start)
                if plate is not None and plate.end() > end:
                    end = plate.end()
            add(self.span(start, end, etype, 0.85, f"value after a {etype.lower()} label"))

    def _places(self, text: str, add, has_digit: bool) -> None:
        if has_digit:
            for m in _GLUED_STREET.finditer(text):
                start = m.start()
                while start > 0 and text[start - 1].isalpha():
                    start -= 1
                if start < m.start() and text[start].isupper():
                    glued = (text[start:m.start()] + m.group().split()[0]).lower()
                    if glued in english_words() or glued in allow_words():
                        continue  # "Wearing 40% face tent", "Lopressor 5 iv": a word and a number, no street
                    add(self.span(start, m.end(), "ADDRESS", 0.8, "street name glued to a suffix + number"))
        for m in _STATE_COMMA.finditer(text):
            words = capitalised_words_before(text, m.start(), 3)
            # a word with a digit ("CABGx4, RI"), or an all-caps word of 4 letters or fewer ("NT, ND"), is note
            # shorthand, no city
            if words is not None and not any(c.isdigit() for c in text[words:m.start()]) and (
                    not text[words:m.start()].isupper() or (m.start() - words > 4 and text[words:m.start()].isalpha())):
                add(self.span(words, m.start(), "LOCATION", 0.7, "city before a state"))
        for start, end, explanation in find_facility_names(text):
            add(self.span(start, end, "LOCATION", 0.6, explanation))


RECOGNIZERS.register("patterns", PatternRecognizer)
