"""Training methods: full fine-tuning, LoRA and QLoRA (peft + bitsandbytes), and freezing by module pattern.

Example:
    >>> # model, tok = load_for_training("tiny", MethodSpec(type="lora", r=4))
    >>> # trainable_parameters(model)  -> {'trainable': ..., 'total': ..., 'share': ...}
"""

from __future__ import annotations

import fnmatch
from typing import Any

from clinforge.core.errors import ClinforgeError, ConfigError
from clinforge.train.recipe import MethodSpec

# (transformers' checkpointing-alias FutureWarning, which peft and TRL trigger: clinforge.core.third_party_warnings)


def freeze_by_pattern(model, patterns: list[str]) -> list[str]:
    """Set ``requires_grad=False`` on parameters whose name matches any glob pattern; returns the names frozen.

    A pattern that matches nothing is an error (a typo would otherwise train what the user meant to freeze).

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
        >>> freeze_by_pattern(m, ["0.*"])
        ['0.weight', '0.bias']
    """
    frozen = []
    for pat in patterns:
        hit = False
        for name, p in model.named_parameters():
            if fnmatch.fnmatchcase(name, pat):
                p.requires_grad_(False)
                frozen.append(name)
                hit = True
        if not hit:
            some = ", ".join(n for n, _ in list(model.named_parameters())[:5])
            raise ConfigError(f"freeze pattern {pat!r} matches no parameter (names look like: {some}, ...)",
                              key="method.freeze")
    return frozen


def trainable_parameters(model) -> dict[str, Any]:
    """Counts of trainable and total parameters."""
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": train, "total": total, "share": round(train / total, 6) if total else 0.0}


def lora_config(method: MethodSpec, task_type: str = "CAUSAL_LM"):
    """A ``peft.LoraConfig`` from the recipe's method section."""
    from peft import LoraConfig

    return LoraConfig(r=method.r, lora_alpha=method.alpha, lora_dropout=method.dropout,
                      target_modules=method.target_modules, modules_to_save=method.modules_to_save or None,
                      task_type=task_type)


def enable_checkpointing(model) -> None:
    """Turn on activation (gradient) checkpointing, non-reentrant, under the method name the installed
    transformers uses (``activation_checkpointing_enable`` since 5.x; the old name warns FutureWarning)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def apply_method(model, method: MethodSpec, *, gradient_checkpointing: bool = False, task_type: str = "CAUSAL_LM"):
    """Apply freezing and LoRA/QLoRA adapters to a loaded model; returns the model to train.

    A model that already carries a peft adapter (a previous LoRA stage kept unmerged) continues training that
    adapter when the method is lora/qlora, and is merged first when the method is full.
    """
    from peft import PeftModel, prepare_model_for_kbit_training

    if isinstance(model, PeftModel):
        if method.type == "full":
            model = model.merge_and_unload()
        else:
            for n, p in model.named_parameters():
                p.requires_grad_("lora_" in n)
            return model
    if method.type == "full":
        if method.freeze:
            freeze_by_pattern(model, method.freeze)
        if gradient_checkpointing:
            enable_checkpointing(model)
        return model
    from peft import get_peft_model

    if method.type == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        enable_checkpointing(model)
        model.enable_input_require_grads()
    try:
        model = get_peft_model(model, lora_config(method, task_type))
    except ValueError as exc:
        raise ConfigError(f"LoRA target_modules do not fit this model: {exc}", key="method.target_modules") from exc
    if method.freeze:
        freeze_by_pattern(model, method.freeze)
    return model


def qlora_quantization_config(precision: str):
    """4-bit NF4 config for QLoRA; raises ClinforgeError when no CUDA device or no bitsandbytes is present."""
    import torch

    if not torch.cuda.is_available():
        raise ClinforgeError("method qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); none is available here. "
                             "Use method: lora on CPU.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ClinforgeError("method qlora needs bitsandbytes: pip install 'clinforge[qlora]'") from exc
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16 if precision.startswith("bf16") else torch.float32)


def load_for_training(path: str, method: MethodSpec, *, precision: str = "fp32", attn_implementation: str | None = None,
                      gradient_checkpointing: bool = False, model_class=None, task_type: str = "CAUSAL_LM",
                      **kwargs):
    """Load the model at ``path`` and its tokenizer, with ``method`` applied. Returns ``(model, tokenizer)``.

    ``model_class`` (e.g. ``AutoModelForSequenceClassification`` for a reward model) replaces the causal LM.
    """
    from clinforge.models.load import load_llm, load_tokenizer, resolve_dtype

    quant = qlora_quantization_config(precision) if method.type == "qlora" else None
    if model_class is None:
        model, tok = load_llm(path, precision, attn_implementation=attn_implementation, quantization_config=quant,
                              **kwargs)
    else:
        from pathlib import Path

        from clinforge.models.load import check_model_folder

        if Path(path).exists():  # name the missing file rather than transformers' traceback
            check_model_folder(path)
        extra = {"quantization_config": quant} if quant is not None else {}
        model = model_class.from_pretrained(path, dtype=resolve_dtype(precision), **extra, **kwargs)
        tok = load_tokenizer(path)
    # No KV cache in training: besides wasting memory, a cache object makes transformers ignore packed
    # position_ids when building the attention mask, so packed examples would attend to each other.
    model.config.use_cache = False
    if getattr(model.config, "pad_token_id", None) is None and tok.pad_token_id is not None:
        model.config.pad_token_id = tok.pad_token_id
    model = apply_method(model, method, gradient_checkpointing=gradient_checkpointing, task_type=task_type)
    return model, tok
