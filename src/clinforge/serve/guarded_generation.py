"""One served model with its guards: the only place where the server meets ``assist/``.

Order of a request (every path, streamed or not, goes through the same steps):

1. the crisis guard assesses the user's last message before anything is generated; its action decides: continue,
   add the configured resources after the answer, or replace the answer by the safe-messaging reply (and escalate
   through the configured sink with the request id, never the text);
2. retrieval grounds the chat messages in the knowledge base (numbered snippets marked as data);
3. the prompt is counted with the backend's tokenizer and refused when it does not fit;
4. the model answers: token by token through ``Backend.stream``, or through Chain-of-Verification when configured
   (non-streamed requests only);
5. the PHI output guard filters what leaves: ``filter_text`` on a whole answer, ``PhiStreamFilter.push`` on every
   streamed delta (it holds back the tail a later token could still turn into PHI) and ``flush`` at the end. The
   audit log receives hashes of this guarded text only.

The guards come from ``clinforge.assist`` (``phi_guard``, ``crisis_guard``, ``grounding``, ``cove``); a guard that
is configured but not installed is a start-up error, never a silently unguarded server.

Example:
    >>> gm = GuardedModel.build(settings)  # doctest: +SKIP
    >>> prepared = gm.prepare(GenerationRequest(messages=[{"role": "user", "content": "hi"}]), "req-1")  # doctest: +SKIP
    >>> [step for step in gm.complete_steps(prepared)][-1].text  # doctest: +SKIP
    'Hello!'
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.models.backends import Backend, GenerationRequest, load_backend
from clinforge.serve.api_errors import ApiError
from clinforge.serve.audit_log import sha256_text
from clinforge.serve.serve_config import ModelSettings


def _assist(module: str, name: str, guard: str) -> Any:
    """``clinforge.assist.<module>.<name>``, or a start-up error saying which configured guard needs it."""
    try:
        return getattr(importlib.import_module(f"clinforge.assist.{module}"), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{guard} is configured but clinforge.assist.{module}.{name} is not available in this "
                          f"installation ({type(exc).__name__}); remove it from the config or update clinforge") from exc


@dataclass
class Prepared:
    """A request after the crisis guard and retrieval, ready to generate."""

    request: GenerationRequest
    request_id: str
    prompt_sha256: str
    prompt_tokens: int
    canned: str | None = None  # the crisis guard's reply, replacing the model's answer
    canned_finish: str = "stop"
    suffix: str | None = None  # crisis resources added after the answer
    grounded: Any = None
    decisions: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What was sent: guarded text (only for the response body), token count and audit-safe decisions."""

    text: str = ""
    completion_tokens: int = 0
    finish_reason: str = "stop"
    decisions: dict[str, Any] = field(default_factory=dict)


