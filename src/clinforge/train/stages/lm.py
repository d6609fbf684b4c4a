"""Language-modelling stages: ``cpt`` (continual pre-training on raw text) and ``ift`` / ``sft`` (chat examples,
loss on assistant tokens only), trained with ``transformers.Trainer``.

Why Trainer and not TRL's ``SFTTrainer``: TRL's ``assistant_only_loss`` needs chat templates with
``{% generation %}`` markers, which most released templates lack; we locate assistant tokens from the template's
own prefix renderings (``clinforge.train.data.assistant_char_spans``) so any template works, and feed Trainer
padding-free batches (position_ids restart per example, so attention does not cross examples; recurrent models
such as Mamba/RWKV are padded instead because their state would cross). With ``dp:`` the stage trains with
DP-SGD through Opacus (``clinforge.train.privacy``), which needs its own loop (Poisson sampling, per-sample
clipping) that Trainer cannot host.
"""

from __future__ import annotations

from typing import Any

from clinforge.core.errors import DataError
from clinforge.train.stages import STAGES
from clinforge.train.stages.base import Stage, StageResult


def tok_pad(tokenizer) -> int:
    """The pad id of a tokenizer (its EOS when it has no pad token)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)


class ListDataset:
    """A list of tokenised examples as a map-style dataset (Trainer needs ``__len__``/``__getitem__``)."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.rows[i]
        return {"input_ids": r["input_ids"], "labels": r["labels"]}


class LMStage(Stage):
    """Shared body of cpt / ift / sft: tokenise, pick the collator, train with Trainer (or DP-SGD), save."""

    supports_dp = True

    def tokenize(self, examples: list[dict[str, Any]], tokenizer,
                 dropped_examples: list[tuple[dict[str, Any], str]] | None = None
                 ) -> tuple[list[dict[str, Any]], int]:
        """Tokenise examples for this stage's format; returns rows and the number dropped (no target left).

        ``dropped_examples`` receives each dropped example with its reason (text examples are never dropped).
        """
        from clinforge.train.data import tokenize_chat, tokenize_text

        if self.data_format == "text":
            return tokenize_text(examples, tokenizer, self.spec.train.max_length), 0
        if self.data_format == "chat":
            return tokenize_chat(examples, tokenizer, self.spec.train.max_length, dropped_examples)
        raise DataError(f"stage type {self.type} trains on text or chat examples, not {self.data_format}")

    def collator(self, model, tokenizer):
        """Padding-free packing collator when ``packing`` and the model allows it, else a padding collator."""
        from clinforge.train.data import PackingCollator, PaddingCollator, supports_packed_positions

        if self.spec.train.packing and supports_packed_positions(model.config):
            return PackingCollator(max_row_tokens=self.spec.train.max_length, pad_token_id=tok_pad(tokenizer))
        return PaddingCollator(tok_pad(tokenizer))

    def run(self) -> StageResult:
        from transformers import TrainingArguments

        from clinforge.train.data import check_eval_kept
        from clinforge.train.label_positions import LabeledPositionsTrainer

        # the steps of docs/train.md "Reading one SFT run": 4a data, 4b model, 4c tokens, 4d collator, 4e train, 5 save
        data = self.load_data()
        model, tok = self.load_model()
        dropped_examples: list[tuple[dict[str, Any], str]] = []
        train_rows, dropped = self.tokenize(data.train, tok, dropped_examples)
        eval_rows, eval_dropped = self.tokenize(data.eval, tok, dropped_examples) if data.eval else ([], 0)
        if not train_rows:
            raise DataError(f"stage {self.spec.name}: no example has a target within max_length "
                            f"{self.spec.train.max_length} ({dropped} dropped)")
        check_eval_kept(self.spec.name, len(data.eval), len(eval_rows), self.spec.train.max_length,
                        origin=data.eval_origin())
        # each card counts its own source's examples (with eval_fraction, a train card's count includes those of
        # its examples that went to the eval set: the card's `examples` counts them too)
        for card, counts in zip(data.cards, data.count_dropped_per_card(dropped_examples), strict=True):
            card["dropped_no_target_after_truncation"] = sum(counts.values())
        collator = self.collator(model, tok)
        if self.spec.dp is not None and self.spec.dp.enabled:
            from clinforge.train.privacy import train_dp

            metrics, privacy = train_dp(self, model, tok, train_rows, eval_rows, collator)
            metrics["eval_dropped_no_target_after_truncation"] = eval_dropped
            return self.finish(model, tok, metrics=metrics, data=data, privacy=privacy,
                               hyperparameters={"collator": type(collator).__name__})
        args = TrainingArguments(**self.training_kwargs())
        # the head and the loss at labelled positions only: the same loss and gradients, less work
        trainer = LabeledPositionsTrainer(model=model, args=args, train_dataset=ListDataset(train_rows),
                                          eval_dataset=ListDataset(eval_rows) if eval_rows else None,
                                          data_collator=collator, processing_class=tok, callbacks=self.callbacks())
        from transformers.trainer_callback import PrinterCallback
        from transformers.trainer_callback import ProgressCallback as HFProgress

        trainer.remove_callback(HFProgress)
        trainer.remove_callback(PrinterCallback)
        metrics = self.train_with_resume(trainer)
        metrics["train_examples"] = len(train_rows)
        metrics["eval_examples"] = len(eval_rows)
        metrics["eval_dropped_no_target_after_truncation"] = eval_dropped  # also when eval_fraction made the set
        metrics["padding_tokens"] = collator.padding
        metrics["real_tokens"] = collator.tokens
        if eval_rows:
            metrics["final_eval_loss"] = trainer.evaluate()["eval_loss"]
        return self.finish(model, tok, metrics=metrics, data=data,
                           hyperparameters={"collator": type(collator).__name__})


class CPTStage(LMStage):
    """Continual pre-training: causal LM on raw text (records -> text), packed padding-free."""

    type = "cpt"
    default_format = "text"


class IFTStage(LMStage):
    """Instruction fine-tuning: chat examples, loss on assistant tokens only."""

    type = "ift"
    default_format = "chat"


class SFTStage(LMStage):
    """Supervised fine-tuning on a target task: chat examples, loss on assistant tokens only."""

    type = "sft"
    default_format = "chat"


STAGES.register("cpt", CPTStage)
STAGES.register("ift", IFTStage)
STAGES.register("sft", SFTStage)
