"""API keys and per-key rate limits.

Keys come from an environment variable (comma-separated) and are kept only as SHA-256 digests; a presented key is
hashed and compared with every stored digest by ``hmac.compare_digest`` (constant time, no early exit), so neither
the keys nor their prefixes can be recovered from memory dumps or timing. The audit log names a key by the first 12
hex digits of its digest.

Example:
    >>> import os
    >>> os.environ["DOC_KEYS"] = "k-alpha, k-beta"
    >>> store = KeyStore.from_env("DOC_KEYS")
    >>> len(store), store.check("k-beta") == key_id("k-beta"), store.check("nope")
    (2, True, None)
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import threading
import time


def key_id(key: str) -> str:
    """The first 12 hex digits of the key's SHA-256: what logs and metrics may show."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


class KeyStore:
    """Hashed API keys; empty means the server runs without authentication (loopback only)."""

    def __init__(self, keys: list[str]):
        self._digests = [hashlib.sha256(k.encode("utf-8")).digest() for k in keys if k]

    @classmethod
    def from_env(cls, var: str | None) -> KeyStore:
        """Keys from ``$var`` (comma-separated, blanks ignored); no variable or an empty one gives no keys."""
        raw = os.environ.get(var, "") if var else ""
        return cls([k.strip() for k in raw.split(",") if k.strip()])

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, presented: str) -> str | None:
        """The key's id when ``presented`` is a valid key, else None (every digest is compared)."""
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        ok = False
        for stored in self._digests:
            ok |= hmac.compare_digest(stored, digest)
        return key_id(presented) if ok else None


class RateLimiter:
    """A token bucket per key: ``per_minute`` tokens refill per minute up to ``burst``; each request takes one.

    Example:
        >>> limiter = RateLimiter(per_minute=60, burst=2)
        >>> [limiter.take("k", now=0.0) for _ in range(3)]
        [0.0, 0.0, 1.0]
    """

    def __init__(self, per_minute: float, burst: int):
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token for ``key``: 0.0 when allowed, else the seconds until one is available (Retry-After)."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up, at least 1 (HTTP's Retry-After has no fractions).

    Example:
        >>> retry_after_header(0.2), retry_after_header(3.01)
        ('1', '4')
    """
    return str(max(1, math.ceil(seconds)))
