"""Errors that tell the user where the problem is: file, line or record, and field."""

from __future__ import annotations


def did_you_mean(word: str, choices: object) -> str:
    """``" (did you mean 'model'?)"`` when ``word`` is a likely typo of one of ``choices``, else ``""``.

    Example:
        >>> did_you_mean("modle", ["model", "stages", "seed"])
        " (did you mean 'model'?)"
        >>> did_you_mean("zzz", ["model"])
        ''
    """
    import difflib

    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)  # type: ignore[attr-defined]
    return f" (did you mean {match[0]!r}?)" if match else ""


class ClinforgeError(Exception):
    """Base class of every error clinforge raises on purpose (the CLI prints these without a traceback)."""


class ConfigError(ClinforgeError):
    """A recipe or override that does not validate.

    Example:
        >>> str(ConfigError("unknown key", file="r.yaml", line=3, key="train.lr"))
        'r.yaml:3: train.lr: unknown key'
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, key: str | None = None):
        self.message, self.file, self.line, self.key = message, file, line, key
        where = ":".join(str(p) for p in (file, line) if p is not None)
        parts = [p for p in (where, key, message) if p]
        super().__init__(": ".join(parts))


class DataError(ClinforgeError):
    """A bad input row: names the file, the line or record number, and the field.

    Example:
        >>> str(DataError("missing", file="dev.json", line=7, field="cop"))
        'dev.json, line 7, field cop: missing'
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        record: str | int | None = None,
        field: str | None = None,
    ):
        self.message, self.file, self.line, self.record, self.field = message, file, line, record, field
        parts = []
        if file:
            parts.append(str(file))
        if line is not None:
            parts.append(f"line {line}")
        if record is not None:
            parts.append(f"record {record}")
        if field:
            parts.append(f"field {field}")
        super().__init__(", ".join(parts) + (": " if parts else "") + message)


class OutputExistsError(ClinforgeError):
    """An output that exists already and would be replaced without --overwrite."""


class OfflineError(ClinforgeError):
    """A hub id was given but the hub cannot be reached (no network, or HF_HUB_OFFLINE)."""


class ContextLengthError(ClinforgeError):
    """A prompt (plus the tokens asked for) longer than the model's context; ``n_tokens`` and ``limit`` say by how
    much, so a server can answer OpenAI's ``context_length_exceeded``.

    Example:
        >>> e = ContextLengthError("too long", n_tokens=5000, limit=4096)
        >>> (e.n_tokens, e.limit)
        (5000, 4096)
    """

    def __init__(self, message: str, *, n_tokens: int, limit: int):
        self.n_tokens, self.limit = n_tokens, limit
        super().__init__(message)
