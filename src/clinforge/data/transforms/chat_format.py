"""``chat_format``: turn records of every kind into chat-formatted training examples.

What each kind becomes (``meta["source_kind"]`` keeps the original kind; id, source, split and patient_id are kept):

=============  ==========================================================================================
kind           result
=============  ==========================================================================================
mcq            ``instruction``: user = [context,] question and lettered options + answer instruction (the
               prompt ``make_preference`` and ``clinforge.train`` give MCQs, so SFT and DPO see one layout);
               assistant = "B. option text" (``mcq_answer: letter | letter_text | letter_text_explanation``)
qa             ``instruction``: user = [context,] question; assistant = answer (records without one dropped)
dialogue       ``instruction``: user = note-writing prompt + the transcript; assistant = ``target`` (the
               note section); dialogues without a target are dropped (``dialogue_mode: conversation`` keeps
               the turns as they are instead)
report         ``instruction``: user = findings + "write the impression"; assistant = ``target``
vqa, caption   ``instruction`` with ``images`` kept: user = question (or a caption request); assistant = answer
instruction    unchanged (a ``system`` prompt is added when set)
preference     unchanged (prompt messages, chosen and rejected assistant texts)
note, document unchanged: plain ``text`` for continued pre-training (``cpt: false`` drops them)
=============  ==========================================================================================

With ``tokenizer: PATH`` the messages are also rendered with that tokenizer's chat template
(``tokenizer.apply_chat_template(messages, tokenize=False)``) into ``text``, the column TRL's SFT trainer reads
with ``dataset_text_field="text"``. Dropped records are counted by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import Field

from clinforge.core.config import StrictModel
from clinforge.core.errors import ConfigError, DataError
from clinforge.data.records import Message, Record
from clinforge.data.transforms.base import TRANSFORMS
from clinforge.data.transforms.options import OptionsTransform
from clinforge.data.transforms.preference import DEFAULT_MCQ_INSTRUCTION, format_mcq_prompt

ROLE_NAMES = {"assistant": "Doctor", "user": "Patient", "system": "System"}


class ChatFormatOptions(StrictModel):
    """Options of ``chat_format``."""

    system: str | None = Field(None, description="system prompt put first in every conversation")
    mcq_answer: Literal["letter", "letter_text", "letter_text_explanation"] = "letter_text"
    mcq_instruction: str = DEFAULT_MCQ_INSTRUCTION
    dialogue_mode: Literal["note", "conversation"] = "note"
    dialogue_prompt: str = "Write the {section} section of the clinical note for this doctor-patient conversation."
    report_prompt: str = "Write the impression of this radiology report."
    caption_prompt: str = "Describe this medical image."
    cpt: bool = Field(True, description="keep note/document records as plain text for continued pre-training")
    tokenizer: str | None = Field(None, description="path of a tokenizer whose chat template renders `text`")


def _transcript(rec: Record) -> str:
    if rec.text:
        return rec.text
    return "\n".join(f"{ROLE_NAMES[m.role]}: {m.content}" for m in rec.messages or [])


@TRANSFORMS.register("chat_format")
class ChatFormat(OptionsTransform):
    """Convert records to chat training examples (see the module docstring for each kind).

    Example:
        >>> cf = ChatFormat()
        >>> r = Record(id="q1", kind="qa", question="What is HbA1c?", answer="Average glucose over ~3 months.")
        >>> out = next(cf.apply([r]))
        >>> out.kind, [m.role for m in out.messages], out.meta["source_kind"]
        ('instruction', ['user', 'assistant'], 'qa')
    """

    deterministic = True  # seeded where it draws (see Transform.deterministic)

    name = "chat_format"
    Options = ChatFormatOptions

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.dropped: Counter = Counter()
        self.converted: Counter = Counter()
        self._tokenizer = None
        if self.opts.tokenizer:
            from transformers import AutoTokenizer

            from clinforge.core.no_egress import refuse_hub_id

            refuse_hub_id(self.opts.tokenizer)  # no-egress mode: a tokenizer that is not local is refused up front
            from clinforge.core.errors import OfflineError
            from clinforge.core.hub_access import hub_or_cached

            try:
                source = hub_or_cached(self.opts.tokenizer)  # offline: the HF cache's copy, or an error at once
            except OfflineError as exc:
                raise ConfigError(f"cannot load a tokenizer: {exc}", key="chat_format.tokenizer") from None
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(source)
            except (OSError, ValueError) as exc:  # not a tokenizer folder, or a hub id while offline
                raise ConfigError(f"cannot load a tokenizer from {self.opts.tokenizer!r} (give a local tokenizer "
                                  f"folder; hub ids need the network): {type(exc).__name__}",
                                  key="chat_format.tokenizer") from None
            if not getattr(self._tokenizer, "chat_template", None):
                raise ConfigError(f"tokenizer at {self.opts.tokenizer} has no chat template", key="chat_format.tokenizer")

    def input_paths(self) -> list[str]:
        """The tokenizer folder, for the run record's input hashes."""
        return [self.opts.tokenizer] if self.opts.tokenizer else []

    def _chat(self, rec: Record, user: str, assistant: str) -> Record:
        msgs = ([Message(role="system", content=self.opts.system)] if self.opts.system else [])
        msgs += [Message(role="user", content=user), Message(role="assistant", content=assistant)]
        return Record(id=rec.id, kind="instruction", source=rec.source, split=rec.split, messages=msgs,
                      images=list(rec.images), patient_id=rec.patient_id, meta={**rec.meta, "source_kind": rec.kind})

    def convert(self, rec: Record) -> Record | str:
        """The converted record, or the reason it is dropped."""
        o = self.opts
        if rec.kind == "mcq":
            idx = rec.answer_index
            assert idx is not None and rec.choices is not None  # guaranteed by Record validation
            answer = rec.answer or ""
            if o.mcq_answer != "letter":
                answer += f". {rec.choices[idx]}"
            if o.mcq_answer == "letter_text_explanation" and rec.target:
                answer += f"\n{rec.target}"
            return self._chat(rec, format_mcq_prompt(rec, include_context=True, instruction=o.mcq_instruction), answer)
        if rec.kind in ("qa", "vqa"):
            if not rec.answer:
                return f"{rec.kind}_without_answer"
            user = f"{rec.context}\n\n{rec.question}" if rec.context else rec.question or ""
            return self._chat(rec, user, rec.answer)
        if rec.kind == "caption":
            return self._chat(rec, o.caption_prompt, rec.text or "")
        if rec.kind == "dialogue":
            if o.dialogue_mode == "conversation":
                return self._with_system(rec.model_copy(update={"kind": "instruction",
                                                                 "meta": {**rec.meta, "source_kind": "dialogue"}}))
            if not rec.target:
                return "dialogue_without_target"
            section = str(rec.meta.get("section_header") or "requested").strip() or "requested"
            user = o.dialogue_prompt.replace("{section}", section) + "\n\n" + _transcript(rec)
            return self._chat(rec, user, rec.target)
        if rec.kind == "report":
            if not rec.target:
                return "report_without_target"
            return self._chat(rec, f"{rec.text}\n\n{o.report_prompt}", rec.target)
        if rec.kind == "instruction":
            return self._with_system(rec)
        if rec.kind in ("note", "document"):
            return rec if o.cpt else f"{rec.kind}_dropped_cpt_off"
        return rec  # preference: prompt / chosen / rejected already

    def _with_system(self, rec: Record) -> Record:
        msgs = list(rec.messages or [])
        if self.opts.system and (not msgs or msgs[0].role != "system"):
            msgs.insert(0, Message(role="system", content=self.opts.system))
        return rec.model_copy(update={"messages": msgs})

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec in records:
            self.n_in += 1
            out = self.convert(rec)
            if isinstance(out, str):
                self.dropped[out] += 1
                continue
            if self._tokenizer is not None and out.messages:
                try:
                    text = self._tokenizer.apply_chat_template([m.model_dump() for m in out.messages],
                                                               tokenize=False)
                except Exception as exc:  # e.g. a template's own "System role not supported"
                    from jinja2 import TemplateError

                    # a template's own error message is safe to show; other errors might quote the conversation
                    why = f"{type(exc).__name__}: {exc}" if isinstance(exc, TemplateError) else type(exc).__name__
                    raise DataError(f"the chat template of {self.opts.tokenizer} cannot render this conversation "
                                    f"({why})", record=rec.id, field="messages") from None
                out = out.model_copy(update={"text": text})
            self.converted[f"{rec.kind}->{out.kind}"] += 1
            self.n_out += 1
            yield out

    def report(self) -> dict[str, Any]:
        """Counts in and out, conversions by kind, and records dropped by reason."""
        return {"in": self.n_in, "out": self.n_out, "converted": dict(self.converted), "dropped": dict(self.dropped),
                "rendered_with_tokenizer": self.opts.tokenizer is not None}
