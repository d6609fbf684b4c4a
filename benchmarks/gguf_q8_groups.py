"""q8_0 rounding of SmolLM2: top-1 agreement with the fp32 source under each Q8_0 scale choice (``rtn``:
llama.cpp's round-to-nearest, ``search``: clinforge's error-minimising scale, the export default), and which matrices'
rounding flips the next token (one group of matrices kept at f16, the rest q8_0). The tied token embedding / output
stays f16, as ``clinforge export gguf --outtype q8_0`` writes it.

The rounding is applied in memory with ``clinforge.models.gguf_q8_quant`` (``rtn`` is byte-identical to llama.cpp's
own Q8_0 quantizer, docs/edge.md): the weights become exactly the ``scale * int8`` values that transformers computes
with after reading the exported file back (``gguf_file=``), so no file is written. Texts: the first 256 tokens of
the first ``--texts`` MedQuAD answers longer than 400 characters from ``--subset`` (default ``6_NINDS_QA``, the
tuning set; ``5_NIDDK_QA`` with ``--texts 20`` is the held-out set docs/edge.md reports and nothing was chosen on).
Source: the fp32 folder ``clinforge models fetch smollm2-135m-instruct`` writes (the Q4_1 GGUF de-quantised by
transformers). ``--noise F`` adds Gaussian noise of F times each matrix's standard deviation (seed 0) to every
matrix first, source included: weights that no longer lie on the Q4_1 grid, to see what the search gains on an
ordinary model. Deterministic: no sampling. Also printed: relative RMSE of the quantised matrices
(sqrt(sum of squared errors / sum of squared weights) over all of them).

``--gguf FILE`` (repeatable) also reads exported files back, with transformers (``gguf_file=``) and, when
llama-cpp-python is installed, with llama.cpp, and compares their logits with the source's on the same texts.

Run: ``python benchmarks/gguf_q8_groups.py [--texts 10] [--subset 6_NINDS_QA] [--q8-scale rtn,search]
[--groups none,v_proj,...] [--noise 0.01] [--gguf model-q8_0.gguf]``
Last line: ``RESULT rtn_top1=X search_top1=Y rtn_rel_rmse=A search_rel_rmse=B positions=N``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

GROUPS = {"none": (), "v_proj": ("v_proj",), "o_proj": ("o_proj",), "q_k_proj": ("q_proj", "k_proj"),
          "gate_up_proj": ("gate_proj", "up_proj"), "down_proj": ("down_proj",),
          "attention": ("q_proj", "k_proj", "v_proj", "o_proj"), "all": ("proj",)}


def answers(folder: Path, n: int) -> list[str]:
    """The first answer longer than 400 characters of each MedQuAD XML file, in file order, ``n`` of them."""
    out: list[str] = []
    for path in sorted(folder.glob("*.xml")):
        for node in ET.parse(path).getroot().iter("Answer"):
            if node.text and len(node.text) > 400:
                out.append(node.text.strip())
                break
        if len(out) >= n:
            break
    if len(out) < n:
        raise SystemExit(f"{folder}: only {len(out)} answers longer than 400 characters (asked for {n})")
    return out


def _print_agreement(label: str, reference: list, got: list) -> float:
    """Print top-1 agreement (95% Wilson interval, positions treated as independent) and max |logit diff|."""
    import numpy as np

    from clinforge.core.intervals import wilson

    agree = sum(int((r.argmax(-1) == g.argmax(-1)).sum()) for r, g in zip(reference, got, strict=True))
    total = sum(r.shape[0] for r in reference)
    worst = max(float(np.abs(r - g).max()) for r, g in zip(reference, got, strict=True))
    low, high = wilson(agree, total)
    print(f"{label} top1 {agree / total:.4f} ({agree}/{total}, 95% Wilson {low:.4f}-{high:.4f})  "
          f"max |logit diff| {worst:.3f}", flush=True)
    return agree / total


def _read_back(path: Path, rows: list[list[int]]) -> dict[str, list]:
    """Logits of ``rows`` from ``path`` read by transformers and (when installed) llama.cpp."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    folder = str(path.resolve().parent)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=path.name, dtype=torch.float32).eval()
    with torch.no_grad():
        out = {"transformers": [model(torch.tensor([r])).logits[0].numpy() for r in rows]}
    del model
    try:
        import llama_cpp
    except ImportError:
        print(f"{path.name}: llama-cpp-python is not installed; read back by transformers only")
        return out
    llm = llama_cpp.Llama(str(path), n_ctx=max(len(r) for r in rows) + 8, logits_all=True, verbose=False,
                          n_threads=1)
    try:
        got = []
        for r in rows:
            llm.reset()
            llm.eval(r)
            got.append(np.asarray(llm.scores[:len(r)], dtype=np.float32).copy())
        out["llama.cpp"] = got
    finally:
        llm.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=10)
    ap.add_argument("--subset", default="6_NINDS_QA")
    ap.add_argument("--q8-scale", default="rtn,search", help="comma-separated, from rtn, search")
    ap.add_argument("--groups", default="none", help=f"comma-separated, from {', '.join(GROUPS)}")
    ap.add_argument("--noise", type=float, default=0.0, help="Gaussian noise, in each matrix's std, added first")
    ap.add_argument("--gguf", action="append", default=[], help="an exported file to read back and compare")
    args = ap.parse_args()
    import numpy as np
    import torch

    from clinforge.models.gguf_q8_quant import Q8_SCALES, dequantize_q8_0, quantize_q8_0
    from clinforge.models.load import load_llm
    from clinforge.models.offline_models import fetch_model

    scales = args.q8_scale.split(",")
    if unknown := [s for s in scales if s not in Q8_SCALES] + [g for g in args.groups.split(",") if g not in GROUPS]:
        raise SystemExit(f"unknown --q8-scale or --groups value(s): {', '.join(unknown)}")
    torch.set_num_threads(1)  # steadier on a shared machine; the figures do not depend on it
    data = Path(os.environ.get("CLINFORGE_DATA", ROOT.parent / "shared" / "data")) / "medquad" / args.subset
    model, tok = load_llm(str(fetch_model("smollm2-135m-instruct")), dtype=torch.float32)
    model.eval()
    rows = [tok(text)["input_ids"][:256] for text in answers(data, args.texts)]
    if args.noise:
        rng = np.random.default_rng(0)
        with torch.no_grad():
            for key, value in model.state_dict().items():
                if value.ndim == 2 and "embed_tokens" not in key:
                    noise = rng.standard_normal(tuple(value.shape)).astype(np.float32) * float(value.std())
                    value.add_(torch.from_numpy(noise) * args.noise)

    def logits() -> list[np.ndarray]:
        with torch.no_grad():
            return [model(torch.tensor([r])).logits[0].numpy() for r in rows]

    reference = logits()
    for path in args.gguf:
        if args.noise:
            raise SystemExit("--gguf compares with the source model; it cannot be combined with --noise")
        for engine, got in _read_back(Path(path), rows).items():
            _print_agreement(f"{Path(path).name} in {engine}", reference, got)
    # a tied output matrix is the embedding under a second name: left out, or the q8 copy would land in the
    # embedding that the export keeps at f16
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    source = {k: v.detach().clone() for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    top1: dict[tuple[str, str], float] = {}
    rel_rmse: dict[str, float] = {}
    for scale in scales:
        started = time.perf_counter()
        rounded: dict[str, torch.Tensor] = {}
        squared = weight = 0.0
        for key, value in source.items():
            if value.ndim == 2 and "embed_tokens" not in key:
                a = value.numpy()
                back = dequantize_q8_0(quantize_q8_0(a, scale, name=key), a.shape)
                squared += float(((back.astype(np.float64) - a) ** 2).sum())
                weight += float((a.astype(np.float64) ** 2).sum())
                rounded[key] = torch.from_numpy(back)
        rel_rmse[scale] = (squared / weight) ** 0.5
        print(f"q8 scale {scale}: quantised {len(rounded)} matrices in {time.perf_counter() - started:.1f} s, "
              f"relative RMSE {rel_rmse[scale]:.3e}", flush=True)
        for name in args.groups.split(","):
            keep = GROUPS[name]
            state = model.state_dict()
            for key, value in source.items():
                if value.ndim != 2:
                    state[key].copy_(value)
                elif "embed_tokens" in key or any(part in key for part in keep):
                    state[key].copy_(value.half().float())
                else:
                    state[key].copy_(rounded[key])
            top1[(scale, name)] = _print_agreement(f"q8 scale {scale:6s} f16 kept: {name:13s}", reference, logits())
    total = sum(r.shape[0] for r in reference)
    print(f"RESULT rtn_top1={top1.get(('rtn', 'none'), float('nan')):.4f} "
          f"search_top1={top1.get(('search', 'none'), float('nan')):.4f} "
          f"rtn_rel_rmse={rel_rmse.get('rtn', float('nan')):.3e} "
          f"search_rel_rmse={rel_rmse.get('search', float('nan')):.3e} positions={total}")


if __name__ == "__main__":
    main()
