"""Vision encoders of a composed multimodal model, chosen by name from ``VISION_ENCODERS``.

Every encoder is a transformers vision model (built from a config class for ``{tiny: NAME}``, or loaded from a local
folder), wrapped in ``VisionEncoder`` which returns the visual tokens handed to the connector: hidden states of one
layer (``feature_layer``, LLaVA's ``vision_feature_layer`` semantics: an index into ``hidden_states`` whose entry 0 is
the embedding output) with the leading CLS / register tokens dropped (``strategy="default"``) or kept
(``strategy="full"``).

Families: ``clip``, ``siglip`` (no CLS), ``vit``, ``dinov2`` (RAD-DINO's architecture; ``with_registers`` adds register
tokens), ``swin`` (hierarchical; last stage output), ``vit3d`` (VideoMAE tubelet patch embedding over D x H x W
volumes, no CLS) and ``slices`` (any 2D family applied to every slice of a volume, then pooled over depth).
New families register an ``EncoderFamily`` under a new name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clinforge.core.errors import ConfigError
from clinforge.core.registry import Registry

TINY_IMAGE_SIZE = 32
TINY_VOLUME_DEPTH = 4


@dataclass(frozen=True)
class EncoderFamily:
    """How to build, load and count the tokens of one kind of vision encoder.

    ``tiny`` returns a small transformers config (no download); ``prefix_tokens`` the number of non-patch tokens the
    model puts first (CLS, registers); ``patch_tokens`` the patch tokens for the config's input size; ``volume``
    whether inputs are D x H x W volumes.
    """

    name: str
    tiny: Any
    prefix_tokens: Any
    patch_tokens: Any
    default_feature_layer: int = -1
    volume: bool = False
    image_processor: str = "vit"
    llava_exact: bool = False  # transformers' LLaVA class holds this family exactly (projector and strategies)
    notes: str = ""
    extra: dict = field(default_factory=dict)


VISION_ENCODERS: Registry[EncoderFamily] = Registry("vision encoder")


def _tiny_vit_kwargs(image_size: int) -> dict:
    return {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "image_size": image_size, "patch_size": 8}


def _grid(cfg) -> int:
    return (cfg.image_size // cfg.patch_size) ** 2


def _tiny_clip(image_size: int = TINY_IMAGE_SIZE):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(**_tiny_vit_kwargs(image_size), projection_dim=32)


def _tiny_siglip(image_size: int = TINY_IMAGE_SIZE):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(**_tiny_vit_kwargs(image_size))


def _tiny_vit(image_size: int = TINY_IMAGE_SIZE):
    from transformers import ViTConfig

    return ViTConfig(**_tiny_vit_kwargs(image_size))


def _tiny_dinov2(image_size: int = TINY_IMAGE_SIZE):
    from transformers import Dinov2Config

    return Dinov2Config(**_tiny_vit_kwargs(image_size), mlp_ratio=2)


def _tiny_dinov2_reg(image_size: int = TINY_IMAGE_SIZE):
    from transformers import Dinov2WithRegistersConfig

    return Dinov2WithRegistersConfig(**_tiny_vit_kwargs(image_size), mlp_ratio=2, num_register_tokens=4)


def _tiny_swin(image_size: int = TINY_IMAGE_SIZE):
    from transformers import SwinConfig

    return SwinConfig(image_size=image_size, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                      window_size=4, mlp_ratio=2.0)


def _tiny_vit3d(image_size: int = TINY_IMAGE_SIZE):
    from transformers import VideoMAEConfig

    # one grey channel: CT/MRI volumes; depth is the "frames" axis, tubelet_size slices per token
    return VideoMAEConfig(**_tiny_vit_kwargs(image_size), num_channels=1, num_frames=TINY_VOLUME_DEPTH,
                          tubelet_size=2, use_mean_pooling=False)


def _swin_tokens(cfg) -> int:
    side = cfg.image_size // cfg.patch_size // (2 ** (len(cfg.depths) - 1))
    return side * side


for _fam in (
    EncoderFamily("clip", _tiny_clip, lambda c: 1, _grid, default_feature_layer=-2, image_processor="clip",
                  llava_exact=True, notes="CLS token first; LLaVA uses the penultimate layer"),
    EncoderFamily("siglip", _tiny_siglip, lambda c: 0, _grid, image_processor="siglip", llava_exact=True,
                  notes="no CLS token"),
    EncoderFamily("vit", _tiny_vit, lambda c: 1, _grid, llava_exact=True, notes="CLS token first"),
    EncoderFamily("dinov2", _tiny_dinov2, lambda c: 1, _grid, llava_exact=True,
                  notes="CLS token first (RAD-DINO's architecture)"),
    EncoderFamily("dinov2_with_registers", _tiny_dinov2_reg, lambda c: 1 + c.num_register_tokens, _grid,
                  notes="CLS + register tokens first: LLaVA's strategies drop at most one token"),
    EncoderFamily("swin", _tiny_swin, lambda c: 0, _swin_tokens, notes="hierarchical; last stage, no CLS"),
    EncoderFamily("vit3d", _tiny_vit3d, lambda c: 0,
                  lambda c: (c.num_frames // c.tubelet_size) * (c.image_size // c.patch_size) ** 2, volume=True,
                  notes="VideoMAE tubelet patch embedding over D x H x W volumes"),
):
    VISION_ENCODERS.register(_fam.name, _fam)
# slices: a 2D family per slice + depth pooling; its EncoderFamily mirrors the 2D one chosen with `slice_encoder`
VISION_ENCODERS.register("slices", EncoderFamily("slices", _tiny_vit, lambda c: 1, _grid, volume=True,
                                                 notes="2D encoder per slice, pooled over depth"))

MODEL_TYPE_TO_FAMILY = {"clip_vision_model": "clip", "clip": "clip", "siglip_vision_model": "siglip",
                        "siglip": "siglip", "vit": "vit", "dinov2": "dinov2",
                        "dinov2_with_registers": "dinov2_with_registers", "swin": "swin", "videomae": "vit3d"}


def vision_model_from_config(cfg) -> nn.Module:
    """The bare transformers vision model of ``cfg`` (``AutoModel``; CLIP/SigLIP give only their vision towers)."""
    from transformers import AutoModel

    return AutoModel.from_config(cfg)


def load_vision_config(path: str | os.PathLike):
    """The vision config of a local encoder folder (a full CLIP/SigLIP checkpoint gives its ``vision_config``)."""
    from transformers import AutoConfig

    p = Path(path)
    if not (p / "config.json").is_file():
        raise ConfigError(f"{p}: vision encoder folder has no config.json", key="model.vision")
    cfg = AutoConfig.from_pretrained(p)
    return getattr(cfg, "vision_config", None) or cfg


def family_of_config(cfg) -> str:
    """The registered family name of a transformers vision config, or a ConfigError listing the known ones."""
    fam = MODEL_TYPE_TO_FAMILY.get(cfg.model_type)
    if fam is None:
        raise ConfigError(f"vision model type {cfg.model_type!r} is not supported; supported: "
                          f"{', '.join(sorted(MODEL_TYPE_TO_FAMILY))}", key="model.vision")
    return fam


class VisionEncoder(nn.Module):
    """A transformers vision model returning the visual tokens a connector consumes: ``(n_images, tokens, hidden)``.

    ``meta`` (saved in the composed model's config) holds ``family``, ``feature_layer``, ``strategy``
    (``default``: drop the ``prefix_tokens`` CLS/register tokens; ``full``: keep them), and for ``slices``
    ``depth`` and ``depth_pool`` (``mean`` or ``max``).

    Example:
        >>> enc = VisionEncoder(vision_model_from_config(_tiny_siglip()), {"family": "siglip"}, _tiny_siglip())
        >>> enc(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 16, 32])
    """

    def __init__(self, model: nn.Module, meta: dict, cfg=None):
        super().__init__()
        self.model = model
        # a saved model's meta is complete already; a new one gets its defaults from the family and config
        self.meta = dict(meta) if cfg is None else resolve_meta(meta, cfg)

    @property
    def hidden_size(self) -> int:
        return int(self.meta["hidden_size"])

    @property
    def num_tokens(self) -> int:
        """Visual tokens per image (or volume) after feature selection."""
        return int(self.meta["num_tokens"])

    def _select(self, out) -> torch.Tensor:
        if self.meta["family"] == "swin":
            return out.last_hidden_state  # stages differ in width: only the last stage feeds a connector
        hs = out.hidden_states[self.meta["feature_layer"]]
        if self.meta["strategy"] == "default":
            hs = hs[:, self.meta["prefix_tokens"]:]
        return hs

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        fam = self.meta["family"]
        if fam == "slices":
            if pixel_values.dim() != 5:
                raise ValueError(f"slices encoder expects (volumes, depth, channels, H, W), got {tuple(pixel_values.shape)}")
            b, d = pixel_values.shape[:2]
            feats = self._select(self.model(pixel_values.flatten(0, 1), output_hidden_states=True))
            feats = feats.unflatten(0, (b, d))
            return feats.mean(1) if self.meta.get("depth_pool", "mean") == "mean" else feats.amax(1)
        if fam == "vit3d" and pixel_values.dim() != 5:
            raise ValueError(f"vit3d encoder expects (volumes, depth, channels, H, W), got {tuple(pixel_values.shape)}")
        return self._select(self.model(pixel_values, output_hidden_states=True))


def resolve_meta(meta: dict, cfg) -> dict:
    """Fill the defaults of an encoder's ``meta`` from its family and config (hidden size, token count)."""
    out = dict(meta)
    fam_name = out.get("family") or family_of_config(cfg)
    fam = VISION_ENCODERS.get(fam_name)
    out["family"] = fam_name
    prefix = int(fam.prefix_tokens(cfg))
    out.setdefault("feature_layer", fam.default_feature_layer)
    out.setdefault("strategy", "default" if prefix else "full")
    if out["strategy"] not in ("default", "full"):
        raise ConfigError(f"unknown feature strategy {out['strategy']!r}; valid: default, full",
                          key="model.vision.strategy")
    out["prefix_tokens"] = prefix
    n = int(fam.patch_tokens(cfg)) + (0 if out["strategy"] == "default" else prefix)
    if fam_name == "swin":
        n = int(fam.patch_tokens(cfg))
    out["num_tokens"] = n
    out["hidden_size"] = int(cfg.hidden_size)
    out["image_size"] = int(cfg.image_size if isinstance(cfg.image_size, int) else cfg.image_size[0])
    out["num_channels"] = int(getattr(cfg, "num_channels", 3))
    out["patch_size"] = int(cfg.patch_size if isinstance(cfg.patch_size, int) else cfg.patch_size[0])
    if fam_name == "vit3d":
        out["depth"] = int(cfg.num_frames)
    if fam_name == "slices":
        out.setdefault("depth", TINY_VOLUME_DEPTH)
        out.setdefault("depth_pool", "mean")
        if out["depth_pool"] not in ("mean", "max"):
            raise ConfigError(f"unknown depth_pool {out['depth_pool']!r}; valid: mean, max",
                              key="model.vision.depth_pool")
    return out


