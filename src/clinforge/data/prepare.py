"""``clinforge data prepare``: read sources, run ordered transforms, write a HF ``datasets`` folder and a data card.

A recipe (YAML) names the sources (any reader), the steps (any registered transform, in order) and a seed:

.. code-block:: yaml

    seed: 0
    sources:
      - {reader: jsonl, path: notes.jsonl, on_error: skip}
    steps:
      - {transform: deid, options: {mode: surrogate}}
      - {transform: dedup, options: {threshold: 0.8}}
      - {transform: split, options: {fractions: {train: 0.8, validation: 0.1, test: 0.1}}}
      - {transform: chat_format}

Relative paths (``path``, ``tokenizer``, ``ground_truth`` anywhere in the recipe) are resolved against the
recipe's folder when they exist there, otherwise kept as written (so hub ids pass through); ``$VAR`` /
``${VAR}`` are expanded, with ``CLINFORGE_DATA`` defaulting to the shared data folder. The recipe ``seed`` seeds
every RNG and is the default ``seed`` of each step that has one.

The run directory holds ``dataset/`` (``DatasetDict`` with one split per name when a ``split`` step runs, else a
single ``Dataset``; written with ``save_to_disk`` atomically), ``data_card.md`` / ``data_card.json``, and the
run record (``run.json``, ``summary.json``). Records are stored with one stable column layout (:data:`FEATURES`);
``meta`` is JSON-encoded. :func:`load_prepared` gives the Records back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from clinforge.core.config import StrictModel, apply_overrides, load_yaml, validate
from clinforge.core.errors import ConfigError, DataError, OutputExistsError
from clinforge.core.paths import data_root
from clinforge.data.prepare_resume import PrefixResume, resumable_step
from clinforge.data.prepared_dataset import features, load_prepared, record_to_row, row_to_record  # noqa: F401
from clinforge.data.records import Record, RecordKind
from clinforge.data.transforms.base import TRANSFORMS, Transform

PATH_KEYS = ("path", "tokenizer", "ground_truth")


class Source(StrictModel):
    """One input: a path read by a registered reader."""

    reader: str
    path: str
    name: str | None = Field(None, description="label in the data card (default: reader:file name)")
    options: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["skip", "fail"] = "fail"
    limit: int | None = Field(None, ge=1)

    @property
    def label(self) -> str:
        return self.name or f"{self.reader}:{Path(self.path).name}"


class Step(StrictModel):
    """One transform, by registered name, with its options; ``kinds`` limits it to records of those kinds."""

    transform: str
    options: dict[str, Any] = Field(default_factory=dict)
    kinds: list[RecordKind] | None = Field(None, description="apply only to these record kinds; others pass through")


class Output(StrictModel):
    """Where and how the prepared dataset is written."""

    dir: str | None = Field(None, description="run directory when --out is not given")


class Recipe(StrictModel):
    """A ``data prepare`` recipe: sources, ordered steps, output and seed."""

    name: str = "prepare"
    seed: int = 0
    sources: list[Source] = Field(min_length=1)
    steps: list[Step] = Field(default_factory=list)
    output: Output = Field(default_factory=Output)
    # where the recipe came from, so errors raised later (a transform's own option checks) still name file and line
    _file: str | None = PrivateAttr(None)
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)


def _expand(value: str, base: Path) -> str:
    if "CLINFORGE_DATA" not in os.environ:
        default = str(data_root().resolve())
        value = value.replace("${CLINFORGE_DATA}", default).replace("$CLINFORGE_DATA", default)
    expanded = os.path.expanduser(os.path.expandvars(value))
    if "$" in expanded:
        raise ConfigError(f"undefined environment variable in path {value!r}")
    p = Path(expanded)
    if not p.is_absolute() and (base / p).exists():
        return str((base / p).resolve())
    return expanded


def _resolve_paths(obj: Any, base: Path) -> Any:
    if isinstance(obj, dict):
        return {k: (_expand(v, base) if k in PATH_KEYS and isinstance(v, str) else _resolve_paths(v, base))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve_paths(v, base) for v in obj]
    return obj


def _check_names(recipe: Recipe, file: str | None, lines: dict[tuple, int]) -> None:
    from clinforge.data.readers import READERS

    labels: set[str] = set()
    for i, src in enumerate(recipe.sources):
        if src.reader not in READERS:
            raise ConfigError(f"unknown reader {src.reader!r}; valid: {', '.join(READERS.names())}", file=file,
                              line=lines.get(("sources", i, "reader")), key=f"sources.{i}.reader")
        if src.label in labels:
            raise ConfigError(f"two sources are labelled {src.label!r}; give them distinct names", file=file,
                              line=lines.get(("sources", i)), key=f"sources.{i}.name")
        labels.add(src.label)
        _check_reader_options(src.reader, src.on_error, src.options, ("sources", i), file, lines)
    for i, step in enumerate(recipe.steps):
        try:
            known = step.transform in TRANSFORMS
        except ModuleNotFoundError as exc:  # a declared built-in whose module is missing from this install
            raise ConfigError(f"transform {step.transform!r} is declared but its module {exc.name} cannot be "
                              "imported", file=file, line=lines.get(("steps", i, "transform")),
                              key=f"steps.{i}.transform") from None
        if not known:
            raise ConfigError(f"unknown transform {step.transform!r}; valid: {', '.join(TRANSFORMS.names())}",
                              file=file, line=lines.get(("steps", i, "transform")), key=f"steps.{i}.transform")
        if step.transform == "split" and step.kinds:
            raise ConfigError("a split step applies to every record (records of other kinds would have no split); "
                              "drop kinds here", file=file, line=lines.get(("steps", i, "kinds")),
                              key=f"steps.{i}.kinds")
        options_model = getattr(TRANSFORMS.get(step.transform), "Options", None)
        if options_model is not None and isinstance(options_model, type) and issubclass(options_model, StrictModel):
            prefix = ("steps", i, "options")
            sub = {k[3:]: v for k, v in lines.items() if k[:3] == prefix}
            try:
                validate(options_model, _step_options(recipe, step), lines=sub)
            except ConfigError as exc:
                key = ".".join(["steps", str(i), "options"] + ([exc.key] if exc.key else []))
                raise ConfigError(exc.message, file=file, line=exc.line or lines.get(prefix), key=key) from None
        for where, name in _nested_readers(step.options, ("steps", i, "options")):
            if name not in READERS:
                raise ConfigError(f"unknown reader {name!r}; valid: {', '.join(READERS.names())}", file=file,
                                  line=lines.get(where), key=".".join(map(str, where)))
            entry = _at(step.options, where[3:-1])
            options = entry.get("options") if isinstance(entry.get("options"), dict) else {}
            _check_reader_options(name, entry.get("on_error", "fail"), options, where[:-1], file, lines)


def _at(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _check_reader_options(reader: str, on_error: Any, options: dict[str, Any], where: tuple, file: str | None,
                          lines: dict[tuple, int]) -> None:
    """Build the reader once (cheap, no I/O) so an unknown or bad reader option fails while the recipe loads,
    naming the recipe file, line and key, before any run directory exists."""
    from clinforge.data.readers import get_reader

    try:
        get_reader(reader, on_error=on_error if on_error in ("skip", "fail") else "fail", **options)
    except ConfigError as exc:
        key_path = where + ("options",) + ((exc.key.split(".")[0],) if exc.key else ())
        line = lines.get(key_path) or lines.get(where + ("options",)) or lines.get(where)
        raise ConfigError(exc.message, file=file, line=line, key=".".join(map(str, key_path))) from None
    except (TypeError, ValueError) as exc:  # a reader taking fixed keyword arguments got an unknown or bad one
        raise ConfigError(str(exc), file=file, line=lines.get(where + ("options",)) or lines.get(where),
                          key=".".join(map(str, where + ("options",)))) from None


def _nested_readers(obj: Any, where: tuple) -> Iterator[tuple[tuple, str]]:
    """``reader: NAME`` entries inside step options (e.g. contamination benchmarks), with their key paths."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "reader" and isinstance(v, str):
                yield where + (k,), v
            else:
                yield from _nested_readers(v, where + (k,))
    elif isinstance(obj, list):
        for j, v in enumerate(obj):
            yield from _nested_readers(v, where + (j,))


