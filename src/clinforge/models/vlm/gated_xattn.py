"""Flamingo's gated cross-attention for ANY Hugging Face decoder LM (Med-Flamingo's alignment method).

A perceiver resampler turns each image into ``queries`` latents; a GATED XATTN-DENSE block (cross-attention to the
latents, then a feed-forward layer, each added through ``tanh(gate)`` with the gate initialised at zero) runs before
every ``every``-th decoder layer. The blocks live in the connector and are attached to the LM's decoder layers with
forward pre-hooks, so the LM's own modules and weight names stay untouched (LoRA on the LLM never lands on them) and
at initialisation the model's logits equal the bare LLM's exactly.

As in Flamingo, a text token attends only to the latents of the most recent image before it (one marker token per
image in ``input_ids``); tokens before the first image get no visual input. Packed rows (several examples in one
row, ``position_ids`` restarting at 0 for each) reset this at every example: a token sees only an image of its own
example, so the tokens of an example before its own marker never see the previous example's image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial

import torch
from torch import nn

from clinforge.core.errors import ClinforgeError, ConfigError
from clinforge.models.vlm.connectors import CONNECTORS, PerceiverResampler, _heads, check_keys

_KEYS = {"type", "every", "queries", "layers", "heads", "ff_mult"}


def decoder_layers(lm: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks of a causal LM (``model.layers``, ``transformer.h``, ``backbone.layers`` ...)."""
    n = getattr(lm.config, "num_hidden_layers", None) or getattr(lm.config, "n_layer", None)
    for _, mod in lm.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n:
            return mod
    raise ClinforgeError(f"{type(lm).__name__}: no list of {n} decoder layers found to insert cross-attention into")


class GatedXattnDense(nn.Module):
    """``x + tanh(a) * xattn(x, media)``, then ``x + tanh(b) * ffw(x)``; ``a = b = 0`` at initialisation."""

    def __init__(self, dim: int, media_dim: int, heads: int, ff_mult: int = 4):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, kdim=media_dim, vdim=media_dim, batch_first=True)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * ff_mult), nn.GELU(),
                                nn.Linear(dim * ff_mult, dim))
        self.ff_gate = nn.Parameter(torch.zeros(1))
        self.heads = heads

    def forward(self, x: torch.Tensor, media: torch.Tensor, blocked: torch.Tensor, has_media: torch.Tensor):
        mask = blocked.repeat_interleave(self.heads, dim=0)
        media = media.to(x.dtype)
        attended = self.attn(self.norm(x), media, media, attn_mask=mask, need_weights=False)[0]
        x = x + torch.tanh(self.attn_gate) * attended * has_media
        return x + torch.tanh(self.ff_gate) * self.ff(x)