def build_vision_encoder(spec: Any, *, image_size: int | None = None) -> tuple[Any, dict, nn.Module | None]:
    """Resolve a recipe's ``vision:`` value to ``(config, meta, pretrained_model_or_None)``.

    ``spec``: ``{tiny: NAME}`` (random tiny model), a local folder (its weights are loaded), or a mapping with
    ``path:`` / ``tiny:`` plus ``feature_layer``, ``strategy``, and for ``slices`` ``slice_encoder`` (a 2D family),
    ``depth`` and ``depth_pool``.

    Example:
        >>> cfg, meta, model = build_vision_encoder({"tiny": "clip"})
        >>> meta["num_tokens"], meta["hidden_size"], model is None
        (16, 32, True)
    """
    from transformers import AutoModel

    if isinstance(spec, (str, os.PathLike)):
        spec = {"path": str(spec)}
    if not isinstance(spec, dict):
        raise ConfigError(f"expected {{tiny: NAME}} or a local folder, got {spec!r}", key="model.vision")
    meta = {k: v for k, v in spec.items() if k not in ("tiny", "path", "slice_encoder")}
    size = image_size or TINY_IMAGE_SIZE
    if "tiny" in spec:
        name = str(spec["tiny"])
        fam = VISION_ENCODERS.get(name)  # unknown names list the valid ones
        if name == "slices":
            inner = str(spec.get("slice_encoder", "vit"))
            inner_fam = VISION_ENCODERS.get(inner)
            if inner_fam.volume:
                raise ConfigError(f"slice_encoder must be a 2D encoder, got {inner!r}", key="model.vision.slice_encoder")
            cfg = inner_fam.tiny(size)
            cfg.num_channels = 3
            meta["slice_family"] = inner
            return cfg, _slices_meta(meta, cfg), None
        return fam.tiny(size), resolve_meta({**meta, "family": name}, fam.tiny(size)), None
    if "path" not in spec:
        raise ConfigError("needs `tiny: NAME` or `path: FOLDER`", key="model.vision")
    path = Path(os.path.expandvars(str(spec["path"])))
    cfg = load_vision_config(path)
    try:
        model = AutoModel.from_pretrained(path)
    except OSError as exc:
        raise ConfigError(f"{path}: vision encoder does not load: {exc}", key="model.vision") from exc
    if hasattr(model, "vision_model") and hasattr(model, "text_model"):
        # a full CLIP/SigLIP checkpoint: keep its vision tower, as the vision-only class (same weight names as LLaVA)
        tower = vision_model_from_config(cfg)
        tower.load_state_dict(model.vision_model.state_dict())
        model = tower
    if spec.get("slice_encoder") or meta.get("family") == "slices":
        meta["slice_family"] = family_of_config(cfg)
        return cfg, _slices_meta(meta, cfg), model
    return cfg, resolve_meta(meta, cfg), model


def _slices_meta(meta: dict, cfg) -> dict:
    m = resolve_meta({**meta, "family": meta["slice_family"]}, cfg)
    m.update(family="slices", slice_family=meta["slice_family"])
    m.setdefault("depth", TINY_VOLUME_DEPTH)
    m.setdefault("depth_pool", "mean")
    return m


def encoder_from_meta(cfg, meta: dict, pretrained: nn.Module | None = None) -> VisionEncoder:
    """A ``VisionEncoder`` for ``cfg``/``meta``, reusing ``pretrained`` weights when given."""
    model = pretrained if pretrained is not None else vision_model_from_config(cfg)
    return VisionEncoder(model, meta)


def is_volume(meta: dict) -> bool:
    """Whether the encoder takes D x H x W volumes (``vit3d``, ``slices``)."""
    return meta["family"] in ("vit3d", "slices")
