"""The follow graph: follow, unfollow, lists and relationships, with exact counts.

A follow changes the edge, both counters and the history in one transaction, and only when
the edge really changes, so repeating a follow or an unfollow changes nothing. The target's
counter lock is taken before the target is loaded and held to the commit: with several writer
processes on PostgreSQL, follows of one account commit one after another, so the count loaded
with the target, plus the edge, is the exact count this follow made (the Nth follower, the
milestone it crossed, the switch to pull fan-out), and the target's follow events get ids in
commit order. An account's counter rows (``ROOST_COUNTER_SHARDS``) are chosen by the
other party's id.
"""

from __future__ import annotations

from collections.abc import Sequence

from roost.clock import now_ms
from roost.domain.errors import Forbidden, NotFound
from roost.domain.events import FollowersChanged, PulledFollowChanged
from roost.domain.models import Account, Page, Relationship, RelationshipFacts
from roost.domain.notifications import notify, withdraw
from roost.domain.stats import MilestoneRule
from roost.ids import bucket_of, new_id
from roost.storage.database import Database, Tx, emit
from roost.storage.stores import Stores

FAMILIAR_LIMIT = 40  # familiar followers shown per account


class FollowService:
    def __init__(self, db: Database, stores: Stores, *, counter_shards: int,
                 pull_above: int, push_below: int, milestones: MilestoneRule) -> None:
        self.db = db
        self.stores = stores
        self.milestones = milestones
        self.shards = counter_shards
        self.pull_above = pull_above
        self.push_below = push_below

    def _target(self, tx: Tx, follower_id: int, target_id: int) -> Account:
        """The account to follow or unfollow, loaded under its counter lock (see
        ``_held_account``)."""
        _not_oneself(follower_id, target_id)
        target = self._held_account(tx, target_id)
        if target is None:
            raise NotFound()
        return target

    def _held_account(self, tx: Tx, account_id: int) -> Account | None:
        """Take the account's counter lock, then load it: no other writer can change its
        counts until this transaction ends, so the count loaded is the count this
        transaction's follows and unfollows change (``_update_fanout_mode``)."""
        self.stores.counters.hold(tx, account_id)
        return self.stores.accounts.by_ids(tx, [account_id]).get(account_id)

    async def follow(self, follower_id: int, target_id: int, *, reblogs: bool | None = None,
                     notify_posts: bool | None = None) -> Relationship:
        """Follow; a locked account gets a follow request to accept or reject instead."""

        def apply(tx: Tx) -> Relationship:
            _not_oneself(follower_id, target_id)
            show_reblogs = True if reblogs is None else reblogs
            # The common case first, in one round trip on PostgreSQL: under the target's
            # counter lock (see _held_account), load it, read the relationship and make the
            # edge if the account is open. Only when that made nothing (a locked account, an
            # edge already there) are the options read.
            self.stores.counters.hold(tx, target_id)
            at = now_ms()
            attempt = self.stores.follows.follow_open(tx, follower_id, target_id, new_id(), at,
                                                      show_reblogs, bool(notify_posts))
            target = attempt.target
            if target is None:
                raise NotFound()
            if attempt.followed:
                self._edge_added(tx, follower_id, target, at)
                attempt.facts.following[target_id] = (show_reblogs, bool(notify_posts))
                return _relationship(target_id, attempt.facts)
            existing = self.stores.follows.get(tx, follower_id, target_id)
            if existing is not None:
                show_reblogs = existing[0] if reblogs is None else reblogs
                notifying = existing[1] if notify_posts is None else notify_posts
                if (show_reblogs, notifying) != existing:
                    self.stores.follows.update(tx, follower_id, target_id, show_reblogs, notifying)
            elif target.locked and self.stores.follow_requests.insert(
                    tx, follower_id, target_id, new_id(), now_ms(), show_reblogs,
                    bool(notify_posts)):
                notify(self.stores, tx, target_id, "follow_request", follower_id)
            return self.relationships_in(tx, follower_id, [target_id])[0]

        return await self.db.write(apply)

    def _add_edge(self, tx: Tx, follower_id: int, target: Account, show_reblogs: bool,
                  notifying: bool, *, notify_target: bool = True) -> bool:
        """Insert the edge with its counters, event, notification and backfill; False (and
        nothing changed) when the edge already exists. ``target`` was loaded by
        ``_held_account`` in this transaction, after any earlier edge it changed."""
        at = now_ms()
        if not self.stores.follows.insert(tx, follower_id, target.id, new_id(), at,
                                          show_reblogs, notifying):
            return False
        self._edge_added(tx, follower_id, target, at, notify_target=notify_target)
        return True

    def _edge_added(self, tx: Tx, follower_id: int, target: Account, at: int, *,
                    notify_target: bool = True) -> None:
        """What a new edge brings along: counters, history event, notification, backfill,
        fan-out mode, milestone."""
        stores = self.stores
        target_id = target.id
        stores.counters.add(tx, target_id, bucket_of(follower_id, self.shards), followers=1)
        stores.counters.add(tx, follower_id, bucket_of(target_id, self.shards), following=1)
        stores.follows.record_event(tx, target_id, follower_id, +1, new_id(), at)
        if notify_target:
            notify(stores, tx, target_id, "follow", follower_id)
        if target.last_status_at is not None:  # (nothing to backfill from a silent account)
            stores.jobs.enqueue(tx, "backfill",
                                {"account_id": follower_id, "author_id": target_id},
                                run_after=0)
        followers = self._update_fanout_mode(tx, target, follower_id, +1)
        emit(tx, FollowersChanged(target_id, followers, at))
        self.milestones.record_if_reached(stores, tx, target_id, followers, follower_id, at)

    async def unfollow(self, follower_id: int, target_id: int) -> Relationship:
        def apply(tx: Tx) -> Relationship:
            target = self._target(tx, follower_id, target_id)
            stores = self.stores
            if stores.follow_requests.take(tx, follower_id, target_id) is not None:
                withdraw(stores, tx, target_id, "follow_request", follower_id)
            if stores.follows.delete(tx, follower_id, target_id):
                stores.counters.add(tx, target_id, bucket_of(follower_id, self.shards),
                                    followers=-1)
                stores.counters.add(tx, follower_id, bucket_of(target_id, self.shards),
                                    following=-1)
                at = now_ms()
                stores.follows.record_event(tx, target_id, follower_id, -1, new_id(), at)
                withdraw(stores, tx, target_id, "follow", follower_id)
                stores.jobs.enqueue(tx, "forget_author",
                                    {"account_id": follower_id, "author_id": target_id},
                                    run_after=0)
                followers = self._update_fanout_mode(tx, target, follower_id, -1)
                emit(tx, FollowersChanged(target_id, followers, at))
            return self.relationships_in(tx, follower_id, [target_id])[0]

        return await self.db.write(apply)

    def _update_fanout_mode(self, tx: Tx, account: Account, follower_id: int,
                            change: int) -> int:
        """Switch an author between push and pull fan-out, with hysteresis, after
        ``follower_id`` followed (``change`` +1) or unfollowed (-1); returns the author's
        follower count. ``account`` was loaded under its counter lock just before this edge
        changed (``_held_account``), so its count plus ``change`` is the count now (no
        statement to read it again) and its mode is current (only this method changes it)."""
        account_id = account.id
        followers = account.followers_count + change
        if not account.pulled and followers >= self.pull_above:
            # has_unpushed at once, so readers and live streams start merging this author
            # before its first unpushed post.
            self.stores.accounts.update(tx, account_id, {"pulled": True, "has_unpushed": True})
            emit(tx, PulledFollowChanged(account_id, None))
        elif account.pulled and followers < self.push_below:
            self.stores.accounts.update(tx, account_id, {"pulled": False})
        if account.pulled:
            emit(tx, PulledFollowChanged(account_id, follower_id))
        return followers

    async def authorize_request(self, account_id: int, requester_id: int) -> Relationship:
        """Accept a follow request: the requester now follows ``account_id``."""

        def apply(tx: Tx) -> Relationship:
            options = self.stores.follow_requests.take(tx, requester_id, account_id)
            if options is None:
                raise NotFound()
            withdraw(self.stores, tx, account_id, "follow_request", requester_id)
            account = self._held_account(tx, account_id)
            assert account is not None  # (the request's account: it owns the request)
            self._add_edge(tx, requester_id, account, *options, notify_target=False)
            return self.relationships_in(tx, account_id, [requester_id])[0]

        return await self.db.write(apply)

    def accept_all_requests(self, tx: Tx, account_id: int) -> None:
        """An account unlocked: every pending request becomes a follow, as in Mastodon."""
        while True:
            pending = self.stores.follow_requests.page(tx, account_id, Page(limit=500))
            if not pending:
                return
            for _, requester_id in pending:
                options = self.stores.follow_requests.take(tx, requester_id, account_id)
                if options is not None:
                    withdraw(self.stores, tx, account_id, "follow_request", requester_id)
                    # (loaded per edge: the previous edge changed its count, maybe its mode)
                    account = self._held_account(tx, account_id)
                    assert account is not None  # (it is unlocking itself)
                    self._add_edge(tx, requester_id, account, *options)

    async def reject_request(self, account_id: int, requester_id: int) -> Relationship:
        def apply(tx: Tx) -> Relationship:
            if self.stores.follow_requests.take(tx, requester_id, account_id) is None:
                raise NotFound()
            withdraw(self.stores, tx, account_id, "follow_request", requester_id)
            return self.relationships_in(tx, account_id, [requester_id])[0]

        return await self.db.write(apply)

    async def requests(self, account_id: int, page: Page) -> list[tuple[int, Account]]:
        """Pending requests to follow ``account_id``, newest first."""

        def read(tx: Tx) -> list[tuple[int, Account]]:
            rows = self.stores.follow_requests.page(tx, account_id, page)
            accounts = self.stores.accounts.by_ids(tx, [a for _, a in rows])
            return [(i, accounts[a]) for i, a in rows if a in accounts]

        return await self.db.read(read)

    async def pending_request_count(self, account_id: int) -> int:
        return await self.db.read(lambda tx: self.stores.follow_requests.count(tx, account_id))

    def relationships_in(self, tx: Tx, viewer_id: int, ids: Sequence[int]) -> list[Relationship]:
        facts = self.stores.follows.relations(tx, viewer_id, ids)
        return [_relationship(account_id, facts) for account_id in ids]

    async def relationships(self, viewer_id: int, ids: Sequence[int]) -> list[Relationship]:
        def read(tx: Tx) -> list[Relationship]:
            known = self.stores.accounts.by_ids(tx, ids)
            return self.relationships_in(tx, viewer_id, [i for i in ids if i in known])

        return await self.db.read(read)

    async def familiar_followers(self, viewer_id: int, ids: Sequence[int]
                                 ) -> list[tuple[int, list[Account]]]:
        """For each of ``ids``: the accounts the viewer follows that follow it (up to
        ``FAMILIAR_LIMIT``, most recent follow first)."""

        def read(tx: Tx) -> list[tuple[int, list[Account]]]:
            found = self.stores.follows.familiar_followers(tx, viewer_id, ids, FAMILIAR_LIMIT)
            accounts = self.stores.accounts.by_ids(
                tx, {a for followers in found.values() for a in followers})
            return [(i, [accounts[a] for a in found.get(i, []) if a in accounts]) for i in ids]

        return await self.db.read(read)

    async def followers(self, account_id: int, page: Page) -> list[tuple[int, Account]]:
        def read(tx: Tx) -> list[tuple[int, Account]]:
            if not self.stores.accounts.by_ids(tx, [account_id]):
                raise NotFound()
            rows = self.stores.follows.followers_page(tx, account_id, page)
            accounts = self.stores.accounts.by_ids(tx, [a for _, a in rows])
            return [(i, accounts[a]) for i, a in rows if a in accounts]

        return await self.db.read(read)

    async def following(self, account_id: int, page: Page) -> list[tuple[int, Account]]:
        def read(tx: Tx) -> list[tuple[int, Account]]:
            if not self.stores.accounts.by_ids(tx, [account_id]):
                raise NotFound()
            rows = self.stores.follows.following_page(tx, account_id, page)
            accounts = self.stores.accounts.by_ids(tx, [a for _, a in rows])
            return [(i, accounts[a]) for i, a in rows if a in accounts]

        return await self.db.read(read)


def _not_oneself(follower_id: int, target_id: int) -> None:
    if follower_id == target_id:
        raise Forbidden("You cannot follow yourself")


def _relationship(account_id: int, facts: RelationshipFacts) -> Relationship:
    flags = facts.following.get(account_id)
    return Relationship(
        id=account_id,
        following=flags is not None,
        followed_by=account_id in facts.followed_by,
        showing_reblogs=bool(flags and flags[0]),
        notifying=bool(flags and flags[1]),
        requested=account_id in facts.requested,
        requested_by=account_id in facts.requested_by,
    )
