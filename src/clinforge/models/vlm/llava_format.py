"""LLaVA format where it is exact, clinforge's registered class elsewhere; ``save_vlm`` / ``load_vlm`` with a
reload-and-compare check.

transformers' ``LlavaForConditionalGeneration`` holds a composed model exactly only when its projector is
``linear -> activation -> linear`` (our ``mlp`` with ``depth: 2`` and bias) and its feature strategies match the
encoder: ``vision_feature_layer`` indexes ``hidden_states`` (entry 0 = embeddings), ``"default"`` drops exactly one
leading token (CLS), ``"full"`` keeps all. So CLIP, ViT and DINOv2 (one CLS) and SigLIP (none, ``full``) qualify;
DINOv2 with registers (CLS + registers), Swin, volumes and every other connector do not.

``save_vlm`` writes into a temporary folder, reloads it with the Auto classes, and refuses to publish it unless the
reloaded model has the same class, the same tensors and the same logits on a probe input: transformers silently
re-initialises weights it cannot place (e.g. a Gemma3-style config around a Llama text model) with only a warning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clinforge.core.errors import ClinforgeError
from clinforge.models.vlm.vision_encoders import VISION_ENCODERS
from clinforge.models.vlm.vlm_processor import VlmProcessor


def llava_exact(meta: dict, connector: dict) -> bool:
    """Whether LLaVA's class reproduces this encoder + connector exactly.

    Example:
        >>> llava_exact({"family": "clip", "strategy": "default", "prefix_tokens": 1, "feature_layer": -2},
        ...             {"type": "mlp", "depth": 2})
        True
        >>> llava_exact({"family": "clip", "strategy": "default", "prefix_tokens": 1, "feature_layer": -2},
        ...             {"type": "mlp", "depth": 3})
        False
    """
    fam = VISION_ENCODERS.get(meta["family"])
    if not fam.llava_exact or connector.get("type") != "mlp":
        return False
    if int(connector.get("depth", 2)) != 2 or not connector.get("bias", True):
        return False
    drops_one = meta["strategy"] == "default" and meta["prefix_tokens"] == 1
    keeps_all = meta["strategy"] == "full"
    return isinstance(meta["feature_layer"], int) and (drops_one or keeps_all)


def build_llava(vcfg, tcfg, meta: dict, connector: dict, image_token_id: int, *, vision_model: nn.Module | None,
                lm: nn.Module | None) -> tuple[nn.Module, dict]:
    """A ``LlavaForConditionalGeneration`` for the encoder and LLM (pretrained weights copied in when given) and the
    ``LlavaProcessor`` settings that give the same placeholder count."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    cfg = LlavaConfig(vision_config=vcfg.to_dict(), text_config=tcfg.to_dict(), image_token_index=image_token_id,
                      projector_hidden_act=connector.get("activation", "gelu"),
                      vision_feature_select_strategy=meta["strategy"], vision_feature_layer=meta["feature_layer"],
                      image_seq_length=meta["num_tokens"], multimodal_projector_bias=True)
    model = LlavaForConditionalGeneration(cfg)
    if vision_model is not None:
        model.model.vision_tower.load_state_dict(vision_model.state_dict())
    if lm is not None:
        model.model.language_model.load_state_dict(lm.get_decoder().state_dict())
        model.lm_head.load_state_dict(lm.get_output_embeddings().state_dict())
    llava = {"patch_size": meta["patch_size"], "vision_feature_select_strategy": meta["strategy"],
             "num_additional_image_tokens": meta["prefix_tokens"]}
    return model, llava


def probe_inputs(processor: VlmProcessor, device: Any = "cpu") -> dict:
    """A small fixed batch (one image or volume when the model takes them) for comparing two models."""
    import numpy as np
    from PIL import Image

    text = "<image> probe: chest radiograph, any effusion?".replace("<image>", processor.image_token)
    if processor.volume is not None:
        rng = np.random.default_rng(0)
        images: list = [rng.random((processor.volume["depth"], 16, 16))]
    else:
        images = [Image.fromarray((np.arange(48 * 48 * 3) % 251).astype("uint8").reshape(48, 48, 3))]
    batch = processor(text=text, images=images)
    return {k: v.to(device) for k, v in batch.items()}


