"""Compose a multimodal model from a recipe's ``model:`` mapping: ``build_vlm(spec) -> (model, VlmProcessor)``.

``spec = {vision: {tiny: siglip} | PATH | {path: .., feature_layer: .., strategy: ..}, connector: {type: mlp, ...},
llm: NAME | PATH | {tiny: llama}, image_size: 32, image_token: "<image>"}``. When transformers' LLaVA class holds the
combination exactly (``clinforge.models.vlm.llava_format.llava_exact``) the model *is* a
``LlavaForConditionalGeneration``; otherwise clinforge's registered ``ClinforgeVlmForConditionalGeneration``.
Before returning, the placeholder count of the processor is checked against the visual features the model really
produces, and the model's memory estimate against the device.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clinforge.core.errors import ClinforgeError, ConfigError, did_you_mean
from clinforge.models.vlm.connectors import CONNECTORS
from clinforge.models.vlm.vision_encoders import VISION_ENCODERS, build_vision_encoder, is_volume
from clinforge.models.vlm.vlm_processor import IMAGE_TOKEN, VlmProcessor

SPEC_KEYS = ("vision", "connector", "llm", "image_size", "image_token")
TINY_LLMS = ("llama", "mistral", "qwen2", "gpt2")


def parse_vlm_spec(obj: Any, where: str | None = None) -> dict:
    """Validate a recipe's ``model:`` mapping and return it normalised; errors name the file and the key.

    Example:
        >>> parse_vlm_spec({"vision": {"tiny": "clip"}, "llm": {"tiny": "llama"}})["connector"]
        {'type': 'mlp', 'depth': 2}
        >>> parse_vlm_spec({"vision": {"tiny": "clip"}, "llm": "x", "conector": {}}, "r.yaml")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: r.yaml: model.conector: unknown key; valid: vision, connector, llm, image_size, image_token (did you mean 'connector'?)
    """
    if not isinstance(obj, dict):
        raise ConfigError(f"expected a mapping {{vision, connector, llm}}, got {type(obj).__name__}", file=where,
                          key="model")
    for k in obj:
        if k not in SPEC_KEYS:
            raise ConfigError(f"unknown key; valid: {', '.join(SPEC_KEYS)}{did_you_mean(k, SPEC_KEYS)}", file=where,
                              key=f"model.{k}")
    out = dict(obj)
    conn = out.get("connector") or {"type": "mlp", "depth": 2}
    if isinstance(conn, str):
        conn = {"type": conn}
    if not isinstance(conn, dict) or "type" not in conn:
        raise ConfigError("needs a mapping with `type`", file=where, key="model.connector")
    if conn["type"] not in CONNECTORS:
        raise ConfigError(f"unknown connector {conn['type']!r}; valid: {', '.join(CONNECTORS.names())}", file=where,
                          key="model.connector.type")
    if conn["type"] == "mlp":
        conn = {"type": "mlp", "depth": 2, **conn}
    out["connector"] = conn
    if "llm" not in out:
        raise ConfigError("missing: NAME | PATH | {tiny: llama}", file=where, key="model.llm")
    llm = out["llm"]
    if isinstance(llm, dict):
        if set(llm) - {"tiny", "hidden_size", "num_layers", "num_heads", "vocab_size"} or "tiny" not in llm:
            raise ConfigError("expected {tiny: ARCH} (optional hidden_size, num_layers, num_heads, vocab_size)",
                              file=where, key="model.llm")
        if llm["tiny"] not in TINY_LLMS:
            raise ConfigError(f"unknown tiny LLM {llm['tiny']!r}; valid: {', '.join(TINY_LLMS)}", file=where,
                              key="model.llm.tiny")
    elif not isinstance(llm, str):
        raise ConfigError("expected NAME | PATH | {tiny: ARCH}", file=where, key="model.llm")
    if conn["type"] == "prompt_augment":
        out.setdefault("vision", None)
    else:
        vision = out.get("vision")
        if vision is None:
            raise ConfigError("missing: {tiny: NAME} | PATH", file=where, key="model.vision")
        if isinstance(vision, dict) and "tiny" in vision and vision["tiny"] not in VISION_ENCODERS:
            raise ConfigError(f"unknown vision encoder {vision['tiny']!r}; valid: {', '.join(VISION_ENCODERS.names())}",
                              file=where, key="model.vision.tiny")
        if isinstance(vision, str):
            out["vision"] = os.path.expandvars(vision)
    return out


@functools.lru_cache(maxsize=4)
def _tiny_tokenizer(vocab_size: int):
    from clinforge.models.tiny import train_tokenizer

    return train_tokenizer(vocab_size=vocab_size)


def add_image_token(tok, image_token: str = IMAGE_TOKEN) -> int:
    """Add ``image_token`` to ``tok`` as a special token (never split, never normalised); returns its id."""
    from tokenizers import AddedToken

    if image_token not in tok.get_vocab():
        tok.add_tokens([AddedToken(image_token, special=True, normalized=False)], special_tokens=True)
    return int(tok.convert_tokens_to_ids(image_token))


def _load_llm(llm: Any, image_token: str) -> tuple[Any, Any, Any]:
    """``(text_config, tokenizer, pretrained_lm_or_None)`` with ``image_token`` added to the vocabulary."""
    from clinforge.models.tiny import tiny_config

    if isinstance(llm, dict):
        tok = copy.deepcopy(_tiny_tokenizer(int(llm.get("vocab_size", 512))))
        add_image_token(tok, image_token)
        cfg = tiny_config(llm["tiny"], len(tok), hidden_size=int(llm.get("hidden_size", 64)),
                          num_layers=int(llm.get("num_layers", 2)), num_heads=int(llm.get("num_heads", 4)),
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        return cfg, tok, None
    from clinforge.models.load import load_llm

    check_memory_before_load(llm)
    lm, tok = load_llm(llm)
    add_image_token(tok, image_token)
    if len(tok) > lm.get_input_embeddings().weight.shape[0]:
        lm.resize_token_embeddings(len(tok))  # new rows start at the mean embedding (transformers' default)
    return lm.config, tok, lm


def _image_processor(family: str, meta: dict, path: Any):
    from transformers import AutoImageProcessor, CLIPImageProcessorPil, SiglipImageProcessorPil, ViTImageProcessorPil

    if path is not None and (Path(path) / "preprocessor_config.json").is_file():
        return AutoImageProcessor.from_pretrained(path)
    s = meta["image_size"]
    if family == "clip":
        return CLIPImageProcessorPil(size={"shortest_edge": s}, crop_size={"height": s, "width": s})
    if family == "siglip":
        return SiglipImageProcessorPil(size={"height": s, "width": s})
    return ViTImageProcessorPil(size={"height": s, "width": s})


def build_vlm(spec: dict, *, seed: int = 0, where: str | None = None, check_device: bool = True):
    """Compose ``vision + connector + llm`` from ``spec``; returns ``(model, VlmProcessor)``.

    Example:
        >>> model, proc = build_vlm({"vision": {"tiny": "clip"}, "connector": {"type": "mlp", "depth": 2},
        ...                          "llm": {"tiny": "llama"}})
        >>> type(model).__name__, proc.num_image_tokens
        ('LlavaForConditionalGeneration', 16)
    """
    from clinforge.models.vlm.composed_model import ClinforgeVlmConfig, ClinforgeVlmForConditionalGeneration
    from clinforge.models.vlm.llava_format import build_llava, llava_exact

    spec = parse_vlm_spec(spec, where)
    conn = dict(spec["connector"])
    init_from = conn.pop("from", None)  # a saved model whose trained connector this one starts from
    image_token = str(spec.get("image_token", IMAGE_TOKEN))
    torch.manual_seed(seed)  # also fixes the embedding rows that resizing adds for <image>
    tcfg, tok, lm = _load_llm(spec["llm"], image_token)
    token_id = add_image_token(tok, image_token)
    if conn["type"] == "prompt_augment":
        from clinforge.models.vlm.prompt_augment import ExpertPanel

        torch.manual_seed(seed)
        cfg = ClinforgeVlmConfig(text_config=tcfg.to_dict(), connector=conn, image_token_id=None, num_image_tokens=0)
        model = ClinforgeVlmForConditionalGeneration(cfg)
        if lm is not None:
            model.language_model.load_state_dict(lm.state_dict())
        panel = ExpertPanel.from_spec(conn, image_size=int(spec.get("image_size", 32)), seed=seed)
        proc = VlmProcessor(tok, None, num_image_tokens=0, placeholder="none", image_token=image_token, experts=panel)
        return model, proc
    vcfg, meta, vmodel = build_vision_encoder(spec["vision"], image_size=spec.get("image_size"))
    vpath = spec["vision"] if isinstance(spec["vision"], str) else (spec["vision"] or {}).get("path")
    torch.manual_seed(seed)
    if llava_exact(meta, conn):
        model, llava_meta = build_llava(vcfg, tcfg, meta, conn, token_id, vision_model=vmodel, lm=lm)
        proc = VlmProcessor(tok, _image_processor(meta["family"], meta, vpath), num_image_tokens=meta["num_tokens"],
                            image_token=image_token, llava=llava_meta)
    else:
        cfg = ClinforgeVlmConfig(vision_config=vcfg.to_dict(), text_config=tcfg.to_dict(), vision_meta=meta,
                                 connector=conn, image_token_id=token_id)
        model = ClinforgeVlmForConditionalGeneration(cfg)
        if lm is not None:
            model.language_model.load_state_dict(lm.state_dict())
        if vmodel is not None:
            model.vision.model.load_state_dict(vmodel.state_dict())
        model.config.num_image_tokens = int(model.connector.num_output_tokens)
        placeholder = model.placeholder
        volume = None
        if is_volume(meta):
            volume = {"depth": meta["depth"], "size": meta["image_size"], "channels": meta["num_channels"]}
        proc = VlmProcessor(tok, None if volume else _image_processor(meta.get("slice_family", meta["family"]), meta,
                                                                      vpath),
                            num_image_tokens=model.config.num_image_tokens if placeholder == "tokens" else 1,
                            placeholder=placeholder, image_token=image_token, volume=volume)
    if init_from is not None:
        copy_connector(model, init_from)
    model.eval()
    check_placeholders(model, proc)
    if check_device:
        check_device_memory(model, trainable=0)  # the weights must fit; stages check again with what they train
    return model, proc


def copy_connector(model: nn.Module, folder: str | os.PathLike) -> None:
    """Load the trained connector of a saved model (``connector: {from: FOLDER}``, e.g. a projector aligned in an
    earlier run) into ``model``; sizes that differ are explained in terms of encoder and LLM widths."""
    from clinforge.models.vlm.llava_format import load_vlm

    src_model, _ = load_vlm(os.path.expandvars(str(folder)))
    src, dst = vlm_components(src_model)["connector"], vlm_components(model)["connector"]
    if type(src) is not type(dst):
        raise ConfigError(f"{folder} has a {type(src).__name__} connector, this model a {type(dst).__name__}",
                          key="model.connector.from")
    theirs, ours = src.state_dict(), dst.state_dict()
    for k, v in ours.items():
        if k not in theirs or theirs[k].shape != v.shape:
            raise ConfigError(
                f"{folder}: its connector maps encoder width {_width(src_model, 'vision')} -> LLM width "
                f"{_width(src_model, 'llm')}, this model needs {_width(model, 'vision')} -> {_width(model, 'llm')} "
                f"({k}: {tuple(theirs[k].shape) if k in theirs else 'missing'} vs {tuple(v.shape)}); a connector "
                "only transfers between the same encoder and LLM sizes", key="model.connector.from")
    dst.load_state_dict(theirs)


def _width(model: nn.Module, part: str) -> int | str:
    cfg = model.config
    sub = cfg.text_config if part == "llm" else getattr(cfg, "vision_config", None)
    return getattr(sub, "hidden_size", "?") if sub is not None else "?"


def visual_token_count(model: nn.Module, processor: VlmProcessor) -> int:
    """Visual features per image the model really produces, measured with one blank input of the processor's shape."""
    if processor.volume is not None:
        v = processor.volume
        pixels = torch.zeros(1, v["depth"], v["channels"], v["size"], v["size"])
    else:
        from PIL import Image

        pixels = processor._pixels([Image.new("RGB", (64, 64))])
    pixels = pixels.to(next(model.parameters()).device, next(model.parameters()).dtype)
    with torch.no_grad():
        if hasattr(model, "image_features"):
            return int(model.image_features(pixels).shape[1])
        feats = model.model.get_image_features(pixel_values=pixels).pooler_output  # LLaVA
        return int(feats[0].shape[0])


