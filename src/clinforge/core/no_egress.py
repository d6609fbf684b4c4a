"""No-egress mode: nothing this process does may reach another machine, except hosts you allow.

``enable_no_egress(allow)`` (idempotent) does three things, so that a model, a knowledge base or a server runs
with a guarantee instead of a hope:

1. sets ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE`` and ``HF_DATASETS_OFFLINE`` (and the already-imported
   huggingface_hub's constant), so Hugging Face libraries do not even try the hub;
2. makes ``refuse_hub_id`` (which ``models/`` calls before loading anything) refuse a model reference that is not a
   local path, before any DNS look-up, with a message naming it;
3. guards the socket layer: ``socket.getaddrinfo`` (DNS), ``socket.create_connection``, ``socket.socket.connect``,
   ``connect_ex``, ``sendto`` and ``sendmsg`` allow loopback (127.0.0.0/8, ::1, ``localhost``), Unix sockets and the
   allow-list only (host names, IP addresses or networks such as ``10.2.0.0/16``; the addresses an allowed name
   resolves to become allowed). Anything else raises ``EgressBlocked`` naming the host, before the system call, and
   is recorded (``egress_attempts()``). It fails closed: an address it cannot parse is refused.

``self_test()`` proves the guard is live at start-up: a DNS look-up of a public name and a connect to a
non-loopback address (TEST-NET-1, never routed) must both be refused, and a loopback connection must work.

Limits, said plainly: the guard covers Python code in this process (http clients, huggingface_hub, asyncio,
urllib, psycopg's Python side). Native code that opens its own sockets (a C library calling ``connect()``
directly) and child processes are not covered; clinforge child processes inherit ``CLINFORGE_NO_EGRESS=1`` and
re-enable the guard. For a guarantee enforced by the kernel, run inside a network namespace with loopback only
(``unshare -n``) or a container with ``--network none``; the tests do both where they can.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Iterable
from typing import Any

from clinforge.core.errors import ClinforgeError

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
ENV_FLAG = "CLINFORGE_NO_EGRESS"  # set while enabled, so clinforge child processes enable it too
SELF_TEST_HOST = "192.0.2.1"  # TEST-NET-1 (RFC 5737): documentation-only, never routed
SELF_TEST_NAME = "huggingface.co"

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class EgressBlocked(ClinforgeError):
    """A connection or DNS look-up to a host outside loopback and the allow-list, refused by no-egress mode.

    Example:
        >>> str(EgressBlocked("example.org", port=443))
        'no-egress mode: refused a connection to example.org:443 (only loopback and the allow-list are allowed)'
    """

    def __init__(self, host: str, *, port: int | None = None, what: str = "a connection to",
                 message: str | None = None):
        self.host, self.port = host, port
        where = host if port is None else f"{host}:{port}"
        super().__init__(message or f"no-egress mode: refused {what} {where} (only loopback and the allow-list are "
                                    "allowed)")


class _Guard:
    """State of the guard: the originals it replaced, the allow-list, what it refused."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enabled = False
        self.allow_names: set[str] = set()
        self.allow_nets: list[Any] = []
        self.allowed_ips: set[str] = set()
        self.attempts: list[str] = []
        self.dns_lookups: list[str] = []
        self.originals: dict[str, Any] = {}
        self.saved_env: dict[str, str | None] = {}
        self.quiet = 0  # > 0 while the self-test probes (its refusals are expected, not attempts)


