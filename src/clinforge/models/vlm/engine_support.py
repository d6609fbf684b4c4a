"""``clinforge models check DIR``: which inference engines can load a saved multimodal (or text) model, and why.

Rules (from the engines' loaders, December 2026):

- vLLM native: ``LlavaForConditionalGeneration`` whose vision tower is CLIP or SigLIP (vLLM's LLaVA builds only those
  towers) and whose text model is an architecture vLLM implements;
- vLLM transformers backend (``model_impl="transformers"``): any model class that transformers itself defines and
  that supports its attention interface; clinforge's own class is registered only inside clinforge, so vLLM cannot
  import it;
- llama.cpp: the language model as GGUF plus a projector file (mmproj), which exists for LLaVA-style CLIP/SigLIP
  towers with a GELU two-layer MLP only;
- clinforge: every folder ``load_vlm`` (or ``load_llm``) reloads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from clinforge.core.errors import ClinforgeError

VLLM_TOWERS = ("clip_vision_model", "siglip_vision_model")
VLLM_TEXT = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "gpt2", "granite", "olmo2")
LLAMACPP_TEXT = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "gpt2", "granite", "olmo2")


def _row(engine: str, ok: bool, reason: str) -> dict:
    return {"engine": engine, "ok": ok, "reason": reason}


def check_engines(path: str | os.PathLike, *, load: bool = True) -> list[dict]:
    """One row per engine: ``{"engine", "ok", "reason"}``; ``load`` also reloads the folder with clinforge.

    Example:
        >>> import tempfile
        >>> from clinforge.models.vlm import build_vlm, save_vlm
        >>> m, p = build_vlm({"vision": {"tiny": "clip"}, "connector": {"type": "mlp"}, "llm": {"tiny": "llama"}})
        >>> rows = check_engines(save_vlm(m, p, tempfile.mkdtemp() + "/m"))
        >>> [(r["engine"], r["ok"]) for r in rows]
        [('vllm', True), ('vllm-transformers', True), ('llama.cpp', True), ('clinforge', True)]
    """
    p = Path(path)
    if not (p / "config.json").is_file():
        raise ClinforgeError(f"{p}: model folder has no config.json")
    cfg = json.loads((p / "config.json").read_text(encoding="utf-8"))
    mt = cfg.get("model_type")
    if mt == "llava":
        rows = _llava_rows(cfg)
    elif mt == "clinforge_vlm":
        conn = (cfg.get("connector") or {}).get("type")
        why = (f"clinforge's own composed class (connector {conn!r}, encoder "
               f"{(cfg.get('vision_meta') or {}).get('family', 'none')}): not a transformers or vLLM architecture")
        rows = [_row("vllm", False, why), _row("vllm-transformers", False, why + "; vLLM cannot import the class"),
                _row("llama.cpp", False, "no GGUF projector type for this connector; llama.cpp takes LLaVA-style "
                                         "GELU MLP projectors on CLIP/SigLIP towers only")]
    else:
        rows = [_row("vllm", mt in VLLM_TEXT, f"text model {mt!r}"
                     + (" is a vLLM architecture" if mt in VLLM_TEXT else " is not in clinforge's list of vLLM "
                        "architectures")),
                _row("vllm-transformers", True, "a transformers text model"),
                _row("llama.cpp", mt in LLAMACPP_TEXT, f"`clinforge export gguf` for {mt!r}"
                     + ("" if mt in LLAMACPP_TEXT else ": architecture not supported by llama.cpp's converter"))]
    rows.append(_clinforge_row(p, mt) if load else _row("clinforge", True, "not loaded (--no-load)"))
    return rows


def _llava_rows(cfg: dict) -> list[dict]:
    vision = (cfg.get("vision_config") or {}).get("model_type", "clip_vision_model")
    text = (cfg.get("text_config") or {}).get("model_type", "llama")
    act = cfg.get("projector_hidden_act", "gelu")
    layer = cfg.get("vision_feature_layer", -2)
    rows = []
    if vision not in VLLM_TOWERS:
        rows.append(_row("vllm", False, f"vLLM's LLaVA builds CLIP or SigLIP towers only; this tower is {vision!r}"))
    elif text not in VLLM_TEXT:
        rows.append(_row("vllm", False, f"text model {text!r} is not in clinforge's list of vLLM architectures"))
    else:
        rows.append(_row("vllm", True, f"LlavaForConditionalGeneration with a {vision} tower and a {text} text "
                                       "model: vLLM native"))
    rows.append(_row("vllm-transformers", True, "LlavaForConditionalGeneration is a transformers class with its "
                                                "attention interface (vLLM model_impl='transformers')"))
    if vision not in VLLM_TOWERS:
        rows.append(_row("llama.cpp", False, f"no mmproj conversion for a {vision!r} tower (CLIP/SigLIP only)"))
    elif act != "gelu":
        rows.append(_row("llama.cpp", False, f"projector activation {act!r}: llama.cpp's LLaVA projector is GELU"))
    elif not isinstance(layer, int):
        rows.append(_row("llama.cpp", False, "several vision feature layers: llama.cpp's LLaVA projector takes one"))
    elif text not in LLAMACPP_TEXT:
        rows.append(_row("llama.cpp", False, f"text model {text!r} not supported by llama.cpp's converter"))
    else:
        rows.append(_row("llama.cpp", True, f"language model GGUF (`clinforge export gguf`) plus a projector file "
                                            f"(convert_hf_to_gguf.py --mmproj): {vision} tower, GELU MLP"))
    return rows


def _clinforge_row(p: Path, mt: str | None) -> dict:
    try:
        if mt in ("llava", "clinforge_vlm"):
            from clinforge.models.vlm.llava_format import load_vlm

            load_vlm(p)
        else:
            from clinforge.models.load import load_llm

            load_llm(p)
    except ClinforgeError as exc:
        return _row("clinforge", False, str(exc))
    return _row("clinforge", True, "reloads with clinforge (hf: backend)")
