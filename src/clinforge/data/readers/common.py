"""Helpers every reader shares: finding files, streaming JSON lines and CSV rows with their line numbers, and turning
one row into a validated Record or a DataError that names file, line/record and field (never the row's text).

The pattern every reader follows::

    for line, row in iter_json_lines(self, path):
        try:
            rec = convert(row)          # raises DataError(file=, line=, field=) on a malformed row
        except DataError as err:
            self.bad(err, reason_of(err))   # fail: raise; skip: count under a stable reason
            continue
        yield rec
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from clinforge.core.errors import DataError
from clinforge.core.io import json_error_text
from clinforge.data.readers.base import Reader
from clinforge.data.records import LETTERS, Record

# clinical notes and dialogues are long; the csv module's default 128 KiB field limit is too small for some sets
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

RECORD_FIELDS: tuple[str, ...] = tuple(Record.model_fields)
_LIST_FIELDS = {"choices", "messages", "prompt", "images"}


def reason_of(err: DataError) -> str:
    """A stable skip reason for counting: the field and the message (messages never quote row text).

    Example:
        >>> reason_of(DataError("missing", file="a.jsonl", line=3, field="cop"))
        'cop: missing'
    """
    return f"{err.field}: {err.message}" if err.field else err.message


def resolve_files(path: str | os.PathLike, patterns: Iterable[str], reader: str) -> list[Path]:
    """The file ``path`` itself, or the files under the folder ``path`` matching any glob in ``patterns`` (sorted).

    Example:
        >>> resolve_files("/no/such/place", ["*.csv"], "mmlu")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.DataError: /no/such/place: no such file or folder (reader mmlu)
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DataError(f"no such file or folder (reader {reader})", file=str(p))
    pats = list(patterns)
    found = sorted({f for pat in pats for f in p.rglob(pat) if f.is_file()})
    if not found:
        raise DataError(f"no file matching {', '.join(pats)} in this folder (reader {reader})", file=str(p))
    return found


def load_json(path: str | os.PathLike) -> Any:
    """Parse a whole JSON file; a syntax error names the file and line (a file that does not parse cannot be skipped).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"; _ = p.write_text('{"a": 1}')
        >>> load_json(p)
        {'a': 1}
    """
    if not Path(path).is_file():
        raise DataError("no such file", file=str(path))
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid UTF-8 at byte {exc.start}", file=str(path),
                        line=raw[: exc.start].count(b"\n") + 1) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({json_error_text(exc)})", file=str(path), line=exc.lineno) from exc


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str | UnicodeDecodeError]]:
    """``(line_number, text)`` of a file decoded line by line, so that a bad byte is pinned to its line: such a
    line yields the UnicodeDecodeError instead of text (a BOM on the first line is dropped).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"; _ = p.write_bytes(b"\\xef\\xbb\\xbfok\\n\\xff\\n")
        >>> [(n, type(t).__name__) for n, t in iter_lines(p)]
        [(1, 'str'), (2, 'UnicodeDecodeError')]
    """
    plain = encoding.lower().replace("-sig", "").replace("_sig", "")
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode(f"{plain}-sig" if lineno == 1 and plain in ("utf-8", "utf8") else plain)
            except UnicodeDecodeError as exc:
                yield lineno, exc


