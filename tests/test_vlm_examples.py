"""Every ``recipes/examples/tiny-vlm-*.yaml`` runs as shipped through ``clinforge train`` in a subprocess on the real
VQA-RAD images (the vit3d one on NIfTI volumes this test writes with nibabel): the steps it names, a model that
reloads with ``load_vlm``, the loss tokens and the trainable table per component in the run record. Checked by
steps and sizes, not by a wall clock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_train_examples import RECIPES, run_cli, train


def test_every_vlm_example_recipe_has_a_run_test():
    shipped = sorted(p.name for p in RECIPES.glob("tiny-vlm-*.yaml"))
    tested = sorted(name.removeprefix("test_").replace("_", "-") + ".yaml" for name in globals()
                    if name.startswith("test_tiny_vlm_"))
    assert shipped == tested
    assert {f"tiny-vlm-{n}.yaml" for n in ("linear", "mlp", "avgpool", "qformer", "gated-xattn", "prompt-augment",
                                          "vit3d")} <= set(shipped)


def check_vlm_run(out: Path, summary: dict, *, stages: list[str], family: str, collator: str) -> dict:
    """The checks every vlm example shares; returns the last stage's summary."""
    from clinforge.models.vlm import load_vlm, vlm_family

    assert [s["name"] for s in summary["stages"]] == stages
    model, proc = load_vlm(summary["model"])
    assert vlm_family(model) == family
    assert "clinician" in (Path(summary["model"]) / "README.md").read_text()
    run = json.loads((out / "run.json").read_text())
    for name in stages:
        table = run["trainable_parameters"][name]
        assert table["vision"]["trainable"] == 0  # no recipe here unfreezes the encoder or puts LoRA on it
        assert table["all"]["trainable"] > 0
        shown = [json.loads(line) for line in (out / "stages" / name / "loss_tokens.jsonl").read_text().splitlines()]
        assert shown and all(s["loss_tokens"] > 0 and s["trained_on"].endswith("<|im_end|>\n") for s in shown)
    last = summary["stages"][-1]
    assert last["hyperparameters"]["collator"] == collator
    assert last["metrics"]["images_seen"] > 0 or family == "prompt_augment"
    if "align" in stages:
        align = run["trainable_parameters"]["align"]
        assert align["llm"]["trainable"] == 0 and align["connector"]["trainable"] == align["all"]["trainable"]
    return last


