"""Encode each distinct image once: a content-keyed cache of a FROZEN, deterministic vision encoder's outputs.

VQA data asks several questions about the same image (VQA-RAD: 1,798 training questions over 313 images), and
a vision encoder that does not train computes the same features for the same pixels at every step. While the
cache is active, a forward pass of the encoder hashes each image's pixel tensor (blake2b of its bytes, with dtype
and shape), encodes only the images it has not seen (once per batch even when a batch holds an image twice, under
``torch.no_grad``: no autograd graph is recorded for a frozen tower) and assembles the outputs from the cache.

It is active only while the result cannot differ from encoding every image: no parameter of the encoder requires
a gradient, the pixel values do not, and the encoder is either in eval mode or holds no active stochastic layer
(dropout, attention dropout or stochastic depth with a probability above 0). Otherwise the encoder runs as if no
cache were installed. The cache is derived state: it is never saved, a resumed run rebuilds it, and its size is
bounded (least recently used images are evicted beyond ``max_bytes``).

Installed on the module ``vlm_components(model)["vision"]`` (clinforge's ``VisionEncoder``, whose output is a
tensor, or the vision tower of a transformers LLaVA model, whose output is a ``ModelOutput``: only the hidden
states the model reads, ``config.vision_feature_layer``, and ``last_hidden_state`` are kept) by setting the
instance's ``forward``: module and parameter names, state dicts and hooks stay as they are.

Example:
    >>> import torch
    >>> enc = torch.nn.Linear(4, 2).requires_grad_(False)
    >>> with vision_feature_cache(enc) as cache:
    ...     _ = enc(torch.ones(3, 4)); _ = enc(torch.ones(1, 4))
    >>> cache.stats()["hits"], cache.stats()["misses"], cache.stats()["encoded"]
    (3, 1, 1)
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

# config attributes that make a vision model stochastic in train mode when above 0
_STOCHASTIC_CONFIG = ("attention_dropout", "dropout", "hidden_dropout", "hidden_dropout_prob",
                      "attention_probs_dropout_prob", "drop_path_rate", "stochastic_depth_prob", "layerdrop")


def is_stochastic(module: nn.Module) -> bool:
    """Whether ``module`` in train mode can give different outputs for the same input: a dropout layer with p > 0,
    a stochastic-depth layer (``drop_prob`` / ``drop_path`` probability > 0), an attention module holding a
    dropout probability > 0 (transformers' functional attention dropout), or a config declaring one.

    Example:
        >>> is_stochastic(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1)))
        True
        >>> is_stochastic(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.0)))
        False
    """
    for m in module.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return True
        for attr in ("drop_prob", "drop_path_prob", "dropout", "attention_dropout"):
            v = getattr(m, attr, None)
            if isinstance(v, float) and v > 0:
                return True
        cfg = getattr(m, "config", None)
        if cfg is not None and any(isinstance(getattr(cfg, k, None), (int, float)) and getattr(cfg, k) > 0
                                   for k in _STOCHASTIC_CONFIG):
            return True
    return False


def _key(img: torch.Tensor) -> bytes:
    data = img.detach().contiguous().cpu()
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{data.dtype}{tuple(data.shape)}".encode())
    h.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return h.digest()


class VisionFeatureCache:
    """The cache behind ``vision_feature_cache``: ``__call__`` replaces the encoder's ``forward``.

    ``keep_layers``: for a ``ModelOutput`` with ``hidden_states``, the layer indices kept (the others come back as
    None); None keeps every layer. ``stats()``: hits (images served from the cache), misses (images encoded),
    ``encoded`` (encoder calls), ``bypassed`` (forward passes run uncached because the encoder could train or is
    stochastic), ``evicted``, ``cached_images`` and ``cached_bytes`` (now), ``peak_bytes`` (the most it held)."""

    def __init__(self, module: nn.Module, *, max_bytes: int = 1 << 30, keep_layers: list[int] | None = None):
        self.module = module
        self.original = module.forward
        self.max_bytes = int(max_bytes)
        self.keep_layers = keep_layers
        self.items: OrderedDict[bytes, Any] = OrderedDict()
        self.sizes: dict[bytes, int] = {}
        self.bytes = self.peak_bytes = 0
        self.hits = self.misses = self.encoded = self.bypassed = self.evicted = 0
        self._stochastic = is_stochastic(module)
        self._template: Any = None  # (output class, field names, hidden-state count) of a ModelOutput encoder

    def active(self, pixel_values: Any) -> bool:
        """Whether the output for ``pixel_values`` may come from the cache (see the module docstring)."""
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() < 2 or pixel_values.requires_grad:
            return False
        if self.module.training and self._stochastic:
            return False
        return not any(p.requires_grad for p in self.module.parameters())

    def stats(self) -> dict[str, int]:
        """Counters of this cache (for ``run.json``)."""
        return {"hits": self.hits, "misses": self.misses, "encoded": self.encoded, "bypassed": self.bypassed,
                "evicted": self.evicted, "cached_images": len(self.items), "cached_bytes": self.bytes,
                "peak_bytes": self.peak_bytes}

    # -- splitting an encoder output into per-image entries and back ---------------------------------------------
    def _split(self, out: Any, n: int) -> list[Any]:
        # clones, not views: a view would keep the whole batch output alive and make the byte count wrong
        if isinstance(out, torch.Tensor):
            return [out[i].clone() for i in range(n)]
        hs = getattr(out, "hidden_states", None)
        keep = range(len(hs)) if hs is not None and self.keep_layers is None else \
            [k % len(hs) for k in self.keep_layers] if hs is not None else []
        self._template = (type(out), len(hs) if hs is not None else None)
        last = getattr(out, "last_hidden_state", None)
        return [{"last": None if last is None else last[i].clone(),
                 "hidden": {k: hs[k][i].clone() for k in keep}} for i in range(n)]

    def _join(self, entries: list[Any]) -> Any:
        if isinstance(entries[0], torch.Tensor):
            return torch.stack(entries)
        cls, n_hidden = self._template
        last = None if entries[0]["last"] is None else torch.stack([e["last"] for e in entries])
        hidden = None if n_hidden is None else tuple(
            torch.stack([e["hidden"][k] for e in entries]) if k in entries[0]["hidden"] else None
            for k in range(n_hidden))
        return cls(last_hidden_state=last, hidden_states=hidden)

    @staticmethod
    def _nbytes(entry: Any) -> int:
        if isinstance(entry, torch.Tensor):
            return entry.numel() * entry.element_size()
        ts = [entry["last"], *entry["hidden"].values()]
        return sum(t.numel() * t.element_size() for t in ts if t is not None)

    def _store(self, key: bytes, entry: Any) -> None:
        size = self._nbytes(entry)
        self.items[key], self.sizes[key] = entry, size
        self.bytes += size
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        while self.bytes > self.max_bytes and len(self.items) > 1:
            old, _ = self.items.popitem(last=False)
            self.bytes -= self.sizes.pop(old)
            self.evicted += 1

    def __call__(self, pixel_values: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not self.active(pixel_values):
            self.bypassed += 1
            return self.original(pixel_values, *args, **kwargs)
        keys = [_key(img) for img in pixel_values]
        missing: dict[bytes, int] = {}  # first position of each image not in the cache
        for i, k in enumerate(keys):
            if k not in self.items and k not in missing:
                missing[k] = i
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        fresh: dict[bytes, Any] = {}
        if missing:
            idx = list(missing.values())
            with torch.no_grad():
                out = self.original(pixel_values[idx], *args, **kwargs)
            self.encoded += 1
            fresh = dict(zip(missing, self._split(out, len(idx)), strict=True))
        entries = []
        for k in keys:  # served in batch order; fresh entries first so eviction cannot drop one still needed
            if k in fresh:
                entries.append(fresh[k])
            else:
                self.items.move_to_end(k)
                entries.append(self.items[k])
        for k, e in fresh.items():
            self._store(k, e)
        return self._join(entries)


def _llava_layers(model: nn.Module | None) -> list[int] | None:
    cfg = getattr(model, "config", None)
    layer = getattr(cfg, "vision_feature_layer", None)
    if layer is None:
        return None
    return [int(layer)] if isinstance(layer, int) else [int(x) for x in layer]


@contextlib.contextmanager
def vision_feature_cache(module: nn.Module, *, model: nn.Module | None = None, max_bytes: int = 1 << 30
                         ) -> Iterator[VisionFeatureCache]:
    """Install a ``VisionFeatureCache`` on the vision encoder ``module`` for the duration of the block (``model``:
    the composed model, whose ``config.vision_feature_layer`` says which hidden states a LLaVA model reads).
    Removed on exit, whatever happens; the cache's counters stay readable.

    Example:
        >>> # with vision_feature_cache(vlm_components(model)["vision"], model=model) as cache:
        >>> #     trainer.train()
        >>> # cache.stats()["hits"]
    """
    cache = VisionFeatureCache(module, max_bytes=max_bytes, keep_layers=_llava_layers(model))
    module.forward = cache
    try:
        yield cache
    finally:
        if module.__dict__.get("forward") is cache:
            del module.forward
        cache.items.clear()  # free the memory; the counters stay (cached_images / cached_bytes read 0 after this)
        cache.sizes.clear()
        cache.bytes = 0
