"""Readers: one per native format, all yielding :class:`clinforge.data.records.Record`.

Each built-in is declared lazily (``READERS.add_builtin``), so ``get_reader("medqa")`` imports only the module
that defines it. Users add their own readers with ``READERS.register("name")`` or a ``clinforge.plugins`` entry point.

Example:
    >>> from clinforge.data.readers import READERS
    >>> "jsonl" in READERS.names()
    True
"""

from clinforge.data.readers.base import READERS, OnError, Reader, ReadReport, get_reader

_BUILTINS = {
    "jsonl": "generic", "csv": "generic", "parquet": "generic",
    "medquad": "text", "presidio_pii": "text", "text": "text", "medec": "text",
    "mts_dialog": "dialogue", "aci_bench": "dialogue",
    "vqa_rad": "imaging", "iu_xray": "imaging", "slake": "vqa_sets", "pathvqa": "vqa_sets",
    "alpaca": "instruction", "sharegpt": "instruction", "hf": "hf_datasets",
    "medqa": "mcq", "medmcqa": "mcq", "pubmedqa": "mcq", "mmlu": "mcq", "physionet_deid": "physionet",
    "brat_deid": "deid_annotations", "i2b2_deid": "deid_annotations",
}
for _name, _module in _BUILTINS.items():
    READERS.add_builtin(_name, f"clinforge.data.readers.{_module}")

__all__ = ["READERS", "OnError", "ReadReport", "Reader", "get_reader"]
