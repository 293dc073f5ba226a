"""Per-client rate limits for what attackers hammer: sign-ups and failed sign-ins.

Counters live in this process (fixed windows), which is exact for the embedded server; with
several web processes each keeps its own, so the effective limit multiplies by their number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import Request

from roost.domain.errors import RateLimited
from roost.domain.models import Account
from roost.web.auth import roost_of


@dataclass
class Window:
    limit: int
    seconds: float
    _hits: dict[str, tuple[float, int]] = field(default_factory=dict)

    def _current(self, key: str, now: float) -> tuple[float, int]:
        started, count = self._hits.get(key, (now, 0))
        if now - started >= self.seconds:
            started, count = now, 0
        return started, count

    def check(self, key: str) -> None:
        """Refuse with 429 if ``key`` has used up its window."""
        now = time.monotonic()
        _, count = self._current(key, now)
        if count >= self.limit:
            raise RateLimited("Too many requests")
        if len(self._hits) > 100_000:  # forget stale keys now and then
            self._hits = {k: v for k, v in self._hits.items() if now - v[0] < self.seconds}

    def hit(self, key: str) -> None:
        now = time.monotonic()
        started, count = self._current(key, now)
        self._hits[key] = (started, count + 1)

    def take(self, key: str) -> None:
        """Check and count one use."""
        self.check(key)
        self.hit(key)


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def sign_in(request: Request, login: str, password: str) -> Account | None:
    """Check a login and password, refusing with 429 after too many failures for this client
    and login (so one attacker cannot lock the account out for everyone)."""
    window: Window = request.app.state.failed_logins
    key = f"{client_key(request)}|{login.strip().lower()}"
    window.check(key)
    account = await roost_of(request).accounts.authenticate(login, password)
    if account is None:
        window.hit(key)
    return account