def iter_json_lines(reader: Reader, path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank JSON line, counting rows; a bad line goes to ``reader.bad``."""
    for lineno, line in iter_lines(path):
        if isinstance(line, UnicodeDecodeError):
            reader.report.rows += 1
            reader.bad(DataError(f"not valid {line.encoding} at byte {line.start} of the line", file=str(path),
                                 line=lineno), "not valid UTF-8")
            continue
        if not line.strip():
            continue
        reader.report.rows += 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            reader.bad(DataError(f"invalid JSON ({json_error_text(exc)})", file=str(path), line=lineno),
                       "invalid JSON")
            continue
        if not isinstance(obj, dict):
            reader.bad(DataError(f"expected a JSON object, got {type(obj).__name__}", file=str(path), line=lineno),
                       "not a JSON object")
            continue
        yield lineno, obj


def iter_json_records(reader: Reader, path: Path) -> Iterator[tuple[int | None, int, dict]]:
    """Rows of a ``.json`` array file or a ``.jsonl`` file: yields ``(line or None, record_number, object)``."""
    if path.suffix.lower() == ".jsonl":
        for n, (lineno, obj) in enumerate(iter_json_lines(reader, path), start=1):
            yield lineno, n, obj
        return
    data = load_json(path)
    if isinstance(data, dict):
        # a {"data": [...]} wrapper is common; anything else is not a list of rows
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError("expected a JSON array of rows (or an object holding exactly one array)", file=str(path))
        data = lists[0]
    if not isinstance(data, list):
        raise DataError(f"expected a JSON array of rows, got {type(data).__name__}", file=str(path))
    for n, obj in enumerate(data, start=1):
        reader.report.rows += 1
        if not isinstance(obj, dict):
            reader.bad(DataError(f"expected a JSON object, got {type(obj).__name__}", file=str(path), record=n),
                       "not a JSON object")
            continue
        yield None, n, obj


def iter_parquet(reader: Reader, path: Path, *, batch_size: int = 1024,
                 columns: list[str] | None = None) -> Iterator[tuple[None, int, dict]]:
    """Rows of a Parquet file as ``(None, record_number, row)`` (nulls dropped: absent, not a value), in batches."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a file that is not parquet
        raise DataError(f"not a readable Parquet file ({type(exc).__name__})", file=str(path)) from exc
    n = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
        for row in batch.to_pylist():
            n += 1
            reader.report.rows += 1
            yield None, n, {k: v for k, v in row.items() if v is not None}


def is_json_lines(path: Path) -> bool:
    """True for ``.jsonl``; for ``.json``, true when the first non-blank line is a whole JSON object by itself
    (MedMCQA ships JSON lines named ``dev.json``), false for an array or a pretty-printed object.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "dev.json").write_text('{"q": 1}\\n{"q": 2}\\n'); _ = (d / "all.json").write_text('[{"q": 1}]')
        >>> is_json_lines(d / "dev.json"), is_json_lines(d / "all.json")
        (True, False)
    """
    if path.suffix.lower() == ".jsonl":
        return True
    for _, line in iter_lines(path):
        if isinstance(line, UnicodeDecodeError):
            return False  # reported with its line when the file is parsed
        if line.strip():
            try:
                return isinstance(json.loads(line), dict)
            except json.JSONDecodeError:
                return False
    return False


def iter_rows(reader: Reader, path: Path) -> Iterator[tuple[int | None, int, dict]]:
    """Rows of a JSON lines, JSON array or Parquet file: ``(line or None, record_number, row)``."""
    if path.suffix.lower() == ".parquet":
        yield from iter_parquet(reader, path)
    elif is_json_lines(path):
        for n, (lineno, obj) in enumerate(iter_json_lines(reader, path), start=1):
            yield lineno, n, obj
    else:
        yield from iter_json_records(reader, path)


_SPLIT_WORDS = ("train", "training", "dev", "validation", "valid", "val", "test")


def split_from_name(path: Path) -> str:
    """The split a file's name states, else the file's stem.

    ``phrases_no_exclude_test`` -> ``test``; ``MTS-Dialog-TestSet-1-...`` -> ``test1``; ``...-ValidationSet-...``
    -> ``validation``; ``test-00000-of-00001`` -> ``test``.

    Example:
        >>> split_from_name(Path("test-00000-of-00001.parquet")), split_from_name(Path("ori_pqal.json"))
        ('test', 'ori_pqal')
        >>> split_from_name(Path("MTS-Dialog-TestSet-2-MEDIQA-Sum-2023.csv"))
        'test2'
    """
    import re

    tokens = [t for t in re.split(r"[^a-z0-9]+", path.stem.lower()) if t]
    for i, token in enumerate(tokens):
        word = token.removesuffix("set") if token.endswith("set") and token != "set" else token
        if word in _SPLIT_WORDS:
            word = {"training": "train"}.get(word, word)
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if token.endswith("set") and nxt.isdigit() and len(nxt) <= 2:
                word += nxt
            return word
    return path.stem


def iter_csv(reader: Reader, path: Path, *, header: bool = True, delimiter: str = ",",
             encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, str] | list[str]]]:
    """Yield ``(first_line_of_row, row)``: a dict by header when ``header``, else the list of fields.

    Rows whose field count differs from the header's go to ``reader.bad`` (field ``columns``). Quoted fields may
    span lines; the line number is where the row starts, as an editor shows it.
    """

    def decoded() -> Iterator[str]:
        for lineno, line in iter_lines(path, encoding):
            if isinstance(line, UnicodeDecodeError):  # the csv state machine cannot resume mid-file: stop here
                raise DataError(f"not valid {line.encoding} at byte {line.start} of the line (pass the file's "
                                f"encoding)", file=str(path), line=lineno)
            yield line

    rows = csv.reader(decoded(), delimiter=delimiter)
    columns: list[str] | None = None
    prev_end = 0
    for fields in rows:
        start, prev_end = prev_end + 1, rows.line_num
        if header and columns is None:
            columns = [c.strip() for c in fields]
            continue
        if not fields:  # a truly blank line
            continue
        reader.report.rows += 1
        if columns is None:
            yield start, fields
            continue
        if len(fields) != len(columns):
            reader.bad(DataError(f"{len(fields)} fields, the header has {len(columns)}", file=str(path),
                                 line=start, field="columns"), "wrong number of fields")
            continue
        yield start, dict(zip(columns, fields, strict=True))


