"""Prompt augmentation (ChatCAD, OphGLM): expert vision models turn an image into text that a plain LLM reads.

Experts are Hugging Face folders of a registered ``EXPERT_KINDS`` kind: ``classifier``
(``AutoModelForImageClassification``: the top labels with probabilities) and ``segmenter``
(``AutoModelForSemanticSegmentation``: the share of the image each label covers). The processor runs them on every
image and fills ``template`` (``{NAME}`` fields, one per expert; default: every expert's findings in order) in place
of the ``<image>`` marker; the model itself is the bare LLM and has no visual input.

Connector options: ``experts: [{name, kind, path}]`` (without ``path`` a tiny random expert of that kind is built,
for tests) and ``template``; ``top_k`` (classifier labels shown, default 2).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clinforge.core.errors import ClinforgeError, ConfigError
from clinforge.core.registry import Registry
from clinforge.models.vlm.connectors import CONNECTORS, check_keys

PANEL_FILE = "experts.json"
DEFAULT_TEMPLATE = "[Expert findings: {findings}]"
TINY_CLASSES = ["normal", "effusion", "pneumothorax", "mass"]
TINY_SEGMENTS = ["background", "lung", "heart"]


@dataclass
class ExpertKind:
    """How to build a tiny expert, load one from a folder, and describe an image with it."""

    tiny: Any
    auto_class: str
    describe: Any


def _describe_classifier(model: nn.Module, pixels: torch.Tensor, top_k: int) -> str:
    probs = model(pixel_values=pixels).logits.softmax(-1)[0]
    top = probs.topk(min(top_k, probs.numel()))
    labels = model.config.id2label
    return ", ".join(f"{labels[int(i)]} {float(p):.2f}" for p, i in zip(top.values, top.indices, strict=True))


def _describe_segmenter(model: nn.Module, pixels: torch.Tensor, top_k: int) -> str:
    seg = model(pixel_values=pixels).logits.argmax(1)[0]
    labels = model.config.id2label
    shares = [(labels[int(k)], float((seg == k).float().mean())) for k in seg.unique()]
    return ", ".join(f"{name} {share:.0%}" for name, share in sorted(shares, key=lambda x: -x[1]))


def _tiny_classifier(image_size: int):
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    image_size=image_size, patch_size=8, id2label=dict(enumerate(TINY_CLASSES)),
                    label2id={v: k for k, v in enumerate(TINY_CLASSES)})
    return ViTForImageClassification(cfg)


def _tiny_segmenter(image_size: int):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    cfg = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                          patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                          decoder_hidden_size=16, id2label=dict(enumerate(TINY_SEGMENTS)),
                          label2id={v: k for k, v in enumerate(TINY_SEGMENTS)})
    return SegformerForSemanticSegmentation(cfg)


EXPERT_KINDS: Registry[ExpertKind] = Registry("expert kind")
EXPERT_KINDS.register("classifier", ExpertKind(_tiny_classifier, "AutoModelForImageClassification",
                                               _describe_classifier))
EXPERT_KINDS.register("segmenter", ExpertKind(_tiny_segmenter, "AutoModelForSemanticSegmentation",
                                              _describe_segmenter))


class ExpertPanel:
    """The experts of a prompt-augmented model and the template their findings fill.

    Example:
        >>> from PIL import Image
        >>> panel = ExpertPanel.from_spec({"type": "prompt_augment"}, image_size=32)
        >>> panel.describe(Image.new("RGB", (40, 40))).startswith("[Expert findings: classifier: ")
        True
    """

    def __init__(self, experts: list[dict], template: str = DEFAULT_TEMPLATE, top_k: int = 2):
        self.experts = experts  # each: {name, kind, model, image_processor}
        self.template = template
        self.top_k = int(top_k)

    @classmethod
    def from_spec(cls, conf: dict, *, image_size: int = 32, seed: int = 0) -> ExpertPanel:
        """Experts from a connector mapping: ``path`` folders, or tiny random ones for tests."""
        from transformers import AutoImageProcessor, ViTImageProcessorPil

        specs = conf.get("experts") or [{"name": "classifier", "kind": "classifier"},
                                        {"name": "segmenter", "kind": "segmenter"}]
        experts = []
        for i, e in enumerate(specs):
            where = f"model.connector.experts[{i}]"
            if not isinstance(e, dict) or "kind" not in e:
                raise ConfigError("needs {name, kind, path}", key=where)
            kind = EXPERT_KINDS.get(str(e["kind"]))
            name = str(e.get("name", e["kind"]))
            if e.get("path"):
                path = Path(os.path.expandvars(str(e["path"])))
                if not (path / "config.json").is_file():
                    raise ConfigError(f"{path}: expert folder has no config.json", key=f"{where}.path")
                model, proc = _load_expert(kind, path), AutoImageProcessor.from_pretrained(path)
            else:
                torch.manual_seed(seed + i)
                model = kind.tiny(image_size)
                proc = ViTImageProcessorPil(size={"height": image_size, "width": image_size})
            experts.append({"name": name, "kind": str(e["kind"]), "model": model.eval(), "image_processor": proc})
        return cls(experts, str(conf.get("template", DEFAULT_TEMPLATE)), int(conf.get("top_k", 2)))

    def describe(self, image) -> str:
        """The template filled with every expert's findings on one PIL image."""
        findings = {}
        with torch.no_grad():
            for e in self.experts:
                pixels = e["image_processor"](images=[image], return_tensors="pt")["pixel_values"]
                findings[e["name"]] = EXPERT_KINDS.get(e["kind"]).describe(e["model"], pixels, self.top_k)
        joined = "; ".join(f"{k}: {v}" for k, v in findings.items())
        try:
            return self.template.format(findings=joined, **findings)
        except KeyError as exc:
            raise ClinforgeError(f"template field {exc} is not an expert name; valid: findings, "
                                 f"{', '.join(findings)}") from None

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Each expert as a Hugging Face folder under ``path/NAME`` plus ``experts.json``."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        for e in self.experts:
            e["model"].save_pretrained(p / e["name"], safe_serialization=True)
            e["image_processor"].save_pretrained(p / e["name"])
        meta = {"template": self.template, "top_k": self.top_k,
                "experts": [{"name": e["name"], "kind": e["kind"]} for e in self.experts]}
        (p / PANEL_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> ExpertPanel:
        """Load a panel written by ``save_pretrained``."""
        from transformers import AutoImageProcessor

        p = Path(path)
        if not (p / PANEL_FILE).is_file():
            raise ClinforgeError(f"{p}: no {PANEL_FILE}: the prompt-augmented model's experts are missing")
        meta = json.loads((p / PANEL_FILE).read_text(encoding="utf-8"))
        experts = []
        for e in meta["experts"]:
            kind = EXPERT_KINDS.get(e["kind"])
            experts.append({**e, "model": _load_expert(kind, p / e["name"]).eval(),
                            "image_processor": AutoImageProcessor.from_pretrained(p / e["name"])})
        return cls(experts, meta["template"], meta.get("top_k", 2))


def _load_expert(kind: ExpertKind, path: Path) -> nn.Module:
    import transformers

    return getattr(transformers, kind.auto_class).from_pretrained(path)


@CONNECTORS.register("prompt_augment")
class PromptAugmentConnector(nn.Module):
    """No trainable part: the experts' text reaches the LLM through the processor."""

    placeholder = "none"
    num_output_tokens = 0

    def __init__(self, conf: dict, *_: Any):
        super().__init__()
        check_keys(conf, {"type", "experts", "template", "top_k"})
        self.conf = dict(conf)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        raise ClinforgeError("prompt_augment has no visual features: the processor turns images into text")
