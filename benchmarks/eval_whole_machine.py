"""clinforge eval vs lm-evaluation-harness on the WHOLE machine: each CLI as a user runs it, in its best configuration.

``eval_throughput.py`` holds the hardware equal by giving both sides one process with the same torch thread count.
A user with an N-core CPU box runs each tool its own best way instead, so this script times the two command lines
end to end (process start, model loading, scoring, writing results), each in every configuration it supports:

* lm-eval 0.4.13: ``python -m lm_eval --model hf ... --device cpu`` in one process with torch's default threads (all
  cores), at each batch size of ``--lmeval-batch-sizes``. lm-eval has no data parallelism on CPU: its ``HFLM`` shards
  requests only when it counts more than one GPU; under ``torchrun --nproc_per_node 2`` on CPU both processes call
  themselves rank 0 and each scores every request (checked with this model, 2026-12-03: 16 of 16 requests in each of
  the two processes, twice the time of one). So a second process is no configuration of it here.
* clinforge: ``python -m clinforge eval --device cpu`` in one process with torch's default threads, and
  ``torchrun --nproc_per_node P -m clinforge eval`` with ``P`` = ``--procs`` (default: the CPU count) processes of
  one thread each, which shard the items (``index % P``) and merge them (``docs/eval.md``, "Sharding").

Workload: 0-shot MedQA-USMLE 4-option (the first ``--limit`` test questions of the local MIRAGE file; prompt
``Question: ...\\nA. ...\\nAnswer:``, continuations " A".." D"; the same task as ``eval_throughput.py``) on
SmolLM2-135M-Instruct, float32. Every configuration runs once per repetition, the order rotated between
repetitions; medians of wall time. Each side's best configuration is the one of lowest median. Every clinforge run is
compared with every lm-eval run of its repetition: predicted options and the largest absolute log-likelihood
difference; the script exits 1 when a prediction differs or a difference exceeds 1e-4.

Last line: ``RESULT speedup=X identical=Y max_abs_ll_diff=Z clinforge_qps=A lmeval_qps=B clinforge_config=C
lmeval_config=D`` (best against best; qps counts questions over the whole command's wall time).

Usage: python benchmarks/eval_whole_machine.py [--real-model DIR | --no-real] [--limit 200] [--reps 3] [--procs N]
       [--lmeval-batch-sizes 1,8] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent), str(ROOT / "tests")]

from eval_throughput import LMEVAL_YAML, MEDQA, TOLERANCE, compare, real_model_dir, write_data  # noqa: E402


def lmeval_command(model: Path, tasks: Path, limit: int, batch_size: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
            "--device", "cpu", "--tasks", "medqa_bench", "--include_path", str(tasks), "--batch_size",
            str(batch_size), "--limit", str(limit), "--log_samples", "--output_path", str(out), "--seed", "0"]


def clinforge_command(model: Path, limit: int, procs: int, out: Path) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs)] if procs > 1 else [
        sys.executable]
    return [*launcher, "-m", "clinforge", "eval", "--model", f"hf:{model}", "--tasks", "medqa", "--limit",
            str(limit), "--batch-size", "1", "--device", "cpu", "--out", str(out), "--no-progress"]


def read_lmeval(out: Path) -> list[list[float]]:
    (path,) = out.glob("*/samples_medqa_bench_*.jsonl")
    rows = sorted((json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()),
                  key=lambda r: r["doc_id"])
    return [[float(r[0]) for r in row["filtered_resps"]] for row in rows]


def read_clinforge(out: Path) -> list[list[float]]:
    rows = [json.loads(x) for x in (out / "items" / "medqa.jsonl").read_text(encoding="utf-8").splitlines()
            if x.strip()]
    return [r["loglikelihoods"] for r in sorted(rows, key=lambda r: r["index"])]


def run_timed(name: str, command: list[str], env: dict[str, str], log: Path) -> float:
    """Wall time of ``command``; a failure stops the benchmark, naming the configuration and its log."""
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as fh:
        done = subprocess.run(command, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{name} failed (exit {done.returncode}); log {log}:\n{tail}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-model", default=None, help="HF folder of SmolLM2-135M-Instruct (default: registry)")
    parser.add_argument("--limit", type=int, default=200, help="0-shot questions per run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-real", action="store_true", help="a tiny random Llama instead (smoke runs)")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="clinforge's sharded processes")
    parser.add_argument("--lmeval-batch-sizes", default="1,8", help="lm-eval batch sizes tried")
    parser.add_argument("--keep-work", action="store_true", help="keep the work folder (outputs and logs)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 questions, 1 repetition, batch 1")
    args = parser.parse_args()
    if args.quick:
        args.limit, args.reps, args.lmeval_batch_sizes = 4, 1, "1"
    from clinforge.core.paths import data_root

    root = data_root().resolve()
    workdir = Path(tempfile.mkdtemp(prefix="eval_whole_machine_"))
    if args.no_real:
        from _tinylm import big_corpus, build_tiny_lm

        model = workdir / "tiny"
        build_tiny_lm(model, root, vocab_size=8000, hidden_size=256, layers=4, heads=4, intermediate_size=1024,
                      corpus=big_corpus(root))
    else:
        model = real_model_dir(args.real_model)
    env = {**os.environ, "CLINFORGE_DATA": str(root), "CLINFORGE_NO_PROGRESS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
               [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("OMP_NUM_THREADS", None)  # one-process configurations take torch's default: every core
    try:
        test, dev = write_data(workdir, root, 3)
        tasks = workdir / "lmeval_tasks"
        tasks.mkdir()
        (tasks / "medqa_bench.yaml").write_text(LMEVAL_YAML.format(name="medqa_bench", test=test, dev=dev),
                                                encoding="utf-8")
        configs: dict[str, tuple[str, int]] = {f"lm-eval bs{b}": ("lm-eval", int(b))
                                               for b in args.lmeval_batch_sizes.split(",") if b.strip()}
        configs["clinforge 1 process"] = ("clinforge", 1)
        if args.procs > 1:
            configs[f"clinforge {args.procs}x1 (torchrun)"] = ("clinforge", args.procs)
        print(f"machine: {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}; date "
              f"{time.strftime('%Y-%m-%d %H:%M')}; model {model}; data {root / MEDQA}; {args.limit} 0-shot "
              f"questions; configurations: {', '.join(configs)}", flush=True)
        times: dict[str, list[float]] = {name: [] for name in configs}
        same_all, n_all, max_diff = 0, 0, 0.0
        names = list(configs)
        for rep in range(args.reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            lls: dict[str, list[list[float]]] = {}
            for name in order:
                side, value = configs[name]
                out = workdir / f"rep{rep}_{name.split()[0]}_{value}"
                if side == "lm-eval":
                    command = lmeval_command(model, tasks, args.limit, value, out)
                    run_env = env
                else:
                    command = clinforge_command(model, args.limit, value, out)
                    run_env = {**env, "OMP_NUM_THREADS": "1"} if value > 1 else env
                seconds = run_timed(name, command, run_env, workdir / f"rep{rep}_{name.replace(' ', '_')}.log")
                times[name].append(seconds)
                lls[name] = read_lmeval(out) if side == "lm-eval" else read_clinforge(out)
                print(f"rep {rep + 1} {name}: {seconds:.1f}s, load avg {os.getloadavg()[0]:.1f}", flush=True)
            for a in (n for n in lls if configs[n][0] == "lm-eval"):
                for b in (n for n in lls if configs[n][0] == "clinforge"):
                    same, diff = compare(lls[a], lls[b])
                    same_all, n_all, max_diff = same_all + same, n_all + len(lls[b]), max(max_diff, diff)
        medians = {name: statistics.median(t) for name, t in times.items()}
        best_lm = min((n for n in configs if configs[n][0] == "lm-eval"), key=medians.__getitem__)
        best_cf = min((n for n in configs if configs[n][0] == "clinforge"), key=medians.__getitem__)
        for name, t in times.items():
            print(f"{name}: median {medians[name]:.1f}s ({args.limit / medians[name]:.2f} q/s), runs "
                  f"{', '.join(f'{x:.1f}' for x in t)}", flush=True)
        paired = [a / b for a, b in zip(times[best_lm], times[best_cf], strict=True)]
        speedup = medians[best_lm] / medians[best_cf]
        print(f"best lm-eval: {best_lm}; best clinforge: {best_cf}; speedup {speedup:.2f}x (paired per repetition "
              f"{', '.join(f'{x:.2f}' for x in paired)}); identical {same_all}/{n_all}, max |d ll| {max_diff:.2g}",
              flush=True)
        failed = same_all < n_all or max_diff > TOLERANCE
        if failed:
            print(f"FAILED: predictions differ or |d ll| > {TOLERANCE}")
        print(f"RESULT speedup={speedup:.2f} identical={same_all / n_all:.4f} max_abs_ll_diff={max_diff:.2g} "
              f"clinforge_qps={args.limit / medians[best_cf]:.2f} lmeval_qps={args.limit / medians[best_lm]:.2f} "
              f"clinforge_config={best_cf.replace(' ', '_')} lmeval_config={best_lm.replace(' ', '_')}")
        if failed:
            raise SystemExit(1)
    finally:
        if args.keep_work:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
