"""Fixed-window hit counters behind the per-client rate limits (``web/ratelimit.py``).

A key's window opens at its first hit and lasts ``seconds``; its count then starts again
from 0. The in-process implementation is exact for one process; with ``ROOST_REDIS_URL`` the
counters live in Redis (``storage/redis/ratelimits.py``), shared by every web process and
server, so running N of them does not give a client N times the limit.

Calls may block on the network (Redis): async code runs them in a thread.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from roost.settings import Settings

PRUNE_ABOVE = 100_000  # keys held before stale ones are forgotten


class RateWindows(Protocol):
    """Hit counts per key in fixed windows of ``seconds``."""

    seconds: float

    def count(self, key: str) -> int:
        """Hits of ``key`` in its current window (0 when it has none open)."""
        ...

    def hit(self, key: str) -> int:
        """Counts one hit of ``key``; returns its count in the window, this hit included."""
        ...

    def close(self) -> None: ...


class LocalRateWindows:
    """``RateWindows`` in this process's memory (the embedded server)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._hits: dict[str, tuple[float, int]] = {}  # key: (window start, count)
        self._lock = threading.Lock()  # callers run in worker threads
        self._prune_above = PRUNE_ABOVE

    def _current(self, key: str, now: float) -> tuple[float, int]:
        started, count = self._hits.get(key, (now, 0))
        if now - started >= self.seconds:
            started, count = now, 0
        return started, count

    def count(self, key: str) -> int:
        with self._lock:
            return self._current(key, time.monotonic())[1]

    def hit(self, key: str) -> int:
        now = time.monotonic()
        with self._lock:
            started, count = self._current(key, now)
            self._hits[key] = (started, count + 1)
            if len(self._hits) > self._prune_above:
                self._prune(now)
            return count + 1

    def _prune(self, now: float) -> None:
        """Forgets the keys whose window has passed. When most keys are still live, the next
        prune waits until they double, so a flood of fresh keys does not prune on every hit."""
        self._hits = {k: v for k, v in self._hits.items() if now - v[0] < self.seconds}
        self._prune_above = max(PRUNE_ABOVE, 2 * len(self._hits))

    def close(self) -> None:
        """Nothing to release."""


def rate_windows_for(settings: Settings, name: str, seconds: float) -> RateWindows:
    """The counters of the limit ``name`` (part of the Redis keys): in-process, or in Redis
    with ``ROOST_REDIS_URL`` so that every web process counts against the same limit."""
    if settings.redis_url:
        from roost.storage.redis.ratelimits import RedisRateWindows

        return RedisRateWindows.from_url(settings.redis_url, name=name, seconds=seconds,
                                         prefix=settings.redis_prefix,
                                         cluster=settings.redis_cluster)
    return LocalRateWindows(seconds)
