"""Optional recognizer: a token-classification (NER) model given by LOCAL path, through ``transformers``.

No model is downloaded: ``model`` must be a folder with a config, weights and tokenizer (for example a
de-identification model you fine-tuned, or one your hospital validated). Entity labels are mapped to our types
by ``label_map`` (defaults cover common i2b2 / CoNLL style labels: PER/PERSON/PATIENT/DOCTOR -> NAME, LOC/CITY
-> LOCATION, DATE -> DATE, ...). Labels not in the map are ignored and counted in ``unmapped``.

Why not the ``transformers`` token-classification pipeline: its closest setting, ``aggregation_strategy="first"``,
takes each word's first-piece argmax label and that label's score. The gate needs a per-type word probability (the
B- and I- columns of a type summed, so that "B-NAME 0.4 / I-NAME 0.4 / O 0.2" is a name at 0.8, not O), and a word
that two overlapping windows see should take the decision of the window where it lies farther from an edge; the
pipeline's stride merging exposes neither. The model and tokenizer are still loaded and run through ``transformers``.

Example:
    >>> from clinforge.data.deid import Deidentifier
    >>> # Deidentifier(recognizers=["patterns", "names", TransformersNerRecognizer(model="/models/deid-bert")])
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.data.deid.ner_gate import NerGate, plain_words
from clinforge.data.deid.ner_training import CARD_FILE
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
    """Spans from a local token-classification model, decided word by word, then gated.

    Each word takes the decision of its FIRST word piece (the way ``clinforge data deid-train`` labels them): its
    type is the one with the highest probability (B- and I- summed; ``O`` and unmapped labels compete too), and its
    score is that probability. Adjacent words of one type join into an entity unless the later one is more likely
    a new beginning (B-) than a continuation (I-); an entity's score is the mean of its words'. Entities then pass
    the gate (``NerGate``: types, per-type thresholds, a higher threshold for names or places made only of ordinary
    words). A folder written by ``deid-train`` may carry a gate chosen on patients its model never saw
    (``deid_training.json``, key ``gate``): it is used unless ``gate=False``; explicit settings override it.

    Args:
        model: path of a local model folder (never a hub id: nothing is downloaded); it needs a fast tokenizer.
        label_map: model label (without B-/I- prefix, upper-cased) -> our entity type.
        min_score: the least entity score, one number for every type or ``{type: score}``; overrides the saved gate.
        device: torch device ("cpu", "cuda", an index; -1 = CPU).
        batch_size: windows per forward pass.
        stride: long texts are cut into windows of ``model_max_length`` tokens overlapping by this many; a word seen
            in two windows takes the decision of the window where it lies farther from an edge.
        whole_words: widen each entity to whole words (no visible remainder of a half-tagged name).
        propagate: every other occurrence in the text of a kept name or place word (3+ letters, no ordinary
            English word) is masked too, as the rules do: the model sees each occurrence in a different context
            and may miss some.
        types: entity types kept; overrides the saved gate.
        plain_min_score: the least score of a name/place entity of ordinary words; overrides the saved gate.
        gate: ``True``: the saved gate (when the folder has one), ``False``: none, or a ``NerGate``.
        int8: run the model's linear layers in int8 (``int8_linear_layers``: weights quantised once, activations
            per batch; CPU only). 3.2-3.5x faster on one core for the MiniLM tagger, and not exact: measured on
            the PhysioNet dev notes in docs/deid.md ("A faster tagger").
    """

    name = "transformers_ner"
    option_names = ()
    entities = tuple(ENTITY_TYPES)

    def __init__(self, model: str | Path | None = None, label_map: dict[str, str] | None = None,
                 min_score: float | dict[str, float] | None = None, device: int | str = -1, batch_size: int = 8,
                 stride: int = 32, whole_words: bool = True, propagate: bool = True, *,
                 types: Sequence[str] | None = None, plain_min_score: float | None = None,
                 gate: bool | NerGate = True, int8: bool = False, **options: Any):
        super().__init__(**options)
        if model is None:
            raise ConfigError("the transformers_ner recognizer needs model=PATH (a local model folder)", key="model")
        path = Path(model)
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a local model folder (no config.json); nothing is downloaded",
                              key="model")
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        if not self.tokenizer.is_fast:
            raise ConfigError(f"{path} has no fast tokenizer (tokenizer.json): word offsets are needed", key="model")
        self.device = torch.device("cpu" if device in (-1, "cpu") else
                                   (f"cuda:{device}" if isinstance(device, int) else device))
        if int8 and self.device.type != "cpu":
            raise ConfigError(f"int8 runs the tagger on the CPU; device {device!r} was given (use one or the other)",
                              key="int8")
        self.model = AutoModelForTokenClassification.from_pretrained(str(path)).to(self.device).eval()
        self.int8 = int8
        if int8:
            self.model = int8_linear_layers(self.model)
        self.max_length = min(int(self.tokenizer.model_max_length or 512), 512,
                              int(getattr(self.model.config, "max_position_embeddings", 512)))
        self.label_map = {k.upper(): v for k, v in (label_map or DEFAULT_LABEL_MAP).items()}
        unknown = sorted(set(self.label_map.values()) - set(ENTITY_TYPES))
        if unknown:
            raise ConfigError(f"label_map maps to unknown entity types {unknown}; valid: {', '.join(ENTITY_TYPES)}",
                              key="label_map")
        # the label columns grouped: "O", each mapped type (its B- and I- together), each unmapped label ("?X")
        id2label = self.model.config.id2label
        self._labels = [str(id2label[i]) for i in range(len(id2label))]
        self._group = []
        for label in self._labels:
            base = _strip_bio(label).upper()
            self._group.append("O" if base == "O" else self.label_map.get(base, "?" + base))
        self._groups = sorted(set(self._group))
        self._cols = {g: [i for i, x in enumerate(self._group) if x == g] for g in self._groups}
        self._begin = {g: [i for i in self._cols[g] if self._labels[i][:2].upper() == "B-"] for g in self._groups}
        self.gate = _resolve_gate(path, gate, min_score, types, plain_min_score)
        self.batch_size = batch_size
        self.stride = max(0, min(stride, self.max_length // 2 - 2))
        self.whole_words = whole_words
        self.propagate = propagate
        self.unmapped: Counter[str] = Counter()

    def analyze(self, text: str) -> list[Span]:
        out = [s for s in self.entities_of(text)
               if self.gate.keeps(s.entity_type, s.score, text[s.start:s.end], text[s.end:s.end + 60])]
        if self.propagate:
            out += self.propagated(text, out)
        return out

    def entities_of(self, text: str) -> list[Span]:
        """Every entity the model finds in ``text``, before the gate (their scores in ``Span.score``).

        Example:
            >>> [(s.entity_type, round(s.score, 2)) for s in ner.entities_of("SON HANK CALLED")]  # doctest: +SKIP
            [('NAME', 0.97)]
        """
        if not text.strip():
            return []
        out: list[Span] = []
        current: list[Any] = []  # start, end, group, word scores, label
        for start, end, probs in self._word_probs(text):
            totals = {g: sum(probs[i] for i in self._cols[g]) for g in self._groups}
            group = max(self._groups, key=totals.__getitem__)
            begin = sum(probs[i] for i in self._begin[group])
            if current and current[2] == group and group != "O" and begin <= totals[group] - begin:
                current[1] = end
                current[3].append(totals[group])
                continue
            out += self._entity(text, current)
            label = self._labels[max(self._cols[group], key=lambda i: probs[i])]
            current = [start, end, group, [totals[group]], _strip_bio(label)]
        return out + self._entity(text, current)

    def _entity(self, text: str, current: list[Any]) -> list[Span]:
        if not current or current[2] == "O":
            return []
        start, end, group, scores, label = current
        if group.startswith("?"):
            self.unmapped[group[1:]] += 1
            return []
        if self.whole_words:
            start, end = _widen(text, start, end)
        return [self.span(start, end, group, sum(scores) / len(scores), f"NER label {label.upper()}")]

    def _word_probs(self, text: str) -> list[tuple[int, int, list[float]]]:
        """(start, end, label probabilities of its first piece) of each word of ``text``, in order."""
        import torch

        enc = self.tokenizer(text, max_length=self.max_length, stride=self.stride, truncation=True,
                             return_overflowing_tokens=True, return_offsets_mapping=True)
        pad = self.tokenizer.pad_token_id or 0
        best: dict[int, tuple[int, int, int, list[float]]] = {}  # word -> (distance to an edge, start, end, probs)
        for i in range(0, len(enc["input_ids"]), self.batch_size):
            rows = enc["input_ids"][i:i + self.batch_size]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
            with torch.no_grad():
                probs = torch.softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), -1).cpu()
            for j, row in enumerate(rows):
                firsts: dict[int, list[int]] = {}  # word -> [first piece, start, end]
                for k, (word, (a, b)) in enumerate(zip(enc.word_ids(i + j), enc["offset_mapping"][i + j],
                                                       strict=True)):
                    if word is None:
                        continue
                    if word in firsts:
                        firsts[word][2] = b  # a later piece only extends the word
                    else:
                        firsts[word] = [k, a, b]
                for word, (k, a, b) in firsts.items():
                    margin = min(k, len(row) - 1 - k)
                    if word not in best or margin > best[word][0]:
                        best[word] = (margin, a, b, probs[j, k].tolist())
        return [(a, b, p) for _, (_, a, b, p) in sorted(best.items())]

    def propagated(self, text: str, spans: list[Span]) -> list[Span]:
        """Other whole-word occurrences (any case) of the name and place words of ``spans``."""
        plain = plain_words()
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


def int8_linear_layers(model: Any) -> Any:
    """``model`` with every ``torch.nn.Linear`` replaced by a dynamically quantised int8 one (weights quantised
    once, each batch's activations on the fly; CPU), through ``torch.ao.quantization.quantize_dynamic``.

    Why this API: it needs no calibration data and no compiler, and on CPU its int8 matrix products (fbgemm /
    oneDNN) run eager; torchao's replacement is built around ``torch.compile``. torch marks the eager API
    deprecated; a torch without it gets a ConfigError that says so rather than an AttributeError.

    Example:
        >>> import torch
        >>> m = int8_linear_layers(torch.nn.Sequential(torch.nn.Linear(8, 4)))
        >>> type(m[0]).__name__, tuple(m(torch.ones(1, 8)).shape)
        ('Linear', (1, 4))
    """
    import warnings

    import torch

    quantization = getattr(getattr(torch, "ao", None), "quantization", None)
    if quantization is None or not hasattr(quantization, "quantize_dynamic"):
        raise ConfigError(f"int8: torch {torch.__version__} has no torch.ao.quantization.quantize_dynamic; run the "
                          "tagger without int8", key="int8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"(?s).*quantiz", category=UserWarning)
        return quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _strip_bio(label: str) -> str:
    """A label without its B-/I- prefix ("B-PER" -> "PER")."""
    return label[2:] if label[:2].upper() in ("B-", "I-") else label


def _resolve_gate(path: Path, gate: bool | NerGate, min_score: float | dict[str, float] | None,
                  types: Sequence[str] | None, plain_min_score: float | None) -> NerGate:
    """The gate of a recognizer: explicit settings over the folder's saved gate over "every type at 0.5"."""
    if isinstance(gate, NerGate):
        saved = gate
    else:
        card = path / CARD_FILE
        data = json.loads(card.read_text(encoding="utf-8")).get("gate") if gate and card.is_file() else None
        saved = NerGate.from_json(data) if data else NerGate()
    scores, default = saved.min_score, saved.default_min_score
    if isinstance(min_score, dict):
        scores = {**scores, **{str(k): float(v) for k, v in min_score.items()}}
    elif min_score is not None:
        scores, default = {}, float(min_score)
    return dataclasses.replace(saved, types=tuple(types) if types is not None else saved.types, min_score=scores,
                               plain_min_score=plain_min_score if plain_min_score is not None else
                               saved.plain_min_score, default_min_score=default)  # other fields as saved


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