def get_field(row: dict, key: str, *, file: Path | str, line: int | None = None, record: int | str | None = None,
              required: bool = True, kind: type | tuple[type, ...] = str, allow_empty: bool = False) -> Any:
    """``row[key]`` checked for presence, type and emptiness; otherwise a DataError naming file, line and field.

    Example:
        >>> get_field({"q": ""}, "q", file="a.jsonl", line=2)
        Traceback (most recent call last):
        ...
        clinforge.core.errors.DataError: a.jsonl, line 2, field q: empty
    """
    where = {"file": str(file), "line": line, "record": record, "field": key}
    if key not in row or row[key] is None:
        if required:
            raise DataError("missing", **where)
        return None
    value = row[key]
    if not isinstance(value, kind) or (kind is str and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataError(f"expected {names}, got {type(value).__name__}", **where)
    if not allow_empty and isinstance(value, str) and not value.strip():
        if required:
            raise DataError("empty", **where)
        return None
    return value


def make_record(*, file: Path | str, line: int | None = None, record: int | str | None = None, **fields: Any) -> Record:
    """Build a Record; a validation failure becomes a DataError naming the field (never echoing the value).

    Example:
        >>> make_record(file="x.jsonl", line=4, id="1", kind="mcq", question="q", choices=["a", "b"], answer="C")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.DataError: x.jsonl, line 4, field answer: answer must be one of AB
    """
    try:
        return Record(**fields)
    except ValidationError as exc:
        raise validation_to_data_error(exc, file=file, line=line, record=record, kind=fields.get("kind")) from None


def validation_to_data_error(exc: ValidationError, *, file: Path | str, line: int | None, record: int | str | None,
                             kind: Any = None) -> DataError:
    """Turn pydantic's error into a DataError: first failing field and a message without the input value.

    Example:
        >>> from clinforge.data.records import Record
        >>> try:
        ...     Record(id="1", kind="qa", question=3)
        ... except ValidationError as exc:
        ...     print(validation_to_data_error(exc, file="f.jsonl", line=2, record=None))
        f.jsonl, line 2, field question: Input should be a valid string
    """
    err = exc.errors(include_input=False, include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ())]
    field = ".".join(loc) if loc else None
    message = err.get("msg", "invalid")
    if not loc and kind == "mcq" and "is not one of" in message:
        field, message = "answer", "answer must be one of " + message.rsplit(" ", 1)[-1]
    elif not loc and "needs" in message:
        field = message.rsplit("needs ", 1)[-1].split(",")[0].strip()
        message = message.removeprefix("Value error, ")
    return DataError(message.removeprefix("Value error, "), file=str(file), line=line, record=record, field=field)


