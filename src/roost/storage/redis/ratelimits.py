"""Rate-limit counters in Redis: every web process and server counts against the same limit.

Layout. One string per limit, client and window, ``<prefix>ratelimit:<name>:{<key>}``
(``roost:ratelimit:signups:{203.0.113.7}``), holding the count. A hit is one script: INCR,
then PEXPIRE to the window's length when the key has no expiry yet, i.e. on the window's
first hit; Redis deletes the key when the window ends, and the next hit opens a new one. The
client key in braces is the Redis Cluster hash tag (every command touches one key, so any slot
does; the tag keeps the layout like the other stores'). Keys longer than ``MAX_KEY_CHARS``
(a long login) are stored under their SHA-256, so a client cannot make Redis hold big keys.

Redis down. A rate limit must not turn sign-in or sign-up into an error page, nor hang them:
calls have short timeouts, and when one fails the store logs a warning and counts in this
process instead (``LocalRateWindows``) for ``PAUSE_SECONDS`` before trying Redis again. Limits
then hold per process, as without Redis, rather than not at all; hits counted meanwhile are
not carried over to Redis.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from roost.storage.ratelimits import LocalRateWindows

log = logging.getLogger(__name__)

MAX_KEY_CHARS = 64  # below the length of a hashed key ("sha256:" + 64), so none collide
PAUSE_SECONDS = 5.0  # after a failure, how long to count in-process before trying Redis again

# KEYS[1]: the counter; ARGV[1]: the window in milliseconds. PTTL is -1 for a key without
# expiry: the one INCR just created (or, should one ever lose its expiry, an old one).
_HIT = """
local count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
"""


class RedisRateWindows:
    """``RateWindows`` in Redis, counting in-process while Redis is unreachable."""

    def __init__(self, client: redis.Redis | RedisCluster, *, name: str, seconds: float,
                 prefix: str = "roost:", pause_seconds: float = PAUSE_SECONDS) -> None:
        self.client = client
        self.name = name
        self.seconds = seconds
        self.prefix = prefix
        self.pause_seconds = pause_seconds
        self._hit = client.register_script(_HIT)
        self._fallback = LocalRateWindows(seconds)
        self._down_until = 0.0

    @classmethod
    def from_url(cls, url: str, *, name: str, seconds: float, prefix: str = "roost:",
                 cluster: bool = False) -> RedisRateWindows:
        """Counters on the server at ``url``, or, with ``cluster``, on its Redis Cluster."""
        # Short timeouts: a request waits on these calls, and Redis answers them in well under
        # a millisecond. One retry reconnects a pooled connection Redis has since dropped.
        options: dict[str, Any] = {
            "socket_keepalive": True, "socket_connect_timeout": 1, "socket_timeout": 2,
            "client_name": f"{prefix}ratelimit", "retry": Retry(NoBackoff(), 1)}
        client = (RedisCluster.from_url(url, **options) if cluster
                  else redis.Redis.from_url(url, **options))
        return cls(client, name=name, seconds=seconds, prefix=prefix)

    def key(self, key: str) -> str:
        if len(key) > MAX_KEY_CHARS:
            key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        return f"{self.prefix}ratelimit:{self.name}:{{{key}}}"

    def count(self, key: str) -> int:
        if self._usable():
            try:
                value = self.client.get(self.key(key))
                return int(cast(bytes, value)) if value is not None else 0
            except redis.RedisError as error:
                self._failed(error)
        return self._fallback.count(key)

    def hit(self, key: str) -> int:
        if self._usable():
            try:
                window_ms = max(1, round(self.seconds * 1000))
                return int(cast(int, self._hit(keys=[self.key(key)], args=[window_ms])))
            except redis.RedisError as error:
                self._failed(error)
        return self._fallback.hit(key)

    def close(self) -> None:
        self.client.close()

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: redis.RedisError) -> None:
        self._down_until = time.monotonic() + self.pause_seconds
        log.warning("rate limit %r: Redis failed (%s: %s); counting in this process for %gs",
                    self.name, type(error).__name__, error, self.pause_seconds)
