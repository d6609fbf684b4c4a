"""Medical words that the English word list lacks, for telling a rare proper noun from a rare technical word.

The English list (``lexicons.english_words``, the bert-base-uncased vocabulary) lacks most medical vocabulary:
``trachea``, ``coronary``, ``norovirus``, ``pediatrician``, ``dermatology``. So in a radiology report or a case note
"Trachea is midline" and "Norovirus is suspected" looked like a name before a verb. This list holds the words that
public medical text (PubMedQA abstracts, MIT; MedQuAD answers from NIH sites, CC BY 4.0) writes in lower case at
least three times -- a proper name is written capitalised, so lower-case use marks a common word -- less every word
that is a first name or surname in the US Census lists or in any of faker's locales, so that no name can become a
"word" through it. It is built from those files by ``build_medical_words`` and shipped as ``medical_words.txt``
(tested to match when the data folder is present); no clinical note and no PHI annotation goes into it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from clinforge.core.io import atomic_write_text

MEDICAL_WORDS_FILE = Path(__file__).with_name("medical_words.txt")
MIN_LOWER_CASE_USES = 3
_WORD = re.compile(r"(?<![\w-])[A-Za-z][a-z]{3,}(?!\w)")
_TAG = re.compile(r"<[^>]+>")


def _source_texts(data_root: Path) -> list[str]:
    texts: list[str] = []
    pubmedqa = data_root / "pubmedqa" / "data" / "ori_pqal.json"
    for item in json.loads(pubmedqa.read_text(encoding="utf-8")).values():
        texts += [*item["CONTEXTS"], item.get("LONG_ANSWER", ""), item["QUESTION"]]
    for path in sorted((data_root / "medquad").glob("*/*.xml")):
        texts.append(_TAG.sub(" ", path.read_text(encoding="utf-8", errors="replace")))
    return texts


def build_medical_words(data_root: str | Path, out_path: str | Path = MEDICAL_WORDS_FILE) -> int:
    """Write the medical words of ``data_root``'s PubMedQA and MedQuAD folders (see the module docstring) to
    ``out_path``, sorted, one a line; returns the count.

    Example:
        >>> from clinforge.core.paths import data_root
        >>> import tempfile
        >>> if (data_root() / "medquad").is_dir():
        ...     n = build_medical_words(data_root(), Path(tempfile.mkdtemp()) / "m.txt"); print(n > 5000)
        ... else:
        ...     print(True)
        True
    """
    from clinforge.data.deid.lexicons import census_names, english_words, person_names

    lower_uses: Counter[str] = Counter()
    for text in _source_texts(Path(data_root)):
        lower_uses.update(w for w in _WORD.findall(text) if w[0].islower())
    census = census_names()
    first_all, last_all = person_names()
    names = first_all | last_all | set(census["last"]) | set(census["male"]) | set(census["female"])
    words = sorted(w for w, n in lower_uses.items() if n >= MIN_LOWER_CASE_USES and w not in english_words()
                   and w not in names)
    header = (f"# medical words written in lower case {MIN_LOWER_CASE_USES}+ times in PubMedQA (MIT) and MedQuAD "
              "(CC BY 4.0), not in the English word list and no census or faker name; built by "
              "medical_words.build_medical_words\n")
    atomic_write_text(out_path, header + "\n".join(words) + "\n")
    return len(words)


@lru_cache(maxsize=1)
def medical_words() -> frozenset[str]:
    """The shipped medical words (``build_medical_words``): ~7k lower-case words such as "trachea", "coronary".

    Example:
        >>> {"trachea", "coronary", "norovirus"} <= medical_words() and "smith" not in medical_words()
        True
    """
    lines = MEDICAL_WORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(w for w in lines if w and not w.startswith("#"))
