"""The evaluation runner: tasks x model -> per-item JSONL, summary.json, report.html, resumable and shardable.

How a run goes, per task:

1. read the task's records (``--limit N``: the first N in file order); in a sharded run (``accelerate launch`` /
   ``torchrun``: ``RANK``/``WORLD_SIZE`` set) rank r takes items ``index % world_size == r``;
2. skip items already in the item log (a rerun resumes), build the requests of the others and sort the items by
   prompt length, longest first, so batches hold prompts of similar length;
3. in chunks, look every request up in the SQLite request cache (model fingerprint + request hash), send only the
   missing ones to the backend (which batches them again and shares prefixes), store the results, score the items
   and append them to the item log (flushed and fsynced);
4. rank 0 waits for the other ranks, merges their logs into ``items/TASK.jsonl`` (de-duplicated by id, in data
   order), aggregates, and writes ``summary.json``, ``run.json`` and ``report.html``.

Definitions written into ``summary.json``: accuracy CIs are percentile bootstrap intervals (1000 resamples, the run's
seed) over items; the ``multimedqa`` group reports ``acc_macro`` (unweighted mean of its tasks' acc) and
``acc_micro`` (pooled over all items of its tasks, with a bootstrap CI).
"""

from __future__ import annotations

import inspect
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError, ConfigError
from clinforge.core.interrupts import rerun_command, resume_note
from clinforge.eval.cache import ItemLog, RequestCache, dedupe, read_rows, request_key
from clinforge.eval.tasks.base import GROUPS, MODES, Task, all_task_names, expand_tasks, get_task

