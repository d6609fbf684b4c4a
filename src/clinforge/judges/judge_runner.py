"""Run judges over a JSONL file into a resumable run directory (what ``clinforge judge single|pairwise|rubric`` calls).

Input rows (one JSON object per line; ``prompt`` is a string or a list of ``{role, content}`` turns):

========  ===================================================================================================
kind      fields (required, then optional)
========  ===================================================================================================
single    ``id``, ``prompt``, ``response``; ``reference``, ``model``
pairwise  ``id``, ``prompt``, ``response_a``, ``response_b``; ``reference``, ``model_a``, ``model_b``
rubric    ``id``, ``prompt``, ``response``; ``rubric`` (per-item criteria list, as HealthBench; HealthBench's
          ``prompt_id`` and ``rubrics`` names are accepted), ``model``
axes      ``id``, ``prompt``, ``response``, ``model`` (Med-PaLM axes; also writes ``labels.jsonl`` for
          ``clinforge judge agreement --judge-labels``)
========  ===================================================================================================

Output directory: ``run.json`` (command, config, input hashes, versions), ``items.jsonl`` (one row per item: the
item, each judge's raw outputs and parsed verdicts, the jury verdict), ``summary.json`` (:mod:`.judge_summary`).
Running again on the same directory resumes: item ids already in ``items.jsonl`` are skipped; a row cut short by
a crash (the last line, without newline) is dropped and redone. Resuming with other judges or settings is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError, DataError
from clinforge.core.io import read_jsonl
from clinforge.core.run_records import RunRecord, prepare_output_dir
from clinforge.judges.base import JUDGES
from clinforge.judges.judge_summary import summarize_run
from clinforge.judges.jury import Jury
from clinforge.models.backends.base import Backend, load_backend

REQUIRED = {"single": ("id", "prompt", "response"), "pairwise": ("id", "prompt", "response_a", "response_b"),
            "rubric": ("id", "prompt", "response"), "axes": ("id", "prompt", "response", "model")}
OPTIONAL = {"single": ("reference", "model"), "pairwise": ("reference", "model_a", "model_b"),
            "rubric": ("rubric", "model"), "axes": ()}
KINDS = tuple(REQUIRED)


def _check_item_rubric(rubric: Any, path: str | os.PathLike, lineno: int) -> None:
    from pydantic import ValidationError

    from clinforge.judges.rubric import Rubric

    if not isinstance(rubric, list):
        raise DataError("must be a list of {criterion, points}", file=str(path), line=lineno, field="rubric")
    try:
        Rubric(name="item", criteria=rubric)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"][1:])
        raise DataError(err["msg"], file=str(path), line=lineno, field=f"rubric.{where}" if where else "rubric") from None


def item_key(kind: str, item: dict[str, Any]) -> tuple[str, ...]:
    """What identifies an item: its id, or (id, model) for ``axes`` (several models answer one question).

    Example:
        >>> item_key("single", {"id": 7, "model": "m"}), item_key("axes", {"id": 7, "model": "m"})
        (('7',), ('7', 'm'))
    """
    return (str(item["id"]), str(item["model"])) if kind == "axes" else (str(item["id"]),)


def load_items(path: str | os.PathLike, kind: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Read and validate judge input rows; errors name the file, line and field (never the text).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
        >>> _ = p.write_text('{"id": 1, "prompt": "Q?", "response": "A."}\\n')
        >>> load_items(p, "single")[0]["id"]
        '1'
    """
    if kind not in REQUIRED:
        raise ConfigError(f"unknown judge kind {kind!r}; valid: {', '.join(KINDS)}")
    items, seen = [], set()
    for lineno, row in read_jsonl(path):
        if kind == "rubric":  # HealthBench rows name these prompt_id and rubrics
            for alias, key in (("prompt_id", "id"), ("rubrics", "rubric")):
                if key not in row and alias in row:
                    row[key] = row.pop(alias)
        for key in REQUIRED[kind]:
            if key not in row or row[key] is None:
                raise DataError("missing", file=str(path), line=lineno, field=key)
        for key in REQUIRED[kind][2:]:
            if not isinstance(row[key], str):
                raise DataError("must be a string", file=str(path), line=lineno, field=key)
        prompt = row["prompt"]
        if not isinstance(prompt, str) and not (isinstance(prompt, list) and all(
                isinstance(t, dict) and isinstance(t.get("role"), str) and isinstance(t.get("content"), str)
                for t in prompt)):
            raise DataError("must be a string or a list of {role, content} turns", file=str(path), line=lineno,
                            field="prompt")
        if kind == "rubric" and row.get("rubric") is not None:
            _check_item_rubric(row["rubric"], path, lineno)
        key = item_key(kind, row)
        if key in seen:
            raise DataError("duplicate " + ("(id, model)" if kind == "axes" else "id"), file=str(path), line=lineno,
                            field="id")
        seen.add(key)
        item = {k: row[k] for k in REQUIRED[kind] + OPTIONAL[kind] if row.get(k) is not None}
        item["id"] = str(row["id"])
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    return items


