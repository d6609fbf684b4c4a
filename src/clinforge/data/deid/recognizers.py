"""Recognizer interface and registry: a recognizer maps text to PHI spans.

Built-in recognizers (``patterns.py``, ``names.py``, ``ner.py``) register here; users add their own with
``RECOGNIZERS.register("mine", MyRecognizer)`` and pass ``recognizers=[..., "mine"]`` to ``Deidentifier``.
"""

from __future__ import annotations

from typing import Any

from clinforge.core.registry import Registry
from clinforge.data.deid.spans import Span, make_span


class Recognizer:
    """Base class: subclasses set ``name`` and ``entities`` and implement ``analyze``.

    Example:
        >>> class Tokens(Recognizer):
        ...     name, entities = "tokens", ("ID",)
        ...     def analyze(self, text):
        ...         i = text.find("XYZ-1")
        ...         return [] if i < 0 else [self.span(i, i + 5, "ID", 0.9, "literal XYZ-1")]
        >>> Tokens().analyze("id XYZ-1")[0].start
        3
    """

    name: str = ""
    entities: tuple[str, ...] = ()
    # the keyword options the recognizer reads (beyond its named __init__ parameters); None: not declared, so
    # ``Deidentifier`` cannot tell a misspelt option from one this recognizer reads, and checks none
    option_names: tuple[str, ...] | None = None

    def __init__(self, **options: Any):
        self.options = options

    def analyze(self, text: str) -> list[Span]:
        raise NotImplementedError

    def span(self, start: int, end: int, entity_type: str, score: float, explanation: str) -> Span:
        """Build a Span attributed to this recognizer."""
        return make_span(start, end, entity_type, score, explanation, self.name)


RECOGNIZERS: Registry[type[Recognizer]] = Registry(
    "deid recognizer",
    builtins={
        "patterns": "clinforge.data.deid.patterns",
        "names": "clinforge.data.deid.names",
        "transformers_ner": "clinforge.data.deid.ner",
        "notes": "clinforge.data.deid.note_rules",
        "site_terms": "clinforge.data.deid.site_terms",
    },
)

DEFAULT_RECOGNIZERS: tuple[str, ...] = ("patterns", "names", "notes")
