"""Held-out loss of a chat model on the task it was tuned for, and the paired comparison of two models on it.

Definition: for each held-out conversation, the loss is the mean cross-entropy (natural log) of the **assistant
tokens** given everything before them, the same tokens the SFT stage trains on (``train.data.tokenize_chat``:
the model's own chat template, assistant-only labels, truncated at ``max_length``). The reported figure is the
mean of the per-example losses (every example counts once, whatever its length), with a seeded percentile
bootstrap interval over examples; two models are compared on the same examples with a paired bootstrap of the
difference (``eval.metrics.significance.paired_bootstrap``: tuned - base, so a negative delta is a fall).
The token-weighted mean (total loss / total tokens, what a trainer's ``eval_loss`` approximates) is reported too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clinforge.core.errors import DataError
from clinforge.eval.metrics._common import DEFAULT_ALPHA, DEFAULT_N_RESAMPLES, DEFAULT_SEED


def example_losses(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], *, max_length: int = 512,
                   batch_size: int = 4, progress: bool = True, desc: str = "held-out loss") -> list[dict[str, float]]:
    """Per conversation: ``{"loss": mean NLL of its assistant tokens, "tokens": their count}``.

    A conversation whose assistant tokens all fall beyond ``max_length`` has no loss and is an error (it would
    silently shrink the held-out set).

    Example:
        >>> # example_losses(model, tok, [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]])
        >>> # -> [{'loss': 2.31, 'tokens': 3}]
    """
    import torch
    from tqdm.auto import tqdm

    from clinforge.train.data import IGNORE_INDEX, tokenize_chat

    rows, dropped = tokenize_chat([{"messages": m} for m in conversations], tokenizer, max_length)
    if dropped:
        raise DataError(f"{dropped} held-out conversation(s) have no assistant token within max_length={max_length}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    model.eval()
    out: list[dict[str, float]] = []
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))  # similar lengths share a batch
    results: dict[int, dict[str, float]] = {}
    with torch.inference_mode(), tqdm(total=len(rows), desc=desc, unit="example", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(rows[i]["input_ids"]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            labels = torch.full((len(idx), width), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for j, i in enumerate(idx):
                n = len(rows[i]["input_ids"])
                ids[j, :n] = torch.tensor(rows[i]["input_ids"])
                labels[j, :n] = torch.tensor(rows[i]["labels"])
                mask[j, :n] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
            nll = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels,
                                                    ignore_index=IGNORE_INDEX, reduction="none")
            keep = shift_labels != IGNORE_INDEX
            for j, i in enumerate(idx):
                n_tok = int(keep[j].sum())
                results[i] = {"loss": float(nll[j][keep[j]].sum()) / n_tok, "tokens": n_tok}
            bar.update(len(idx))
    out = [results[i] for i in range(len(rows))]
    return out


def scorable(tokenizer: Any, conversations: list[list[dict[str, str]]], max_length: int) -> list[bool]:
    """Per conversation: whether any assistant token falls within ``max_length`` (the SFT stage's own rule: it drops
    the others from training too, so they cannot measure the tuning task either).

    Example:
        >>> # scorable(tok, [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]], 512)
        >>> # -> [True]
    """
    from clinforge.train.data import tokenize_chat

    return [not tokenize_chat([{"messages": m}], tokenizer, max_length)[1] for m in conversations]


def mean_with_ci(values: list[float], *, n_resamples: int = DEFAULT_N_RESAMPLES, seed: int = DEFAULT_SEED,
                 alpha: float = DEFAULT_ALPHA) -> tuple[float, list[float]]:
    """Mean and percentile bootstrap interval (resampling the values with ``default_rng(seed)``).

    Example:
        >>> m, (lo, hi) = mean_with_ci([1.0, 2.0, 3.0, 4.0])
        >>> m, lo <= m <= hi
        (2.5, True)
    """
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        raise DataError("a mean with a confidence interval needs at least one value")
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, a.size, size=(n_resamples, a.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(a.mean()), [float(lo), float(hi)]


def compare_losses(base: list[dict[str, float]], tuned: list[dict[str, float]], *,
                   n_resamples: int = DEFAULT_N_RESAMPLES, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Summaries of two models' per-example losses on the same examples, and the paired difference (tuned - base).

    Example:
        >>> base = [{"loss": 2.0, "tokens": 10}, {"loss": 3.0, "tokens": 5}, {"loss": 2.5, "tokens": 8}]
        >>> tuned = [{"loss": 1.0, "tokens": 10}, {"loss": 2.0, "tokens": 5}, {"loss": 1.2, "tokens": 8}]
        >>> r = compare_losses(base, tuned)
        >>> round(r["difference"]["delta"], 3), r["difference"]["delta_ci"][1] < 0, r["improved_examples"]
        (-1.1, True, 3)
    """
    from clinforge.eval.metrics.significance import paired_bootstrap

    if len(base) != len(tuned) or not base:
        raise DataError(f"paired losses need the same non-empty examples ({len(base)} vs {len(tuned)})")
    summary: dict[str, Any] = {"n": len(base), "n_tokens": int(sum(b["tokens"] for b in base))}
    for label, rows in (("base", base), ("tuned", tuned)):
        losses = [r["loss"] for r in rows]
        mean, ci = mean_with_ci(losses, n_resamples=n_resamples, seed=seed)
        token_mean = sum(r["loss"] * r["tokens"] for r in rows) / sum(r["tokens"] for r in rows)
        summary[label] = {"loss": mean, "loss_ci": ci, "token_weighted_loss": token_mean,
                          "perplexity": math.exp(token_mean)}
    summary["difference"] = paired_bootstrap([t["loss"] for t in tuned], [b["loss"] for b in base],
                                             n_resamples=n_resamples, seed=seed)
    summary["improved_examples"] = sum(t["loss"] < b["loss"] for t, b in zip(tuned, base, strict=True))
    summary["definition"] = ("per example: mean cross-entropy (nats) of its assistant tokens under the model's chat "
                             "template; figure: mean over examples; CI: percentile bootstrap over examples "
                             f"({n_resamples} resamples, seed {seed}); difference: paired bootstrap of tuned - base")
    return summary
