"""The catalog of datasets the field uses for medical LLMs and MLLMs: type, modality, size, AI synthesis, licence,
access, source, language, and which clinforge reader loads each one.

The facts live in ``catalog.yaml`` (package data) and are validated here, so a wrong field names its line.

Example:
    >>> entry = find_dataset("medqa (usmle)")
    >>> entry.name, entry.reader, entry.access
    ('MedQA', 'medqa', 'open')
    >>> [e.name for e in load_catalog() if e.access == "credentialed"]
    ['MIMIC-III', 'MIMIC-IV', 'MIMIC-CXR']
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from clinforge.core.config import StrictModel, load_yaml, validate
from clinforge.core.errors import ConfigError
from clinforge.core.registry import UnknownComponentError

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")

DatasetType = Literal["EHR", "literature", "QA", "dialogue", "instruction", "knowledge base", "web data", "VQA",
                      "image-report", "image-caption", "image-annotation", "hybrid", "de-identification"]
Access = Literal["open", "registration", "credentialed", "data-use agreement", "unknown"]
DATASET_TYPES: tuple[str, ...] = DatasetType.__args__  # type: ignore[attr-defined]
ACCESS_LEVELS: tuple[str, ...] = Access.__args__  # type: ignore[attr-defined]


class DatasetEntry(StrictModel):
    """One dataset of the field, as the catalog describes it."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    type: DatasetType
    modality: str
    size: str
    ai_synthesised: bool
    licence: str
    access: Access
    source: str
    language: list[str]
    reader: str | None
    reader_options: dict[str, Any] = Field(default_factory=dict)
    reader_note: str | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _reader_known(self) -> DatasetEntry:
        if self.reader is None:
            if not self.reader_note:
                raise ValueError("reader is null: reader_note must say why")
        else:
            from clinforge.data.readers import READERS

            if self.reader not in READERS.names():
                raise ValueError(f"unknown reader {self.reader!r}; valid: {', '.join(READERS.names())}")
        if self.reader_options and self.reader is None:
            raise ValueError("reader_options given without a reader")
        for text in (self.name, self.modality, self.size, self.licence, self.source):
            if not text.strip():
                raise ValueError("empty text field")
        return self

    def matches(self, name: str) -> bool:
        """True when ``name`` is this dataset's name or an alias (case-insensitive)."""
        wanted = name.strip().lower()
        return wanted == self.name.lower() or any(wanted == a.lower() for a in self.aliases)


class Catalog(StrictModel):
    datasets: list[DatasetEntry]


@functools.lru_cache(maxsize=4)
def _load(path: str) -> tuple[DatasetEntry, ...]:
    data, lines = load_yaml(path)
    catalog = validate(Catalog, data, file=path, lines=lines)
    seen: dict[str, int] = {}
    for i, entry in enumerate(catalog.datasets):
        for key in [entry.name, *entry.aliases]:
            if key.lower() in seen:
                raise ConfigError(f"name {key!r} is used twice", file=path, line=lines.get(("datasets", i)),
                                  key=f"datasets.{i}.name")
            seen[key.lower()] = i
    return tuple(catalog.datasets)


def load_catalog(path: str | os.PathLike | None = None) -> list[DatasetEntry]:
    """All catalog entries (validated), from the packaged ``catalog.yaml`` or ``path``.

    Example:
        >>> len(load_catalog()) >= 48
        True
    """
    return list(_load(str(path or CATALOG_PATH)))


def find_dataset(name: str, path: str | os.PathLike | None = None) -> DatasetEntry:
    """The entry called ``name`` (or one of its aliases); an unknown name lists the valid ones.

    Example:
        >>> find_dataset("IU X-ray").name
        'OpenI'
    """
    entries = load_catalog(path)
    for entry in entries:
        if entry.matches(name):
            return entry
    raise UnknownComponentError(f"unknown dataset {name!r}; valid: {', '.join(e.name for e in entries)}")


def filter_catalog(*, type: str | None = None, access: str | None = None, reader: bool | None = None,
                   path: str | os.PathLike | None = None) -> list[DatasetEntry]:
    """Entries of one ``type`` and/or ``access`` level; ``reader=True`` keeps those clinforge can load.

    Example:
        >>> [e.name for e in filter_catalog(type="VQA", reader=True)]
        ['VQA-RAD', 'PathVQA', 'PMC-VQA']
    """
    if type is not None and type not in DATASET_TYPES:
        raise ConfigError(f"unknown dataset type {type!r}; valid: {', '.join(DATASET_TYPES)}", key="type")
    if access is not None and access not in ACCESS_LEVELS:
        raise ConfigError(f"unknown access level {access!r}; valid: {', '.join(ACCESS_LEVELS)}", key="access")
    out = []
    for entry in load_catalog(path):
        if type is not None and entry.type != type:
            continue
        if access is not None and entry.access != access:
            continue
        if reader is not None and (entry.reader is not None) != reader:
            continue
        out.append(entry)
    return out


CATALOG_COLUMNS = ("name", "type", "modality", "size", "ai_synthesised", "licence", "access", "reader")


def catalog_rows(entries: list[DatasetEntry]) -> list[dict[str, str]]:
    """One flat row of text per dataset (the catalog table's columns; a null reader is ``-``).

    Example:
        >>> catalog_rows([find_dataset("medqa")])[0]["reader"]
        'medqa'
    """
    rows = []
    for e in entries:
        rows.append({c: ("yes" if e.ai_synthesised else "no") if c == "ai_synthesised" else
                     str(getattr(e, c) if getattr(e, c) is not None else "-") for c in CATALOG_COLUMNS})
    return rows


def catalog_tsv(entries: list[DatasetEntry]) -> str:
    """The catalog as tab-separated values with a header line (for pipes: ``cut``, ``awk``, spreadsheets); tabs and
    newlines inside a value become spaces so every dataset stays one line.

    Example:
        >>> catalog_tsv([find_dataset("medqa")]).splitlines()[0].split(chr(9))[:3]
        ['name', 'type', 'modality']
    """
    lines = ["\t".join(CATALOG_COLUMNS)]
    for row in catalog_rows(entries):
        lines.append("\t".join(" ".join(row[c].split()) for c in CATALOG_COLUMNS))
    return "\n".join(lines) + "\n"
