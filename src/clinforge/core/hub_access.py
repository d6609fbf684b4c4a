"""Hugging Face hub ids on a machine that may have no route to the hub.

transformers and huggingface_hub retry an unreachable hub with back-off (about 50 s) before they fall back to the
local cache or fail with a message about their own settings. ``hub_or_cached`` decides first: when the hub answers,
an id stays an id; when it does not (no route out, or ``HF_HUB_OFFLINE=1``), the id becomes its snapshot folder in
the local Hugging Face cache (``HF_HUB_CACHE``), or an ``OfflineError`` that names it and says what to do.
"""

from __future__ import annotations

import os

from clinforge.core.errors import OfflineError

_REACHABLE: dict[str, bool] = {}


def hub_endpoint() -> str:
    """The hub the libraries would ask (``HF_ENDPOINT``, default https://huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``hub_endpoint()`` opens within ``timeout`` seconds, name look-up included;
    False under ``HF_HUB_OFFLINE=1``. Probed once per process and endpoint.

    The look-up runs in a daemon thread: on an air-gapped network whose DNS server does not answer, the system
    resolver can block for tens of seconds, which a socket timeout does not cover.

    Example:
        >>> # hub_reachable()  -> False on an air-gapped machine, in about ``timeout`` seconds at most
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = hub_endpoint()
    if endpoint not in _REACHABLE:
        _REACHABLE[endpoint] = _connects(endpoint, timeout)
    return _REACHABLE[endpoint]


def _connects(endpoint: str, timeout: float) -> bool:
    import socket
    import threading
    import time
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    found: list = []

    def look_up() -> None:
        try:
            found.append(socket.getaddrinfo(url.hostname or "", port, type=socket.SOCK_STREAM))
        except OSError:
            found.append([])

    start = time.monotonic()
    thread = threading.Thread(target=look_up, name="clinforge-hub-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if not found or not found[0]:
        return False  # no answer in time, or no address
    for family, kind, proto, _, address in found[0]:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            return False
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(left)
                sock.connect(address)
                return True
        except OSError:
            continue
    return False


def looks_like_repo_id(ref: str) -> bool:
    """``name`` or ``org/name``: what the hub could resolve (a longer or relative path is not).

    Example:
        >>> looks_like_repo_id("HuggingFaceTB/SmolLM2-135M-Instruct"), looks_like_repo_id("./runs/model")
        (True, False)
    """
    parts = ref.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not ref.startswith((".", "~")) and ":" not in ref


def hub_or_cached(ref: str, *, also: str = "") -> str:
    """``ref`` unchanged when it is no hub id or the hub answers; else its cached snapshot folder, or an
    OfflineError at once. ``also``: what else ``ref`` was tried as, for the message.

    Example:
        >>> hub_or_cached("runs/a/b/c")  # no hub id: unchanged, nothing probed
        'runs/a/b/c'
    """
    if os.path.exists(ref) or not looks_like_repo_id(ref) or hub_reachable():
        return ref
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(ref, local_files_only=True)
    except Exception as exc:  # LocalEntryNotFoundError, or an id the hub client refuses as malformed
        tried = f", {also}" if also else ""
        raise OfflineError(
            f"{ref!r} is not a local folder{tried} and not in the Hugging Face cache, and the hub ({hub_endpoint()}) "
            "cannot be reached from here; give a local folder, or fetch it where there is a network "
            "(hf download ...) and copy the cache or the folder here") from exc
