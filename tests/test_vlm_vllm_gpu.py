"""A tiny LLaVA folder that `clinforge models check` calls vLLM-native is served by vLLM (GPU machines with vllm
installed only; elsewhere the engine rules are tested in test_vlm_cli.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.skipif(not torch.cuda.is_available(), reason="vLLM serving needs a GPU")
def test_vllm_serves_a_tiny_llava_folder_like_transformers(tmp_path, data_root):
    pytest.importorskip("vllm", reason="vllm is not installed (pip install 'clinforge[vllm]')")
    from PIL import Image
    from vllm import LLM, SamplingParams

    from clinforge.models.vlm import build_vlm, save_vlm
    from clinforge.models.vlm.engine_support import check_engines

    model, proc = build_vlm({"vision": {"tiny": "clip"}, "connector": {"type": "mlp"}, "llm": {"tiny": "llama"}})
    folder = save_vlm(model, proc, tmp_path / "llava")
    assert {r["engine"]: r["ok"] for r in check_engines(folder)}["vllm"]
    image = Image.open(sorted((data_root / "vqa-rad" / "images").glob("*.jpg"))[0]).convert("RGB")
    prompt = "<image> Is there a pleural effusion?"
    batch = proc(text=prompt, images=[image])
    with torch.no_grad():
        ours = model.generate(**batch, max_new_tokens=8, do_sample=False)[0, batch["input_ids"].shape[1]:].tolist()
    llm = LLM(model=str(folder), dtype="float32", enforce_eager=True, max_model_len=512, gpu_memory_utilization=0.2)
    out = llm.generate({"prompt": prompt, "multi_modal_data": {"image": image}},
                       SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True))
    assert out[0].outputs[0].token_ids[: len(ours)] == ours
