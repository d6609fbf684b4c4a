"""``clinforge.core.hub_access``: deciding, before transformers does, whether a hub id can be fetched: a real
listening loopback port, a real closed one, and a resolver that hangs (the one part simulated: an air-gapped DNS
server that does not answer cannot be had here)."""

from __future__ import annotations

import socket
import time

import pytest

from clinforge.core import hub_access
from clinforge.core.errors import OfflineError


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(hub_access, "_REACHABLE", {})
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_a_listening_endpoint_is_reachable_and_a_closed_one_is_not(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub_access.hub_reachable()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}/")
    assert not hub_access.hub_reachable()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user's own switch wins without a probe
    monkeypatch.setattr(hub_access, "_REACHABLE", {})
    assert not hub_access.hub_reachable() and hub_access._REACHABLE == {}


def test_a_resolver_that_hangs_counts_as_unreachable_within_the_timeout(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(30)
        raise OSError("no answer")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    start = time.monotonic()
    assert not hub_access.hub_reachable(timeout=0.5)
    assert time.monotonic() - start < 5  # not the resolver's 30 s
    with pytest.raises(OfflineError, match=r"'org/model' is not a local folder and not in the Hugging Face cache"):
        hub_access.hub_or_cached("org/model")
    assert hub_access.hub_or_cached("runs/a/b") == "runs/a/b"  # no hub id: nothing asked
