"""The transform interface: a named step that maps a stream of Records to a stream of Records and reports counts.

Each transform is usable alone (``get_transform("dedup", ...).apply(records)``) and as a step of
``clinforge data prepare``; its ``report()`` goes into the data card.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from clinforge.core.registry import Registry
from clinforge.data.records import Record


class Transform:
    """Base class: subclasses set ``name`` and implement ``apply``; ``report`` returns data-card counts."""

    name: str = ""
    # True when ``apply`` yields exactly one record per input, in input order (it may read ahead): the pipeline then
    # places the records a ``kinds:`` filter passes around it by position (``prepare.only_kinds``)
    one_to_one: bool = False
    # True when ``apply`` gives the same output for the same input and options in every run (seeds included): a
    # stopped ``data prepare`` runs such steps again before the step it resumes (``prepare_resume``). A plug-in that
    # draws from an unseeded RNG or the clock leaves it False.
    deterministic: bool = False

    def __init__(self, **options: Any):
        self.options = options
        self.n_in = 0
        self.n_out = 0

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        return {"in": self.n_in, "out": self.n_out}


TRANSFORMS: Registry[type[Transform]] = Registry("transform")


def get_transform(name: str, **options: Any) -> Transform:
    """Instantiate the transform registered as ``name``."""
    return TRANSFORMS.get(name)(**options)