def _step_options(recipe: Recipe, step: Step) -> dict[str, Any]:
    """The step's options plus the recipe seed as default ``seed`` when the transform takes one."""
    opts = dict(step.options)
    model = getattr(TRANSFORMS.get(step.transform), "Options", None)
    if "seed" not in opts and model is not None and "seed" in getattr(model, "model_fields", {}):
        opts["seed"] = recipe.seed
    return opts


def load_recipe(path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                data: dict[str, Any] | None = None) -> Recipe:
    """Load and validate a recipe file (or ``data``) with ``--set`` overrides; errors name file, line and key.

    Example:
        >>> r = load_recipe(data={"sources": [{"reader": "jsonl", "path": "x.jsonl"}]}, overrides=["seed=3"])
        >>> r.seed, r.sources[0].reader
        (3, 'jsonl')
    """
    if path is not None:
        raw, lines = load_yaml(path)
        base = Path(path).resolve().parent
    else:
        raw, lines, base = dict(data or {}), {}, Path.cwd()
    raw = apply_overrides(raw, overrides)
    file = str(path) if path is not None else None
    recipe = validate(Recipe, raw, file=file, lines=lines)
    _check_names(recipe, file, lines)
    resolved = Recipe.model_validate(_resolve_paths(recipe.model_dump(), base))
    resolved._file, resolved._lines = file, lines
    return resolved


