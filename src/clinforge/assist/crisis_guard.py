"""Crisis guard: grade a user's message on the C-SSRS screener levels and decide what the assistant does.

``CrisisGuard.assess(text)`` combines the rules of :mod:`clinforge.assist.crisis_rules` with an optional model
classifier (the maximum of the two levels wins, so a classifier can only raise the level) and maps the level to an
action:

========================  ====================================================================================
``continue``              answer normally
``add_resources``         answer, and append the crisis resources of the configured locale(s)
``safe_reply_escalate``   replace the model's answer by a safe-messaging reply with resources; escalate
``block_escalate``        do not call the model; an urgent safe-messaging reply; escalate
========================  ====================================================================================

Default mapping (after the screener's triage: yes to Q1/Q2 -> low risk, Q3 -> moderate, Q4/Q5 or behaviour in the
past 3 months -> high): 0 continue, 1-2 add_resources, 3 safe_reply_escalate, 4-6 block_escalate; behaviour marked
as distant past (``past_behaviour``) add_resources. Every part is configurable; decisions are deterministic (the
rules are regular expressions, the classifier runs in eval mode without sampling).

Escalation goes through a registered sink (``webhook``: an HTTP POST with a timeout; ``jsonl_queue``: one JSON line
appended to a file). The event holds the audit id, level, level name, action, rule id, locale, a UTC time and a
keyed hash of the text (HMAC-SHA256 with ``$CLINFORGE_AUDIT_KEY``, plain SHA-256 without it): never the text.

Example:
    >>> guard = CrisisGuard.from_config(None)
    >>> d = guard.assess("I keep thinking about killing myself.")
    >>> d.level, d.level_name, d.action, d.rule
    (2, 'non-specific active suicidal thoughts', 'add_resources', 'kill_myself')
    >>> guard.assess("My patient denies SI.").action
    'continue'
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from clinforge.assist.crisis_rules import LEVEL_NAMES, assess_rules
from clinforge.core.errors import ClinforgeError, ConfigError
from clinforge.core.registry import Registry

ACTIONS: tuple[str, ...] = ("continue", "add_resources", "safe_reply_escalate", "block_escalate")
DEFAULT_ACTIONS: dict[int | str, str] = {0: "continue", 1: "add_resources", 2: "add_resources",
                                         3: "safe_reply_escalate", 4: "block_escalate", 5: "block_escalate",
                                         6: "block_escalate", "past_behaviour": "add_resources"}
DEFAULT_RESOURCES: dict[str, str] = {
    "en-US": "In the US you can call or text 988 (Suicide & Crisis Lifeline, 24/7) or chat at 988lifeline.org; "
             "in an emergency call 911.",
    "en-GB": "In the UK you can call Samaritans free on 116 123 (24/7) or email jo@samaritans.org; "
             "in an emergency call 999.",
}
SAFE_REPLY = ("I'm really sorry you're going through this, and I'm glad you told me. You don't have to face it "
              "alone: talking to someone now can help. {resources} If you can, reach out to someone you trust and "
              "stay with them.")
URGENT_REPLY = ("I'm concerned about your safety right now. Please contact emergency help immediately. "
                "{resources} If you can, move away from anything you could use to hurt yourself and stay with "
                "someone you trust.")


class EscalationError(ClinforgeError):
    """An escalation could not be delivered (the sink is named; the message holds no PHI)."""


@dataclass(frozen=True)
class CrisisDecision:
    """What the guard decided for one message (holds no text of the message).

    ``reply`` is the safe-messaging reply when the action replaces the model's answer, ``resources`` the text to
    append (``add_resources``) or that the reply contains; ``rule`` which rule or classifier set the level.

    Example:
        >>> CrisisDecision(0, "none", "continue", None, None, "none").escalate
        False
    """

    level: int
    level_name: str
    action: str
    reply: str | None
    resources: str | None
    rule: str
    text_hash: str = ""

    @property
    def escalate(self) -> bool:
        """True when the action asks for an escalation."""
        return self.action.endswith("_escalate")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (no message text)."""
        return asdict(self)


