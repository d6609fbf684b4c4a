"""Scoring of medical VQA answers (VQA-RAD, SLAKE, PathVQA): clinforge's definitions and LLaVA-Med's legacy ones.

**clinforge scoring** (the default, every number with a definition):

* normalisation (:func:`normalize_answer`): lower case; punctuation becomes a space except a ``.`` or ``,``
  between digits (``3.4 cm`` stays ``3.4 cm``); the articles ``a an the`` are dropped; number words ``zero`` ..
  ``ten`` become digits; whitespace is collapsed;
* closed questions (:func:`score_closed`): the output is parsed against the **closed answer vocabulary** (every
  normalised gold answer of a closed question of the data set, both splits): the normalised output equal to a
  vocabulary entry, else the longest entry the output *starts with* as whole words ("Yes, there is a mass" ->
  ``yes``). Nothing matched is **unparsable**: scored wrong and counted (``closed_unparsed``), never guessed;
* open questions (:func:`score_open`): exact match of the normalised strings; token precision, recall and F1 over
  normalised word tokens with multiplicity (SQuAD's definition: overlap = size of the multiset intersection; an
  empty prediction or gold scores 0); the answer length in tokens is reported beside them because recall rewards
  long answers.

**llava-med-legacy scoring** (:func:`llava_med_legacy`, reproduces ``llava/eval/run_eval.py`` of
microsoft/LLaVA-Med at commit ad758b6, the script behind its published VQA-RAD/SLAKE/PathVQA numbers):

* both strings are lower-cased and passed through its ``normalize_word`` (punctuation list, article removal,
  number words to digits, contraction table; its period regex drops every ``.`` not followed by a digit);
* closed: if the prediction contains the *substring* ``"yes"`` or ``"no"`` then it is a hit when the gold answer is
  a *substring* of the prediction, and **otherwise the item is left out of the denominator**; a prediction without
  either substring scores 0. Consequences: "normal" and "unknown" contain "no" (a hit for gold "no"), "not
  sure"/"none"... too; a correct bare "left" for a closed left/right question scores 0 (it contains neither), and
  every wrong yes/no answer silently disappears from the count;
* open: ``recall`` = (summed prediction counts of the word types both share) / (that + summed gold counts of gold
  types missing from the prediction), the number the paper reports as open-question "recall"; its "exact match" is
  the number of gold word types present in the prediction over the prediction's word count (so "left" scores 1.0
  against "left lung").

Example:
    >>> score_closed("Yes, there is a mass.", "yes", {"yes", "no", "left"})["correct"]
    True
    >>> llava_med_legacy("unknown", "no", "CLOSED")["closed_hit"]  # the quirk: "no" in "unknown"
    1
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

ARTICLES = frozenset({"a", "an", "the"})
NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
# punctuation -> space, except "." and "," with a digit on both sides (3.4, 1,500)
_PUNCT = re.compile(r"(?<!\d)[.,]|[.,](?!\d)|[^\w\s.,]|_")


def normalize_answer(text: str) -> str:
    """clinforge's answer normalisation (see the module docstring).

    Example:
        >>> normalize_answer("  The LEFT lung; 3.4 cm, two nodules!")
        'left lung 3.4 cm 2 nodules'
    """
    spaced = _PUNCT.sub(" ", str(text).lower())
    words = [NUMBER_WORDS.get(w, w) for w in spaced.split() if w not in ARTICLES]
    return " ".join(words)


def closed_vocabulary(answers: Iterable[str]) -> set[str]:
    """The normalised closed-answer vocabulary (empty answers left out).

    Example:
        >>> sorted(closed_vocabulary(["Yes", "no ", "Left", ""]))
        ['left', 'no', 'yes']
    """
    return {n for n in (normalize_answer(a) for a in answers) if n}


def parse_closed(output: str, vocabulary: set[str]) -> str | None:
    """The vocabulary entry the output answers with, or ``None`` (unparsable).

    Example:
        >>> parse_closed("No, the heart is normal.", {"yes", "no", "normal"})
        'no'
        >>> parse_closed("Normal", {"yes", "no", "normal"}), parse_closed("Unknown", {"yes", "no"})
        ('normal', None)
    """
    text = normalize_answer(output)
    if not text:
        return None
    if text in vocabulary:
        return text
    words = text.split()
    for k in range(len(words) - 1, 0, -1):  # longest leading phrase first ("right upper lobe" before "right")
        head = " ".join(words[:k])
        if head in vocabulary:
            return head
    return None


def score_closed(output: str, gold: str, vocabulary: set[str]) -> dict[str, Any]:
    """``{"parsed", "parse_status" ("ok" | "unparsed"), "correct"}`` of a closed answer.

    The gold answer always belongs to the vocabulary (it is added if a caller's vocabulary lacks it).

    Example:
        >>> score_closed("maybe", "no", {"yes", "no"})
        {'parsed': None, 'parse_status': 'unparsed', 'correct': False}
    """
    gold_n = normalize_answer(gold)
    parsed = parse_closed(output, vocabulary | {gold_n})
    return {"parsed": parsed, "parse_status": "ok" if parsed is not None else "unparsed",
            "correct": parsed is not None and parsed == gold_n}


def token_prf(prediction: str, gold: str) -> tuple[float, float, float]:
    """Token precision, recall, F1 of normalised answers (multiset overlap; SQuAD's F1 definition).

    Example:
        >>> [round(x, 3) for x in token_prf("left lower lobe", "the left lobe")]
        [0.667, 1.0, 0.8]
    """
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not p or not g:
        return 0.0, 0.0, 0.0
    overlap = sum((Counter(p) & Counter(g)).values())
    if overlap == 0:
        return 0.0, 0.0, 0.0
    precision, recall = overlap / len(p), overlap / len(g)
    return precision, recall, 2 * precision * recall / (precision + recall)


def score_open(output: str, gold: str) -> dict[str, Any]:
    """Exact match, token precision/recall/F1 and token lengths of an open answer.

    Example:
        >>> r = score_open("Left upper lobe.", "left upper lobe"); r["exact"], r["f1"], r["pred_len"]
        (True, 1.0, 3)
    """
    p, r, f = token_prf(output, gold)
    return {"exact": normalize_answer(output) == normalize_answer(gold) and bool(normalize_answer(gold)),
            "precision": p, "recall": r, "f1": f, "pred_len": len(normalize_answer(output).split()),
            "gold_len": len(normalize_answer(gold).split())}


# ---------------------------------------------------------------- LLaVA-Med legacy (reproduced, labelled)
_LEGACY_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
                 "?", "!")
_LEGACY_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")
_LEGACY_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: a lookahead for "<=digit", so it never guards a digit
_LEGACY_CONTRACTIONS = {"dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "cant": "can't", "wont": "won't",
                        "arent": "aren't", "wasnt": "wasn't", "werent": "weren't", "didnt": "didn't",
                        "hasnt": "hasn't", "havent": "haven't", "couldnt": "couldn't", "shouldnt": "shouldn't",
                        "wouldnt": "wouldn't", "thats": "that's", "theres": "there's", "whats": "what's"}
_LEGACY_NUMBERS = {"none": "0", **NUMBER_WORDS}


def legacy_normalize_word(text: str) -> str:
    """LLaVA-Med's ``normalize_word`` (its punctuation rule, period regex, number map incl. ``none`` -> ``0``).

    A punctuation mark is deleted when it touches a space (or the text has a digit-comma-digit), else replaced by a
    space; periods not followed by a digit are deleted (at most 32: its ``re.sub`` passes ``re.UNICODE`` as count).
    Its contraction table is abridged here to the entries that can occur in VQA answers (negations, "that's"...);
    the rest ("y'all'd've"...) never match a radiology answer.

    Example:
        >>> legacy_normalize_word("right-sided effusion, none.")
        'right sided effusion 0'
    """
    out = text
    for p in _LEGACY_PUNCT:
        if (p + " " in text or " " + p in text) or _LEGACY_DIGIT_COMMA.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _LEGACY_PERIOD.sub("", out, count=int(re.UNICODE))
    words = [_LEGACY_NUMBERS.get(w, w) for w in out.lower().split()]
    words = [_LEGACY_CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words).replace(",", "")


def _legacy_counts(text: str) -> Counter:
    return Counter(text.lower().split())


def llava_med_legacy(output: str, gold: str, answer_type: str) -> dict[str, Any]:
    """LLaVA-Med ``run_eval.py`` scoring of one item (see the module docstring for each quirk).

    Closed: ``closed_hit`` is 1, 0, or ``None`` = the item is dropped from LLaVA-Med's yes/no accuracy denominator.
    Open: ``recall``, ``precision``, ``f1`` and ``exact`` with its definitions.

    Example:
        >>> llava_med_legacy("left", "left", "CLOSED")["closed_hit"], llava_med_legacy("yes", "no", "CLOSED")["closed_hit"]
        (0, None)
        >>> llava_med_legacy("normal", "no", "CLOSED")["closed_hit"]
        1
    """
    pred = legacy_normalize_word(output.lower())
    ref = legacy_normalize_word(gold.lower())
    if answer_type.strip().upper() == "CLOSED":
        if "yes" in pred or "no" in pred:
            return {"closed_hit": 1 if ref in pred else None}
        return {"closed_hit": 0}
    # its f1/exact helpers normalise once more
    pred2, ref2 = legacy_normalize_word(pred), legacy_normalize_word(ref)
    cand, refc = _legacy_counts(pred2), _legacy_counts(ref2)
    total = sum(cand.values())
    exact = (sum(1 for w in refc if w in cand) / total) if total else 0.0
    tp = sum(cand[w] for w in set(cand) | set(refc) if w in cand and w in refc)
    fp = sum(cand[w] for w in cand if w not in refc)
    fn = sum(refc[w] for w in refc if w not in cand)
    if not cand or not refc or tp == 0:
        precision = recall = f1 = 0.0
    else:
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        f1 = 2 * precision * recall / (precision + recall)
    return {"recall": recall, "precision": precision, "f1": f1, "exact": exact}
