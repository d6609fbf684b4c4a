"""``VlmProcessor``: text + images -> ``input_ids``, ``attention_mask``, ``pixel_values`` for every composed model.

One ``<image>`` marker in the text stands for one image (or volume). The processor expands it to exactly
``num_image_tokens`` placeholder tokens (projection and query connectors, LLaVA), keeps one marker (``gated_xattn``),
or replaces it with the experts' text (``prompt_augment``). Images are PIL images, local paths, ``data:`` URIs or
arrays; volumes (``vit3d``, ``slices``) are ``D x H x W`` arrays or tensors, min-max scaled and resized to the
encoder's depth and size.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clinforge.core.errors import ClinforgeError

IMAGE_TOKEN = "<image>"
PROCESSOR_FILE = "clinforge_processor.json"


def open_image(item: Any):
    """A PIL RGB image from a PIL image, a local path or a ``data:`` URI (errors name the file).

    Example:
        >>> open_image("/no/such.png")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ClinforgeError: /no/such.png: image file does not exist
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        return Image.fromarray(item).convert("RGB")
    s = str(item)
    try:
        if s.startswith("data:"):
            return Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).convert("RGB")
        if not Path(s).is_file():
            raise ClinforgeError(f"{s}: image file does not exist")
        with Image.open(s) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ClinforgeError(f"{s[:80]}: image does not decode: {exc}") from exc


def volume_tensor(vol: Any, depth: int, size: int, channels: int) -> torch.Tensor:
    """A ``D x H x W`` volume as ``(depth, channels, size, size)`` floats in [-1, 1] (min-max per volume).

    Example:
        >>> volume_tensor(np.arange(2 * 8 * 8).reshape(2, 8, 8), 4, 4, 1).shape
        torch.Size([4, 1, 4, 4])
    """
    t = torch.as_tensor(np.asarray(vol), dtype=torch.float32)
    if t.dim() != 3:
        raise ClinforgeError(f"a volume must be D x H x W, got shape {tuple(t.shape)}")
    lo, hi = t.min(), t.max()
    t = (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)
    t = torch.nn.functional.interpolate(t[None, None], size=(depth, size, size), mode="trilinear",
                                        align_corners=False)[0, 0]
    return (t * 2 - 1).unsqueeze(1).expand(-1, channels, -1, -1).contiguous()