def build_steps(recipe: Recipe) -> list[tuple[str, Transform]]:
    """Instantiate the recipe's transforms in order (labels ``1:dedup``, ``2:filter``, ...).

    Example:
        >>> r = load_recipe(data={"sources": [{"reader": "jsonl", "path": "x.jsonl"}],
        ...                       "steps": [{"transform": "dedup"}, {"transform": "split"}]})
        >>> [label for label, _ in build_steps(r)]
        ['1:dedup', '2:split']
    """
    from clinforge.data.transforms import get_transform

    steps = []
    for i, step in enumerate(recipe.steps):
        try:
            transform = get_transform(step.transform, **_step_options(recipe, step))
            transform.only_kinds = step.kinds  # read by run_pipeline and the data card
            steps.append((f"{i + 1}:{step.transform}", transform))
        except ConfigError as exc:  # e.g. a transform without an Options model checking its own keyword options
            key = exc.key.split(".", 1)[1] if exc.key and exc.key.startswith(f"{step.transform}.") else exc.key
            where = ("steps", i, "options") + ((key.split(".")[0],) if key else ())
            line = recipe._lines.get(where) or recipe._lines.get(("steps", i, "options")) or \
                recipe._lines.get(("steps", i))
            raise ConfigError(exc.message, file=recipe._file, line=line,
                              key=".".join(["steps", str(i), "options"] + ([key] if key else []))) from None
        except TypeError as exc:  # a transform that takes fixed keyword arguments got an unknown one
            raise ConfigError(str(exc), file=recipe._file, line=recipe._lines.get(("steps", i)),
                              key=f"steps.{i}.options") from None
    return steps


def run_pipeline(recipe: Recipe, steps: list[tuple[str, Transform]] | None = None, *, progress: bool = False,
                 resume: PrefixResume | None = None,
                 ) -> tuple[Iterator[Record], list[tuple[str, Transform]], dict[str, Any]]:
    """Chain sources and steps lazily; returns ``(records, steps, source_reports)``.

    ``resume`` (a begun :class:`~clinforge.data.prepare_resume.PrefixResume`) saves the output of its step (the
    first deid step) as it comes and, for a resumed run, skips the records that step finished and replays its saved
    output; the steps before it run again.

    ``source_reports[label]`` fills while the records are consumed (the readers' ReadReport plus the count).
    ``progress`` shows a bar per source of the records read (on a terminal): a step that holds every record
    (``split`` with ``method: shuffle``, ``make_preference`` with ``mismatched_answer``) emits nothing until
    the end, so a bar on the output alone would sit at 0 through reading, de-identification and de-duplication.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "n.jsonl"
        >>> _ = p.write_text('{"id": "1", "kind": "note", "text": "Afebrile, stable."}\\n')
        >>> it, _, reports = run_pipeline(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(p)}]}))
        >>> [r.id for r in it], reports["jsonl:n.jsonl"]["records"]
        (['1'], 1)
    """
    from clinforge.data.load import read_records

    steps = build_steps(recipe) if steps is None else steps
    per_run_ids = False  # a split after a deid step with a random per-run key must not key on its pseudonyms
    for _, transform in steps:  # here, not in build_steps, so that steps a caller built are settled too
        per_run_ids = per_run_ids or bool(getattr(transform, "per_run_patient_ids", False))
        if hasattr(transform, "resolve_anchor"):
            transform.resolve_anchor(per_run_patient_ids=per_run_ids)
    reports: dict[str, Any] = {}

    def sources() -> Iterator[Record]:
        for src in recipe.sources:
            it, reader = read_records(src.path, src.reader, on_error=src.on_error, limit=src.limit, **src.options)
            reports[src.label] = {"reader": src.reader, "path": src.path}
            if progress:
                from clinforge.core.progress import progress_bar

                it = progress_bar(it, desc=f"read {src.label}", unit="rec", total=src.limit)
            yield from it
            reports[src.label].update(reader.report.as_dict())

    stream: Iterator[Record] = sources()
    counts = [0]  # records out of the sources, then of each step
    started = time.monotonic()
    if progress:
        stream = _announce(stream, f"read {len(recipe.sources)} source(s)", counts, started)
    for k, (label, transform) in enumerate(steps, start=1):
        kinds = getattr(transform, "only_kinds", None)
        resumed_here = resume is not None and k - 1 == resume.index
        if resumed_here:  # the records this step finished before a stop are read, then skipped
            stream = resume.skip(stream)
        transform.kinds_processed = Counter()  # what the step actually saw, by kind, for the data card
        stream = transform.apply(_count_kinds(stream, transform.kinds_processed)) if not kinds else \
            only_kinds(stream, transform, set(kinds))
        if resumed_here:
            stream = _resumed(resume, stream, kinds)
        if progress:
            stream = _announce(stream, f"step {k}/{len(steps)} {label.split(':', 1)[1]}", counts, started)
    return stream, steps, reports


