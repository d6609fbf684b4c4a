"""Tiny composed vision-language models saved once per test session (``clinforge.models.vlm.build_vlm`` +
``save_vlm``): the folders the vlm training tests start from."""

from __future__ import annotations

from pathlib import Path

SPECS = {
    "llava-siglip": {"vision": {"tiny": "siglip"}, "connector": {"type": "mlp", "depth": 2}, "llm": {"tiny": "llama"}},
    "llava-clip": {"vision": {"tiny": "clip"}, "connector": {"type": "mlp", "depth": 2}, "llm": {"tiny": "llama"}},
    "qformer": {"vision": {"tiny": "siglip"}, "connector": {"type": "qformer", "queries": 4}, "llm": {"tiny": "llama"}},
    "avgpool": {"vision": {"tiny": "siglip"}, "connector": {"type": "avgpool", "tokens": 4}, "llm": {"tiny": "llama"}},
    "gated-xattn": {"vision": {"tiny": "siglip"}, "connector": {"type": "gated_xattn"}, "llm": {"tiny": "llama"}},
}


def tiny_vlm(tmp_path_factory, name: str) -> Path:
    """The folder of the tiny model ``name`` (one of ``SPECS``), built once per test session; read-only."""
    from clinforge.models.vlm import build_vlm, save_vlm
    from conftest import build_once

    def build(d: Path) -> Path:
        model, proc = build_vlm(SPECS[name], seed=0)
        return save_vlm(model, proc, d, overwrite=True)

    return build_once(tmp_path_factory, f"tiny-vlm-{name}", build)
