"""Helpers for the align tests: a real OpenAI-compatible judge server on 127.0.0.1, real-data records, tiny models.

The judge server is a real HTTP server speaking the OpenAI chat-completions protocol, so the RLAIF stage exercises
the real ``openai:`` client (httpx, JSON payloads, retries) end to end. Its verdicts come from a deterministic rule
instead of a language model (no model download is possible offline): a criterion is "met" when the sha256 of
(criterion text, graded answer) is even, and one reply in 32 is prose without the JSON verdict, so the stage's
counting of unparsable verdicts is exercised over HTTP as well.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ANSWER_RE = re.compile(r"\[Answer to grade\]\n(.*?)\n\n\[Rubric criterion\]", re.S)
CRITERION_RE = re.compile(r"\[Rubric criterion\][^\n]*\n(.*?)\n\nDecide", re.S)


def rule_verdict(prompt: str) -> str:
    """The rule judge's reply to one rubric-criterion prompt (JSON verdict, or prose for 1 in 32 digests)."""
    answer = ANSWER_RE.search(prompt)
    criterion = CRITERION_RE.search(prompt)
    if not answer or not criterion:
        return "I cannot find the answer and the criterion in this prompt."
    digest = hashlib.sha256((criterion.group(1) + "\x00" + answer.group(1)).encode()).digest()
    if digest[1] % 32 == 0:
        return "This is hard to say without more context."
    return json.dumps({"explanation": "rule judge", "criteria_met": digest[0] % 2 == 0})


class _Handler(BaseHTTPRequestHandler):
    requests_seen = 0
    verdict = staticmethod(rule_verdict)

    def do_POST(self):  # noqa: N802 (http.server naming)
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions" or "messages" not in body:
            self.send_error(404, "only /v1/chat/completions is served")
            return
        type(self).requests_seen += 1
        content = type(self).verdict(body["messages"][-1]["content"])
        reply = {"id": f"chatcmpl-{type(self).requests_seen}", "object": "chat.completion",
                 "created": int(time.time()), "model": body.get("model", "rule-judge"),
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


class JudgeServer:
    """Start the rule judge on an ephemeral 127.0.0.1 port; ``spec`` is the ``openai:`` SPEC to reach it.
    ``verdict(prompt) -> reply text`` replaces the default hash rule (e.g. a judge with a learnable preference)."""

    def __init__(self, verdict=rule_verdict):
        handler = type("Handler", (_Handler,), {"requests_seen": 0, "verdict": staticmethod(verdict)})
        self.handler = handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def spec(self) -> str:
        return f"openai:http://127.0.0.1:{self.httpd.server_address[1]}/v1#rule-judge"

    @property
    def requests_seen(self) -> int:
        return self.handler.requests_seen

    def __enter__(self) -> JudgeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def pubmedqa_records(data_root: Path, n: int):
    """The first ``n`` PubMedQA PQA-L items as MCQ records (yes/no/maybe; target = the long answer)."""
    from clinforge.data.records import Record

    raw = json.loads((data_root / "pubmedqa" / "data" / "ori_pqal.json").read_text(encoding="utf-8"))
    out = []
    for pmid, item in list(raw.items())[:n]:
        out.append(Record(id=pmid, kind="mcq", source="pubmedqa", question=item["QUESTION"],
                          choices=["yes", "no", "maybe"], answer="ABC"[["yes", "no", "maybe"].index(
                              item["final_decision"])], context="\n".join(item["CONTEXTS"]),
                          target=item["LONG_ANSWER"]))
    return out