def _logits(model: nn.Module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits.float()


def load_vlm(path: str | os.PathLike):
    """Load ``(model, VlmProcessor)`` from a folder clinforge saved (LLaVA or its own registered class).

    Weights that the folder does not hold (transformers would initialise them randomly with a warning) are an error.

    Example:
        >>> load_vlm("/no/such/folder")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ClinforgeError: /no/such/folder: model folder has no config.json
    """
    from transformers import AutoModelForImageTextToText

    import clinforge.models.vlm.composed_model  # noqa: F401  (registers the own class with the Auto classes)

    p = Path(path)
    if not (p / "config.json").is_file():
        raise ClinforgeError(f"{p}: model folder has no config.json")
    model_type = json.loads((p / "config.json").read_text()).get("model_type")
    try:
        model, info = AutoModelForImageTextToText.from_pretrained(p, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise ClinforgeError(f"{p}: multimodal model ({model_type}) does not load: {exc}") from exc
    missing = list(info.get("missing_keys", []))
    if missing:
        raise ClinforgeError(f"{p}: {len(missing)} weights are missing and would be random (e.g. {missing[0]}); "
                             f"the folder does not hold a complete {model_type} model")
    model.eval()
    processor = VlmProcessor.from_pretrained(p)
    from clinforge.models.vlm.vlm_build import check_placeholders

    check_placeholders(model, processor)  # folders saved elsewhere may disagree with their own processor
    return model, processor


def save_vlm(model: nn.Module, processor: VlmProcessor, path: str | os.PathLike, *, overwrite: bool = False,
             verify: bool = True) -> Path:
    """Save model and processor to ``path`` atomically, after a reload-and-compare check in a temporary folder.

    The check reloads with the Auto classes and requires the same class, every tensor equal, and equal logits on a
    probe input; otherwise nothing is written and the error says what differs.

    Example:
        >>> import tempfile
        >>> from clinforge.models.vlm import build_vlm
        >>> m, p = build_vlm({"vision": {"tiny": "siglip"}, "connector": {"type": "mlp"}, "llm": {"tiny": "llama"}})
        >>> out = save_vlm(m, p, tempfile.mkdtemp() + "/vlm")
        >>> load_vlm(out)[0].config.model_type
        'llava'
    """
    from clinforge.core.io import atomic_path

    model = model.get_base_model() if hasattr(model, "get_base_model") and hasattr(model, "peft_config") else model
    with atomic_path(path, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        if verify:
            verify_saved(model, processor, tmp)
    return Path(path)


def verify_saved(model: nn.Module, processor: VlmProcessor, folder: str | os.PathLike) -> None:
    """Raise ClinforgeError unless ``folder`` reloads as the same class with equal tensors and logits."""
    reloaded, proc2 = load_vlm(folder)
    if type(reloaded) is not type(model):
        raise ClinforgeError(f"{folder}: reloads as {type(reloaded).__name__}, not {type(model).__name__}; refusing "
                             "to save a folder that transformers would load as a different model")
    ours = {k: v for k, v in model.state_dict().items()}
    theirs = reloaded.state_dict()
    for k, v in ours.items():
        if k not in theirs:
            raise ClinforgeError(f"{folder}: weight {k} is not in the reloaded model")
        if not torch.equal(v.detach().cpu(), theirs[k].detach().cpu()):
            raise ClinforgeError(f"{folder}: weight {k} differs after reload (re-initialised?)")
    device = next(model.parameters()).device
    reloaded.to(device)
    batch = probe_inputs(processor, device)
    if batch != {} and not torch.equal(batch["input_ids"], probe_inputs(proc2, device)["input_ids"]):
        raise ClinforgeError(f"{folder}: the reloaded processor tokenizes differently")
    was_training = model.training
    model.eval()
    try:
        a, b = _logits(model, batch), _logits(reloaded, batch)
    finally:
        model.train(was_training)
    if not torch.equal(a, b):
        raise ClinforgeError(f"{folder}: logits differ after reload (max abs diff {(a - b).abs().max().item():.3g})")
