"""``clinforge models tiny --vision --connector`` and ``clinforge models check`` run as a user runs them
(subprocess), and a recipe's ``model:`` accepts the multimodal mapping with errors that name the file and key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinforge.cli.main import main as cli_main
from clinforge.core.errors import ConfigError


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CLINFORGE_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "clinforge", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def _tiny_args(vision: str, conn: str, out: Path) -> list[str]:
    return ["models", "tiny", "--vision", vision, "--connector", conn, "--hidden", "32", "--heads", "2",
            "--vocab", "400", "--out", str(out)]


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    out = {}
    for vision, conn in (("dinov2", "mlp"), ("siglip", "gated_xattn")):
        folder = root / f"{vision}-{conn}"
        cli_main(_tiny_args(vision, conn, folder))
        out[f"{vision}-{conn}"] = folder
    return out


def test_models_tiny_and_check_as_a_user_runs_them(tmp_path):
    folder = tmp_path / "clip-mlp"
    res = _cli(*_tiny_args("clip", "mlp", folder))
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"wrote tiny clip + mlp + llama model to {folder}" in res.stdout
    res = _cli("models", "check", str(folder), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = {r["engine"]: r for r in json.loads(res.stdout)}
    assert all(r["ok"] for r in rows.values()), rows
    assert "CLIP" in rows["vllm"]["reason"] or "clip_vision_model" in rows["vllm"]["reason"]


def test_models_check_says_which_engines_load_each_folder(tiny_folders, capsys):
    verdicts = {}
    for name, folder in tiny_folders.items():
        capsys.readouterr()
        cli_main(["models", "check", str(folder), "--json"])
        verdicts[name] = {r["engine"]: (r["ok"], r["reason"]) for r in json.loads(capsys.readouterr().out)}
    dino, gated = verdicts["dinov2-mlp"], verdicts["siglip-gated_xattn"]
    # LLaVA format, but a DINOv2 tower: vLLM's LLaVA builds only CLIP/SigLIP towers
    assert not dino["vllm"][0] and "CLIP or SigLIP towers only" in dino["vllm"][1]
    assert dino["vllm-transformers"][0] and not dino["llama.cpp"][0] and dino["clinforge"][0]
    # clinforge's own class: only clinforge
    assert [e for e, (ok, _) in gated.items() if ok] == ["clinforge"]
    assert "gated_xattn" in gated["vllm"][1]


def test_models_tiny_refuses_to_overwrite_and_lists_valid_names(tiny_folders, tmp_path, capsys):
    with pytest.raises(SystemExit) as ex:
        cli_main(_tiny_args("dinov2", "mlp", tiny_folders["dinov2-mlp"]))
    assert ex.value.code == 2 and "pass --overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ex:
        cli_main(_tiny_args("resnet", "mlp", tmp_path / "x"))
    assert ex.value.code == 2
    assert "unknown vision encoder 'resnet'; valid: clip, dinov2, dinov2_with_registers, siglip, slices, swin, " \
           "vit, vit3d" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "x").exists()


def test_models_check_on_a_folder_without_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as ex:
        cli_main(["models", "check", str(tmp_path)])
    assert ex.value.code == 2 and "model folder has no config.json" in capsys.readouterr().err


def _recipe(tmp_path: Path, model_yaml: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(f"model:\n{model_yaml}\nstages:\n  - name: a\n    type: sft\n"
                 "    data: {sources: [{reader: jsonl, path: x.jsonl}]}\n")
    return p


def test_recipe_accepts_the_multimodal_mapping(tmp_path):
    from clinforge.train.recipe import load_recipe

    recipe, _ = load_recipe(_recipe(tmp_path, "  vision: {tiny: siglip}\n  connector: {type: qformer, queries: 4}\n"
                                              "  llm: {tiny: llama}"))
    assert recipe.is_multimodal
    assert recipe.model == {"vision": {"tiny": "siglip"}, "connector": {"type": "qformer", "queries": 4},
                            "llm": {"tiny": "llama"}}
    plain, _ = load_recipe(_recipe(tmp_path, "  tiny:llama"))
    assert plain.model == "tiny:llama" and not plain.is_multimodal


def test_recipe_errors_name_the_file_line_and_key(tmp_path):
    from clinforge.train.recipe import load_recipe

    path = _recipe(tmp_path, "  vision: {tiny: siglip}\n  connector: {type: mpl}\n  llm: {tiny: llama}")
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert err.value.file == str(path) and err.value.line == 1
    assert "model.connector.type: unknown connector 'mpl'; valid: avgpool" in str(err.value)
