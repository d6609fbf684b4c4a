"""What the preference / RL stages (rm, rl, dpo, rlaif) share, on top of ``clinforge.train.stages.Stage``.

The stages are thin layers over TRL's trainers (``RewardTrainer``, ``DPOTrainer``, ``KTOTrainer``, ``RLOOTrainer``,
``GRPOTrainer``): TRL owns the losses and the optimisation; clinforge maps records, recipe options, methods
(full / LoRA / QLoRA / freezing), checkpoints and tracking onto them.

Preference pairs come from ``preference`` records, or are built from MCQ / QA records on the fly with the stage
option ``pairs:`` (the options of the ``make_preference`` transform, see
``clinforge.data.transforms.preference``); the pair-building counts go into the stage's data card.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from clinforge.core.config import StrictModel
from clinforge.core.errors import ConfigError, DataError
from clinforge.data.answer_parsing import LETTERS
from clinforge.data.records import Record
from clinforge.data.transforms.preference import (
    DEFAULT_MCQ_INSTRUCTION,
    MakePreference,
    MakePreferenceOptions,
    format_mcq_prompt,
)
from clinforge.train.stages.base import Stage

PairOptions = MakePreferenceOptions  # the stage option ``pairs:`` takes the transform's options


class PromptOptions(StrictModel):
    """How records become prompts for sampling (rl, rlaif): MCQ prompts list the options and ask for a letter."""

    include_context: bool = False
    system: str | None = None
    instruction: str | None = DEFAULT_MCQ_INSTRUCTION


def conversational_pairs(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's conversational preference rows from clinforge preference examples (``prompt`` turns, two texts).

    Example:
        >>> conversational_pairs([{"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"}])
        [{'prompt': [{'role': 'user', 'content': 'q'}], 'chosen': [{'role': 'assistant', 'content': 'a'}], 'rejected': [{'role': 'assistant', 'content': 'b'}]}]
    """
    return [{"prompt": ex["prompt"], "chosen": [{"role": "assistant", "content": ex["chosen"]}],
             "rejected": [{"role": "assistant", "content": ex["rejected"]}]} for ex in examples]


def record_prompt(record: Record, options: PromptOptions) -> tuple[list[dict[str, str]] | None, str | None]:
    """The chat prompt of a record for sampling and, for MCQ, the gold letter (what ``mcq_letter`` rewards).

    mcq -> lettered question (+ context with ``include_context``); qa -> question; instruction / dialogue -> the
    turns before the last assistant turn; preference -> its prompt. Returns ``(None, None)`` when there is none.

    Example:
        >>> record_prompt(Record(id="1", kind="qa", question="What is asthma?"), PromptOptions())
        ([{'role': 'user', 'content': 'What is asthma?'}], None)
    """
    head = [{"role": "system", "content": options.system}] if options.system else []
    if record.kind == "mcq":
        text = format_mcq_prompt(record, include_context=options.include_context, instruction=options.instruction)
        return head + [{"role": "user", "content": text}], record.answer
    if record.kind == "qa" and record.question:
        text = f"{record.context}\n\n{record.question}" if options.include_context and record.context \
            else record.question
        return head + [{"role": "user", "content": text}], None
    if record.kind in ("instruction", "dialogue") and record.messages:
        turns = [m.model_dump() for m in record.messages]
        while turns and turns[-1]["role"] == "assistant":
            turns.pop()
        if not turns:
            return None, None
        return (turns if turns[0]["role"] == "system" else head + turns), None
    if record.kind == "preference" and record.prompt:
        return [m.model_dump() for m in record.prompt], None
    return None, None


