"""One-word drug names for the allow-list of the de-identifier: a brand or generic name mid-sentence is no unknown
capitalised word ("Started Dupixent", "Reglan and Zofran").

Example:
    >>> "reglan" in drug_words()
    True
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from clinforge.core.io import atomic_write_text
from clinforge.data.deid.lexicons import person_names, us_names

DRUG_PACKAGE = "drug_named_entity_recognition"  # the PyPI distribution drug-named-entity-recognition (MIT)


@lru_cache(maxsize=1)
def drug_words() -> frozenset[str]:
    """One-word drug names, generic and brand (``dupixent``, ``reglan``, ``imbruvica``), lower-cased, 4+ letters,
    less every census or faker person name: from the dictionary of the ``drug-named-entity-recognition`` package
    (MIT; DrugBank open data CC0, MedlinePlus, Wikipedia), ~26k words. Its pickle takes ~0.8 s to read, so the
    derived list is cached as text under ``$CLINFORGE_CACHE/lexicons`` (one file per package version) and read from
    there after the first use. Empty when the package is not installed.

    Example:
        >>> {"dupixent", "reglan", "imbruvica"} <= drug_words() and "angelica" not in drug_words()
        True
    """
    import importlib.metadata
    import importlib.util

    from clinforge.core.paths import cache_root

    spec = importlib.util.find_spec(DRUG_PACKAGE)  # (locates the package without running its __init__)
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    version = importlib.metadata.version("drug-named-entity-recognition")
    cached = cache_root() / "lexicons" / f"drug_words-{version}.txt"
    if cached.is_file():
        return frozenset(w for w in cached.read_text(encoding="utf-8").splitlines() if w)
    words = _read_drug_dictionary(Path(spec.submodule_search_locations[0]) / "drug_ner_dictionary.pkl.bz2")
    first, last = person_names()
    us_first, us_last = us_names()
    words -= first | last | us_first | us_last  # "angelica", "corwin", "allegra": a person first
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cached, "\n".join(sorted(words)) + "\n")
    except OSError:
        pass  # a read-only home: the list is rebuilt in each process
    return frozenset(words)


def _read_drug_dictionary(path: Path) -> set[str]:
    import bz2
    import pickle

    with bz2.open(path) as fh:
        data = pickle.load(fh)  # the package's own data file, read as the package itself reads it
    return {v for v in data["drug_variant_to_canonical"] if v.isalpha() and len(v) >= 4}
