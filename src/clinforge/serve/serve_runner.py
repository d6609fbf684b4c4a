"""Running the server: checks before anything loads, uvicorn on a bound socket, and the SIGTERM drain.

Drain: the first SIGTERM (or Ctrl-C) answers every new request with 503 ``server_draining`` while requests in
flight, streams included, run to their end; the server exits 0 as soon as none is left. If some are still running
when ``drain_grace_s`` has passed (or a second signal arrives) they are cut and the exit status is 1, so a
supervisor can tell a clean stop from a lossy one. A server whose every model failed to load exits 3.

Example:
    >>> run_server(config_from_flags(model="hf:runs/tiny/model", port=8000))  # doctest: +SKIP
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.core.no_egress import is_loopback
from clinforge.serve.api_keys import KeyStore
from clinforge.serve.serve_config import ServeSettings

EXIT_GRACE_EXCEEDED = 1
EXIT_NO_MODEL = 3




def check_exposure(host: str, keys: KeyStore, api_key_env: str | None) -> None:
    """Refuse to listen beyond loopback without API keys: an open model server on a hospital network is a leak.

    Example:
        >>> check_exposure("0.0.0.0", KeyStore([]), None)
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: host: refusing to listen on 0.0.0.0 without API keys; set --api-key-env VAR (keys in $VAR, comma-separated) or listen on 127.0.0.1
    """
    if len(keys) or is_loopback(host):
        return
    where = f"${api_key_env} is empty or unset" if api_key_env else "set --api-key-env VAR (keys in $VAR, comma-separated)"
    raise ConfigError(f"refusing to listen on {host} without API keys; {where} or listen on 127.0.0.1", key="host")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: the OS chooses; read it back from the socket)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})", key="port") from None
    sock.listen(2048)  # before uvicorn starts: a client that read the address waits in the backlog
    return sock


def _draining_server_class() -> type:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn, except that the first stop signal drains (see the module docstring)."""

        def __init__(self, config: Any, state: Any, grace: float):
            super().__init__(config)
            self.state, self.grace = state, grace
            self.drain_started: float | None = None
            self.status = 0

        def handle_exit(self, sig: int, frame: Any) -> None:
            # not recorded in _captured_signals: uvicorn would re-raise it after shutdown and turn a clean drain
            # into a death by signal
            if self.drain_started is None:
                self.drain_started = time.monotonic()
                self.state.draining = True
                self.state.metrics.draining.set(1)
                print(f"clinforge serve: {signal.Signals(sig).name}: refusing new requests, finishing "
                      f"{max(self.state.in_flight, 0)} in flight (grace {self.grace:g} s)", file=sys.stderr,
                      flush=True)
                return
            if self.state.in_flight:
                self.status = EXIT_GRACE_EXCEEDED
            self.should_exit = True

        async def on_tick(self, counter: int) -> bool:
            if self.drain_started is not None and not self.should_exit:
                if self.state.in_flight <= 0:
                    self.should_exit = True
                elif time.monotonic() - self.drain_started > self.grace:
                    print(f"clinforge serve: grace period over with {self.state.in_flight} request(s) still "
                          "running; cutting them", file=sys.stderr, flush=True)
                    self.status = EXIT_GRACE_EXCEEDED
                    self.should_exit = True
            statuses = [e.status for e in self.state.models.values()]
            if statuses and all(s == "failed" for s in statuses) and not self.should_exit:
                print("clinforge serve: no model could be loaded; stopping", file=sys.stderr, flush=True)
                self.status = EXIT_NO_MODEL
                self.should_exit = True
            return await super().on_tick(counter)

    return DrainingServer


def run_server(settings: ServeSettings, *, log_level: str = "warning") -> int:
    """Serve until stopped; returns the exit status (0 after a clean drain, see the module docstring)."""
    keys = KeyStore.from_env(settings.api_key_env)
    check_exposure(settings.host, keys, settings.api_key_env)
    if not is_loopback(settings.host):
        print(f"clinforge serve: warning: listening on {settings.host}, reachable from other machines; put it behind "
              "HTTPS (a reverse proxy): keys and answers travel in clear otherwise", file=sys.stderr, flush=True)
    if settings.no_egress:
        from clinforge.core.no_egress import start_no_egress

        # before any model or KB loads: a hub id or a stray download fails closed, naming the host
        report = start_no_egress(list(settings.egress_allow))
        print(f"clinforge serve: no-egress on, self-test {'passed' if report.get('ok') else 'FAILED'} "
              f"({', '.join(f'{k}: {v}' for k, v in report.get('checks', {}).items())})", file=sys.stderr, flush=True)
    import uvicorn

    from clinforge.serve.serve_app import create_app

    app = create_app(settings, keys=keys)
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    # the access log stays off: paths are harmless, but one log line per request is noise beside the audit log
    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=2,
                            proxy_headers=False, server_header=False, lifespan="on")
    server = _draining_server_class()(config, app.state.serve, settings.drain_grace_s)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    names = ", ".join(m.name for m in settings.models)
    print(f"clinforge serve: listening on http://{shown}:{port}/v1 (models: {names}; auth: "
          f"{'on, ' + str(len(keys)) + ' key(s)' if len(keys) else 'off, loopback only'})", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    print(f"clinforge serve: stopped ({'clean drain' if server.status == 0 else 'exit ' + str(server.status)})",
          flush=True)
    return server.status
