"""``clinforge data deid``: de-identify a text file, a folder of text files, or a JSONL/CSV text column.

Nothing but the de-identified output (and, with ``--json``, span offsets/types/scores) reaches stdout; the
summary on stderr holds counts only, and errors name the file, line and field, never the text.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS

TEXT_SUFFIXES = (".txt", ".text", ".md", ".note", ".notes")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv", ".tsv")


def input_kind(path: Path) -> str:
    """``folder``, ``text``, ``jsonl`` or ``csv`` for an input path; anything else is an error listing the choices.

    Example:
        >>> input_kind(Path("notes.jsonl"))
        'jsonl'
    """
    from clinforge.core.errors import DataError

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


def _text_files(folder: Path) -> list[Path]:
    from clinforge.core.errors import DataError

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise DataError(f"no text files ({', '.join(TEXT_SUFFIXES)}) in the folder", file=str(folder))
    return files


def _read_text(path: Path) -> str:
    from clinforge.core.errors import DataError

    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None


def _cell(row: dict, column: str, path: Path, line: int, optional: bool = False) -> str | None:
    from clinforge.core.errors import DataError

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


def _csv_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    fh = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed when the generator ends
    reader = csv.DictReader(fh, delimiter=delimiter)

    def rows() -> Iterator[tuple[int, dict]]:
        try:
            for row in reader:
                yield reader.line_num, row
        finally:
            fh.close()

    return list(reader.fieldnames or []), rows()


def register(app: typer.Typer) -> None:
    """Add the ``deid`` command to the ``clinforge data`` group."""

    @app.command("deid")
    def deid(
        input: Path = typer.Argument(..., exists=True, help="A text file, a folder of text files, or a JSONL/CSV file."),
        out: Path | None = typer.Option(None, "--out", "-o",
                                        help="Output file (or folder for a folder input). Default: stdout."),
        mode: str = typer.Option("mask", "--mode", "-m", help="mask ([NAME] tags), redact (***), or surrogate."),
        json_out: bool = typer.Option(False, "--json",
                                      help="Print spans (type, offsets, score, explanation) as JSON lines."),
        text_column: str = typer.Option("text", "--text-column", help="Column/key holding the text (JSONL/CSV)."),
        patient_column: str | None = typer.Option(None, "--patient-column",
                                                  help="Column/key with a patient id (surrogate consistency)."),
        seed: int = typer.Option(0, "--seed", help="Seed of surrogates and per-patient date offsets."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
        no_progress: bool = NO_PROGRESS,
    ) -> None:
        """De-identify free text: the 18 HIPAA Safe Harbor identifiers, masked, redacted or replaced.

        Example: clinforge data deid notes.csv --text-column note --mode surrogate --patient-column mrn -o clean.csv
        """
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from clinforge.core.errors import ConfigError, DataError, OutputExistsError
        from clinforge.core.io import atomic_path, read_jsonl
        from clinforge.data.deid import MODES, Deidentifier

        if mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}", key="--mode")
        kind = input_kind(input)
        if out is not None and out.exists() and not overwrite:
            raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
        if out is not None and out.resolve() == input.resolve():
            raise ConfigError("--out must differ from the input", key="--out")
        if kind == "folder" and out is None:
            raise ConfigError("a folder input needs --out FOLDER", key="--out")
        err = Console(stderr=True)
        deidentifier = Deidentifier(mode=mode, seed=seed)
        counts: Counter[str] = Counter()
        n_items = n_bytes = 0
        started = time.process_time()
        stdout_lines: list[str] = []

        def process(text: str, patient_id: str | None, where: dict) -> str:
            nonlocal n_items, n_bytes
            result = deidentifier.deidentify(text, patient_id=patient_id)
            counts.update(s.entity_type for s in result.spans)
            n_items += 1
            n_bytes += len(text.encode("utf-8"))
            if json_out:
                row = {**where, "spans": [s.to_dict() for s in result.spans]}
                if out is None:
                    row["text"] = result.text
                stdout_lines.append(json.dumps(row, ensure_ascii=False))
            return result.text

        progress = Progress(TextColumn("de-identifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=err, transient=True, disable=not err.is_terminal)
        with progress:
            if kind == "text":
                cleaned = process(_read_text(input), None, {"file": str(input)})
                if out is not None:
                    with atomic_path(out, overwrite=overwrite) as tmp:
                        tmp.write_text(cleaned, encoding="utf-8")
                elif not json_out:
                    sys.stdout.write(cleaned)
            elif kind == "folder":
                files = _text_files(input)
                task = progress.add_task("files", total=len(files))
                with atomic_path(out, overwrite=overwrite) as tmp:
                    tmp.mkdir(parents=True)
                    for path in files:
                        rel = path.relative_to(input)
                        target = tmp / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(process(_read_text(path), None, {"file": str(rel)}), encoding="utf-8")
                        progress.advance(task)
            else:
                # Rows stream into the atomic temporary output (removed if a bad row stops the run); without --out
                # they are buffered so that a bad row prints nothing rather than half a file.
                with contextlib.ExitStack() as stack:
                    if out is not None:
                        tmp = stack.enter_context(atomic_path(out, overwrite=overwrite))
                        sink = stack.enter_context(open(tmp, "w", encoding="utf-8", newline=""))
                    else:
                        sink = io.StringIO()
                    if kind == "jsonl":
                        with open(input, encoding="utf-8") as fh:
                            total = sum(1 for _ in fh)
                        task = progress.add_task("rows", total=total)
                        for line, row in read_jsonl(input):
                            text = _cell(row, text_column, input, line)
                            pid = _cell(row, patient_column, input, line, optional=True) if patient_column else None
                            if text is not None:
                                row[text_column] = process(text, pid, {"line": line})
                            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                            progress.advance(task)
                    else:
                        fields, rows = _csv_rows(input)
                        if text_column not in fields:
                            raise DataError(f"no column {text_column!r} (columns: {', '.join(fields)})",
                                            file=str(input), line=1, field=text_column)
                        delimiter = "\t" if input.suffix.lower() == ".tsv" else ","
                        writer = csv.DictWriter(sink, fieldnames=fields, delimiter=delimiter, lineterminator="\n")
                        writer.writeheader()
                        task = progress.add_task("rows", total=None)
                        for line, row in rows:
                            text = _cell(row, text_column, input, line)
                            pid = _cell(row, patient_column, input, line, optional=True) if patient_column else None
                            if text is not None:
                                row[text_column] = process(text, pid, {"line": line})
                            writer.writerow(row)
                            progress.advance(task)
                    if out is None and not json_out:
                        sys.stdout.write(sink.getvalue())
        for line in stdout_lines:
            sys.stdout.write(line + "\n")
        cpu = time.process_time() - started
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        err.print(f"de-identified {n_items} text(s), {n_bytes / 1e6:.2f} MB in {cpu:.1f} s CPU ({mode} mode); "
                  f"PHI found: {summary}" + (f"; written to {out}" if out is not None else ""), highlight=False)
