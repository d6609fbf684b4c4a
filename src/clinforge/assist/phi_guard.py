"""PHI output guard: the de-identifier applied to what a model says, whole or streamed delta by delta.

A served model can echo identifiers it saw in its prompt or its training data. ``PhiOutputGuard`` masks them with
type tags (``[NAME]``, ``[DATE]``, ...) using the same :class:`~clinforge.data.deid.Deidentifier` that cleans
training data, so the server's non-streamed answers, streamed answers and logs go through one set of rules.

Streaming guarantee (``PhiStreamFilter``). Text is held back and emitted only up to a *cut*:

1. the cut is at most ``len(received) - holdback_chars``: every emitted character was analysed with at least
   ``holdback_chars`` characters of the text that follows it (and ``context_chars`` before the unemitted part), so a
   span that starts in the emitted part and whose recognition needs no more right context than that was seen whole;
2. the cut is moved back out of any detected span that crosses it or ends right before it (never half a name, a
   phone number or a date, and a name is not released while its next word could still extend it);
3. the cut is moved back to the last whitespace, so a word is never split (``"Smi" | "th"``, ``"617-55" | "5"``).

Every detected span wholly before the cut is replaced before emission. What is *not* guaranteed, and is measured
instead (docs/assist.md): a span the recognisers would find only with context further than the window - a
whole-text switch such as the de-identifier's "this looks like a nursing note" test, or a word that becomes a name
only when the same word is later seen with a title (backward propagation; forward propagation IS done: a name
found earlier is masked wherever it appears later). When a span is found only after part of it was emitted, the
rest is masked and the event is counted in ``late_spans``. The hold-back adds a latency of about
``holdback_chars + step_chars`` characters (about 24 tokens with the defaults) and each scan covers only the
window, not the whole text, so the cost per delta does not grow with the length of the answer.

Example:
    >>> guard = PhiOutputGuard()
    >>> guard.filter_text("Call Dr. Graves on 617-555-0134.").text
    'Call Dr. [NAME] on [PHONE].'
    >>> s = guard.stream()
    >>> "".join([s.push(d) for d in ["Call Dr. Gr", "aves on 617-", "555-0134."]] + [s.flush()])
    'Call Dr. [NAME] on [PHONE].'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.data.deid import Deidentifier, Span, merge_spans
from clinforge.data.deid.lexicons import word_set
from clinforge.data.deid.spans import make_span

_WORD = re.compile(r"[^\W\d_]{3,}")


@lru_cache(maxsize=1)
def _plain_words() -> frozenset[str]:
    """Words that are no evidence of a place on their own ("hospital", "county", "north"): not propagated (the
    same exclusions as the notes recognizer's own propagation: function, clinical and common words)."""
    from clinforge.data.deid.lexicons import (
        CLINICAL_CAPITALISED,
        CLINICAL_TERMS,
        FUNCTION_WORDS,
        NOTE_TERMS,
        common_words,
    )

    return frozenset(FUNCTION_WORDS | CLINICAL_TERMS | CLINICAL_CAPITALISED | NOTE_TERMS | common_words() | _PLACE_HEADS)


_PLACE_HEADS = word_set("""hospital hosp hospiatal medical med center centre ctr memorial rehab rehabilitation nursing
home agency house campus clinic hospice health healthcare manor infirmary general county city town village street
road avenue saint north south east west upper lower new port lake mount university college""")




@dataclass
class GuardedText:
    """A guarded text: ``text`` is safe to show; ``spans`` are ``(start, end, entity_type)`` in the ORIGINAL text.

    Example:
        >>> GuardedText("[NAME] called", [(0, 5, "NAME")], True).changed
        True
    """

    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)
    changed: bool = False