def check_placeholders(model: nn.Module, processor: VlmProcessor) -> None:
    """Raise ConfigError unless the processor's placeholders per image equal the model's visual features.

    Run before any training: a mismatch would otherwise surface mid-run (LLaVA) or silently shift tokens.
    """
    placeholder = getattr(model, "placeholder", "tokens")
    if placeholder != "tokens":
        return
    n_model = visual_token_count(model, processor)
    if n_model != processor.num_image_tokens:
        cfg = model.config
        fields = {k: getattr(cfg, k, None) for k in ("vision_feature_layer", "vision_feature_select_strategy",
                                                     "image_seq_length", "num_image_tokens", "vision_meta",
                                                     "connector") if getattr(cfg, k, None) is not None}
        raise ConfigError(f"the processor puts {processor.num_image_tokens} {processor.image_token} tokens per image "
                          f"but the model produces {n_model} visual features per image (CLS/register tokens, feature "
                          f"strategy, pooling or query count differ); processor: {processor.to_dict()}; "
                          f"model: {fields}", key="model")


def vlm_components(model: nn.Module) -> dict[str, nn.Module]:
    """``{"vision", "connector", "llm"}`` modules of a composed or LLaVA model (LoRA targeting, parameter tables).

    Example:
        >>> model, _ = build_vlm({"vision": {"tiny": "vit"}, "connector": {"type": "linear"}, "llm": {"tiny": "llama"}})
        >>> sorted(vlm_components(model))
        ['connector', 'llm', 'vision']
    """
    if hasattr(model, "get_base_model"):  # peft wrapper
        model = model.get_base_model()
    if hasattr(model, "language_model") and hasattr(model, "connector"):
        return {"vision": model.vision, "connector": model.connector, "llm": model.language_model}
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "multi_modal_projector"):
        # LLaVA splits the LM into model.language_model and lm_head; both are "llm"
        llm = nn.ModuleDict({"language_model": inner.language_model, "lm_head": model.lm_head})
        return {"vision": inner.vision_tower, "connector": inner.multi_modal_projector, "llm": llm}
    raise ClinforgeError(f"{type(model).__name__} is not a composed multimodal model")


