"""Multimodal SFT throughput: clinforge's ``vlm_sft`` stage vs TRL ``SFTTrainer`` on the same tiny LLaVA and the same
real VQA-RAD images; then clinforge per connector (visual tokens handed to the LLM, images/s).

The job: one epoch over the VQA-RAD training questions (by default all 1,798 of them, about 313 images with ~6
questions each; ``--records N`` takes the first N), image + question -> answer, loss on the answer tokens only,
float32 on CPU, AdamW (``adamw_torch``), linear schedule, the same learning rate, batch size, seed and number of
steps (one epoch: ceil(records / batch)), no gradient checkpointing, ``--threads`` intra-op threads for both (default
1: on the shared 2-core machine, 2 OpenMP threads per process stall on each other under load and both trainers
then measure thread waits instead of work). Both trainers train the SAME parameters: the model is prepared by
``clinforge.train.vlm_methods.apply_vlm_method`` (LoRA r=8 on the LLM's linear layers, the connector fully).

TRL, as its documentation describes vision fine-tuning for LLaVA: ``SFTTrainer`` with its
``DataCollatorForVisionLanguageModeling`` on prompt-completion records with an ``images`` column (``datasets.Image``
from the image files, decoded to RGB when a row is read, as ``load_dataset`` gives them; the completion is the
answer turn, ``completion_only_loss=True``: the same loss tokens as clinforge's assistant-only labels; the script
checks the counts). TRL's own loss already computes the LM head on the loss positions only. TRL refuses packing and
padding-free batches for vision data and has no image deduplication, so its candidates are ``padded``
(right-padded batches) and ``group_by_length`` (batches of similar length); the faster one in images/s is "TRL
best". clinforge runs ``vlm_sft`` with its defaults: packing (rows of up to ``max_length`` tokens, no attention
across examples), each image file read once, each distinct image encoded once while the encoder is frozen. The
model's chat template renders string and multimodal-list contents to the same text, so both trainers see identical
token sequences.

clinforge and TRL best run ``--reps`` times each with the order alternating; medians. Every run is its own
subprocess, so its peak memory (peak RSS) is its own. Reported per trainer: images/s and tokens/s (real, non-padding
tokens / ``train_runtime``), padding share (padding positions / all positions fed to the model), peak memory, loss
tokens, the mean training loss. Then per connector (clinforge only, ``--connector-records``): visual tokens per image
and images/s. The last line is always ``RESULT speedup=X clinforge_img_s=A trl_img_s=B``; a run that cannot compute
it (a failed run, different loss tokens) exits non-zero without it, and a failed connector row exits non-zero after it.

Usage: python benchmarks/mllm_train.py [--quick] [--records N] [--batch 8] [--reps 3] [--threads 1]
[--connectors linear,mlp,... | none] [--connector-records 256]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SPEC = {"vision": {"tiny": "siglip"}, "connector": {"type": "mlp", "depth": 2}, "llm": {"tiny": "llama"}}
CONNECTORS = {"linear": {"type": "linear"}, "mlp": {"type": "mlp", "depth": 2},
              "avgpool": {"type": "avgpool", "tokens": 4}, "qformer": {"type": "qformer", "queries": 4},
              "gated_xattn": {"type": "gated_xattn"}}
# ChatML over string contents (clinforge) and over TRL's structured contents ({"type": "image"} then text): the same
# rendered text either way, "<|im_start|>user\n<image>\nQUESTION<|im_end|>\n<|im_start|>assistant\nANSWER<|im_end|>\n"
TEMPLATE = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}{% if m['content'] is string %}"
            "{{ m['content'] }}{% else %}{% for p in m['content'] %}{% if p['type'] == 'image' %}{{ '<image>\n' }}"
            "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LR, MAX_LENGTH, SEED = 2e-3, 256, 0


def build_model(out: Path, connector: dict) -> Path:
    """The tiny model of the job (SigLIP + ``connector`` + tiny Llama) with the shared chat template."""
    from clinforge.models.vlm import build_vlm, save_vlm

    model, proc = build_vlm({**SPEC, "connector": connector}, seed=SEED)
    proc.tokenizer.chat_template = TEMPLATE
    return save_vlm(model, proc, out, overwrite=True)


def _vqa_source(n: int) -> dict:
    """The VQA-RAD training split, its first ``n`` questions (all with ``n`` = 0)."""
    from clinforge.core.paths import data_root

    src = {"reader": "vqa_rad", "path": str(data_root().resolve() / "vqa-rad"), "options": {"split": "train"}}
    return {**src, "limit": n} if n else src


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class Meter:
    """Counts what TRL feeds the model during training (a forward pre-hook, as clinforge's stage counts its own):
    positions, images, loss tokens."""

    def __init__(self, model):
        self.positions = self.images = self.loss_tokens = 0
        self.hook = model.register_forward_pre_hook(self._seen, with_kwargs=True)

    def _seen(self, module, args, kwargs):
        if not module.training:
            return
        ids, labels, pv = kwargs.get("input_ids"), kwargs.get("labels"), kwargs.get("pixel_values")
        self.positions += int(ids.numel()) if ids is not None else 0
        self.images += int(pv.shape[0]) if pv is not None else 0
        if labels is not None:  # tokens predicted: labels after the model's shift that are not -100
            self.loss_tokens += int((labels[:, 1:] != -100).sum())


def worker_clinforge(model_dir: str, records: int, steps: int, batch: int) -> dict:
    """clinforge ``vlm_sft`` through the training pipeline (its own data reading, packing and Trainer); the stage
    counts the images, positions and loss tokens it fed the model."""
    from clinforge.train.pipeline import run_pipeline
    from clinforge.train.recipe import Recipe

    recipe = Recipe.model_validate({
        "model": model_dir, "seed": SEED, "tracking": {"tensorboard": False},
        "stages": [{"name": "sft", "type": "vlm_sft", "data": {"sources": [_vqa_source(records)]},
                    "method": {"type": "lora", "r": 8, "alpha": 16, "dropout": 0.05},
                    "train": {"lr": LR, "max_steps": steps, "batch_size": batch, "max_length": MAX_LENGTH,
                              "log_every": 1, "save_every": 10_000, "scheduler": "linear"}}]})
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_pipeline(recipe, Path(tmp) / "run")
    stage = summary["stages"][0]
    m = stage["metrics"]
    return {"runtime": m["train_runtime"], "real_tokens": m["tokens_seen"], "positions": m["positions_seen"],
            "images": m["images_seen"], "loss_tokens": m["loss_tokens_seen"], "loss": m["train_loss"],
            "visual_tokens_per_image": m["visual_tokens_per_image"], "collator": stage["hyperparameters"]["collator"],
            "steps": m["global_step"], "vision_cache": m.get("vision_cache")}


def worker_trl(model_dir: str, records: int, steps: int, batch: int, candidate: str) -> dict:
    """TRL ``SFTTrainer`` with its vision collator on prompt-completion records with images."""
    from datasets import Dataset, Image, List
    from transformers import AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from clinforge.data.load import read_records
    from clinforge.models.vlm import load_vlm
    from clinforge.train.recipe import MethodSpec
    from clinforge.train.vlm_methods import apply_vlm_method

    src = _vqa_source(records)
    recs = list(read_records(src["path"], "vqa_rad", limit=src.get("limit"), **src["options"])[0])
    tok = AutoProcessor.from_pretrained(model_dir).tokenizer
    # "length": what group_by_length sorts by (Trainer cannot infer lengths from image rows itself); images: the
    # files, decoded to RGB when a row is read (clinforge's stage reads the same files and converts to RGB too)
    rows = [{"prompt": [{"role": "user", "content": r.question}],
             "completion": [{"role": "assistant", "content": r.answer}],
             "images": [r.images[0]],
             "length": len(tok(f"{r.question} {r.answer}")["input_ids"])} for r in recs]
    dataset = Dataset.from_list(rows).cast_column("images", List(Image(mode="RGB")))

    model, _ = load_vlm(model_dir)
    model.config.use_cache = False
    model.config.text_config.use_cache = False
    processor = AutoProcessor.from_pretrained(model_dir)  # LlavaProcessor: what TRL's collator drives
    processor.chat_template = TEMPLATE
    model = apply_vlm_method(model, MethodSpec(type="lora", r=8, alpha=16, dropout=0.05))
    meter = Meter(model)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=batch,
                     learning_rate=LR, lr_scheduler_type="linear", optim="adamw_torch", seed=SEED, data_seed=SEED,
                     logging_steps=1, save_strategy="no", report_to="none", bf16=False, use_cpu=True,
                     gradient_checkpointing=False, completion_only_loss=True, max_length=None,
                     remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
                     include_num_input_tokens_seen="non_padding", disable_tqdm=True,
                     train_sampling_strategy="group_by_length" if candidate == "group_by_length" else "random")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    out = trainer.train()
    return {"runtime": out.metrics["train_runtime"], "real_tokens": trainer.state.num_input_tokens_seen,
            "positions": meter.positions, "images": meter.images, "loss_tokens": meter.loss_tokens,
            "loss": out.metrics["train_loss"], "collator": type(trainer.data_collator).__name__,
            "steps": trainer.state.global_step}


class RunFailed(RuntimeError):
    """A training subprocess failed or printed no measurement."""


def run_worker(kind: str, model_dir: Path, records: int, batch: int, threads: int, candidate: str = "") -> dict:
    """One training run in a fresh subprocess (its own peak memory); returns its measurements."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--model", str(model_dir), "--records",
                           str(records), "--batch", str(batch), "--threads", str(threads), "--candidate", candidate],
                          capture_output=True, text=True, env=env, timeout=3600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise RunFailed(f"{kind} {candidate} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    r = json.loads(lines[-1])
    r["img_s"] = r["images"] / r["runtime"]
    r["tok_s"] = r["real_tokens"] / r["runtime"]
    r["padding_share"] = 1 - r["real_tokens"] / r["positions"] if r["positions"] else 0.0
    return r


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def n_records(records: int) -> int:
    """How many training questions the job has (``records`` = 0: the whole VQA-RAD training split)."""
    from clinforge.data.load import read_records

    src = _vqa_source(records)
    return len(list(read_records(src["path"], "vqa_rad", limit=src.get("limit"), **src["options"])[0]))


def head_to_head(base: Path, a: argparse.Namespace) -> tuple[float, float]:
    """TRL candidates, then clinforge and TRL best alternated; prints the table and returns the median images/s."""
    trials = {c: run_worker("trl", base, a.records, a.batch, a.threads, c) for c in ("padded", "group_by_length")}
    for c, r in trials.items():
        print(f"  TRL candidate {c:16s} {r['img_s']:7.2f} img/s  {r['tok_s']:8.1f} tok/s  padding "
              f"{r['padding_share']:.1%}", flush=True)
    best = max(trials, key=lambda c: trials[c]["img_s"])
    runs: dict[str, list[dict]] = {"clinforge": [], "trl": [trials[best]]}
    for rep in range(a.reps):
        order = ["clinforge", "trl"] if rep % 2 == 0 else ["trl", "clinforge"]
        for who in order:
            if who == "trl" and rep == 0:
                continue  # the search run above is TRL best's first repetition
            runs[who].append(run_worker(who, base, a.records, a.batch, a.threads, best if who == "trl" else ""))
    print(f"\n{'trainer':30s} {'img/s':>8s} {'tok/s':>9s} {'padding':>8s} {'peak MB':>8s} {'loss tok':>9s} "
          f"{'loss':>7s}  img/s of each run")
    for who, label in (("clinforge", "clinforge vlm_sft"), ("trl", f"TRL SFTTrainer ({best})")):
        rs = runs[who]
        each = " ".join(f"{r['img_s']:.2f}" for r in rs)
        print(f"{label:30s} {_median(rs, 'img_s'):8.2f} {_median(rs, 'tok_s'):9.1f} "
              f"{_median(rs, 'padding_share'):8.1%} {_median(rs, 'peak_rss_mb'):8.0f} "
              f"{_median(rs, 'loss_tokens'):9.0f} {_median(rs, 'loss'):7.4f}  "
              f"{each}")
    cache = runs["clinforge"][0]["vision_cache"] or {}
    print(f"clinforge vision feature cache (first run): {cache.get('hits', 0)} images from the cache, "
          f"{cache.get('misses', 0)} encoded")
    c_tok = {r["loss_tokens"] for r in runs["clinforge"]}
    t_tok = {r["loss_tokens"] for r in runs["trl"]}
    steps = {r["steps"] for rs in runs.values() for r in rs}
    print(f"same loss tokens: {c_tok == t_tok} ({sorted(c_tok)} vs {sorted(t_tok)}); steps: {sorted(steps)}")
    if c_tok != t_tok or len(c_tok) != 1 or len(steps) != 1:
        raise RunFailed("the trainers did not train on the same loss tokens / steps: no speed-up is reported")
    return _median(runs["clinforge"], "img_s"), _median(runs["trl"], "img_s")


def connector_table(tmp: Path, a: argparse.Namespace, connectors: list[str]) -> list[str]:
    """clinforge per connector; returns the connectors whose run failed (reported, not hidden)."""
    failed: list[str] = []
    if not connectors:
        return failed
    print(f"\nper connector (clinforge vlm_sft, one run each, first {a.connector_records} questions):")
    print(f"{'connector':12s} {'visual tokens/image':>20s} {'img/s':>8s} {'collator':>20s}")
    for name in connectors:
        try:
            d = build_model(tmp / name, CONNECTORS[name])
            r = run_worker("clinforge", d, a.connector_records, a.batch, a.threads)
        except Exception as exc:  # noqa: BLE001 - any failure is reported, and the script exits non-zero
            print(f"{name:12s} FAILED: {str(exc)[-500:]}", file=sys.stderr, flush=True)
            print(f"{name:12s} {'FAILED':>20s}", flush=True)
            failed.append(name)
            continue
        print(f"{name:12s} {r['visual_tokens_per_image']:>20d} {r['img_s']:8.2f} {r['collator']:>20s}", flush=True)
    return failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=0, help="first N VQA-RAD training questions (0: all 1,798)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of each run (both trainers)")
    ap.add_argument("--connector-records", type=int, default=256)
    ap.add_argument("--connectors", default=",".join(CONNECTORS),
                    help=f"comma-separated connectors of the per-connector table (of {', '.join(CONNECTORS)}), "
                         "or 'none'")
    ap.add_argument("--quick", action="store_true", help="smoke test (its ratio means nothing): 16 questions, "
                    "1 repetition, connectors mlp and avgpool")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--candidate", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        _threads(a.threads)
        steps = -(-n_records(a.records) // a.batch)  # one epoch
        fn = worker_clinforge if a.worker == "clinforge" else worker_trl
        result = fn(a.model, a.records, steps, a.batch, *([a.candidate] if a.worker == "trl" else []))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    if a.quick:
        a.records, a.reps, a.connector_records = 16, 1, 16
    connectors = [c for c in a.connectors.split(",") if c and c != "none"]
    unknown = [c for c in connectors if c not in CONNECTORS]
    if unknown:
        ap.error(f"unknown connectors {unknown}; valid: {', '.join(CONNECTORS)}")
    if a.quick:
        connectors = ["mlp", "avgpool"]
    n = n_records(a.records)
    with tempfile.TemporaryDirectory() as tmp:
        base = build_model(Path(tmp) / "llava", SPEC["connector"])
        print(f"job: tiny LLaVA (SigLIP 32px, 16 visual tokens, MLP projector, tiny Llama), LoRA r=8 + connector, "
              f"one epoch over {n} VQA-RAD training questions ({-(-n // a.batch)} steps x {a.batch}), float32 CPU, "
              f"{a.threads} thread(s) per run on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
              "at the start (shared machine: compare the ratio, not the absolute figures)", flush=True)
        try:
            c_img, t_img = head_to_head(base, a)
        except RunFailed as exc:
            raise SystemExit(f"FAILED: {exc}") from None
        failed = connector_table(Path(tmp), a, connectors)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"RESULT speedup={c_img / t_img:.2f} clinforge_img_s={c_img:.2f} trl_img_s={t_img:.2f}", flush=True)
    if failed:
        raise SystemExit(f"connector runs failed: {', '.join(failed)} (see above)")


if __name__ == "__main__":
    main()
