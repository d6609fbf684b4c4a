"""Which parts of a vision-language model train: loading, per-component freezing, LoRA resolved inside the LLM only
(never the vision tower unless asked), the connector kept trainable beside LoRA (peft ``modules_to_save``), and a
table of trainable parameters per component.

A model is split into three components, ``vision``, ``connector`` and ``llm`` (``clinforge.models.vlm.vlm_components``
for clinforge's own classes; the matching attributes for transformers' LLaVA-format models). LoRA targets are the
full names of the linear layers inside the chosen components (peft matches a full name exactly), so a suffix such
as ``q_proj`` can never reach the vision tower's own ``q_proj`` by accident.

Example:
    >>> # model, processor = load_vlm_for_training("runs/tiny-vlm/base")
    >>> # model = apply_vlm_method(model, MethodSpec(type="lora"), train_connector=True)
    >>> # trainable_table(model)["connector"]  -> {'total': 2112, 'trainable': 2112, 'share': 1.0}
"""

from __future__ import annotations

from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.train.methods import enable_checkpointing, freeze_by_pattern  # also installs peft's warning filter
from clinforge.train.recipe import MethodSpec

COMPONENTS = ("vision", "connector", "llm")


def load_vlm_for_training(path: str, *, precision: str = "fp32"):
    """Load a vision-language model folder clinforge saved (own class or LLaVA format; ``load_vlm`` refuses a folder
    with missing weights) and its ``VlmProcessor`` for training, in ``precision``, with the KV cache off (a cache
    object makes transformers ignore packed ``position_ids``). Returns ``(model, processor)``.

    Example:
        >>> # model, processor = load_vlm_for_training("runs/vlm/base")
    """
    from clinforge.models.load import resolve_dtype
    from clinforge.models.vlm import load_vlm

    model, processor = load_vlm(path)
    model = model.to(resolve_dtype(precision))
    for cfg in (model.config, getattr(model.config, "text_config", None)):
        if cfg is not None:
            cfg.use_cache = False
    return model, processor


def vlm_parts(model) -> dict[str, list[Any]]:
    """The modules of each component (``vision``, ``connector``, ``llm``) of a (possibly peft-wrapped) model, from
    ``clinforge.models.vlm.vlm_components``; a prompt-augmentation model has no vision module (empty list).

    Example:
        >>> # {k: len(v) for k, v in vlm_parts(llava).items()}  -> {'vision': 1, 'connector': 1, 'llm': 1}
    """
    from clinforge.models.vlm import vlm_components

    return {k: [m] if m is not None else [] for k, m in vlm_components(model).items()}


def _component_of_params(model) -> dict[int, str]:
    """id(parameter) -> component name (connector wins over llm for modules nested in both, e.g. gated xattn)."""
    owner: dict[int, str] = {}
    parts = vlm_parts(model)
    for comp in ("llm", "vision", "connector"):  # later components override earlier: connector is most specific
        for mod in parts[comp]:
            for p in mod.parameters():
                owner[id(p)] = comp
    return owner


def trainable_table(model) -> dict[str, dict[str, Any]]:
    """Total and trainable parameters per component (and ``other`` for anything outside them, e.g. LoRA-free
    extras), plus ``all``. LoRA parameters count for the component their layer belongs to.

    Example:
        >>> # trainable_table(model)["vision"]["trainable"]  -> 0 after vlm_align
    """
    owner = _component_of_params(model)
    # LoRA wraps a base layer: its lora_A/B are new parameters, attributed through the module that holds them
    module_owner: dict[str, str] = {}
    for name, mod in model.named_modules():
        ps = list(mod.parameters(recurse=False))
        if ps and id(ps[0]) in owner:
            module_owner[name] = owner[id(ps[0])]
    table = {c: {"total": 0, "trainable": 0} for c in (*COMPONENTS, "other")}
    for name, p in model.named_parameters():
        if ".original_module." in name:
            continue  # peft's untouched copy of a modules_to_save module: merging drops it, it is not the model
        comp = owner.get(id(p))
        if comp is None:
            prefix = name
            while comp is None and "." in prefix:
                prefix = prefix.rsplit(".", 1)[0]
                comp = module_owner.get(prefix) or module_owner.get(f"{prefix}.base_layer")
        comp = comp or "other"
        table[comp]["total"] += p.numel()
        if p.requires_grad:
            table[comp]["trainable"] += p.numel()
    table["all"] = {"total": sum(v["total"] for v in table.values()),
                    "trainable": sum(v["trainable"] for v in table.values())}
    if not table["other"]["total"]:
        del table["other"]
    for v in table.values():
        v["share"] = round(v["trainable"] / v["total"], 6) if v["total"] else 0.0
    return table