class AlignStage(Stage):
    """Shared body of the alignment stages: pair / prompt data, TRL config kwargs, fitting with resume."""

    @classmethod
    def check_spec(cls, recipe: Any, index: int, options: Any) -> None:
        """Online stages (rl, rlaif: ``default_format`` prompt) have no held-out loss, so eval settings are an error
        rather than silently ignored."""
        super().check_spec(recipe, index, options)
        spec = recipe.stages[index]
        if cls.default_format == "prompt":
            for key, value in (("data.eval_sources", spec.data.eval_sources),
                               ("data.eval_fraction", spec.data.eval_fraction),
                               ("train.eval_every", spec.train.eval_every)):
                if value:
                    raise ConfigError(f"stage type {cls.type} samples online and has no eval loss: remove "
                                      "data.eval_sources, data.eval_fraction and train.eval_every", key=key)

    # ---- data ----------------------------------------------------------------------------------------------
    def _read_records(self, sources: list[Any], role: str = "train"
                      ) -> tuple[list[tuple[Record, dict[str, Any]]], list[dict[str, Any]]]:
        """Every record of ``sources`` with its source's data card (reader counts)."""
        from clinforge.train.data import read_source_records, source_card

        out, cards = [], []
        for src in sources:
            records, rep, reader_name, path = read_source_records(src)
            card = {**source_card(src, records, rep, reader_name, path), "role": role}
            if not records:
                why = "; ".join(f"{n} x {r}" for r, n in rep["skipped"].items()) or "the source yielded no records"
                raise DataError(f"no records from reader {reader_name!r}: {rep['rows']} rows read ({why})",
                                file=str(path))
            out += [(r, card) for r in records]
            cards.append(card)
        return out, cards

    def _pairs_from(self, sources: list[Any], pairs: PairOptions, role: str
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        items, cards = self._read_records(sources, role)
        examples: list[dict[str, Any]] = []
        for card in cards:
            transform = MakePreference(**pairs.model_dump())
            made = list(transform.apply(r for r, c in items if c is card))
            card.update(pairs=transform.report(), format="preference", examples=len(made))
            examples += [{"prompt": [m.model_dump() for m in r.prompt or []], "chosen": r.chosen,
                          "rejected": r.rejected, "id": r.id, "patient_id": r.patient_id} for r in made]
        if not examples:
            per_source = "; ".join(
                f"reader {c['reader']!r} on {c['path']}: {c['records']} records, "
                + (", ".join(f"{n} x {k}" for k, n in c["pairs"]["dropped"].items()) or "none dropped")
                for c in cards)
            raise DataError(f"stage {self.spec.name}: make_preference built no {role} pairs ({per_source})")
        return examples, cards

    def load_pairs(self, pairs: PairOptions | None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Train and eval preference examples ``{prompt, chosen, rejected}`` and the data cards.

        With ``pairs`` set, MCQ / QA records become pairs through ``make_preference`` (its counts land in each
        source's card under ``pairs``); without it the sources must hold ``preference`` records. Eval pairs come
        from ``data.eval_sources`` or, failing those, from ``data.eval_fraction`` of the shuffled train pairs.
        """
        if pairs is None:
            data = self.load_data()
            return data.train, data.eval, data.cards
        spec = self.spec.data
        train, cards = self._pairs_from(spec.sources, pairs, "train")
        evals: list[dict[str, Any]] = []
        if spec.eval_sources:
            evals, eval_cards = self._pairs_from(spec.eval_sources, pairs, "eval")
            cards += eval_cards
        from clinforge.train.data import split_eval

        train, evals = split_eval(train, evals, spec, self.ctx.seed, what="pairs")
        return train, evals, cards

    def load_prompts(self, options: PromptOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Prompt rows ``{prompt, answer?, id}`` for sampling, and data cards (unusable records counted).

        Online stages have no held-out loss to compute, so eval settings are an error rather than ignored.
        """
        spec = self.spec.data
        items, cards = self._read_records(spec.sources)
        rows: list[dict[str, Any]] = []
        for record, card in items:
            prompt, answer = record_prompt(record, options)
            if prompt is None:
                card["unconvertible"][f"{record.kind} record has no prompt"] = \
                    card["unconvertible"].get(f"{record.kind} record has no prompt", 0) + 1
                continue
            row = {"prompt": prompt, "id": record.id}
            if answer is not None:
                row["answer"] = answer
                # the options this record offers, so mcq_letter reads a completion exactly as eval would
                row["choice_letters"] = list(LETTERS[:len(record.choices or [])])
            rows.append(row)
        for card in cards:
            card["format"] = "prompt"
            card["examples"] = card["records"] - sum(card["unconvertible"].values())
        if not rows:
            why = "; ".join(f"{n} x {r}" for c in cards for r, n in c["unconvertible"].items())
            raise DataError(f"stage {self.spec.name}: no usable prompts ({why or 'no records'})")
        if any("answer" in r for r in rows) and not all("answer" in r for r in rows):
            raise DataError(f"stage {self.spec.name}: a mix of MCQ and other prompts; give one kind per stage")
        if self.spec.data.shuffle:
            random.Random(self.ctx.seed).shuffle(rows)
        return rows, cards

    # ---- training ------------------------------------------------------------------------------------------
    def trl_kwargs(self, output_dir: Path | None = None, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for a TRL ``*Config``: the stage's ``train`` section plus TRL-specific settings."""
        import torch

        kw = self.training_kwargs(**extra)
        kw.pop("train_sampling_strategy", None)  # TRL trainers choose their samplers (RLOO/GRPO repeat prompts)
        kw["use_cpu"] = not torch.cuda.is_available()
        # TRL configs default to gradient checkpointing on; clinforge.train.methods applies it (peft-aware) when
        # train.gradient_checkpointing asks for it, so the trainer must not apply it a second time.
        # (TRL's own default sits on the old field name; setting the current one keeps transformers from warning)
        from clinforge.train.hf_trainer import checkpointing_field

        kw[checkpointing_field()] = False
        if output_dir is not None:
            kw["output_dir"] = str(output_dir)
        return kw

    def fit(self, trainer: Any) -> dict[str, Any]:
        """Train with clinforge's progress bar / tracking callbacks, resuming from the newest checkpoint."""
        from transformers.trainer_callback import PrinterCallback
        from transformers.trainer_callback import ProgressCallback as HFProgress

        for cb in self.callbacks():
            trainer.add_callback(cb)
        trainer.remove_callback(HFProgress)
        trainer.remove_callback(PrinterCallback)
        return self.train_with_resume(trainer)

    def previous_stage_model(self, ref: str) -> str:
        """Resolve ``stage:NAME`` to that earlier stage's model folder; other values are paths, returned as is."""
        if not ref.startswith("stage:"):
            return ref
        name = ref.split(":", 1)[1]
        for result in self.ctx.previous:
            if result.name == name:
                return str(result.model_dir)
        done = ", ".join(r.name for r in self.ctx.previous) or "none"
        raise ConfigError(f"{ref}: no earlier stage named {name!r} (earlier stages: {done})",
                          file=self.ctx.recipe_file, key=f"stages.{self.ctx.index}.options")


def final_metrics(log_history: list[dict[str, Any]], keys: tuple[str, ...] | list[str]) -> dict[str, float]:
    """The last logged value of each key that appears in a trainer's log history."""
    out: dict[str, float] = {}
    for row in log_history:
        for key in keys:
            if key in row:
                out[key] = float(row[key])
    return out


class Cards:
    """The ``data`` argument ``Stage.finish`` reads: an object with the stage's data ``cards``."""

    def __init__(self, cards: list[dict[str, Any]]):
        self.cards = cards


class WithPairs(StrictModel):
    """Mixin of stage options: ``pairs`` builds preference pairs from MCQ / QA sources (see PairOptions)."""

    pairs: PairOptions | None = None


__all__ = ["AlignStage", "Cards", "PairOptions", "PromptOptions", "WithPairs", "conversational_pairs", "final_metrics",
           "record_prompt"]
