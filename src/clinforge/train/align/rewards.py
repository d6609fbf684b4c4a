"""Named reward functions for the ``rl`` stage (registry ``REWARDS``), in the calling convention of TRL's
``RLOOTrainer`` / ``GRPOTrainer``: ``fn(prompts, completions, **dataset_columns) -> list[float | None]``.

A reward function is built from a recipe entry ``{name: mcq_letter, ...options}`` by its factory, so users add
their own with ``@REWARDS.register("my_reward")`` on a factory that returns the callable.

Definitions (each is a reward, i.e. the training signal, not an evaluation metric):

``mcq_letter``
    1.0 if the option letter found in the completion equals the gold letter (dataset column ``answer``), else 0.0.
    The letter is read by :func:`clinforge.data.answer_parsing.extract_choice`, the grammar ``clinforge eval`` scores
    generated answers with (the last ``Answer: X`` / ``the answer is (X)``, else a leading ``X.`` / ``(X)`` / lone
    ``X``; capital letters only), over the record's own options (dataset column ``choice_letters``, which the rl
    stage fills; ``n_options`` letters otherwise). So a completion the reward pays for as C is C for the evaluator.
    A completion with no readable letter earns 0.0 because it did not answer in the requested format, and it is
    counted: the share of such completions is logged as ``mcq_letter/unparsable_frac`` at every step, so a policy
    that never answers is visible.
``length``
    1.0 inside ``[min_words, max_words]``; outside, it decays linearly to 0.0 over ``tolerance`` words.
``format``
    1.0 if the completion matches the regular expression ``pattern`` (``re.search``), else 0.0.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.core.registry import Registry
from clinforge.data.answer_parsing import LETTERS, extract_choice, parse_letter

RewardFn = Callable[..., list[float | None]]
REWARDS: Registry[Callable[..., RewardFn]] = Registry("reward function")



def completion_text(completion: Any) -> str:
    """The text of one completion, conversational (``[{"role", "content"}]``) or standard (a string).

    Example:
        >>> completion_text([{"role": "assistant", "content": "B."}])
        'B.'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


def parse_answer_letter(text: str, n_options: int = 26) -> str | None:
    """The option letter a response gives, or None when it gives none: evaluation's grammar
    (:func:`clinforge.data.answer_parsing.parse_letter`), kept under this name for reward authors.

    Example:
        >>> parse_answer_letter("Answer: B. Metformin"), parse_answer_letter("(C) because"), parse_answer_letter("no idea")
        ('B', 'C', None)
        >>> parse_answer_letter("The answer is a bacterial infection. Answer: C")
        'C'
    """
    return parse_letter(text, n_options)


@REWARDS.register("mcq_letter")
def mcq_letter(n_options: int = 26) -> RewardFn:
    """Reward 1.0 when the completion's option letter equals the gold ``answer`` column, else 0.0.

    Example:
        >>> fn = mcq_letter()
        >>> fn(prompts=["q", "q", "q"], completions=["Answer: A", "Answer: B", "?"], answer=["A", "A", "A"])
        [1.0, 0.0, 0.0]
    """
    if not 1 <= n_options <= len(LETTERS):
        raise ConfigError(f"reward mcq_letter: n_options must be 1..{len(LETTERS)}, got {n_options}")

    def mcq_letter_reward(prompts: list, completions: list, answer: list[str] | None = None,
                          choice_letters: list[list[str]] | None = None,
                          log_metric: Callable[[str, float], None] | None = None, **_: Any) -> list[float | None]:
        if answer is None:
            raise ConfigError("reward mcq_letter needs an 'answer' column: give the rl stage MCQ records")
        options = choice_letters or [list(LETTERS[:n_options])] * len(completions)
        letters = [extract_choice(completion_text(c), list(opts)).answer
                   for c, opts in zip(completions, options, strict=True)]
        if log_metric is not None and letters:
            log_metric("mcq_letter/unparsable_frac", sum(x is None for x in letters) / len(letters))
        return [1.0 if letter is not None and letter == gold else 0.0 for letter, gold in zip(letters, answer, strict=True)]

    return mcq_letter_reward


@REWARDS.register("length")
def length(min_words: int = 1, max_words: int = 200, tolerance: int = 50) -> RewardFn:
    """Reward 1.0 for a word count in ``[min_words, max_words]``, decaying linearly to 0.0 over ``tolerance`` words.

    Example:
        >>> length(min_words=2, max_words=3, tolerance=2)(prompts=[""] * 3, completions=["a", "a b", "a b c d e"])
        [0.5, 1.0, 0.0]
    """
    if min_words < 0 or max_words < min_words or tolerance <= 0:
        raise ConfigError("reward length needs 0 <= min_words <= max_words and tolerance > 0")

    def length_reward(prompts: list, completions: list, **_: Any) -> list[float | None]:
        out: list[float | None] = []
        for c in completions:
            n = len(completion_text(c).split())
            gap = (min_words - n) if n < min_words else (n - max_words) if n > max_words else 0
            out.append(max(0.0, 1.0 - gap / tolerance))
        return out

    return length_reward


@REWARDS.register("format")
def format_match(pattern: str) -> RewardFn:
    """Reward 1.0 when ``re.search(pattern, completion)`` matches, else 0.0.

    Example:
        >>> format_match(r"^Answer: [A-D]")(prompts=["", ""], completions=["Answer: C", "C"])
        [1.0, 0.0]
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"reward format: invalid regular expression ({exc})") from exc

    def format_reward(prompts: list, completions: list, **_: Any) -> list[float | None]:
        return [1.0 if regex.search(completion_text(c)) else 0.0 for c in completions]

    return format_reward


def build_reward(spec: dict[str, Any] | str) -> RewardFn:
    """Build a reward callable from ``"name"`` or ``{"name": ..., **options}``; unknown names list the valid ones.

    The callable's ``__name__`` is the registry name, which TRL uses for its ``rewards/<name>`` log keys.

    Example:
        >>> build_reward({"name": "format", "pattern": "^A"}).__name__
        'format'
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    options = dict(spec)
    name = options.pop("name", None)
    if not name:
        raise ConfigError("a reward entry needs a 'name'; valid: " + ", ".join(REWARDS.names()))
    factory = REWARDS.get(name)
    try:
        fn = factory(**options)
    except TypeError as exc:
        raise ConfigError(f"reward {name}: {exc}") from None
    fn.__name__ = name
    return fn


__all__ = ["REWARDS", "build_reward", "parse_answer_letter", "completion_text", "mcq_letter", "length",
           "format_match"]
