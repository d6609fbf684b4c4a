"""AI judges: single-answer grading, pairwise comparison in both orders, HealthBench-style rubric grading, juries,
and Med-PaLM-axes rating.

Judges call models only through ``clinforge.models.backends``, so RLAIF training (``clinforge.train``) and
evaluation (``clinforge.eval``) share them. Verdict parsing is strict (:mod:`clinforge.judges.parsing`):
unparsable verdicts are counted and excluded, never defaulted. Every report states position consistency, a
length-bias estimate and a self-preference flag (:mod:`clinforge.judges.bias`).

Example (RLAIF reward):
    >>> from clinforge.judges import RubricJudge, load_rubric
    >>> from clinforge.models.backends.base import load_backend
    >>> judge = RubricJudge(load_backend("openai:http://127.0.0.1:8000/v1#judge"), load_rubric())  # doctest: +SKIP
    >>> judge.grade("Chest pain, what now?", "Call emergency services.").score  # doctest: +SKIP
    0.76
"""

from clinforge.judges.axes import AXES, AxesJudge, AxesResult, Axis
from clinforge.judges.base import JUDGES, Judge
from clinforge.judges.bias import model_family
from clinforge.judges.jury import Jury, JuryResult
from clinforge.judges.likelihood_rubric import LikelihoodRubricJudge
from clinforge.judges.pairwise import PairwiseJudge, PairwiseResult
from clinforge.judges.parsing import ParsedVerdict, parse_criterion, parse_score, parse_winner
from clinforge.judges.rubric import (
    Criterion,
    CriterionResult,
    Rubric,
    RubricJudge,
    RubricResult,
    default_rubric,
    healthbench_aggregate,
    healthbench_raw_score,
    load_rubric,
)
from clinforge.judges.single import ScoreResult, SingleAnswerJudge

__all__ = [
    "AXES", "AxesJudge", "AxesResult", "Axis", "JUDGES", "Judge", "Jury", "JuryResult", "LikelihoodRubricJudge", "PairwiseJudge", "PairwiseResult", "ParsedVerdict", "Criterion",
    "CriterionResult", "Rubric", "RubricJudge", "RubricResult", "ScoreResult", "SingleAnswerJudge",
    "default_rubric", "healthbench_aggregate", "healthbench_raw_score", "load_rubric", "model_family",
    "parse_criterion", "parse_score", "parse_winner",
]
