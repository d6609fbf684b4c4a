"""Which matrices' q8_0 rounding flips SmolLM2's next token: top-1 agreement with the fp32 source when one group of
matrices is kept at f16 and the rest rounded to q8_0 (the tied token embedding / output stays f16, as
``clinforge export gguf --outtype q8_0`` writes it).

The rounding is applied in memory with the ``gguf`` package's ``quantize``/``dequantize`` (byte-identical to
llama.cpp's own Q8_0 quantizer, docs/edge.md), which is what transformers computes with after reading the
exported file back (``gguf_file=``), so no file is written. Texts: the first 256 tokens of the first ``--texts``
MedQuAD answers longer than 400 characters from ``--subset`` (default ``6_NINDS_QA``, a tuning set kept apart from
the NIDDK answers docs/edge.md reports on). Source: the fp32 folder ``clinforge models fetch
smollm2-135m-instruct`` writes (the Q4_1 GGUF de-quantised by transformers). Deterministic: no sampling.

Run: ``python benchmarks/gguf_q8_groups.py [--texts 10] [--subset 6_NINDS_QA] [--groups none,v_proj,...]``
Last line: ``RESULT best_group=NAME best_top1=X all_q8_top1=Y``.
"""

from __future__ import annotations

import argparse
import os
import sys
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=10)
    ap.add_argument("--subset", default="6_NINDS_QA")
    ap.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated, from {', '.join(GROUPS)}")
    args = ap.parse_args()
    import gguf
    import numpy as np
    import torch

    from clinforge.models.load import load_llm
    from clinforge.models.offline_models import fetch_model

    torch.set_num_threads(1)  # steadier on a shared machine; the figures do not depend on it
    data = Path(os.environ.get("CLINFORGE_DATA", ROOT.parent / "shared" / "data")) / "medquad" / args.subset
    model, tok = load_llm(str(fetch_model("smollm2-135m-instruct")), dtype=torch.float32)
    model.eval()
    rows = [tok(text)["input_ids"][:256] for text in answers(data, args.texts)]

    def logits() -> list[np.ndarray]:
        with torch.no_grad():
            return [model(torch.tensor([r])).logits[0].numpy() for r in rows]

    reference = logits()
    source = {k: v.detach().clone() for k, v in model.state_dict().items()}
    q8 = gguf.GGMLQuantizationType.Q8_0
    rounded: dict[str, torch.Tensor] = {}
    results: dict[str, float] = {}
    for name in args.groups.split(","):
        keep = GROUPS[name]
        state = model.state_dict()
        for key, value in source.items():
            if value.ndim != 2:
                state[key].copy_(value)
            elif "embed_tokens" in key or any(part in key for part in keep):
                state[key].copy_(value.half().float())
            else:
                if key not in rounded:
                    a = value.numpy()
                    rounded[key] = torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(a, q8), q8)
                                                    .reshape(a.shape).astype(np.float32))
                state[key].copy_(rounded[key])
        got = logits()
        agree = sum(int((r.argmax(-1) == g.argmax(-1)).sum()) for r, g in zip(reference, got, strict=True))
        total = sum(r.shape[0] for r in reference)
        worst = max(float(np.abs(r - g).max()) for r, g in zip(reference, got, strict=True))
        results[name] = agree / total
        print(f"f16 kept: {name:13s} top1 {agree / total:.4f} ({agree}/{total})  max |logit diff| {worst:.3f}",
              flush=True)
    best = max((n for n in results if n != "all"), key=results.get, default="none")
    print(f"RESULT best_group={best} best_top1={results.get(best, float('nan')):.4f} "
          f"all_q8_top1={results.get('none', float('nan')):.4f}")


if __name__ == "__main__":
    main()