RESUME_KEYS = ("model", "limit", "num_fewshot", "seed", "mode", "cot", "max_new_tokens", "chat")
DEFINITIONS = {
    "acc": "share of items whose prediction equals the gold answer; loglikelihood mode: argmax of summed "
           "continuation log-likelihoods (lm-evaluation-harness acc)",
    "acc_norm": "as acc with each log-likelihood divided by the character length of the choice (lm-eval acc_norm)",
    "acc_circular": "share of items answered right under every cyclic shift of the options",
    "acc_ci": "95% percentile bootstrap CI over items, 1000 resamples, seeded with the run's seed",
    "unparsed": "generated answers that match no allowed answer (scored wrong)",
    "abstained": "generated answers that decline to answer (scored wrong, counted separately)",
    "empty": "empty generated outputs (score 0; for multiple choice also counted in unparsed)",
    "score": "items/TASK.jsonl: the item's score: acc (multiple choice), flag_acc (medec), ROUGE-L F1 against the "
             "best reference (text tasks)",
    "rougeL": "text tasks: mean ROUGE-L F1 over items (rouge-score-identical, best reference per item); rouge1, "
              "rouge2, rougeLsum likewise (clinforge.eval.metrics.rouge)",
    "rougeL_ci": "95% percentile bootstrap CI of the mean per-item ROUGE-L F1, 1000 resamples, the run's seed",
    "bleu": "sacrebleu corpus BLEU, 0-100 (signature in bleu_signature)",
    "bertscore_f1": "mean BERTScore F1 (bert-score library; model and layer in bertscore_model/_layer)",
    "acc_macro": "group: unweighted mean of its tasks' acc",
    "acc_macro_ci": "group: 95% percentile bootstrap CI of acc_macro (items resampled within each task, 1000 "
                    "resamples, the run's seed)",
    "acc_micro_ci": "group: 95% percentile bootstrap CI of acc_micro (as acc_ci)",
    "acc_micro": "group: acc pooled over all items of its tasks",
    "probs": "softmax over the options' summed log-likelihoods (the model's option distribution)",
    "ece": "expected calibration error of probs, 10 equal-width bins (clinforge.eval.metrics.calibration)",
    "brier": "multi-class Brier score of probs (clinforge.eval.metrics.calibration)",
    "ece_ci": "95% percentile bootstrap CI of ece over questions (method, resamples and seed in calibration_ci)",
    "brier_ci": "95% percentile bootstrap CI of brier over questions (method, resamples and seed in calibration_ci)",
    "calibration_bins": "reliability bins (lower, upper], count, accuracy, mean confidence; null where a bin is empty",
    "null": "a figure that is undefined for the data (e.g. an empty bin); summary.json is strict JSON, never NaN",
    "n": "items scored (after --limit and, for text tasks, leaving out records with no reference)",
    "n_correct": "items scored right (acc * n)",
    "acc_norm_ci": "95% percentile bootstrap CI of acc_norm (as acc_ci)",
    "acc_circular_ci": "95% percentile bootstrap CI of acc_circular (as acc_ci)",
    "parsed": "generated answers that match one allowed answer",
    "calibration_ci": "how ece_ci and brier_ci were computed (method, resamples, seed, alpha)",
    "skipped_no_reference": "records of a text task with no reference text, left out (cannot be scored)",
    "flag_acc": "medec: share of notes whose error flag (Error: yes/no) is right; unparsable = wrong",
    "flag_acc_ci": "95% percentile bootstrap CI of flag_acc (as acc_ci)",
    "sentence_acc": "medec: share of notes whose error sentence id is right (-1 for a correct note); unparsable = wrong",
    "sentence_acc_ci": "95% percentile bootstrap CI of sentence_acc (as acc_ci)",
    "n_with_error": "medec: notes with an error and a gold corrected sentence (the correction_* population)",
    "correction_": "medec: correction_X = metric X of the predicted corrected sentence vs the gold one, over the "
                   "n_with_error notes (a missing correction is the empty string and scores 0)",
    "rouge": "rouge1/rouge2/rougeLsum(_precision/_recall): rouge-score-identical mean over items, best reference "
             "per item; use_stemmer: Porter stemming; n_texts_without_rouge_tokens: texts with no token ROUGE counts",
    "bertscore": "bertscore_*: bert-score library, mean over items; n_empty: empty predictions (BERTScore 0)",
    "chexpert": "chexpert_*: F1 of CheXpert-style labels of generated vs reference reports, 14 and 5 observations "
                "(clinforge.eval.metrics.chexpert)",
    "distinct": "distinct-n: distinct n-grams over total n-grams of all outputs (Li et al. 2016)",
    "gleu": "gleu: nltk corpus GLEU; gleu_sentence_mean: mean of nltk sentence GLEU",
    "cider": "cider: pycocoevalcap CIDEr-D on whitespace tokens (cider_sigma: its Gaussian length penalty)",
    "meteor": "meteor: pycocoevalcap METEOR (Java); meteor_sentence_mean: mean per-item METEOR",
}

_DEFINITION_PREFIXES = ("correction_", "rouge", "bleu", "bertscore", "chexpert", "distinct", "gleu", "cider",
                         "meteor")
_TASK_INFO_KEYS = ("mode", "reader", "path", "prompt_source", "fewshot_source", "description")


def definition_of(key: str) -> str | None:
    """The definition of a summary key: its own entry, else its family's (``rouge2_recall`` -> ``rouge``).

    Example:
        >>> definition_of("bleu_bp").startswith("sacrebleu")
        True
    """
    if key in DEFINITIONS:
        return DEFINITIONS[key]
    if key.endswith("_ci") and definition_of(key[:-3]):
        return ("95% percentile bootstrap CI of " + key[:-3] + " over items, 1000 resamples seeded with the run's "
                "seed, the same resamples for every text metric (clinforge.eval.metrics.ci)")
    if key in ("use_stemmer", "n_texts_without_rouge_tokens"):
        return DEFINITIONS["rouge"]
    if key == "n_empty":
        return DEFINITIONS["bertscore"]
    for prefix in _DEFINITION_PREFIXES:
        if key.startswith(prefix):
            return DEFINITIONS[prefix]
    return None


