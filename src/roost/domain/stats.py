"""Follower statistics: the exact count at any instant, series, gains and losses, velocity,
the Nth follower, and milestones.

History comes from the follow event log (one row per follow or unfollow that changed the
graph). A background step folds complete minutes into per-account rollups; any instant is then
one rollup plus the events of one partial minute, so a lookup costs two indexed queries however
long the history is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from roost.clock import now_ms
from roost.domain.errors import InvalidInput, NotFound
from roost.domain.events import MilestoneReached
from roost.domain.models import Account, Milestone, Snapshot
from roost.domain.notifications import notify
from roost.storage.database import Database, Tx, emit
from roost.storage.stores import Stores

MINUTE_MS = 60_000
STEPS = {"minute": MINUTE_MS, "hour": 60 * MINUTE_MS, "day": 24 * 60 * MINUTE_MS}
WINDOWS = {"15m": 15 * MINUTE_MS, "1h": 60 * MINUTE_MS, "1d": 24 * 60 * MINUTE_MS}
VELOCITY_WINDOW_MS = 15 * MINUTE_MS
# Events may commit a moment after the minute they are stamped with has ended; the rollup
# stays this far behind the clock so it never folds a minute that can still change.
ROLLUP_LAG_MS = 5_000
ROLLUP_BATCH = 100_000
MILESTONE_NOTIFICATION = "roost.milestone"


class MilestoneRule:
    """Which follower counts are milestones: a fixed list, then every ``every`` above it."""

    def __init__(self, fixed: Sequence[int], every: int) -> None:
        self.fixed = frozenset(fixed)
        self.top = max(fixed, default=0)
        self.every = every

    def __contains__(self, count: int) -> bool:
        if count in self.fixed:
            return True
        return self.every > 0 and count > self.top and count % self.every == 0

    def record_if_reached(self, stores: Stores, tx: Tx, account_id: int, followers: int,
                          follower_id: int, at: int) -> Milestone | None:
        """Call after a follow raised the count to ``followers``: records the milestone the
        first time only (an unfollow and refollow across it does not repeat it)."""
        if followers not in self:
            return None
        milestone = Milestone(account_id, followers, at, follower_id)
        if not stores.history.record_milestone(tx, milestone):
            return None
        notify(stores, tx, account_id, MILESTONE_NOTIFICATION, follower_id, detail=followers)
        emit(tx, MilestoneReached(account_id, followers, follower_id, at))
        return milestone


def parse_milestones(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.replace(" ", "").split(",") if part})
    except ValueError:
        raise ValueError(f"milestones must be comma-separated integers, not {text!r}") from None
    if any(v <= 0 for v in values):
        raise ValueError("milestones must be positive")
    return values


@dataclass(frozen=True)
class FollowerStats:
    followers: int
    gained: dict[str, int]
    lost: dict[str, int]
    velocity_per_hour: float


class StatsService:
    def __init__(self, db: Database, stores: Stores, *, max_points: int) -> None:
        self.db = db
        self.stores = stores
        self.max_points = max_points

    def _account(self, tx: Tx, account_id: int) -> Account:
        found = self.stores.accounts.by_ids(tx, [account_id]).get(account_id)
        if found is None:
            raise NotFound()
        return found

    async def count_at(self, account_id: int, at_ms: int) -> int:
        def read(tx: Tx) -> int:
            self._account(tx, account_id)
            return self.stores.history.snapshot(tx, account_id, at_ms).followers

        return await self.db.read(read)

    async def series(self, account_id: int, start_ms: int, end_ms: int,
                     step: str) -> list[tuple[int, int]]:
        """(instant, followers) from ``start_ms`` to ``end_ms`` every ``step``."""
        if step not in STEPS:
            raise InvalidInput("step must be minute, hour or day")
        if end_ms < start_ms:
            raise InvalidInput("end must not be before start")
        points = (end_ms - start_ms) // STEPS[step] + 1
        if points > self.max_points:
            raise InvalidInput(f"That range has {points} points at this step; the most is "
                               f"{self.max_points}. Use a larger step or a shorter range.")
        instants = [start_ms + i * STEPS[step] for i in range(points)]

        def read(tx: Tx) -> list[tuple[int, int]]:
            self._account(tx, account_id)
            return [(t, self.stores.history.snapshot(tx, account_id, t).followers)
                    for t in instants]

        return await self.db.read(read)

    def stats_in(self, tx: Tx, account_id: int, now: int) -> FollowerStats:
        current = self.stores.history.snapshot(tx, account_id, now)
        gained: dict[str, int] = {}
        lost: dict[str, int] = {}
        earlier: dict[str, Snapshot] = {}
        for name, window in WINDOWS.items():
            earlier[name] = self.stores.history.snapshot(tx, account_id, now - window)
            gained[name] = current.gained - earlier[name].gained
            lost[name] = current.lost - earlier[name].lost
        net_15m = gained["15m"] - lost["15m"]
        velocity = net_15m * (60 * MINUTE_MS / VELOCITY_WINDOW_MS)
        return FollowerStats(current.followers, gained, lost, velocity)

    async def stats(self, account_id: int) -> FollowerStats:
        def read(tx: Tx) -> FollowerStats:
            self._account(tx, account_id)
            return self.stats_in(tx, account_id, now_ms())

        return await self.db.read(read)

    async def nth(self, account_id: int, n: int) -> tuple[Account, int]:
        """The account whose follow first brought the count to ``n``, and when."""
        if n < 1:
            raise InvalidInput("n must be at least 1")

        def read(tx: Tx) -> tuple[Account, int]:
            self._account(tx, account_id)
            found = self.stores.history.nth(tx, account_id, n)
            if found is None:
                raise NotFound(f"The follower count has not reached {n}")
            follower_id, at = found
            follower = self.stores.accounts.by_ids(tx, [follower_id]).get(follower_id)
            if follower is None:
                raise NotFound("That follower's account no longer exists")
            return follower, at

        return await self.db.read(read)

    async def milestones(self, account_id: int) -> list[tuple[Milestone, Account | None]]:
        def read(tx: Tx) -> list[tuple[Milestone, Account | None]]:
            self._account(tx, account_id)
            found = self.stores.history.milestones(tx, account_id)
            followers = self.stores.accounts.by_ids(tx, [m.follower_id for m in found])
            return [(m, followers.get(m.follower_id)) for m in found]

        return await self.db.read(read)

    async def roll_up(self, now: int | None = None) -> None:
        """Fold every complete minute of follow events into rollups (a batch per commit)."""
        until_minute = ((now if now is not None else now_ms()) - ROLLUP_LAG_MS) // MINUTE_MS
        while not await self.db.write(
            lambda tx: self.stores.history.roll_up(tx, until_minute, ROLLUP_BATCH)
        ):
            pass
