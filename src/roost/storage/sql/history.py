"""Follower history in SQL: per-minute rollups of the follow event log, and milestones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from roost.domain.models import Milestone, Snapshot
from roost.ids import id_at_ms
from roost.storage.database import Tx
from roost.storage.schema import follow_events, follower_rollups, milestones, roost_state
from roost.storage.sql.common import insert_ignore, upsert

r = follower_rollups.c
e = follow_events.c
MINUTE_MS = 60_000
ROLLUP_CURSOR = "follower_rollup_minute"


@dataclass
class _Running:
    followers: int = 0
    gained: int = 0
    lost: int = 0
    peak: int = 0

    def apply(self, delta: int) -> None:
        self.followers += delta
        if delta > 0:
            self.gained += delta
        else:
            self.lost -= delta
        self.peak = max(self.peak, self.followers)


def _running(row: Any | None) -> _Running:
    if row is None:
        return _Running()
    return _Running(row.followers, row.gained, row.lost, row.peak)


class SqlFollowerHistoryStore:
    # -- the rollup ------------------------------------------------------------------------

    def rolled_up_to(self, tx: Tx) -> int:
        """The first minute not yet rolled up (every earlier minute is)."""
        value = tx.execute(select(roost_state.c.value).where(
            roost_state.c.key == ROLLUP_CURSOR)).scalar()
        return int(value) if value is not None else 0

    def roll_up(self, tx: Tx, until_minute: int, max_events: int) -> bool:
        """Fold the events of complete minutes before ``until_minute`` into rollups, about
        ``max_events`` of them at most; True when every such minute is folded."""
        start_minute = self.rolled_up_to(tx)
        if start_minute >= until_minute:
            return True
        rows = tx.execute(
            select(e.target_account_id, e.id, e.delta, e.created_at)
            .where(e.id >= id_at_ms(start_minute * MINUTE_MS),
                   e.id < id_at_ms(until_minute * MINUTE_MS))
            .order_by(e.id).limit(max_events)
        ).all()
        stop_minute = until_minute
        if len(rows) == max_events:  # a full batch: stop before the last (maybe partial) minute
            stop_minute = max(rows[-1].id >> 16, 0) // MINUTE_MS
            rows = [row for row in rows if (row.id >> 16) // MINUTE_MS < stop_minute]
            if not rows:  # one minute holds more than a batch: take the whole minute
                stop_minute += 1
                rows = tx.execute(
                    select(e.target_account_id, e.id, e.delta, e.created_at)
                    .where(e.id >= id_at_ms(start_minute * MINUTE_MS),
                           e.id < id_at_ms(stop_minute * MINUTE_MS))
                    .order_by(e.id)
                ).all()
        state: dict[int, _Running] = {}
        touched: dict[tuple[int, int], _Running] = {}
        for row in rows:
            account = row.target_account_id
            if account not in state:
                state[account] = _running(self._rollup_before(tx, account, start_minute))
            running = state[account]
            running.apply(row.delta)
            minute = (row.id >> 16) // MINUTE_MS
            touched[(account, minute)] = _Running(running.followers, running.gained,
                                                  running.lost, running.peak)
        if touched:
            stmt = upsert(tx, follower_rollups)
            stmt = stmt.on_conflict_do_update(
                index_elements=["account_id", "minute"],
                set_={"followers": stmt.excluded.followers, "gained": stmt.excluded.gained,
                      "lost": stmt.excluded.lost, "peak": stmt.excluded.peak},
            )
            tx.execute(stmt, [
                {"account_id": account, "minute": minute, "followers": v.followers,
                 "gained": v.gained, "lost": v.lost, "peak": v.peak}
                for (account, minute), v in touched.items()
            ])
        self._set_cursor(tx, stop_minute)
        return stop_minute >= until_minute

    def _set_cursor(self, tx: Tx, minute: int) -> None:
        stmt = upsert(tx, roost_state).values(key=ROLLUP_CURSOR, value=minute)
        tx.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": minute}))

    def _rollup_before(self, tx: Tx, account_id: int, minute: int) -> Any | None:
        return tx.execute(
            select(follower_rollups).where(r.account_id == account_id, r.minute < minute)
            .order_by(r.minute.desc()).limit(1)
        ).first()

    # -- reading ---------------------------------------------------------------------------

    def _events(self, tx: Tx, account_id: int, from_id: int, to_id: int,
                batch: int = 50_000) -> Iterator[Any]:
        """Events of one account with from_id <= id < to_id, in order, in batches."""
        while True:
            rows = tx.execute(
                select(e.id, e.account_id, e.delta, e.created_at)
                .where(e.target_account_id == account_id, e.id >= from_id, e.id < to_id)
                .order_by(e.id).limit(batch)
            ).all()
            yield from rows
            if len(rows) < batch:
                return
            from_id = rows[-1].id + 1

    def snapshot(self, tx: Tx, account_id: int, at_ms: int) -> Snapshot:
        """Followers, follows gained and lost so far, and the peak, at ``at_ms`` (inclusive)."""
        minute = at_ms // MINUTE_MS
        rolled = min(minute, self.rolled_up_to(tx))
        base = self._rollup_before(tx, account_id, rolled)
        running = _running(base)
        # Every minute before ``rolled`` that had events has a rollup, so nothing lies between
        # the base rollup and the events summed here.
        from_id = id_at_ms((base.minute + 1) * MINUTE_MS) if base is not None else 0
        c = follow_events.c
        sums = tx.execute(
            select(func.coalesce(func.sum(c.delta), 0),
                   func.coalesce(func.sum(func.abs(c.delta) + c.delta), 0))
            .where(c.target_account_id == account_id, c.id >= from_id,
                   c.id < id_at_ms(at_ms + 1))
        ).one()
        net, twice_gained = int(sums[0]), int(sums[1])
        gained = twice_gained // 2
        return Snapshot(followers=running.followers + net, gained=running.gained + gained,
                        lost=running.lost + (gained - net))

    def nth(self, tx: Tx, account_id: int, n: int) -> tuple[int, int] | None:
        """(follower id, time) of the follow that first brought the count to ``n``."""
        first = tx.execute(
            select(follower_rollups).where(r.account_id == account_id, r.peak >= n)
            .order_by(r.peak, r.minute).limit(1)
        ).first()
        if first is not None:
            base = self._rollup_before(tx, account_id, first.minute)
            from_id = id_at_ms(first.minute * MINUTE_MS)
            to_id = id_at_ms((first.minute + 1) * MINUTE_MS)
        else:  # not in the rollups (yet): walk the events past the last rollup
            base = self._rollup_before(tx, account_id, 1 << 40)
            from_id = id_at_ms((base.minute + 1) * MINUTE_MS) if base is not None else 0
            to_id = (1 << 63) - 1
        running = _running(base)
        if running.peak >= n:
            return None  # cannot happen for a consistent log; be safe
        for event in self._events(tx, account_id, from_id, to_id):
            running.apply(event.delta)
            if running.followers >= n:
                return event.account_id, event.created_at
        return None

    # -- milestones ------------------------------------------------------------------------

    def record_milestone(self, tx: Tx, milestone: Milestone) -> bool:
        result = tx.execute(insert_ignore(tx, milestones).values(
            account_id=milestone.account_id, count=milestone.count,
            reached_at=milestone.reached_at, follower_id=milestone.follower_id))
        return result.rowcount == 1

    def milestones(self, tx: Tx, account_id: int) -> list[Milestone]:
        m = milestones.c
        rows = tx.execute(select(m.account_id, m.count, m.reached_at, m.follower_id)
                          .where(m.account_id == account_id).order_by(m.count))
        return [Milestone(row[0], row[1], row[2], row[3]) for row in rows]