def read_done(path: Path) -> list[dict]:
    """Rows already written; a truncated final line (a crash mid-write) is removed from the file and redone.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "items.jsonl"; _ = p.write_text('{"id": "1"}\\n{"id": "2", "ver')
        >>> read_done(p), p.read_text()
        ([{'id': '1'}], '{"id": "1"}\\n')
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows, keep = [], 0
    for i, line in enumerate(lines):
        if not line.strip():
            keep += len(line) + 1
            continue
        try:
            rows.append(json.loads(line))
            keep += len(line) + 1
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # last line without newline: cut short by a crash
                with open(path, "r+b") as fh:
                    fh.truncate(min(keep, len(data)))
                break
            raise DataError("invalid JSON in an existing results file", file=str(path), line=i + 1) from None
    return rows


def _previous_run(out: Path) -> dict[str, Any] | None:
    """run.json of an earlier run in ``out`` (also one killed before its first batch was written), else None."""
    meta = out / "run.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def build_judges(kind: str, specs: list[str], *, backends: list[Backend] | None = None, rubric: Any = None,
                 scale: tuple[float, float] = (1, 10), max_new_tokens: int = 512, seed: int = 0,
                 backend_options: dict[str, Any] | None = None, system_prompt: bool = True) -> list[Any]:
    """One judge of ``kind`` per SPEC (or per ready backend), named by its SPEC."""
    judge_cls = JUDGES.get(kind)
    backends = backends or [load_backend(spec, **(backend_options or {})) for spec in specs]
    judges = []
    for spec, backend in zip(specs, backends, strict=True):
        opts: dict[str, Any] = {"name": spec, "max_new_tokens": max_new_tokens, "seed": seed}
        if not system_prompt:  # some chat templates (e.g. Gemma's) reject a system turn
            opts["system_prompt"] = None
        if kind == "single":
            opts["scale"] = scale
        if kind == "rubric":
            judges.append(judge_cls(backend, rubric, **opts))
        else:
            judges.append(judge_cls(backend, **opts))
    return judges


def run_judging(kind: str, judge_specs: list[str], input_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                rubric: str | os.PathLike | None = None, aggregation: str = "mean", scale: tuple[float, float] = (1, 10),
                seed: int = 0, limit: int | None = None, batch_size: int = 8, max_new_tokens: int = 512,
                n_boot: int = 1000, candidate_models: list[str] | None = None, overwrite: bool = False,
                backends: list[Backend] | None = None, backend_options: dict[str, Any] | None = None,
                system_prompt: bool = True, progress: bool = True) -> dict[str, Any]:
    """Judge every item of ``input_path`` with every judge; write the run directory; return the summary.

    Example:
        >>> run_judging("pairwise", ["openai:http://127.0.0.1:8000/v1#judge"], "pairs.jsonl", "runs/j1")  # doctest: +SKIP
        {'kind': 'pairwise', 'n_items': 50, ...}
    """
    if not judge_specs:
        raise ConfigError("give at least one --judge SPEC")
    if len(set(judge_specs)) != len(judge_specs):
        raise ConfigError("the same --judge SPEC is given twice")
    from clinforge.judges.jury import AGGREGATIONS

    if aggregation not in AGGREGATIONS:  # checked even for one judge: a typo should not wait for a second judge
        raise ConfigError(f"unknown aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}", key="--aggregation")
    items = load_items(input_path, kind, limit)
    config = {"kind": kind, "judges": list(judge_specs), "rubric": str(rubric) if rubric else None,
              "aggregation": aggregation if len(judge_specs) > 1 else None, "scale": list(scale), "seed": seed,
              "max_new_tokens": max_new_tokens, "system_prompt": system_prompt}
    out = Path(out_dir)
    items_path = out / "items.jsonl"
    previous_meta = _previous_run(out) if not overwrite else None
    resuming = previous_meta is not None and previous_meta.get("command") == f"judge {kind}"
    if resuming:
        previous = previous_meta.get("config", {})
        changed = sorted(k for k in config if previous.get(k) != config[k])
        if changed and read_done(items_path):  # a run that judged nothing binds nothing: its correction starts anew
            raise ConfigError(f"{out} holds a run with other settings ({', '.join(changed)}); "
                              "use another --out or pass --overwrite")
    prepare_output_dir(out, overwrite=overwrite or (resuming and not read_done(items_path)), resume=resuming)
    done = read_done(items_path) if resuming else []
    done_ids = {item_key(kind, row) for row in done}
    todo = [it for it in items if item_key(kind, it) not in done_ids]
    if done_ids:
        import sys

        print(f"judge {kind}: {len(items) - len(todo)} of {len(items)} items already judged in {items_path}, "
              "reusing them", file=sys.stderr, flush=True)

    inputs = [input_path] + ([rubric] if rubric else [])
    record = RunRecord(out, command=f"judge {kind}", config={**config, "resumed_items": len(done_ids)},
                       inputs=inputs, seed=seed)
    try:
        from clinforge.judges.rubric import load_rubric

        rubric_obj = load_rubric(rubric) if kind == "rubric" else None
        judges = build_judges(kind, judge_specs, backends=backends, rubric=rubric_obj, scale=scale,
                              max_new_tokens=max_new_tokens, seed=seed, backend_options=backend_options,
                              system_prompt=system_prompt)
        jury = Jury(judges, aggregation) if len(judges) > 1 else None
        _judge_items(kind, judges, jury, todo, items_path, batch_size, progress)
        rows = read_done(items_path)
        by_key = {item_key(kind, row): row for row in rows}
        rows = [by_key[item_key(kind, it)] for it in items if item_key(kind, it) in by_key]  # input order
        summary = summarize_run(kind, rows, [j.describe() for j in judges], seed=seed, n_boot=n_boot,
                                candidates=candidate_models, aggregation=config["aggregation"])
        summary["resumed_items"] = len(done_ids & {item_key(kind, it) for it in items})
        if kind == "axes":
            _write_labels(out / "labels.jsonl", rows, judges[0].name if jury is None else None)
        return record.finish(summary)
    except BaseException as exc:
        record.fail(exc)
        from clinforge.core.interrupts import note_if_interrupted, rerun_command

        note_if_interrupted(exc, lambda: f"{len(read_done(items_path)) if items_path.exists() else 0} of {len(items)} "
                                         f"items judged in {items_path}; the same command reuses them",
                            rerun_command(drop=("--overwrite",)))
        raise
    finally:
        if backends is None:  # close what this function opened (GPU memory, HTTP connections)
            for judge in locals().get("judges", []):
                judge.backend.close()


def _write_labels(path: Path, rows: list[dict], judge_name: str | None) -> None:
    """Axis labels per (item_id, model) in the layout ``clinforge judge agreement --judge-labels`` reads; the jury's
    labels when several judges ran. Unparsable axes are left out (never filled in)."""
    from clinforge.core.io import write_jsonl

    out = []
    for row in rows:
        result = row["jury"] if judge_name is None else row["judges"][judge_name]
        labels = result.get("labels", result.get("value")) or {}
        out.append({"item_id": row["id"], "model": row["model"], **{k: v for k, v in labels.items() if v}})
    write_jsonl(path, out)


def _judge_items(kind: str, judges: list[Any], jury: Jury | None, todo: list[dict], items_path: Path,
                 batch_size: int, progress: bool) -> None:
    from clinforge.core.progress import progress_bar

    method = "compare_many" if kind == "pairwise" else "grade_many"
    bar = progress_bar(total=len(todo), desc=f"judge {kind}", unit="item", enabled=progress)
    with open(items_path, "a", encoding="utf-8") as fh:
        for start in range(0, len(todo), max(1, batch_size)):
            batch = todo[start:start + batch_size]
            per_judge = {j.name: getattr(j, method)(batch) for j in judges}
            for i, item in enumerate(batch):
                row = {**item, "judges": {name: res[i].to_dict() for name, res in per_judge.items()}}
                if jury is not None:
                    row["jury"] = jury.combine([{name: res[i] for name, res in per_judge.items()}])[0].to_dict()
                    row["jury"].pop("per_judge")  # already under "judges"
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(batch))
    bar.close()