class GuardedModel:
    """A backend and the guards, retrieval and verification its config switches on."""

    def __init__(self, settings: ModelSettings, backend: Backend, *, phi_guard: Any = None, crisis_guard: Any = None,
                 kb: Any = None, cove: Any = None):
        self.settings, self.backend = settings, backend
        self.phi_guard, self.crisis_guard, self.kb, self.cove = phi_guard, crisis_guard, kb, cove

    @classmethod
    def build(cls, settings: ModelSettings) -> GuardedModel:
        """Load the backend and every configured guard (slow: run it off the event loop)."""
        phi = crisis = kb = cove = None
        if "phi" in settings.guards:
            phi = _assist("phi_guard", "PhiOutputGuard", "guard 'phi'")(None, **settings.phi.model_dump())
        if "crisis" in settings.guards:
            crisis = _assist("crisis_guard", "CrisisGuard", "guard 'crisis'").from_config(settings.crisis)
        if settings.rag is not None:
            _assist("grounding", "ground_messages", "rag")
            from clinforge.assist.kb import open_kb

            kb = open_kb(settings.rag.kb, verify=settings.rag.verify)
        backend = load_backend(settings.spec, **settings.backend_options)
        if settings.cove is not None:
            c = settings.cove
            cove = _assist("cove", "ChainOfVerification", "cove")(
                backend, variant=c.variant, max_questions=c.max_questions, max_new_tokens=c.max_new_tokens,
                retriever=kb if c.use_kb else None)
        return cls(settings, backend, phi_guard=phi, crisis_guard=crisis, kb=kb, cove=cove)

    # ------------------------------------------------------------------ before generation
    def prompt_limit(self, max_new_tokens: int) -> int | None:
        """The most prompt tokens a request with ``max_new_tokens`` may send (None: unknown, not checked)."""
        limits = [self.settings.max_prompt_tokens] if self.settings.max_prompt_tokens else []
        if self.backend.context_length:
            limits.append(self.backend.context_length - max_new_tokens)
        return min(limits) if limits else None

    def prepare(self, request: GenerationRequest, request_id: str) -> Prepared:
        """Crisis guard, retrieval and the prompt-length check (blocking: retrieval and tokenising run here)."""
        source = request.messages if request.messages is not None else request.prompt
        prepared = Prepared(request, request_id, sha256_text(json.dumps(source, sort_keys=True)), 0)
        if self.crisis_guard is not None:
            self._assess_crisis(prepared)
        if prepared.canned is not None:
            return prepared  # the model is not asked: nothing to ground or count
        if self.kb is not None and request.messages is not None:
            ground = _assist("grounding", "ground_messages", "rag")
            rag = self.settings.rag
            grounded = ground(request.messages, self.kb, k=rag.k, token_budget=rag.token_budget,
                              count_tokens=self.backend.count_tokens, filters=rag.filters)
            request.messages = grounded.messages
            prepared.grounded = grounded
            prepared.decisions["rag"] = {
                "snippets": [_get(s, "chunk_id") for s in grounded.snippets],
                "dropped": grounded.dropped,
                "flagged_injection": sum(1 for s in grounded.snippets if _get(s, "flagged_injection")),
            }
        prepared.prompt_tokens = self.backend.count_prompt_tokens(request)
        limit = self.prompt_limit(request.max_new_tokens)
        if limit is not None and prepared.prompt_tokens > limit:
            raise ApiError(400, f"the prompt has {prepared.prompt_tokens} tokens; model {self.settings.name!r} "
                                f"accepts at most {max(limit, 0)} with max_tokens={request.max_new_tokens}",
                           code="context_length_exceeded", param="messages" if request.messages else "prompt")
        return prepared

    def _assess_crisis(self, prepared: Prepared) -> None:
        messages = prepared.request.messages
        if messages is not None:
            users = [m for m in messages if m.get("role") == "user"]
            text = str(users[-1].get("content") or "") if users else ""
        else:
            text = prepared.request.prompt or ""
        decision = self.crisis_guard.assess(text)
        prepared.decisions["crisis"] = {"level": decision.level, "level_name": decision.level_name,
                                        "action": decision.action, "rule": decision.rule}
        if decision.action in ("safe_reply_escalate", "block_escalate"):
            prepared.canned = decision.reply or ""
            prepared.canned_finish = "content_filter" if decision.action == "block_escalate" else "stop"
            escalated: bool | str = False
            if getattr(self.crisis_guard, "sink", None) is not None:
                try:
                    self.crisis_guard.escalate(decision, prepared.request_id)
                    escalated = True
                except Exception as exc:  # the reply still goes out; the failed escalation is on record (no text)
                    escalated = f"failed: {type(exc).__name__}"
            prepared.decisions["crisis"]["escalated"] = escalated
        elif decision.action == "add_resources" and decision.resources:
            prepared.suffix = "\n\n" + decision.resources

    # ------------------------------------------------------------------ generation
    def stream_deltas(self, prepared: Prepared, outcome: Outcome) -> Iterator[str]:
        """Guarded text deltas of the answer; ``outcome`` is filled as they go (token count, decisions).

        Closing this iterator closes the backend's stream, which stops generation."""
        outcome.decisions = prepared.decisions
        if prepared.canned is not None:
            outcome.finish_reason = prepared.canned_finish
            outcome.text = prepared.canned
            yield prepared.canned
            return
        raw: list[str] = []
        sent: list[str] = []
        deltas = self.backend.stream(prepared.request)
        phi = self.phi_guard.stream() if self.phi_guard is not None else None
        try:
            for delta in deltas:
                raw.append(delta)
                safe = phi.push(delta) if phi is not None else delta
                if safe:
                    sent.append(safe)
                    yield safe
            if phi is not None:
                tail = phi.flush()
                if tail:
                    sent.append(tail)
                    yield tail
            if prepared.suffix:
                sent.append(prepared.suffix)
                yield prepared.suffix
        finally:
            _close(deltas)
            self._finish(prepared, outcome, "".join(raw), "".join(sent), filtered=phi is not None)

    def complete_steps(self, prepared: Prepared) -> Iterator[Outcome | None]:
        """A whole answer: yields ``None`` after every generated delta (progress, so a server can tell a slow model
        from a hung one and cancel between tokens), then the finished ``Outcome`` with the guarded text."""
        outcome = Outcome(decisions=prepared.decisions)
        if prepared.canned is not None:
            outcome.text, outcome.finish_reason = prepared.canned, prepared.canned_finish
            yield outcome
            return
        if self.cove is not None and prepared.request.messages is not None:
            result = self.cove.run(prepared.request.messages)
            raw = result.final
            prepared.decisions["cove"] = {"variant": self.settings.cove.variant, "calls": result.calls,
                                          "tokens": result.tokens, "questions": len(result.questions)}
        else:
            parts = []
            deltas = self.backend.stream(prepared.request)
            try:
                for delta in deltas:
                    parts.append(delta)
                    yield None
            finally:
                _close(deltas)
            raw = "".join(parts)
        text = raw
        if self.phi_guard is not None:
            guarded = self.phi_guard.filter_text(raw)
            text = guarded.text
            prepared.decisions["phi"] = {"changed": bool(guarded.changed), "spans": _span_counts(guarded.spans)}
        if prepared.suffix:
            text += prepared.suffix
        self._finish(prepared, outcome, raw, text, filtered=False)
        outcome.text = text
        yield outcome

    def _finish(self, prepared: Prepared, outcome: Outcome, raw: str, sent: str, *, filtered: bool) -> None:
        """Token count, finish reason, citation check and the PHI decision of a stream (no text kept)."""
        outcome.completion_tokens = self.backend.count_tokens(raw) if raw else 0
        outcome.finish_reason = "length" if outcome.completion_tokens >= prepared.request.max_new_tokens else "stop"
        if filtered:
            # a streamed answer is filtered piecewise: record whether the guard changed it, not the spans' text
            expected = raw + (prepared.suffix or "")
            prepared.decisions["phi"] = {"changed": sent != expected}
        if prepared.grounded is not None:
            check = _assist("grounding", "check_citations", "rag")
            report = check(raw, prepared.grounded)
            prepared.decisions.setdefault("rag", {}).update(
                cited=list(report.cited_chunk_ids), out_of_range=list(report.out_of_range))
        prepared.decisions["output_sha256"] = sha256_text(sent)
        outcome.decisions = prepared.decisions

    def close(self) -> None:
        self.backend.close()


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _span_counts(spans: list[tuple[int, int, str]]) -> dict[str, int]:
    """Spans per PHI label (counts only: the audit log never holds the text or its offsets)."""
    counts: dict[str, int] = {}
    for span in spans:
        label = str(span[2])
        counts[label] = counts.get(label, 0) + 1
    return counts
