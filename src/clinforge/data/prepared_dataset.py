"""The stored form of a prepared dataset: one stable column layout for every Record, and the way back.

``clinforge data prepare`` writes a HF ``datasets`` folder with :func:`features` (every Record field; ``meta`` as a
JSON string, so that records of different kinds share one schema); :func:`load_prepared` gives the Records back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clinforge.core.errors import DataError
from clinforge.data.records import Record


def features():
    """The stable column layout of a prepared dataset (every Record field; ``meta`` as a JSON string).

    Example:
        >>> list(features())[:4]
        ['id', 'kind', 'source', 'split']
    """
    from datasets import Features, List, Value

    turn = {"role": Value("string"), "content": Value("string")}
    return Features({
        "id": Value("string"), "kind": Value("string"), "source": Value("string"), "split": Value("string"),
        "text": Value("string"), "question": Value("string"), "choices": List(Value("string")),
        "answer": Value("string"), "context": Value("string"), "target": Value("string"),
        "messages": List(turn), "prompt": List(turn), "chosen": Value("string"), "rejected": Value("string"),
        "images": List(Value("string")), "patient_id": Value("string"), "meta": Value("string"),
    })


def record_to_row(rec: Record) -> dict[str, Any]:
    """A Record as one row of :func:`features` (``meta`` JSON-encoded).

    Example:
        >>> record_to_row(Record(id="1", kind="note", text="x", meta={"a": 1}))["meta"]
        '{"a": 1}'
    """
    row = rec.model_dump(mode="json")
    row["meta"] = json.dumps(row["meta"], ensure_ascii=False, sort_keys=True)
    return row


def row_to_record(row: dict[str, Any]) -> Record:
    """Inverse of :func:`record_to_row`.

    Example:
        >>> r = Record(id="1", kind="qa", question="q?", answer="a", meta={"k": [1]})
        >>> row_to_record(record_to_row(r)) == r
        True
    """
    values = {k: v for k, v in row.items() if v is not None}
    values["meta"] = json.loads(row.get("meta") or "{}")
    return Record.model_validate(values)


def load_prepared(path: str | os.PathLike) -> dict[str, list[Record]]:
    """Records of a prepared dataset by split (``{"all": [...]}`` when no split step ran).

    ``path`` is the run directory or its ``dataset`` folder.

    Example:
        >>> load_prepared("/no/such/run")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.DataError: /no/such/run: no prepared dataset here (expected a dataset/ folder written by clinforge data prepare)
    """
    from datasets import Dataset, DatasetDict, load_from_disk

    p = Path(path)
    folder = p / "dataset" if (p / "dataset").is_dir() else p
    if not ((folder / "dataset_dict.json").exists() or (folder / "dataset_info.json").exists()):
        raise DataError("no prepared dataset here (expected a dataset/ folder written by clinforge data prepare)",
                        file=str(p))
    ds = load_from_disk(str(folder))
    if isinstance(ds, Dataset):
        ds = DatasetDict({"all": ds})
    return {name: [_load_row(row, folder, name, i) for i, row in enumerate(split)] for name, split in ds.items()}


def _load_row(row: dict[str, Any], folder: Path, split: str, index: int) -> Record:
    """One row as a Record; a row that is not one (a dataset edited by hand) names the split, row and field."""
    from pydantic import ValidationError

    try:
        return row_to_record(row)
    except json.JSONDecodeError:
        raise DataError("meta is not valid JSON", file=str(folder), record=f"{split}[{index}]", field="meta") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or None
        raise DataError(f"not a valid record ({err['type']})", file=str(folder), record=f"{split}[{index}]",
                        field=field) from None
