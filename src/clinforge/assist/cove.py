"""Chain-of-Verification (CoVe, Dhuliawala et al. 2023, "Chain-of-Verification Reduces Hallucination in Large
Language Models"): draft an answer, plan verification questions, answer them, and write a verified answer.

The four steps of the paper and its four execution variants:

1. **draft** (baseline response) to the user's messages;
2. **plan**: open verification questions about the facts in the draft (the paper found open questions better than
   yes/no ones; the prompt asks for open questions, one per line), at most ``max_questions`` kept;
3. **execute**, by variant:

   * ``joint``: planning and answering in ONE prompt that contains the draft (answers can copy the draft's errors:
     the paper's weakest variant);
   * ``two_step``: the questions are planned with the draft, then ALL are answered in one prompt that holds the
     questions only, never the draft;
   * ``factored``: each question is answered in its own prompt holding that question only (no draft, no other
     question);
   * ``factor_revise``: factored answering, then for each question a cross-check prompt comparing the draft with
     the question and its answer (consistent / inconsistent / partially consistent), as in the paper;

4. **final**: the verified answer, written from the question, the draft and the question/answer pairs (and the
   cross-check verdicts).

With a ``retriever`` (any object with ``search(query, k)``, e.g. a knowledge base), each verification question is
answered with retrieved passages put into the prompt through :func:`clinforge.assist.grounding.ground_messages`.

Nothing is defaulted silently: when the plan yields no question (the model did not follow the format), the result
says so (``plan_failed=True``, ``parse_failures`` counts it), no verification is run and ``final`` is the draft. The
``trace`` keeps every prompt and output; ``calls`` counts model calls and ``tokens`` prompt + output tokens (counted
by the backend's ``count_tokens`` or tokenizer when it has one, else estimated as characters / 4, see
``tokens_exact``).

Example (``backend`` is any clinforge backend, e.g. ``load_backend("hf:smollm2-135m-instruct")``)::

    result = ChainOfVerification(backend, variant="factored").run([{"role": "user", "content": "Name three ..."}])
    result.final, result.questions, result.calls
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.models.backends.base import GenerationRequest

VARIANTS: tuple[str, ...] = ("joint", "two_step", "factored", "factor_revise")

PLAN_PROMPT = ("Below are a question and a draft answer. Write open verification questions (not yes/no questions) "
               "that check each fact the draft states, so that answering them independently would reveal any "
               "mistake. Write one question per line, numbered 1., 2., ... and nothing else.\n\n"
               "Question: {question}\n\nDraft answer: {draft}\n\nVerification questions:")
JOINT_PROMPT = ("Below are a question and a draft answer. Write open verification questions (not yes/no questions) "
                "that check each fact the draft states, and answer each one. Use exactly this format, one pair per "
                "fact:\nQ1: <question>\nA1: <answer>\nQ2: <question>\nA2: <answer>\n\n"
                "Question: {question}\n\nDraft answer: {draft}\n")
TWO_STEP_PROMPT = ("Answer each of the following questions briefly and factually. Use exactly this format:\n"
                   "A1: <answer to question 1>\nA2: <answer to question 2>\n\n{questions}")
FACTORED_PROMPT = "Answer this question briefly and factually.\n\n{question}"
REVISE_PROMPT = ("Original text: {draft}\n\nA verification question and its independently found answer:\n"
                 "Q: {question}\nA: {answer}\n\nIs the original text consistent with this answer? Reply with one "
                 "word, CONSISTENT, INCONSISTENT or PARTIAL, then one sentence saying why.")
FINAL_PROMPT = ("Question: {question}\n\nDraft answer: {draft}\n\nVerification questions and answers found "
                "independently of the draft:\n{evidence}\n\nWrite the final answer to the question. Keep the facts "
                "the verification confirms, correct or drop the facts it contradicts, and do not add unverified "
                "facts.")


@dataclass
class CoveResult:
    """What one Chain-of-Verification run produced (see the module doc)."""

    final: str
    draft: str
    questions: list[str]
    answers: list[str]
    trace: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    tokens: int = 0
    variant: str = "factored"
    plan_failed: bool = False
    parse_failures: int = 0
    verdicts: list[str] = field(default_factory=list)
    tokens_exact: bool = False


_NUMBERED = re.compile(r"^\s*(?:q(?:uestion)?\s*)?\d{1,2}\s*[.):\-]\s*(.+?)\s*$", re.IGNORECASE)
_BULLET = re.compile(r"^\s*[-*\u2022]\s+(.+?)\s*$")


def parse_questions(text: str, max_questions: int) -> list[str]:
    """Verification questions from a plan: numbered or bulleted lines, or any line ending with ``?``; duplicates
    dropped, at most ``max_questions``. An empty list means the plan could not be parsed.

    Example:
        >>> parse_questions("1. Where was X born?\\n2) When did X die?\\nNotes: none\\n- What did X write?", 5)
        ['Where was X born?', 'When did X die?', 'What did X write?']
        >>> parse_questions("I cannot help with that.", 5)
        []
    """
    out: list[str] = []
    for line in text.splitlines():
        m = _NUMBERED.match(line) or _BULLET.match(line)
        q = m.group(1) if m else (line.strip() if line.strip().endswith("?") else "")
        q = _strip_label(q.strip().strip('"'))
        if q.lower().startswith("draft answer") or len(q) < 8 or (m is None and not q.endswith("?")):
            continue
        if q.lower() not in {x.lower() for x in out}:
            out.append(q)
        if len(out) >= max_questions:
            break
    return out


def parse_pairs(text: str, max_questions: int) -> list[tuple[str, str]]:
    """``Q1: ... / A1: ...`` (or unnumbered ``Q: / A:``) pairs of a joint plan-and-answer output, in order; a
    question without an answer line gets ``""``; repeated questions are dropped.

    Example:
        >>> parse_pairs("Q1: Who wrote it?\\nA1: Ann.\\nQ: When?\\nA: 1990.\\nQ: Who wrote it?\\nA: Bo.", 5)
        [('Who wrote it?', 'Ann.'), ('When?', '1990.')]
    """
    pairs: list[list[str]] = []
    seen: set[str] = set()
    current: list[str] | None = None
    for line in text.splitlines():
        q = re.match(r"^\s*Q\d{0,2}\s*[:.)]\s*(.+?)\s*$", line)
        if q:
            current = None
            question = _strip_label(q.group(1))
            if question.lower() in seen or len(pairs) >= max_questions:
                continue
            seen.add(question.lower())
            current = [question, ""]
            pairs.append(current)
            continue
        a = re.match(r"^\s*A\d{0,2}\s*[:.)]\s*(.+?)\s*$", line)
        if a and current is not None and not current[1]:
            current[1] = _strip_label(a.group(1))
    return [(q, a) for q, a in pairs]


_LABEL = re.compile(r"^(?:(?:question|answer|verification question|q|a)\s*\d{0,2}\s*:\s*)+", re.IGNORECASE)


def _strip_label(text: str) -> str:
    """``"Question: X"`` / ``"A1: X"`` -> ``"X"`` (small models repeat the labels)."""
    return _LABEL.sub("", text.strip()).strip()


def parse_answers(text: str, n: int) -> list[str]:
    """``A1: ...`` lines of a two-step answer block, in order; a missing answer is ``""`` (counted by the caller).

    Example:
        >>> parse_answers("A1: Paris\\nA2: 1889", 3)
        ['Paris', '1889', '']
    """
    found = {int(m.group(1)): _strip_label(m.group(2)) for m in re.finditer(r"(?im)^\s*A(\d{1,2})\s*[:.)]\s*(.+?)\s*$", text)}
    return [found.get(i + 1, "") for i in range(n)]


def _messages_text(messages: Sequence[dict[str, Any]]) -> str:
    parts = []
    for m in messages:
        c = m.get("content")
        parts.append(c if isinstance(c, str) else " ".join(p.get("text", "") for p in c or [] if isinstance(p, dict)))
    return "\n".join(parts)


class ChainOfVerification:
    """Runs CoVe with ``backend`` (greedy decoding, so a run is reproducible).

    Args:
        backend: a clinforge Backend (``generate`` with chat messages).
        variant: ``joint``, ``two_step``, ``factored`` or ``factor_revise``.
        max_questions: cap on verification questions (extra ones are not asked).
        retriever: optional; verification questions are answered with its passages in the prompt.
        max_new_tokens: per model call.
        k: passages per verification question; token_budget: their token budget.

    Example:
        >>> ChainOfVerification(None, variant="two_step").variant
        'two_step'
    """

    def __init__(self, backend: Any, *, variant: str = "factored", max_questions: int = 5, retriever: Any = None,
                 max_new_tokens: int = 256, k: int = 3, token_budget: int = 800):
        if variant not in VARIANTS:
            raise ConfigError(f"unknown CoVe variant {variant!r}; valid: {', '.join(VARIANTS)}", key="cove.variant")
        if max_questions < 1:
            raise ConfigError("max_questions must be >= 1", key="cove.max_questions")
        self.backend, self.variant, self.max_questions = backend, variant, max_questions
        self.retriever, self.max_new_tokens, self.k, self.token_budget = retriever, max_new_tokens, k, token_budget

    # ------------------------------------------------------------------ model calls, counted and traced
    def _counter(self) -> tuple[Callable[[str], int], bool]:
        from clinforge.models.backends.base import Backend

        impl = getattr(type(self.backend), "count_tokens", None)
        if impl is not None and impl is not getattr(Backend, "count_tokens", None):  # the base one only estimates
            return self.backend.count_tokens, True
        tok = getattr(self.backend, "tokenizer", None)
        if tok is not None:
            return (lambda t: len(tok(t, add_special_tokens=False).input_ids)), True
        return (lambda t: (len(t) + 3) // 4), False

    def _generate(self, result: CoveResult, step: str, prompts: list[list[dict[str, Any]]],
                  extra: list[dict[str, Any]] | None = None) -> list[str]:
        requests = [GenerationRequest(messages=p, max_new_tokens=self.max_new_tokens, temperature=0.0)
                    for p in prompts]
        outputs = self.backend.generate(requests)
        count, result.tokens_exact = self._counter()
        for i, (prompt, output) in enumerate(zip(prompts, outputs, strict=True)):
            used = count(_messages_text(prompt)) + count(output)
            result.calls += 1
            result.tokens += used
            entry = {"step": step, "messages": prompt, "output": output, "tokens": used}
            if extra:
                entry.update(extra[i])
            result.trace.append(entry)
        return [o.strip() for o in outputs]

    def _question_prompt(self, question_text: str, query: str) -> list[dict[str, Any]]:
        messages = [{"role": "user", "content": question_text}]
        if self.retriever is None:
            return messages
        from clinforge.assist.grounding import ground_messages

        count, _ = self._counter()
        return ground_messages(messages, self.retriever, k=self.k, token_budget=self.token_budget,
                               count_tokens=count, query=query).messages

    # ------------------------------------------------------------------ the run
    def run(self, messages: Sequence[dict[str, Any]]) -> CoveResult:
        """Draft, plan, verify and revise for the conversation ``messages`` (its last user message is the
        question).

        Example: see the module doc (needs a model).
        """
        from clinforge.assist.grounding import last_user_text

        question = last_user_text(messages)
        result = CoveResult(final="", draft="", questions=[], answers=[], variant=self.variant)
        draft = self._generate(result, "draft", [list(messages)])[0]
        result.draft = draft
        if self.variant == "joint":
            out = self._generate(result, "plan_and_verify", [[{"role": "user", "content": JOINT_PROMPT.format(
                question=question, draft=draft)}]])[0]
            pairs = parse_pairs(out, self.max_questions)
            result.questions = [q for q, _ in pairs]
            result.answers = [a for _, a in pairs]
            result.parse_failures += sum(1 for _, a in pairs if not a)
        else:
            plan = self._generate(result, "plan", [[{"role": "user", "content": PLAN_PROMPT.format(
                question=question, draft=draft)}]])[0]
            result.questions = parse_questions(plan, self.max_questions)
            if result.questions:
                result.answers = self._answer(result, question)
        if not result.questions:
            result.plan_failed = True
            result.parse_failures += 1
            result.final = draft  # stated in the result (plan_failed), not hidden: nothing could be verified
            return result
        if self.variant == "factor_revise":
            prompts = [[{"role": "user", "content": REVISE_PROMPT.format(draft=draft, question=q, answer=a)}]
                       for q, a in zip(result.questions, result.answers, strict=True)]
            outs = self._generate(result, "cross_check", prompts, [{"question_index": i} for i in range(len(prompts))])
            for out in outs:
                m = re.search(r"\b(INCONSISTENT|CONSISTENT|PARTIAL)\b", out.upper())
                result.verdicts.append(m.group(1).lower() if m else "unparsed")
                result.parse_failures += m is None
        lines = []
        for i, (q, a) in enumerate(zip(result.questions, result.answers, strict=True)):
            line = f"Q{i + 1}: {q}\nA{i + 1}: {a or '(no answer)'}"
            if result.verdicts:
                line += f"\nCheck against the draft: {result.verdicts[i]}"
            lines.append(line)
        final_prompt = FINAL_PROMPT.format(question=question, draft=draft, evidence="\n".join(lines))
        result.final = self._generate(result, "final", [[{"role": "user", "content": final_prompt}]])[0]
        return result

    def _answer(self, result: CoveResult, question: str) -> list[str]:
        qs = result.questions
        if self.variant == "two_step":
            listing = "\n".join(f"Q{i + 1}: {q}" for i, q in enumerate(qs))
            prompt = self._question_prompt(TWO_STEP_PROMPT.format(questions=listing), " ".join(qs))
            out = self._generate(result, "verify", [prompt])[0]
            answers = parse_answers(out, len(qs))
            if len(qs) == 1 and not answers[0] and out:
                answers = [out]  # one question: the whole output is its answer
            result.parse_failures += sum(1 for a in answers if not a)
            return answers
        prompts = [self._question_prompt(FACTORED_PROMPT.format(question=q), q) for q in qs]
        return self._generate(result, "verify", prompts, [{"question_index": i} for i in range(len(qs))])
