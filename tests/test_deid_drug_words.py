"""The drug-name word list (``drug_names.drug_words``): read from the ``drug-named-entity-recognition`` package once,
then from a text cache; person names left out; drug names are no names in running text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clinforge.data.deid import Deidentifier
from clinforge.data.deid.drug_names import drug_words
from clinforge.data.deid.lexicons import person_names, us_names


def test_list_and_cache(tmp_path: Path) -> None:
    code = ("from clinforge.data.deid.drug_names import drug_words; w = drug_words(); "
            "print(len(w), 'dupixent' in w, 'imbruvica' in w, 'angelica' in w)")
    env = {**os.environ, "CLINFORGE_CACHE": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    cached = list((tmp_path / "lexicons").glob("drug_words-*.txt"))
    assert len(cached) == 1 and cached[0].stat().st_size > 100_000
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert first.stdout == second.stdout  # the cached list is the list
    count, *flags = first.stdout.split()
    assert int(count) > 20_000 and flags == ["True", "True", "False"]


def test_no_person_name_is_a_drug_word() -> None:
    first, last = person_names()
    us_first, us_last = us_names()
    assert not drug_words() & (first | last | us_first | us_last)


def test_brand_names_in_a_medication_list_are_no_names() -> None:
    text = ("On Humira and Dupixent. Truvada before that. Veltassa at home. Zofran, Reglan, Compazine. "
            "Imbruvica, Tagrisso, Ibrance, Xtandi, Revlimid. Seen by Dr. Reyes with his wife Ana.")
    found = [text[s.start:s.end] for s in Deidentifier().detect(text)]
    assert found == ["Reyes", "Ana"]
