"""Hugging Face ``datasets``: a folder written by ``save_to_disk`` or a hub id through ``datasets.load_dataset``.

Rows are mapped like the generic readers (Record layout, or ``kind=`` + ``fields=``; see ``generic.py``). With
option ``native=NAME`` the rows are handed instead to a native reader that understands that dataset's columns
(``medqa`` for the HF MedQA layout, ``medmcqa`` for the 0-based HF copy): the rows are written to a temporary
Parquet file and read by that reader, so its checks and meta apply unchanged.

Hub ids need the network (or the local HF cache). Offline (no network, or ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``
set) a hub id that is not cached raises :class:`~clinforge.core.errors.OfflineError` saying how to get the data
onto the machine; nothing is faked.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError, DataError, OfflineError
from clinforge.data.readers.base import READERS, Reader, get_reader
from clinforge.data.readers.common import reason_of
from clinforge.data.readers.generic import MAPPING_OPTIONS, RowMapper
from clinforge.data.records import Record

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when the environment asks the HF libraries not to use the network.

    Example:
        >>> isinstance(hub_offline(), bool)
        True
    """
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


@READERS.register("hf")
class HFDatasetReader(Reader):
    """A ``datasets`` folder (``save_to_disk``) or a hub id; options ``split``, ``config``, ``revision``,
    ``native`` (a native reader for the rows, e.g. ``medmcqa``) and ``native_options`` (a dict of that
    reader's options, e.g. ``{"cop_base": 0}``), plus the generic mapping options (``kind``, ``fields``, ...).

    A ``DatasetDict`` folder without ``split`` yields every split, each record's ``split`` set to its name.

    Example:
        >>> import tempfile, pathlib, datasets
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "ds"
        >>> datasets.Dataset.from_dict({"kind": ["note"], "text": ["Afebrile."]}).save_to_disk(str(d))
        >>> [r.text for r in HFDatasetReader().read(d)]
        ['Afebrile.']
    """

    name = "hf"
    description = "Hugging Face datasets: save_to_disk folder or hub id"
    allowed_options = MAPPING_OPTIONS | {"config", "revision", "native", "native_options"}

    def __init__(self, on_error: str = "fail", **options: Any):
        super().__init__(on_error=on_error, **options)
        self.native = options.get("native")
        if self.native is not None:
            clash = sorted(set(options) & (MAPPING_OPTIONS - {"split"}))
            get_reader(self.native, **dict(options.get("native_options") or {}))  # unknown names/options fail now
            if clash:
                raise ConfigError(f"native={self.native!r} reads the rows natively; drop {', '.join(clash)}",
                                  key=clash[0])
            if self.native in ("hf", "csv", "jsonl"):
                raise ConfigError("native must be a dataset reader such as medqa or medmcqa", key="native")
            self.mapper = None
        else:
            if "native_options" in options:
                raise ConfigError("native_options needs native=", key="native_options")
            self.mapper = RowMapper(**{k: options[k] for k in MAPPING_OPTIONS if k in options and k != "split"})

    def _load(self, path: str | os.PathLike) -> tuple[dict[str, Any], str]:
        """``({split: Dataset}, where)`` for a saved folder or a hub id."""
        import datasets

        split = self.options.get("split")
        p = Path(path)
        if p.is_dir():
            try:
                ds = datasets.load_from_disk(str(p))
            except FileNotFoundError as exc:
                raise DataError("not a datasets folder written by save_to_disk (no dataset_info.json/state.json "
                                "or dataset_dict.json)", file=str(p)) from exc
            self.report.files.append(str(p))
            where = str(p)
        elif p.exists() or not _HUB_ID.match(str(path)):
            raise DataError("not a datasets folder, and not a hub id (owner/name)", file=str(path))
        else:
            ds = self._from_hub(str(path), split)
            where = f"hub:{path}"
        if isinstance(ds, datasets.DatasetDict):
            if split is not None:
                if split not in ds:
                    raise ConfigError(f"no split {split!r}; valid: {', '.join(ds)}", key="split")
                return {split: ds[split]}, where
            return dict(ds), where
        return {split or getattr(ds, "split", None) or "": ds}, where

    def _from_hub(self, hub_id: str, split: str | None) -> Any:
        import datasets

        offline = hub_offline()
        try:
            return datasets.load_dataset(hub_id, self.options.get("config"), split=split,
                                         revision=self.options.get("revision"))
        except (ConnectionError, OSError) as exc:
            # datasets raises ConnectionError("Couldn't reach ... on the Hub (LocalEntryNotFoundError /
            # OfflineModeIsEnabled)") when neither the network nor the cache has it
            why = "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set" if offline else "the Hugging Face Hub cannot be reached"
            raise OfflineError(
                f"cannot load hub dataset {hub_id!r}: {why} and it is not in the local cache "
                f"({type(exc).__name__}). On a connected machine run "
                f"datasets.load_dataset({hub_id!r}).save_to_disk(DIR), copy DIR here and read it with "
                f"--format hf DIR") from exc

    def _read(self, path: str | os.PathLike) -> Iterator[Record]:
        splits, where = self._load(path)
        for split_name, ds in splits.items():
            if self.native is not None:
                yield from self._read_native(ds, split_name)
                continue
            self.report.notes["layout"] = "record" if self.mapper.kind is None else "mapped"
            for number, row in enumerate(ds, start=1):
                self.report.rows += 1
                row = {k: v for k, v in row.items() if v is not None}
                try:
                    rec = self.mapper.to_record(row, file=f"{where}[{split_name}]" if split_name else where,
                                                line=None, number=number)
                except DataError as err:
                    self.bad(err, reason_of(err))
                    continue
                if rec.source is None:
                    rec.source = self.mapper.source or self.name
                if rec.split is None and split_name:
                    rec.split = self.options.get("split") or split_name
                yield rec

    def _read_native(self, ds: Any, split_name: str) -> Iterator[Record]:
        """Hand the rows to a native reader through a temporary Parquet file named after the split."""
        reader = get_reader(self.native, on_error=self.on_error, **dict(self.options.get("native_options") or {}))
        with tempfile.TemporaryDirectory(prefix="clinforge-hf-") as tmp:
            file = Path(tmp) / f"{split_name or 'data'}.parquet"
            ds.to_parquet(str(file))
            yield from reader.read(file)
        self.report.rows += reader.report.rows
        self.report.skipped.update(reader.report.skipped)
        self.report.examples += reader.report.examples[: 10 - len(self.report.examples)]
        self.report.notes[split_name or "data"] = {"native": self.native, **reader.report.notes}
