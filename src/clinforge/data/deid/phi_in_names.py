"""PHI in names: file names, folder names, record and patient ids built from MRNs, dates and patient names.

Hospital exports name files ``4456781_2021-03-14.txt`` or ``MRN 4456781/``, and readers turn file names into record
and patient ids; a de-identified text under such a name, or a data card or model card that lists it, still carries
the identifier. The rules that find PHI in text find it in a name once underscores are read as spaces. Callers
refuse, warn or pseudonymise; messages give counts and entity types, never a name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def phi_in_name(name: str, deidentifier: Any | None = None) -> list[str]:
    """The entity types the rules find in one name or id (underscores, and dots between letters, read as spaces:
    ``john.smith`` is a name; ``2021.03.14`` stays a date).

    Example:
        >>> phi_in_name("4456781_2021-03-14"), phi_in_name("note_001"), phi_in_name("martha.collins")
        (['DATE'], [], ['NAME'])
    """
    if deidentifier is None:
        deidentifier = _default()
    return [s.entity_type for s in deidentifier.detect(_DOT_BETWEEN_LETTERS.sub(" ", name.replace("_", " ")))]


_DOT_BETWEEN_LETTERS = re.compile(r"(?<=[^\W\d_])\.(?=[^\W\d_])")


def names_with_phi(paths: Sequence[Path], deidentifier: Any | None = None) -> tuple[int, Counter[str]]:
    """How many of ``paths`` have a folder or file name (extension aside) that holds PHI, and the entity types
    found (once per distinct name).

    Example:
        >>> names_with_phi([Path("note_001.txt"), Path("4456781/2021-03-14.txt")])
        (1, Counter({'ID': 1, 'DATE': 1}))
    """
    seen: dict[str, list[str]] = {}
    types: Counter[str] = Counter()
    named = 0
    for rel in paths:
        hit = False
        for part in (*rel.parent.parts, rel.stem):
            if part not in seen:
                seen[part] = phi_in_name(part, deidentifier)
                types.update(seen[part])
            hit = hit or bool(seen[part])
        named += hit
    return named, types


def any_phi(names: Iterable[str], deidentifier: Any | None = None) -> bool:
    """Whether any of ``names`` holds PHI.

    Example:
        >>> any_phi(["3", "11"]), any_phi(["3", "Collins"])
        (False, True)
    """
    return any(phi_in_name(n, deidentifier) for n in names)


_DETECTOR: list[Any] = []


def _default() -> Any:
    """One rules-only de-identifier per process (its word lists take ~0.5 s to build)."""
    if not _DETECTOR:
        from clinforge.data.deid.deidentifier import Deidentifier

        _DETECTOR.append(Deidentifier())
    return _DETECTOR[0]