def _module_names(model, comps: tuple[str, ...]) -> dict[str, str]:
    """Full module name -> component, for every module inside the components ``comps``."""
    parts = vlm_parts(model)
    ids: dict[int, str] = {}
    for comp in comps:
        for mod in parts[comp]:
            for sub in mod.modules():
                ids[id(sub)] = comp
    if "connector" not in comps:  # gated cross-attention blocks live inside the LLM but belong to the connector
        for mod in parts["connector"]:
            for sub in mod.modules():
                ids.pop(id(sub), None)
    return {name: ids[id(m)] for name, m in model.named_modules() if id(m) in ids}


def lora_targets(model, method: MethodSpec, *, vision: bool = False) -> list[str]:
    """Full names of the linear layers LoRA wraps: inside the LLM (and the vision tower when ``vision``), never
    the connector (it trains fully) nor the output head. ``method.target_modules``: ``all-linear`` or name
    suffixes; a suffix that matches nothing there is an error listing what exists.

    Example:
        >>> # lora_targets(llava, MethodSpec(type="lora", target_modules=["q_proj"]))
        >>> # -> ['model.language_model.layers.0.self_attn.q_proj', 'model.language_model.layers.1.self_attn.q_proj']
    """
    import torch

    comps = ("llm", "vision") if vision else ("llm",)
    inside = _module_names(model, comps)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    linear = [n for n, m in model.named_modules()
              if n in inside and isinstance(m, torch.nn.Linear) and m is not head]
    if method.target_modules == "all-linear":
        targets = linear
    else:
        targets = [n for n in linear if any(n == t or n.endswith("." + t) for t in method.target_modules)]
        unmatched = [t for t in method.target_modules if not any(n == t or n.endswith("." + t) for n in linear)]
        if unmatched:
            kinds = sorted({n.rsplit(".", 1)[-1] for n in linear})
            raise ConfigError(f"LoRA target_modules {unmatched} match no linear layer of the "
                              f"{' or '.join(comps)}; layers there: {', '.join(kinds)}", key="method.target_modules")
    if not targets:
        raise ConfigError(f"no linear layer in the {' or '.join(comps)} for LoRA", key="method.target_modules")
    return targets


def _module_name(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ConfigError(f"module {type(module).__name__} is not part of the model")


def apply_vlm_method(model, method: MethodSpec, *, train_connector: bool = True, train_llm: bool = True,
                     train_vision: bool = False, vision_lora: bool = False, gradient_checkpointing: bool = False):
    """Freeze / unfreeze components and apply the method; returns the model to train.

    ``full``: every parameter of the components asked for trains (``method.freeze`` globs then freeze more).
    ``lora``: LoRA on the LLM's linear layers (and the vision tower's with ``vision_lora``); the connector (and the
    vision tower with ``train_vision``) train fully and are saved with the adapter (``modules_to_save``).

    Example:
        >>> # apply_vlm_method(model, MethodSpec(type="full"), train_llm=False)   # vlm_align: the connector only
    """
    parts = vlm_parts(model)
    want = {"vision": train_vision, "connector": train_connector, "llm": train_llm}
    for p in model.parameters():
        p.requires_grad_(False)
    if method.type == "full":
        for comp, on in want.items():
            if on:
                for mod in parts[comp]:
                    for p in mod.parameters():
                        p.requires_grad_(True)
        if method.freeze:
            freeze_by_pattern(model, method.freeze)
        if gradient_checkpointing:
            enable_checkpointing(model)
        return model
    if method.type != "lora":
        raise ConfigError(f"vlm stages take method full or lora, not {method.type}", key="method.type")
    from peft import LoraConfig, get_peft_model

    targets = lora_targets(model, method, vision=vision_lora)
    # a connector that hooks its blocks into the LLM's layers (gated cross-attention) must train in place: peft's
    # modules_to_save would train a copy while the hooks keep calling the original, untrained blocks
    hooked = [m for m in parts["connector"] if hasattr(m, "attach")] if want["connector"] else []
    save = [_module_name(model, m) for comp in ("connector", "vision") if want[comp] for m in parts[comp]
            if not any(m is h for h in hooked)]
    save += list(method.modules_to_save)
    if gradient_checkpointing:
        enable_checkpointing(model)
        model.enable_input_require_grads()
    cfg = LoraConfig(r=method.r, lora_alpha=method.alpha, lora_dropout=method.dropout, target_modules=targets,
                     modules_to_save=save or None)
    model = get_peft_model(model, cfg)
    for mod in hooked:  # saved beside the adapter by clinforge.train.stages.vlm.save_adapter_verified
        for p in mod.parameters():
            p.requires_grad_(True)
    if method.freeze:
        freeze_by_pattern(model, method.freeze)
    return model

