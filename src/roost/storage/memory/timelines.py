"""Home timelines in the memory of the one `roost serve` process: the embedded default.

Why. On SQLite every fan-out entry was a row written by the one writer thread: 500 posts a
second to 500 followers each is 250,000 rows a second, about twice what SQLite inserts here
at all (BENCHMARKS.md). A home timeline is derived data (the newest pushed posts of the
accounts one follows), which Mastodon keeps in Redis and regenerates when Redis loses it;
Roost's embedded mode keeps it in its own process instead, and regenerates it at once.

Layout. Per account, its entries' status ids in ascending order in an ``array('Q')`` (8 bytes
each), their authors in a parallel array, and the reblogged status ids of the few reblogs in a
dict: about 16 bytes an entry, against ~115 in Redis and ~37 in SQLite. New posts have the
highest ids, so an add is nearly always an append; paging is two bisections. Fan-out lets a
timeline run an eighth past the cap before trimming it (pages show the newest ``cap``; the
sweep of ``Roost.maintain`` trims them all every minute).

Missing timelines. After a start the store holds no timeline. An account's first home read
finds its timeline ``missing`` and fills it from the database (``TimelineService``) with what
delivery would have put there (``StatusStore.delivered_to``). Until then, writes to it are
dropped (the database has what they carried, and the fill reads it). From ``missing`` to
``fill`` the timeline is *filling*: writes are kept, and the statuses and authors removed
meanwhile are left out of what the fill brings, so a post delivered or deleted, or an author
unfollowed, while the fill reads is neither lost nor back.
So nothing needs recovering when the process dies (``fills_on_read``), and memory holds only
the timelines of accounts that read theirs lately: the minute sweep (``enforce_cap``) forgets
those unread for ``forget_after`` seconds (ROOST_INACTIVE_DAYS, the time after which the
other stores' fan-out skips a follower), and such a timeline is filled again, exact, at its
next read.

Transactions. Writes made in the database writer's transactions are applied once the
transaction has committed (``database.after_commit``; an operation that fails applies
nothing), before its callers are answered. Applied before the commit, a post pushed in its own
transaction could be skipped by a timeline not yet held and missed by that timeline's fill
reading the database just before the post committed. A read of the store inside a writer
transaction first applies that transaction's own writes. Every write is idempotent, and
readers hydrate entries from the database. One lock guards the timelines: writes come from
the writer thread, reads from the event loop or a reader thread.
"""

from __future__ import annotations

import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

from roost.domain.models import Page, TimelineEntry
from roost.storage.database import Tx, after_commit, run_after_commit_now


class _Timeline:
    """One account's entries, oldest first."""

    __slots__ = ("authors", "filling", "ids", "read_at", "reblogs", "removed_authors",
                 "removed_ids")

    def __init__(self, filling: bool, read_at: float) -> None:
        self.read_at = read_at  # (the store's clock: when its account last read it)
        self.ids = array("Q")
        self.authors = array("Q")
        self.reblogs: dict[int, int] = {}
        self.filling = filling
        # (while filling: what was removed, so the fill does not bring it back)
        self.removed_ids: set[int] = set()
        self.removed_authors: set[int] = set()

    def insert(self, entry: TimelineEntry) -> None:
        ids, status_id = self.ids, entry.status_id
        if not ids or status_id > ids[-1]:
            ids.append(status_id)
            self.authors.append(entry.author_id)
        else:
            at = bisect_left(ids, status_id)
            if at < len(ids) and ids[at] == status_id:
                return
            ids.insert(at, status_id)
            self.authors.insert(at, entry.author_id)
        if entry.reblog_of_id is not None:
            self.reblogs[status_id] = entry.reblog_of_id

    def entry(self, index: int) -> TimelineEntry:
        status_id = self.ids[index]
        return TimelineEntry(status_id, self.authors[index], self.reblogs.get(status_id))

    def remove(self, status_id: int) -> None:
        if self.filling:
            self.removed_ids.add(status_id)
        at = bisect_left(self.ids, status_id)
        if at < len(self.ids) and self.ids[at] == status_id:
            del self.ids[at]
            del self.authors[at]
            self.reblogs.pop(status_id, None)

    def remove_author(self, author_id: int) -> None:
        if self.filling:
            self.removed_authors.add(author_id)
        if author_id not in self.authors:
            return
        kept = [(s, a) for s, a in zip(self.ids, self.authors, strict=True) if a != author_id]
        self.ids = array("Q", [s for s, _ in kept])
        self.authors = array("Q", [a for _, a in kept])
        if self.reblogs:
            held = set(self.ids)
            self.reblogs = {s: r for s, r in self.reblogs.items() if s in held}

    def trim(self, keep: int) -> bool:
        """Keep the newest ``keep`` entries; whether any went."""
        excess = len(self.ids) - max(keep, 0)
        if excess <= 0:
            return False
        oldest_kept = self.ids[excess] if keep > 0 else None
        del self.ids[:excess]
        del self.authors[:excess]
        if self.reblogs:
            self.reblogs = {s: r for s, r in self.reblogs.items()
                            if oldest_kept is not None and s >= oldest_kept}
        return True


