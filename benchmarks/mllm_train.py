"""Multimodal SFT throughput: clinforge's ``vlm_sft`` stage vs TRL ``SFTTrainer`` on the same tiny LLaVA and the same
real VQA-RAD images; then clinforge per connector (visual tokens handed to the LLM, images/s).

The job: one epoch over the same ``steps x batch`` VQA-RAD training questions (image + question -> answer), loss on
the answer tokens only, float32 on CPU, AdamW (``adamw_torch``), linear schedule, the same learning rate, batch size,
seed and number of steps, no gradient checkpointing. Both trainers train the SAME parameters: the model is prepared
by ``clinforge.train.vlm_methods.apply_vlm_method`` (LoRA r=8 on the LLM's linear layers, the connector fully).

TRL, as its documentation describes vision fine-tuning for LLaVA: ``SFTTrainer`` with its
``DataCollatorForVisionLanguageModeling`` on prompt-completion records with an ``images`` column (the completion
is the answer turn, ``completion_only_loss=True``: the same loss tokens as clinforge's assistant-only labels; the
script checks the counts). TRL refuses packing and padding-free batches for vision data, so its candidates are
``padded`` (right-padded batches) and ``group_by_length`` (batches of similar length); the faster one in images/s is
"TRL best". clinforge runs ``vlm_sft`` with its default packing (rows of up to ``max_length`` tokens, no attention
across examples). The model's chat template renders string and multimodal-list contents to the same text, so both
trainers see identical token sequences.

clinforge and TRL best run ``--reps`` times each with the order alternating; medians. Every run is its own
subprocess, so its peak memory (peak RSS) is its own. Reported per trainer: images/s and tokens/s (real, non-padding
tokens / ``train_runtime``), padding share (padding positions / all positions fed to the model), peak memory, loss
tokens, the mean training loss. Then per connector (clinforge only): visual tokens per image and images/s.
The last line: ``RESULT speedup=X clinforge_img_s=A trl_img_s=B``.

Usage: python benchmarks/mllm_train.py [--quick] [--steps 12] [--batch 8] [--reps 3]
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
    from clinforge.core.paths import data_root

    return {"reader": "vqa_rad", "path": str(data_root().resolve() / "vqa-rad"), "limit": n,
            "options": {"split": "train"}}


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


def worker_clinforge(model_dir: str, steps: int, batch: int) -> dict:
    """clinforge ``vlm_sft`` through the training pipeline (its own data reading, packing and Trainer); the stage
    counts the images, positions and loss tokens it fed the model."""
    from clinforge.train.pipeline import run_pipeline
    from clinforge.train.recipe import Recipe

    recipe = Recipe.model_validate({
        "model": model_dir, "seed": SEED, "tracking": {"tensorboard": False},
        "stages": [{"name": "sft", "type": "vlm_sft", "data": {"sources": [_vqa_source(steps * batch)]},
                    "method": {"type": "lora", "r": 8, "alpha": 16, "dropout": 0.05},
                    "train": {"lr": LR, "max_steps": steps, "batch_size": batch, "max_length": MAX_LENGTH,
                              "log_every": 1, "save_every": 10_000, "scheduler": "linear"}}]})
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_pipeline(recipe, Path(tmp) / "run")
    stage = summary["stages"][0]
    m = stage["metrics"]
    return {"runtime": m["train_runtime"], "real_tokens": m["tokens_seen"], "positions": m["positions_seen"],
            "images": m["images_seen"], "loss_tokens": m["loss_tokens_seen"], "loss": m["train_loss"],
            "visual_tokens_per_image": m["visual_tokens_per_image"], "collator": stage["hyperparameters"]["collator"]}


def worker_trl(model_dir: str, steps: int, batch: int, candidate: str) -> dict:
    """TRL ``SFTTrainer`` with its vision collator on prompt-completion records with images."""
    from datasets import Dataset
    from PIL import Image
    from trl import SFTConfig, SFTTrainer

    from clinforge.data.load import read_records
    from clinforge.models.vlm import load_vlm
    from clinforge.train.recipe import MethodSpec
    from clinforge.train.vlm_methods import apply_vlm_method

    src = _vqa_source(steps * batch)
    records = list(read_records(src["path"], "vqa_rad", limit=src["limit"], **src["options"])[0])
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(model_dir).tokenizer
    # "length": what group_by_length sorts by (Trainer cannot infer lengths from image rows itself)
    rows = [{"prompt": [{"role": "user", "content": r.question}],
             "completion": [{"role": "assistant", "content": r.answer}],
             "images": [Image.open(r.images[0]).convert("RGB")],
             "length": len(tok(f"{r.question} {r.answer}")["input_ids"])} for r in records]

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
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=processor)
    out = trainer.train()
    return {"runtime": out.metrics["train_runtime"], "real_tokens": trainer.state.num_input_tokens_seen,
            "positions": meter.positions, "images": meter.images, "loss_tokens": meter.loss_tokens,
            "loss": out.metrics["train_loss"], "collator": type(trainer.data_collator).__name__}


def run_worker(kind: str, model_dir: Path, steps: int, batch: int, candidate: str = "") -> dict:
    """One training run in a fresh subprocess (its own peak memory); returns its measurements."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--model", str(model_dir), "--steps",
                           str(steps), "--batch", str(batch), "--candidate", candidate],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} {candidate} run failed:\n{proc.stderr[-3000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["img_s"] = r["images"] / r["runtime"]
    r["tok_s"] = r["real_tokens"] / r["runtime"]
    r["padding_share"] = 1 - r["real_tokens"] / r["positions"] if r["positions"] else 0.0
    return r


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 steps, 1 repetition, connectors mlp and avgpool")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--candidate", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = worker_clinforge if a.worker == "clinforge" else worker_trl
        result = fn(a.model, a.steps, a.batch, *([a.candidate] if a.worker == "trl" else []))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    if a.quick:
        a.steps, a.reps = 2, 1
    connectors = ["mlp", "avgpool"] if a.quick else list(CONNECTORS)
    with tempfile.TemporaryDirectory() as tmp:
        base = build_model(Path(tmp) / "llava", SPEC["connector"])
        print(f"job: tiny LLaVA (SigLIP 32px, 16 visual tokens, MLP projector, tiny Llama), LoRA r=8 + connector, "
              f"{a.steps} steps x {a.batch} VQA-RAD images, float32 CPU, {os.cpu_count()} cores "
              f"(measured on a shared, loaded machine: compare the ratio, not the absolute figures)")
        trials = {c: run_worker("trl", base, a.steps, a.batch, c) for c in ("padded", "group_by_length")}
        for c, r in trials.items():
            print(f"  TRL candidate {c:16s} {r['img_s']:7.2f} img/s  {r['tok_s']:8.1f} tok/s  padding "
                  f"{r['padding_share']:.1%}")
        best = max(trials, key=lambda c: trials[c]["img_s"])
        runs: dict[str, list[dict]] = {"clinforge": [], "trl": [trials[best]]}
        for rep in range(a.reps):
            order = ["clinforge", "trl"] if rep % 2 == 0 else ["trl", "clinforge"]
            for who in order:
                if who == "trl" and rep == 0:
                    continue  # the search run above is TRL best's first repetition
                runs[who].append(run_worker(who, base, a.steps, a.batch, best if who == "trl" else ""))
        print(f"\n{'trainer':24s} {'img/s':>8s} {'tok/s':>9s} {'padding':>8s} {'peak MB':>8s} {'loss tok':>9s} "
              f"{'loss':>7s}")
        for who, label in (("clinforge", "clinforge vlm_sft"), ("trl", f"TRL SFTTrainer ({best})")):
            rs = runs[who]
            print(f"{label:24s} {_median(rs, 'img_s'):8.2f} {_median(rs, 'tok_s'):9.1f} "
                  f"{_median(rs, 'padding_share'):8.1%} {_median(rs, 'peak_rss_mb'):8.0f} "
                  f"{_median(rs, 'loss_tokens'):9.0f} {_median(rs, 'loss'):7.4f}")
        same = runs["clinforge"][0]["loss_tokens"] == runs["trl"][0]["loss_tokens"]
        print(f"same loss tokens: {same} ({runs['clinforge'][0]['loss_tokens']} vs {runs['trl'][0]['loss_tokens']})")
        print("\nper connector (clinforge vlm_sft, one run each):")
        print(f"{'connector':12s} {'visual tokens/image':>20s} {'img/s':>8s} {'collator':>20s}")
        for name in connectors:
            d = build_model(Path(tmp) / name, CONNECTORS[name])
            r = run_worker("clinforge", d, a.steps, a.batch)
            print(f"{name:12s} {r['visual_tokens_per_image']:>20d} {r['img_s']:8.2f} {r['collator']:>20s}")
    c_img, t_img = _median(runs["clinforge"], "img_s"), _median(runs["trl"], "img_s")
    print(f"RESULT speedup={c_img / t_img:.2f} clinforge_img_s={c_img:.2f} trl_img_s={t_img:.2f}")


if __name__ == "__main__":
    main()