class PhiOutputGuard:
    """Masks PHI in model outputs.

    Args:
        deidentifier: the engine (default ``Deidentifier(mode=mode)``: patterns, names and notes recognizers).
        holdback_chars: characters of right context every streamed character is analysed with (see module doc).
        mode: ``mask`` (type tags), ``redact`` or ``surrogate``; used only when ``deidentifier`` is None.
        context_chars: left context given to each streamed scan (cues such as ``Dr.`` or ``MRN:`` before a span).
        step_chars: a streamed scan runs once this many characters beyond the hold-back have arrived.

    Example:
        >>> PhiOutputGuard().filter_text("Seen 03/04/2021 by Martha Collins.").spans
        [(5, 15, 'DATE'), (19, 33, 'NAME')]
    """

    def __init__(self, deidentifier: Deidentifier | None = None, *, holdback_chars: int = 64, mode: str = "mask",
                 context_chars: int = 480, step_chars: int = 32):
        if holdback_chars < 1 or context_chars < 0 or step_chars < 1:
            raise ConfigError("holdback_chars and step_chars must be >= 1 and context_chars >= 0",
                              key="holdback_chars")
        self.deidentifier = deidentifier if deidentifier is not None else Deidentifier(mode=mode)  # type: ignore[arg-type]
        self.holdback_chars = holdback_chars
        self.context_chars = context_chars
        self.step_chars = step_chars

    def filter_text(self, text: str) -> GuardedText:
        """Guard a whole text (a non-streamed answer, a log line).

        Example:
            >>> PhiOutputGuard().filter_text("BP 120/80, no PHI here.").changed
            False
        """
        result = self.deidentifier.deidentify(text)
        spans = [(s.start, s.end, s.entity_type) for s in result.spans]
        return GuardedText(result.text, spans, bool(spans))

    def stream(self) -> PhiStreamFilter:
        """A new filter for one streamed answer (not thread-safe; one per stream).

        Example:
            >>> f = PhiOutputGuard().stream(); f.push("Hello"), f.flush()
            ('', 'Hello')
        """
        return PhiStreamFilter(self)


