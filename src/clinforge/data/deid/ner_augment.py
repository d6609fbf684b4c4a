"""Surrogate copies of annotated notes for training a PHI tagger: the same notes with other names and places.

A small annotated corpus repeats its surrogate names: in the PhysioNet notes the same few hundred names recur across
patients, so a tagger can learn the names instead of the contexts that announce a name (``son``, ``dr``, ``per``,
``transferred to``), and then miss every name it has not seen. ``surrogate_copies`` writes ``copies`` versions of
each annotated note in which every gold name is replaced by random US Census names and every gold place word by a
random GeoNames place or, for a hospital abbreviation (``GH``), random capitals of the same length; facility and
ordinary words stay (``CALVERT HOSPITAL`` -> ``WAKEMAN HOSPITAL``), letter case follows the original, and the gold
spans move with the text. Dates, phones, ages and ids are left as they are. Seeded: the same notes and seed give the
same copies.

Example:
    >>> from clinforge.data.records import Record
    >>> r = Record(id="n", kind="note", text="SON DAVID CALLED", patient_id="1",
    ...            meta={"note": 1, "phi": [{"type": "RelativeProxyName", "start": 4, "end": 9, "phrase": "DAVID"}]})
    >>> c = surrogate_copies([r], 1, seed=0)[0]
    >>> c.text.startswith("SON ") and c.text.endswith(" CALLED") and c.text[4:-7].isupper()
    True
    >>> g = c.meta["phi"][0]; c.text[g["start"]:g["end"]] == g["phrase"] != "DAVID"
    True
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_NAME_TYPES = frozenset({"HCPName", "PTName", "RelativeProxyName"})
# Words of a place phrase that stay: what makes it a hospital or a unit, not which one it is
_PLACE_KEEP = frozenset({"hospital", "hosp", "medical", "center", "centre", "ctr", "med", "rehab", "rehabilitation",
                         "house", "clinic", "memorial", "general", "university", "regional", "community", "county",
                         "nursing", "home", "health", "healthcare", "manor", "st", "saint", "of", "the", "and", "at",
                         "north", "south", "east", "west", "new", "valley", "hospice", "mc", "campus"})
_TOKEN = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


@lru_cache(maxsize=1)
def _pools() -> tuple[list[str], list[str], list[str], frozenset[str]]:
    from clinforge.data.deid.lexicons import us_names, us_places
    from clinforge.data.deid.ner_gate import plain_words

    plain = plain_words()
    first, last = us_names()
    firsts = sorted(w for w in first if len(w) >= 3 and w not in plain)
    lasts = sorted(w for w in last if len(w) >= 3 and w not in plain)
    places = sorted(p for p in us_places() if " " not in p and p.isalpha() and len(p) >= 4 and p not in plain)
    return firsts, lasts, places, plain


def _cased(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like.islower():
        return word.lower()
    return word[:1].upper() + word[1:].lower()


def _replace_phrase(phrase: str, phi_type: str, rng: random.Random) -> str:
    """A surrogate for one gold phrase (module docstring)."""
    firsts, lasts, places, plain = _pools()
    tokens = list(_TOKEN.finditer(phrase))
    pieces, pos = [], 0
    for i, m in enumerate(tokens):
        word = m.group()
        pieces.append(phrase[pos:m.start()])
        pos = m.end()
        if len(word) == 1 or phi_type not in _NAME_TYPES and word.lower() in _PLACE_KEEP:
            pieces.append(word)  # an initial, or "HOSPITAL" / "ST" in a place
        elif phi_type in _NAME_TYPES:
            pool = firsts if i == 0 and len(tokens) > 1 else (lasts if len(tokens) > 1 else rng.choice((firsts, lasts)))
            pieces.append(_cased(rng.choice(pool), word))
        elif len(word) <= 3 or word.isupper() and len(word) <= 5:  # a hospital's abbreviation: other letters
            letters = "".join(rng.choice("abcdefghijklmnoprstuvwy") for _ in word)
            pieces.append(letters.upper() if word.isupper() else letters)
        else:
            pieces.append(_cased(rng.choice(places), word))
    pieces.append(phrase[pos:])
    return "".join(pieces)


def surrogate_copies(records: Sequence, copies: int, seed: int = 0) -> list[Any]:
    """``copies`` surrogate versions of every record with gold PHI (module docstring); records whose gold spans
    overlap are not copied.

    Example:
        >>> surrogate_copies([], 2)
        []
    """
    out: list[Any] = []
    for k in range(copies):
        rng = random.Random(f"{seed}-{k}")
        for r in records:
            phi = sorted(r.meta.get("phi") or [], key=lambda g: g["start"])
            if not phi or any(a["end"] > b["start"] for a, b in zip(phi, phi[1:], strict=False)):
                continue
            text, pos, shift, gold = [], 0, 0, []
            same: dict[tuple[str, str], str] = {}  # a phrase repeated in a note keeps one surrogate, as in notes
            for g in phi:
                new = g["phrase"]
                if g["type"] in _NAME_TYPES or g["type"] == "Location":
                    key = (g["type"] in _NAME_TYPES and "name" or "place", g["phrase"].lower())
                    new = same.get(key) or _replace_phrase(g["phrase"], g["type"], rng)
                    same[key] = new
                    new = _cased(new, g["phrase"]) if " " not in new else new
                text.append(r.text[pos:g["start"]])
                start = g["start"] + shift
                gold.append({**g, "start": start, "end": start + len(new), "phrase": new})
                text.append(new)
                shift += len(new) - (g["end"] - g["start"])
                pos = g["end"]
            text.append(r.text[pos:])
            out.append(r.model_copy(update={"id": f"{r.id}#surrogate{k + 1}", "text": "".join(text),
                                            "meta": {**r.meta, "phi": gold}}))
    return out
