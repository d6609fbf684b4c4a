"""Export a llama-family Hugging Face folder (or a LoRA adapter folder, merged first) to one GGUF file for llama.cpp.

``clinforge export gguf MODEL_DIR --out FILE.gguf --outtype f16|q8_0`` writes the file with the ``gguf`` package's
``GGUFWriter`` (llama.cpp's own conversion script is not on PyPI and pins an old transformers):

* tensors are named by ``gguf``'s ``TensorNameMap`` for ``MODEL_ARCH.LLAMA``; the query and key projections are
  permuted as llama.cpp's converter does (transformers stores the rotary halves side by side, llama.cpp's RoPE
  expects them interleaved per head); a tied output matrix is not written (llama.cpp then reuses the embedding);
* ``f16``: matrices in float16, norms in float32. ``q8_0``: matrices in 8-bit blocks of 32 (llama.cpp's Q8_0),
  except the output projection / tied embedding and matrices whose rows are not a multiple of 32 (float16), norms
  in float32. The Q8_0 scale of each block is by default the one with the least squared error (``q8_scale=
  "search"``, ``gguf_q8_quant``); ``"rtn"`` writes llama.cpp's own round-to-nearest bytes;
* the tokenizer: byte-level BPE (tokens, merges, control and user-defined tokens, the pre-tokenizer llama.cpp
  must use, read from ``tokenizer.json``) or a sentencepiece ``tokenizer.model``; special token ids, BOS/EOS
  flags and the chat template are embedded.

Verification (``verify_gguf``): the file is loaded back by transformers (``gguf_file=``) and, when
llama-cpp-python is installed, by llama.cpp; both must tokenise the check texts as the source tokenizer does, and
their logits are compared with the source model's on those texts: top-1 agreement and max |difference|. The file
is written beside its destination and renamed into place only after verification passed (top-1 agreement under
transformers of at least ``MIN_TOP1``: 99% for f16, 95% for q8_0; section "q8_0" of docs/edge.md), so a failed export never leaves a file a
server would load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError, OutputExistsError

OUTTYPES = ("f16", "q8_0")
Q8_SCALE_DEFAULT = "search"
# below this top-1 agreement after reload the export fails. A wrong tensor layout or tokenizer gives far less
# (near chance); float16 keeps a trained model at 100% (SmolLM2), a random tiny model with near-tied logits may lose
# a position. 8-bit blocks flip near-ties of a small model: SmolLM2-135M q8_0 agrees at 98.7% of the 159 check
# positions with the searched scales (96.9% with llama.cpp's round-to-nearest), every flip at a top-2 margin below
# 0.08 (docs/edge.md). The floor stays at 95% for q8_0: SmolLM2's gain comes from its weights lying on a 4-bit grid,
# and a model whose weights lie on no grid gains little from the search.
MIN_TOP1 = {"f16": 0.99, "q8_0": 0.95}
CHECK_TEXTS = (
    "A 54-year-old man presents with crushing substernal chest pain radiating to the left arm, diaphoresis and "
    "nausea. The first test is a 12-lead electrocardiogram, followed by serial troponin measurements.",
    "Metformin 500 mg twice daily; HbA1c 7.2% (target < 7%). Recheck renal function (eGFR) in 3 months.",
    "Patient denies fever, chills or cough.\nAssessment: community-acquired pneumonia, CURB-65 score 1.",
)
CHAT_CHECK = [{"role": "user", "content": "What is the first test for a patient with chest pain?"}]
PRE_TOKENIZERS = {  # the pre-tokenizer of tokenizer.json -> llama.cpp's name for the same split
    ("ByteLevel",): "gpt-2",
    ("Digits", "ByteLevel"): "smollm",
}


def _progress(message: str) -> None:
    from clinforge.core.progress import say

    say(message)


def _load_source(model_dir: Path):
    """(model in float32, tokenizer, description) of a model folder or a LoRA adapter folder (merged)."""
    import torch

    from clinforge.models.load import check_model_folder, load_llm

    check_model_folder(model_dir)
    model, tok = load_llm(str(model_dir), dtype=torch.float32)
    merged = False
    if (model_dir / "adapter_config.json").is_file():
        model = model.merge_and_unload()  # LoRA weights folded into the base matrices: one plain model to export
        merged = True
    model.eval()
    if model.config.model_type != "llama":
        raise ClinforgeError(f"{model_dir}: model type {model.config.model_type!r} cannot be exported yet; "
                             "clinforge export gguf writes llama-family models (model_type 'llama')")
    return model, tok, merged


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    rope_type = params.get("rope_type", "default")
    if rope_type not in ("default", "linear"):
        raise ClinforgeError(f"rope type {rope_type!r} is not supported by the GGUF export (default, linear)")
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is None:
        raise ClinforgeError("the model config has no rope_theta")
    return float(theta)


def permute_for_llama_cpp(weights: Any, n_head: int) -> Any:
    """Reorder the rows of a query/key projection from transformers' rotary layout (two halves per head) to
    llama.cpp's (interleaved pairs), as llama.cpp's ``convert_hf_to_gguf.py`` does.

    Example:
        >>> import numpy as np
        >>> permute_for_llama_cpp(np.arange(4).reshape(4, 1), 1).ravel().tolist()
        [0, 2, 1, 3]
    """
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _tensor_type(name: str, array: Any, outtype: str):
    """(gguf quantisation type, note) for one tensor under the chosen outtype."""
    from gguf import GGMLQuantizationType as Q

    if array.ndim <= 1 or name.endswith("_norm.weight"):
        return Q.F32
    # the output projection (the embedding too, when tied) writes the logits directly, so it stays float16, as
    # llama.cpp's quantizer keeps the output layer at higher precision (on SmolLM2's check positions top-1 agreement
    # was 96.9% with or without this; it costs 26 MB there)
    if outtype == "q8_0" and array.shape[-1] % 32 == 0 and name not in ("output.weight", "token_embd.weight"):
        return Q.Q8_0
    return Q.F16


def _add_hyperparameters(writer: Any, config: Any, name: str, outtype: str) -> None:
    import gguf

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(_rope_theta(config))
    params = getattr(config, "rope_parameters", None) or {}
    if params.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(params["factor"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0)


def _pre_tokenizer_name(tokenizer_json: dict[str, Any], where: Path) -> str:
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = tuple(p.get("type") for p in parts)
    if kinds in PRE_TOKENIZERS and all(p.get("use_regex", True) for p in parts if p.get("type") == "ByteLevel"):
        if kinds == ("Digits", "ByteLevel") and not parts[0].get("individual_digits"):
            raise ClinforgeError(f"{where}: pre-tokenizer Digits(individual_digits=false) has no llama.cpp name")
        return PRE_TOKENIZERS[kinds]
    raise ClinforgeError(f"{where}: the tokenizer's pre-tokenizer {kinds} has no known llama.cpp equivalent "
                         f"(supported: {', '.join('+'.join(k) for k in PRE_TOKENIZERS)}); exporting it would "
                         "tokenise differently in llama.cpp")


def _add_tokenizer(writer: Any, tok: Any, config: Any, source: Path) -> dict[str, Any]:
    """Write the vocabulary, merges, token types, special ids and chat template; returns a summary."""
    import gguf

    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ClinforgeError(f"{source}: only fast (tokenizers) tokenizers can be exported")
    tj = json.loads(backend.to_str())
    model = tj["model"]
    if model.get("type") != "BPE" or tj.get("decoder", {}).get("type") not in ("ByteLevel", None):
        if (source / "tokenizer.model").is_file():
            return _add_sentencepiece(writer, tok, config, source)
        raise ClinforgeError(f"{source}: tokenizer model {model.get('type')!r} is not byte-level BPE and the folder "
                             "has no sentencepiece tokenizer.model; it cannot be exported")
    vocab: dict[str, int] = dict(model["vocab"])
    added = {t["id"]: t for t in tj.get("added_tokens", [])}
    for tid, info in added.items():
        vocab.setdefault(info["content"], tid)
    size = max(config.vocab_size, max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, tid in vocab.items():
        tokens[tid] = text
        types[tid] = gguf.TokenType.NORMAL
    for tid, info in added.items():
        types[tid] = gguf.TokenType.CONTROL if info.get("special") else gguf.TokenType.USER_DEFINED
    merges = [" ".join(m) if isinstance(m, list) else m for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(tj, source))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    return _add_special(writer, tok, config, {"model": "gpt2", "tokens": size, "merges": len(merges)})


def _add_sentencepiece(writer: Any, tok: Any, config: Any, source: Path) -> dict[str, Any]:
    import gguf

    try:
        from sentencepiece import SentencePieceProcessor
    except ImportError as exc:
        raise ClinforgeError(f"{source}: exporting a sentencepiece tokenizer needs: pip install sentencepiece") from exc
    sp = SentencePieceProcessor(model_file=str(source / "tokenizer.model"))
    size = max(config.vocab_size, sp.vocab_size())
    tokens, scores, types = [], [], []
    for i in range(size):
        if i >= sp.vocab_size():
            tokens.append(f"[PAD{i}]")
            scores.append(-1000.0)
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(gguf.TokenType.CONTROL if sp.is_control(i) else gguf.TokenType.UNKNOWN if sp.is_unknown(i)
                     else gguf.TokenType.BYTE if sp.is_byte(i) else gguf.TokenType.UNUSED if sp.is_unused(i)
                     else gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    return _add_special(writer, tok, config, {"model": "llama", "tokens": size})


def _add_special(writer: Any, tok: Any, config: Any, summary: dict[str, Any]) -> dict[str, Any]:
    ids = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id, "unk": tok.unk_token_id}
    if ids["eos"] is None:
        ids["eos"] = getattr(config, "eos_token_id", None)
    if ids["bos"] is not None:
        writer.add_bos_token_id(int(ids["bos"]))
    if ids["eos"] is not None:
        writer.add_eos_token_id(int(ids["eos"]))
    if ids["pad"] is not None:
        writer.add_pad_token_id(int(ids["pad"]))
    if ids["unk"] is not None:
        writer.add_unk_token_id(int(ids["unk"]))
    probe = tok("a")["input_ids"]
    add_bos = ids["bos"] is not None and probe[:1] == [ids["bos"]]
    writer.add_add_bos_token(bool(add_bos))
    writer.add_add_eos_token(bool(ids["eos"] is not None and probe[-1:] == [ids["eos"]] and len(probe) > 1))
    if getattr(tok, "chat_template", None):
        writer.add_chat_template(tok.chat_template)
    summary.update({k: v for k, v in ids.items() if v is not None}, add_bos=add_bos,
                   chat_template=bool(getattr(tok, "chat_template", None)))
    return summary


def _add_tensors(writer: Any, model: Any, outtype: str, q8_scale: str) -> dict[str, int]:
    import gguf
    import numpy as np

    from clinforge.core.progress import progress_bar
    from clinforge.models.gguf_q8_quant import quantize_q8_0

    config = model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    state = model.state_dict()
    tied = bool(getattr(config, "tie_word_embeddings", False))
    counts: dict[str, int] = {}
    for hf_name in progress_bar(list(state), desc=f"writing tensors ({outtype})", unit="tensor"):
        if hf_name == "lm_head.weight" and tied:
            continue  # llama.cpp uses token_embd for the output when output.weight is absent
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ClinforgeError(f"tensor {hf_name} has no GGUF name for the llama architecture")
        data = state[hf_name].detach().float().cpu().numpy()
        if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = permute_for_llama_cpp(data, heads)
        elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = permute_for_llama_cpp(data, kv_heads)
        qtype = _tensor_type(gguf_name, data, outtype)
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(gguf_name, data.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(gguf_name, data.astype(np.float16))
        else:
            writer.add_tensor(gguf_name, quantize_q8_0(data, q8_scale, name=hf_name), raw_dtype=qtype)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
    return counts


def export_gguf(model_dir: str | os.PathLike, out: str | os.PathLike, *, outtype: str = "f16",
                overwrite: bool = False, verify: bool = True, q8_scale: str = Q8_SCALE_DEFAULT) -> dict[str, Any]:
    """Write ``model_dir`` (HF folder or LoRA adapter folder) as one GGUF file ``out``; returns the report.

    The report has the tensor types written, the tokenizer summary, the file size and sha256, and (with
    ``verify``) the reload checks of ``verify_gguf``. Refuses an existing ``out`` unless ``overwrite``.
    ``q8_scale`` (q8_0 only): ``search`` (default, least squared error per block) or ``rtn`` (llama.cpp's bytes).

    Example:
        >>> # export_gguf("runs/sft/model", "runs/sft/model-q8_0.gguf", outtype="q8_0")["verification"]
        >>> export_gguf("/no/such/folder", "/tmp/x.gguf")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ClinforgeError: /no/such/folder: model folder does not exist
    """
    import gguf

    from clinforge.core.io import atomic_path, sha256_file

    src, dest = Path(model_dir), Path(out)
    if outtype not in OUTTYPES:
        raise ClinforgeError(f"--outtype {outtype!r}: valid: {', '.join(OUTTYPES)}")
    from clinforge.models.gguf_q8_quant import Q8_SCALES

    if q8_scale not in Q8_SCALES:
        raise ClinforgeError(f"--q8-scale {q8_scale!r}: valid: {', '.join(Q8_SCALES)}")
    if dest.suffix != ".gguf":
        raise ClinforgeError(f"{dest}: the output file name must end in .gguf")
    if dest.exists() and not overwrite:
        raise OutputExistsError(f"{dest} exists; pass --overwrite to replace it")
    _progress(f"loading {src}")
    model, tok, merged = _load_source(src)
    report: dict[str, Any] = {"source": str(src), "out": str(dest), "outtype": outtype, "lora_merged": merged}
    if outtype == "q8_0":
        report["q8_scale"] = q8_scale
    with atomic_path(dest, overwrite=overwrite) as tmp:
        writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        _add_hyperparameters(writer, model.config, src.resolve().name, outtype)
        report["tokenizer"] = _add_tokenizer(writer, tok, model.config, src)
        report["tensors"] = _add_tensors(writer, model, outtype, q8_scale)
        _progress(f"writing {dest.name}")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()
        if verify:
            report["verification"] = verify_gguf(model, tok, tmp, outtype=outtype)
        report["bytes"] = tmp.stat().st_size
        report["sha256"] = sha256_file(tmp)
    _progress(f"wrote {dest} ({report['bytes'] / 1e6:.1f} MB)")
    return report


def _check_ids(tok: Any) -> list[list[int]]:
    ids = [tok(text)["input_ids"] for text in CHECK_TEXTS]
    if getattr(tok, "chat_template", None):
        chat = tok.apply_chat_template(CHAT_CHECK, add_generation_prompt=True, tokenize=True)
        ids.append(list(chat["input_ids"] if hasattr(chat, "keys") else chat))
    return [[int(i) for i in row] for row in ids]


def _compare(reference: list[Any], other: list[Any]) -> dict[str, float]:
    import numpy as np

    agree = total = 0
    worst = 0.0
    for ref, got in zip(reference, other, strict=True):
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        total += ref.shape[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return {"top1_agreement": agree / total, "max_abs_logit_diff": worst, "positions": total}


def verify_gguf(model: Any, tok: Any, gguf_file: str | os.PathLike, *, outtype: str = "f16") -> dict[str, Any]:
    """Reload ``gguf_file`` with transformers and (if installed) llama.cpp and compare with ``model``/``tok``.

    Raises ClinforgeError when a tokenizer encodes a check text differently or when transformers' top-1 agreement
    falls below ``MIN_TOP1[outtype]``. Returns per-engine ``top1_agreement``, ``max_abs_logit_diff``, ``positions``.

    Example:
        >>> # verify_gguf(model, tok, "model-f16.gguf")["transformers"]["top1_agreement"]  -> 1.0
    """
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf_file)
    ids = _check_ids(tok)
    with torch.no_grad():
        reference = [model(torch.tensor([row])).logits[0].float().numpy() for row in ids]
    result: dict[str, Any] = {}
    _progress("verifying: reloading the GGUF with transformers (gguf_file=)")
    folder, name = str(path.resolve().parent), path.name
    re_tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    for text, row in zip(CHECK_TEXTS, ids, strict=False):
        if [int(i) for i in re_tok(text)["input_ids"]] != row:
            raise ClinforgeError(f"{path}: transformers' tokenizer from the GGUF encodes the check text "
                                 f"{text[:30]!r}... differently from the source tokenizer")
    re_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    with torch.no_grad():
        hf_logits = [re_model(torch.tensor([row])).logits[0].float().numpy() for row in ids]
    del re_model
    result["transformers"] = _compare(reference, hf_logits)
    try:
        import llama_cpp
    except ImportError:
        result["llama_cpp"] = "not installed (pip install 'clinforge[edge]')"
    else:
        from clinforge.models.backends.llamacpp import warn_if_amx_build

        warn_if_amx_build(llama_cpp)
        _progress("verifying: loading the GGUF with llama.cpp")
        width = max(len(row) for row in ids) + 1
        llm = llama_cpp.Llama(str(path), n_ctx=max(64, width), logits_all=True, verbose=False, n_threads=2)
        try:
            cpp_logits = []
            for text, row in zip(CHECK_TEXTS, ids, strict=False):
                got = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
                if list(got) != row:
                    raise ClinforgeError(f"{path}: llama.cpp encodes the check text {text[:30]!r}... differently "
                                         f"from the source tokenizer ({len(got)} vs {len(row)} tokens)")
            for row in ids:
                llm.reset()
                llm.eval(row)
                cpp_logits.append(np.asarray(llm.scores[:len(row)], dtype=np.float32).copy())
        finally:
            llm.close()
        result["llama_cpp"] = _compare(reference, cpp_logits)
    floor = MIN_TOP1[outtype]
    if result["transformers"]["top1_agreement"] < floor:
        raise ClinforgeError(f"{path}: top-1 agreement after reload is {result['transformers']['top1_agreement']:.3f} "
                             f"(< {floor} required for {outtype}); the export is not faithful")
    return result