_GUARD = _Guard()


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (servers refuse to listen elsewhere without API keys).

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
        (True, True, True, False)
    """
    return host.strip().rstrip(".").lower() in _LOOPBACK_NAMES or _is_loopback_ip(host)


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _host_allowed(host: str) -> bool:
    name = host.strip().rstrip(".").lower()
    if not name:
        return False
    if name in _LOOPBACK_NAMES or _is_loopback_ip(name):
        return True
    if name in _GUARD.allow_names or name in _GUARD.allowed_ips:
        return True
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in net for net in _GUARD.allow_nets)


def _record(target: str) -> None:
    if not _GUARD.quiet:
        with _GUARD.lock:
            _GUARD.attempts.append(target)


def _check_address(address: Any, family: int | None) -> None:
    """Raise EgressBlocked unless ``address`` (a socket address) is loopback, a Unix path or allowed."""
    if family == getattr(socket, "AF_UNIX", None) or isinstance(address, (str, bytes)):
        return  # a Unix socket path never leaves the machine
    if not isinstance(address, tuple) or not address:
        _record(repr(address))
        raise EgressBlocked(repr(address))  # fail closed: an address we cannot read is refused
    host, port = str(address[0]), address[1] if len(address) > 1 else None
    if not _host_allowed(host):
        _record(f"{host}:{port}")
        raise EgressBlocked(host, port=port)


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    original = _GUARD.originals["getaddrinfo"]
    if host is None or host in ("", b""):
        return original(host, port, *args, **kwargs)  # passive/any address: a local bind, no look-up
    name = host.decode() if isinstance(host, bytes) else str(host)
    if not _host_allowed(name):
        if not _GUARD.quiet:
            with _GUARD.lock:
                _GUARD.dns_lookups.append(name)
        _record(f"{name}:{port}" if port not in (None, 0, "") else name)
        raise EgressBlocked(name, port=port if isinstance(port, int) and port else None, what="a DNS look-up of")
    infos = original(host, port, *args, **kwargs)
    if name.rstrip(".").lower() in _GUARD.allow_names:
        # the addresses an allowed name resolves to are allowed too (connect() sees only the address)
        with _GUARD.lock:
            _GUARD.allowed_ips.update(str(info[4][0]) for info in infos)
    return infos


def _guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
    host, port = address[0], address[1]
    if not _host_allowed(str(host)):
        _record(f"{host}:{port}")
        raise EgressBlocked(str(host), port=port)
    return _GUARD.originals["create_connection"](address, *args, **kwargs)


def _method(name: str, position: int = 0):
    def guarded(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        if name in ("sendto", "sendmsg"):
            # sendto(data, address) / sendto(data, flags, address); sendmsg(buffers, ancdata, flags, address)
            address = kwargs.get("address", args[-1] if len(args) >= (2 if name == "sendto" else 4) else None)
            if address is not None:
                _check_address(address, self.family)
        else:
            _check_address(args[position] if args else kwargs.get("address"), self.family)
        return _GUARD.originals[name](self, *args, **kwargs)

    guarded.__name__ = name
    return guarded


def _set_offline_variables() -> None:
    for var in OFFLINE_VARIABLES + (ENV_FLAG,):
        _GUARD.saved_env.setdefault(var, os.environ.get(var))
        os.environ[var] = "1"
    import sys

    # huggingface_hub and datasets read these variables once, at import: update the ones already imported
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None and hasattr(datasets_config, "HF_HUB_OFFLINE"):
        datasets_config.HF_HUB_OFFLINE = True


def _install() -> None:
    """Replace the socket entry points with guarded ones (the caller holds the lock)."""
    _GUARD.originals = {"getaddrinfo": socket.getaddrinfo, "create_connection": socket.create_connection,
                        "connect": socket.socket.connect, "connect_ex": socket.socket.connect_ex,
                        "sendto": socket.socket.sendto, "sendmsg": getattr(socket.socket, "sendmsg", None)}
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.create_connection = _guarded_create_connection
    socket.socket.connect = _method("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = _method("connect_ex")  # type: ignore[method-assign]
    socket.socket.sendto = _method("sendto")  # type: ignore[method-assign]
    if _GUARD.originals["sendmsg"] is not None:
        socket.socket.sendmsg = _method("sendmsg")  # type: ignore[method-assign]
    _GUARD.enabled = True


def enable_no_egress(allow: Iterable[str] = ()) -> None:
    """Switch no-egress mode on for this process (calling it again adds to the allow-list).

    ``allow``: host names, IP addresses or networks (``"10.0.0.0/8"``) that may still be reached, e.g. an internal
    vector store or a model server on another machine of the hospital.

    Example:
        >>> enable_no_egress(allow=["10.2.0.0/16"])
        >>> import socket
        >>> socket.getaddrinfo("example.org", 443)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.no_egress.EgressBlocked: no-egress mode: refused a DNS look-up of example.org:443 ...
        >>> disable_no_egress()
    """
    with _GUARD.lock:
        for item in allow:
            item = str(item).strip()
            if not item:
                continue
            try:
                _GUARD.allow_nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                _GUARD.allow_names.add(item.rstrip(".").lower())
        if not _GUARD.enabled:
            _install()
        allowed = sorted(_GUARD.allow_names) + [str(n) for n in _GUARD.allow_nets]
    _set_offline_variables()
    _GUARD.saved_env.setdefault("CLINFORGE_EGRESS_ALLOW", os.environ.get("CLINFORGE_EGRESS_ALLOW"))
    os.environ["CLINFORGE_EGRESS_ALLOW"] = ",".join(allowed)  # clinforge child processes keep the same list


def disable_no_egress() -> None:
    """Restore the socket functions and environment variables (for tests and for embedding clinforge).

    Example:
        >>> disable_no_egress()  # a no-op when the mode is off
        >>> no_egress_enabled()
        False
    """
    with _GUARD.lock:
        if not _GUARD.enabled:
            return
        socket.getaddrinfo = _GUARD.originals["getaddrinfo"]
        socket.create_connection = _GUARD.originals["create_connection"]
        for name in ("connect", "connect_ex", "sendto", "sendmsg"):
            if _GUARD.originals.get(name) is not None:
                setattr(socket.socket, name, _GUARD.originals[name])
        for var, value in _GUARD.saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        _GUARD.saved_env.clear()
        _GUARD.allow_names.clear()
        _GUARD.allow_nets.clear()
        _GUARD.allowed_ips.clear()
        _GUARD.enabled = False


def no_egress_enabled() -> bool:
    """Whether the guard is installed in this process.

    Example:
        >>> no_egress_enabled()
        False
    """
    return _GUARD.enabled


def egress_attempts() -> list[str]:
    """Every refused connection or look-up since the process started (``host:port`` or ``host``), oldest first.

    Example:
        >>> isinstance(egress_attempts(), list)
        True
    """
    with _GUARD.lock:
        return list(_GUARD.attempts)


def dns_lookups() -> list[str]:
    """The non-loopback, non-allowed names whose DNS look-up was attempted (and refused).

    Example:
        >>> isinstance(dns_lookups(), list)
        True
    """
    with _GUARD.lock:
        return list(_GUARD.dns_lookups)


def reset_egress_attempts() -> None:
    """Forget the recorded attempts (a server may report them per request window)."""
    with _GUARD.lock:
        _GUARD.attempts.clear()
        _GUARD.dns_lookups.clear()


def refuse_hub_id(spec: str) -> None:
    """In no-egress mode, refuse a model reference that is not an existing local path (it could only come from the
    Hugging Face hub); outside that mode, do nothing. Raised before anything resolves a name.

    Example:
        >>> enable_no_egress()
        >>> refuse_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.no_egress.EgressBlocked: no-egress mode: refused ... 'HuggingFaceTB/SmolLM2-135M-Instruct' ...
        >>> disable_no_egress()
    """
    if not _GUARD.enabled:
        return
    ref = os.fspath(spec)
    if os.path.exists(ref):
        return
    _record(f"hub:{ref}")
    raise EgressBlocked("huggingface.co", message=(
        f"no-egress mode: refused loading {ref!r} from the Hugging Face hub: it is not a local folder or file, and "
        "the hub is outside this machine. Copy or fetch the model first and give its path (clinforge models fetch "
        "NAME, or a folder saved with save_pretrained)"))


def self_test() -> dict[str, Any]:
    """Prove the guard is live: a public DNS look-up and a non-loopback connect are refused, loopback works.

    Returns a report (``ok``, ``checks``, ``allow``); raises ClinforgeError when a check fails (a guard that
    does not guard must stop the start-up, not be logged and ignored).

    Example:
        >>> enable_no_egress()
        >>> self_test()["ok"]
        True
        >>> disable_no_egress()
    """
    if not _GUARD.enabled:
        raise ClinforgeError("no-egress self-test: the mode is not enabled (call enable_no_egress first)")
    checks: dict[str, str] = {}
    _GUARD.quiet += 1
    try:
        for label, probe in (("dns", lambda: socket.getaddrinfo(SELF_TEST_NAME, 443)),
                             ("connect", lambda: _probe_connect(SELF_TEST_HOST, 9))):
            if SELF_TEST_NAME in _GUARD.allow_names and label == "dns":
                checks[label] = "skipped (allow-listed)"
                continue
            try:
                probe()
            except EgressBlocked:
                checks[label] = "refused"
            else:
                raise ClinforgeError(f"no-egress self-test failed: the {label} probe was not refused")
    finally:
        _GUARD.quiet -= 1
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.create_connection(server.getsockname(), timeout=5)
        client.close()
        checks["loopback"] = "allowed"
    except OSError as exc:
        raise ClinforgeError(f"no-egress self-test failed: a loopback connection did not work ({exc})") from exc
    finally:
        server.close()
    env = {var: os.environ.get(var, "") for var in OFFLINE_VARIABLES}
    if any(v != "1" for v in env.values()):
        raise ClinforgeError(f"no-egress self-test failed: offline variables not set: {env}")
    return {"ok": True, "checks": checks, "offline_variables": env,
            "allow": sorted(_GUARD.allow_names) + [str(n) for n in _GUARD.allow_nets]}


def _probe_connect(host: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(0.5)
        sock.connect((host, port))
    finally:
        sock.close()


def enable_from_environment() -> bool:
    """Enable the mode when ``CLINFORGE_NO_EGRESS=1`` (a parent clinforge process, or the user, asked for it);
    the allow-list comes from ``CLINFORGE_EGRESS_ALLOW`` (comma-separated). Returns whether it is on.

    Example:
        >>> enable_from_environment()  # CLINFORGE_NO_EGRESS unset here
        False
    """
    if os.environ.get(ENV_FLAG, "").strip().lower() not in ("1", "true", "yes"):
        return _GUARD.enabled
    allow = [a for a in os.environ.get("CLINFORGE_EGRESS_ALLOW", "").split(",") if a.strip()]
    enable_no_egress(allow)
    return True


def start_no_egress(allow: Iterable[str] = ()) -> dict[str, Any]:
    """What a command's ``--no-egress`` does: enable the mode, then run the self-test (raising when it fails).

    Example:
        >>> start_no_egress(["10.0.0.0/8"])["checks"]["connect"]
        'refused'
        >>> disable_no_egress()
    """
    enable_no_egress(allow)
    return self_test()
