"""Modality connectors: map visual tokens ``(n_images, tokens, vision_hidden)`` into the LLM, chosen by name.

The four alignment methods of the field:

- projection: ``linear``, ``mlp`` (``depth``, ``activation``), ``avgpool`` (adaptive average pooling to ``tokens``
  visual tokens, then an MLP projector);
- query-based: ``qformer`` (BLIP-2 style: queries self-attend, then cross-attend to the image) and ``perceiver``
  (Flamingo's resampler: latents attend to image tokens and themselves); ``queries`` learnable queries, ``layers``
  blocks, with any encoder;
- gated cross-attention: ``gated_xattn`` (``clinforge.models.vlm.gated_xattn``);
- prompt augmentation: ``prompt_augment`` (``clinforge.models.vlm.prompt_augment``).

A connector class registered in ``CONNECTORS`` takes ``(conf, vision_hidden, vision_tokens, text_hidden)`` and
exposes ``num_output_tokens`` (visual tokens per image handed to the LLM) and ``placeholder`` (``"tokens"``: that many
``<image>`` tokens per image; ``"marker"``: one marker per image; ``"none"``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from clinforge.core.errors import ConfigError
from clinforge.core.registry import Registry

CONNECTORS: Registry[Any] = Registry("connector", {"gated_xattn": "clinforge.models.vlm.gated_xattn",
                                                   "prompt_augment": "clinforge.models.vlm.prompt_augment"})

_KEYS = {"linear": {"type"}, "mlp": {"type", "depth", "activation", "bias"},
         "avgpool": {"type", "tokens", "depth", "activation"},
         "qformer": {"type", "queries", "layers", "heads", "depth", "activation"},
         "perceiver": {"type", "queries", "layers", "heads", "depth", "activation"}}


def check_keys(conf: dict, allowed: set[str]) -> None:
    """Refuse a connector option the connector does not have (a typo must not silently fall back to a default)."""
    from clinforge.core.errors import did_you_mean

    for k in conf:
        if k not in allowed:
            raise ConfigError(f"unknown option {k!r} of connector {conf.get('type')!r}; valid: "
                              f"{', '.join(sorted(allowed))}{did_you_mean(k, allowed)}", key=f"model.connector.{k}")


def activation(name: str) -> nn.Module:
    """A transformers activation by name (``gelu``, ``relu``, ``silu``, ``gelu_pytorch_tanh`` ...)."""
    from transformers.activations import ACT2FN

    if name not in ACT2FN:
        raise ConfigError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACT2FN))}",
                          key="model.connector.activation")
    return ACT2FN[name]


def mlp(d_in: int, d_out: int, depth: int, act: str, bias: bool = True) -> nn.Sequential:
    """``depth`` linear layers with ``act`` between them (depth 1 is a single linear layer)."""
    if int(depth) < 1:
        raise ConfigError(f"depth must be >= 1, got {depth}", key="model.connector.depth")
    layers: list[nn.Module] = [nn.Linear(d_in, d_out, bias=bias)]
    for _ in range(int(depth) - 1):
        layers += [activation(act), nn.Linear(d_out, d_out, bias=bias)]
    return nn.Sequential(*layers)


def _heads(dim: int, wanted: int | None, what: str = "the encoder's hidden size") -> int:
    h = int(wanted or 4)
    if dim % h:
        if wanted:
            fits = [d for d in range(1, min(dim, 64) + 1) if dim % d == 0]
            raise ConfigError(f"heads={h} does not divide {what} {dim}; heads that fit: {fits}",
                              key="model.connector.heads")
        h = math.gcd(dim, h)
    return h


@CONNECTORS.register("linear")
class LinearConnector(nn.Module):
    """One linear projection per visual token (LLaVA 1.0)."""

    placeholder = "tokens"

    def __init__(self, conf: dict, vision_hidden: int, vision_tokens: int, text_hidden: int):
        super().__init__()
        check_keys(conf, _KEYS["linear"])
        self.proj = nn.Linear(vision_hidden, text_hidden)
        self.num_output_tokens = vision_tokens

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj(feats)


@CONNECTORS.register("mlp")
class MlpConnector(nn.Module):
    """Linear -> activation -> linear ... (``depth`` layers; LLaVA 1.5's is depth 2, GELU)."""

    placeholder = "tokens"

    def __init__(self, conf: dict, vision_hidden: int, vision_tokens: int, text_hidden: int):
        super().__init__()
        check_keys(conf, _KEYS["mlp"])
        self.proj = mlp(vision_hidden, text_hidden, conf.get("depth", 2), conf.get("activation", "gelu"),
                        bool(conf.get("bias", True)))
        self.num_output_tokens = vision_tokens

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj(feats)


@CONNECTORS.register("avgpool")
class AvgPoolConnector(nn.Module):
    """Adaptive average pooling of the visual tokens to ``tokens`` (2D over the patch grid when both counts are
    squares, else 1D over the sequence), then an MLP projector."""

    placeholder = "tokens"

    def __init__(self, conf: dict, vision_hidden: int, vision_tokens: int, text_hidden: int):
        super().__init__()
        check_keys(conf, _KEYS["avgpool"])
        n = int(conf.get("tokens", 4))
        if not 1 <= n <= vision_tokens:
            raise ConfigError(f"tokens={n} must be between 1 and the encoder's {vision_tokens} visual tokens",
                              key="model.connector.tokens")
        self.grid_in, self.grid_out = math.isqrt(vision_tokens), math.isqrt(n)
        self.two_d = self.grid_in ** 2 == vision_tokens and self.grid_out ** 2 == n
        self.num_output_tokens = n
        self.proj = mlp(vision_hidden, text_hidden, conf.get("depth", 2), conf.get("activation", "gelu"))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if self.two_d:
            b, t, d = feats.shape
            grid = feats.transpose(1, 2).reshape(b, d, self.grid_in, self.grid_in)
            pooled = nn.functional.adaptive_avg_pool2d(grid, self.grid_out).flatten(2).transpose(1, 2)
        else:
            pooled = nn.functional.adaptive_avg_pool1d(feats.transpose(1, 2), self.num_output_tokens).transpose(1, 2)
        return self.proj(pooled)


class _Attention(nn.Module):
    def __init__(self, dim: int, kv_dim: int, heads: int):
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(kv_dim)
        self.attn = nn.MultiheadAttention(dim, heads, kdim=kv_dim, vdim=kv_dim, batch_first=True)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(kv)
        return self.attn(self.norm_q(q), kv, kv, need_weights=False)[0]


class _FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Linear(dim * mult, dim))


