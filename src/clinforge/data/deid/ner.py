"""Optional recognizer: a token-classification (NER) model given by LOCAL path, through ``transformers``.

No model is downloaded: ``model`` must be a folder with a config, weights and tokenizer (for example a
de-identification model you fine-tuned, or one your hospital validated). Entity labels are mapped to our types
by ``label_map`` (defaults cover common i2b2 / CoNLL style labels: PER/PERSON/PATIENT/DOCTOR -> NAME, LOC/CITY
-> LOCATION, DATE -> DATE, ...). Labels not in the map are ignored and counted in ``unmapped``.

Example:
    >>> from clinforge.data.deid import Deidentifier
    >>> # Deidentifier(recognizers=["patterns", "names", TransformersNerRecognizer(model="/models/deid-bert")])
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.data.deid.recognizers import RECOGNIZERS, Recognizer
from clinforge.data.deid.spans import ENTITY_TYPES, Span

DEFAULT_LABEL_MAP: dict[str, str] = {
    "PER": "NAME", "PERSON": "NAME", "NAME": "NAME", "PATIENT": "NAME", "DOCTOR": "NAME", "STAFF": "NAME",
    "HCW": "NAME", "USERNAME": "NAME", "LOC": "LOCATION", "LOCATION": "LOCATION", "GPE": "LOCATION",
    "CITY": "LOCATION", "HOSPITAL": "LOCATION", "STREET": "ADDRESS", "ADDRESS": "ADDRESS", "ZIP": "ZIP",
    "DATE": "DATE", "AGE": "AGE", "PHONE": "PHONE", "FAX": "PHONE", "EMAIL": "EMAIL", "URL": "URL", "IP": "IP",
    "SSN": "SSN", "MEDICALRECORD": "MRN", "MRN": "MRN", "HEALTHPLAN": "HEALTH_PLAN", "ACCOUNT": "ACCOUNT",
    "LICENSE": "LICENSE", "VEHICLE": "VEHICLE", "DEVICE": "DEVICE", "IDNUM": "ID", "ID": "ID", "BIOID": "ID",
}


class TransformersNerRecognizer(Recognizer):
    """Spans from a local token-classification model (``transformers`` pipeline, aggregation "simple").

    Args:
        model: path of a local model folder (never a hub id: nothing is downloaded).
        label_map: model label (without B-/I- prefix, upper-cased) -> our entity type.
        min_score: drop entities scored below this.
        device: torch device for the pipeline (-1 = CPU).
        stride: texts longer than the model's ``model_max_length`` are cut into windows overlapping by this many
            tokens (needs a fast tokenizer); ``None`` leaves long texts to the pipeline (they fail or are cut).
        whole_words: widen each entity to whole words (a name found as "Przy" + "##bylo" pieces, or only in part,
            must not leave a visible remainder).
        propagate: every other occurrence in the text of a found name or place word (3+ letters, no ordinary
            English word) is masked too, as the rules do: the model sees each occurrence in a different context
            and may miss some.
    """

    name = "transformers_ner"
    entities = tuple(ENTITY_TYPES)

    def __init__(self, model: str | Path | None = None, label_map: dict[str, str] | None = None,
                 min_score: float = 0.5, device: int | str = -1, batch_size: int = 8, stride: int | None = 32,
                 whole_words: bool = True, propagate: bool = True, **options: Any):
        super().__init__(**options)
        if model is None:
            raise ConfigError("the transformers_ner recognizer needs model=PATH (a local model folder)", key="model")
        path = Path(model)
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a local model folder (no config.json); nothing is downloaded",
                              key="model")
        from transformers import pipeline

        self.pipe = pipeline("token-classification", model=str(path), tokenizer=str(path),
                             aggregation_strategy="simple", device=device)
        self.label_map = {k.upper(): v for k, v in (label_map or DEFAULT_LABEL_MAP).items()}
        unknown = sorted(set(self.label_map.values()) - set(ENTITY_TYPES))
        if unknown:
            raise ConfigError(f"label_map maps to unknown entity types {unknown}; valid: {', '.join(ENTITY_TYPES)}",
                              key="label_map")
        self.min_score = min_score
        self.batch_size = batch_size
        self.stride = stride if stride and self.pipe.tokenizer.is_fast else None
        self.whole_words = whole_words
        self.propagate = propagate
        self.unmapped: Counter[str] = Counter()

    def analyze(self, text: str) -> list[Span]:
        if not text.strip():
            return []
        out = []
        kwargs = {"stride": self.stride} if self.stride else {}
        for ent in self.pipe(text, batch_size=self.batch_size, **kwargs):
            label = str(ent.get("entity_group", ent.get("entity", ""))).upper()
            label = label[2:] if label[:2] in ("B-", "I-") else label
            etype = self.label_map.get(label)
            if etype is None:
                self.unmapped[label] += 1
                continue
            score = float(ent["score"])
            start, end = int(ent["start"]), int(ent["end"])
            if score < self.min_score or end <= start:
                continue
            if self.whole_words:
                start, end = _widen(text, start, end)
            out.append(self.span(start, end, etype, score, f"NER label {label}"))
        if self.propagate:
            out += self._propagated(text, out)
        return out

    def _propagated(self, text: str, spans: list[Span]) -> list[Span]:
        """Other whole-word occurrences (any case) of the name and place words of ``spans``."""
        plain = _plain_words()
        tokens: dict[str, Span] = {}
        for s in spans:
            if s.entity_type in ("NAME", "LOCATION"):
                for t in re.findall(r"[^\W\d_]{3,}", text[s.start:s.end]):
                    if t.lower() not in plain:
                        tokens.setdefault(t.lower(), s)
        if not tokens:
            return []
        covered = [(s.start, s.end) for s in spans]
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in tokens) + r")(?!\w)", re.IGNORECASE)
        out = []
        for m in pattern.finditer(text):
            if not any(a <= m.start() and m.end() <= b for a, b in covered):
                src = tokens[m.group().lower()]
                out.append(self.span(m.start(), m.end(), src.entity_type, src.score,
                                     "same word as an NER entity elsewhere in the text"))
        return out


@lru_cache(maxsize=1)
def _plain_words() -> frozenset[str]:
    """Ordinary words never propagated: English words that are no person name, and clinical shorthand."""
    from clinforge.data.deid.lexicons import CLINICAL_TERMS, FUNCTION_WORDS, NOTE_TERMS, english_words, us_names

    first, last = us_names()
    return (english_words() - first - last) | CLINICAL_TERMS | FUNCTION_WORDS | NOTE_TERMS


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` grown to whole words (letters, digits, apostrophes and inner hyphens).

    Example:
        >>> _widen("SON HANK PRZYBYLO CALLED", 10, 14)
        (9, 17)
    """
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "'’"):
        start -= 1
    while end < len(text) and (text[end].isalnum() or text[end] in "'’"):
        end += 1
    return start, end


RECOGNIZERS.register("transformers_ner", TransformersNerRecognizer)
