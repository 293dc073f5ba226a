"""`roost race replay`: the April 2009 race, replayed through a running server's API.

It creates @aplusk and @cnnbrk and enough follower accounts (through the admin API), brings
both to their recorded counts at the start, starts a race, and then runs an accelerated clock:
each tick it issues the real follows that bring both accounts to the recorded curves
(``record2009``), scaled. The race API must then report the recorded winner, lead changes and
crossing order. Where scaling shrinks a reported margin below one follower, the account the
reports say is leading is kept one follower ahead, so no lead change is lost to rounding.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

import httpx

from roost.tools.record2009 import ACCOUNTS, Record, load

EDT = timezone(timedelta(hours=-4), "EDT")
TICK_SECONDS = 0.05
CONCURRENCY = 16
BULK = 500


@dataclass
class Outcome:
    race: dict[str, Any]
    expected_leaders: list[str]
    leaders: list[str]
    expected_order: list[str]
    order: list[str]
    lead_change_times: list[datetime] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.leaders == self.expected_leaders and self.order == self.expected_order


class ReplayError(Exception):
    pass


def _targets(record: Record, t: int, scale: float, current: dict[str, int]) -> dict[str, int]:
    """Follower counts both accounts must have at record time ``t`` (never fewer than now)."""
    a, c = record.counts(t)
    want = {"aplusk": max(current["aplusk"], math.floor(a * scale)),
            "cnnbrk": max(current["cnnbrk"], math.floor(c * scale))}
    leader = record.leader_at(t)
    if leader is not None:
        other = "cnnbrk" if leader == "aplusk" else "aplusk"
        want[leader] = max(want[leader], want[other] + 1)
    return want


class Replay:
    def __init__(self, url: str, token: str, *, speed: float, scale: float, suffix: str = "",
                 out: TextIO = sys.stderr, record: Record | None = None) -> None:
        if speed <= 0 or not 0 < scale <= 1:
            raise ReplayError("speed must be positive and scale in (0, 1]")
        self.url = url.rstrip("/")
        self.token = token
        self.speed = speed
        self.scale = scale
        self.suffix = suffix
        self.out = out
        self.record = record or load()
        self.ids: dict[str, str] = {}
        self.fans: list[str] = []  # follower accounts' tokens
        self.counts = {name: 0 for name in ACCOUNTS}
        self.race_id = ""
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, token: str,
                    **kwargs: Any) -> Any:
        async with self._limit:
            response = await client.request(method, path, headers={
                "Authorization": f"Bearer {token}"}, **kwargs)
        if response.status_code != 200:
            raise ReplayError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    async def _setup(self, client: httpx.AsyncClient) -> None:
        final = self.record.counts(self.record.end)
        needed = math.floor(max(final) * self.scale) + 2
        for name in ACCOUNTS:
            made = await self._call(client, "POST", "/api/v1/roost/admin/accounts", self.token,
                                    json={"usernames": [name + self.suffix]})
            self.ids[name] = made[0]["id"]
        while len(self.fans) < needed:
            batch = await self._call(client, "POST", "/api/v1/roost/admin/accounts", self.token,
                                     json={"prefix": f"fan2009{self.suffix}_",
                                           "count": min(BULK, needed - len(self.fans))})
            self.fans += [a["access_token"] for a in batch]

    async def _follow_up_to(self, client: httpx.AsyncClient, want: dict[str, int]) -> None:
        calls = []
        for name in ACCOUNTS:
            for index in range(self.counts[name], want[name]):
                calls.append(self._call(client, "POST",
                                        f"/api/v1/accounts/{self.ids[name]}/follow",
                                        self.fans[index]))
            self.counts[name] = max(self.counts[name], want[name])
        await asyncio.gather(*calls)

    def _show(self, t: int, final: bool = False) -> None:
        when = datetime.fromtimestamp(t / 1000, EDT).strftime("%a %d %b %H:%M EDT")
        a, c = self.counts["aplusk"], self.counts["cnnbrk"]
        lead = "aplusk" if a > c else "cnnbrk" if c > a else "tied"
        line = f"{when}  @aplusk {a:>9,}  @cnnbrk {c:>9,}  leader: {lead:<7}"
        if self.out.isatty():
            self.out.write("\r" + line + ("\n" if final else ""))
        else:
            self.out.write(line + "\n")
        self.out.flush()

    async def run(self) -> Outcome:
        record = self.record
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            await self._setup(client)
            await self._follow_up_to(client, _targets(record, record.start, self.scale,
                                                      self.counts))
            race = await self._call(client, "POST", "/api/v1/roost/races", self.token, json={
                "account_ids": [self.ids[n] for n in ACCOUNTS],
                "target": round(1_000_000 * self.scale)})
            self.race_id = race["id"]
            began = time.monotonic()
            last_shown = 0.0
            while True:
                elapsed = time.monotonic() - began
                t = min(record.start + int(elapsed * self.speed * 1000), record.end)
                await self._follow_up_to(client, _targets(record, t, self.scale, self.counts))
                if t >= record.end:
                    break
                if elapsed - last_shown >= 0.5:
                    self._show(t)
                    last_shown = elapsed
                await asyncio.sleep(TICK_SECONDS)
            self._show(record.end, final=True)
            race = await self._call(client, "GET", f"/api/v1/roost/races/{self.race_id}",
                                    self.token)
        return self._outcome(race)

    def to_record_clock(self, server_time: str, race: dict[str, Any]) -> datetime:
        """A server timestamp during the replay, on the recorded 2009 clock."""
        started = datetime.fromisoformat(race["created_at"].replace("Z", "+00:00"))
        at = datetime.fromisoformat(server_time.replace("Z", "+00:00"))
        seconds = (at - started).total_seconds() * self.speed
        return datetime.fromtimestamp(self.record.start / 1000, EDT) + timedelta(seconds=seconds)

    def _outcome(self, race: dict[str, Any]) -> Outcome:
        names = {v: k for k, v in self.ids.items()}
        leaders = [names.get(c["leader_id"], c["leader_id"]) for c in race["lead_changes"]]
        crossed = sorted((s for s in race["standings"] if s["reached_at"]),
                         key=lambda s: s["reached_at"])
        expected_leaders: list[str] = []
        for _, who in self.record.leaders:
            if not expected_leaders or expected_leaders[-1] != who:
                expected_leaders.append(who)
        return Outcome(
            race=race,
            expected_leaders=expected_leaders,
            leaders=leaders,
            expected_order=[who for _, who, _ in self.record.crossings],
            order=[names.get(s["account"]["id"], s["account"]["id"]) for s in crossed],
            lead_change_times=[self.to_record_clock(c["at"], race) for c in race["lead_changes"]],
        )
