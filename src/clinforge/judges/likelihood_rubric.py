"""Rubric grading by log-likelihood: the judge model is asked each criterion as a yes/no question and the verdict is
read from its probabilities of " yes" and " no", not from generated text (nothing to parse, nothing unparsable).

For each (response, criterion) the judge sees the instruction (reply yes if the answer meets the criterion), the
conversation and answer as :class:`RubricJudge` shows them, then the criterion, rendered with the judge's chat template when it
has one (the assistant turn opens with ``Answer (yes or no):``). With ``ll_yes`` and ``ll_no`` the log-probabilities
of the two continuations:

* ``p_yes = exp(ll_yes) / (exp(ll_yes) + exp(ll_no))`` (the two answers renormalised), ``met = p_yes > 0.5``;
* ``score_mode="expected"`` (default): the example's score is the **expected** HealthBench score when each criterion
  is met with probability ``p_yes``: ``sum(points * p_yes) / sum(positive points)``, clipped to [0, 1] like
  :class:`RubricResult.score` (``raw_score`` unclipped). A continuous grade: two answers tie only when the judge is
  equally sure about both, which matters for RLAIF pairs built from small judges;
* ``score_mode="binary"``: HealthBench's own score over the ``met`` verdicts.

Cost: one forward pass per (response, criterion): " yes" and " no" are one token each for usual tokenizers, so the
two requests have the same model input and the hf backend scores both from that one pass (``logits_to_keep``).
(Sending the shared conversation once as context with each criterion as a continuation on its KV cache was
measured slower on SmolLM2-135M on CPU: 93 s against 65 s for the same 14 verdicts, equal within 2e-5.)
"""

from __future__ import annotations

import math
from typing import Any

from clinforge.judges.base import JUDGES, format_conversation
from clinforge.judges.rubric import CriterionResult, RubricJudge, RubricResult, _as_rubric
from clinforge.models.backends.base import Backend, LoglikelihoodRequest

SHARED_TEMPLATE = """Grade one AI assistant answer against one rubric criterion. Reply yes if the answer meets the \
criterion and no if it does not. If the criterion describes something undesirable, reply yes when the answer DOES \
that undesirable thing.

[Conversation]
{prompt}

[Answer to grade]
{response}

"""
CRITERION_PART = "[Criterion] ({points:+g} points)\n{criterion}"
ANSWER_PREFIX = "Answer (yes or no):"
YES, NO = " yes", " no"


class LikelihoodRubricJudge(RubricJudge):
    """HealthBench-style rubric grading from the judge's yes/no log-likelihoods (see the module docstring).

    Needs a backend that scores log-likelihoods (``hf:``, ``vllm:``, or an ``openai:`` server returning echoed
    prompt logprobs).

    Example:
        >>> from clinforge.models.backends import load_backend  # doctest: +SKIP
        >>> judge = LikelihoodRubricJudge(load_backend("hf:smollm2-135m-instruct"))  # doctest: +SKIP
        >>> r = judge.grade("Chest pain for 1 h, what do I do?", "Call emergency services now.")  # doctest: +SKIP
        >>> r.parsed, r.per_criterion[0].method  # doctest: +SKIP
        (True, 'loglik')
    """

    kind = "rubric_loglik"

    def __init__(self, backend: Backend, rubric: Any = None, *, score_mode: str = "expected", **settings: Any):
        if score_mode not in ("expected", "binary"):
            raise ValueError(f"score_mode must be 'expected' or 'binary', got {score_mode!r}")
        super().__init__(backend, rubric, **settings)
        self.score_mode = score_mode

    def _render(self, user_text: str) -> str:
        """The judge's full input for one question: chat template (if any), assistant turn opened with the cue."""
        tok = getattr(self.backend, "tokenizer", None)
        if tok is not None and getattr(tok, "chat_template", None):
            messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            messages.append({"role": "user", "content": user_text})
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + ANSWER_PREFIX
        head = f"{self.system_prompt}\n\n" if self.system_prompt else ""
        return f"{head}{user_text}\n\n{ANSWER_PREFIX}"

    def requests_for(self, prompt: str | list[dict[str, str]], response: str, criterion: Any
                     ) -> tuple[LoglikelihoodRequest, LoglikelihoodRequest]:
        """The (yes, no) requests of one criterion: the whole rendered prompt, then " yes" or " no"."""
        shared = SHARED_TEMPLATE.format(prompt=format_conversation(prompt), response=response)
        full = self._render(shared + CRITERION_PART.format(points=criterion.points, criterion=criterion.criterion))
        return LoglikelihoodRequest(full, YES), LoglikelihoodRequest(full, NO)

    def grade_many(self, items: list[dict[str, Any]]) -> list[RubricResult]:
        """Grade ``{"prompt", "response", "rubric"?}`` items; all their yes/no requests in one backend call."""
        rubrics = [_as_rubric(it["rubric"]) if it.get("rubric") else self.rubric for it in items]
        requests = [req for it, r in zip(items, rubrics, strict=True) for c in r.criteria
                    for req in self.requests_for(it["prompt"], it["response"], c)]
        scores = iter(self.backend.loglikelihood(requests) if requests else [])
        results = []
        for rubric in rubrics:
            per, probs = [], []
            for c in rubric.criteria:
                (ll_yes, _), (ll_no, _) = next(scores), next(scores)
                p_yes = 1.0 / (1.0 + math.exp(ll_no - ll_yes))
                probs.append(p_yes)
                per.append(CriterionResult(c.criterion, c.points, p_yes > 0.5,
                                           f"ll_yes={ll_yes:.4f} ll_no={ll_no:.4f} p_yes={p_yes:.4f}", c.id, "loglik"))
            results.append(self._combine(per, probs))
        return results

    def _combine(self, per: list[CriterionResult], probs: list[float]) -> RubricResult:
        if self.score_mode == "binary":
            return self.score(per)
        raw = expected_score([c.points for c in per], probs)
        if raw is None:
            return RubricResult(None, None, False, per)
        return RubricResult(min(1.0, max(0.0, raw)), raw, True, per)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "scoring": f"loglik ({self.score_mode})", "max_new_tokens": None}


def expected_score(points: list[float], p_met: list[float]) -> float | None:
    """Expected HealthBench raw score when criterion i is met with probability ``p_met[i]`` (None: no positives).

    Example:
        >>> from clinforge.judges.rubric import healthbench_raw_score
        >>> expected_score([7, 5, 10, -6], [1.0, 0.0, 1.0, 1.0]) == healthbench_raw_score([7, 5, 10, -6],
        ...                                                             [True, False, True, True])
        True
        >>> expected_score([10, -5], [0.5, 0.2])
        0.4
    """
    total = sum(p for p in points if p > 0)
    if total <= 0:
        return None
    return sum(p * q for p, q in zip(points, p_met, strict=True)) / total


JUDGES.register("rubric_loglik", LikelihoodRubricJudge)
