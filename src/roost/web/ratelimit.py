"""Per-client rate limits for what attackers hammer: sign-ups and failed sign-ins.

Fixed windows, counted by a ``RateWindows`` store (``storage/ratelimits.py``): in this process
for the embedded server; in Redis with ``ROOST_REDIS_URL``, so that every web process (and every
server behind a load balancer) counts against the same limit instead of each granting it anew.
While Redis is unreachable the store counts in-process rather than failing the request.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
from starlette.requests import Request

from roost.domain.errors import RateLimited
from roost.domain.models import Account
from roost.storage.ratelimits import RateWindows
from roost.web.auth import roost_of


@dataclass
class Window:
    """At most ``limit`` uses per key and window of ``counters``."""

    limit: int
    counters: RateWindows

    async def check(self, key: str) -> None:
        """Refuse with 429 if ``key`` has used up its window."""
        # In a thread: the store may wait on Redis (short timeouts, but not zero).
        if await anyio.to_thread.run_sync(self.counters.count, key) >= self.limit:
            raise RateLimited("Too many requests")

    async def hit(self, key: str) -> None:
        await anyio.to_thread.run_sync(self.counters.hit, key)

    async def take(self, key: str) -> None:
        """Count one use, refusing with 429 if it is over the limit. One atomic increment, so
        concurrent requests (in any process) cannot all pass a check before any is counted;
        refused uses count too, which changes nothing as the window's end is fixed."""
        if await anyio.to_thread.run_sync(self.counters.hit, key) > self.limit:
            raise RateLimited("Too many requests")

    def close(self) -> None:
        self.counters.close()


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def sign_in(request: Request, login: str, password: str) -> Account | None:
    """Check a login and password, refusing with 429 after too many failures for this client
    and login (so one attacker cannot lock the account out for everyone)."""
    window: Window = request.app.state.failed_logins
    key = f"{client_key(request)}|{login.strip().lower()}"
    await window.check(key)
    account = await roost_of(request).accounts.authenticate(login, password)
    if account is None:
        await window.hit(key)
    return account
