"""clinforge eval vs lm-evaluation-harness, log-likelihood scoring of MedQA, on SmolLM2-135M-Instruct and a tiny model.

Workloads (both sides read the same local MIRAGE MedQA-USMLE 4-option file; prompt ``Question: ...\\nA. ...\\nAnswer:``
with continuations " A".." D", lm-eval 0.4.13 ``medqa_4options``):

* ``0-shot``: the first N test questions (lm-eval's default setting for this task);
* ``K-shot``: the first N test questions after K fixed examples (lm-eval ``fewshot_config: sampler: first_n``, the
  MMLU protocol). The K examples are the LAST K questions of the test file, written to a separate "dev" file and
  left out of the evaluated file (the local data has no MedQA train split), so every question shares one prefix.

lm-eval runs a local-file task (``dataset_path: json``) through ``simple_evaluate`` with ``HFLM``; clinforge runs
``clinforge.eval.eval_runner.evaluate`` (the built-in ``medqa`` task for 0-shot, a YAML task for K-shot; request
cache, item log and summary included, a fresh output folder every time so nothing comes from a cache). Both use the
same model folder, float32, CPU and torch thread count (``--threads``, set once for the process, so equal on both
sides); model loading is not timed.

Batch size: each side runs at ITS OWN best batch size, measured, not assumed. Before the timed runs, each side
evaluates the first ``--sweep-limit`` 0-shot questions once per size in ``--sweep-batch-sizes`` (order alternated
per size) and keeps its fastest; ``--batch-size`` / ``--lmeval-batch-size`` fix them instead (lm-eval's default is
1; on CPU a larger batch pays for padding, a smaller one for less efficient matrix products).

Each workload runs ``--reps`` times per side, the order alternating (lm-eval first on even repetitions); the
figures are medians of the per-repetition wall times. Compared on every repetition: the predicted option of every
question (argmax of the four log-likelihoods, first on ties) and the largest absolute log-likelihood difference.
The script exits 1 when a prediction differs or a difference exceeds 1e-4.

The load average is printed with every repetition (the machine may be shared). The last line leads with the real
model's 0-shot workload (lm-eval's default for the task, and the comparison issue 7 names), then the K-shot one
(where clinforge's shared-prefix reuse applies):
``RESULT speedup=X identical=Y max_abs_ll_diff=Z clinforge_qps=A lmeval_qps=B speedup_3shot=C`` -- speedup is the
0-shot ratio of median times and the qps are 0-shot rates; identical is the share of identical predictions over all
repetitions and workloads of the real model; max_abs_ll_diff likewise the maximum over them. (Until 2026-12-04 the
line led with the K-shot ratio and ended with ``speedup_0shot``; a reader could take the larger figure for the
headline.)

The real model: ``--real-model DIR`` (a HF folder), else the clinforge model registry's ``smollm2-135m-instruct``
when this checkout has it (``clinforge models fetch``); ``--no-real`` runs the tiny model only.

Usage: python benchmarks/eval_throughput.py [--quick] [--real-model DIR] [--reps 3] [--limit-0shot 100]
       [--limit-fewshot 20] [--shots 3] [--threads N] [--sweep-batch-sizes 1,8] [--batch-size B]
       [--lmeval-batch-size B]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

MEDQA = "mirage/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl"
TOLERANCE = 1e-4
LMEVAL_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {test}
    dev: {dev}
output_type: multiple_choice
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
doc_to_text: "Question: {{{{question}}}}\\nA. {{{{options.A}}}}\\nB. {{{{options.B}}}}\\nC. {{{{options.C}}}}\\nD. {{{{options.D}}}}\\nAnswer:"
doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(answer_idx)}}}}"
doc_to_choice: ['A', 'B', 'C', 'D']
target_delimiter: " "
fewshot_delimiter: "\\n\\n"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
CLINFORGE_YAML = """task: medqa_bench_fewshot
type: mcq
reader: medqa
path: {test}
format: medqa
description: ""
fewshot_path: {dev}
fewshot_sampler: first_n
"""


def write_data(workdir: Path, data_root: Path, shots: int) -> tuple[Path, Path]:
    """The evaluated file (test questions minus the last ``shots``) and the few-shot file (those last ``shots``)."""
    lines = [x for x in (data_root / MEDQA).read_text(encoding="utf-8").splitlines() if x.strip()]
    test, dev = workdir / "medqa_test.jsonl", workdir / "medqa_dev.jsonl"
    test.write_text("\n".join(lines[:len(lines) - shots]) + "\n", encoding="utf-8")
    dev.write_text("\n".join(lines[len(lines) - shots:]) + "\n", encoding="utf-8")
    return test, dev


class LmEvalSide:
    """lm-eval's HFLM, loaded once; ``run`` evaluates one workload and returns (seconds, per-question lls)."""

    def __init__(self, model_dir: Path, batch_size: int, test: Path, dev: Path, workdir: Path):
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        task_dir = workdir / "lmeval_tasks"
        task_dir.mkdir(exist_ok=True)
        (task_dir / "medqa_bench.yaml").write_text(LMEVAL_YAML.format(name="medqa_bench", test=test, dev=dev),
                                                   encoding="utf-8")
        self.lm = HFLM(pretrained=str(model_dir), batch_size=batch_size, device="cpu", dtype="float32")
        self.manager = TaskManager(include_path=str(task_dir))

    def set_batch_size(self, batch_size: int) -> None:
        self.lm.batch_size_per_gpu = batch_size  # what HFLM's batching reads (``batch_size`` is its property)

    def run(self, limit: int, shots: int) -> tuple[float, list[list[float]]]:
        from lm_eval import simple_evaluate

        start = time.perf_counter()
        out = simple_evaluate(model=self.lm, tasks=["medqa_bench"], task_manager=self.manager, limit=limit,
                              log_samples=True, num_fewshot=shots, random_seed=0, numpy_random_seed=0,
                              torch_random_seed=0, fewshot_random_seed=0)
        seconds = time.perf_counter() - start
        samples = sorted(out["samples"]["medqa_bench"], key=lambda s: s["doc_id"])
        return seconds, [[float(r[0]) for r in s["filtered_resps"]] for s in samples]