@CONNECTORS.register("gated_xattn")
class GatedXattnConnector(nn.Module):
    """Perceiver resampler + GATED XATTN-DENSE blocks every ``every`` decoder layers (options: ``every`` 1,
    ``queries`` 8, ``layers`` 1 resampler layers, ``heads``, ``ff_mult`` 4)."""

    placeholder = "marker"

    def __init__(self, conf: dict, vision_hidden: int, vision_tokens: int, text_hidden: int):
        super().__init__()
        check_keys(conf, _KEYS)
        self.every = int(conf.get("every", 1))
        if self.every < 1:
            raise ConfigError(f"every must be >= 1, got {self.every}", key="model.connector.every")
        self.queries = int(conf.get("queries", 8))
        self.resampler = PerceiverResampler(vision_hidden, queries=self.queries, layers=int(conf.get("layers", 1)))
        self.text_hidden, self.vision_hidden = text_hidden, vision_hidden
        self.heads = _heads(text_hidden, conf.get("heads"), "the LLM's hidden size")
        self.ff_mult = int(conf.get("ff_mult", 4))
        self.blocks = nn.ModuleList()
        self.num_output_tokens = self.queries
        self.marker_id: int | None = None
        self._ctx: tuple | None = None
        self._last: tuple | None = None  # (media, counts, last image index per row) kept for cached decoding

    def attach(self, lm: nn.Module, config) -> None:
        """Create one block per ``every`` decoder layers of ``lm`` and hook them in front of those layers."""
        layers = decoder_layers(lm)
        where = list(range(0, len(layers), self.every))
        self.blocks = nn.ModuleList(GatedXattnDense(self.text_hidden, self.vision_hidden, self.heads, self.ff_mult)
                                    for _ in where)
        self.marker_id = config.image_token_id
        for i, li in enumerate(where):
            layers[li].register_forward_pre_hook(partial(self._hook, i), with_kwargs=True)

    def _hook(self, i: int, module: nn.Module, args: tuple, kwargs: dict):
        if self._ctx is None:
            return None
        if args:
            return (self.blocks[i](args[0], *self._ctx),) + tuple(args[1:]), kwargs
        kwargs["hidden_states"] = self.blocks[i](kwargs["hidden_states"], *self._ctx)
        return args, kwargs

    def resample(self, feats: torch.Tensor) -> torch.Tensor:
        """``(n_images, queries, vision_hidden)`` latents of the visual tokens."""
        return self.resampler(feats)

    @contextlib.contextmanager
    def media(self, input_ids: torch.Tensor | None, latents: torch.Tensor | None, *, decoding: bool = False,
              position_ids: torch.Tensor | None = None) -> Iterator[None]:
        """Make the blocks attend to ``latents`` (images in marker order) while the LM runs on ``input_ids``.

        ``decoding`` (a cached generation step without pixel values) reuses the latents of the prefill.
        ``position_ids``: where they restart at 0 a new example begins (packed rows); a token's most recent image
        must then lie in its own example, or it gets no visual input."""
        if input_ids is None:
            raise ClinforgeError("gated_xattn needs input_ids to find the image markers")
        markers = (input_ids == self.marker_id).long()
        if latents is not None:
            counts = markers.sum(1)
            if int(counts.sum()) != latents.shape[0]:
                raise ValueError(f"{int(counts.sum())} image markers in input_ids but {latents.shape[0]} images")
            b, q = input_ids.shape[0], latents.shape[1]
            media = latents.new_zeros(b, max(int(counts.max()), 1) * q, latents.shape[-1])
            img_of = torch.full((b, media.shape[1]), -1, dtype=torch.long, device=input_ids.device)
            start = 0
            for row in range(b):
                n = int(counts[row])
                media[row, :n * q] = latents[start:start + n].flatten(0, 1)
                img_of[row, :n * q] = torch.arange(n * q, device=input_ids.device) // q
                start += n
            cum = markers.cumsum(1)
        elif decoding and self._last is not None:
            media, img_of, last = self._last
            cum = last.unsqueeze(1) + markers.cumsum(1)
        else:
            self._ctx, self._last = None, None  # text only: the blocks are skipped
            yield
            return
        seen = cum > 0
        if latents is not None and position_ids is not None and position_ids.shape == input_ids.shape:
            # markers before the start of each token's example: carried forward from each start (cum never falls)
            starts = torch.where(position_ids == 0, cum - markers, torch.zeros_like(cum))
            seen = cum > starts.cummax(1).values
        # (B, T, 1): index of the most recent image of the token's example; -2 (no slot has it) before the first,
        # so a token without an image never matches the empty media slots (-1) of a row holding fewer images
        current = torch.where(seen, cum - 1, torch.full_like(cum, -2)).unsqueeze(-1)
        allowed = img_of.unsqueeze(1) == current
        has = allowed.any(-1, keepdim=True)
        blocked = ~(allowed | ~has)  # rows without an image may attend anywhere; their output is zeroed by `has`
        self._ctx = (media, blocked, has.to(media.dtype))
        self._last = (media, img_of, cum[:, -1])
        try:
            yield
        finally:
            self._ctx = None

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.resample(feats)