def _strict_json(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by None, so summary.json is valid JSON (jq, JSON.parse)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


@dataclass
class EvalConfig:
    """Everything that defines an evaluation run (stored in ``DIR/eval_config.json``)."""

    model: str
    tasks: list[str]
    out: str
    limit: int | None = None
    num_fewshot: int = 0
    seed: int = 0
    batch_size: int = 8
    mode: str | None = None  # None: each task's default mode
    cot: bool = False
    chunk_items: int = 64
    max_new_tokens: int | None = None  # override every task's generation budget
    chat: bool = False  # generate mode: send each prompt as one user turn through the model's chat template
    backend_options: dict[str, Any] = field(default_factory=dict)


def shard_info() -> tuple[int, int]:
    """(rank, world_size) from the launcher's environment (``accelerate launch``, ``torchrun``), else (0, 1)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _barrier(world: int) -> None:
    """Wait for every shard process (a gloo process group: barriers only, so CPU and GPU runs alike)."""
    if world <= 1:
        return
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        # the launcher (accelerate launch / torchrun) set MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=48))
    dist.barrier()


def _call(fn: Any, requests: list[Any], progress: Any) -> list[Any]:
    try:
        takes_progress = "progress" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_progress = False
    return fn(requests, progress=progress) if takes_progress else fn(requests)


def _check_resume(out: Path, config: EvalConfig, overwrite: bool) -> list[str]:
    """Refuse to resume a run made with other settings; returns every task name the run directory now holds."""
    from clinforge.core.io import atomic_write_json

    path = out / "eval_config.json"
    current = asdict(config)
    # a run that never scored an item (a wrong model path, a crash while loading) binds nothing: its corrected
    # command must start it afresh instead of being refused for "different settings"
    if path.exists() and not overwrite and _has_results(out):
        previous = json.loads(path.read_text(encoding="utf-8"))
        differ = [k for k in RESUME_KEYS if previous.get(k) != current.get(k)]
        if differ:
            raise ClinforgeError(f"{out} holds a run with different {', '.join(differ)}; resuming would mix results "
                                 "(use another --out or --overwrite)")
        current["tasks"] = list(dict.fromkeys(previous.get("tasks", []) + current["tasks"]))
    atomic_write_json(path, current)
    return list(current["tasks"])


def _has_results(out: Path) -> bool:
    """Whether a run folder holds a summary or at least one scored item."""
    if (out / "summary.json").is_file():
        return True
    return any(read_rows(p) for p in (out / "items").glob("*.jsonl")) if (out / "items").is_dir() else False


def _scored_counts(out: Path, names: list[str]) -> dict[str, int]:
    """Items of each task that reached the item log (what a resumed run reuses)."""
    return {n: len({row["id"] for p in _item_paths(out, n) for row in read_rows(p)}) for n in names}


def evaluate(config: EvalConfig, *, backend: Any = None, overwrite: bool = False, progress: bool = True,
             data_root: Path | None = None) -> dict[str, Any]:
    """Run (or resume) an evaluation and return the summary (also written to ``DIR/summary.json``).

    Example:
        >>> cfg = EvalConfig(model="hf:runs/tiny", tasks=["medqa"], out="runs/eval", limit=20)  # doctest: +SKIP
        >>> evaluate(cfg)["tasks"]["medqa"]["acc"]  # doctest: +SKIP
        0.25
    """
    from clinforge.core.run_records import RunRecord, prepare_output_dir

    if config.limit is not None and config.limit < 0:
        raise ConfigError(f"--limit must be >= 0 (got {config.limit})", key="limit")
    if config.num_fewshot < 0:
        raise ConfigError(f"--num-fewshot must be >= 0 (got {config.num_fewshot})", key="num_fewshot")
    names = expand_tasks(config.tasks)
    unknown = [n for n in names if not (n.endswith((".yaml", ".yml")) and Path(n).is_file()) and n not in
               all_task_names()]
    if unknown:
        raise ClinforgeError(f"unknown task {', '.join(unknown)}; valid: {', '.join(all_task_names())}")
    if config.mode is not None and config.mode not in MODES:
        raise ClinforgeError(f"unknown mode {config.mode!r}; valid: {', '.join(MODES)}")
    tasks = [get_task(n) for n in names]
    from clinforge.eval.metrics import METRICS

    valid_metrics = METRICS.names()
    for task in tasks:
        # before any model call: a typo in a task's metric list must not surface after hours of generation
        for metric in (*getattr(task, "metrics", ()), *getattr(task, "correction_metrics", ())):
            if metric not in valid_metrics:
                raise ConfigError(f"task {task.name}: unknown metric {metric!r}; valid: {', '.join(valid_metrics)}",
                                  key="metrics")
        task.check_mode(config.mode or task.default_mode)
        if config.chat and (config.mode or task.default_mode) != "generate":
            raise ClinforgeError(f"--chat applies to generated answers; task {task.name} would be scored in "
                                 f"{config.mode or task.default_mode} mode (add --mode generate)")
        if config.cot and (config.mode or task.default_mode) != "generate":
            raise ClinforgeError(f"--cot prompts for generated reasoning; task {task.name} would be scored in "
                                 f"{config.mode or task.default_mode} mode (add --mode generate)")

    # every task's data and few-shot file is read before the run folder is touched or the model loaded: a missing
    # file fails in a second, not after minutes of model loading, and leaves nothing behind
    data = {task.name: _task_data(task, config, data_root) for task in tasks}

    rank, world = shard_info()
    out = Path(config.out)
    run_task_names = names
    if rank == 0:
        prepare_output_dir(out, overwrite=overwrite, resume=not overwrite)
        run_task_names = expand_tasks(_check_resume(out, config, overwrite))
    _barrier(world)
    run = RunRecord(out, command="eval", config=asdict(config), seed=config.seed) if rank == 0 else None
    own_backend = backend is None
    total = sum(len(records) for records, _ in data.values())

    def saved() -> str:
        counts = _scored_counts(out, names)
        per_task = ", ".join(f"{n} {c}" for n, c in counts.items())
        return (f"{sum(counts.values())} of {total} items scored ({per_task}) in {out}/items, requests in "
                f"{out}/cache.sqlite; the same command reuses them")

    try:
        with resume_note(saved, resume=rerun_command(drop=("--overwrite",))):
            if backend is None:
                backend = _load_backend(config)
            fingerprint = backend.fingerprint() if hasattr(backend, "fingerprint") else config.model
            cache = RequestCache(out / "cache.sqlite", fingerprint)
            for task in tasks:
                if run is not None:
                    run.add_input(task.resolve(task.path, data_root))
                _run_task(task, config, backend, cache, out, rank, world, progress, data[task.name])
        cache.close()
        _barrier(world)
        if rank != 0:
            return {}
        # summary.json covers every task of the run directory (eval_config.json lists them all), not only the
        # tasks of this invocation: `--tasks medqa` then `--tasks pubmedqa` on one DIR summarises both
        earlier = [get_task(n) for n in run_task_names if n not in names and (out / "items" / f"{n}.jsonl").exists()]
        summary = summarize(config, [*earlier, *tasks], out)
        from clinforge.eval.eval_report_html import write_report

        write_report(out, summary)
        assert run is not None
        return run.finish(summary)
    except BaseException as exc:
        if run is not None:
            run.fail(exc)
        raise
    finally:
        if own_backend and backend is not None:
            backend.close()


def _load_backend(config: EvalConfig) -> Any:
    """Build the backend; an option its constructor does not take is an error naming the valid ones."""
    from clinforge.models.backends import BACKENDS, load_backend, parse_spec

    options = {"batch_size": config.batch_size, **config.backend_options}
    cls = BACKENDS.get(parse_spec(config.model)[0])
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            valid = ", ".join(sorted(k for k in params if k not in ("self", "target")))
            raise ClinforgeError(f"unknown backend option {', '.join(unknown)} for {cls.__name__}; valid: {valid}")
    return load_backend(config.model, **options)


def _item_paths(out: Path, task: str) -> list[Path]:
    items = out / "items"
    return [items / f"{task}.jsonl", *sorted(items.glob(f"{task}.rank*.jsonl"))]


def _task_data(task: Task, config: EvalConfig, data_root: Path | None) -> tuple[list[Any], list[Any]]:
    """The task's evaluated records and its few-shot pool (empty when zero-shot)."""
    records = task.records(data_root, config.limit)
    pool: list[Any] = []
    if config.num_fewshot > 0:
        exclude = {r.id for r in task.records(data_root, None)} if task.fewshot_exclude_eval else None
        pool = task.fewshot_pool(data_root, exclude_ids=exclude)
    return records, pool


def _run_task(task: Task, config: EvalConfig, backend: Any, cache: RequestCache, out: Path, rank: int, world: int,
              show_progress: bool, data: tuple[list[Any], list[Any]]) -> None:
    from clinforge.core.progress import progress_bar

    mode = config.mode or task.default_mode
    records, pool = data
    done = {row["id"] for path in _item_paths(out, task.name) for row in read_rows(path)}
    log_path = out / "items" / (f"{task.name}.jsonl" if world == 1 else f"{task.name}.rank{rank}.jsonl")
    log = ItemLog(log_path)
    pending = []
    for index, record in enumerate(records):
        if index % world != rank or record.id in done:
            continue
        shots = task.sample_fewshot(pool, config.num_fewshot, config.seed, record.id)
        plan = task.build(record, mode, shots, config.cot)
        for req in plan["requests"]:
            if config.max_new_tokens is not None and hasattr(req, "max_new_tokens"):
                req.max_new_tokens = config.max_new_tokens
            if config.chat and getattr(req, "prompt", None) is not None:
                # few-shot examples and question in one user turn (lm-eval's default single-turn rendering)
                req.messages, req.prompt = [{"role": "user", "content": req.prompt}], None
        pending.append((index, record, plan))
    pending.sort(key=lambda item: -len(item[2]["prompt"]))
    total = sum(len(p["requests"]) for _, _, p in pending)
    mine = sum(1 for index in range(len(records)) if index % world == rank)
    if done and rank == 0:  # always said, also with --no-progress: it explains why a rerun is fast
        import sys

        print(f"{task.name}: {mine - len(pending)} of {mine} items already scored in {out}/items, reusing them",
              file=sys.stderr, flush=True)
    bar = progress_bar(total=total, desc=f"{task.name} ({mode})", unit="req", enabled=show_progress and rank == 0)
    try:
        for start in range(0, len(pending), max(1, config.chunk_items)):
            chunk = pending[start:start + config.chunk_items]
            results = _resolve(chunk, backend, cache, bar)
            rows = []
            for (index, record, plan), res in zip(chunk, results, strict=True):
                row = {"task": task.name, "id": record.id, "index": index, "mode": mode, "prompt": plan["prompt"]}
                if plan["kind"] == "loglikelihood":
                    row["continuations"] = sorted({r.continuation for r in plan["requests"]},
                                                  key=[r.continuation for r in plan["requests"]].index)
                row.update(task.score(record, plan, res, config.cot))
                rows.append(row)
            log.append(rows)
    finally:
        bar.close()
        log.close()


def _resolve(chunk: list[tuple[int, Any, dict]], backend: Any, cache: RequestCache, bar: Any) -> list[list[Any]]:
    """Results of every request of the chunk's items: from the cache, else from the backend (then cached)."""
    keyed: list[list[str]] = []
    todo: dict[str, dict[str, Any]] = {"loglikelihood": {}, "generate": {}}
    for _, _, plan in chunk:
        keys = [request_key(plan["kind"], r) for r in plan["requests"]]
        keyed.append(keys)
        for key, req in zip(keys, plan["requests"], strict=True):
            todo[plan["kind"]][key] = req
    all_keys = [k for keys in keyed for k in keys]
    found = cache.get_many(list(dict.fromkeys(all_keys)))
    bar.update(sum(1 for k in all_keys if k in found))
    for kind, requests in todo.items():
        missing = [k for k in requests if k not in found]
        if not missing:
            continue
        fn = backend.loglikelihood if kind == "loglikelihood" else backend.generate
        values = _call(fn, [requests[k] for k in missing], bar.update)
        if len(values) != len(missing):
            raise ClinforgeError(f"backend returned {len(values)} results for {len(missing)} {kind} requests")
        new = {k: (list(v) if isinstance(v, tuple) else v) for k, v in zip(missing, values, strict=True)}
        cache.put_many(new)
        found.update(new)
    return [[found[k] for k in keys] for keys in keyed]


def _macro_ci(per_task: list[list[float]], seed: int, n_resamples: int = 1000) -> list[float]:
    """95% percentile bootstrap CI of the unweighted mean of task accuracies, items resampled within each task.

    Example:
        >>> lo, hi = _macro_ci([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]], seed=0); 0.0 <= lo <= hi <= 1.0
        True
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    means = np.zeros(n_resamples)
    for scores in per_task:
        values = np.asarray(scores, dtype=float)
        means += values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
    means /= len(per_task)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarize(config: EvalConfig, tasks: list[Task], out: Path) -> dict[str, Any]:
    """Merge shard logs into ``items/TASK.jsonl`` and aggregate every task and group."""
    from clinforge.core.io import write_jsonl
    from clinforge.eval.metrics.accuracy import accuracy_from_correct

    summary: dict[str, Any] = {
        "model": config.model, "seed": config.seed, "num_fewshot": config.num_fewshot, "limit": config.limit,
        "mode": config.mode, "cot": config.cot, "tasks": {}, "groups": {}, "definitions": DEFINITIONS,
    }
    rows_by_task: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        paths = _item_paths(out, task.name)
        rows = dedupe([row for p in paths for row in read_rows(p)])
        write_jsonl(out / "items" / f"{task.name}.jsonl", rows)
        for extra in paths[1:]:
            extra.unlink()
        rows_by_task[task.name] = rows
        mode = config.mode or task.default_mode
        result = task.aggregate(rows, config.seed, mode) if rows else {"n": 0}
        info = {k: v for k, v in task.info().items() if v}
        if not config.num_fewshot:  # a zero-shot run used no few-shot file: naming one would mislead
            info.pop("fewshot_source", None)
        result.update(mode=mode, **info)
        skipped = getattr(task, "skipped_no_reference", 0)
        if skipped:
            result["skipped_no_reference"] = skipped
        summary["tasks"][task.name] = result
    for group, members in GROUPS.items():
        ran = [m for m in members if m in rows_by_task and summary["tasks"][m].get("acc") is not None]
        if not ran:
            continue
        pooled = [row["acc"] for m in ran for row in rows_by_task[m]]
        micro = accuracy_from_correct(pooled, seed=config.seed)
        summary["groups"][group] = {
            "acc_macro": sum(summary["tasks"][m]["acc"] for m in ran) / len(ran),
            "acc_macro_ci": _macro_ci([[row["acc"] for row in rows_by_task[m]] for m in ran], config.seed),
            "acc_micro": micro["acc"], "acc_micro_ci": micro["acc_ci"], "n": micro["n"], "tasks": ran,
            "complete": len(ran) == len(members),
        }
    return _strict_json(summary)


__all__ = ["EvalConfig", "evaluate", "summarize", "shard_info", "DEFINITIONS", "definition_of"]
