"""Batching image-text examples: padding-free packing (no attention across examples) and plain padding.

Packing image-text data is what TRL refuses to do. It works here because of two facts about transformers 5:

* a LLaVA-style model scatters the visual features into the placeholder positions of ``input_ids`` in order
  (``masked_scatter``), so the images of a packed batch only have to be stacked in the order their placeholders
  appear, row after row, example after example;
* with ``attention_mask=None``, no KV cache and ``position_ids`` that restart at 0 for each example,
  ``transformers.masking_utils`` (``find_packed_sequence_indices``) turns the causal mask into a block-diagonal one
  for sdpa, eager and flex attention (flash-attention takes the same boundaries as variable-length sequences), so
  no token attends to another example. The first label of each example is -100, so no example predicts the
  next one's first token.

``tests/test_vlm_train.py`` proves packed and unpacked batches give the same loss and gradients (float32, stated
tolerance). Models whose attention ignores ``position_ids`` (recurrent LLMs) must not be packed; the vlm stages
check with ``clinforge.train.data.supports_packed_positions`` and pad instead.

Example:
    >>> import torch
    >>> f = [{"input_ids": [5, 9, 9, 6], "labels": [-100, -100, -100, 6], "pixel_values": torch.zeros(1, 3, 2, 2)},
    ...      {"input_ids": [5, 9, 9, 7, 8], "labels": [-100, -100, -100, 7, 8], "pixel_values": torch.ones(1, 3, 2, 2)}]
    >>> b = VlmPackingCollator()(f)
    >>> b["position_ids"].tolist(), b["pixel_values"][:, 0, 0, 0].tolist()
    ([[0, 1, 2, 3, 0, 1, 2, 3, 4]], [0.0, 1.0])
"""

from __future__ import annotations

from typing import Any

from clinforge.train.data import PackingCollator, PaddingCollator


def _stack_pixels(features: list[dict[str, Any]]):
    """The images of ``features`` in the given order as one tensor (None when no feature has an image)."""
    import torch

    pv = [f["pixel_values"] for f in features if f.get("pixel_values") is not None]
    return torch.cat(pv) if pv else None


class VlmPackingCollator(PackingCollator):
    """``PackingCollator`` for image-text rows: examples are packed into balanced rows of about
    ``max_row_tokens`` (position_ids restart per example, first label of each example -100, no attention mask)
    and their images stacked in placeholder order (row by row, example by example). Counts ``images``, real
    ``tokens`` and ``padding`` tokens as it goes."""

    def __init__(self, max_row_tokens: int | None = None, pad_token_id: int = 0):
        super().__init__(max_row_tokens=max_row_tokens, pad_token_id=pad_token_id)
        self.images = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().__call__(features)
        # the parent packs the rows _rows() returns, in that order; _rows is deterministic (stable sort by length,
        # lightest-row placement), so asking again gives the order the placeholders have in the packed batch
        pv = _stack_pixels([f for row in self._rows(features) for f in row])
        if pv is not None:
            batch["pixel_values"] = pv
            self.images += int(pv.shape[0])
        return batch


class VlmPaddingCollator(PaddingCollator):
    """``PaddingCollator`` for image-text rows (one example per row, right padding, attention mask), images stacked
    in example order.

    Example:
        >>> import torch
        >>> f = [{"input_ids": [5, 9], "labels": [-100, 9], "pixel_values": torch.zeros(1, 3, 2, 2)}]
        >>> VlmPaddingCollator(0)(f)["pixel_values"].shape
        torch.Size([1, 3, 2, 2])
    """

    def __init__(self, pad_token_id: int):
        super().__init__(pad_token_id)
        self.images = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().__call__(features)
        pv = _stack_pixels(features)
        if pv is not None:
            batch["pixel_values"] = pv
            self.images += int(pv.shape[0])
        return batch


def vlm_collator(model, image_mode: str, *, packing: bool, max_row_tokens: int, pad_token_id: int):
    """The collator a vlm stage trains with: packing when asked and safe, else padding.

    Packing is refused (padding instead) for recurrent LLMs (their state runs along the row). Gated
    cross-attention (``image_mode`` ``marker``) packs too: its blocks reset each token's image at every example
    start (``position_ids`` == 0), so no token sees another example's image.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(1, 1); m.config = type("C", (), {"model_type": "llava"})()
        >>> type(vlm_collator(m, "marker", packing=True, max_row_tokens=64, pad_token_id=0)).__name__
        'VlmPackingCollator'
        >>> type(vlm_collator(m, "tokens", packing=False, max_row_tokens=64, pad_token_id=0)).__name__
        'VlmPaddingCollator'
    """
    from clinforge.train.data import supports_packed_positions

    text_config = getattr(model.config, "text_config", None) or model.config
    if packing and supports_packed_positions(text_config):
        return VlmPackingCollator(max_row_tokens=max_row_tokens, pad_token_id=pad_token_id)
    return VlmPaddingCollator(pad_token_id)
