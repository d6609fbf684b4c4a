"""Atomic writes, hashing and JSON Lines helpers shared by every layer."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from clinforge.core.errors import DataError, OutputExistsError


def json_error_text(exc: Any) -> str:
    """A ``json.JSONDecodeError`` as ``message at column N``; Python's messages that end in "at" ("Unterminated
    string starting at", "Invalid control character at") are not doubled into "at at column".

    Example:
        >>> import json
        >>> try:
        ...     json.loads('{"a": "x')
        ... except json.JSONDecodeError as exc:
        ...     json_error_text(exc)
        'Unterminated string starting at column 7'
    """
    msg = exc.msg.removesuffix(" at")
    return f"{msg} at column {exc.colno}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` in one step.

    A crash leaves either the old file or the new one, never half a file. Works for files and folders.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("hi")
        >>> (d / "a.txt").read_text()
        'hi'
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        replace_path(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def replace_path(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move ``source`` (a file or a folder) onto ``target`` in one step, replacing what is there; a folder
    ``target`` is first renamed aside (``os.replace`` cannot replace a non-empty folder) and removed after.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "new").write_text("2"); _ = (d / "old").write_text("1")
        >>> replace_path(d / "new", d / "old"); (d / "old").read_text(), (d / "new").exists()
        ('2', False)
    """
    source, target = Path(source), Path(target)
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically.

    Example:
        >>> import tempfile, pathlib
        >>> p = atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "x.txt", "ok")
        >>> p.read_text()
        'ok'
    """
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as indented JSON atomically (keys kept in insertion order).

    Example:
        >>> import tempfile, pathlib
        >>> p = atomic_write_json(pathlib.Path(tempfile.mkdtemp()) / "s.json", {"acc": 0.5})
        >>> p.read_text()
        '{\\n  "acc": 0.5\\n}\\n'
    """
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", overwrite=overwrite)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict], *, overwrite: bool = True) -> int:
    """Write dict rows as JSON Lines atomically; returns the number of rows.

    Example:
        >>> import tempfile, pathlib
        >>> write_jsonl(pathlib.Path(tempfile.mkdtemp()) / "r.jsonl", [{"a": 1}, {"a": 2}])
        2
    """
    n = 0
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line; a bad line raises DataError with its number.

    Lines are decoded one by one, so bytes that are not UTF-8 are an error naming their line (not a
    UnicodeDecodeError from somewhere in the file); a byte-order mark on the first line (spreadsheet and Windows
    editors write one) is dropped.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"; _ = p.write_text('{"a": 1}\\n')
        >>> list(read_jsonl(p))
        [(1, {'a': 1})]
        >>> _ = p.write_bytes(b'\\xef\\xbb\\xbf{"a": 1}\\n{"b": "caf\\xe9"}\\n')
        >>> list(read_jsonl(p))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.errors.DataError: .../r.jsonl, line 2: not valid UTF-8 at byte 10 of the line
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"not valid UTF-8 at byte {exc.start} of the line", file=str(path),
                                line=lineno) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON ({json_error_text(exc)})", file=str(path), line=lineno) from exc
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}", file=str(path), line=lineno)
            yield lineno, obj


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "e"; _ = p.write_bytes(b"")
        >>> sha256_file(p)[:12]
        'e3b0c44298fc'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(path: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file under ``path`` (or of ``path`` itself if it is a file), keyed by path.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("x")
        >>> list(sha256_tree(d).values())[0][:12]
        '2d711642b726'
    """
    p = Path(path)
    if p.is_file():
        return {str(p): sha256_file(p)}
    return {str(f): sha256_file(f) for f in sorted(p.rglob("*")) if f.is_file()}


def read_lines(path: Path) -> list[str]:
    """One example per line: ``\\n`` separates lines, a final newline ends the last one, ``\\r`` is dropped, and a
    UTF-8 byte-order mark at the start of the file (spreadsheet and Notepad exports) is not part of the first line.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x.txt"; _ = p.write_text("a\\n\\nb\\n")
        >>> read_lines(p)
        ['a', '', 'b']
    """
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"not UTF-8 text (byte {exc.start} of the file)", file=str(path), line=line) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
