"""Home timelines in SQL: the embedded implementation of the home timeline store."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select

from roost.domain.models import Page, TimelineEntry
from roost.storage.database import Tx
from roost.storage.schema import home_timeline
from roost.storage.sql.common import newest_first
from roost.storage.sql.raw import Raw, paged_raw
from roost.storage.sql.state import SqlStateStore

c = home_timeline.c
# Fan-out and home reads are the busiest statements of all: on the driver's cursor (raw.py).
_ADD = Raw("INSERT INTO home_timeline (account_id, status_id, author_id, reblog_of_id)"
           " VALUES (:account_id, :status_id, :author_id, :reblog_of_id) ON CONFLICT DO NOTHING")
_PAGE = ("SELECT status_id, author_id, reblog_of_id FROM home_timeline"
         " WHERE account_id = :account_id")
_PAGES: dict[tuple[bool, bool, bool], Raw] = {}
EPOCH_KEY = "home_timelines_epoch"
# Entries a step of the cap's sweep looks at: ~10 ms of SQLite per step here, so a sweep of
# millions of entries never holds the single writer for long (Roost.maintain).
CAP_STEP_ROWS = 100_000
_STATE = SqlStateStore()


class SqlHomeTimelineStore:
    fills_on_read = False

    def holds(self, account_id: int) -> bool:
        return True

    def missing(self, tx: Tx, account_id: int) -> bool:
        return False

    def fill(self, tx: Tx, account_id: int, entries: Sequence[TimelineEntry]) -> None:
        self.add_many(tx, account_id, entries)

    def add(self, tx: Tx, account_ids: Sequence[int], entry: TimelineEntry) -> None:
        if not account_ids:
            return
        _ADD.many(tx, [
            {"account_id": a, "status_id": entry.status_id, "author_id": entry.author_id,
             "reblog_of_id": entry.reblog_of_id}
            for a in account_ids
        ])

    def add_many(self, tx: Tx, account_id: int, entries: Sequence[TimelineEntry]) -> None:
        if not entries:
            return
        _ADD.many(tx, [
            {"account_id": account_id, "status_id": e.status_id, "author_id": e.author_id,
             "reblog_of_id": e.reblog_of_id}
            for e in entries
        ])

    def page(self, tx: Tx, account_id: int, page: Page) -> list[TimelineEntry]:
        raw, params = paged_raw(_PAGE, "status_id", page, _PAGES)
        rows = newest_first(raw.all(tx, {**params, "account_id": account_id}), page)
        return [TimelineEntry(r[0], r[1], r[2]) for r in rows]

    def remove_author(self, tx: Tx, account_id: int, author_id: int) -> None:
        tx.execute(delete(home_timeline).where(c.account_id == account_id,
                                               c.author_id == author_id))

    def remove(self, tx: Tx, account_ids: Sequence[int], status_id: int) -> None:
        if account_ids:
            tx.execute(delete(home_timeline).where(
                c.account_id.in_(list(account_ids)), c.status_id == status_id
            ))

    def trim(self, tx: Tx, account_id: int, keep: int) -> None:
        if keep <= 0:  # (a negative OFFSET is an error on PostgreSQL, zero on SQLite)
            tx.execute(delete(home_timeline).where(c.account_id == account_id))
            return
        oldest_kept = tx.execute(
            select(c.status_id).where(c.account_id == account_id)
            .order_by(c.status_id.desc()).offset(keep - 1).limit(1)
        ).scalar()
        if oldest_kept is not None:
            tx.execute(delete(home_timeline).where(
                c.account_id == account_id, c.status_id < oldest_kept
            ))

    def epoch(self, tx: Tx) -> int | None:
        # (in the database itself: lost only with everything else)
        return _STATE.get(tx, EPOCH_KEY)

    def set_epoch(self, tx: Tx, epoch: int) -> None:
        _STATE.put(tx, EPOCH_KEY, epoch)

    def enforce_cap(self, tx: Tx, keep: int) -> int:
        """Trim every timeline longer than ``keep``; returns how many were trimmed."""
        trimmed, after = self.cap_step(tx, keep, 0)
        while after is not None:
            more, after = self.cap_step(tx, keep, after)
            trimmed += more
        return trimmed

    def cap_step(self, tx: Tx, keep: int, after: int,
                 rows: int = CAP_STEP_ROWS) -> tuple[int, int | None]:
        """Trim the timelines longer than ``keep`` among those of the accounts after
        ``after`` that hold the next ``rows`` entries or so (the last account's whole
        timeline included); returns how many were trimmed and the account to continue
        after (None: none left)."""
        end = tx.execute(
            select(c.account_id).where(c.account_id > after).order_by(c.account_id)
            .offset(rows).limit(1)).scalar()
        in_step = [c.account_id > after] + ([c.account_id <= end] if end is not None else [])
        oversized = list(tx.execute(
            select(c.account_id).where(*in_step).group_by(c.account_id)
            .having(func.count() > keep)).scalars())
        for account_id in oversized:
            self.trim(tx, account_id, keep)
        return len(oversized), end
