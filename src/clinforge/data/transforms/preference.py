"""``make_preference``: turn real MCQ / QA records into preference pairs (prompt, chosen, rejected) for RM and DPO.

Public medical datasets rarely ship human preference pairs, but they ship gold answers, and a gold answer is
preferred to a wrong one. Two strategies build pairs from that, deterministically from ``seed``:

``wrong_option`` (MCQ records: MedQA, MedMCQA, MMLU, PubMedQA)
    prompt = the question with its lettered options (and the context with ``include_context``);
    chosen = ``"B. <gold option text>"``, rejected = the same line for one wrong option drawn at random.
    Both responses have the same shape, so a model cannot prefer the chosen one by its length or format.

``mismatched_answer`` (QA records such as MedQuAD; MCQ records that carry a free-text ``target`` such as PubMedQA's
long answer)
    prompt = the question; chosen = the record's own answer (``answer`` for QA, ``target`` for MCQ);
    rejected = the answer of another record of the same input and the same ``split``, picked by a seeded
    derangement (a shuffled cycle, so no record is paired with itself; never across splits, so no evaluation
    answer leaks into training). A rejected text identical to the chosen one (duplicated answers in MedQuAD)
    is not a preference, so the pair is dropped and counted.

``preference`` records pass through unchanged. Records a strategy cannot use are dropped and counted by reason in
``report()`` (never silently): e.g. a QA record without an answer, or a kind the strategy does not know.

No library builds pairs from these dataset layouts, hence this small transform.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from clinforge.core.config import StrictModel
from clinforge.data.records import LETTERS, Message, Record
from clinforge.data.transforms.base import TRANSFORMS
from clinforge.data.transforms.options import OptionsTransform

STRATEGIES = ("wrong_option", "mismatched_answer")
DEFAULT_MCQ_INSTRUCTION = "Answer with the letter of the best option."


def format_mcq_prompt(record: Record, *, include_context: bool = False,
                      instruction: str | None = DEFAULT_MCQ_INSTRUCTION) -> str:
    """The user turn for an MCQ record: optional context, the question, lettered options, the instruction.

    The layout (and ``format_mcq_answer``'s "B. text") matches the chat form ``clinforge.train`` gives MCQ records
    in ift/sft stages, so a policy fine-tuned on MCQ sees the same prompts in its dpo / rm / rl stages.

    Example:
        >>> r = Record(id="1", kind="mcq", question="Which?", choices=["x", "y"], answer="B")
        >>> print(format_mcq_prompt(r))
        Which?
        A. x
        B. y
        Answer with the letter of the best option.
    """
    parts = []
    if include_context and record.context:
        parts.append(f"{record.context}\n")
    parts.append(record.question or "")
    parts += [f"{LETTERS[i]}. {choice}" for i, choice in enumerate(record.choices or [])]
    if instruction:
        parts.append(instruction)
    return "\n".join(parts)


def format_mcq_answer(letter: str, choice: str) -> str:
    """The response text for an MCQ option, the same shape for gold and wrong options.

    Example:
        >>> format_mcq_answer("B", "Metformin")
        'B. Metformin'
    """
    return f"{letter}. {choice}"


class MakePreferenceOptions(StrictModel):
    """Options of ``make_preference``."""

    strategy: Literal["wrong_option", "mismatched_answer"] = "wrong_option"
    seed: int = 0
    include_context: bool = False  # PubMedQA abstracts are long: off by default
    system: str | None = None  # an optional system turn before the user turn
    instruction: str | None = DEFAULT_MCQ_INSTRUCTION  # last line of a wrong_option MCQ prompt


class MakePreference(OptionsTransform):
    """Build ``preference`` records from ``mcq`` / ``qa`` records (see the module docstring for the strategies).

    Options: ``strategy`` (``wrong_option`` | ``mismatched_answer``), ``seed`` (int, default 0),
    ``include_context`` (bool, default False: PubMedQA abstracts are long), ``system`` (optional system turn),
    ``instruction`` (the last line of an MCQ prompt for ``wrong_option``).

    Example:
        >>> recs = [Record(id=str(i), kind="qa", question=f"q{i}", answer=f"a{i}") for i in range(3)]
        >>> t = MakePreference(strategy="mismatched_answer", seed=0)
        >>> pairs = list(t.apply(recs))
        >>> [(p.chosen, p.rejected != p.chosen) for p in pairs]
        [('a0', True), ('a1', True), ('a2', True)]
        >>> t.report()["out"]
        3
    """

    deterministic = True  # seeded where it draws (see Transform.deterministic)

    name = "make_preference"

    Options = MakePreferenceOptions

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.strategy, self.seed = self.opts.strategy, self.opts.seed
        self.include_context, self.system, self.instruction = (self.opts.include_context, self.opts.system,
                                                               self.opts.instruction)
        self.dropped: Counter = Counter()
        self.passed_through = 0

    def report(self) -> dict[str, Any]:
        """Counts for the data card: in, out, pairs built, preference records passed through, drops by reason."""
        return {"in": self.n_in, "out": self.n_out, "strategy": self.strategy, "seed": self.seed,
                "passed_through": self.passed_through, "dropped": dict(self.dropped),
                "dropped_total": sum(self.dropped.values())}

    # -- helpers -------------------------------------------------------------------------------------------------
    def _prompt(self, user_text: str) -> list[Message]:
        turns = [Message(role="system", content=self.system)] if self.system else []
        return turns + [Message(role="user", content=user_text)]

    def _pair(self, record: Record, prompt_text: str, chosen: str, rejected: str, **meta: Any) -> Record:
        return Record(id=f"{record.id}", kind="preference", source=record.source, split=record.split,
                      prompt=self._prompt(prompt_text), chosen=chosen, rejected=rejected,
                      patient_id=record.patient_id,
                      meta={"pair_strategy": self.strategy, "source_kind": record.kind, **meta})

    def _response(self, record: Record) -> str | None:
        """The free-text answer ``mismatched_answer`` uses: ``answer`` of a QA record, ``target`` of an MCQ."""
        if record.kind == "qa":
            return record.answer or None
        if record.kind == "mcq":
            return record.target or None
        return None

    def _question(self, record: Record) -> str:
        if self.include_context and record.context:
            return f"{record.context}\n\n{record.question}"
        return record.question or ""

    # -- strategies ----------------------------------------------------------------------------------------------
    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        """Yield preference records; ``wrong_option`` streams, ``mismatched_answer`` buffers its input."""
        if self.strategy == "wrong_option":
            yield from self._wrong_option(records)
        else:
            yield from self._mismatched(records)

    def _passthrough(self, record: Record) -> bool:
        if record.kind == "preference":
            self.passed_through += 1
            self.n_out += 1
            return True
        return False

    def _wrong_option(self, records: Iterable[Record]) -> Iterator[Record]:
        rng = random.Random(self.seed)
        for record in records:
            self.n_in += 1
            if self._passthrough(record):
                yield record
                continue
            if record.kind != "mcq":
                self.dropped[f"kind {record.kind} is not mcq"] += 1
                continue
            choices = record.choices or []
            gold = record.answer_index
            wrong = [i for i, text in enumerate(choices) if i != gold and text.strip() != choices[gold].strip()]
            if not wrong:
                self.dropped["no wrong option distinct from the gold one"] += 1
                continue
            bad = rng.choice(wrong)
            prompt = format_mcq_prompt(record, include_context=self.include_context, instruction=self.instruction)
            self.n_out += 1
            yield self._pair(record, prompt, format_mcq_answer(LETTERS[gold], choices[gold]),
                             format_mcq_answer(LETTERS[bad], choices[bad]), rejected_option=LETTERS[bad])

    def _mismatched(self, records: Iterable[Record]) -> Iterator[Record]:
        usable: list[tuple[Record, str]] = []
        passthrough: list[Record] = []
        for record in records:
            self.n_in += 1
            if record.kind == "preference":
                passthrough.append(record)
                continue
            if record.kind not in ("qa", "mcq"):
                self.dropped[f"kind {record.kind} has no free-text answer"] += 1
                continue
            response = self._response(record)
            if response is None:
                self.dropped[f"{record.kind} record without {'answer' if record.kind == 'qa' else 'target'}"] += 1
                continue
            usable.append((record, response))
        for record in passthrough:
            self._passthrough(record)
            yield record
        # Donors come from the record's own split only: a test answer used as a rejected response in train would
        # leak evaluation text (and another split's patient) into training.
        by_split: dict[str | None, list[int]] = {}
        for i, (record, _) in enumerate(usable):
            by_split.setdefault(record.split, []).append(i)
        donor: dict[int, int] = {}
        rng = random.Random(self.seed)
        for members in by_split.values():
            if len(members) < 2:
                self.dropped["fewer than two answers to mismatch within the split"] += len(members)
                continue
            order = list(members)
            rng.shuffle(order)
            # A shuffled cycle: each record takes the answer of the next one in the shuffled order (never its own).
            donor.update({order[k]: order[(k + 1) % len(order)] for k in range(len(order))})
        for i, (record, chosen) in enumerate(usable):
            if i not in donor:
                continue
            other, rejected = usable[donor[i]]
            if rejected.strip() == chosen.strip():
                self.dropped["rejected answer identical to the chosen one"] += 1
                continue
            self.n_out += 1
            yield self._pair(record, self._question(record), chosen, rejected, rejected_from=other.id)


TRANSFORMS.register("make_preference", MakePreference)

__all__ = ["MakePreference", "MakePreferenceOptions", "format_mcq_prompt", "format_mcq_answer", "STRATEGIES"]
