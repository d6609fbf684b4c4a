"""The ``clinforge serve`` configuration: a YAML file, the command-line flags, or both (flags win).

Validated before torch or any model is imported, so a typo fails in a second with the file, line, key and the
closest valid key, not after a minute of model loading.

Example config::

    host: 127.0.0.1
    port: 8000
    api_key_env: CLINFORGE_API_KEYS      # comma-separated keys; unset or empty -> no auth, loopback only
    audit_log: serve-audit.jsonl
    models:
      - name: medllm
        spec: hf:smollm2-135m-instruct
        slots: 2
        guards: [phi, crisis]
        rag: {kb: kb/medquad, k: 4, token_budget: 1200}
        cove: {variant: factored, max_questions: 3}

Example:
    >>> cfg = config_from_flags(model="hf:runs/tiny/model", guards="phi,crisis")
    >>> cfg.models[0].name, cfg.models[0].guards
    ('model', ['phi', 'crisis'])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from clinforge.core.config import StrictModel, load_yaml, validate
from clinforge.core.errors import ConfigError, did_you_mean

GUARDS = ("phi", "crisis")
COVE_VARIANTS = ("joint", "two_step", "factored", "factor_revise")


class PhiGuardSettings(StrictModel):
    """Options of the PHI output guard (``clinforge.assist.phi_guard.PhiOutputGuard``)."""

    # None: the guard's own default (assist/phi_guard.py tunes them on real notes)
    holdback_chars: int | None = Field(None, ge=8, le=4096)
    mode: Literal["mask", "redact", "surrogate"] = "mask"
    context_chars: int | None = Field(None, ge=0)
    step_chars: int | None = Field(None, ge=1)


class RagSettings(StrictModel):
    """Ground chat requests in a knowledge base folder (``clinforge kb build``)."""

    kb: str
    k: int = Field(5, ge=1, le=50)
    token_budget: int = Field(1500, ge=50)
    filters: dict[str, Any] | None = None
    verify: bool = True  # check every KB file's hash at start-up (refuses a tampered KB)


class CoveSettings(StrictModel):
    """Chain-of-Verification for non-streamed chat requests."""

    variant: Literal["joint", "two_step", "factored", "factor_revise"] = "factored"
    max_questions: int = Field(5, ge=1, le=20)
    max_new_tokens: int = Field(256, ge=1)
    use_kb: bool = False  # answer verification questions with the model's knowledge base (needs rag)


class ModelSettings(StrictModel):
    """One served model."""

    name: str = Field(min_length=1, max_length=200)
    spec: str = Field(min_length=1)
    backend_options: dict[str, Any] = Field(default_factory=dict)
    # requests generating at once, capped by what the backend can run in parallel (llama.cpp: one sequence); the
    # others wait in a queue of at most max_queue requests (more -> 503 at once) for at most queue_timeout_s (-> 503)
    slots: int = Field(1, ge=1, le=1024)
    max_queue: int = Field(256, ge=0, le=100_000)
    # a bound on the wait, not the shedding policy (max_queue is): 600 s is the openai client's own default timeout,
    # after which its caller has given up anyway (30 s answered half of a 32-client load with 503, docs/serve.md)
    queue_timeout_s: float = Field(600.0, gt=0)
    timeout_s: float = Field(120.0, gt=0)  # no output for this long (first token or between tokens) -> 504
    max_tokens: int = Field(1024, ge=1)  # cap on a request's max_tokens
    default_max_tokens: int | None = Field(None, ge=1)  # when a request names none; default min(256, max_tokens)
    max_prompt_tokens: int | None = Field(None, ge=1)  # default: the model's context length minus max_tokens
    guards: list[Literal["phi", "crisis"]] = Field(default_factory=list)
    phi: PhiGuardSettings = Field(default_factory=PhiGuardSettings)
    crisis: dict[str, Any] | None = None  # passed to CrisisGuard.from_config (levels, actions, resources, sink)
    rag: RagSettings | None = None
    cove: CoveSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSettings:
        if self.default_max_tokens is None:
            self.default_max_tokens = min(256, self.max_tokens)
        if self.default_max_tokens > self.max_tokens:
            raise ValueError(f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens ({self.max_tokens})")
        if self.cove is not None and self.cove.use_kb and self.rag is None:
            raise ValueError("cove.use_kb needs a rag.kb to answer verification questions from")
        return self


class RateLimitSettings(StrictModel):
    """Per-key token bucket: ``requests_per_minute`` refill, ``burst`` capacity (0: no limit)."""

    requests_per_minute: float = Field(0, ge=0)
    burst: int = Field(10, ge=1)


class ServeSettings(StrictModel):
    """The whole server."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key_env: str | None = None
    audit_log: str | None = None
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    drain_grace_s: float = Field(30.0, ge=0)
    no_egress: bool = False
    egress_allow: list[str] = Field(default_factory=list)
    models: list[ModelSettings] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelSettings]) -> list[ModelSettings]:
        seen: set[str] = set()
        for m in models:
            if m.name in seen:
                raise ValueError(f"two models are named {m.name!r}; names must be unique")
            seen.add(m.name)
        return models


