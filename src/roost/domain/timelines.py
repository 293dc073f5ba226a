"""Timelines: home (hybrid fan-out), public, hashtag and account timelines.

Hybrid fan-out: an ordinary author's post is pushed into each follower's home timeline
(``fanout.py``, which also takes deleted posts out); a pulled (celebrity) author's post is
written once and merged into followers' home timelines when they read. Both sources are
paged by status id and merged.
"""

from __future__ import annotations

import logging
import secrets

from roost.clock import now_ms
from roost.domain import content
from roost.domain.errors import NotFound
from roost.domain.events import HomesMarked
from roost.domain.models import Page, StatusView, TimelineEntry, Visibility
from roost.domain.posts import PostService
from roost.storage.database import Database, Tx, emit
from roost.storage.stores import Stores

log = logging.getLogger(__name__)

BACKFILL_POSTS = 40
REBUILD_BATCH = 200
LOST_BATCH = 1_000  # accounts marked per step of a ``homes_lost`` job
# The database's record of the mark the home timeline store should carry (``check_home_store``).
HOME_EPOCH = "home_epoch"

# Timeline pages are read without a snapshot (``Database.read(snapshot=False)``): each
# statement sees the latest commits, as in Mastodon, whose reads run outside transactions.
# A status deleted between the statements that load a page is shown as it was a moment
# earlier, which a snapshot would also do; a page's entries come partly from Redis, which no
# database snapshot covers anyway. On PostgreSQL this saves the BEGIN and ROLLBACK round trips
# of every page: half of PostgreSQL's CPU in the home read benchmark, and with two web
# processes 540 -> 780 req/s (BENCHMARKS.md).
SNAPSHOT = False


def _new_epoch() -> int:
    return secrets.randbits(62) + 1