def evaluate_vqa_rad(model: Path, out: Path, n: int = 8) -> dict:
    """``clinforge eval --tasks vqa_rad`` on the trained model (the first ``n`` published test questions)."""
    proc = run_cli("eval", "--model", f"hf:{model}", "--tasks", "vqa_rad", "--limit", str(n), "--out", str(out),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    task = json.loads((out / "summary.json").read_text())["tasks"]["vqa_rad"]
    assert task["n"] == n and task["n_closed"] + task["n_open"] == n and len(task["acc_ci"]) == 2
    return task


def _two_stage(tmp_path, name: str, family: str, collator: str = "VlmPackingCollator") -> dict:
    out = tmp_path / "run"
    summary = train(f"tiny-vlm-{name}.yaml", out)
    last = check_vlm_run(out, summary, stages=["align", "sft"], family=family, collator=collator)
    assert last["data_cards"][0]["reader"] == "vqa_rad" and last["data_cards"][0]["examples"] == 96
    assert last["metrics"]["final_eval_loss"] is not None and last["metrics"]["images_seen"] == 6 * 8
    shown = json.loads((out / "stages/sft/loss_tokens.jsonl").read_text().splitlines()[0])
    assert "Answer with a single word or phrase." in shown["masked_context"]  # trained on the prompt eval asks
    evaluate_vqa_rad(Path(summary["model"]), tmp_path / "eval")
    return last


@pytest.mark.slow
def test_tiny_vlm_linear(tmp_path, data_root):
    _two_stage(tmp_path, "linear", "linear")


@pytest.mark.slow
def test_tiny_vlm_mlp(tmp_path, data_root):
    from transformers import AutoModelForImageTextToText

    last = _two_stage(tmp_path, "mlp", "mlp")
    # the LLaVA format: transformers alone loads it
    assert type(AutoModelForImageTextToText.from_pretrained(tmp_path / "run/model")).__name__ == \
        "LlavaForConditionalGeneration"
    assert last["metrics"]["visual_tokens_per_image"] == 16


@pytest.mark.slow
def test_tiny_vlm_avgpool(tmp_path, data_root):
    assert _two_stage(tmp_path, "avgpool", "avgpool")["metrics"]["visual_tokens_per_image"] == 4


@pytest.mark.slow
def test_tiny_vlm_qformer(tmp_path, data_root):
    assert _two_stage(tmp_path, "qformer", "qformer")["metrics"]["visual_tokens_per_image"] == 4


@pytest.mark.slow
def test_tiny_vlm_gated_xattn(tmp_path, data_root):
    last = _two_stage(tmp_path, "gated-xattn", "gated_xattn")  # packed: cross-attention resets per example
    assert last["metrics"]["visual_tokens_per_image"] == 1  # one marker per image; the latents go to the blocks


@pytest.mark.slow
def test_tiny_vlm_prompt_augment(tmp_path, data_root):
    out = tmp_path / "run"
    summary = train("tiny-vlm-prompt-augment.yaml", out)
    last = check_vlm_run(out, summary, stages=["sft"], family="prompt_augment", collator="VlmPackingCollator")
    shown = json.loads((out / "stages/sft/loss_tokens.jsonl").read_text().splitlines()[0])
    assert "[Expert findings:" in shown["masked_context"] and "[Expert findings:" not in shown["trained_on"]
    assert last["metrics"]["images_seen"] == 0  # no pixels reach the LLM
    evaluate_vqa_rad(Path(summary["model"]), tmp_path / "eval")


def write_volumes(folder: Path, n: int = 16, seed: int = 0) -> Path:
    """NIfTI volumes (D x H x W = 12 x 24 x 24, 1.5 mm slices) with a bright blob on the left or right, and a JSON
    Lines file of vqa records asking on which side it is."""
    import nibabel

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        vol = rng.normal(0, 20, size=(24, 24, 12)).astype(np.float32)  # x, y, z (RAS voxel axes)
        side = "left" if i % 2 else "right"
        x = slice(2, 8) if side == "right" else slice(16, 22)  # RAS: +x points to the patient's left
        vol[x, 9:15, 3:9] += 400.0
        path = folder / f"vol-{i:02d}.nii.gz"
        nibabel.save(nibabel.Nifti1Image(vol, np.diag([1.0, 1.0, 1.5, 1.0])), str(path))
        lines.append(json.dumps({"id": f"vol-{i:02d}", "kind": "vqa", "question": "On which side is the lesion?",
                                 "answer": side, "images": [str(path)]}))
    (folder / "volumes.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.slow
def test_tiny_vlm_vit3d(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINFORGE_VOLUMES", str(write_volumes(tmp_path / "volumes")))
    out = tmp_path / "run"
    summary = train("tiny-vlm-vit3d.yaml", out)
    last = check_vlm_run(out, summary, stages=["align", "sft"], family="mlp", collator="VlmPackingCollator")
    assert last["data_cards"][0]["examples"] == 16 and last["metrics"]["images_seen"] == 4 * 4


def test_volumes_load_as_depth_height_width(tmp_path):
    """The pixel cache reads a NIfTI volume in canonical orientation as a contiguous D x H x W array, which the
    vit3d processor then scales to the encoder's depth and size."""
    from clinforge.models.vlm import build_vlm
    from clinforge.train.vlm_data import PixelCache

    folder = write_volumes(tmp_path, n=2)
    _, proc = build_vlm({"vision": {"tiny": "vit3d"}, "connector": {"type": "mlp"}, "llm": {"tiny": "llama"}})
    cache = PixelCache(proc)
    vol = cache._open(str(folder / "vol-01.nii.gz"))
    assert vol.shape == (12, 24, 24) and vol.flags["C_CONTIGUOUS"]
    assert vol[3:9, 9:15, 16:22].mean() > 300 > vol[3:9, 9:15, 2:8].mean()  # the left-side blob: high x (RAS)
    pixels = cache.get(str(folder / "vol-01.nii.gz"), record="vol-01")
    v = proc.volume
    assert tuple(pixels.shape) == (v["depth"], v["channels"], v["size"], v["size"])
