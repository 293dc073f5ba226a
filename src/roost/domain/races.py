"""Races: two or more accounts toward a follower count, watched live.

A race keeps its own view of its accounts' counts as of a cursor into the follow event log.
Refreshing walks the events past the cursor in order, so every lead change and every crossing
of the target is found at the exact event (and time) it happened, and the follower who took
each account over the line is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from roost.clock import now_ms
from roost.domain.errors import Forbidden, InvalidInput, NotFound
from roost.domain.events import RaceUpdated
from roost.domain.models import Account, Page, Race, RaceEntry
from roost.domain.stats import StatsService
from roost.ids import id_at_ms, new_id
from roost.storage.database import Database, Tx, emit
from roost.storage.stores import Stores

DEFAULT_TARGET = 1_000_000
MAX_ACCOUNTS = 10
MAX_TARGET = 10**12
EVENT_BATCH = 10_000
LAST_ID = (1 << 63) - 1  # (no event is newer: the bound when writers are serialised)


@dataclass
class Standing:
    account: Account
    followers: int
    velocity_per_hour: float
    projected_at: int | None
    reached_at: int | None
    milestone_follower: Account | None


@dataclass
class RaceView:
    race: Race
    standings: list[Standing]


def _all_reached(race: Race) -> bool:
    """Every account has reached the target: the race is settled."""
    return all(x.reached_at is not None for x in race.entries)


def _leader(race: Race) -> int | None:
    """The entry with the most followers; on a tie the current leader keeps the lead."""
    best = max((x.followers for x in race.entries), default=0)
    top = [x.account_id for x in race.entries if x.followers == best]
    if race.leader_id in top:
        return race.leader_id
    return top[0] if top else None


class RaceService:
    def __init__(self, db: Database, stores: Stores, stats: StatsService, *,
                 settle_ms: int = 0) -> None:
        self.db = db
        self.stores = stores
        self.stats = stats
        # How old a follow event must be before a refresh walks past it. Ids are taken
        # before commit; with concurrent writers (several processes on PostgreSQL) an event
        # can commit after a later one, below a cursor that already moved on, and would never
        # be counted. Writers serialised by the database (SQLite) need no wait.
        self.settle_ms = settle_ms

    async def create(self, creator_id: int, account_ids: list[int],
                     target: int | None) -> RaceView:
        target = DEFAULT_TARGET if target is None else target
        if target < 1 or target > MAX_TARGET:
            raise InvalidInput("target must be a positive follower count")
        if len(set(account_ids)) != len(account_ids):
            raise InvalidInput("account_ids must not repeat an account")
        if not 2 <= len(account_ids) <= MAX_ACCOUNTS:
            raise InvalidInput(f"A race needs 2 to {MAX_ACCOUNTS} accounts")

        def apply(tx: Tx) -> int:
            accounts = self.stores.accounts.by_ids(tx, account_ids)
            unknown = [str(i) for i in account_ids if i not in accounts]
            if unknown:
                raise InvalidInput(f"Unknown account: {', '.join(unknown)}")
            entries = []
            for position, account_id in enumerate(account_ids):
                entry = RaceEntry(account_id, position, accounts[account_id].followers_count)
                if entry.followers >= target:  # crossed before the race began
                    crossed = self.stores.history.nth(tx, account_id, target)
                    if crossed is not None:
                        entry.milestone_follower_id, entry.reached_at = crossed
                entries.append(entry)
            # Every event committed so far has a smaller id, and the counts above include it.
            race = Race(new_id(), creator_id, target, now_ms(), new_id(), entries, [])
            race.leader_id = _leader(race)
            crossed_already = [x for x in entries if x.reached_at is not None]
            if crossed_already:
                first = min(crossed_already, key=lambda x: x.reached_at or 0)
                race.winner_id, race.finished_at = first.account_id, first.reached_at
            race.settled = len(crossed_already) == len(entries)
            self.stores.races.insert(tx, race)
            emit(tx, RaceUpdated(race.id))
            return race.id

        race_id = await self.db.write(apply)
        return await self.get(race_id)

    def refresh_in(self, tx: Tx, race: Race) -> bool:
        """Walk the follow events past the race's cursor; True if anything happened. The walk
        ends at the event that makes the last account cross the target, so a race comes out
        the same however often it was refreshed on the way (lead changes after it are not
        the race's: one refresh walking past it would count them, several would not)."""
        by_account = {x.account_id: x for x in race.entries}
        settled_before = id_at_ms(now_ms() - self.settle_ms) if self.settle_ms else LAST_ID
        new_changes = 0
        moved = False
        settled = _all_reached(race)
        while True:
            events = self.stores.races.events_after(
                tx, list(by_account), race.cursor_id, settled_before, EVENT_BATCH)
            for event_id, account_id, follower_id, delta, at in events:
                entry = by_account[account_id]
                entry.followers += delta
                leader = _leader(race)
                if leader != race.leader_id:
                    race.leader_id = leader
                    if leader is not None:
                        race.lead_changes.append((at, leader))
                        new_changes += 1
                if entry.reached_at is None and entry.followers >= race.target:
                    entry.reached_at, entry.milestone_follower_id = at, follower_id
                    if race.winner_id is None:
                        race.winner_id, race.finished_at = account_id, at
                    settled = _all_reached(race)
                race.cursor_id = event_id
                if settled:
                    break  # later events no longer change the race
            moved = moved or bool(events)
            if len(events) < EVENT_BATCH or settled:
                break
        if moved:
            race.settled = settled
            self.stores.races.save_progress(tx, race, new_changes)
            emit(tx, RaceUpdated(race.id))
        return moved

    def _refresh(self, tx: Tx, race_id: int) -> None:
        race = self.stores.races.get(tx, race_id)
        if race is not None and not race.settled:
            self.refresh_in(tx, race)

    async def refresh_unsettled(self) -> None:
        """Bring every race still under way up to date (the worker runs this often)."""
        ids = await self.db.read(lambda tx: self.stores.races.unsettled_ids(tx, 1000))
        for race_id in ids:
            await self.db.write(partial(self._refresh, race_id=race_id))

    def view_in(self, tx: Tx, race: Race, now: int) -> RaceView:
        ids = [x.account_id for x in race.entries]
        followers_of = [x.milestone_follower_id for x in race.entries
                        if x.milestone_follower_id is not None]
        accounts = self.stores.accounts.by_ids(tx, ids + followers_of)
        standings = []
        for entry in race.entries:
            if entry.account_id not in accounts:
                continue
            account = accounts[entry.account_id]
            # The live count: once every account has crossed, the race stops walking events,
            # but the standings keep showing where the accounts are now.
            followers = account.followers_count
            velocity = self.stats.stats_in(tx, entry.account_id, now).velocity_per_hour
            projected = None
            if entry.reached_at is None and velocity > 0:
                hours = (race.target - followers) / velocity
                projected = now + int(hours * 3_600_000)
            follower = (accounts.get(entry.milestone_follower_id)
                        if entry.milestone_follower_id is not None else None)
            standings.append(Standing(account, followers, velocity, projected,
                                      entry.reached_at, follower))
        standings.sort(key=lambda s: (-s.followers, s.reached_at or 0))
        return RaceView(race, standings)

    async def get(self, race_id: int) -> RaceView:
        await self.db.write(lambda tx: self._refresh(tx, race_id))

        def read(tx: Tx) -> RaceView:
            race = self.stores.races.get(tx, race_id)
            if race is None:
                raise NotFound()
            return self.view_in(tx, race, now_ms())

        return await self.db.read(read)

    async def current(self, race_id: int) -> RaceView | None:
        """The race as last refreshed (None if it was deleted)."""

        def read(tx: Tx) -> RaceView | None:
            race = self.stores.races.get(tx, race_id)
            return self.view_in(tx, race, now_ms()) if race is not None else None

        return await self.db.read(read)

    async def page(self, page: Page) -> list[RaceView]:
        def read(tx: Tx) -> list[RaceView]:
            now = now_ms()
            return [self.view_in(tx, race, now) for race in self.stores.races.page(tx, page)]

        return await self.db.read(read)

    async def delete(self, race_id: int, viewer_id: int) -> None:
        def apply(tx: Tx) -> None:
            race = self.stores.races.get(tx, race_id)
            if race is None:
                raise NotFound()
            if race.creator_id != viewer_id:
                raise Forbidden("Only the race's creator may delete it")
            self.stores.races.delete(tx, race_id)

        await self.db.write(apply)
