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

import contextlib
import csv
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from clinforge.core.errors import ConfigError, DataError, OutputExistsError
from clinforge.data.deid.patient_ids import PATIENT_ID_MODES, PatientPseudonymizer
from clinforge.data.deid.spans import make_span

TEXT_SUFFIXES = (".txt", ".text", ".md", ".note", ".notes")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv", ".tsv")


def input_kind(path: Path) -> str:
    """``folder``, ``text``, ``jsonl`` or ``csv`` for an input path; anything else is an error listing the choices.

    Example:
        >>> input_kind(Path("notes.jsonl"))
        'jsonl'
    """
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
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise DataError(f"no text files ({', '.join(TEXT_SUFFIXES)}) in the folder", file=str(folder))
    return files


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None


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


def deidentify_file(input: Path, out: Path | None = None, *, mode: str = "mask", json_out: bool = False,
                    text_column: str = "text", patient_column: str | None = None, seed: int = 0,
                    overwrite: bool = False, progress: bool = True, stdout: TextIO | None = None,
                    ner_model: Path | None = None, ner_int8: bool = False,
                    patient_ids: str = "pseudonymize", site_terms: Path | None = None,
                    name_columns: Sequence[str] = ()) -> dict[str, Any]:
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

    A bad row stops the run and leaves no output (the output is written atomically; without ``out`` rows are
    buffered so nothing is half-printed).
    """
    from clinforge.core.io import atomic_path, read_jsonl
    from clinforge.core.progress import progress_bar
    from clinforge.data.deid import MODES, Deidentifier
    from clinforge.data.deid.site_terms import SiteTermsRecognizer

    stdout = sys.stdout if stdout is None else stdout
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}", key="--mode")
    kind = input_kind(input)
    if out is not None and out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    if out is not None and out.resolve() == input.resolve():
        raise ConfigError("--out must differ from the input", key="--out")
    if kind == "folder" and out is None:
        raise ConfigError("a folder input needs --out FOLDER", key="--out")
    if kind in ("text", "folder"):  # options of a table given for plain text: refused, not silently ignored
        what = "a folder of text files (a text per file" if kind == "folder" else "a text file (one text"
        if patient_column is not None:
            raise ConfigError(f"applies to a JSONL or CSV input; {input} is {what}, no columns)",
                              key="--patient-column")
        if text_column != "text":
            raise ConfigError(f"applies to a JSONL or CSV input; {input} is {what}, no columns)", key="--text-column")
        if patient_ids != "pseudonymize":
            raise ConfigError(f"applies to a JSONL or CSV input; {input} is {what}, no columns)", key="--patient-ids")
        if name_columns:
            raise ConfigError(f"applies to a JSONL or CSV input; {input} is {what}, no columns)", key="--name-column")
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
    recognizers = None
    if ner_model is not None:
        from clinforge.data.deid.ner import TransformersNerRecognizer
        from clinforge.data.deid.recognizers import DEFAULT_RECOGNIZERS

        recognizers = [*DEFAULT_RECOGNIZERS, TransformersNerRecognizer(model=ner_model, int8=ner_int8)]
    deidentifier = Deidentifier(mode=mode, seed=seed, recognizers=recognizers, site_terms=site_terms)
    counts: Counter[str] = Counter()
    n_items = n_bytes = n_name_cells = 0
    started = time.process_time()
    stdout_lines: list[str] = []

    def process(text: str, patient_id: str | None, where: dict, names: Sequence[str] = ()) -> str:
        nonlocal n_items, n_bytes
        result = (deidentifier.deidentify_many([text], patient_id, known_names=names)[0] if names
                  else deidentifier.deidentify(text, patient_id=patient_id))
        counts.update(s.entity_type for s in result.spans)
        n_items += 1
        n_bytes += len(text.encode("utf-8"))
        if json_out:
            row = {**where, "spans": [s.to_dict() for s in result.spans]}
            if out is None:
                row["text"] = result.text
            stdout_lines.append(json.dumps(row, ensure_ascii=False))
        return result.text

    def hide_names(row: dict, pid: str | None, line: int) -> list[str]:
        """Replace the row's name cells as NAMEs; returns their values, to be searched for in the row's text."""
        nonlocal n_name_cells
        names = []
        for column in name_columns:
            value = _cell(row, column, input, line, optional=True)
            if value is None or not value.strip():
                continue
            names.append(value)
            span = make_span(0, len(value), "NAME", 1.0, "a --name-column cell", "name_column")
            row[column] = deidentifier.replacement(span, value, pid)
            n_name_cells += 1
        return names

    # The total is known before the bar starts: a bar reset after it started prints a stray "0text" line in a log.
    files = _text_files(input) if kind == "folder" else []
    total: int | None = 1 if kind == "text" else len(files) if kind == "folder" else None
    if kind == "jsonl":
        with open(input, "rb") as fh:
            total = sum(1 for _ in fh)
    bar = progress_bar(desc="de-identifying", unit="text", total=total, enabled=progress)
    with bar:
        if kind == "text":
            cleaned = process(_read_text(input), None, {"file": str(input)})
            bar.update(1)
            if out is not None:
                with atomic_path(out, overwrite=overwrite) as tmp:
                    tmp.write_text(cleaned, encoding="utf-8")
            elif not json_out:
                stdout.write(cleaned)
        elif kind == "folder":
            with atomic_path(out, overwrite=overwrite) as tmp:
                tmp.mkdir(parents=True)
                for path in files:
                    rel = path.relative_to(input)
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(process(_read_text(path), None, {"file": str(rel)}), encoding="utf-8")
                    bar.update(1)
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
                    patient_key_seen = patient_column is None
                    names_seen: set[str] = set()
                    for line, row in read_jsonl(input):
                        text = _cell(row, text_column, input, line)
                        pid = _cell(row, patient_column, input, line, optional=True) if patient_column else None
                        patient_key_seen = patient_key_seen or patient_column in row
                        names_seen.update(c for c in name_columns if c in row)
                        names = hide_names(row, pid, line)
                        if text is not None:
                            row[text_column] = process(text, pid, {"line": line}, names)
                        hide_patient(row)
                        kept_columns.update(dict.fromkeys(k for k in row if k not in (text_column, patient_column,
                                                                                     *name_columns)))
                        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                        bar.update(1)
                    if not patient_key_seen:  # a typo would give every text one date offset and surrogate map
                        raise DataError(f"no row has the --patient-column {patient_column!r}", file=str(input),
                                        field=patient_column)
                    for column in name_columns:
                        if column not in names_seen:  # a typo would leave every name cell as it came
                            raise DataError(f"no row has the --name-column {column!r}", file=str(input), field=column)
                else:
                    fields, rows, bom = _csv_rows(input)
                    for column in (text_column, patient_column, *name_columns):
                        if column is not None and column not in fields:
                            raise DataError(f"no column {column!r} (columns: {', '.join(fields)})",
                                            file=str(input), line=1, field=column)
                    if bom and out is not None:  # a file as it came: Excel reads UTF-8 CSV right only with it
                        sink.write("\ufeff")
                    delimiter = "\t" if input.suffix.lower() == ".tsv" else ","
                    writer = csv.DictWriter(sink, fieldnames=fields, delimiter=delimiter, lineterminator="\n")
                    writer.writeheader()
                    kept_columns.update(dict.fromkeys(f for f in fields if f not in (text_column, patient_column,
                                                                                     *name_columns)))

                    for line, row in rows:
                        text = _cell(row, text_column, input, line)
                        pid = _cell(row, patient_column, input, line, optional=True) if patient_column else None
                        names = hide_names(row, pid, line)
                        if text is not None:
                            row[text_column] = process(text, pid, {"line": line}, names)
                        hide_patient(row)
                        writer.writerow(row)
                        bar.update(1)
                if out is None and not json_out:
                    stdout.write(sink.getvalue())
    for line in stdout_lines:
        stdout.write(line + "\n")
    return {"items": n_items, "bytes": n_bytes, "cpu_s": time.process_time() - started, "phi": dict(counts),
            "mode": mode, "out": str(out) if out is not None else None,
            "patient_ids": None if patient_column is None else (
                ids.describe() if patient_ids == "pseudonymize" else "kept as in the input"),
            "kept_columns": list(kept_columns), "name_cells": n_name_cells,
            "site_terms": next((r.describe() for r in deidentifier.recognizers if isinstance(r, SiteTermsRecognizer)),
                               None)}
