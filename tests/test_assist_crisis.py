"""Crisis guard: graded C-SSRS levels on a hand-labelled set, negation / third person / history, actions, locales,
a real (tiny) sequence-classification model combined by maximum, and escalation to a real loopback webhook."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinforge.assist.crisis_guard import (
    ESCALATION_SINKS,
    CrisisGuard,
    EscalationError,
    HfCrisisClassifier,
    JsonlQueueSink,
    WebhookSink,
)
from clinforge.assist.crisis_rules import assess_rules
from clinforge.core.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "crisis"


def _labelled(name: str) -> list[tuple[int, str, str]]:
    rows = []
    for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            level, category, text = line.split("\t")
            rows.append((int(level), category, text))
    return rows


def per_level_accuracy(rows: list[tuple[int, str, str]]) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for level, _, text in rows:
        ok, n = out.get(level, (0, 0))
        out[level] = (ok + (assess_rules(text).level == level), n + 1)
    return out


def test_labelled_sets_cover_every_level_and_category() -> None:
    for name in ("dev.tsv", "heldout.tsv"):
        rows = _labelled(name)
        assert {lvl for lvl, _, _ in rows} == set(range(7))
        assert {"negation", "third_person", "clinical", "historical"} <= {c for _, c, _ in rows}


def test_development_set_every_item() -> None:
    """The rules were written while reading this set: every item must be right (a regression check)."""
    wrong = [(lvl, text, assess_rules(text)) for lvl, _, text in _labelled("dev.tsv") if assess_rules(text).level != lvl]
    assert not wrong


def test_heldout_set_accuracy() -> None:
    """Written before the rules and scored in aggregate only (docs/assist.md reports the per-level figures)."""
    acc = per_level_accuracy(_labelled("heldout.tsv"))
    correct = sum(ok for ok, _ in acc.values())
    total = sum(n for _, n in acc.values())
    assert correct / total >= 0.9, acc
    assert acc[0][0] == acc[0][1], "a level-0 held-out message was graded as a crisis"


@pytest.mark.parametrize(("text", "level", "rule"), [
    ("I don't want to die.", 0, "negated"),
    ("I don't want to live.", 1, "no_wish_to_live"),
    ("My patient denies SI.", 0, "third_person"),
    ("She said she wants to kill herself.", 0, "third_person"),
    ("I used to want to die years ago.", 0, "historical"),
    ("Years ago I tried to kill myself.", 6, "behaviour_past"),
    ("I'm dying to see the results, this wait is killing me.", 0, "none"),
    ("I take pills for my blood pressure.", 0, "none"),
])
def test_rules_negation_third_person_history(text: str, level: int, rule: str) -> None:
    r = assess_rules(text)
    assert (r.level, r.rule) == (level, rule)


def test_actions_resources_locales_and_determinism() -> None:
    guard = CrisisGuard()
    msgs = {"Is ibuprofen safe?": (0, "continue"), "I wish I was dead.": (1, "add_resources"),
            "I want to kill myself by jumping off a bridge.": (3, "safe_reply_escalate"),
            "I'm going to kill myself.": (4, "block_escalate"),
            "Years ago I tried to kill myself.": (6, "add_resources")}
    for text, (level, action) in msgs.items():
        d = guard.assess(text)
        assert (d.level, d.action) == (level, action), text
        assert d == guard.assess(text)  # deterministic
        if action != "continue":
            assert "988" in d.resources and "116 123" in d.resources
        assert (d.reply is not None) == action.endswith("escalate")
        assert text not in json.dumps(d.to_dict())
    gb = CrisisGuard.from_config({"locales": ["en-GB", "de-DE"], "resources": {"de-DE": "Telefonseelsorge 0800 111 0 111"},
                                  "actions": {1: "safe_reply_escalate"}})
    d = gb.assess("I wish I was dead.")
    assert d.action == "safe_reply_escalate" and "116 123" in d.reply and "0800 111 0 111" in d.reply
    assert "988" not in d.reply
    with pytest.raises(ConfigError, match="unknown crisis action"):
        CrisisGuard.from_config({"actions": {2: "ignore"}})
    with pytest.raises(ConfigError, match="no crisis resources"):
        CrisisGuard.from_config({"locales": ["fr-FR"]})
    with pytest.raises(ConfigError, match="unknown crisis guard option"):
        CrisisGuard.from_config({"locale": "en-GB"})


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (random, tiny) BERT sequence classifier saved as safetensors with a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("crisis-clf")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "i", "want", "to", "die", "is",
                                        "ibuprofen", "safe"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, num_labels=2, id2label={0: "safe", 1: "risk"},
                     label2id={"safe": 0, "risk": 1})
    BertForSequenceClassification(cfg).save_pretrained(folder)
    return folder


def test_classifier_is_combined_by_maximum(tiny_classifier: Path) -> None:
    clf = HfCrisisClassifier(tiny_classifier, label_levels={"safe": 5, "risk": 5}, threshold=0.0)
    assert clf.predict("is ibuprofen safe") == clf.predict("is ibuprofen safe")
    guard = CrisisGuard.from_config({"classifier": {"type": "hf", "path": str(tiny_classifier),
                                                    "label_levels": {"safe": 5, "risk": 5}, "threshold": 0.0}})
    d = guard.assess("is ibuprofen safe")
    assert d.level == 5 and d.rule.startswith("classifier:") and d.action == "block_escalate"
    low = CrisisGuard(classifier=HfCrisisClassifier(tiny_classifier, label_levels={"safe": 0, "risk": 0}))
    d = low.assess("I tried to kill myself.")
    assert d.level == 6 and d.rule == "attempt"  # the classifier can only raise the level
    with pytest.raises(ConfigError, match="no level"):
        HfCrisisClassifier(tiny_classifier)  # labels 'safe'/'risk' are not digits: a mapping is required
    with pytest.raises(ConfigError, match="not a local folder"):
        HfCrisisClassifier("someone/hub-model")
    (tiny_classifier / "extra.pkl").write_bytes(b"x")
    try:
        with pytest.raises(ConfigError, match="pickle"):
            HfCrisisClassifier(tiny_classifier, label_levels={"safe": 0, "risk": 1})
    finally:
        (tiny_classifier / "extra.pkl").unlink()


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200
    delay = 0.0

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(type(self).delay)
        type(self).received.append({"body": json.loads(body), "auth": self.headers.get("Authorization")})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.received, _Hook.status, _Hook.delay = [], 200, 0.0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/escalate"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_escalation_to_a_real_loopback_server(hook: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_AUTH", "Bearer s3cret")
    text = "I'm going to kill myself, my name is Martha Collins."
    guard = CrisisGuard.from_config({"escalation": {"sink": "webhook", "url": hook, "timeout": 2,
                                                    "headers_env": "HOOK_AUTH"}})
    decision = guard.assess(text)
    event = guard.escalate(decision, "req-42")
    assert len(_Hook.received) == 1 and _Hook.received[0]["body"] == event
    assert _Hook.received[0]["auth"] == "Bearer s3cret"
    assert event["level"] == 4 and event["audit_id"] == "req-42" and len(event["text_hash"]) == 64
    assert "Martha" not in json.dumps(event) and "kill" not in json.dumps(event)
    _Hook.status = 500
    with pytest.raises(EscalationError, match="HTTP 500"):
        guard.escalate(decision, "req-43")
    _Hook.status, _Hook.delay = 200, 1.5
    with pytest.raises(EscalationError, match="Timeout"):
        WebhookSink(hook, timeout=0.3).send({"level": 4})


def test_jsonl_queue_sink_and_no_sink(tmp_path: Path) -> None:
    q = tmp_path / "queue" / "crisis.jsonl"
    guard = CrisisGuard(sink=ESCALATION_SINKS.get("jsonl_queue")(q))
    for i in range(3):
        guard.escalate(guard.assess("I tried to kill myself yesterday."), f"a{i}")
    lines = [json.loads(x) for x in q.read_text().splitlines()]
    assert [e["audit_id"] for e in lines] == ["a0", "a1", "a2"] and all(e["level"] == 6 for e in lines)
    assert "yesterday" not in q.read_text()
    with pytest.raises(EscalationError, match="no escalation sink"):
        CrisisGuard().escalate(guard.assess("I wish I was dead."), "x")
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(EscalationError, match="queue escalation"):
        JsonlQueueSink(blocked / "q.jsonl").send({"level": 1})