class CrisisClassifier(Protocol):
    """A model that grades a text: ``predict(text) -> (level 0-6, label)``. Register a factory in CLASSIFIERS."""

    def predict(self, text: str) -> tuple[int, str]: ...


class EscalationSink(Protocol):
    """Delivers one escalation event (a dict without PHI); raises EscalationError when it cannot."""

    def send(self, event: dict[str, Any]) -> None: ...


CLASSIFIERS: Registry[Any] = Registry("crisis classifier")
ESCALATION_SINKS: Registry[Any] = Registry("escalation sink")


class HfCrisisClassifier:
    """A local Hugging Face sequence-classification folder as a crisis classifier.

    Args:
        path: a local folder (nothing is downloaded; a hub id is refused).
        label_levels: model label -> C-SSRS level (default: labels that are digits 0-6 map to themselves, and
            ``LABEL_k`` to k when 0 <= k <= 6).
        threshold: the top label counts only when its softmax probability is at least this; else level 0.

    Example (a folder fine-tuned on graded crisis labels; the tests build a tiny one):
        ``HfCrisisClassifier("models/cssrs-bert", label_levels={"none": 0, "wish": 1, ...}).predict(text)``
        returns ``(level, label)``.
    """

    def __init__(self, path: str | os.PathLike, *, label_levels: dict[str, int] | None = None,
                 threshold: float = 0.5, max_length: int = 256):
        folder = Path(path)
        if not folder.is_dir():
            raise ConfigError(f"crisis classifier {str(path)!r} is not a local folder (nothing is downloaded)",
                              key="crisis.classifier.path")
        bad = sorted(p.name for p in folder.iterdir() if p.suffix in {".pkl", ".pickle", ".joblib", ".bin", ".pt",
                                                                       ".pth", ".ckpt"})
        if bad:
            raise ConfigError(f"crisis classifier {folder}: refusing pickle-based weight files {bad} (use "
                              "safetensors)", key="crisis.classifier.path")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
        self.max_length = max_length
        self.threshold = threshold
        id2label = {int(k): v for k, v in self.model.config.id2label.items()}
        self.labels = [id2label[i] for i in range(len(id2label))]
        self.label_levels = dict(label_levels) if label_levels is not None else _default_levels(self.labels)
        unknown = [lab for lab in self.labels if lab not in self.label_levels]
        if unknown:
            raise ConfigError(f"crisis classifier {folder}: labels {unknown} have no level in label_levels",
                              key="crisis.classifier.label_levels")
        for lab, lvl in self.label_levels.items():
            if not 0 <= int(lvl) <= 6:
                raise ConfigError(f"label {lab!r}: level {lvl} is not in 0..6", key="crisis.classifier.label_levels")

    def predict(self, text: str) -> tuple[int, str]:
        """(level, label) of the most probable label; level 0 below the threshold."""
        with self._torch.inference_mode():
            enc = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=self.max_length)
            probs = self.model(**enc).logits.float().softmax(-1)[0]
        best = int(probs.argmax())
        label = self.labels[best]
        if float(probs[best]) < self.threshold:
            return 0, label
        return int(self.label_levels[label]), label


def _default_levels(labels: list[str]) -> dict[str, int]:
    out = {}
    for lab in labels:
        digits = lab.removeprefix("LABEL_")
        if digits.isdigit() and 0 <= int(digits) <= 6:
            out[lab] = int(digits)
    return out


CLASSIFIERS.register("hf", HfCrisisClassifier)


