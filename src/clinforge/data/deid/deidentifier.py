"""The de-identification engine: run recognizers, merge their spans, and mask, redact or replace them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clinforge.core.errors import ConfigError
from clinforge.data.deid.name_patterns import RELATIVE_GENDER, relative_before
from clinforge.data.deid.recognizers import DEFAULT_RECOGNIZERS, RECOGNIZERS, Recognizer
from clinforge.data.deid.spans import ENTITY_TYPES, DeidResult, Span, make_span, merge_spans

if TYPE_CHECKING:
    from clinforge.data.deid.site_terms import SiteTerms

Mode = Literal["mask", "redact", "surrogate"]
MODES: tuple[str, ...] = ("mask", "redact", "surrogate")


_TITLE = re.compile(r"\b(mr|mister|sir|mrs|ms|miss|madam|mx)\.?\s*$", re.IGNORECASE)
_TITLE_GENDER = {"mr": "male", "mister": "male", "sir": "male", "mrs": "female", "ms": "female", "miss": "female",
                 "madam": "female"}


def title_gender(text: str, start: int) -> str | None:
    """The gender a title right before ``start`` states (Mr. -> male, Mrs./Ms./Miss -> female), else None.

    Example:
        >>> title_gender("Seen: Mr. Jones", 10), title_gender("Dr. Jones", 4)
        ('male', None)
    """
    m = _TITLE.search(text, max(0, start - 10), start)
    return _TITLE_GENDER.get(m.group(1).lower()) if m else None


def relative_gender(text: str, start: int) -> str | None:
    """The gender a relative named right before ``start`` states (wife -> female, son -> male), else None; a name
    there is a given name, where one word after a title is a surname.

    Example:
        >>> relative_gender("wife Ingrid", 5), relative_gender("Son: Omar", 5), relative_gender("seen by Omar", 8)
        ('female', 'male', None)
    """
    relative = relative_before(text, start)
    return RELATIVE_GENDER.get(relative) if relative else None


class Deidentifier:
    """Find and remove the 18 HIPAA Safe Harbor identifiers in free text; no model download needed.

    Args:
        mode: ``mask`` replaces a span with its type tag (``[NAME]``), ``redact`` with ``redact_with`` (a fixed
            string that does not reveal the length; ``""`` removes the span), ``surrogate`` with a realistic,
            per-patient consistent replacement (see ``surrogate.py``).
        seed: seeds surrogates and per-patient date offsets (same seed and key -> same output).
        surrogate_key: the secret that keys surrogates and date offsets (an HMAC key). Default
            ``$CLINFORGE_DEID_KEY``, or a random key for this object (surrogates agree within it only); never a
            value that a recipe or run record shows: with the key and the seed a date offset can be undone.
        recognizers: registry names or Recognizer instances (default: ``patterns`` + ``names``). Add an NER
            model with ``Deidentifier(recognizers=["patterns", "names", TransformersNerRecognizer(path)])``.
        entities: keep only these entity types (default: all of ``ENTITY_TYPES``).
        min_score: drop spans scored below this before merging.
        allow: extra words or phrases never treated as PHI (case-insensitive, whole span).
        site_terms: a site list (``site_terms.SiteTerms`` or the path of its file: the staff directory, patient
            names, local places, and ``KEEP`` words): its PHI terms are found in any case by a ``site_terms``
            recognizer added to the others, its ``KEEP`` terms join ``allow``.

    Example:
        >>> d = Deidentifier(mode="mask")
        >>> d.deidentify("Dr. Graves saw Martha Collins on 03/04/2021 for Graves disease; BP 120/80.").text
        'Dr. [NAME] saw [NAME] on [DATE] for Graves disease; BP 120/80.'
    """

    def __init__(self, mode: Mode = "mask", seed: int = 0, *, recognizers: Sequence[str | Recognizer] | None = None,
                 entities: Iterable[str] | None = None, min_score: float = 0.4, allow: Iterable[str] = (),
                 redact_with: str = "***", mask_format: str = "[{entity_type}]",
                 site_terms: SiteTerms | str | Path | None = None, surrogate_key: str | bytes | None = None,
                 **recognizer_options: Any):
        if mode not in MODES:
            raise ConfigError(f"unknown de-identification mode {mode!r}; valid: {', '.join(MODES)}", key="mode")
        self.mode = mode
        self.seed = seed
        self.min_score = min_score
        self.redact_with = redact_with
        self.mask_format = mask_format
        self.allow = frozenset(a.lower() for a in allow)
        if entities is None:
            self.entities = frozenset(ENTITY_TYPES)
        else:
            self.entities = frozenset(entities)
            unknown = sorted(self.entities - set(ENTITY_TYPES))
            if unknown:
                raise ConfigError(f"unknown entity types {unknown}; valid: {', '.join(ENTITY_TYPES)}", key="entities")
        self.recognizers: list[Recognizer] = []
        items = list(recognizers or DEFAULT_RECOGNIZERS)
        check_recognizer_options([i for i in items if i != "site_terms"], recognizer_options)
        site = None
        if site_terms is not None:
            from clinforge.data.deid.site_terms import SiteTerms

            site = site_terms if isinstance(site_terms, SiteTerms) else SiteTerms.from_file(site_terms)
            if "site_terms" not in items:
                items.append("site_terms")
            self.allow |= site.keep
        for item in items:
            if item == "site_terms":  # the one recognizer built from this argument, not from the options
                self.recognizers.append(RECOGNIZERS.get(item)(site))
            else:
                self.recognizers.append(RECOGNIZERS.get(item)(**recognizer_options) if isinstance(item, str)
                                        else item)
        self._surrogates = None
        if mode == "surrogate":
            from clinforge.data.deid.surrogate import SurrogateGenerator

            self._surrogates = SurrogateGenerator(seed, key=surrogate_key)  # None: $CLINFORGE_DEID_KEY or per run

    @property
    def surrogates(self):
        """The ``SurrogateGenerator`` of surrogate mode (``None`` in the other modes)."""
        return self._surrogates

    @property
    def surrogate_key_source(self) -> str | None:
        """Where the surrogate key came from (surrogate mode; never the key): ``$CLINFORGE_DEID_KEY`` or a random
        per-run key."""
        return self._surrogates.key_source if self._surrogates is not None else None

    def detect(self, text: str) -> list[Span]:
        """Spans of PHI in ``text`` (offsets into ``text``), overlaps merged, sorted by start.

        Example:
            >>> [(s.entity_type, s.start, s.end) for s in Deidentifier().detect("Call 617-555-0134.")]
            [('PHONE', 5, 17)]
        """
        found: list[Span] = []
        min_score, entities = self.min_score, self.entities
        for recognizer in self.recognizers:
            found += [s for s in recognizer.analyze(text) if s.score >= min_score and s.entity_type in entities]
        merged = _with_initials(text, merge_spans(found))
        if self.allow:
            merged = [s for s in merged if text[s.start:s.end].lower() not in self.allow]
        return merged

    def _names_recognizer(self):
        from clinforge.data.deid.names import NameRecognizer

        return next((r for r in self.recognizers if isinstance(r, NameRecognizer)), None)

    def deidentify_many(self, texts: Sequence[str], patient_id: str | None = None,
                        known_names: Iterable[str] = ()) -> list[DeidResult]:
        """De-identify the texts of ONE record (or one patient) together.

        A name found in any text (or listed in ``known_names``, e.g. from a ``patient_name`` column) is searched
        for in every text, in any case: a dialogue turn that only says "so carolyn tell me" is cleaned because
        another turn said "Carolyn Ward". Returns one DeidResult per text, in order.

        Example:
            >>> d = Deidentifier()
            >>> [r.text for r in d.deidentify_many(["Patient: Quenvaro Dastrelik.", "ok quenvaro, sit down"])]
            ['Patient: [NAME].', 'ok [NAME], sit down']
        """
        spans = self.detect_many(texts, known_names)
        return [self._apply(text, found, patient_id) for text, found in zip(texts, spans, strict=True)]

    def detect_many(self, texts: Sequence[str], known_names: Iterable[str] = ()) -> list[list[Span]]:
        """The spans ``deidentify_many`` replaces: each text's own, plus every other occurrence of a name found in
        any of them or given in ``known_names``. The same in every mode.

        Example:
            >>> [len(s) for s in Deidentifier().detect_many(["Patient: Quenvaro Dastrelik.", "ok quenvaro"])]
            [1, 1]
        """
        spans = [self.detect(t) for t in texts]
        names = self._names_recognizer()
        if names is not None and "NAME" in self.entities:
            tokens = {t.lower() for n in known_names for t in re.findall(r"[^\W\d_]{3,}", n)}
            for text, found in zip(texts, spans, strict=True):
                tokens |= names.propagation_tokens(text, found)
            tokens = {t for t in tokens if t not in self.allow}
            if tokens:
                spans = [merge_spans(found + names.find_tokens(text, tokens, [(s.start, s.end) for s in found],
                                                               "same name found in another text of the record"))
                         for text, found in zip(texts, spans, strict=True)]
        return spans

    def replacement(self, span: Span, original: str, patient_id: str | None = None, *,
                    gender: str | None = None, role: str | None = None) -> str:
        """What ``original`` (the text of ``span``) becomes in this mode; ``gender``: that of a title or a relative
        before a name (surrogate names agree with it); ``role``: ``given`` for one word after a relative."""
        if self.mode == "mask":
            return self.mask_format.format(entity_type=span.entity_type)
        if self.mode == "redact":
            return self.redact_with
        assert self._surrogates is not None
        return self._surrogates.replace(span.entity_type, original, patient_id, gender=gender, role=role)

    def apply_spans(self, text: str, spans: list[Span], patient_id: str | None = None) -> DeidResult:
        """Replace ``spans`` (from ``detect``, possibly of another Deidentifier with the same recognizers) in this
        mode: detection is the same in every mode, so workers can detect and one process make the surrogates, in
        input order, as ``deidentify`` would.

        Example:
            >>> d = Deidentifier(mode="redact")
            >>> d.apply_spans("Call 617-555-0134.", Deidentifier().detect("Call 617-555-0134.")).text
            'Call ***.'
        """
        return self._apply(text, spans, patient_id)

    def deidentify(self, text: str, patient_id: str | None = None) -> DeidResult:
        """De-identify ``text``; ``patient_id`` keys surrogate consistency and the date offset.

        Without a patient id every text shares one date offset (derived from the key and seed): pass ids when you
        have them, so that knowing one patient's true date reveals nothing about another's.

        Example:
            >>> d = Deidentifier(mode="surrogate", seed=1)
            >>> a = d.deidentify("Seen 01/10/2020 and 01/20/2020.", patient_id="p1").text
            >>> a == d.deidentify("Seen 01/10/2020 and 01/20/2020.", patient_id="p1").text
            True
        """
        return self._apply(text, self.detect(text), patient_id)

    def _apply(self, text: str, spans: list[Span], patient_id: str | None) -> DeidResult:
        pieces: list[str] = []
        replacements: list[str] = []
        pos = 0
        for span in spans:
            gender = role = None
            if span.entity_type == "NAME" and self.mode == "surrogate":
                gender = title_gender(text, span.start)
                if gender is None and (gender := relative_gender(text, span.start)) is not None:
                    role = "given"  # "wife Ingrid": a woman's given name, where "Mrs. Ingrid" reads as a surname
            repl = self.replacement(span, text[span.start:span.end], patient_id, gender=gender, role=role)
            pieces.append(text[pos:span.start])
            pieces.append(repl)
            replacements.append(repl)
            pos = span.end
        pieces.append(text[pos:])
        return DeidResult("".join(pieces), spans, replacements)

    @property
    def unparsed_dates(self) -> int:
        """Dates that surrogate mode could not parse and masked instead (0 in other modes)."""
        return self._surrogates.unparsed_dates if self._surrogates is not None else 0


def check_recognizer_options(recognizers: Sequence[str | Recognizer], options: dict[str, Any],
                             also_valid: Iterable[str] = ()) -> None:
    """A keyword option that no recognizer named by string reads is a ConfigError (a misspelt ``min_scor`` used to
    be handed to the recognizers and ignored); skipped when one of them does not declare its options.
    ``also_valid``: options a caller reads itself (the ``deid`` transform's ``meta``, ...), for the message.

    Example:
        >>> check_recognizer_options(["patterns", "names"], {"context_chars": 30})
        >>> check_recognizer_options(["patterns", "names"], {"min_scor": 0.5})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: min_scor: unknown de-identification option 'min_scor'; valid: ...
    """
    import inspect

    if not options:
        return
    valid = {"mode", "seed", "recognizers", "entities", "min_score", "allow", "redact_with", "mask_format",
             "site_terms", *also_valid}
    for item in recognizers:
        if not isinstance(item, str):
            continue
        cls = RECOGNIZERS.get(item)
        if cls.option_names is None:
            return
        params = inspect.signature(cls.__init__).parameters.values()
        valid |= set(cls.option_names) | {p.name for p in params if p.name != "self" and p.kind in (
            p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(f"unknown de-identification option {unknown[0]!r}; valid: {', '.join(sorted(valid))}",
                          key=unknown[0])


_INITIAL_BEFORE = re.compile(r"(?<![^\W\d_])[A-Z]\.[ \t]?$")


def _with_initials(text: str, spans: list[Span]) -> list[Span]:
    """NAME spans grown over an initial right before them ("T. BRANNIGAN", "J. Morrow"): the initial is part of
    the name, and left alone it narrows who was meant.

    Example:
        >>> from clinforge.data.deid.spans import make_span
        >>> t = "TO MEET T. BRANNIGAN TODAY"
        >>> [(t[s.start:s.end]) for s in _with_initials(t, [make_span(11, 20, "NAME", 0.8, "x", "names")])]
        ['T. BRANNIGAN']
    """
    out = []
    for s in spans:
        if s.entity_type == "NAME" and s.start >= 2:
            m = _INITIAL_BEFORE.search(text, max(0, s.start - 3), s.start)
            if m is not None and not (out and out[-1].end > m.start()):
                s = make_span(m.start(), s.end, s.entity_type, s.score, s.explanation, s.recognizer)
        out.append(s)
    return out