def default_name(spec: str) -> str:
    """The served name of a SPEC when none is given: its last path part or model name.

    Example:
        >>> default_name("hf:runs/tiny/model"), default_name("openai:http://127.0.0.1:8000/v1#medllm")
        ('model', 'medllm')
    """
    target = spec.split(":", 1)[1] if ":" in spec and not os.path.exists(spec) else spec
    if "#" in target:
        return target.rsplit("#", 1)[1]
    return Path(target.rstrip("/\\")).name or target


def parse_guards(text: str | None) -> list[str]:
    """``"phi,crisis"`` -> ``["phi", "crisis"]``, refusing unknown names with the closest valid one.

    Example:
        >>> parse_guards("phi, crisis")
        ['phi', 'crisis']
    """
    names = [g.strip() for g in (text or "").split(",") if g.strip()]
    for g in names:
        if g not in GUARDS:
            raise ConfigError(f"--guards: unknown guard {g!r}{did_you_mean(g, GUARDS)}; valid: {', '.join(GUARDS)}")
    return names


def config_from_flags(config_path: str | os.PathLike | None = None, *, model: str | None = None,
                      served_name: str | None = None, host: str | None = None, port: int | None = None,
                      api_key_env: str | None = None, guards: str | None = None, kb: str | None = None,
                      cove: str | None = None, no_egress: bool = False, audit_log: str | None = None,
                      slots: int | None = None, max_queue: int | None = None) -> ServeSettings:
    """Merge a config file (optional) and the command-line flags (which override it) and validate the result.

    With a config file, ``--model`` replaces the model list by that one model (keeping the file's first model's
    other settings); ``--guards``, ``--kb``, ``--cove``, ``--slots`` and ``--max-queue`` apply to every model.

    Example:
        >>> config_from_flags(model="hf:m", port=0, cove="two_step").models[0].cove.variant
        'two_step'
    """
    if config_path is None and model is None:
        raise ConfigError("give a config file (clinforge serve CONFIG.yaml) or a model (--model SPEC)")
    data: dict[str, Any] = {}
    lines: dict[tuple, int] = {}
    if config_path is not None:
        if not Path(config_path).is_file():
            raise ConfigError("config file not found", file=str(config_path))
        data, lines = load_yaml(config_path)
    for key, value in (("host", host), ("port", port), ("api_key_env", api_key_env), ("audit_log", audit_log)):
        if value is not None:
            data[key] = value
    if no_egress:
        data["no_egress"] = True
    models = data.get("models")
    if model is not None:
        first = dict(models[0]) if isinstance(models, list) and models and isinstance(models[0], dict) else {}
        first.update(spec=model, name=served_name or default_name(model))
        data["models"] = [first]
        lines = {k: v for k, v in lines.items() if k[:1] != ("models",)}
    elif served_name is not None:
        raise ConfigError("--served-name needs --model (a config file names its models itself)")
    if isinstance(data.get("models"), list):
        for entry in data["models"]:
            if not isinstance(entry, dict):
                continue
            if guards is not None:
                entry["guards"] = parse_guards(guards)
            if kb is not None:
                entry["rag"] = {**(entry.get("rag") or {}), "kb": kb}
            if cove is not None:
                if cove not in COVE_VARIANTS:
                    raise ConfigError(f"--cove: unknown variant {cove!r}{did_you_mean(cove, COVE_VARIANTS)}; valid: "
                                      f"{', '.join(COVE_VARIANTS)}")
                entry["cove"] = {**(entry.get("cove") or {}), "variant": cove}
            if slots is not None:
                entry["slots"] = slots
            if max_queue is not None:
                entry["max_queue"] = max_queue
    return validate(ServeSettings, data, file=str(config_path) if config_path else None, lines=lines)
