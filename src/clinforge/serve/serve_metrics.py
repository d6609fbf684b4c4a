"""Prometheus metrics of the server (``/metrics``, text exposition format), through ``prometheus_client``.

Each app gets its own registry, so two servers in one process (tests) never share counters. Labels hold model
names, endpoints, statuses and guard actions only: never key ids or text.

Example:
    >>> m = ServeMetrics()
    >>> m.requests.labels(model="m", endpoint="chat", status="200").inc()
    >>> b"clinforge_requests_total" in m.exposition()
    True
"""

from __future__ import annotations


class ServeMetrics:
    """Counters, histograms and gauges of one server."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("clinforge_requests", "Requests answered", ["model", "endpoint", "status"], registry=r)
        self.tokens = Counter("clinforge_tokens", "Tokens processed", ["model", "kind"], registry=r)
        self.latency = Histogram("clinforge_request_seconds", "Request latency (to the last byte)",
                                 ["model", "endpoint"], registry=r,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
        self.first_token = Histogram("clinforge_first_token_seconds", "Time to the first streamed token", ["model"],
                                     registry=r, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
        self.in_flight = Gauge("clinforge_in_flight", "Requests holding a generation slot", ["model"], registry=r)
        self.queued = Gauge("clinforge_queued", "Requests waiting for a generation slot", ["model"], registry=r)
        self.cancelled = Counter("clinforge_cancelled", "Generations cancelled because the client went away",
                                 ["model"], registry=r)
        self.guard_events = Counter("clinforge_guard_events", "Guard decisions that changed a response",
                                    ["guard", "action"], registry=r)
        self.draining = Gauge("clinforge_draining", "1 while the server drains after SIGTERM", registry=r)
        self.no_egress = Gauge("clinforge_no_egress", "1 when no-egress mode guards this process", registry=r)
        self.egress_blocked = Gauge("clinforge_egress_blocked", "Outbound connections or DNS look-ups refused since "
                                    "start (no-egress mode)", registry=r)

    def exposition(self) -> bytes:
        """The text exposition format of every metric."""
        from prometheus_client import generate_latest

        from clinforge.core.no_egress import egress_attempts, no_egress_enabled

        # read at scrape time: the guard lives in core and counts for the whole process
        self.no_egress.set(1 if no_egress_enabled() else 0)
        self.egress_blocked.set(len(egress_attempts()))
        return generate_latest(self.registry)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
