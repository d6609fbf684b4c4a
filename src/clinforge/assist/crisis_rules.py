"""Rules that grade a user's message on the levels of the C-SSRS screener (Columbia Suicide Severity Rating Scale).

Levels (the screener's questions, Posner et al. 2011; the screener version of the Columbia Lighthouse Project):

====  =============================================  ==========================================================
0     none
1     wish to be dead                                 "I wish I was dead", "I don't want to live anymore"
2     non-specific active suicidal thoughts           "I keep thinking about killing myself"
3     active ideation with a method (no intent)       "... by jumping off the bridge"
4     active ideation with some intent to act         "I'm going to kill myself"
5     active ideation with a specific plan            "I plan to overdose tonight"
6     suicidal behaviour (attempt, interrupted or     "I took all my pills", "I've been stockpiling pills",
      aborted attempt, preparatory acts)              "I wrote a suicide note"
====  =============================================  ==========================================================

How a message is read (deterministic: the same text always gives the same result):

* the text is lower-cased, curly quotes straightened, and cut into clauses at sentence ends, semicolons, new lines
  and the contrast words "but", "although", "though" ("I don't want to die, but I think about killing myself");
* **first person only**: a clause is scored only when it is about the writer. A clause naming someone else as the
  subject ("my patient", "my brother", "she", "he said", "pt") or using himself/herself/themselves is skipped
  (rule ``third_person``): "my patient denies SI" and "my friend wants to end her life" are not the user's crisis.
  Clinical discussion without a first-person statement ("risk factors for suicide", "how do I ask about thoughts of
  suicide") matches no pattern, because every pattern needs the writer as its subject or object (``myself``,
  ``I``, ``my life``);
* **negation**: a match preceded in its clause, within four words, by a negator (not, never, no, don't, won't,
  wouldn't, denies, ...) is dropped (rule ``negated``): "I don't want to die", "I would never kill myself",
  "I'm not suicidal". Phrases whose meaning *is* negative are their own patterns and cannot be negated away:
  "I don't want to live", "no reason to live", "life isn't worth living";
* **history**: a clause with a distant-past marker ("used to", "years ago", "when I was a teenager", "in the past",
  "no longer") does not count for ideation (levels 1-5: the screener asks about the past month). Suicidal behaviour
  with such a marker is level 6 with rule ``behaviour_past`` (the screener triages lifetime behaviour older than
  3 months as moderate risk), which has its own action in the guard (``past_behaviour``);
* **method** (level 3) needs ideation in the same clause, or a "thought about / thinking of" + method phrase: a
  method word alone ("I take pills for my blood pressure") is nothing;
* **plan** (level 5) is a stated plan ("I plan to", "my plan is", "I've worked out how") or ideation/intent with
  a time ("tonight", "tomorrow", "this weekend", "on Friday", "when everyone is asleep") in the same clause;
* the message's level is the maximum over its clauses; the rule id of the clause that set it is reported (never
  the text).

Known limits (documented in docs/assist.md with the per-level accuracy): sarcasm, metaphors outside the idiom list,
quoted speech without a "said"/"says" cue, non-English text, spelling far from the patterns, and risk stated without
any of the listed phrasings are missed; an optional model classifier (``crisis_guard.CrisisClassifier``) is
combined by maximum for that reason.

Example:
    >>> assess_rules("I don't want to die, but lately I keep thinking about killing myself.").level
    2
    >>> assess_rules("My patient denies SI/HI.").rule
    'third_person'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LEVEL_NAMES: dict[int, str] = {
    0: "none",
    1: "wish to be dead",
    2: "non-specific active suicidal thoughts",
    3: "active ideation with method",
    4: "active ideation with intent",
    5: "active ideation with plan",
    6: "suicidal behaviour",
}

_SELF_HARM = (r"(?:kill(?:ing|ed)? myself|end(?:ing)? (?:it all|my (?:own )?life|it)|tak(?:e|ing) my (?:own )?life|"
              r"commit(?:ting)? suicide|die|be dead)")
_METHOD = (r"\b(?:overdos\w*|\bod\b|pills|tablets|hang(?:ing)? myself|hanging|rope|noose|jump\w*|bridge|gun|shoot(?:ing)?"
           r" myself|firearm|cut(?:ting)? (?:my )?(?:wrists?|throat)|slit\w*|drown\w*|carbon monoxide|car exhaust|"
           r"in front of (?:a|the) (?:train|bus|car)|poison\w*|bleach|knife|razor)\b")
_TIME = (r"(?:tonight|tomorrow|this (?:weekend|week|evening|afternoon|morning)|on (?:monday|tuesday|wednesday|"
         r"thursday|friday|saturday|sunday)|next (?:week|month)|when (?:every(?:one|body)|my \w+|they|he|she) "
         r"(?:is|are|goes|go|leaves?)\b)")

# (level, rule id, pattern, negatable). Checked on one normalised clause.
PATTERNS: list[tuple[int, str, re.Pattern[str], bool]] = [(lvl, rid, re.compile(p), neg) for lvl, rid, p, neg in [
    # 6: behaviour: attempts, interrupted/aborted attempts, preparatory acts (the screener's examples)
    (6, "attempt", r"\b(?:tried|try|trying|attempted|attempting) to (?:kill myself|end my (?:own )?life|take my "
                   r"(?:own )?life|commit suicide|die|overdose)|\b(?:i|i've|i have) attempted suicide|"
                   r"\bmy (?:suicide )?attempt\b|\bsuicide attempt\b", True),
    (6, "overdose_taken", r"\b(?:i|i've|i have|just) (?:took|taken|swallowed|ingested) (?:an overdose|all (?:of )?"
                          r"(?:my|the) (?:pills|tablets|meds|medication)|a (?:bunch|handful|lot|bottle) of "
                          r"(?:pills|tablets)|\d+ (?:pills|tablets))", False),
    (6, "self_injury_to_die", r"\b(?:i )?(?:cut|slit|slashed) my (?:wrists?|throat)\b", False),
    (6, "preparatory_act", r"\b(?:stockpil\w*|hoard\w*|sav(?:ed|ing) up|collect(?:ed|ing)) (?:\w+ ){0,2}(?:pills|tablets"
                           r"|meds|medication)|\b(?:bought|got|obtained|have got|i've got) (?:a |the |my )?"
                           r"(?:gun|rope|noose)\b|\b(?:wrote|written|writing|left) (?:a |my )?(?:suicide note|"
                           r"goodbye (?:letter|note)s?)|\bgave away (?:all )?my (?:things|stuff|belongings|"
                           r"possessions|pets)|\bsaid goodbye to (?:my|every)", False),
    (6, "at_the_edge", r"\b(?:i'm|i am|im) (?:standing|sitting) (?:on|at) (?:the|a) (?:bridge|edge|ledge|roof)|"
                       r"\bholding the (?:pills|gun|knife|rope)", False),
    # 5: a plan
    (5, "stated_plan", r"\b(?:i|i've|i have) (?:planned|worked out|figured out) (?:how|when|where|the details)|"
                       r"\bmy plan is to\b|\b(?:i )?(?:plan|planning) to (?:kill myself|end (?:it|my life)|overdose|"
                       r"od|jump|hang myself|shoot myself|take my (?:own )?life|die)", True),
    (5, "ideation_with_time", rf"(?:kill(?:ing)? myself|end(?:ing)? (?:it|my life)|overdose|hang myself|jump)\b.*"
                              rf"\b{_TIME}|\b{_TIME}.*(?:kill(?:ing)? myself|end(?:ing)? (?:it|my life)|"
                              rf"overdose|hang myself)", True),
    # 4: intent
    (4, "intent", r"\b(?:i'm|i am|im) (?:going to|gonna|definitely going to|about to) (?:kill myself|end (?:it|my "
                  r"(?:own )?life)|take my (?:own )?life|do it|overdose|hang myself)|\bi(?:'ll| will) (?:kill myself|"
                  r"end (?:it|my (?:own )?life)|take my (?:own )?life)|\b(?:i've|i have) (?:decided|made up my mind)"
                  r" to (?:kill myself|die|end (?:it|my (?:own )?life))|\bi (?:intend|mean) to (?:kill myself|die|"
                  r"end (?:it|my life))", True),
    # 3: method (with ideation in the clause, checked in code) or "thinking of <method>"
    (3, "thinking_of_method", r"\b(?:thought|thinking|think|thoughts|considered|considering|wondered|wondering)"
                              r" (?:about|of|if|whether) (?:\w+ ){0,3}(?:overdos\w*|hanging myself|jumping|shooting "
                              r"myself|cutting my wrists|taking (?:all )?(?:my |the )?pills|drowning myself)", True),
    # 2: active non-specific thoughts
    (2, "kill_myself", r"\b(?:kill(?:ing|ed)?|hurt(?:ing)?) myself\b(?! (?:laughing|with laughter))", True),
    (2, "end_my_life", r"\b(?:end(?:ing)?|tak(?:e|ing)) my (?:own )?life\b|\bend(?:ing)? it all\b|"
                       r"\bcommit(?:ting)? suicide\b", True),
    (2, "suicidal_self", r"\b(?:i'm|i am|im|i feel|i've been|i have been|i was|i get|feeling) (?:\w+ )?suicidal\b|"
                         r"\bmy suicidal (?:thoughts|feelings)\b", True),
    (2, "suicidal_thoughts", r"\b(?:i have|i've|i am having|i'm having|i keep having|i get|i've been having|i have "
                             r"been having|having|i think about|i keep thinking about) (?:\w+ ){0,2}(?:thoughts? "
                             r"(?:of|about) )?(?:suicide|killing myself|ending (?:it|my life))\b|\bi have si\b", True),
    # 1: wish to be dead (passive ideation). The first group is negative in meaning: not negatable.
    (1, "no_wish_to_live", r"\b(?:don't|do not|dont) want to (?:live|be alive|be here|exist|wake up)\b|"
                           r"\bno (?:reason|point) (?:to|in) (?:live|living|go on|going on)\b|\b(?:life|living) "
                           r"(?:isn't|is not|is no longer|not) worth (?:living|it)\b|\b(?:can't|cannot) go on\b|"
                           r"\b(?:nobody|no one) would (?:miss|care about) me\b", False),
    (1, "wish_dead", r"\bwish (?:i )?(?:was|were|could be|'d be) dead\b|\bwish i (?:could )?(?:die|disappear|"
                     r"had never been born|wasn't (?:alive|here|born)|could go to sleep)\b|\bwant(?:ed)? to (?:die|be "
                     r"dead)\b|\bbetter off (?:dead|without me)\b|\btired of (?:living|life|being alive)\b|\b(?:go to "
                     r"sleep|fall asleep) and (?:never|not) wake up\b", True),
]]
_IDEATION_FOR_METHOD = re.compile(r"\b(?:kill(?:ing)? myself|end(?:ing)? (?:it|my (?:own )?life)|die|dead|suicid\w*|"
                                  r"take my (?:own )?life)\b")
_METHOD_RE = re.compile(_METHOD)
_NEGATOR = re.compile(r"\b(?:not|never|no|don't|dont|do not|won't|wont|will not|wouldn't|would not|isn't|aren't|"
                      r"didn't|did not|doesn't|denies|deny|denied|without|nor|neither|no longer|not going to)\b")
_NEGATOR_INSIDE = re.compile(r"\b(?:not|never|don't|dont|won't|wouldn't)\b")
_THIRD_PERSON = re.compile(
    r"^(?:\w+ ){0,3}?(?:my|the|our|his|her|their|a|your) (?:patient|pt|client|friend|son|daughter|mother|father|mom|"
    r"mum|dad|brother|sister|husband|wife|partner|boyfriend|girlfriend|child|kid|student|colleague|coworker|"
    r"neighbou?r|relative|family member|teenager|cousin|uncle|aunt)s?\b|^(?:he|she|they|pt|patient)\b|"
    r"\b(?:he|she|they) (?:said|says|told|tells|states|reports|wants|tried|took)\b|\b(?:him|her|them)sel(?:f|ves)\b")
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|im|i've|i'll|i'd|me|my|myself|mine)\b")
_HISTORICAL = re.compile(r"\b(?:used to|years ago|long ago|long time ago|when i was (?:younger|a (?:kid|child|teen"
                         r"|teenager)|little|in (?:school|college))|as a (?:kid|child|teen|teenager)|in the past|"
                         r"no longer|not anymore|long gone|back in (?:\d{4}|high school|college|school))\b")
_IDIOM = re.compile(r"\b(?:killing me|dying to|to die for|kill for a|could kill (?:for|him|her)|dead tired|"
                    r"bored to death|scared to death)\b")
_SPLIT = re.compile(r"[.!?;\n]+|,?\s+\b(?:but|although|though)\b\s+")


@dataclass(frozen=True)
class RuleResult:
    """The rules' verdict: ``level`` 0-6, the ``rule`` that set it (``none`` when nothing fired, or ``negated``,
    ``third_person``, ``historical`` when only such clauses matched), and ``past`` when it is behaviour with a
    distant-past marker."""

    level: int
    rule: str
    past: bool = False


def _normalise(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text.lower().replace("’", "'").replace("‘", "'"))


def _negated(clause: str, start: int, end: int | None = None) -> bool:
    """A negator within four words before ``start``, or inside the match itself ("i'm not suicidal")."""
    before = " ".join(clause[:start].split()[-4:])
    return bool(_NEGATOR.search(before) or (end is not None and _NEGATOR_INSIDE.search(clause, start, end)))


def assess_clause(clause: str) -> RuleResult:
    """Grade one normalised clause (lower case); see the module doc for the rules.

    Example:
        >>> assess_clause("i would never kill myself").rule, assess_clause("i wish i was dead").level
        ('negated', 1)
    """
    clause = clause.strip(" ,:-\"'()")
    if not clause:
        return RuleResult(0, "none")
    skipped = "none"
    if _THIRD_PERSON.search(clause) and not re.search(r"\b(?:myself|i'm|i am|i've|i'll)\b|^i\b", clause):
        return RuleResult(0, "third_person")
    if not _FIRST_PERSON.search(clause):
        return RuleResult(0, "none")
    historical = bool(_HISTORICAL.search(clause))
    for level, rule, pattern, negatable in PATTERNS:
        for m in pattern.finditer(clause):
            if negatable and _negated(clause, m.start(), m.end()):
                skipped = "negated"
                continue
            if level == 6:
                return RuleResult(6, "behaviour_past" if historical else rule, past=historical)
            if historical:
                skipped = "historical"
                continue
            if level == 2 or level == 1:
                if _IDIOM.search(clause) and not re.search(r"myself|suicid|dead|my life", clause):
                    continue
                if _METHOD_RE.search(clause, m.end()) or _METHOD_RE.search(clause[:m.start()]):
                    return RuleResult(3, f"{rule}+method")
            return RuleResult(level, rule)
    if not historical and _METHOD_RE.search(clause) and _IDEATION_FOR_METHOD.search(clause) and skipped == "none":
        m = _IDEATION_FOR_METHOD.search(clause)
        if m is not None and not _negated(clause, m.start()) and re.search(r"\bmyself\b|\bmy life\b", clause):
            return RuleResult(3, "ideation+method")
    return RuleResult(0, skipped)


def assess_rules(text: str) -> RuleResult:
    """The maximum level over the clauses of ``text``; ties keep the first clause's rule.

    Example:
        >>> assess_rules("I'm fine. I used to want to die years ago.").rule
        'historical'
    """
    best = RuleResult(0, "none")
    for clause in _SPLIT.split(_normalise(text)):
        r = assess_clause(clause)
        if r.level > best.level or (best.level == 0 and r.level == 0 and best.rule == "none" and r.rule != "none"):
            best = r
    return best