class TimelineService:
    def __init__(self, db: Database, stores: Stores, posts: PostService, *,
                 home_size: int, inactive_ms: int) -> None:
        self.db = db
        self.stores = stores
        self.posts = posts
        self.home_size = home_size
        self.inactive_ms = inactive_ms

    # -- reading ---------------------------------------------------------------------------

    def home_entries(self, tx: Tx, account_id: int, page: Page) -> list[TimelineEntry]:
        if self.stores.home.missing(tx, account_id):
            self._fill_home(tx, account_id)
        pushed = self.stores.home.page(tx, account_id, page)
        pulled = self.stores.statuses.pulled(tx, account_id, page)
        if not pulled:
            return pushed
        merged = {e.status_id: e for e in pushed + pulled}
        newest = sorted(merged, reverse=True)
        if page.min_id is not None:  # the entries just above min_id, newest first
            newest = sorted(merged)[: page.limit][::-1]
        return [merged[i] for i in newest[: page.limit]]

    async def home(self, account_id: int, page: Page) -> list[StatusView]:
        def read(tx: Tx) -> list[StatusView]:
            entries = self.home_entries(tx, account_id, page)
            return self.posts.views(tx, [e.status_id for e in entries], account_id)

        # A fill reads the newest posts of every account followed (~40 ms for a thousand on
        # SQLite, `python -m bench.fill`): not a bounded read, so not on the event loop.
        return await self.db.read(read, snapshot=SNAPSHOT,
                                  bounded=self.stores.home.holds(account_id))

    def _fill_home(self, tx: Tx, account_id: int) -> None:
        """Fill a home timeline the store lacks (an in-memory store after a start) with what
        delivery would have put in it."""
        self.stores.home.fill(tx, account_id,
                              self.stores.statuses.delivered_to(tx, account_id, self.home_size))

    async def pulled_authors(self, account_id: int) -> list[int]:
        """Followed authors whose posts reach followers at read time, not by push: a live
        home stream listens to each of them."""
        return await self.db.read(
            lambda tx: self.stores.follows.followed_with_unpushed(tx, account_id), bounded=True)

    async def public(self, viewer_id: int | None, page: Page) -> list[StatusView]:
        return await self.db.read(
            lambda tx: self.posts.views(tx, self.stores.statuses.public(tx, page), viewer_id),
            snapshot=SNAPSHOT, bounded=True)

    async def tag(self, name: str, viewer_id: int | None, page: Page) -> list[StatusView]:
        if not content.is_tag_name(name):
            return []  # no post has it (nor does a NUL reach PostgreSQL)

        def read(tx: Tx) -> list[StatusView]:
            tag = self.stores.tags.by_name(tx, name)
            if tag is None:
                return []
            return self.posts.views(tx, self.stores.statuses.by_tag(tx, tag.id, page), viewer_id)

        return await self.db.read(read, snapshot=SNAPSHOT, bounded=True)

    async def account(self, account_id: int, viewer_id: int | None, page: Page, *,
                      exclude_replies: bool = False,
                      exclude_reblogs: bool = False) -> list[StatusView]:
        def read(tx: Tx) -> list[StatusView]:
            if not self.stores.accounts.by_ids(tx, [account_id]):
                raise NotFound()
            visibilities = [Visibility.PUBLIC, Visibility.UNLISTED]
            if viewer_id == account_id:
                visibilities += [Visibility.PRIVATE, Visibility.DIRECT]
            elif viewer_id is not None and self.stores.follows.get(tx, viewer_id, account_id):
                visibilities.append(Visibility.PRIVATE)
            ids = self.stores.statuses.by_account(tx, account_id, page, visibilities,
                                                  exclude_replies, exclude_reblogs)
            return self.posts.views(tx, ids, viewer_id)

        return await self.db.read(read, snapshot=SNAPSHOT, bounded=True)

    # -- the store's health ----------------------------------------------------------------

    def claim_home_epoch(self, tx: Tx) -> int | None:
        """On a database without a record of the home timeline store's mark (a new one, or one
        from before marks), record the mark the store carries, or a new one. Returns the mark
        the store must now be given, None when it has it already or the database had a record.

        Every process does this as it starts (``Roost.start``), before anything can write to
        the store: a mark first recorded later would take a loss in between for a new store.

        A store that fills its timelines on read (in memory) starts empty every time: it gets
        a new mark, recorded, so that a database or Redis store used after it on this
        database finds a mark other than its own and rebuilds what it missed meanwhile."""
        if self.stores.home.fills_on_read:
            epoch = _new_epoch()
            self.stores.state.put(tx, HOME_EPOCH, epoch)
            return epoch
        if self.stores.state.get(tx, HOME_EPOCH) is not None:
            return None
        found = self.stores.home.epoch(tx)
        expected = self.stores.state.claim(
            tx, HOME_EPOCH, found if found is not None else _new_epoch())
        return expected if found != expected else None

    async def check_home_store(self) -> bool:
        """Notice that the home timeline store lost its timelines (Redis restarted without its
        data; the jobs queued in it are gone too) and recover: every account is marked as if
        back from inactivity, so fan-out skips it and its next request rebuilds its home
        timeline from what the accounts it follows posted (``AccountService.touch``), as for
        any returning account. True when it had lost them.

        How it knows: the database records a random mark and the store carries the same; a
        store without it lost its data since. The job is committed before the store gets its
        mark back, so a crash in between finds the loss again rather than forgetting it.
        A store that fills its timelines on read has nothing to recover."""
        if self.stores.home.fills_on_read:
            return False

        def intact(tx: Tx) -> bool:
            expected = self.stores.state.get(tx, HOME_EPOCH)
            return expected is not None and self.stores.home.epoch(tx) == expected

        # (a read first: the answer is nearly always yes, and the writer need not know)
        if await self.db.read(intact, snapshot=False):
            return False

        def check(tx: Tx) -> tuple[int | None, bool]:
            expected = self.stores.state.get(tx, HOME_EPOCH)
            if expected is None:  # (the mark's record was removed by hand since the start)
                return self.claim_home_epoch(tx), False
            found = self.stores.home.epoch(tx)
            if found == expected:
                return None, False
            self.stores.jobs.enqueue(tx, "homes_lost", {
                "after": 0, "stale_at": now_ms() - self.inactive_ms - 1}, run_after=0)
            return expected, True

        epoch, lost = await self.db.write(check)
        if epoch is not None:
            await self.db.write(lambda tx: self.stores.home.set_epoch(tx, epoch))
        if lost:
            log.warning("the home timeline store had lost its timelines: each account's is "
                        "rebuilt on its next request")
        return lost

    # -- background jobs (each runs inside one write transaction) ---------------------------

    def homes_lost(self, tx: Tx, payload: dict[str, object]) -> dict[str, object] | None:
        """The next batch of accounts after a loss of the home timeline store: each is marked
        inactive since ``stale_at``, so its next request rebuilds its home timeline."""
        after = int(payload["after"])  # type: ignore[call-overload]
        stale_at = int(payload["stale_at"])  # type: ignore[call-overload]
        last = self.stores.accounts.mark_inactive(tx, after, LOST_BATCH, stale_at)
        if last is None:
            emit(tx, HomesMarked())  # accounts with a stream open are active all the same
            return None
        return {**payload, "after": last}

    def backfill(self, tx: Tx, payload: dict[str, object]) -> dict[str, object] | None:
        """A new follow: put the followee's recent pushed posts in the follower's timeline."""
        account_id = int(payload["account_id"])  # type: ignore[call-overload]
        author_id = int(payload["author_id"])  # type: ignore[call-overload]
        if self.stores.follows.get(tx, account_id, author_id) is None:
            return None  # unfollowed again before the job ran
        entries = self.stores.statuses.delivered_from(tx, account_id, [author_id],
                                                      BACKFILL_POSTS)
        self.stores.home.add_many(tx, account_id, entries)
        self.stores.home.trim(tx, account_id, self.home_size)
        return None

    def rebuild_home(self, tx: Tx, payload: dict[str, object]) -> dict[str, object] | None:
        """A returning inactive account: refill its home timeline with what delivery would
        have put there (``delivered_to``'s rules): its own posts and the private mentions of
        it first, then the recent posts of the accounts it follows, a batch of them per
        step."""
        account_id = int(payload["account_id"])  # type: ignore[call-overload]
        after = int(payload["after"])  # type: ignore[call-overload]
        statuses = self.stores.statuses
        authors = [a for a in self.stores.follows.followed_ids(tx, account_id) if a > after]
        batch = authors[:REBUILD_BATCH]
        entries = statuses.delivered_from(tx, account_id, batch, BACKFILL_POSTS)
        if after == 0:
            entries += statuses.delivered_directly(tx, account_id, self.home_size)
        self.stores.home.add_many(tx, account_id, entries)
        if len(authors) > REBUILD_BATCH:
            return {**payload, "after": batch[-1]}
        self.stores.home.trim(tx, account_id, self.home_size)
        self.stores.accounts.update(tx, account_id, {"home_rebuilding": False})
        return None

    def forget_author(self, tx: Tx, payload: dict[str, object]) -> dict[str, object] | None:
        """An unfollow: the followee's posts and reblogs leave the follower's home timeline."""
        account_id = int(payload["account_id"])  # type: ignore[call-overload]
        author_id = int(payload["author_id"])  # type: ignore[call-overload]
        if self.stores.follows.get(tx, account_id, author_id) is not None:
            return None  # followed again before the job ran
        self.stores.home.remove_author(tx, account_id, author_id)
        return None
