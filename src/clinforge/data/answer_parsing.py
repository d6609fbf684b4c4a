"""Strict answer extraction for generated answers: ONE documented grammar, never a random or default choice.

Shared by evaluation (``clinforge.eval.tasks.mcq`` scores generated MCQ answers with it) and training (the RL
reward ``mcq_letter`` in ``clinforge.train.align.rewards``), so a completion the reward counts as option C is
option C for ``clinforge eval`` too. It lives in ``data/`` because both layers may import it (``train/`` must
not import ``eval/``); ``clinforge.eval.extract`` re-exports it.

``extract_choice(output, choices)`` accepts, in this order:

1. an explicit final answer line: the LAST match of ``answer(?: is)?\\s*[:=]?\\s*\\(?X\\)?`` (case-insensitive),
   where X is one of ``choices`` as a whole word (e.g. ``Answer: B``, ``The answer is (C)``, ``answer: maybe``);
2. otherwise (and only when ``require_final`` is False) the output's first token, when it is one of the choices:
   a letter must stand alone, followed by ``.``, ``)``, ``:`` or the end of the line (``" B. Aspirin"``, ``"B"``,
   ``"(D) because"``), so an output restating a question (``"A 45-year-old man..."``) is not option A; a word
   choice may be followed by any punctuation or space (``"yes, because"``).

Letters match case-sensitively (a capital letter, so the English word "a" is not option A); word choices
(``yes``/``no``/``maybe``) match case-insensitively. Anything else is ``unparsed`` (wrong, counted). An output that
declines to answer (``I don't know``, ``cannot answer``, ``unable to determine``, ``not enough information``...)
with no parsable choice is ``abstained`` (wrong, counted separately).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

ABSTAIN_PATTERNS = re.compile(
    r"\b(i\s+(do\s+not|don't|dont)\s+know|cannot\s+(answer|determine|be\s+determined)|can't\s+(answer|determine)|"
    r"unable\s+to\s+(answer|determine)|not\s+enough\s+information|insufficient\s+information|"
    r"i\s+am\s+not\s+sure|i'm\s+not\s+sure|no\s+answer)\b",
    re.IGNORECASE,
)


@dataclass
class Extraction:
    """The parsed answer (None unless ``status == "ok"``) and how the output was classified."""

    answer: str | None
    status: str  # "ok" | "unparsed" | "abstained"


def _choice_pattern(choices: list[str]) -> str:
    return "|".join(re.escape(c) for c in sorted(choices, key=len, reverse=True))


def _canonical(found: str, choices: list[str]) -> str | None:
    for c in choices:
        if found == c or (not _is_letter(c) and found.casefold() == c.casefold()):
            return c
    return None


def _is_letter(choice: str) -> bool:
    return len(choice) == 1 and choice.isalpha()


def extract_choice(output: str, choices: list[str], *, require_final: bool = False) -> Extraction:
    """Parse one generated answer against the allowed ``choices`` (see the module docstring).

    Example:
        >>> extract_choice(" B. Aspirin", ["A", "B", "C", "D"])
        Extraction(answer='B', status='ok')
        >>> extract_choice("Reasoning... Answer: (C)", ["A", "B", "C", "D"], require_final=True)
        Extraction(answer='C', status='ok')
        >>> extract_choice("a patient", ["A", "B", "C", "D"])
        Extraction(answer=None, status='unparsed')
        >>> extract_choice("I don't know.", ["yes", "no", "maybe"])
        Extraction(answer=None, status='abstained')
    """
    text = output or ""
    letters_only = all(_is_letter(c) for c in choices)
    flags = 0 if letters_only else re.IGNORECASE
    alt = _choice_pattern(choices)
    final = re.compile(rf"answer(?:\s+is)?\s*[:=]?\s*\(?({alt})\)?(?![\w])", re.IGNORECASE)
    matches = [m for m in final.finditer(text) if _canonical(m.group(1), choices) is not None
               and (not letters_only or m.group(1).isupper())]
    if matches:
        return Extraction(_canonical(matches[-1].group(1), choices), "ok")
    if not require_final:
        after = r"(?:[.):]|[ \t]*(?:\n|$))" if letters_only else r"(?:[.):,;!?]|\s|$)"
        lead = re.match(rf"\s*\(?({alt}){after}", text, flags)
        if lead and _canonical(lead.group(1), choices) is not None:
            return Extraction(_canonical(lead.group(1), choices), "ok")
    if ABSTAIN_PATTERNS.search(text):
        return Extraction(None, "abstained")
    return Extraction(None, "unparsed")


def parse_letter(output: str, n_options: int = 26, *, require_final: bool = False) -> str | None:
    """The option letter among the first ``n_options`` letters that ``output`` gives, or None (same grammar as
    :func:`extract_choice` with lettered choices).

    Example:
        >>> parse_letter("The answer is a bacterial infection. Answer: C"), parse_letter("no idea")
        ('C', None)
    """
    if not 1 <= n_options <= 26:
        raise ValueError(f"n_options must be 1..26, got {n_options}")
    return extract_choice(output, list(LETTERS[:n_options]), require_final=require_final).answer


def extract_field(output: str, name: str) -> str | None:
    """The text after ``NAME:`` on its line (last occurrence, case-insensitive), or None.

    Example:
        >>> extract_field("Error: yes\\nSentence: 3\\nCorrection: Give aspirin.", "sentence")
        '3'
    """
    found = re.findall(rf"(?im)^\s*{re.escape(name)}\s*:\s*(.*?)\s*$", output or "")
    return found[-1] if found else None


__all__ = ["ABSTAIN_PATTERNS", "LETTERS", "Extraction", "extract_choice", "extract_field", "parse_letter"]
