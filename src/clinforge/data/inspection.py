"""What is in a dataset file, as a reader sees it: counts by kind and split, how often each field is filled, one
sample record (truncated), and every problem the reader met (skipped rows by reason, the first error messages).

``clinforge data inspect`` prints this; the summary is a plain dict so it can also go into a data card.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from clinforge.data.load import read_records
from clinforge.data.readers.base import OnError
from clinforge.data.records import Record

# fields that every record has, or that say nothing about fill
_ALWAYS = {"id", "kind", "source", "split", "meta"}
SAMPLE_CHARS = 240
SAMPLE_ITEMS = 5


def truncate(value: Any, chars: int = SAMPLE_CHARS, items: int = SAMPLE_ITEMS) -> Any:
    """Shorten long strings and lists (recursively) so one record fits on a screen.

    Example:
        >>> truncate("x" * 300, chars=5)
        'xxxxx… [+295 chars]'
        >>> truncate(list(range(8)), items=2)
        [0, 1, '… [+6 items]']
    """
    if isinstance(value, str):
        return value if len(value) <= chars else f"{value[:chars]}… [+{len(value) - chars} chars]"
    if isinstance(value, list):
        head = [truncate(v, chars, items) for v in value[:items]]
        return head + ([f"… [+{len(value) - items} items]"] if len(value) > items else [])
    if isinstance(value, dict):
        keys = list(value)
        out = {k: truncate(value[k], chars, items) for k in keys[: items * 4]}
        if len(keys) > items * 4:
            out["…"] = f"+{len(keys) - items * 4} keys"
        return out
    return value


def summarise(records: Iterable[Record], *, on_record: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Counts, fill rates and a sample of a stream of records (consumed once).

    Example:
        >>> s = summarise([Record(id="1", kind="note", text="a"), Record(id="2", kind="qa", question="q?")])
        >>> s["count"], s["by_kind"], s["fields"]["text"]
        (2, {'note': 1, 'qa': 1}, 0.5)
    """
    count = 0
    by_kind: Counter = Counter()
    by_split: Counter = Counter()
    filled: Counter = Counter()
    meta_filled: Counter = Counter()
    text_chars = 0
    sample: dict[str, Any] | None = None
    for rec in records:
        count += 1
        by_kind[rec.kind] += 1
        by_split[rec.split if rec.split is not None else "(none)"] += 1
        for name in Record.model_fields:
            if name in _ALWAYS:
                continue
            value = getattr(rec, name)
            if value not in (None, "", []):
                filled[name] += 1
        for key, value in rec.meta.items():
            if value not in (None, "", [], {}):
                meta_filled[key] += 1
        text_chars += sum(len(t) for t in rec.texts())
        if sample is None:
            sample = truncate(rec.model_dump(exclude_none=True, exclude_defaults=True) | {"id": rec.id,
                                                                                        "kind": rec.kind})
        if on_record is not None:
            on_record(count)
    fields = {name: round(filled[name] / count, 4) for name in Record.model_fields
              if name not in _ALWAYS and filled[name]} if count else {}
    meta = {key: round(n / count, 4) for key, n in meta_filled.most_common()} if count else {}
    return {"count": count, "by_kind": dict(by_kind), "by_split": dict(by_split), "fields": fields,
            "meta_fields": meta, "mean_text_chars": round(text_chars / count, 1) if count else 0.0,
            "sample": sample}


def inspect_source(path: str | os.PathLike, format: str, *, limit: int | None = None, on_error: OnError = "skip",
                   on_record: Callable[[int], None] | None = None, **options: Any) -> dict[str, Any]:
    """Read ``path`` with reader ``format`` and summarise it, problems included.

    ``on_error`` defaults to ``"skip"`` here so that one bad row does not hide the others: every skipped row is
    counted by reason under ``problems``. With ``"fail"`` the first bad row raises its DataError.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "n.jsonl"
        >>> _ = p.write_text('{"id": "1", "kind": "note", "text": "Afebrile."}\\n{"id": "2"}\\n')
        >>> s = inspect_source(p, "jsonl")
        >>> s["count"], s["problems"]["skipped"]
        (1, {'kind: missing: rows must be in the Record layout, or pass kind= (and fields=)': 1})
    """
    records, reader = read_records(path, format, on_error=on_error, limit=limit, **options)
    summary = summarise(records, on_record=on_record)
    report = reader.report.as_dict()
    return {"path": str(path), "format": format, "limit": limit, "on_error": on_error, "options": options,
            "rows_read": report["rows"], **summary,
            "problems": {"skipped": report["skipped"], "skipped_total": report["skipped_total"],
                         "error_examples": report["error_examples"]},
            "reader_notes": report["notes"], "files": report["files"]}


def empty_reason(summary: dict[str, Any]) -> str | None:
    """Why an inspection that read rows produced no record (every row skipped), or None when records came out or
    there was nothing to read. ``clinforge data inspect`` exits non-zero with this: 0 of 1,273 rows is a wrong
    ``--format`` or missing options, never a successful read.

    Example:
        >>> empty_reason({"count": 0, "rows_read": 3, "format": "jsonl",
        ...               "problems": {"skipped": {"kind: missing": 3}}})
        "0 records from 3 rows read as jsonl: every row was skipped (3 x kind: missing); check --format (a reader \
named for the dataset, e.g. medqa) or the reader's --option settings"
    """
    if summary["count"] or not summary["rows_read"] or summary.get("limit") == 0:
        return None
    skipped = summary["problems"]["skipped"]
    top = max(skipped.items(), key=lambda kv: kv[1]) if skipped else None
    why = f" ({top[1]} x {top[0]})" if top else ""
    return (f"0 records from {summary['rows_read']} rows read as {summary['format']}: every row was skipped{why}; "
            "check --format (a reader named for the dataset, e.g. medqa) or the reader's --option settings")