class PhiStreamFilter:
    """Incremental guard for one stream: ``push(delta)`` returns the text now safe to emit, ``flush()`` the rest.

    ``spans`` lists the replaced spans (offsets in the original stream), ``late_spans`` the spans found only after
    part of them had been emitted (their remainder was masked), ``scans`` the number of detector runs.

    Example:
        >>> f = PhiOutputGuard(holdback_chars=8, step_chars=4).stream()
        >>> out = [f.push(c) for c in "Patient: Quenvaro Dastrelik. Stable."]
        >>> "".join(out) + f.flush()
        'Patient: [NAME]. Stable.'
    """

    def __init__(self, guard: PhiOutputGuard):
        self._guard = guard
        self._deid = guard.deidentifier
        self._names = self._deid._names_recognizer() if "NAME" in self._deid.entities else None
        self._pieces: list[str] = []
        self._text = ""
        self._size = 0
        self._emitted = 0  # characters of the original text already emitted (or replaced)
        self._carry: dict[str, str] = {}  # lower-cased name/place word -> entity type, found earlier
        self._carry_re: re.Pattern[str] | None = None
        self._closed = False
        self.spans: list[tuple[int, int, str]] = []
        self.late_spans = 0
        self.scans = 0

    @property
    def received(self) -> str:
        """The original text received so far (never log it: it may hold PHI)."""
        if self._pieces:
            self._text += "".join(self._pieces)
            self._pieces.clear()
        return self._text

    def push(self, delta: str) -> str:
        """Add a delta; returns the guarded text that can be sent now (often ``""``).

        Example:
            >>> f = PhiOutputGuard().stream(); f.push("Call 617-555-"), f.push("0134 now.") + f.flush()
            ('', 'Call [PHONE] now.')
        """
        if self._closed:
            raise ConfigError("push() after flush(): a PhiStreamFilter guards one stream", key="stream")
        if not delta:
            return ""
        self._pieces.append(delta)
        self._size += len(delta)
        if self._size - self._emitted < self._guard.holdback_chars + self._guard.step_chars:
            return ""  # O(1) for most deltas: scan only once a step's worth of text can be released
        return self._release(final=False)

    def flush(self) -> str:
        """End of stream: guard and return everything not yet emitted.

        Example:
            >>> f = PhiOutputGuard().stream(); f.push("Seen 03/04/2021"), f.flush()
            ('', 'Seen [DATE]')
        """
        if self._closed:
            return ""
        out = self._release(final=True)
        self._closed = True
        return out

    def _detect(self, text: str, start: int) -> list[Span]:
        window = text[start:]
        spans = self._deid.detect(window)
        before = len(self._carry)
        for s in spans:  # forward propagation: a name or place found once is masked wherever it comes back
            if s.entity_type == "LOCATION" and s.score >= 0.6:
                for token in _WORD.findall(window[s.start:s.end].lower()):
                    if token not in _plain_words():
                        self._carry.setdefault(token, "LOCATION")
        if self._names is not None:
            for token in self._names.propagation_tokens(window, spans):
                self._carry.setdefault(token, "NAME")
        if len(self._carry) != before:
            self._carry_re = re.compile(r"(?<![^\W\d_]|['’])(?:" + "|".join(
                re.escape(t) for t in sorted(self._carry, key=len, reverse=True)) + r")(?![^\W\d_]|['’])",
                re.IGNORECASE)
        if self._carry_re is None:
            return spans
        covered = [(s.start, s.end) for s in spans]
        extra = [make_span(m.start(), m.end(), self._carry[m.group().lower()], 0.6,
                           "same word found earlier in the stream", "phi_guard")
                 for m in self._carry_re.finditer(window)
                 if not any(a < m.end() and m.start() < b for a, b in covered)]
        return merge_spans(spans + extra) if extra else spans

    def _release(self, final: bool) -> str:
        text = self.received
        size, emitted = len(text), self._emitted
        start = max(0, emitted - self._guard.context_chars)
        if start:  # begin the window at a word boundary: a word fragment could look like a name
            space = _next_space(text, start, emitted)
            start = space if space is not None else emitted
        self.scans += 1
        spans = [(s.start + start, s.end + start, s) for s in self._detect(text, start)]
        spans = [item for item in spans if item[1] > emitted]
        if final:
            cut = size
        else:
            cut = size - self._guard.holdback_chars
            boundary = max(text.rfind(" ", emitted, cut + 1), text.rfind("\n", emitted, cut + 1))
            if boundary > emitted:
                cut = boundary
            elif cut - emitted < 4 * self._guard.holdback_chars:
                return ""  # no word boundary yet (a long token): keep waiting, the cap bounds the wait
            for a, b, _ in spans:  # never cut inside a span (merged spans do not overlap: one pass suffices)
                if a < cut < b:
                    cut = a
            for a, b, _ in reversed(spans):  # nor right after one: a name or address may grow over the next word
                if a < cut and b <= cut and not text[b:cut].strip():
                    cut = a
                    break
        if cut <= emitted:
            return ""
        pieces: list[str] = []
        pos = emitted
        for a, b, span in spans:
            if a >= cut:
                break
            if a < emitted:
                self.late_spans += 1
                a = emitted
            pieces.append(text[pos:a])
            pieces.append(self._deid.replacement(span, text[span.start + start:span.end + start], None))
            self.spans.append((a, b, span.entity_type))
            pos = b
        pieces.append(text[pos:cut])
        self._emitted = cut
        return "".join(pieces)


def _next_space(text: str, start: int, stop: int) -> int | None:
    for i in range(start, stop):
        if text[i].isspace():
            return i + 1
    return None


def guard_kwargs(config: dict[str, Any] | None) -> dict[str, Any]:
    """Constructor arguments of :class:`PhiOutputGuard` from a server config mapping (unknown keys are an error).

    Example:
        >>> guard_kwargs({"holdback_chars": 80})
        {'holdback_chars': 80}
    """
    allowed = {"holdback_chars", "mode", "context_chars", "step_chars"}
    config = dict(config or {})
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f"unknown phi guard option(s) {unknown}; valid: {sorted(allowed)}", key="phi")
    return config