class ClinforgeSide:
    """clinforge's HF backend, loaded once; ``run`` evaluates one workload into a fresh folder."""

    def __init__(self, model_dir: Path, batch_size: int, test: Path, dev: Path, workdir: Path):
        from clinforge.models.backends.hf_inprocess import HFBackend

        self.model_dir, self.batch_size, self.workdir = model_dir, batch_size, workdir
        self.backend = HFBackend(str(model_dir), batch_size=batch_size, device="cpu", dtype="float32")
        self.task_yaml = workdir / "medqa_bench_fewshot.yaml"
        self.task_yaml.write_text(CLINFORGE_YAML.format(test=test, dev=dev), encoding="utf-8")
        self.runs = 0

    def set_batch_size(self, batch_size: int) -> None:
        self.batch_size = self.backend.batch_size = batch_size

    def run(self, limit: int, shots: int) -> tuple[float, list[list[float]]]:
        from clinforge.eval.eval_runner import EvalConfig, evaluate

        self.runs += 1
        out = self.workdir / f"clinforge_{self.model_dir.name}_run{self.runs}"
        task = "medqa" if shots == 0 else str(self.task_yaml)
        name = "medqa" if shots == 0 else "medqa_bench_fewshot"
        config = EvalConfig(model=f"hf:{self.model_dir}", tasks=[task], out=str(out), limit=limit,
                            num_fewshot=shots, batch_size=self.batch_size, chunk_items=4096)
        start = time.perf_counter()
        evaluate(config, backend=self.backend, progress=False)
        seconds = time.perf_counter() - start
        rows = [json.loads(x) for x in (out / "items" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
                if x.strip()]
        rows.sort(key=lambda r: r["index"])
        return seconds, [r["loglikelihoods"] for r in rows]


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def compare(a: list[list[float]], b: list[list[float]]) -> tuple[int, float]:
    """(identical predictions, max |log-likelihood difference|) of two runs over the same questions."""
    if len(a) != len(b):
        raise SystemExit(f"question counts differ: lm-eval {len(a)}, clinforge {len(b)}")
    same = sum(argmax(x) == argmax(y) for x, y in zip(a, b, strict=True))
    diff = max(abs(p - q) for x, y in zip(a, b, strict=True) for p, q in zip(x, y, strict=True))
    return same, diff


def sweep_batch_sizes(label: str, sides: dict[str, Any], args: argparse.Namespace) -> dict[str, int]:
    """Each side's fastest batch size on the first ``args.sweep_limit`` 0-shot questions (one run per size and side,
    order alternated per size); fixed sizes (``--batch-size`` / ``--lmeval-batch-size``) skip the sweep."""
    fixed = {"clinforge": args.batch_size, "lm-eval": args.lmeval_batch_size}
    sizes = [int(x) for x in args.sweep_batch_sizes.split(",") if x.strip()]
    if not sizes:
        fixed = {"clinforge": args.batch_size or 8, "lm-eval": args.lmeval_batch_size or 1}
    for side in sides.values():  # warm-up, untimed: first-call imports and allocations would penalise one size
        side.run(min(2, args.sweep_limit), 0)
    times: dict[str, dict[int, float]] = {name: {} for name in sides}
    for k, size in enumerate(sizes):
        order = list(sides) if k % 2 == 0 else list(sides)[::-1]
        for name in order:
            if fixed[name] is None:
                sides[name].set_batch_size(size)
                times[name][size] = sides[name].run(args.sweep_limit, 0)[0]
    best = {}
    for name in sides:
        best[name] = fixed[name] if fixed[name] is not None else min(times[name], key=lambda b: times[name][b])
        sides[name].set_batch_size(best[name])
        swept = ", ".join(f"bs {b}: {t:.1f}s" for b, t in times[name].items()) or "fixed"
        print(f"[{label}] batch size sweep ({args.sweep_limit} 0-shot questions), {name}: {swept} -> "
              f"{best[name]}; load avg {os.getloadavg()[0]:.1f}", flush=True)
    return best


def bench_model(label: str, model_dir: Path, args: argparse.Namespace, test: Path, dev: Path,
                workdir: Path) -> dict[str, dict[str, Any]]:
    """Both sides on both workloads, ``args.reps`` alternated repetitions each; prints one line per repetition."""
    import torch

    lm = LmEvalSide(model_dir, args.lmeval_batch_size or 1, test, dev, workdir)
    cf = ClinforgeSide(model_dir, args.batch_size or 8, test, dev, workdir)
    n_params = sum(p.numel() for p in cf.backend.model.parameters())
    print(f"[{label}] {model_dir}: {n_params / 1e6:.1f}M parameters, vocab {len(cf.backend.tokenizer)}, "
          f"torch threads {torch.get_num_threads()} (both sides), float32 CPU", flush=True)
    best = sweep_batch_sizes(label, {"lm-eval": lm, "clinforge": cf}, args)
    results = {}
    limits = {"0-shot": (args.limit_0shot, 0), f"{args.shots}-shot": (args.limit_fewshot, args.shots)}
    for workload, (limit, shots) in limits.items():
        times: dict[str, list[float]] = {"lm-eval": [], "clinforge": []}
        same_all, n_all, max_diff = 0, 0, 0.0
        for rep in range(args.reps):
            order = [("lm-eval", lm), ("clinforge", cf)]
            if rep % 2:
                order.reverse()
            lls = {}
            for name, side in order:
                seconds, lls[name] = side.run(limit, shots)
                times[name].append(seconds)
            same, diff = compare(lls["lm-eval"], lls["clinforge"])
            n = len(lls["clinforge"])
            same_all, n_all, max_diff = same_all + same, n_all + n, max(max_diff, diff)
            load = os.getloadavg()[0]
            print(f"[{label}] {workload} rep {rep + 1} ({order[0][0]} first): {n} questions, lm-eval "
                  f"{times['lm-eval'][-1]:.1f}s, clinforge {times['clinforge'][-1]:.1f}s, identical {same}/{n}, "
                  f"max |d ll| {diff:.2g}, load avg {load:.1f}", flush=True)
        lm_s, cf_s = statistics.median(times["lm-eval"]), statistics.median(times["clinforge"])
        n = limit
        results[workload] = {"n": n, "batch_size": best["clinforge"], "lmeval_batch_size": best["lm-eval"],
                             "times": times, "load_avg": os.getloadavg()[0], "lmeval_s": lm_s, "clinforge_s": cf_s,
                             "speedup": lm_s / cf_s,
                             "identical": same_all / n_all, "max_abs_ll_diff": max_diff,
                             "lmeval_qps": n / lm_s, "clinforge_qps": n / cf_s}
        print(f"[{label}] {workload}: median lm-eval {lm_s:.1f}s ({n / lm_s:.2f} q/s), clinforge {cf_s:.1f}s "
              f"({n / cf_s:.2f} q/s), speedup {lm_s / cf_s:.2f}x, identical {same_all}/{n_all}, "
              f"max |d ll| {max_diff:.2g}", flush=True)
    cf.backend.close()
    del lm
    return results


def real_model_dir(arg: str | None) -> Path:
    """``--real-model``, else the offline registry's SmolLM2-135M-Instruct (fetched and converted once)."""
    from clinforge.models.offline_models import fetch_model

    return Path(arg) if arg else Path(fetch_model("smollm2-135m-instruct"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-work", action="store_true",
                        help="keep the temporary work folder (models, checkpoints, logs; removed by default)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: 1 repetition, few questions (smoke run)")
    parser.add_argument("--real-model", default=None, help="HF folder of SmolLM2-135M-Instruct (default: registry)")
    parser.add_argument("--no-real", action="store_true", help="tiny model only")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--limit-0shot", type=int, default=100, help="real model, 0-shot questions")
    parser.add_argument("--limit-fewshot", type=int, default=20, help="real model, K-shot questions")
    parser.add_argument("--tiny-scale", type=int, default=2, help="the tiny model evaluates this many times more")
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's)")
    parser.add_argument("--sweep-batch-sizes", default="1,8", help="batch sizes each side is timed at")
    parser.add_argument("--sweep-limit", type=int, default=12, help="0-shot questions per sweep run")
    parser.add_argument("--batch-size", type=int, default=None, help="clinforge's batch size (skips its sweep)")
    parser.add_argument("--lmeval-batch-size", type=int, default=None, help="lm-eval's batch size (skips its sweep)")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.limit_0shot, args.limit_fewshot, args.tiny_scale = 1, 4, 2, 2
        args.sweep_batch_sizes, args.sweep_limit = "1,2", 2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from _tinylm import big_corpus, build_tiny_lm
    from clinforge.core.paths import data_root

    root = data_root().resolve()
    workdir = Path(tempfile.mkdtemp(prefix="eval_throughput_"))
    try:
        test, dev = write_data(workdir, root, args.shots)
        print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
              f"load avg {os.getloadavg()[0]:.1f}; date "
              f"{time.strftime('%Y-%m-%d %H:%M')}; data {root / MEDQA}", flush=True)

        tiny_dir = workdir / "tiny"
        build_tiny_lm(tiny_dir, root, vocab_size=8000, hidden_size=256, layers=4, heads=4, intermediate_size=1024,
                      corpus=big_corpus(root))
        # room for the K-shot prompts (RoPE: a random model has no learned position table to outgrow); 1024 would
        # truncate them from the left, on both sides alike, and hide the shared prefix
        config = json.loads((tiny_dir / "config.json").read_text(encoding="utf-8"))
        config["max_position_embeddings"] = 4096
        (tiny_dir / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        tiny_args = argparse.Namespace(**{**vars(args), "limit_0shot": args.limit_0shot * args.tiny_scale,
                                          "limit_fewshot": args.limit_fewshot * args.tiny_scale})
        tiny = bench_model("tiny", tiny_dir, tiny_args, test, dev, workdir)
        failures = [w for w, r in tiny.items() if r["identical"] < 1 or r["max_abs_ll_diff"] > TOLERANCE]

        real_dir = None if args.no_real else real_model_dir(args.real_model)
        final = tiny
        if real_dir is not None:
            final = bench_model("smollm2-135m", real_dir, args, test, dev, workdir)
            failures += [f"real {w}" for w, r in final.items() if r["identical"] < 1 or r["max_abs_ll_diff"] > TOLERANCE]
        fewshot, zeroshot = final[f"{args.shots}-shot"], final["0-shot"]
        identical = min(fewshot["identical"], zeroshot["identical"])
        max_diff = max(fewshot["max_abs_ll_diff"], zeroshot["max_abs_ll_diff"])
        print(json.dumps({"tiny": tiny, "real": final if real_dir else None}, indent=1))
        if failures:
            print(f"FAILED: predictions differ or |d ll| > {TOLERANCE} in {', '.join(failures)}")
        print(f"RESULT speedup={zeroshot['speedup']:.2f} identical={identical:.4f} max_abs_ll_diff={max_diff:.2g} "
              f"clinforge_qps={zeroshot['clinforge_qps']:.2f} lmeval_qps={zeroshot['lmeval_qps']:.2f} "
              f"speedup_{args.shots}shot={fewshot['speedup']:.2f}")
        if failures:
            raise SystemExit(1)
    finally:  # the tiny and the converted model, the data: never left behind unless asked
        if args.keep_work:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
