"""Answer extraction for evaluation: the grammar lives in ``clinforge.data.answer_parsing`` so that the RL reward
(``clinforge.train.align.rewards.mcq_letter``) parses completions exactly as evaluation does; this module keeps the
``clinforge.eval.extract`` import path.

Example:
    >>> extract_choice("Answer: C", ["A", "B", "C", "D"]).answer
    'C'
"""

from __future__ import annotations

from clinforge.data.answer_parsing import ABSTAIN_PATTERNS, Extraction, extract_choice, extract_field, parse_letter

__all__ = ["ABSTAIN_PATTERNS", "Extraction", "extract_choice", "extract_field", "parse_letter"]
