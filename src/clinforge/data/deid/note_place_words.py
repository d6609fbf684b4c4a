"""Word lists and patterns with which the notes recognizer (``note_rules``) reads places in real notes: facility
words and the words that stop a name before them, place cues before a word, hospital abbreviations, ward numbers,
counties, saints' names and common hospital names, all matched on the lower-cased note.

Example:
    >>> bool(FACILITY_HEAD.search("transferred to mercy hospital")), "transferred" in STOP_BEFORE_FACILITY
    (True, True)
"""

from __future__ import annotations

import re

from clinforge.data.deid.facility_names import OPENING_VERBS
from clinforge.data.deid.lexicons import word_set, word_start_regex

FACILITY_HEAD = re.compile(r"(?<![a-z])(?:hospital|hosp|hospiatal|medical center|medical ctr|med center|med ctr|"
                           r"memorial|rehab|rehabilitation|nursing home|nursing agency|house|campus|clinic|hospice|"
                           r"health center|healthcare|manor|infirmary)(?![a-z])")
PLACE_CUE_BEFORE = re.compile(r"(?<![a-z])(?:transfer(?:red)? to|trans to|xfer to|sent to|admitted to|arrived from|"
                       r"presented to|came into|taken to|go to|going to|discharged to|d/c'?d to|followed at|"
                       r"lives in|lives at|called from|return to|returned to|referred to|accepted (?:by|at)|"
                       r"screened by|medflight to|came to|transferred from|transfer from|lives with .{0,20} in|"
                       r"resident of|native of|resides in|resides at|home in)[ \t]+(?:the[ \t]+)?$")
# The last word of every PLACE_CUE_BEFORE phrase: a cheap test before the regex (which is tried at 40 positions).
PLACE_CUE_LAST = frozenset({"to", "from", "into", "at", "in", "by", "of"})
ABBREV_CUE_BEFORE = re.compile(r"(?<![a-z])(?:to|from|at|in|into|->|>)[ \t]+(?:the[ \t]+)?$")
UNIT_CUE_BEFORE = re.compile(r"(?<![a-z])(?:to|on|from|per)[ \t]+$")
# A word right after any cue of PLACE_CUE_LAST or UNIT_CUE_BEFORE (and spaces, and one optional "the"): the only
# occurrences that the two unknown-word place rules can accept. One scan per note finds them, instead of finding
# every occurrence of each of a note's ~11 candidate words and testing what stands before each (the word is in a
# look-ahead, so "in to X" yields both "to" and "X").
AFTER_PLACE_CUE = re.compile(word_start_regex(("to", "from", "into", "at", "in", "by", "on", "per", "of"), "[a-z]")
                             + r"[ \t]+(?:the[ \t]+)?(?=(?P<w>[a-z]+))")
ROLE_ENDINGS = ("ician", "icians", "ologist", "ologists", "iatrist", "iatrists")
WARD_AFTER = re.compile(r"[ \t]+(?:care|unit|icu|ward|floor|service|team|department|dept|clinic|lab|suite)(?![a-z])")
UNIT_AFTER = re.compile(r"[ \t]?\d{1,2}(?![\d:/.%a-z-]|[ \t]*(?:am|pm|mg|l|x|days?|hours?|hrs?|weeks?|wks?|months?|"
                        r"times|mins?|minutes?)\b)")  # a ward number, not "to sternum 3 days ago"
# Before a city that is also a word: "in / from / near / at", or "to" after a verb of going ("went back to X");
# a bare "to" is mostly an infinitive ("able to bear", "unable to progress", "change to cool mist").
# What makes a city that is also a word ("Quincy", "Orange") a place: "in/from/at/near", a verb of going with
# "to", "resident/native of", or brackets right after a hospital word ("OUTSIDE HOSPITAL (QUINCY)", "OSH (Revere)")
PLACE_BEFORE = re.compile(r"(?<![a-z])(?:(?:from|in|at|near|(?:go|goes|going|went|gone|back|moved?|moving|drove|"
                          r"flew|fly|flying|travel(?:l?ed)?|trip|return(?:ed|ing)?|transfer(?:red)?|sent|home)"
                          r"[ \t]+to|(?:resident|native|hospitals?|cent(?:er|re)|clinic|university|city|town|county)"
                          r"[ \t]+of)[ \t]+|(?:hospital|hosp|osh|rehab|snf|facility)"
                          r"[ \t]*\([ \t]*)$")
COUNTY = re.compile(r"(?<![a-z])(?P<w>[a-z]{3,})(?:[ \t]+[a-z]{3,})?[ \t]+county(?![a-z])")
SAINT = re.compile(r"(?<![a-z])(?:st|saint)\.?[ \t]+(?P<w>[a-z]+)(?:'s)?+(?![a-z])(?![ \t]+wort)")  # St. John's wort: an herb
HOSPITAL_NAMES = ("sacred heart", "holy cross", "good samaritan", "holy family", "mercy medical", "children's")
HOSPITAL_FIRST = frozenset(h.split()[0].split("'")[0] for h in HOSPITAL_NAMES)
HOSPITAL_NAME = re.compile(r"(?<![a-z])(?:" + "|".join(re.escape(h) for h in HOSPITAL_NAMES) + r")(?![a-z])"
                           r"(?:[ \t]+(?:memorial|hospital|hosp|medical center)(?![a-z]))?")
STOP_BEFORE_FACILITY = word_set("""
the a an to from at in of for on this that his her their our your my outside other another same local community
multiple several many frequent numerous two three
state county city private public acute cardiac pulmonary inpatient outpatient physical rehab screen screened eval
evaluation bed placement day home new old prior previous recent hosp hospital leave awaiting possible start prev transfer transferred back admitted sent going go
discharge discharged dc d/c and or with by into out area nearby university general va osh lives live living nursing
""") | frozenset(OPENING_VERBS)  # a sentence's opening verb, as in mixed case ("Attends Lincoln Elementary School")
# Short words ending in h that are shorthand, not a hospital's initials ("to OSH": an outside hospital, unnamed).
ABBREV_NOT_PLACE = word_set("osh ph pah ich nh ah oh uh bph ldh acth pth adh doh th rh sh eh ch h bh mh dh")