class PerceiverResampler(nn.Module):
    """Flamingo's perceiver resampler: ``queries`` learned latents attend to ``[image tokens; latents]``.

    Example:
        >>> PerceiverResampler(16, queries=4, layers=1)(torch.zeros(2, 9, 16)).shape
        torch.Size([2, 4, 16])
    """

    def __init__(self, dim: int, *, queries: int = 8, layers: int = 2, heads: int | None = None):
        super().__init__()
        h = _heads(dim, heads)
        self.latents = nn.Parameter(torch.randn(queries, dim) * dim ** -0.5)
        self.blocks = nn.ModuleList(nn.ModuleList([_Attention(dim, dim, h), _FeedForward(dim)])
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.latents.unsqueeze(0).expand(feats.shape[0], -1, -1)
        for attn, ff in self.blocks:
            x = x + attn(x, torch.cat([feats, x], dim=1))
            x = x + ff(x)
        return self.norm(x)


class QFormer(nn.Module):
    """BLIP-2's querying transformer, on any encoder: queries self-attend, cross-attend to the image tokens, feed
    forward (pre-norm blocks; BLIP-2 initialises from BERT, here the queries and blocks are trained from scratch).

    Example:
        >>> QFormer(16, queries=4, layers=1)(torch.zeros(2, 9, 16)).shape
        torch.Size([2, 4, 16])
    """

    def __init__(self, dim: int, *, queries: int = 8, layers: int = 2, heads: int | None = None):
        super().__init__()
        h = _heads(dim, heads)
        self.queries = nn.Parameter(torch.randn(queries, dim) * dim ** -0.5)
        self.blocks = nn.ModuleList(nn.ModuleList([_Attention(dim, dim, h), _Attention(dim, dim, h),
                                                   _FeedForward(dim)]) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.queries.unsqueeze(0).expand(feats.shape[0], -1, -1)
        for self_attn, cross_attn, ff in self.blocks:
            x = x + self_attn(x, x)
            x = x + cross_attn(x, feats)
            x = x + ff(x)
        return self.norm(x)


class _QueryConnector(nn.Module):
    placeholder = "tokens"
    resampler_cls: type = PerceiverResampler
    name = ""

    def __init__(self, conf: dict, vision_hidden: int, vision_tokens: int, text_hidden: int):
        super().__init__()
        check_keys(conf, _KEYS[self.name])
        q = int(conf.get("queries", 8))
        if q < 1:
            raise ConfigError(f"queries must be >= 1, got {q}", key="model.connector.queries")
        self.resampler = self.resampler_cls(vision_hidden, queries=q, layers=int(conf.get("layers", 2)),
                                            heads=conf.get("heads"))
        self.proj = mlp(vision_hidden, text_hidden, conf.get("depth", 1), conf.get("activation", "gelu"))
        self.num_output_tokens = q

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj(self.resampler(feats))


@CONNECTORS.register("perceiver")
class PerceiverConnector(_QueryConnector):
    """``queries`` latents from a perceiver resampler, projected into the LLM (RadFM-style)."""

    resampler_cls = PerceiverResampler
    name = "perceiver"


@CONNECTORS.register("qformer")
class QFormerConnector(_QueryConnector):
    """``queries`` outputs of a Q-Former, projected into the LLM (BLIP-2 / MedBLIP-style)."""

    resampler_cls = QFormer
    name = "qformer"


def build_connector(conf: dict, vision_hidden: int, vision_tokens: int, text_hidden: int) -> nn.Module:
    """The connector named by ``conf["type"]`` (unknown names list the valid ones).

    Example:
        >>> c = build_connector({"type": "avgpool", "tokens": 4}, 32, 16, 64)
        >>> c(torch.zeros(1, 16, 32)).shape, c.num_output_tokens
        (torch.Size([1, 4, 64]), 4)
    """
    if not isinstance(conf, dict) or "type" not in conf:
        raise ConfigError(f"connector needs a `type`; valid: {', '.join(CONNECTORS.names())}", key="model.connector")
    cls = CONNECTORS.get(str(conf["type"]))
    return cls(conf, vision_hidden, vision_tokens, text_hidden)