def vlm_family(model: nn.Module) -> str:
    """The connector type of a composed model (``mlp`` for a LLaVA model)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    conn = getattr(model.config, "connector", None)
    if isinstance(conn, dict):
        return str(conn["type"])
    if getattr(model.config, "model_type", "") == "llava":
        return "mlp"
    raise ClinforgeError(f"{type(model).__name__} is not a composed multimodal model")


def _device_bytes() -> tuple[int, str]:
    if torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(0).total_memory), "GPU 0"
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "CPU RAM"


def memory_estimate(n_params: int, n_trainable: int, bytes_per_param: int = 4) -> int:
    """Bytes to train: weights, plus gradients and two AdamW moments (fp32) for every trainable parameter.

    Example:
        >>> memory_estimate(1000, 100)
        5200
    """
    return n_params * bytes_per_param + n_trainable * (4 + 8)


def check_device_memory(model: nn.Module, *, trainable: int | None = None, device_bytes: int | None = None) -> int:
    """Raise ClinforgeError with the estimate when full training of ``model`` cannot fit; returns the estimate."""
    n = sum(p.numel() for p in model.parameters())
    t = n if trainable is None else trainable
    need = memory_estimate(n, t, next(model.parameters()).element_size())
    have, name = (device_bytes, "the device") if device_bytes else _device_bytes()
    if need > have:
        gib = 1024 ** 3
        raise ClinforgeError(f"the model has {n / 1e6:.1f}M parameters; training {t / 1e6:.1f}M of them needs about "
                             f"{need / gib:.1f} GiB (weights + gradients + AdamW state) but {name} has "
                             f"{have / gib:.1f} GiB: train with LoRA (vlm_sft with lora) or freeze the LLM and the "
                             "encoder (vlm_align), or use bf16")
    return need


def check_memory_before_load(ref: str) -> None:
    """Refuse to load an LLM whose weights alone exceed the device (counted on the meta device, nothing loaded)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from clinforge.models.offline_models import resolve_model_ref

    path = resolve_model_ref(ref)
    if not Path(path).is_dir():
        return  # load_llm gives the precise error
    with torch.device("meta"):
        shell = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    n = sum(p.numel() for p in shell.parameters())
    have, name = _device_bytes()
    if n * 4 > have:
        raise ClinforgeError(f"{ref}: {n / 1e9:.2f}B parameters need about {n * 4 / 1024 ** 3:.1f} GiB in fp32 but "
                             f"{name} has {have / 1024 ** 3:.1f} GiB: use a smaller LLM, bf16, or LoRA on a larger "
                             "device")


