"""De-identify files: a text file, a folder of text files, or a JSONL/CSV text column, written atomically.

``deidentify_file`` is what ``clinforge data deid`` runs. Nothing but the de-identified output (and, with
``json_out``, span offsets/types/scores) goes to ``stdout``; the returned summary holds counts only, and errors name
the file, line and field, never the text.

Example:
    >>> import io, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "n.txt"; _ = p.write_text("Seen by Dr. Martha Collins on 3/4/2021.")
    >>> sink = io.StringIO(); s = deidentify_file(p, stdout=sink, progress=False)
    >>> sink.getvalue(), s["items"]
    ('Seen by Dr. [NAME] on [DATE].', 1)
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from clinforge.core.errors import ConfigError, DataError, OutputExistsError
from clinforge.core.interrupts import interruption_in, note_interrupted, rerun_command
from clinforge.core.partial_output import CHECKPOINT_S, PartialOutput, content_hash, file_fingerprint
from clinforge.data.deid.parallel_deid import (
    build_deidentifier,
    deid_in_worker,
    deid_one,
    ordered_map,
    start_text_pool,
)
from clinforge.data.deid.patient_ids import KEY_ENV, PATIENT_ID_MODES, PatientPseudonymizer
from clinforge.data.deid.phi_in_names import names_with_phi
from clinforge.data.deid.spans import make_span

TEXT_SUFFIXES = (".txt", ".text", ".md", ".note", ".notes", ".hl7")  # .hl7: v2 messages (hl7_fields)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv", ".tsv")


def input_kind(path: Path) -> str:
    """``folder``, ``text``, ``jsonl`` or ``csv`` for an input path; anything else is an error listing the choices.

    Example:
        >>> input_kind(Path("notes.jsonl"))
        'jsonl'
    """
    if str(path) == "-":  # standard input: one text (``cat note.txt | clinforge data deid -``)
        return "text"
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    valid = ", ".join(TEXT_SUFFIXES + JSONL_SUFFIXES + CSV_SUFFIXES)
    raise DataError(f"cannot tell the input format from the suffix {suffix!r}; use one of {valid} or a folder",
                    file=str(path))


FILE_NAME_MODES = ("check", "keep", "pseudonymize")


def _text_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise DataError(f"no text files ({', '.join(TEXT_SUFFIXES)}) in the folder", file=str(folder))
    return files


def _read_text(path: Path) -> str:
    try:
        if str(path) == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        # (newline="": line endings kept as written; HL7 v2 ends segments with a bare CR, which universal newlines
        # would turn into LF, and a Windows note keeps its CRLF)
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", file="standard input" if str(path) == "-"
                        else str(path)) from None


def _cell(row: dict, column: str, path: Path, line: int, optional: bool = False) -> str | None:
    if column not in row:
        if optional:
            return None
        raise DataError(f"no column {column!r} (columns: {', '.join(map(str, row))})", file=str(path), line=line,
                        field=column)
    value = row[column]
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        if optional and isinstance(value, (int, float)):
            return str(value)
        raise DataError(f"expected text, got {type(value).__name__}", file=str(path), line=line, field=column)
    return value


def _csv_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict]], bool]:
    """The header, the rows (with their line) and whether the file starts with a byte-order mark.

    Decoded line by line (``iter_lines``), so a byte that is not UTF-8 is an error naming its line, and a BOM
    (Excel's "CSV UTF-8") does not end up in the first column's name.
    """
    from clinforge.data.readers.common import iter_lines

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, "rb") as fh:
        bom = fh.read(3) == b"\xef\xbb\xbf"

    def decoded() -> Iterator[str]:
        for lineno, line in iter_lines(path):
            if isinstance(line, UnicodeDecodeError):
                raise DataError(f"not valid UTF-8 at byte {line.start} of the line (save the file as UTF-8)",
                                file=str(path), line=lineno)
            yield line

    reader = csv.DictReader(decoded(), delimiter=delimiter)

    def rows() -> Iterator[tuple[int, dict]]:
        for row in reader:
            yield reader.line_num, row

    return list(reader.fieldnames or []), rows(), bom


def csv_row_count(path: Path) -> int:
    """The data rows of a CSV/TSV file, for the progress bar's total (a quoted cell may span lines, so its lines are
    no count): one pass of the csv parser, tens of MB/s, against ~1 MB/s for the de-identification that follows.
    Blank lines are no rows, as for ``csv.DictReader``; undecodable bytes are replaced here (the real pass names them).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "n.csv"
        >>> _ = p.write_text('id,text\\n1,"two\\nlines"\\n\\n2,one\\n')
        >>> csv_row_count(p)
        2
    """
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        return max(0, sum(1 for row in csv.reader(fh, delimiter=delimiter) if row) - 1)


def deidentify_file(input: Path, out: Path | None = None, *, mode: str = "mask", json_out: bool = False,
                    text_column: str = "text", patient_column: str | None = None, seed: int = 0,
                    overwrite: bool = False, progress: bool = True, stdout: TextIO | None = None,
                    ner_model: Path | None = None, ner_int8: bool = False,
                    patient_ids: str = "pseudonymize", site_terms: Path | None = None,
                    name_columns: Sequence[str] = (), workers: int = 1, file_names: str = "check") -> dict[str, Any]:
    """De-identify ``input`` into ``out`` (a file, or a folder for a folder input) or, without ``out``, onto
    ``stdout``; returns counts: ``items``, ``bytes``, ``cpu_s``, ``phi`` (spans by type), ``mode``, ``out``,
    ``patient_ids`` (what became of the patient column), ``name_cells`` (name-column cells replaced), ``site_terms`` (what the site list holds, in counts) and
    ``kept_columns`` (the JSONL/CSV columns written as they
    came: only ``text_column`` is de-identified, and the user should know what else leaves the building).
    ``patient_ids``: ``pseudonymize`` (default) writes the ``patient_column`` as keyed pseudonyms
    (``patient_ids.PatientPseudonymizer``: an MRN is an identifier), ``keep`` writes it unchanged.
    ``ner_model``: a local token-classification model folder (e.g. from ``clinforge data deid-train``) whose spans
    are added to the rules' (their union is removed); the gate saved with it (``deid_training.json``) applies;
    ``ner_int8`` runs it with int8 linear layers (``ner.int8_linear_layers``: faster, not exact).
    ``site_terms``: a site list (``site_terms.py``: staff and patient names, local places, ``KEEP`` words).
    ``name_columns``: JSONL/CSV columns holding a person's name (``patient_name``, ``attending``): each cell is
    replaced as a NAME (mask, redact or surrogate) and its words are searched for in that row's text, in any case
    (``Deidentifier.deidentify_many``'s ``known_names``), so a name the rules would miss still goes.
    ``workers``: processes that de-identify in parallel (each builds its own de-identifier, tagger included; in
    surrogate mode they detect and this process makes the surrogates); the output is the same as with one, in the
    same order.
    ``file_names`` (a folder input): the output keeps the input's relative paths; exports often name files by MRN,
    date or patient (``4456781_2021-03-14.txt``), so ``check`` (default) refuses, before writing anything, a folder
    where the rules find PHI in a file or folder name (saying how many and of which types, never the names);
    ``pseudonymize`` writes each such name part as ``f-`` + a keyed pseudonym (the patient-id key), extension
    kept; ``keep`` writes them as they are.

    A bad row stops the run and leaves no output (the output is written atomically; without ``out`` rows are
    buffered so nothing is half-printed). A folder or a table into ``out`` is resumable: interrupted (Ctrl-C,
    SIGTERM), it saves what it finished in ``.OUT.partial`` beside ``out`` and the same call continues from there
    (summary ``resumed_after``); the partial output of other input or options is refused unless ``overwrite``.
    Surrogate mode and per-run pseudonyms are not saved (their state holds PHI or a key never stored).
    """
    from clinforge.core.io import atomic_path, read_jsonl
    from clinforge.core.progress import progress_bar
    from clinforge.data.deid import MODES
    from clinforge.data.deid.site_terms import SiteTermsRecognizer

    stdout = sys.stdout if stdout is None else stdout
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}", key="--mode")
    kind = input_kind(input)
    if out is not None and out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    if out is not None and str(input) != "-" and out.resolve() == input.resolve():
        raise ConfigError("--out must differ from the input", key="--out")
    if kind == "folder" and out is None:
        raise ConfigError("a folder input needs --out FOLDER", key="--out")
    if kind == "folder" and input.resolve() in out.resolve().parents:  # its files would be read as input next run
        raise ConfigError(f"must be outside the input folder {input}", key="--out")
    if kind in ("text", "folder"):  # options of a table given for plain text: refused, not silently ignored
        what = ("a folder of text files (a text per file" if kind == "folder" else
                "standard input (one text" if str(input) == "-" else "a text file (one text")
        if patient_column is not None:
            raise ConfigError(f"applies to a JSONL or CSV input; {input} is {what}, no columns)",
                              key="--patient-column")
        if text_column != "text":
            raise ConfigError(f"applies to a JSONL or CSV input; {input} is {what}, no columns)", key="--text-column")
        if patient_ids != "pseudonymize":
            raise ConfigError(f"applies to a JSONL or CSV input; {input} is {what}, no columns)", key="--patient-ids")
        if name_columns:
            raise ConfigError(f"applies to a JSONL or CSV input; {input} is {what}, no columns)", key="--name-column")
    if file_names not in FILE_NAME_MODES:
        raise ConfigError(f"must be one of {', '.join(FILE_NAME_MODES)}, not {file_names!r}", key="--file-names")
    if kind != "folder" and file_names != "check":
        raise ConfigError(f"applies to a folder input (its file names); {input} is a file", key="--file-names")
    name_columns = list(dict.fromkeys(name_columns))
    if text_column in name_columns or (patient_column is not None and patient_column in name_columns):
        raise ConfigError("a --name-column cannot be the --text-column or the --patient-column", key="--name-column")
    if patient_ids not in PATIENT_ID_MODES:
        raise ConfigError(f"must be one of {', '.join(PATIENT_ID_MODES)}, not {patient_ids!r}",
                          key="--patient-ids")
    ids = PatientPseudonymizer()
    kept_columns: dict[str, None] = {}  # in order of appearance

    def hide_patient(row: dict) -> None:
        value = row.get(patient_column) if patient_column else None
        if patient_ids == "pseudonymize" and value is not None and str(value).strip():
            row[patient_column] = ids.pseudonym(str(value))

    if ner_int8 and ner_model is None:
        raise ConfigError("--ner-int8 needs --ner-model (the tagger it quantises)", key="--ner-int8")
    if workers < 1:
        raise ConfigError(f"must be 1 or more, not {workers}", key="--workers")
    settings = (mode, seed, ner_model, ner_int8, site_terms)
    parallel = workers > 1 and kind != "text"
    # Surrogate mode in workers: they only DETECT (in mask mode; detection is the same in every mode) and this
    # process makes the surrogates, in input order, name cells first, as one process does: a surrogate depends on
    # the patient's earlier texts (a word keeps the role it had in a full name), and on the key, which stays here.
    surrogates_here = parallel and mode == "surrogate"
    pool = None
    if parallel:
        from clinforge.data.deid.site_terms import SiteTerms

        if site_terms is not None:
            SiteTerms.from_file(site_terms)  # a bad list is one error here, not one in every worker
        # started first, so that the workers build their de-identifiers while this process builds its own
        pool = start_text_pool(workers, ("mask", *settings[1:]) if surrogates_here else settings)
    try:
        # with a pool, this process only replaces name cells and describes the site list: no tagger loaded here
        deidentifier = build_deidentifier(*settings, tagger=not parallel)
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    counts: Counter[str] = Counter()
    n_items = n_bytes = n_name_cells = 0
    worker_cpu = 0.0
    started = time.process_time()
    span_lines: list[str] = []  # --json rows of the texts not yet written out

    def account(text: str, result: tuple[str, list, float], where: dict, pid: str | None = None) -> str:
        """Count one de-identified text (and keep its --json row); returns the text to write."""
        nonlocal n_items, n_bytes, worker_cpu
        cleaned, spans, cpu = result
        if surrogates_here:  # the worker masked; the surrogates are made here, in input order
            cleaned = deidentifier.apply_spans(text, spans, pid).text
        counts.update(s.entity_type for s in spans)
        n_items += 1
        n_bytes += len(text.encode("utf-8"))
        worker_cpu += cpu if pool is not None else 0.0  # the main process's own CPU time counts the rest
        if json_out:
            row = {**where, "spans": [s.to_dict() for s in spans]}
            if out is None:
                row["text"] = cleaned
            span_lines.append(json.dumps(row, ensure_ascii=False) + "\n")
        return cleaned

    def hide_names(row: dict, pid: str | None, line: int, replace: bool = True) -> list[str]:
        """Replace the row's name cells as NAMEs (unless ``replace`` is false: later, in input order); returns their
        values, to be searched for in the row's text."""
        nonlocal n_name_cells
        names = []
        for column in name_columns:
            value = _cell(row, column, input, line, optional=True)
            if value is None or not value.strip():
                continue
            names.append(value)
            if replace:
                span = make_span(0, len(value), "NAME", 1.0, "a --name-column cell", "name_column")
                row[column] = deidentifier.replacement(span, value, pid)
                n_name_cells += 1
        return names

    def deid_all(items: Iterable[tuple[Any, tuple[str, str | None, Sequence[str]] | None]]) -> Iterator[tuple]:
        """(tag, result) of each (tag, (text, patient id, known names) or None), in input order: here one at a
        time, or in the pool (``parallel_deid.ordered_map``)."""
        if pool is None:
            return ordered_map(None, items, lambda p: None if p is None else deid_one(deidentifier, *p))
        return ordered_map(pool, items, deid_in_worker, batch=32 * workers)

    def table_rows(done: int, write: Callable[[str], Any], bar: Any,
                   row_done: Callable[[int, int], None] | None = None, header: bool = True) -> None:
        """De-identify the JSONL or CSV rows after the first ``done`` into ``write``, in input order;
        ``row_done(k, position)`` after each row, with ``position`` what ``write`` returned for it; ``header``:
        write the CSV header (not when resuming an output that has it)."""
        position = 0
        seen = {"patient": patient_column is None, "names": set()}  # JSONL: columns found in some row

        def prepared(rows: Iterable[tuple[int, dict]]) -> Iterator[tuple[tuple, tuple | None]]:
            for k, (line, row) in enumerate(rows):
                seen["patient"] = seen["patient"] or patient_column in row
                seen["names"].update(c for c in name_columns if c in row)
                if k < done:  # in the output of the interrupted run this one resumes
                    continue
                text = _cell(row, text_column, input, line)
                pid = _cell(row, patient_column, input, line, optional=True) if patient_column else None
                names = hide_names(row, pid, line, replace=not surrogates_here)
                yield (k, line, row, text, pid), (None if text is None else (text, pid, names))

        if kind == "jsonl":
            rows: Iterable[tuple[int, dict]] = read_jsonl(input)

            def serialize(row: dict) -> str:
                kept_columns.update(dict.fromkeys(c for c in row if c not in (text_column, patient_column,
                                                                             *name_columns)))
                return json.dumps(row, ensure_ascii=False) + "\n"
        else:
            fields, rows, bom = _csv_rows(input)
            for column in (text_column, patient_column, *name_columns):
                if column is not None and column not in fields:
                    raise DataError(f"no column {column!r} (columns: {', '.join(fields)})",
                                    file=str(input), line=1, field=column)
            buffer = io.StringIO()  # one row at a time, so that each row reaches the output in one write
            delimiter = "\t" if input.suffix.lower() == ".tsv" else ","
            writer = csv.DictWriter(buffer, fieldnames=fields, delimiter=delimiter, lineterminator="\n")
            kept_columns.update(dict.fromkeys(f for f in fields if f not in (text_column, patient_column,
                                                                             *name_columns)))

            def serialize(row: dict) -> str:
                buffer.seek(0)
                buffer.truncate()
                writer.writerow(row)
                return buffer.getvalue()

            if header:
                if bom and out is not None:  # a file as it came: Excel reads UTF-8 CSV right only with it
                    buffer.write("\ufeff")
                writer.writeheader()
                position = write(buffer.getvalue())
                if row_done is not None:
                    row_done(0, position)
        for (k, line, row, text, pid), result in deid_all(prepared(rows)):
            if surrogates_here:
                hide_names(row, pid, line)
            if result is not None:
                row[text_column] = account(text, result, {"line": line}, pid)
            hide_patient(row)
            position = write(serialize(row))
            bar.update(1)
            if row_done is not None:
                row_done(k + 1, position)
        if kind == "jsonl":
            if not seen["patient"]:  # a typo would give every text one date offset and surrogate map
                raise DataError(f"no row has the --patient-column {patient_column!r}", file=str(input),
                                field=patient_column)
            for column in name_columns:
                if column not in seen["names"]:  # a typo would leave every name cell as it came
                    raise DataError(f"no row has the --name-column {column!r}", file=str(input), field=column)

    # The total is known before the bar starts: a bar reset after it started prints a stray "0text" line in a log.
    files = _text_files(input) if kind == "folder" else []
    if kind == "folder" and file_names == "check":
        named, types = names_with_phi([f.relative_to(input) for f in files], deidentifier)
        if named:
            if pool is not None:
                pool.terminate()
            found = ", ".join(f"{t} {n}" for t, n in sorted(types.items()))
            raise ConfigError(f"{named} of {len(files)} file paths under {input} hold what looks like PHI in a file "
                              f"or folder name ({found}), and the output keeps the names: pass --file-names "
                              "pseudonymize (keyed names; set $CLINFORGE_DEID_KEY to keep them across runs) or "
                              "--file-names keep", key="--file-names")

    def out_name(rel: Path) -> Path:
        """The output path of an input file: its own, or each part pseudonymised (``--file-names pseudonymize``)."""
        if file_names != "pseudonymize":
            return rel
        return Path(*(ids.pseudonym(part, prefix="f-") for part in rel.parent.parts),
                    ids.pseudonym(rel.stem, prefix="f-") + rel.suffix)
    total: int | None = 1 if kind == "text" else len(files) if kind == "folder" else None
    if kind == "jsonl":
        with open(input, "rb") as fh:
            total = sum(1 for _ in fh)
    elif kind == "csv":
        total = csv_row_count(input)

    try:
        done = 0  # rows or files an interrupted run had finished (resumed below)
        if kind == "text" or out is None:
            with progress_bar(desc="de-identifying", unit="text", total=total, enabled=progress) as bar:
                if kind == "text":
                    text = _read_text(input)
                    cleaned = account(text, deid_one(deidentifier, text, None, ()), {"file": str(input)})
                    bar.update(1)
                    if out is not None:
                        with atomic_path(out, overwrite=overwrite) as tmp:
                            tmp.write_text(cleaned, encoding="utf-8")
                    elif not json_out:
                        stdout.write(cleaned)
                else:  # a table onto stdout: buffered, so that a bad row prints nothing rather than half a file
                    sink = io.StringIO()
                    table_rows(0, sink.write, bar)
                    if not json_out:
                        stdout.write(sink.getvalue())
            for line in span_lines:
                stdout.write(line)
        else:
            # A folder or a table into --out: written in a hidden partial folder beside it and resumed after an
            # interruption (core/partial_output.py). Progress is saved only where it holds no PHI and resumes to the
            # same output: not under a per-run surrogate or pseudonym key (it is never stored); those runs start
            # again. Surrogate mode's memory of name roles is saved as keyed tags (surrogate.py), never as names.
            keyed = bool(patient_column) and patient_ids == "pseudonymize"
            surrogates = deidentifier.surrogates
            saveable = not (surrogates is not None and surrogates.per_run) and not (
                (keyed or file_names == "pseudonymize") and ids.per_run)
            if not saveable and progress:  # said before the work, not only after a stop has cost it
                from clinforge.core.progress import say

                say(f"note: if this run is stopped, it starts again from the first text: it works under a random "
                    f"per-run key, which is never stored; set ${KEY_ENV} to make it resumable")
            partial = PartialOutput(out, _fingerprint(input, kind, files, mode=mode, seed=seed, json_out=json_out,
                                                      text_column=text_column, patient_column=patient_column,
                                                      patient_ids=patient_ids, name_columns=name_columns,
                                                      patient_key=ids.key_check if keyed or file_names == "pseudonymize"
                                                      else None, file_names=file_names,
                                                      ner_model=ner_model, ner_int8=ner_int8, site_terms=site_terms,
                                                      surrogate_key=surrogates.key_check if surrogates else None),
                                    overwrite=overwrite)
            saved = partial.start() or {}
            done = int(saved.get("done", 0))
            if saved:
                counts.update(saved["counts"])
                n_items, n_bytes, n_name_cells = saved["items"], saved["bytes"], saved["name_cells"]
                started -= saved["cpu_s"]
                kept_columns.update(dict.fromkeys(saved["kept_columns"]))
                if surrogates is not None:
                    surrogates.restore_roles(saved["roles"])
                print(f"resuming: {done} of {total if total is not None else '?'} {'files' if kind == 'folder' else 'rows'} "
                      f"were de-identified by an interrupted run ({partial.folder})", file=sys.stderr, flush=True)
            spans_path = partial.folder / "spans.jsonl"
            where = {"out": _truncated(partial.path, saved.get("out_bytes")) if kind != "folder" else 0,
                     "spans": _truncated(spans_path, saved.get("spans_bytes")) if json_out else 0}
            snapshot = saved or {"done": 0, "out_bytes": 0, "spans_bytes": 0, "counts": {}, "items": 0, "bytes": 0,
                                 "name_cells": 0, "kept_columns": []}
            last_save = time.monotonic()

            def row_done(k: int, out_bytes: int) -> None:
                """Record that rows/files [0, k) are in the output (one assignment: an interruption sees the last whole
                row); save it every 30 s."""
                nonlocal snapshot, last_save
                spans_bytes = where["spans"]
                if span_lines:
                    chunk = "".join(span_lines)
                    span_lines.clear()
                    with open(spans_path, "a", encoding="utf-8") as fh:
                        fh.write(chunk)
                    spans_bytes = where["spans"] = spans_bytes + len(chunk.encode("utf-8"))
                snapshot = {"done": k, "out_bytes": out_bytes, "spans_bytes": spans_bytes, "counts": dict(counts),
                            "items": n_items, "bytes": n_bytes, "name_cells": n_name_cells,
                            "kept_columns": list(kept_columns)}
                if surrogates is not None:  # a mark; the memory it marks is written by save()
                    snapshot["roles_mark"] = list(surrogates.roles_mark())
                if saveable and time.monotonic() - last_save > CHECKPOINT_S:
                    save()

            sink_box: list[Any] = []

            def save() -> None:
                """Flush the output to disk, then save the snapshot that counts it."""
                nonlocal last_save
                if sink_box and not sink_box[0].closed:
                    sink_box[0].flush()
                    os.fsync(sink_box[0].fileno())
                elif kind != "folder" and partial.path.exists():  # closed by the interruption (and so flushed)
                    with open(partial.path, "rb") as fh:
                        os.fsync(fh.fileno())
                # CPU time read here, not per row (a system call): a report, not part of the output
                roles = {"roles": surrogates.roles_state(tuple(snapshot["roles_mark"]))} if surrogates else {}
                partial.checkpoint({**snapshot, **roles, "cpu_s": time.process_time() - started + worker_cpu})
                last_save = time.monotonic()

            try:
                with progress_bar(desc="de-identifying", unit="text", total=total, enabled=progress, initial=done) as bar:
                    if kind == "folder":
                        partial.path.mkdir(exist_ok=True)
                        texts = ((k, files[k].relative_to(input), _read_text(files[k])) for k in range(done, len(files)))
                        for (k, rel, text), result in deid_all(((k, rel, text), (text, None, ()))
                                                               for k, rel, text in texts):
                            rel = out_name(rel)
                            target = partial.path / rel
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_text(account(text, result, {"file": str(rel)}), encoding="utf-8")
                            bar.update(1)
                            row_done(k + 1, 0)
                    else:
                        with open(partial.path, "a" if saved else "w", encoding="utf-8", newline="") as fh:
                            sink_box.append(fh)
                            position = where["out"]

                            def write(text: str) -> int:
                                nonlocal position
                                fh.write(text)
                                position += len(text.encode("utf-8"))
                                return position

                            table_rows(done, write, bar, row_done, header=position == 0)
                            fh.flush()
                            os.fsync(fh.fileno())
                            sink_box.clear()
            except BaseException as exc:
                if saveable and interruption_in(exc) is not None:
                    save()
                    note_interrupted(f"{snapshot['done']} of {total if total is not None else '?'} "
                                     f"{'files' if kind == 'folder' else 'rows'} de-identified, in {partial.folder}",
                                     rerun_command())
                else:
                    partial.discard()
                raise
            if json_out and spans_path.exists():
                with open(spans_path, encoding="utf-8") as fh:
                    shutil.copyfileobj(fh, stdout)
            partial.commit()
    except BaseException:
        if pool is not None:  # a bad row or an interruption: stop the workers now
            pool.terminate()
        raise
    if pool is not None:
        pool.close()
        pool.join()
    return {"items": n_items, "bytes": n_bytes, "cpu_s": time.process_time() - started + worker_cpu,
            "workers": workers, "phi": dict(counts),
            "resumed_after": done if out is not None and kind in ("folder", "jsonl", "csv") else 0,
            "mode": mode, "out": str(out) if out is not None else None,
            "patient_ids": None if patient_column is None else (
                ids.describe() if patient_ids == "pseudonymize" else "kept as in the input"),
            "kept_columns": list(kept_columns), "name_cells": n_name_cells,
            "surrogate_key": deidentifier.surrogate_key_source, "file_names": file_names if kind == "folder" else None,
            "file_names_key": f"pseudonymized: HMAC-SHA256 with {ids.key_source}" if file_names == "pseudonymize" else None,
            "site_terms": next((r.describe() for r in deidentifier.recognizers if isinstance(r, SiteTermsRecognizer)),
                               None)}


def _fingerprint(input: Path, kind: str, files: list[Path], *, ner_model: Path | None, site_terms: Path | None,
                 **options: Any) -> dict[str, Any]:
    """What must be equal for a run to resume another: the input (size and times; a folder's text files, already
    listed), every option that changes the output, the tagger folder, the site list's content and clinforge's
    version."""
    from clinforge import __version__

    return {"input": file_fingerprint(input, files if kind == "folder" else None), "kind": kind, **options,
            "ner_model": file_fingerprint(ner_model) if ner_model is not None else None,
            "site_terms": content_hash(site_terms) if site_terms is not None else None,
            "clinforge": __version__}


def _truncated(path: Path, size: int | None) -> int:
    """Cut ``path`` back to the ``size`` bytes a checkpoint counted (what an interrupted run wrote after it goes);
    returns that size (0 for a fresh file)."""
    if size is None or not path.exists():
        return 0
    with open(path, "r+b") as fh:
        fh.truncate(size)
    return size
