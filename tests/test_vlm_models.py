"""Composed multimodal models: every connector family builds, trains a step on a real VQA-RAD image, saves, and
reloads in a fresh process with identical logits; LLaVA folders reload with plain transformers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from clinforge.core.errors import ClinforgeError, ConfigError
from clinforge.models.vlm import build_vlm, check_placeholders, load_vlm, save_vlm, vlm_components, vlm_family

# (name, spec): every connector family, and every encoder at least once
FAMILIES = {
    "linear-vit": ({"tiny": "vit"}, {"type": "linear"}),
    "mlp-clip-llava": ({"tiny": "clip"}, {"type": "mlp", "depth": 2}),
    "mlp-siglip-llava": ({"tiny": "siglip"}, {"type": "mlp"}),
    "mlp3-dinov2": ({"tiny": "dinov2"}, {"type": "mlp", "depth": 3, "activation": "relu"}),
    "avgpool-dinov2reg": ({"tiny": "dinov2_with_registers"}, {"type": "avgpool", "tokens": 4}),
    "qformer-swin": ({"tiny": "swin"}, {"type": "qformer", "queries": 4, "layers": 1}),
    "perceiver-siglip": ({"tiny": "siglip"}, {"type": "perceiver", "queries": 6, "layers": 1}),
    "gated_xattn-clip": ({"tiny": "clip"}, {"type": "gated_xattn", "every": 1, "queries": 4}),
    "prompt_augment": (None, {"type": "prompt_augment"}),
    "perceiver-vit3d": ({"tiny": "vit3d"}, {"type": "perceiver", "queries": 4, "layers": 1}),
    "mlp-slices": ({"tiny": "slices", "slice_encoder": "vit", "depth_pool": "max"}, {"type": "mlp"}),
}
LLAVA = {"mlp-clip-llava", "mlp-siglip-llava"}
PROMPT = "<image> Is there a pleural effusion? Answer: no"


def _spec(name: str) -> dict:
    vision, conn = FAMILIES[name]
    spec = {"connector": conn, "llm": {"tiny": "llama", "hidden_size": 32, "num_heads": 2}}
    if vision is not None:
        spec["vision"] = vision
    return spec


@pytest.fixture(scope="module")
def vqa_image(data_root) -> Path:
    images = sorted((data_root / "vqa-rad" / "images").glob("*.jpg"))
    assert images, "VQA-RAD images missing"
    return images[0]


def _inputs(proc, image: Path) -> dict:
    if proc.volume is not None:  # a CT-like volume from the real image: its grey slice stacked with shifted copies
        import numpy as np
        from PIL import Image

        grey = torch.from_numpy(np.asarray(Image.open(image).convert("L").resize((48, 48)), dtype=np.float32))
        vol = torch.stack([grey.roll(i, 0) for i in range(6)])
        return proc(text=PROMPT, images=[vol.numpy()])
    return proc(text=PROMPT, images=[str(image)])


@pytest.fixture(scope="module")
def saved(tmp_path_factory, vqa_image) -> dict:
    """Every family built (seed 0), trained one SGD step on the real image, saved; plus its logits."""
    root = tmp_path_factory.mktemp("vlms")
    out = {}
    for name in FAMILIES:
        model, proc = build_vlm(_spec(name), seed=0)
        batch = _inputs(proc, vqa_image)
        labels = batch["input_ids"].clone()
        if proc.image_token_id is not None:
            labels[labels == proc.image_token_id] = -100
        model.train()
        loss = model(**batch, labels=labels).loss
        loss.backward()
        comps = vlm_components(model)
        trained = comps["llm"] if name == "prompt_augment" else comps["connector"]
        grads = [p.grad for p in trained.parameters() if p.grad is not None]
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p -= 0.5 * p.grad
        model.eval()
        with torch.no_grad():
            logits = model(**batch).logits
        folder = save_vlm(model, proc, root / name)
        torch.save({"logits": logits, "batch": batch}, root / f"{name}.pt")
        out[name] = {"folder": folder, "loss": loss.item(), "grad_norm": float(sum(g.norm() for g in grads)),
                     "model": model, "proc": proc, "logits": logits}
    return out


def test_every_family_trains_a_step(saved):
    for name, r in saved.items():
        assert torch.isfinite(torch.tensor(r["loss"])) and r["loss"] > 0, name
        assert r["grad_norm"] > 0, f"{name}: no gradient reached the trained component"


def test_every_family_reloads_in_a_fresh_process_with_identical_logits(saved, tmp_path):
    # one fresh interpreter for all folders: own-class folders need only `import clinforge.models.vlm` (which
    # registers the class) and then plain transformers Auto calls
    script = textwrap.dedent("""
        import json, sys, torch
        import clinforge.models.vlm  # registers clinforge_vlm with the Auto classes
        from transformers import AutoModelForImageTextToText
        res = {}
        for name, folder, ref in json.loads(sys.argv[1]):
            model = AutoModelForImageTextToText.from_pretrained(folder).eval()
            saved = torch.load(ref)
            with torch.no_grad():
                logits = model(**saved["batch"]).logits
            res[name] = [type(model).__name__, bool(torch.equal(logits, saved["logits"]))]
        print(json.dumps(res))
    """)
    jobs = [[n, str(r["folder"]), str(Path(r["folder"]).parent / f"{n}.pt")] for n, r in saved.items()]
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(jobs)], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in FAMILIES:
        cls, equal = res[name]
        assert equal, f"{name}: logits differ after reload in a fresh process"
        assert cls == ("LlavaForConditionalGeneration" if name in LLAVA else "ClinforgeVlmForConditionalGeneration")


def test_llava_folders_load_with_plain_transformers_and_auto_processor(saved, vqa_image):
    # no clinforge import at all: AutoProcessor must expand <image> to the same ids, the model give the same logits
    script = textwrap.dedent("""
        import json, sys, torch
        from PIL import Image
        from transformers import AutoModelForImageTextToText, AutoProcessor
        folder, ref, image, prompt = sys.argv[1:5]
        model = AutoModelForImageTextToText.from_pretrained(folder).eval()
        proc = AutoProcessor.from_pretrained(folder)
        batch = proc(text=prompt, images=[Image.open(image)], return_tensors="pt")
        saved = torch.load(ref)
        with torch.no_grad():
            logits = model(**batch).logits
        print(json.dumps([type(proc).__name__, bool(torch.equal(batch["input_ids"], saved["batch"]["input_ids"])),
                          bool(torch.equal(logits, saved["logits"]))]))
        assert "clinforge" not in sys.modules
    """)
    for name in sorted(LLAVA):
        folder = saved[name]["folder"]
        proc = subprocess.run([sys.executable, "-c", script, str(folder), str(Path(folder).parent / f"{name}.pt"),
                               str(vqa_image), PROMPT], capture_output=True, text=True, timeout=300,
                              env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(Path.home())})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["LlavaProcessor", True, True], name


def test_components_and_family(saved):
    for name, r in saved.items():
        comps = vlm_components(r["model"])
        assert set(comps) == {"vision", "connector", "llm"}
        assert vlm_family(r["model"]) == FAMILIES[name][1]["type"]
        llm_ids = {id(p) for p in comps["llm"].parameters()}
        assert not llm_ids & {id(p) for p in comps["connector"].parameters()}, name
        assert not llm_ids & {id(p) for p in comps["vision"].parameters()}, name


def test_placeholder_counts(saved):
    counts = {n: r["proc"].num_image_tokens for n, r in saved.items()}
    # 32x32 images, 8x8 patches: 16 patch tokens; CLIP/ViT/DINOv2 drop the CLS, registers are dropped too
    assert counts["mlp-clip-llava"] == counts["mlp-siglip-llava"] == counts["linear-vit"] == 16
    assert counts["avgpool-dinov2reg"] == 4 and counts["qformer-swin"] == 4 and counts["perceiver-siglip"] == 6
    assert counts["gated_xattn-clip"] == 1  # one marker per image
    assert counts["mlp-slices"] == 16 and counts["perceiver-vit3d"] == 4


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_gated_xattn_equals_the_bare_llm_at_init(vqa_image, arch):
    from transformers import AutoModelForCausalLM

    spec = _spec("gated_xattn-clip")
    spec["llm"]["tiny"] = arch
    model, proc = build_vlm(spec, seed=3)
    batch = proc(text=["Findings: <image> effusion?", "<image> a <image> b"],
                 images=[str(vqa_image), str(vqa_image), str(vqa_image)])
    bare = AutoModelForCausalLM.from_config(model.config.text_config).eval()
    bare.load_state_dict(model.language_model.state_dict())
    with torch.no_grad():
        ours = model(**batch).logits
        ref = bare(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(ours, ref)
    for block in model.connector.blocks:  # open the gates: now the image must change the logits
        block.attn_gate.data.fill_(1.0)
    with torch.no_grad():
        assert not torch.equal(model(**batch).logits, ref)


def test_gated_xattn_cached_generation_matches_full_forward(vqa_image):
    model, proc = build_vlm(_spec("gated_xattn-clip"), seed=1)
    for block in model.connector.blocks:
        block.attn_gate.data.fill_(1.0)
    batch = proc(text=PROMPT, images=[str(vqa_image)])
    seq = model.generate(**batch, max_new_tokens=6, do_sample=False)[0]
    n = batch["input_ids"].shape[1]
    with torch.no_grad():
        full = model(input_ids=seq[None], attention_mask=torch.ones_like(seq[None]),
                     pixel_values=batch["pixel_values"]).logits[0]
    assert torch.equal(full[n - 1:-1].argmax(-1), seq[n:])


def test_placeholder_mismatch_is_a_config_error_naming_the_fields():
    model, proc = build_vlm(_spec("mlp-clip-llava"))
    proc.num_image_tokens = 17  # e.g. a processor that keeps the CLS token while the model drops it
    with pytest.raises(ConfigError, match=r"puts 17 <image> tokens per image but the model produces 16 .*"
                                          r"vision_feature_select_strategy"):
        check_placeholders(model, proc)


def test_marker_count_that_does_not_match_the_images_is_an_error(vqa_image):
    _, proc = build_vlm(_spec("linear-vit"))
    with pytest.raises(ClinforgeError, match="text 1: 2 <image> markers but 1 images"):
        proc(text=["<image> a", "<image> <image> b"], images=[[str(vqa_image)], [str(vqa_image)]])
    with pytest.raises(ClinforgeError, match="image file does not exist"):
        proc(text="<image> a", images=["/no/such.jpg"])


def test_bad_specs_list_the_valid_names():
    with pytest.raises(ConfigError, match="unknown vision encoder 'clp'; valid: clip, dinov2"):
        build_vlm({"vision": {"tiny": "clp"}, "llm": {"tiny": "llama"}})
    with pytest.raises(ConfigError, match="unknown connector 'mpl'; valid: avgpool, gated_xattn, linear, mlp"):
        build_vlm({"vision": {"tiny": "clip"}, "connector": {"type": "mpl"}, "llm": {"tiny": "llama"}})
    with pytest.raises(ConfigError, match="unknown option 'querys' of connector 'qformer'.*did you mean 'queries'"):
        build_vlm({"vision": {"tiny": "clip"}, "connector": {"type": "qformer", "querys": 4},
                   "llm": {"tiny": "llama"}})
    with pytest.raises(ConfigError, match="tokens=99 must be between 1 and the encoder's 16 visual tokens"):
        build_vlm({"vision": {"tiny": "clip"}, "connector": {"type": "avgpool", "tokens": 99},
                   "llm": {"tiny": "llama"}})


def test_too_large_for_the_device_gives_the_estimate_and_suggests_lora():
    from clinforge.models.vlm import check_device_memory

    model, _ = build_vlm(_spec("linear-vit"))
    n = sum(p.numel() for p in model.parameters())
    assert check_device_memory(model, trainable=0, device_bytes=10 * n * 4) == n * 4
    with pytest.raises(ClinforgeError, match=r"needs about .* GiB .* LoRA .* freeze"):
        check_device_memory(model, device_bytes=n * 4 * 2)


def test_save_refuses_a_folder_that_reloads_as_another_model(saved, tmp_path):
    # the trap: a folder whose config makes transformers build a different class; verify_saved must refuse it
    from clinforge.models.vlm.llava_format import verify_saved

    own = saved["linear-vit"]
    with pytest.raises(ClinforgeError, match="reloads as LlavaForConditionalGeneration, not ClinforgeVlm"):
        verify_saved(own["model"], own["proc"], saved["mlp-clip-llava"]["folder"])
    # weights the folder lacks (transformers would initialise them randomly with only a warning) are an error
    import shutil

    folder = tmp_path / "partial"
    shutil.copytree(saved["mlp-clip-llava"]["folder"], folder)
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    dropped = {k: v for k, v in weights.items() if "multi_modal_projector" not in k}
    save_file(dropped, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ClinforgeError, match="weights are missing and would be random"):
        load_vlm(folder)


def test_save_does_not_overwrite_without_permission(saved):
    from clinforge.core.errors import OutputExistsError

    r = saved["linear-vit"]
    with pytest.raises(OutputExistsError):
        save_vlm(r["model"], r["proc"], r["folder"])


@pytest.mark.parametrize("module", ["connectors", "vision_encoders", "vlm_processor", "vlm_build", "llava_format",
                                    "prompt_augment", "engine_support", "composed_model"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"clinforge.models.vlm.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0, module


def test_pretrained_encoder_and_llm_folders_are_copied_exactly(tmp_path, tiny_llama, vqa_image):
    # real folders (not {tiny: ...}): the composed model must hold their weights bit for bit
    from transformers import AutoModelForCausalLM, CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(7)
    enc = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=64, image_size=32, patch_size=8))
    enc.save_pretrained(tmp_path / "clip")
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "clip")
    lm = AutoModelForCausalLM.from_pretrained(tiny_llama)
    for conn, cls in (({"type": "mlp"}, "LlavaForConditionalGeneration"),
                      ({"type": "perceiver", "queries": 4}, "ClinforgeVlmForConditionalGeneration")):
        model, proc = build_vlm({"vision": str(tmp_path / "clip"), "connector": conn, "llm": str(tiny_llama)})
        assert type(model).__name__ == cls
        comps = vlm_components(model)
        tower = comps["vision"] if cls.startswith("Llava") else comps["vision"].model
        for k, v in enc.state_dict().items():
            assert torch.equal(tower.state_dict()[k], v), k
        emb = model.get_input_embeddings().weight
        old = lm.get_input_embeddings().weight
        assert emb.shape[0] == old.shape[0] + 1  # <image> added to the vocabulary
        assert torch.equal(emb[: old.shape[0]], old)
        # text without images: the composed model is exactly the pretrained LLM
        ids = proc.tokenizer("Blood pressure 120/80, no chest pain.", return_tensors="pt")["input_ids"]
        with torch.no_grad():
            assert torch.equal(model(input_ids=ids).logits[..., : old.shape[0]], lm(input_ids=ids).logits)
        out = save_vlm(model, proc, tmp_path / f"saved-{conn['type']}")
        assert load_vlm(out)[1].num_image_tokens == proc.num_image_tokens


def test_connector_from_a_saved_model_and_size_mismatch_explained(saved):
    src = saved["perceiver-siglip"]
    model, _ = build_vlm({**_spec("perceiver-siglip"), "connector": {**FAMILIES["perceiver-siglip"][1],
                                                                     "from": str(src["folder"])}}, seed=5)
    for k, v in vlm_components(src["model"])["connector"].state_dict().items():
        assert torch.equal(vlm_components(model)["connector"].state_dict()[k], v), k
    wider = _spec("perceiver-siglip")
    wider["llm"]["hidden_size"] = 48
    wider["connector"] = {**FAMILIES["perceiver-siglip"][1], "from": str(src["folder"])}
    with pytest.raises(ConfigError, match=r"maps encoder width 32 -> LLM width 32, this model needs 32 -> 48"):
        build_vlm(wider)
    with pytest.raises(ConfigError, match=r"heads=5 does not divide the LLM's hidden size 32; heads that fit"):
        build_vlm({**_spec("gated_xattn-clip"), "connector": {"type": "gated_xattn", "heads": 5}})


def test_the_gemma3_trap_is_refused(saved, tmp_path):
    # a Gemma3-style config around a Llama text model: plain transformers builds Gemma3 and re-initialises the
    # weights it cannot place, with only a warning; clinforge refuses the folder
    import shutil

    from transformers import AutoModelForImageTextToText

    folder = tmp_path / "gemma3-style"
    shutil.copytree(saved["mlp-siglip-llava"]["folder"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(model_type="gemma3", architectures=["Gemma3ForConditionalGeneration"], mm_tokens_per_image=16)
    (folder / "config.json").write_text(json.dumps(cfg))
    trapped, info = AutoModelForImageTextToText.from_pretrained(folder, output_loading_info=True)
    assert type(trapped).__name__ == "Gemma3ForConditionalGeneration" and info["missing_keys"]
    with pytest.raises(ClinforgeError, match="weights are missing and would be random"):
        load_vlm(folder)


def test_a_llava_folder_saved_without_clinforge_loads_with_its_placeholder_rule(tmp_path, vqa_image):
    # written by plain transformers (LlavaProcessor nests the image processor in processor_config.json)
    from _tinyllava import build_tiny_llava

    folder = build_tiny_llava(tmp_path / "llava")
    model, proc = load_vlm(folder)
    assert proc.num_image_tokens == 16 and proc.llava["vision_feature_select_strategy"] == "default"
    batch = proc(text="<image> q", images=[str(vqa_image)])
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
    cfg = json.loads((folder / "processor_config.json").read_text())
    cfg["num_additional_image_tokens"] = 0  # now the processor would put 15 tokens for 16 features
    (folder / "processor_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="puts 15 <image> tokens per image but the model produces 16"):
        load_vlm(folder)
