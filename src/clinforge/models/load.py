"""Load a causal LM (local HF folder, registered offline model name, or hub id) and its tokenizer, with errors that
say what is wrong.

A name from ``clinforge.models.offline_models`` (``smollm2-135m-instruct``) means its fetched folder in the cache,
before anything tries the hub.

A local folder that does not load names the missing file (``config.json``, weights, tokenizer files); a hub id
when the hub cannot be reached (offline, ``HF_HUB_OFFLINE=1``) raises ``OfflineError`` instead of a long
traceback. A folder holding a peft adapter (``adapter_config.json``) loads its base model and the adapter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError, OfflineError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def _looks_like_hub_id(ref: str) -> bool:
    return not os.path.isabs(ref) and not ref.startswith(".") and ref.count("/") <= 1 and not Path(ref).exists()


def check_model_folder(path: str | os.PathLike, *, need_tokenizer: bool = True) -> None:
    """Raise ClinforgeError naming the first missing file of a local model folder.

    Example:
        >>> import tempfile
        >>> check_model_folder(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ClinforgeError: ...: model folder has no config.json (nor adapter_config.json)
    """
    p = Path(path)
    if not p.is_dir():
        raise ClinforgeError(f"{p}: model folder does not exist")
    if (p / "adapter_config.json").is_file():
        if not any((p / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
            raise ClinforgeError(f"{p}: adapter folder has no adapter_model.safetensors")
    else:
        if not (p / "config.json").is_file():
            raise ClinforgeError(f"{p}: model folder has no config.json (nor adapter_config.json)")
        if not any((p / f).is_file() for f in WEIGHT_FILES):
            raise ClinforgeError(f"{p}: model folder has no weights (expected one of {', '.join(WEIGHT_FILES)})")
        index = p / "model.safetensors.index.json"
        if index.is_file():
            shards = set(json.loads(index.read_text())["weight_map"].values())
            missing = sorted(s for s in shards if not (p / s).is_file())
            if missing:
                raise ClinforgeError(f"{p}: weight shard {missing[0]} listed in the index is missing")
    if need_tokenizer and not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise ClinforgeError(f"{p}: model folder has no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)})")


def resolve_dtype(dtype: str | Any | None):
    """``"bf16"``/``"bfloat16"``, ``"fp32"``/``"float32"``, ``"fp16"``, a torch dtype, or None (float32).
    ``"bf16-mixed"`` (a recipe's mixed precision: float32 weights, bf16 autocast while training) loads float32.

    Example:
        >>> resolve_dtype("bf16-mixed"), resolve_dtype("bf16")
        (torch.float32, torch.bfloat16)
    """
    import torch

    if dtype is None or dtype in ("fp32", "float32", "bf16-mixed"):
        return torch.float32
    if dtype in ("bf16", "bfloat16"):
        return torch.bfloat16
    if dtype in ("fp16", "float16"):
        return torch.float16
    if isinstance(dtype, torch.dtype):
        return dtype
    raise ClinforgeError(f"unknown dtype {dtype!r}; valid: bf16, fp32, fp16")


def load_tokenizer(path_or_hub_id: str | os.PathLike, **kwargs):
    """Load a tokenizer with the same error handling as ``load_llm``."""
    from transformers import AutoTokenizer

    from clinforge.models.offline_models import resolve_model_ref

    ref = resolve_model_ref(str(path_or_hub_id))
    try:
        tok = AutoTokenizer.from_pretrained(ref, **kwargs)
    except OSError as exc:
        _raise_load_error(ref, exc)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _raise_load_error(ref: str, exc: Exception):
    if Path(ref).exists():
        check_model_folder(ref)
        raise ClinforgeError(f"{ref}: model folder does not load: {type(exc).__name__}: {exc}") from exc
    if _looks_like_hub_id(ref):
        raise OfflineError(f"{ref!r} is not a local folder and the Hugging Face hub cannot be reached "
                           "(offline or HF_HUB_OFFLINE=1); download it first or give a local path") from exc
    raise ClinforgeError(f"{ref}: model folder does not exist") from exc


def load_llm(path_or_hub_id: str | os.PathLike, dtype: str | Any | None = None, *, tokenizer: bool = True,
             attn_implementation: str | None = None, device_map: Any = None, quantization_config: Any = None,
             **kwargs):
    """Load ``(model, tokenizer)`` of a causal LM from a local folder, an adapter folder or a hub id.

    Example:
        >>> # model, tok = load_llm("runs/tiny-llama", dtype="fp32")
        >>> load_llm("/no/such/folder")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ClinforgeError: /no/such/folder: model folder does not exist
    """
    from transformers import AutoModelForCausalLM

    from clinforge.models.offline_models import resolve_model_ref

    ref = resolve_model_ref(str(path_or_hub_id))  # a registered offline name means its fetched folder, not a hub id
    p = Path(ref)
    if p.exists():
        check_model_folder(p, need_tokenizer=tokenizer)
    elif ref.startswith(("/", "./", "../")):
        raise ClinforgeError(f"{ref}: model folder does not exist")
    torch_dtype = resolve_dtype(dtype)
    extra: dict[str, Any] = dict(kwargs)
    if attn_implementation:
        extra["attn_implementation"] = attn_implementation
    if device_map is not None:
        extra["device_map"] = device_map
    if quantization_config is not None:
        extra["quantization_config"] = quantization_config
    if p.is_dir() and (p / "adapter_config.json").is_file():
        from clinforge.core.no_egress import refuse_hub_id

        # peft loads the adapter's base model by the name it recorded, which may be a hub id
        base = json.loads((p / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if base:
            refuse_hub_id(base)
    try:
        if p.is_dir() and (p / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(ref, dtype=torch_dtype, **extra)
        else:
            try:
                model = AutoModelForCausalLM.from_pretrained(ref, dtype=torch_dtype, **extra)
            except (ValueError, ImportError) as exc:
                # models without an sdpa kernel: retry with eager rather than fail
                if "attn_implementation" in extra and "attention" in str(exc).lower():
                    extra.pop("attn_implementation")
                    model = AutoModelForCausalLM.from_pretrained(ref, dtype=torch_dtype, **extra)
                else:
                    raise
    except OSError as exc:
        _raise_load_error(ref, exc)
    tok = load_tokenizer(ref) if tokenizer else None
    return model, tok