class WebhookSink:
    """POST the event as JSON to ``url`` with ``httpx`` (``timeout`` seconds); a non-2xx answer or a network error
    is an EscalationError. ``headers_env`` names an environment variable holding an ``Authorization`` value.

    Example:
        >>> WebhookSink("http://127.0.0.1:9/hook", timeout=1.0).timeout
        1.0
    """

    def __init__(self, url: str, *, timeout: float = 5.0, headers_env: str | None = None):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook url must be http(s), got {url!r}", key="crisis.escalation.url")
        self.url, self.timeout, self.headers_env = url, float(timeout), headers_env

    def send(self, event: dict[str, Any]) -> None:
        import httpx

        headers = {}
        if self.headers_env and os.environ.get(self.headers_env):
            headers["Authorization"] = os.environ[self.headers_env]
        try:
            response = httpx.post(self.url, json=event, timeout=self.timeout, headers=headers)
        except httpx.HTTPError as exc:
            raise EscalationError(f"webhook escalation to {self.url} failed: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise EscalationError(f"webhook escalation to {self.url} answered HTTP {response.status_code}")


class JsonlQueueSink:
    """Append the event as one JSON line to ``path`` (opened in append mode, flushed and fsynced per event, so a
    reader tailing the file sees whole lines and a crash loses at most the event being written).

    Example:
        >>> p = tmp_dir / "q.jsonl"   # tmp_dir: a temporary folder
        >>> JsonlQueueSink(p).send({"level": 2}); p.read_text()
        '{"level": 2}\\n'
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def send(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise EscalationError(f"queue escalation to {self.path} failed: {exc.strerror}") from None


ESCALATION_SINKS.register("webhook", WebhookSink)
ESCALATION_SINKS.register("jsonl_queue", JsonlQueueSink)


def text_hash(text: str) -> str:
    """Keyed hash of a message for audit events: HMAC-SHA256 with ``$CLINFORGE_AUDIT_KEY``, else SHA-256 (a short
    message could be guessed from a plain hash: set the key in production).

    Example:
        >>> len(text_hash("hello"))
        64
    """
    key = os.environ.get("CLINFORGE_AUDIT_KEY")
    data = text.encode("utf-8")
    if key:
        return hmac.new(key.encode("utf-8"), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


_CONFIG_KEYS = {"actions", "locales", "resources", "classifier", "escalation", "safe_reply", "urgent_reply"}


class CrisisGuard:
    """Grades messages and decides the action; see the module doc.

    Args:
        actions: level (0-6, or ``"past_behaviour"``) -> action; merged over ``DEFAULT_ACTIONS``.
        locales: which resource texts to show, in order (default ``["en-US", "en-GB"]``).
        resources: locale -> text, merged over ``DEFAULT_RESOURCES`` (add a locale, or replace one).
        classifier: an object with ``predict(text) -> (level, label)`` (combined with the rules by maximum).
        sink: an escalation sink (``send(event)``); None: ``escalate`` raises.

    Example:
        >>> g = CrisisGuard(locales=["en-GB"])
        >>> d = g.assess("I'm going to kill myself tonight."); d.level, d.action, "116 123" in d.reply
        (5, 'block_escalate', True)
    """

    def __init__(self, *, actions: dict[Any, str] | None = None, locales: list[str] | None = None,
                 resources: dict[str, str] | None = None, classifier: Any = None, sink: Any = None,
                 safe_reply: str = SAFE_REPLY, urgent_reply: str = URGENT_REPLY):
        self.actions: dict[int | str, str] = dict(DEFAULT_ACTIONS)
        for key, action in (actions or {}).items():
            k: int | str = key if key == "past_behaviour" else int(key)
            if k != "past_behaviour" and not 0 <= int(k) <= 6:
                raise ConfigError(f"crisis action for level {key!r}: levels are 0..6 or past_behaviour",
                                  key="crisis.actions")
            if action not in ACTIONS:
                raise ConfigError(f"unknown crisis action {action!r}; valid: {', '.join(ACTIONS)}",
                                  key=f"crisis.actions.{key}")
            self.actions[k] = action
        self.resources = {**DEFAULT_RESOURCES, **(resources or {})}
        self.locales = list(locales) if locales is not None else ["en-US", "en-GB"]
        missing = [loc for loc in self.locales if loc not in self.resources]
        if missing:
            raise ConfigError(f"no crisis resources for locale(s) {missing}; add them under crisis.resources",
                              key="crisis.locales")
        self.classifier = classifier
        self.sink = sink
        self.safe_reply, self.urgent_reply = safe_reply, urgent_reply

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> CrisisGuard:
        """Build from a config mapping (``None``: the defaults). Keys: ``actions``, ``locales``, ``resources``,
        ``classifier`` (``{type: hf, path: DIR, label_levels: {...}, threshold: 0.5}``), ``escalation``
        (``{sink: webhook, url: ..., timeout: 5}`` or ``{sink: jsonl_queue, path: ...}``), ``safe_reply``,
        ``urgent_reply`` (with a ``{resources}`` slot).

        Example:
            >>> g = CrisisGuard.from_config({"locales": ["en-IE"], "resources": {"en-IE": "Call 116 123."}})
            >>> g.assess("I wish I was dead.").resources
            'Call 116 123.'
        """
        config = dict(config or {})
        unknown = sorted(set(config) - _CONFIG_KEYS)
        if unknown:
            raise ConfigError(f"unknown crisis guard option(s) {unknown}; valid: {sorted(_CONFIG_KEYS)}", key="crisis")
        classifier = None
        if config.get("classifier"):
            spec = dict(config["classifier"])
            classifier = CLASSIFIERS.get(spec.pop("type", "hf"))(**spec)
        sink = None
        if config.get("escalation"):
            spec = dict(config["escalation"])
            sink = ESCALATION_SINKS.get(spec.pop("sink", "jsonl_queue"))(**spec)
        return cls(actions=config.get("actions"), locales=config.get("locales"), resources=config.get("resources"),
                   classifier=classifier, sink=sink, safe_reply=config.get("safe_reply", SAFE_REPLY),
                   urgent_reply=config.get("urgent_reply", URGENT_REPLY))

    def assess(self, text: str) -> CrisisDecision:
        """Grade ``text`` (the user's message) and decide the action.

        Example:
            >>> CrisisGuard().assess("I don't want to die, I want my knee to stop hurting.").level
            0
        """
        rules = assess_rules(text)
        level, rule = rules.level, rules.rule
        past = rules.past
        if self.classifier is not None:
            model_level, label = self.classifier.predict(text)
            if model_level > level:
                level, rule, past = int(model_level), f"classifier:{label}", False
        action = self.actions["past_behaviour"] if past else self.actions[level]
        resources = " ".join(self.resources[loc] for loc in self.locales) if action != "continue" else None
        reply = None
        if action == "safe_reply_escalate":
            reply = self.safe_reply.format(resources=resources)
        elif action == "block_escalate":
            reply = self.urgent_reply.format(resources=resources)
        name = LEVEL_NAMES[level] + (" (past)" if past else "")
        return CrisisDecision(level, name, action, reply, resources, rule, text_hash(text))

    def escalate(self, decision: CrisisDecision, audit_id: str) -> dict[str, Any]:
        """Send an escalation event for ``decision`` through the configured sink; returns the event sent.

        Example:
            >>> q = tmp_dir / "escalations.jsonl"   # tmp_dir: a temporary folder
            >>> g = CrisisGuard(sink=JsonlQueueSink(q)); e = g.escalate(g.assess("I tried to kill myself."), "req-1")
            >>> e["level"], e["rule"], "kill" in q.read_text()
            (6, 'attempt', False)
        """
        if self.sink is None:
            raise EscalationError("no escalation sink configured (crisis.escalation)")
        event = {"audit_id": audit_id, "level": decision.level, "level_name": decision.level_name,
                 "action": decision.action, "rule": decision.rule, "text_hash": decision.text_hash,
                 "locales": self.locales,
                 "time": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        self.sink.send(event)
        return event
