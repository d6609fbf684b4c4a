"""``clinforge export gguf``: a tiny Llama and the real SmolLM2 written as GGUF (f16 and q8_0), reloaded by
transformers (``gguf_file=``) and llama.cpp, with logits compared against the source model; a LoRA adapter folder
is merged before export; the command refuses to overwrite, names what it cannot export, and leaves no file
behind when it fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinforge.core.errors import ClinforgeError, OutputExistsError
from clinforge.models.gguf_export import export_gguf
from conftest import SMOLLM2, require_llama_cpp

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "CLINFORGE_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "clinforge", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.parametrize("outtype", ["f16", "q8_0"])
def test_tiny_llama_round_trips_through_transformers_and_llama_cpp(tiny_llama, tmp_path, outtype):
    require_llama_cpp()
    out = tmp_path / f"tiny-{outtype}.gguf"
    report = export_gguf(tiny_llama, out, outtype=outtype)
    assert out.is_file() and report["bytes"] == out.stat().st_size
    hf, cpp = report["verification"]["transformers"], report["verification"]["llama_cpp"]
    if outtype == "f16":
        assert hf["top1_agreement"] == 1.0 and cpp["top1_agreement"] == 1.0
        assert hf["max_abs_logit_diff"] < 5e-3 and cpp["max_abs_logit_diff"] < 5e-3
        assert set(report["tensors"]) == {"F16", "F32"}
    else:
        assert hf["top1_agreement"] >= 0.99 and cpp["top1_agreement"] >= 0.99
        assert "Q8_0" in report["tensors"]
    assert report["tokenizer"]["model"] == "gpt2" and report["tokenizer"]["chat_template"]

    # the exported file serves through the llamacpp backend: greedy output equals the hf backend's on the source
    from clinforge.models.backends import GenerationRequest, load_backend

    request = GenerationRequest(messages=[{"role": "user", "content": "chest pain and fever"}], max_new_tokens=8)
    edge = load_backend(f"llamacpp:{out}#n_ctx=256,n_threads=2")
    try:
        ours = edge.generate([request])[0]
    finally:
        edge.close()
    ref = load_backend(f"hf:{tiny_llama}", device="cpu")
    assert ours == ref.generate([request])[0]


def test_lora_adapter_is_merged_before_export(tiny_llama, tmp_path):
    require_llama_cpp()
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    torch.manual_seed(0)
    # init_lora_weights=False: B is random, so the adapter really changes the model (a fresh LoRA is a no-op)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                                                 init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]) == Path(tiny_llama)

    merged = export_gguf(adapter, tmp_path / "merged.gguf", outtype="f16")
    plain = export_gguf(tiny_llama, tmp_path / "base.gguf", outtype="f16", verify=False)
    assert merged["lora_merged"] and merged["verification"]["llama_cpp"]["top1_agreement"] >= 0.99

    import llama_cpp

    def logits(path: Path) -> np.ndarray:
        llm = llama_cpp.Llama(str(path), n_ctx=64, logits_all=True, verbose=False)
        try:
            ids = llm.tokenize(b"The patient has chest pain", add_bos=True, special=True)
            llm.eval(ids)
            return np.asarray(llm.scores[:len(ids)]).copy()
        finally:
            llm.close()

    with torch.no_grad():
        ids = AutoTokenizer.from_pretrained(tiny_llama)("The patient has chest pain")["input_ids"]
        expected = peft_model.merge_and_unload()(torch.tensor([ids])).logits[0].numpy()
    got, without = logits(tmp_path / "merged.gguf"), logits(Path(plain["out"]))
    error = np.abs(got - expected).max()
    assert error < 2e-3 * np.abs(expected).max() + 5e-3  # the merged adapter is in the file (float16 rounding)
    assert np.abs(without - expected).max() > 20 * error  # and it made a difference


def test_refusals_and_nothing_left_behind(tiny_llama, tmp_path):
    out = tmp_path / "m.gguf"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_gguf(tiny_llama, out)
    assert out.read_bytes() == b"old"
    with pytest.raises(ClinforgeError, match="outtype 'q4_k'"):
        export_gguf(tiny_llama, tmp_path / "x.gguf", outtype="q4_k")
    with pytest.raises(ClinforgeError, match="must end in .gguf"):
        export_gguf(tiny_llama, tmp_path / "x.bin")

    from clinforge.models.tiny import build_tiny

    gpt2 = build_tiny("gpt2", tmp_path / "gpt2", vocab_size=256, hidden_size=32, seed=0)
    proc = _cli("export", "gguf", str(gpt2), "--out", str(tmp_path / "g.gguf"))
    assert proc.returncode == 2 and "model type 'gpt2' cannot be exported yet" in proc.stderr, proc.stderr
    assert not (tmp_path / "g.gguf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".g.gguf")]  # no temporary left either


@pytest.mark.real_model
@pytest.mark.slow
def test_real_smollm2_q8_0_export(smollm2_cache, tmp_path):
    """SmolLM2-135M-Instruct (de-quantised from its Q4_1 GGUF into an HF folder by `models fetch`) -> q8_0 GGUF with
    the default error-minimising scales -> reloaded by transformers and llama.cpp and compared with the source model
    on the check texts and a chat prompt (159 positions). Measured 2026-12-03: transformers 98.7% (157/159; llama.cpp's
    round-to-nearest scales gave 96.9%), llama.cpp 96.2% (llama.cpp also rounds activations to 8 bits; the source
    Q4_1 GGUF itself agrees at 97.2% there on real text). On 3,918 held-out positions of real text transformers
    agrees at 99.5% (docs/edge.md); here the bound is set below the 159-position figure, above RTN's."""
    require_llama_cpp()
    proc = _cli("export", "gguf", str(smollm2_cache / "models" / SMOLLM2), "--out", str(tmp_path / "smol.gguf"),
                "--outtype", "q8_0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["tensors"]["Q8_0"] >= 200 and report["q8_scale"] == "search"
    verification = report["verification"]
    assert verification["transformers"]["top1_agreement"] >= 0.98, verification  # rtn: 0.969 (154/159)
    assert verification["llama_cpp"]["top1_agreement"] >= 0.95, verification
    # measured 0.85 (transformers; rtn 1.34) and 2.47 (llama.cpp; rtn 3.11); f16 gives 0.04 / 0.09
    for engine in ("transformers", "llama_cpp"):
        assert verification[engine]["max_abs_logit_diff"] < 5.0, verification
    print(json.dumps(verification))


def _sentencepiece_llama(folder: Path) -> Path:
    """A tiny random Llama whose tokenizer is a sentencepiece BPE (byte fallback, like Llama 2's) trained here on a
    few clinical lines: the ``tokenizer.model`` export path."""
    import io

    import torch
    from transformers import AutoModelForCausalLM, LlamaTokenizer

    from clinforge.models.gguf_export import CHECK_TEXTS
    from clinforge.models.tiny import tiny_config

    try:
        import sentencepiece as spm
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI is set but sentencepiece is missing (pip install 'clinforge[edge]')")
        pytest.skip("sentencepiece is not installed (pip install 'clinforge[edge]')")
    lines = [*CHECK_TEXTS, "The patient was given aspirin and discharged home.",
             "Chest pain, fever, cough and dyspnoea; no history of stroke."] * 4
    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model_file, vocab_size=420,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1,
                                   eos_id=2, pad_id=-1, hard_vocab_limit=False, minloglevel=2)
    folder.mkdir()
    (folder / "tokenizer.model").write_bytes(model_file.getvalue())
    tok = LlamaTokenizer.from_pretrained(str(folder))  # converted from tokenizer.model by transformers
    tok.save_pretrained(folder)
    config = tiny_config("llama", len(tok), hidden_size=64, num_layers=2, num_heads=4, max_positions=512,
                         pad_token_id=0, eos_token_id=2)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def test_sentencepiece_llama_round_trips_through_transformers_and_llama_cpp(tmp_path):
    require_llama_cpp()
    source = _sentencepiece_llama(tmp_path / "spm-llama")
    out = tmp_path / "spm-f16.gguf"
    report = export_gguf(source, out, outtype="f16")
    assert report["tokenizer"]["model"] == "llama" and report["tokenizer"]["tokens"] == 420
    for engine in ("transformers", "llama_cpp"):  # verification also required identical tokenisation of the checks
        assert report["verification"][engine]["top1_agreement"] == 1.0, report["verification"]
        assert report["verification"][engine]["max_abs_logit_diff"] < 5e-3, report["verification"]

    # unseen characters go through the byte-fallback pieces in llama.cpp exactly as in the source tokenizer
    import llama_cpp
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    llm = llama_cpp.Llama(str(out), n_ctx=64, vocab_only=True, verbose=False)
    for text in ("Dose: 5 µg/kg — recheck in 2 h ≥ 3 times", "Ödem, Übelkeit; 体温 38.5 °C"):
        expected = tok(text)["input_ids"]
        assert list(llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)) == expected, text
        assert any(tok.convert_ids_to_tokens(expected)[i].startswith("<0x") for i in range(len(expected)))
