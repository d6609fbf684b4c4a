"""The language-model head and the cross-entropy computed only where there is a label: an exact saving.

A causal LM's training loss reads the logits of the positions whose next token has a label; with clinforge's
assistant-only loss that is a minority of the positions (about 14% on MTS-Dialog note writing with SmolLM2's
template), yet ``model(..., labels=...)`` projects every position onto the whole vocabulary (for SmolLM2-135M the
head is ~20% of the model's FLOPs, forward and backward) and takes a softmax over each. ``LabeledPositionsTrainer``
gathers the hidden states of the labelled positions before the head (a forward pre-hook on the output
embeddings, so the model's own post-processing such as logit soft-capping still applies) and computes the
cross-entropy on those rows only. The loss, its normalisation (``num_items_in_batch`` or the mean, exactly as
``transformers``' ``ForCausalLMLoss``) and the gradients are those of the plain path to float32 rounding
(``tests/test_train_label_positions.py``).

Evaluation (``model.eval()``), label smoothing, a custom ``compute_loss_func`` and models without output
embeddings take Trainer's plain path.

Example:
    >>> # trainer = LabeledPositionsTrainer(model=model, args=args, train_dataset=ds, data_collator=collator)
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from clinforge.train.data import IGNORE_INDEX


def next_token_mask(labels):
    """Positions whose next token carries a label: ``mask[:, t]`` is true when ``labels[:, t + 1]`` is not -100.

    Example:
        >>> import torch
        >>> next_token_mask(torch.tensor([[-100, 5, -100, 7]])).tolist()
        [[True, False, True, False]]
    """
    import torch

    keep = labels[:, 1:] != IGNORE_INDEX
    return torch.nn.functional.pad(keep, (0, 1), value=False)


def labeled_positions_loss(model, inputs: dict[str, Any], *, num_items_in_batch=None, sum_over_items: bool = True,
                           head=None):
    """``(loss, outputs)`` of a causal LM with its head applied at labelled positions only.

    ``sum_over_items``: divide the summed token losses by ``num_items_in_batch`` when it is given (what
    ``ForCausalLMLoss`` does when Trainer passes it), else take the mean over the batch's labelled tokens.
    ``outputs.logits`` holds one row per labelled position (``(N, vocab)``), in row-major order of the batch.
    ``head``: the output-embedding module (default ``model.get_output_embeddings()``; pass it when ``model`` is
    wrapped, e.g. by DDP).

    Example:
        >>> # loss, out = labeled_positions_loss(model, {"input_ids": ids, "labels": labels})
    """
    import torch

    labels = inputs["labels"]
    keep = next_token_mask(labels)
    head = head if head is not None else model.get_output_embeddings()

    def gather(module, args):
        hidden = args[0]
        if hidden.dim() != 3 or tuple(hidden.shape[:2]) != tuple(keep.shape):
            raise RuntimeError(f"output embeddings got hidden states of shape {tuple(hidden.shape)}; expected "
                               f"(batch, length, hidden) = {tuple(keep.shape)} + (hidden,)")
        return (hidden[keep], *args[1:])

    handle = head.register_forward_pre_hook(gather)
    try:
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
    finally:
        handle.remove()
    targets = labels[:, 1:][keep[:, :-1]]
    logits = outputs.logits.float()  # as ForCausalLMLoss: the softmax in float32 whatever the model's dtype
    if sum_over_items and num_items_in_batch is not None:
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    else:
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="mean")
    return loss, outputs


class LabeledPositionsTrainer(Trainer):
    """``transformers.Trainer`` whose training loss projects only labelled positions onto the vocabulary.

    Same loss and gradients as ``Trainer`` (see the module docstring); evaluation is unchanged.

    Example:
        >>> # LabeledPositionsTrainer(model=model, args=TrainingArguments(...), train_dataset=ds)
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        unwrapped = self.accelerator.unwrap_model(model)
        get_head = getattr(unwrapped, "get_output_embeddings", None)
        plain = (not model.training or "labels" not in inputs or self.label_smoother is not None
                 or self.compute_loss_func is not None or get_head is None or get_head() is None
                 or inputs["labels"].dim() != 2)
        if plain:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        # Trainer divides by the accumulation steps itself unless the model took num_items_in_batch: keep the
        # same contract as the plain path (training_step reads model_accepts_loss_kwargs the same way)
        loss, outputs = labeled_positions_loss(model, inputs, num_items_in_batch=num_items_in_batch,
                                               sum_over_items=bool(self.model_accepts_loss_kwargs), head=get_head())
        if (self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs
                and num_items_in_batch is not None):
            tp = self.get_tp_size() if hasattr(self, "get_tp_size") else 1
            scale = self.accelerator.num_processes // tp
            loss = loss * (scale if self.args.n_gpu <= 1 else self.args.n_gpu)
        return (loss, outputs) if return_outputs else loss


__all__ = ["LabeledPositionsTrainer", "labeled_positions_loss", "next_token_mask"]