def _resumed(resume: PrefixResume, stream: Iterator[Record], kinds: list[str] | None) -> Iterator[Record]:
    """The resumed step's saved output, then its new output (saved as it passes); at the end the saved records'
    kinds join the step's per-kind counts."""
    yield from resume.replay()
    yield from resume.tee(stream, kinds)
    resume.add_replayed_kinds(kinds)


def _announce(stream: Iterable[Record], label: str, counts: list[int], started: float) -> Iterator[Record]:
    """Pass records through; when the stream ends, say how many went in and out of this step (steps run as one
    lazy chain, so a step is done when its output is exhausted)."""
    from clinforge.core.progress import say

    n = 0
    for rec in stream:
        n += 1
        yield rec
    before = counts[-1] if len(counts) > 1 else None
    counts.append(n)
    flow = f"{before} in, {n} out" if before is not None else f"{n} records"
    say(f"{label}: {flow} ({time.monotonic() - started:.1f} s)")


def _count_kinds(records: Iterable[Record], counter: Counter) -> Iterator[Record]:
    for rec in records:
        counter[rec.kind] += 1
        yield rec


def only_kinds(records: Iterable[Record], transform: Transform, kinds: set[str]) -> Iterator[Record]:
    """Run ``transform`` on the records of ``kinds``; pass the others through, in their original order.

    For the data card: ``transform.kinds_passed_through`` (how many passed through), ``transform.passed_through_by_kind``
    and ``transform.kinds_processed`` (records the transform saw, by kind).

    Example:
        >>> from clinforge.data.transforms import get_transform
        >>> f = get_transform("filter", min_words=2)
        >>> recs = [Record(id="n", kind="note", text="Seen."), Record(id="q", kind="qa", question="Why?")]
        >>> [r.id for r in only_kinds(recs, f, {"note"})], f.kinds_passed_through
        (['q'], 1)
    """
    # records of other kinds read while the transform was being fed, with how many selected records came before
    waiting: deque[tuple[int, Record]] = deque()
    transform.kinds_passed_through = 0
    transform.passed_through_by_kind = Counter()
    transform.kinds_processed = Counter()
    n_selected = 0

    def selected() -> Iterator[Record]:
        nonlocal n_selected
        for rec in records:
            if rec.kind in kinds:
                transform.kinds_processed[rec.kind] += 1
                n_selected += 1
                yield rec
            else:
                transform.kinds_passed_through += 1
                transform.passed_through_by_kind[rec.kind] += 1
                waiting.append((n_selected, rec))

    # A transform that yields one record per input, in order (``one_to_one``), may read ahead (deid in worker
    # processes reads a batch): each passed-through record then goes out just before the output of the first
    # selected record that followed it, which is where a record-by-record transform puts it, so the order of the
    # dataset does not depend on the read-ahead. Other transforms (filters) go record by record.
    one_to_one = getattr(transform, "one_to_one", False)  # (a duck-typed plug-in may lack the attribute)
    for k, out in enumerate(transform.apply(selected())):
        while waiting and (not one_to_one or waiting[0][0] <= k):
            yield waiting.popleft()[1]
        yield out
    for _, rec in waiting:
        yield rec