class MemoryHomeTimelineStore:
    """``HomeTimelineStore`` in this process's memory, each timeline capped at ``cap`` and
    forgotten when unread for ``forget_after`` seconds of ``clock``."""

    fills_on_read = True

    def __init__(self, *, cap: int, forget_after: float = float("inf"),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = cap
        self.forget_after = forget_after
        self._clock = clock
        # Fan-out lets a timeline grow this far past the cap before trimming it back: moving
        # an array down by one entry at every add cost 3/4 of the add (844 against 233 ns an
        # entry). Pages never show more than the newest ``cap``.
        self.slack = max(cap // 8, 1)
        self._timelines: dict[int, _Timeline] = {}
        self._lock = threading.Lock()
        self._epoch: int | None = None

    def _write(self, tx: Tx, change: Callable[[], None]) -> None:
        """Make ``change`` (under the lock) once ``tx`` commits, or now outside the writer."""
        def locked() -> None:
            with self._lock:
                change()

        if not after_commit(tx, self, locked):
            locked()

    def _held(self, account_id: int, change: Callable[[_Timeline], object]) -> None:
        timeline = self._timelines.get(account_id)
        if timeline is not None:  # (missing: its fill reads what the change carried)
            change(timeline)

    def _add(self, account_ids: Sequence[int], entry: TimelineEntry) -> None:
        """``entry`` into each held timeline: for a new post (the newest id, no reblog) two
        appends, and now and then the oldest ``slack`` entries out. This loop is fan-out's
        whole cost in memory: 500 posts/s to 500 followers is 250,000 turns a second."""
        timelines, cap, limit = self._timelines, self.cap, self.cap + self.slack
        status_id, author_id = entry.status_id, entry.author_id
        if entry.reblog_of_id is not None:
            for account_id in account_ids:
                timeline = timelines.get(account_id)
                if timeline is not None:
                    timeline.insert(entry)
                    timeline.trim(cap)
            return
        for account_id in account_ids:
            timeline = timelines.get(account_id)
            if timeline is None:
                continue
            ids = timeline.ids
            if ids and status_id <= ids[-1]:
                timeline.insert(entry)
            else:
                ids.append(status_id)
                timeline.authors.append(author_id)
            if len(ids) > limit:
                timeline.trim(cap)

    # -- the HomeTimelineStore Protocol ------------------------------------------------------

    def add(self, tx: Tx, account_ids: Sequence[int], entry: TimelineEntry) -> None:
        if account_ids:
            self._write(tx, lambda: self._add(account_ids, entry))

    def add_many(self, tx: Tx, account_id: int, entries: Sequence[TimelineEntry]) -> None:
        def change(timeline: _Timeline) -> None:
            for entry in entries:
                timeline.insert(entry)
            timeline.trim(self.cap)

        if entries:
            self._write(tx, lambda: self._held(account_id, change))

    def missing(self, tx: Tx, account_id: int) -> bool:
        run_after_commit_now(tx, self)
        with self._lock:
            timeline = self._timelines.get(account_id)
            if timeline is None:
                self._timelines[account_id] = _Timeline(filling=True, read_at=self._clock())
                return True
            return timeline.filling

    def holds(self, account_id: int) -> bool:
        timeline = self._timelines.get(account_id)  # (a hint: no lock)
        return timeline is not None and not timeline.filling

    def fill(self, tx: Tx, account_id: int, entries: Sequence[TimelineEntry]) -> None:
        run_after_commit_now(tx, self)
        with self._lock:
            timeline = self._timelines.setdefault(
                account_id, _Timeline(filling=True, read_at=self._clock()))
            if not timeline.filling:
                return  # (another read filled it meanwhile)
            for entry in entries:
                if (entry.status_id not in timeline.removed_ids
                        and entry.author_id not in timeline.removed_authors):
                    timeline.insert(entry)
            timeline.trim(self.cap)
            timeline.filling = False
            timeline.removed_ids.clear()
            timeline.removed_authors.clear()

    def page(self, tx: Tx, account_id: int, page: Page) -> list[TimelineEntry]:
        run_after_commit_now(tx, self)
        if page.limit <= 0:
            return []
        with self._lock:
            timeline = self._timelines.get(account_id)
            if timeline is None:
                return []
            timeline.read_at = self._clock()
            ids = timeline.ids
            high = len(ids) if page.max_id is None else bisect_left(ids, page.max_id)
            lows = [i for i in (page.since_id, page.min_id) if i is not None]
            low = max(bisect_right(ids, max(lows)) if lows else 0, len(ids) - self.cap)
            if low >= high:
                return []
            if page.min_id is not None:  # the entries just above min_id, then newest first
                window = range(min(low + page.limit, high) - 1, low - 1, -1)
            else:
                window = range(high - 1, max(low, high - page.limit) - 1, -1)
            return [timeline.entry(i) for i in window]

    def remove_author(self, tx: Tx, account_id: int, author_id: int) -> None:
        self._write(tx, lambda: self._held(account_id, lambda t: t.remove_author(author_id)))

    def remove(self, tx: Tx, account_ids: Sequence[int], status_id: int) -> None:
        def change() -> None:
            for account_id in account_ids:
                self._held(account_id, lambda t: t.remove(status_id))

        if account_ids:
            self._write(tx, change)

    def trim(self, tx: Tx, account_id: int, keep: int) -> None:
        self._write(tx, lambda: self._held(account_id, lambda t: t.trim(keep)))

    def enforce_cap(self, tx: Tx, keep: int) -> int:
        """Trim every timeline longer than ``keep`` (the slack that fan-out leaves, too) and
        forget those unread for ``forget_after`` seconds; how many were trimmed. Every
        minute, ``Roost.maintain``."""
        run_after_commit_now(tx, self)
        with self._lock:
            unread_since = self._clock() - self.forget_after
            # (A timeline being filled is in the middle of its account's read: kept.)
            for account_id in [a for a, t in self._timelines.items()
                               if t.read_at < unread_since and not t.filling]:
                del self._timelines[account_id]
            return sum(timeline.trim(keep) for timeline in self._timelines.values()
                       if len(timeline.ids) > keep)

    def cap_step(self, tx: Tx, keep: int, after: int) -> tuple[int, int | None]:
        return self.enforce_cap(tx, keep), None

    def epoch(self, tx: Tx) -> int | None:
        return self._epoch

    def set_epoch(self, tx: Tx, epoch: int) -> None:
        self._epoch = epoch

    # -- for measurements ---------------------------------------------------------------------

    def held(self) -> tuple[int, int]:
        """How many timelines, and entries in all, the store holds."""
        with self._lock:
            return len(self._timelines), sum(len(t.ids) for t in self._timelines.values())