def build_tiny_vlm(vision: str | None, connector: str | dict = "mlp", out_dir: str | os.PathLike = "tiny-vlm", *,
                   llm: str = "llama", hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
                   vocab_size: int = 512, seed: int = 0, overwrite: bool = False) -> Path:
    """Build a random tiny ``vision`` + ``connector`` + ``llm`` model and save it (verified) to ``out_dir``.

    Example:
        >>> import tempfile
        >>> d = build_tiny_vlm("siglip", "avgpool", tempfile.mkdtemp() + "/m")
        >>> load_vlm_type = __import__("json").loads((d / "config.json").read_text())["model_type"]
        >>> load_vlm_type
        'clinforge_vlm'
    """
    from clinforge.core.errors import OutputExistsError
    from clinforge.models.vlm.llava_format import save_vlm

    if Path(out_dir).exists() and not overwrite:
        raise OutputExistsError(f"{out_dir} exists; pass --overwrite to replace it")
    conn = {"type": connector} if isinstance(connector, str) else dict(connector)
    spec = {"vision": {"tiny": vision}, "connector": conn,
            "llm": {"tiny": llm, "hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
                    "vocab_size": vocab_size}}
    if conn["type"] == "prompt_augment":
        del spec["vision"]
    elif vision is None:
        raise ConfigError(f"connector {conn['type']!r} needs a vision encoder (--vision); valid: "
                          f"{', '.join(VISION_ENCODERS.names())}")
    model, proc = build_vlm(spec, seed=seed)
    return save_vlm(model, proc, out_dir, overwrite=overwrite)
