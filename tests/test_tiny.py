"""Tiny offline models: every architecture builds, loads with the Auto classes, chats and generates; model folders
that do not load say which file is missing; an unreachable hub id raises OfflineError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from clinforge.cli.main import main as cli_main
from clinforge.core.errors import ClinforgeError
from clinforge.models.load import load_llm
from clinforge.models.tiny import ARCHS, build_tiny, train_tokenizer


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_builds_loads_and_generates(tmp_path, arch):
    out = build_tiny(arch, tmp_path / arch, vocab_size=400, hidden_size=32, seed=1)
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == arch
    assert model.config.vocab_size == len(tok)
    enc = tok.apply_chat_template([{"role": "user", "content": "Chest pain?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    gen = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] == enc["input_ids"].shape[1] + 4 or tok.eos_token_id in gen[0].tolist()


def test_same_seed_same_weights_and_chat_template(tmp_path):
    a = build_tiny("qwen2", tmp_path / "a", vocab_size=300, hidden_size=32, seed=5)
    b = build_tiny("qwen2", tmp_path / "b", vocab_size=300, hidden_size=32, seed=5)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    text = AutoTokenizer.from_pretrained(a).apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"


def test_tokenizer_learns_from_given_corpus(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("pheochromocytoma pheochromocytoma pheochromocytoma\n" * 50)
    tok = train_tokenizer(corpus, vocab_size=400)
    assert len(tok("pheochromocytoma")["input_ids"]) == 1
    with pytest.raises(ClinforgeError, match="does not exist"):
        train_tokenizer(tmp_path / "missing.txt")


def test_unknown_arch_lists_valid(tmp_path):
    with pytest.raises(ClinforgeError, match="valid: llama, mistral, qwen2, gpt2, mamba, rwkv"):
        build_tiny("t5", tmp_path / "x")


def test_cli_models_tiny_and_refuses_existing(tmp_path, capsys):
    out = tmp_path / "cli"
    cli_main(["models", "tiny", "--arch", "gpt2", "--out", str(out), "--hidden", "32", "--vocab", "300"])
    assert (out / "config.json").is_file()
    with pytest.raises(SystemExit) as ex:
        cli_main(["models", "tiny", "--arch", "gpt2", "--out", str(out)])
    assert ex.value.code == 2
    assert "--overwrite" in capsys.readouterr().err


def test_load_llm_names_missing_files(tmp_path, tiny_llama):
    import shutil

    model, tok = load_llm(tiny_llama, "fp32")
    assert tok.chat_template
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ClinforgeError, match="no weights"):
        load_llm(broken)
    (broken / "config.json").unlink()
    with pytest.raises(ClinforgeError, match="no config.json"):
        load_llm(broken)
    notok = tmp_path / "notok"
    shutil.copytree(tiny_llama, notok)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (notok / f).unlink()
    with pytest.raises(ClinforgeError, match="no tokenizer files"):
        load_llm(notok)


def test_hub_id_offline_raises_offline_error():
    code = ("from clinforge.models.load import load_llm\n"
            "from clinforge.core.errors import OfflineError\n"
            "try:\n    load_llm('some-org/some-model')\nexcept OfflineError as e:\n    print('OFFLINE', e)\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1",
               PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "OFFLINE 'some-org/some-model' is not a local folder" in out.stdout, out.stderr[-2000:]


def test_build_tiny_never_replaces_a_folder_unless_asked(tmp_path):
    from clinforge.core.errors import OutputExistsError

    out = build_tiny("gpt2", tmp_path / "m", vocab_size=300, hidden_size=32, seed=1)
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        build_tiny("gpt2", out, vocab_size=300, hidden_size=32, seed=2)
    assert (out / "model.safetensors").read_bytes() == before
    build_tiny("gpt2", out, vocab_size=300, hidden_size=32, seed=2, overwrite=True)
    assert (out / "model.safetensors").read_bytes() != before