# ------------------------------------------------------------------------------------------------------ the run
@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Silence datasets' per-shard progress bars (our own bar covers the run)."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


def _input_paths(recipe: Recipe, steps: list[tuple[str, Transform]]) -> list[str]:
    paths = []
    for src in recipe.sources:
        paths += [src.path] + [v for k, v in src.options.items() if k in PATH_KEYS and isinstance(v, str)]
    for _, t in steps:
        paths += getattr(t, "input_paths", lambda: [])()
    return paths


def _check_inputs_exist(recipe: Recipe) -> None:
    """Missing local inputs are reported before a run directory is made (``hf`` sources may be hub ids)."""
    for i, src in enumerate(recipe.sources):
        if src.reader != "hf" and not Path(src.path).exists():
            raise ConfigError(f"input not found: {src.path}", key=f"sources.{i}.path")
    for i, step in enumerate(recipe.steps):
        for j, bench in enumerate(step.options.get("benchmarks") or []):
            path = bench.get("path") if isinstance(bench, dict) else None
            if isinstance(path, str) and bench.get("reader") != "hf" and not Path(path).exists():
                raise ConfigError(f"input not found: {path}", key=f"steps.{i}.options.benchmarks.{j}.path")


def prepare(recipe: Recipe, out_dir: str | os.PathLike, overwrite: bool = False, *, recipe_file: str | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Run ``recipe`` into the run directory ``out_dir``; returns the data card dict.

    Refuses an existing non-empty ``out_dir`` unless ``overwrite``. On failure the run record says so; with
    ``overwrite`` the new run is built beside the old one and swapped in only when it succeeded, so a failed
    re-run leaves the previous output intact. When the recipe has a resumable deid step, what it finished
    is kept when the run stops and the same call continues from there (``clinforge.data.prepare_resume``).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); p = d / "n.jsonl"
        >>> _ = p.write_text('{"id": "1", "kind": "note", "text": "Afebrile and stable overnight."}\\n')
        >>> card = prepare(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(p)}]}), d / "run",
        ...                progress=False)
        >>> card["records_out"], sorted(x.name for x in (d / "run").iterdir())
        (1, ['data_card.json', 'data_card.md', 'dataset', 'run.json', 'summary.json'])
    """
    from datasets import Dataset, DatasetDict

    from clinforge.core.io import atomic_path, atomic_write_json, atomic_write_text, replace_path
    from clinforge.core.run_records import RunRecord, prepare_output_dir, unfinished_run
    from clinforge.core.seed import seed_everything
    from clinforge.data.card import build_card, render_markdown
    from clinforge.data.transforms.split import check_patient_splits

    seed_everything(recipe.seed)
    steps = build_steps(recipe)  # option errors surface before anything is written
    _check_inputs_exist(recipe)
    final = Path(out_dir)
    occupied = final.is_dir() and any(final.iterdir())
    replacing = overwrite and occupied and not unfinished_run(final)
    if overwrite and occupied:
        inside = [p for p in _input_paths(recipe, steps) + ([recipe_file] if recipe_file else [])
                  if Path(p).exists() and Path(p).resolve().is_relative_to(final.resolve())]
        if inside:
            raise ConfigError(f"input {inside[0]} is inside the output directory {final}, which --overwrite would "
                              "delete; write the run somewhere else")
    # With --overwrite of a finished run the new one is built beside it and swapped in at the end, so a failed run
    # keeps the old one; the folder's name is fixed, so that a stopped --overwrite run resumes too.
    out = final.with_name(f".{final.name}.new") if replacing else final
    resume = PrefixResume(out, recipe, steps, overwrite=overwrite)
    if not (out.is_dir() and resume.check()):
        if replacing:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
        else:
            try:
                prepare_output_dir(out_dir, overwrite=overwrite, replace_unfinished=True)
            except OutputExistsError:  # the core message also offers --resume; prepare resumes by itself
                raise OutputExistsError(f"{out_dir} exists and is not empty; pass --overwrite to replace it") from None
    resumed_after = resume.begin()
    if resumed_after:  # said even without progress output: the run is not a fresh one
        print(f"resuming: {resumed_after} records through step {resume.label} were kept by an interrupted run "
              f"({resume.partial.folder})", file=sys.stderr, flush=True)
    elif progress and resume.blocker and resumable_step(steps) is not None:
        # said before hours of de-identification, not only when a stop has cost them (a recipe without a deid step
        # is quick, and says nothing)
        from clinforge.core.progress import say

        say(f"note: if this run is stopped, it starts again from the first record: {resume.blocker}")
    config = recipe.model_dump(mode="json")
    run = RunRecord(out, command="data prepare", config=config, seed=recipe.seed,
                    inputs=_input_paths(recipe, steps) + ([recipe_file] if recipe_file else []))
    try:
        stream, steps, source_reports = run_pipeline(recipe, steps, progress=progress,
                                                     resume=resume if resume.active else None)
        split_step = any(t.name == "split" for _, t in steps)
        by_split: dict[str, list[Record]] = {}
        for rec in stream:
            by_split.setdefault(rec.split if split_step else "all", []).append(rec)
        if split_step:  # every named split exists, even when empty, in the recipe's order
            names = [n for _, t in steps if t.name == "split" for n in t.opts.fractions]
            stray = [n for n in by_split if n not in names]
            if stray:  # e.g. a later plug-in step that re-labelled records
                rec = by_split[stray[0]][0]
                raise DataError(f"split {rec.split!r} is not one of the split step's ({', '.join(names)}); "
                                f"{sum(len(by_split[n]) for n in stray)} records", record=rec.id, field="split")
            by_split = {n: by_split.get(n, []) for n in dict.fromkeys(names + list(by_split))}
        else:  # one dataset, even when every record was filtered out
            by_split = {"all": by_split.get("all", [])}
        crossing = check_patient_splits(r for recs in by_split.values() for r in recs) if split_step else None
        if crossing:
            raise DataError(f"{len(crossing)} patients ended up in more than one split (a later step re-assigned "
                            "splits?)", field="split")
        feats = features()
        # An empty split (small data, or the hash method's luck) must still load: datasets writes it with zero
        # shards unless told to write one, and load_from_disk then fails, losing the whole prepared dataset.
        tables = {name: Dataset.from_list([record_to_row(r) for r in recs], features=feats) if recs else
                  Dataset.from_dict({k: [] for k in feats}, features=feats) for name, recs in by_split.items()}
        shards = {name: (None if recs else 1) for name, recs in by_split.items()}
        with atomic_path(out / "dataset") as tmp, _quiet_datasets():
            if split_step:
                DatasetDict(tables).save_to_disk(str(tmp), num_shards=shards)
            else:
                tables["all"].save_to_disk(str(tmp), num_shards=shards["all"])
        card = build_card(recipe=config, sources=source_reports, steps=steps, splits=by_split, crossing=crossing)
        card["columns"] = list(feats)
        atomic_write_json(out / "data_card.json", card)
        atomic_write_text(out / "data_card.md", render_markdown(card))
    except BaseException as exc:
        run.fail(exc)
        # what the deid step finished is kept for the same command (an error in a later step, or bad input that
        # stopped it, too: a corrected later step resumes; changed input is refused until --overwrite)
        kept = resume.active and resume.snapshot["records"] > 0
        if kept:
            resume.save()
        else:
            resume.discard()
            if replacing:
                shutil.rmtree(out, ignore_errors=True)
        from clinforge.core.interrupts import note_if_interrupted, rerun_command

        untouched = f"; the previous run in {final} is untouched" if replacing else ""
        note_if_interrupted(exc, lambda: resume.describe() + untouched if kept else (
            "nothing yet: prepare writes its dataset at the end" + (untouched or
            f"; {final} holds only the interrupted run record, which the same command replaces") + (
                f" (progress is not saved: {resume.blocker})" if resume.blocker and steps else "")),
                            rerun_command())
        raise
    resume.discard()
    run.finish({k: card[k] for k in ("records_in", "records_out", "skipped_rows", "phi_by_type", "duplicates_removed",
                                     "contamination", "splits", "groups_crossing_splits")}
               | {"steps": [{k: s[k] for k in ("step", "in", "out")} for s in card["steps"]],
                  "resumed_after_records": resumed_after})
    if replacing:
        replace_path(out, final)
    return card