class VlmProcessor:
    """Tokenizer + image processor of a composed model, with the placeholder rule of its connector.

    ``placeholder``: ``tokens`` (``num_image_tokens`` copies of ``image_token`` per image), ``marker`` (one) or
    ``none`` (prompt augmentation: ``experts`` turn each image into text). ``volume``: ``{depth, size, channels}``
    for 3D encoders (then ``image_processor`` is None).

    Example:
        >>> from clinforge.models.vlm import build_vlm
        >>> _, proc = build_vlm({"vision": {"tiny": "clip"}, "connector": {"type": "mlp"}, "llm": {"tiny": "llama"}})
        >>> from PIL import Image
        >>> batch = proc(text="<image> lungs?", images=[Image.new("RGB", (40, 30))])
        >>> int((batch["input_ids"] == proc.image_token_id).sum()), tuple(batch["pixel_values"].shape)
        (16, (1, 3, 32, 32))
    """

    def __init__(self, tokenizer, image_processor=None, *, num_image_tokens: int, placeholder: str = "tokens",
                 image_token: str = IMAGE_TOKEN, volume: dict | None = None, llava: dict | None = None,
                 experts: Any = None):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token = image_token
        self.num_image_tokens = int(num_image_tokens)
        self.placeholder = placeholder
        self.volume = volume
        self.llava = llava
        self.experts = experts

    @property
    def image_token_id(self) -> int | None:
        """Id of ``image_token`` in the tokenizer (None for prompt augmentation, which has no placeholder)."""
        if self.placeholder == "none":
            return None
        return int(self.tokenizer.convert_tokens_to_ids(self.image_token))

    def _pixels(self, images: list) -> torch.Tensor:
        if self.volume is not None:
            v = self.volume
            return torch.stack([volume_tensor(x, v["depth"], v["size"], v["channels"]) for x in images])
        return self.image_processor(images=[open_image(x) for x in images], return_tensors="pt")["pixel_values"]

    def expand(self, text: str, n_images: int | None = None, images: list | None = None) -> str:
        """``text`` with every ``<image>`` marker replaced by what the model expects for one image."""
        if self.placeholder == "none":
            parts = text.split(self.image_token)
            imgs = images or []
            out = parts[0]
            for i, part in enumerate(parts[1:]):
                out += self.experts.describe(open_image(imgs[i])) + part
            return out
        per = self.image_token * (self.num_image_tokens if self.placeholder == "tokens" else 1)
        return text.replace(self.image_token, per)

    def __call__(self, text: str | list[str] | None = None, images: list | None = None,
                 return_tensors: str = "pt", **tok_kwargs: Any) -> dict:
        """Tokenize ``text`` (one string or a batch) with images expanded; ``images`` is a flat list in order of the
        markers, or one list per text. A marker count that differs from the images is an error naming the text."""
        texts = [text] if isinstance(text, str) else list(text or [])
        if images is not None and len(images) and isinstance(images[0], (list, tuple)):
            per_text = [list(x) for x in images]
        else:
            flat, per_text = list(images or []), []
            for t in texts:
                n = t.count(self.image_token)
                per_text.append(flat[:n])
                flat = flat[n:]
            if flat:
                raise ClinforgeError(f"{len(images or [])} images for {len(images or []) - len(flat)} "
                                     f"{self.image_token} markers in the text: every image needs its marker")
        for i, (t, imgs) in enumerate(zip(texts, per_text, strict=True)):
            if t.count(self.image_token) != len(imgs):
                total = sum(x.count(self.image_token) for x in texts)
                raise ClinforgeError(f"text {i}: {t.count(self.image_token)} {self.image_token} markers but "
                                     f"{len(imgs)} images (in all: {total} markers, {len(images or [])} images)")
        expanded = [self.expand(t, images=imgs) for t, imgs in zip(texts, per_text, strict=True)]
        tok_kwargs.setdefault("padding", True)
        # like LlavaProcessor: the tokenizer's own special tokens (BOS) unless the caller's chat template added them
        tok_kwargs.setdefault("add_special_tokens", True)
        out = dict(self.tokenizer(expanded, return_tensors=return_tensors, **tok_kwargs))
        all_images = [x for imgs in per_text for x in imgs]
        if all_images and self.placeholder != "none":
            out["pixel_values"] = self._pixels(all_images)
        return out

    def apply_chat_template(self, messages: list[dict], **kwargs: Any):
        """The tokenizer's chat template (``<image>`` markers stay in the text; call the processor on the result)."""
        return self.tokenizer.apply_chat_template(messages, **kwargs)

    def to_dict(self) -> dict:
        """What ``save_pretrained`` writes to ``clinforge_processor.json``."""
        return {"image_token": self.image_token, "num_image_tokens": self.num_image_tokens,
                "placeholder": self.placeholder, "volume": self.volume, "llava": self.llava}

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write tokenizer, image processor and the placeholder rule; a LLaVA model also gets LlavaProcessor's files
        so ``AutoProcessor.from_pretrained`` loads it without clinforge."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        if self.llava is not None:
            from transformers import LlavaProcessor

            LlavaProcessor(image_processor=self.image_processor, tokenizer=self.tokenizer,
                           patch_size=self.llava["patch_size"],
                           vision_feature_select_strategy=self.llava["vision_feature_select_strategy"],
                           num_additional_image_tokens=self.llava["num_additional_image_tokens"],
                           image_token=self.image_token,
                           chat_template=getattr(self.tokenizer, "chat_template", None)).save_pretrained(p)
        else:
            self.tokenizer.save_pretrained(p)
            if self.image_processor is not None:
                self.image_processor.save_pretrained(p)
        if self.experts is not None:
            self.experts.save_pretrained(p / "experts")
        (p / PROCESSOR_FILE).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> VlmProcessor:
        """Load a processor saved by ``save_pretrained`` (or a plain LLaVA folder with LlavaProcessor files)."""
        from transformers import AutoImageProcessor, AutoTokenizer

        p = Path(path)
        meta_file = p / PROCESSOR_FILE
        tok = AutoTokenizer.from_pretrained(p)
        # a LLaVA folder from elsewhere: the count comes from its processor_config.json and image size
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else _llava_processor_meta(p)
        image_processor = None
        if meta.get("volume") is None and meta.get("placeholder") != "none":
            image_processor = AutoImageProcessor.from_pretrained(p)
        experts = None
        if meta.get("placeholder") == "none":
            from clinforge.models.vlm.prompt_augment import ExpertPanel

            experts = ExpertPanel.from_pretrained(p / "experts")
        return cls(tok, image_processor, num_image_tokens=meta["num_image_tokens"],
                   placeholder=meta.get("placeholder", "tokens"), image_token=meta.get("image_token", IMAGE_TOKEN),
                   volume=meta.get("volume"), llava=meta.get("llava"), experts=experts)


def _llava_processor_meta(p: Path) -> dict:
    """Placeholder rule of a LLaVA folder saved without clinforge, from LlavaProcessor's settings and image size."""
    file = p / "processor_config.json"
    if not file.is_file():
        raise ClinforgeError(f"{p}: no {PROCESSOR_FILE} nor processor_config.json: not a multimodal model folder")
    proc = json.loads(file.read_text(encoding="utf-8"))
    proc = proc.get("processor", proc)
    # transformers 5 nests the image processor in processor_config.json; older folders have preprocessor_config.json
    pre = proc.get("image_processor")
    if pre is None and (p / "preprocessor_config.json").is_file():
        pre = json.loads((p / "preprocessor_config.json").read_text(encoding="utf-8"))
    pre = pre or {}
    crop = (pre.get("crop_size") if pre.get("do_center_crop", True) else None) or pre.get("size") or {}
    h = crop.get("height") or crop.get("shortest_edge")
    w = crop.get("width") or crop.get("shortest_edge")
    if not (h and w and proc.get("patch_size")):
        raise ClinforgeError(f"{p}: cannot work out the image token count (need patch_size and the image size in "
                             "processor_config.json)")
    n = (h // proc["patch_size"]) * (w // proc["patch_size"]) + int(proc.get("num_additional_image_tokens", 0))
    strategy = proc.get("vision_feature_select_strategy", "default")
    if strategy == "default":
        n -= 1
    return {"num_image_tokens": n, "image_token": proc.get("image_token", IMAGE_TOKEN), "placeholder": "tokens",
            "llava": {"patch_size": proc["patch_size"], "vision_feature_select_strategy": strategy,
                      "num_additional_image_tokens": int(proc.get("num_additional_image_tokens", 0))}}