def letter(index: int, n_choices: int, *, file: Path | str, line: int | None = None, record: int | None = None,
           field: str = "answer") -> str:
    """The answer letter of 0-based ``index`` among ``n_choices``, or a DataError when out of range.

    Example:
        >>> letter(2, 4, file="f")
        'C'
    """
    if not 0 <= index < n_choices:
        raise DataError(f"answer index out of range 0..{n_choices - 1}", file=str(file), line=line, record=record,
                        field=field)
    return LETTERS[index]


# speaker tags as the dialogue sets write them (typos included, e.g. MTS-Dialog's "Docotr_2", "Guest_clinican")
SPEAKER_ROLES = {
    "doctor": "assistant", "docotr": "assistant", "guest_clinician": "assistant", "guest_clinican": "assistant",
    "doctor_guest": "assistant", "patient": "user", "guest_family": "user", "gest_family": "user",
    "guest_patient": "user", "patient_guest": "user",
}
_COLON_TAG = re.compile(r'^\s*"?(?P<spk>[A-Za-z][A-Za-z_]*?)_?(?P<num>\d*)\s*:\s?')
_PERIOD_TAG = re.compile(r'^\s*"?(?P<spk>(?:Doctor|Patient|Guest_[A-Za-z]+|Gest_[A-Za-z]+))_?(?P<num>\d*)\.\s')
_BRACKET_TAG = re.compile(r"^\s*\[(?P<spk>[a-z_]+?)_?(?P<num>\d*)\]\s?")


def parse_dialogue(text: str, *, style: str = "colon", file: Path | str, line: int | None = None,
                   record: int | str | None = None, field: str = "dialogue"
                   ) -> tuple[list[dict[str, str]], list[str], str | None]:
    """Split a transcript into chat turns; returns ``(messages, speakers, untagged_preamble)``.

    ``style="colon"`` reads ``Doctor: ...`` lines (MTS-Dialog), ``style="bracket"`` reads ``[doctor] ...`` lines
    (ACI-Bench). Doctors and guest clinicians become ``assistant``, patients and family ``user``; ``speakers`` keeps
    each turn's tag as written (e.g. ``Guest_family_2``) so nothing is lost. A line without a tag continues the
    previous turn (utterances that span lines). Text before the first tag is returned as ``untagged_preamble``
    rather than given a speaker (one ACI-Bench visit lost its first tag): the caller records it, nothing is guessed.
    An unknown speaker tag, or no tagged turn at all, is a DataError.

    Example:
        >>> parse_dialogue("Doctor: Hi.\\nPatient: Hello,\\nthanks.", file="d.csv")
        ([{'role': 'assistant', 'content': 'Hi.'}, {'role': 'user', 'content': 'Hello,\\nthanks.'}], ['Doctor', 'Patient'], None)
    """
    if style not in ("colon", "bracket"):
        raise ValueError(f"style must be colon or bracket, not {style!r}")
    where = {"file": str(file), "line": line, "record": record, "field": field}
    messages: list[dict[str, str]] = []
    speakers: list[str] = []
    preamble: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        m = _BRACKET_TAG.match(raw) if style == "bracket" else (_COLON_TAG.match(raw) or _PERIOD_TAG.match(raw))
        if m is None:
            if not messages:
                preamble.append(raw.strip())
                continue
            messages[-1]["content"] = (messages[-1]["content"] + "\n" + raw.strip()).strip()
            continue
        role = SPEAKER_ROLES.get(m.group("spk").lower())
        if role is None:
            raise DataError(f"unknown speaker tag (known: {', '.join(sorted(SPEAKER_ROLES))})", **where)
        messages.append({"role": role, "content": raw[m.end():].strip()})
        speakers.append(raw[m.start("spk"): m.end("num")])
    keep = [i for i, msg in enumerate(messages) if msg["content"]]
    if not keep:
        raise DataError("no speaker turn with text", **where)
    return [messages[i] for i in keep], [speakers[i] for i in keep], "\n".join(preamble) or None
