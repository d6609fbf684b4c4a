"""The judge base class and the ``JUDGES`` registry.

A judge turns (prompt, response[s]) into a verdict by asking a model through ``clinforge.models.backends`` (the
same backends evaluation uses: ``hf:``, ``openai:``, ``vllm:``). Judges never call a model any other way, so any
model clinforge can evaluate can also judge.

Built-in kinds: ``single`` (:class:`~clinforge.judges.single.SingleAnswerJudge`), ``pairwise``
(:class:`~clinforge.judges.pairwise.PairwiseJudge`), ``rubric`` (:class:`~clinforge.judges.rubric.RubricJudge`) and
``jury`` (:class:`~clinforge.judges.jury.Jury`, several judges of one kind). Users add their own with
``JUDGES.register("name", MyJudge)`` or a ``clinforge.plugins`` entry point.
"""

from __future__ import annotations

from typing import Any

from clinforge.core.registry import Registry
from clinforge.judges.bias import model_family
from clinforge.models.backends.base import Backend, GenerationRequest

JUDGES: Registry[Any] = Registry("judge", builtins={
    "single": "clinforge.judges.single",
    "pairwise": "clinforge.judges.pairwise",
    "rubric": "clinforge.judges.rubric",
    "rubric_loglik": "clinforge.judges.likelihood_rubric",
    "jury": "clinforge.judges.jury",
    "axes": "clinforge.judges.axes",
})

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful physician acting as an impartial evaluator of answers to medical questions. "
    "Follow the instructions exactly and end with the JSON object you are asked for."
)


def format_conversation(prompt: str | list[dict[str, str]]) -> str:
    """A prompt as the judge sees it: plain text, or chat turns as ``role: content`` lines.

    Example:
        >>> format_conversation([{"role": "user", "content": "Dose?"}])
        'user: Dose?'
    """
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{turn['role']}: {turn['content']}" for turn in prompt)


class Judge:
    """Base class: holds the backend and decoding settings and sends batches of judge prompts.

    ``name`` labels the judge in reports (default: the backend's model name). Decoding is greedy by default
    (``temperature=0``) so that a rerun gives the same verdicts where the backend is deterministic.
    """

    kind: str = ""

    def __init__(self, backend: Backend, *, name: str | None = None, max_new_tokens: int = 512,
                 temperature: float = 0.0, seed: int | None = 0, system_prompt: str | None = DEFAULT_SYSTEM_PROMPT):
        self.backend = backend
        self.name = name or backend.model_name or type(backend).__name__
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.system_prompt = system_prompt

    @property
    def model_name(self) -> str:
        return self.backend.model_name or self.name

    @property
    def family(self) -> str | None:
        """The judge model's family (see :func:`clinforge.judges.bias.model_family`)."""
        return model_family(self.model_name)

    def ask(self, user_prompts: list[str]) -> list[str]:
        """Send each prompt as one chat (system + user turn) in a single backend batch; returns the raw outputs."""
        if not user_prompts:
            return []
        requests = []
        for text in user_prompts:
            messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            messages.append({"role": "user", "content": text})
            requests.append(GenerationRequest(messages=messages, max_new_tokens=self.max_new_tokens,
                                              temperature=self.temperature, seed=self.seed))
        outputs = self.backend.generate(requests)
        if len(outputs) != len(requests):
            raise RuntimeError(f"backend {self.name} returned {len(outputs)} outputs for {len(requests)} requests")
        return list(outputs)

    def describe(self) -> dict[str, Any]:
        """Settings recorded in run.json and reports."""
        return {"kind": self.kind, "name": self.name, "model": self.model_name, "family": self.family,
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed}
