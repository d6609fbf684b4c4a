"""Detected PHI spans, the entity types they carry, and the merge step that resolves overlaps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from operator import attrgetter

# Our entity types, one or more per HIPAA Safe Harbor identifier (45 CFR 164.514(b)(2)(i)).
ENTITY_TYPES: dict[str, str] = {
    "NAME": "(A) names of patients, relatives, clinicians",
    "ADDRESS": "(B) street address",
    "LOCATION": "(B) city, county, facility or other place smaller than a state",
    "ZIP": "(B) ZIP code",
    "DATE": "(C) any date element except the year (day, month, month+year)",
    "AGE": "(C) age over 89",
    "PHONE": "(D, E) telephone and fax numbers",
    "EMAIL": "(F) e-mail address",
    "SSN": "(G) social security number",
    "MRN": "(H) medical record number",
    "HEALTH_PLAN": "(I) health plan beneficiary / member number",
    "ACCOUNT": "(J) account number (bank, billing, credit card, IBAN)",
    "LICENSE": "(K) certificate / licence number (driver, DEA, NPI, professional)",
    "VEHICLE": "(L) vehicle identifier (VIN, licence plate)",
    "DEVICE": "(M) device identifier or serial number",
    "URL": "(N) web address or domain",
    "IP": "(O) IP address",
    "ID": "(R) any other unique identifying number or code (accession, specimen, encounter ids)",
}


@dataclass(frozen=True, slots=True)
class Span:
    """One detected identifier: ``text[start:end]`` is PHI of ``entity_type``.

    ``score`` is the recognizer's confidence in [0, 1]; ``explanation`` says which rule fired (never the text).

    Example:
        >>> Span(0, 4, "NAME", 0.9, "title Dr.", "names").length
        4
    """

    start: int
    end: int
    entity_type: str
    score: float
    explanation: str
    recognizer: str

    @property
    def length(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict:
        """JSON-ready dict (offsets, type, score, explanation, recognizer; no text)."""
        return asdict(self)


# Slot setters of Span's fields, for make_span: the frozen dataclass __init__ goes through object.__setattr__ six
# times (0.7 us a span), and recognizers build tens of thousands of spans per megabyte.
_SPAN_SETTERS = tuple(Span.__dict__[name].__set__
                      for name in ("start", "end", "entity_type", "score", "explanation", "recognizer"))
_new_object = object.__new__


def make_span(start: int, end: int, entity_type: str, score: float, explanation: str, recognizer: str) -> Span:
    """``Span(start, end, entity_type, score, explanation, recognizer)``, built about twice as fast (the same object:
    the slots are filled directly, which is all the generated ``__init__`` does).

    Example:
        >>> make_span(0, 4, "NAME", 0.9, "title Dr.", "names") == Span(0, 4, "NAME", 0.9, "title Dr.", "names")
        True
    """
    span = _new_object(Span)
    set_start, set_end, set_type, set_score, set_explanation, set_recognizer = _SPAN_SETTERS
    set_start(span, start)
    set_end(span, end)
    set_type(span, entity_type)
    set_score(span, score)
    set_explanation(span, explanation)
    set_recognizer(span, recognizer)
    return span


@dataclass
class DeidResult:
    """The de-identified text and the spans (offsets into the ORIGINAL text) that were replaced.

    ``replacements`` (same order as ``spans``) holds what each span became in ``text``; it carries no PHI.
    """

    text: str
    spans: list[Span]
    replacements: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of spans per entity type."""
        out: dict[str, int] = {}
        for s in self.spans:
            out[s.entity_type] = out.get(s.entity_type, 0) + 1
        return out


_START = attrgetter("start")
_END = attrgetter("end")


_NAMED_PLACES = frozenset({"LOCATION", "ADDRESS"})


def merge_spans(spans: list[Span]) -> list[Span]:
    """Resolve overlaps: spans that overlap are joined into one span covering their union.

    The joined span takes the score of its strongest member (highest score, then longest) and the type and
    recognizer of that member, except that a name inside a longer place or address that alone covers the union takes
    the place's (a hospital or street named after a person is a place); it lists every member's explanation. Joining (rather than dropping the weaker span) never leaves part of an
    identifier visible. Returns spans sorted by start.

    Example:
        >>> a = Span(0, 5, "NAME", 0.6, "lexicon", "names"); b = Span(3, 9, "ADDRESS", 0.9, "street", "address")
        >>> [(s.start, s.end, s.entity_type) for s in merge_spans([a, b])]
        [(0, 9, 'ADDRESS')]
        >>> c = Span(8, 16, "NAME", 0.85, "lexicon", "names"); d = Span(5, 30, "LOCATION", 0.6, "facility", "patterns")
        >>> [(s.start, s.end, s.entity_type, s.score) for s in merge_spans([c, d])]
        [(5, 30, 'LOCATION', 0.85)]
    """
    if not spans:
        return []
    # Two stable sorts (end descending, then start) order exactly as the key (start, -end) would, without
    # building a tuple per span: this runs once per text on every detected span.
    ordered = sorted(spans, key=_END, reverse=True)
    ordered.sort(key=_START)
    out: list[Span] = []
    group = [ordered[0]]
    end = ordered[0].end
    for span in ordered[1:]:
        if span.start < end:
            group.append(span)
            if span.end > end:
                end = span.end
        else:
            out.append(group[0] if len(group) == 1 else _join(group, end))
            group, end = [span], span.end
    out.append(group[0] if len(group) == 1 else _join(group, end))
    return out


def _join(group: list[Span], end: int) -> Span:
    if len(group) == 1:
        return group[0]
    best = max(group, key=lambda s: (s.score, s.length))
    # A place or address that covers the whole union and holds a name is a place named after a person ("MD Anderson
    # Cancer Center", "Isaac Lodge Street"), not a name with a place around it, even where the name scored higher
    kind = best
    if best.entity_type == "NAME":
        places = [s for s in group if s.entity_type in _NAMED_PLACES and s.start == group[0].start and s.end == end
                  and s.length > best.length]  # (a tie, "DR. LUTHERVILLE" a name and a city, stays a name)
        if places:
            kind = max(places, key=lambda s: s.score)
    explanations = [kind.explanation] + sorted({s.explanation for s in group if s is not kind} - {kind.explanation})
    return make_span(group[0].start, end, kind.entity_type, best.score, "; ".join(explanations), kind.recognizer)
