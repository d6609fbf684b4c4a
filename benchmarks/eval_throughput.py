"""clinforge eval vs lm-evaluation-harness on the same tiny HF model over the MedQA test set, log-likelihood scoring.

Both sides score the 1,273 MedQA-USMLE 4-option test questions of the local MIRAGE file with the lm-eval
``medqa_4options`` prompt (``Question: ...\\nA. ...\\nAnswer:`` with continuations " A".." D"):

* lm-eval 0.4.13 runs a local-file task (``dataset_path: json`` + ``dataset_kwargs.data_files`` -> the MIRAGE jsonl)
  through ``simple_evaluate`` with its ``HFLM`` model;
* clinforge runs ``clinforge.eval.eval_runner.evaluate`` (task ``medqa``: cache, item log and summary included).

Both use the same already-loaded model folder, the same batch size, float32 on the same device. Timed: the whole
evaluation call of each (data loading, prompt building, tokenisation, scoring, aggregation). Compared: the
predicted option of every question (argmax of the four log-likelihoods) and the largest absolute difference of the
log-likelihoods. Prints ``RESULT speedup=X identical=Y clinforge_qps=A lmeval_qps=B`` last.

Usage: python benchmarks/eval_throughput.py [--limit N] [--batch-size 32] [--hidden 512 --layers 4 --vocab 8000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

MEDQA = "mirage/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl"
TASK_YAML = """task: medqa_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
output_type: multiple_choice
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nA. {{{{options.A}}}}\\nB. {{{{options.B}}}}\\nC. {{{{options.C}}}}\\nD. {{{{options.D}}}}\\nAnswer:"
doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(answer_idx)}}}}"
doc_to_choice: ['A', 'B', 'C', 'D']
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def run_lmeval(model_dir: Path, data_file: Path, limit: int | None, batch_size: int, device: str, workdir: Path):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    task_dir = workdir / "lmeval_tasks"
    task_dir.mkdir(exist_ok=True)
    (task_dir / "medqa_local.yaml").write_text(TASK_YAML.format(data_file=data_file), encoding="utf-8")
    lm = HFLM(pretrained=str(model_dir), batch_size=batch_size, device=device, dtype="float32")
    manager = TaskManager(include_path=str(task_dir))
    start = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=["medqa_local"], task_manager=manager, limit=limit, log_samples=True,
                          num_fewshot=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                          fewshot_random_seed=0)
    seconds = time.perf_counter() - start
    samples = sorted(out["samples"]["medqa_local"], key=lambda s: s["doc_id"])
    lls = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    return seconds, lls, out["results"]["medqa_local"]


def run_clinforge(model_dir: Path, limit: int | None, batch_size: int, device: str, workdir: Path):
    from clinforge.eval.eval_runner import EvalConfig, evaluate
    from clinforge.models.backends.hf_inprocess import HFBackend

    backend = HFBackend(str(model_dir), batch_size=batch_size, device=device, dtype="float32")
    config = EvalConfig(model=f"hf:{model_dir}", tasks=["medqa"], out=str(workdir / "clinforge_run"), limit=limit,
                        batch_size=batch_size, chunk_items=256)
    start = time.perf_counter()
    summary = evaluate(config, backend=backend, progress=False)
    seconds = time.perf_counter() - start
    text = (workdir / "clinforge_run" / "items" / "medqa.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    rows.sort(key=lambda r: r["index"])
    return seconds, [r["loglikelihoods"] for r in rows], summary["tasks"]["medqa"]


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="questions (default: all 1,273)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-dir", default=None, help="reuse/keep the tiny model here")
    args = parser.parse_args()

    import torch

    from _tinylm import big_corpus, build_tiny_lm
    from clinforge.core.paths import data_root

    root = data_root().resolve()
    data_file = root / MEDQA
    workdir = Path(tempfile.mkdtemp(prefix="eval_throughput_"))
    model_dir = Path(args.model_dir) if args.model_dir else workdir / "model"
    build_tiny_lm(model_dir, root, vocab_size=args.vocab, hidden_size=args.hidden, layers=args.layers,
                  heads=max(1, args.hidden // 64), intermediate_size=4 * args.hidden, corpus=big_corpus(root))
    n_params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(
        model_dir).parameters())
    vocab = len(__import__("transformers").AutoTokenizer.from_pretrained(model_dir))
    print(f"model: {n_params / 1e6:.1f}M parameters, hidden {args.hidden}, {args.layers} layers, vocab {vocab}; "
          f"device {args.device}; torch threads {torch.get_num_threads()}; batch size {args.batch_size}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    lm_s, lm_lls, lm_res = run_lmeval(model_dir, data_file, args.limit, args.batch_size, args.device, workdir)
    cf_s, cf_lls, cf_res = run_clinforge(model_dir, args.limit, args.batch_size, args.device, workdir)
    if len(lm_lls) != len(cf_lls):
        raise SystemExit(f"question counts differ: lm-eval {len(lm_lls)}, clinforge {len(cf_lls)}")
    n = len(cf_lls)
    same = sum(argmax(a) == argmax(b) for a, b in zip(lm_lls, cf_lls, strict=True))
    max_diff = max(abs(x - y) for a, b in zip(lm_lls, cf_lls, strict=True) for x, y in zip(a, b, strict=True))
    print(f"lm-eval   : {n} questions in {lm_s:.2f}s ({n / lm_s:.2f} q/s), acc {lm_res.get('acc,none')}")
    print(f"clinforge : {n} questions in {cf_s:.2f}s ({n / cf_s:.2f} q/s), acc {cf_res['acc']}")
    print(f"identical predictions: {same}/{n}; max |loglikelihood difference| = {max_diff:.3g}")
    print(f"RESULT speedup={lm_s / cf_s:.2f} identical={same / n:.4f} clinforge_qps={n / cf_s:.2f} "
          f"lmeval_qps={n / lm_s:.2f}")


if __name__ == "__main__":
    main()
