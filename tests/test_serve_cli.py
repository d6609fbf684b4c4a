"""``clinforge serve`` as a user runs it, in a subprocess: config errors before any model loads, refusal to listen
beyond loopback without keys, and the SIGTERM drain (new requests 503, in-flight streams finish, exit 0; exit 1
when the grace period runs out)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from _serve_support import sse_events

ROOT = Path(__file__).resolve().parents[1]
# the real CLI entry point, with the replay test backend imported first (as a plugin package would register one)
LAUNCH = ("import sys; sys.path.insert(0, {tests!r}); import _serve_support; from clinforge.cli.main import main; "
          "sys.argv = ['clinforge'] + sys.argv[1:]; main()")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), CLINFORGE_NO_PROGRESS="1", TOKENIZERS_PARALLELISM="false")


def _start(args: list[str], *, replay: bool = False) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-c", LAUNCH.format(tests=str(ROOT / "tests")), *args] if replay else \
        [sys.executable, "-m", "clinforge", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    line = proc.stdout.readline()
    m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no listening line: {line!r} {proc.stderr.read()[-2000:]}")
    url = m.group(1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if httpx.get(url + "/health", timeout=10).status_code == 200:
            return proc, url
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the model did not load")


def _config(tmp_path: Path, **top) -> Path:
    answer = tmp_path / "answer.txt"
    answer.write_text("y" * 2000, encoding="utf-8")
    config = {"port": 0, "audit_log": str(tmp_path / "audit.jsonl"),
              "models": [{"name": "replay", "spec": f"replay:{answer}", "max_tokens": 2000,
                          "backend_options": {"piece": 1, "delay": 0.005}}], **top}
    path = tmp_path / "serve.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def test_sigterm_drains_in_flight_streams_and_exits_0(tmp_path):
    proc, url = _start(["serve", str(_config(tmp_path))], replay=True)
    body = {"model": "replay", "prompt": "x", "stream": True, "max_tokens": 600}  # ~3 s of deltas
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as resp:
        lines = resp.iter_lines()
        first = next(lines)
        assert first.startswith("data:")
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        late = httpx.post(url + "/v1/completions", json={"model": "replay", "prompt": "x"}, timeout=30)
        assert late.status_code == 503 and late.json()["error"]["code"] == "server_draining"
        events = sse_events(lines)
    assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "length"
    text = json.loads(first[5:])["choices"][0]["text"] + "".join(e["choices"][0]["text"] for e in events[:-1])
    assert text == "y" * 600  # nothing lost
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert "clean drain" in proc.stdout.read()


def test_drain_past_the_grace_period_exits_nonzero(tmp_path):
    proc, url = _start(["serve", str(_config(tmp_path, drain_grace_s=0.5))], replay=True)
    body = {"model": "replay", "prompt": "x", "stream": True, "max_tokens": 2000}  # ~10 s of deltas
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as resp:
        lines = resp.iter_lines()
        next(lines)
        proc.send_signal(signal.SIGTERM)
        try:
            events = sse_events(lines)
        except httpx.HTTPError:
            events = []
    assert "[DONE]" not in events
    assert proc.wait(timeout=60) == 1


def test_real_cli_serves_the_tiny_model_and_stops_cleanly(tiny_llama):
    proc, url = _start(["serve", "--model", f"hf:{tiny_llama}", "--served-name", "tiny", "--port", "0"])
    r = httpx.post(url + "/v1/chat/completions", timeout=60,
                   json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clinforge", *args], capture_output=True, text=True, env=_env(),
                          timeout=120)


def test_config_errors_name_file_line_and_closest_key_before_torch(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: 0\nmodels:\n  - name: m\n    spec: hf:x\n    slts: 2\n", encoding="utf-8")
    proc = _cli("serve", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:5: models.0.slts: unknown key (did you mean 'slots'?)" in proc.stderr
    code = ("import sys; from clinforge.serve.serve_config import config_from_flags\n"
            f"try:\n    config_from_flags({str(bad)!r})\nexcept Exception as e:\n    print(type(e).__name__)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env()).stdout.split()
    assert out == ["ConfigError", "False"]  # validated before torch is imported
    proc = _cli("serve", "--model", "hf:x", "--guards", "phi,crisiss")
    assert proc.returncode == 2 and "did you mean 'crisis'" in proc.stderr


def test_a_negative_max_queue_is_refused_naming_the_field():
    proc = _cli("serve", "--model", "hf:x", "--max-queue", "-1")
    assert proc.returncode == 2 and "models.0.max_queue" in proc.stderr, proc.stderr


def test_refuses_a_public_address_without_keys():
    proc = _cli("serve", "--model", "hf:x", "--host", "0.0.0.0", "--port", "0")
    assert proc.returncode == 2 and "refusing to listen on 0.0.0.0 without API keys" in proc.stderr


@pytest.mark.parametrize("flag", ["--cove", "--guards", "--max-queue"])
def test_flags_override_the_config_file(tmp_path, flag):
    from clinforge.serve.serve_config import config_from_flags

    path = _config(tmp_path)
    if flag == "--cove":
        assert config_from_flags(path, cove="joint").models[0].cove.variant == "joint"
    elif flag == "--max-queue":
        cfg = config_from_flags(path, max_queue=3, slots=2)
        assert (cfg.models[0].max_queue, cfg.models[0].slots) == (3, 2)
    else:
        cfg = config_from_flags(path, guards="phi", port=9001)
        assert cfg.models[0].guards == ["phi"] and cfg.port == 9001


def test_no_egress_server_makes_no_outbound_attempt_for_full_requests(tiny_llama, tmp_path):
    proc, url = _start(["serve", "--model", f"hf:{tiny_llama}", "--served-name", "tiny", "--port", "0",
                        "--no-egress", "--guards", "phi,crisis", "--audit-log", str(tmp_path / "audit.jsonl")])
    try:
        body = {"model": "tiny", "messages": [{"role": "user", "content": "Call Dr. Graves on 617-555-0134."}],
                "max_tokens": 8}
        assert httpx.post(url + "/v1/chat/completions", json=body, timeout=60).status_code == 200
        with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}, timeout=60) as resp:
            assert sse_events(resp.iter_lines())[-1] == "[DONE]"
        metrics = {line.split()[0]: float(line.split()[1]) for line in
                   httpx.get(url + "/metrics", timeout=30).text.splitlines() if line and not line.startswith("#")}
        assert metrics["clinforge_no_egress"] == 1.0
        assert metrics["clinforge_egress_blocked"] == 0.0  # nothing tried to leave the machine
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert "self-test passed" in proc.stderr.read()
