"""The follow graph and its event log in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update

from roost.domain.models import FanoutQuery, FollowAttempt, Page, RelationshipFacts
from roost.storage.database import Tx
from roost.storage.schema import follow_requests, follows
from roost.storage.sql.accounts import BY_IDS, account_from
from roost.storage.sql.common import insert_ignore, newest_first, paged
from roost.storage.sql.raw import Raw

# A follow, its answer (the relationship) and every home read run these: on the driver's
# cursor (raw.py).
_INSERT = Raw("INSERT INTO follows"
              " (account_id, target_account_id, id, show_reblogs, notify, created_at)"
              " VALUES (:follower_id, :target_id, :id, :show_reblogs, :notify, :created_at)"
              " ON CONFLICT DO NOTHING")
# The edge only if the account exists and is open (a locked one gets a follow request).
_INSERT_IF_OPEN = Raw(
    "INSERT INTO follows (account_id, target_account_id, id, show_reblogs, notify, created_at)"
    " SELECT :follower_id, :target_id, :id, :show_reblogs, :notify, :created_at"
    " WHERE EXISTS (SELECT 1 FROM accounts WHERE id = :target_id AND locked = FALSE)"
    " ON CONFLICT DO NOTHING")
_GET = Raw("SELECT show_reblogs, notify FROM follows"
           " WHERE account_id = :follower_id AND target_account_id = :target_id")
_FOLLOWING_OF = Raw("SELECT target_account_id, show_reblogs, notify FROM follows"
                    " WHERE account_id = :viewer_id AND target_account_id IN ids(:ids)",
                    lists=["ids"])
# Who of the accounts the viewer follows follows each of ``ids``: from the viewer's follows
# (hundreds at most) to each one's edge to the account, by primary key, never through the
# account's followers (a celebrity has millions).
_FAMILIAR = Raw("SELECT theirs.target_account_id, theirs.account_id FROM follows mine"
                " JOIN follows theirs ON theirs.account_id = mine.target_account_id"
                " WHERE mine.account_id = :viewer_id AND theirs.target_account_id IN ids(:ids)"
                " ORDER BY theirs.target_account_id, theirs.id DESC", lists=["ids"])
# The four facts behind a Relationship in one round trip: 1 the viewer follows (with the
# options), 2 follows the viewer, 3 the viewer asked to follow, 4 asked to follow the viewer.
_RELATIONS = Raw(
    "SELECT 1, target_account_id, show_reblogs, notify FROM follows"
    " WHERE account_id = :viewer_id AND target_account_id IN ids(:ids)"
    " UNION ALL SELECT 2, account_id, NULL, NULL FROM follows"
    " WHERE target_account_id = :viewer_id AND account_id IN ids(:ids)"
    " UNION ALL SELECT 3, target_account_id, NULL, NULL FROM follow_requests"
    " WHERE account_id = :viewer_id AND target_account_id IN ids(:ids)"
    " UNION ALL SELECT 4, account_id, NULL, NULL FROM follow_requests"
    " WHERE target_account_id = :viewer_id AND account_id IN ids(:ids)", lists=["ids"])
# From the few accounts with unpushed posts (ix_accounts_has_unpushed) to the follow edge, not
# from the reader's hundreds of follows to their accounts.
_FOLLOWED_WITH_UNPUSHED = Raw(
    "SELECT accounts.id FROM accounts WHERE accounts.has_unpushed = TRUE AND EXISTS"
    " (SELECT 1 FROM follows WHERE follows.account_id = :follower_id"
    " AND follows.target_account_id = accounts.id) ORDER BY accounts.id")
_RECORD_EVENT = Raw("INSERT INTO follow_events (target_account_id, id, account_id, delta,"
                    " created_at) VALUES (:target_id, :id, :follower_id, :delta, :created_at)")


def _fanout_targets(active: bool, reblog: bool, reply: bool) -> Raw:
    """The statement behind ``SqlFollowStore.fanout_targets`` for one combination of its
    conditions (every fan-out step runs one: raw, see raw.py)."""
    sql = ("SELECT f.id, f.account_id FROM follows f"
           + (" JOIN accounts a ON a.id = f.account_id" if active else "")
           + " WHERE f.target_account_id = :author_id AND f.id > :after"
           + (" AND a.last_active_at >= :active_since" if active else "")
           + (" AND f.show_reblogs = TRUE" if reblog else "")
           + (" AND (f.account_id = :reply_to OR EXISTS (SELECT 1 FROM follows other"
              " WHERE other.account_id = f.account_id"
              " AND other.target_account_id = :reply_to))" if reply else "")
           + " ORDER BY f.id LIMIT :limit")
    return Raw(sql)


_FANOUT_TARGETS: dict[tuple[bool, bool, bool], Raw] = {}


def _fanout_statement(query: FanoutQuery) -> Raw:
    reply = (query.reply_to_account_id is not None
             and query.reply_to_account_id != query.author_id)
    shape = (bool(query.active_since), query.is_reblog, reply)
    raw = _FANOUT_TARGETS.get(shape)
    if raw is None:
        raw = _FANOUT_TARGETS[shape] = _fanout_targets(*shape)
    return raw


class SqlFollowStore:
    def insert(self, tx: Tx, follower_id: int, target_id: int, follow_id: int, at: int,
               show_reblogs: bool, notify: bool) -> bool:
        return _INSERT.rowcount(tx, {
            "follower_id": follower_id, "target_id": target_id, "id": follow_id,
            "show_reblogs": show_reblogs, "notify": notify, "created_at": at,
        }) == 1

    def delete(self, tx: Tx, follower_id: int, target_id: int) -> bool:
        result = tx.execute(delete(follows).where(
            follows.c.account_id == follower_id, follows.c.target_account_id == target_id
        ))
        return result.rowcount == 1

    def update(self, tx: Tx, follower_id: int, target_id: int, show_reblogs: bool,
               notify: bool) -> None:
        tx.execute(update(follows).where(
            follows.c.account_id == follower_id, follows.c.target_account_id == target_id
        ).values(show_reblogs=show_reblogs, notify=notify))

    def get(self, tx: Tx, follower_id: int, target_id: int) -> tuple[bool, bool] | None:
        row = _GET.first(tx, {"follower_id": follower_id, "target_id": target_id})
        return (bool(row[0]), bool(row[1])) if row else None

    def followers_page(self, tx: Tx, target_id: int, page: Page) -> list[tuple[int, int]]:
        stmt = select(follows.c.id, follows.c.account_id).where(
            follows.c.target_account_id == target_id
        )
        rows = tx.execute(paged(stmt, follows.c.id, page)).all()
        return [(r[0], r[1]) for r in newest_first(rows, page)]

    def following_page(self, tx: Tx, follower_id: int, page: Page) -> list[tuple[int, int]]:
        stmt = select(follows.c.id, follows.c.target_account_id).where(
            follows.c.account_id == follower_id
        )
        rows = tx.execute(paged(stmt, follows.c.id, page)).all()
        return [(r[0], r[1]) for r in newest_first(rows, page)]

    def following_of(self, tx: Tx, viewer_id: int,
                     ids: Sequence[int]) -> dict[int, tuple[bool, bool]]:
        """For each of ``ids`` the viewer follows: (show_reblogs, notify)."""
        if not ids:
            return {}
        rows = _FOLLOWING_OF.all(tx, {"viewer_id": viewer_id, "ids": ids})
        return {r[0]: (bool(r[1]), bool(r[2])) for r in rows}

    def familiar_followers(self, tx: Tx, viewer_id: int, ids: Sequence[int],
                           limit: int) -> dict[int, list[int]]:
        """For each of ``ids``, up to ``limit`` of its followers the viewer follows, most
        recent follow first."""
        found: dict[int, list[int]] = {}
        if not ids:
            return found
        for account_id, follower_id in _FAMILIAR.all(tx, {"viewer_id": viewer_id, "ids": ids}):
            followers = found.setdefault(account_id, [])
            if len(followers) < limit:
                followers.append(follower_id)
        return found

    def follow_open(self, tx: Tx, follower_id: int, target_id: int, follow_id: int, at: int,
                    show_reblogs: bool, notify: bool) -> FollowAttempt:
        """The common follow in one round trip on PostgreSQL (three statements, with whatever
        was sent ahead, such as the target's counter lock): load the target with its counts,
        the relationship facts, and insert the edge if the target is open."""
        (accounts, _), (relations, _), (_, inserted) = Raw.together(tx, [
            (BY_IDS, {"ids": [target_id]}),
            (_RELATIONS, {"viewer_id": follower_id, "ids": [target_id]}),
            (_INSERT_IF_OPEN, {"follower_id": follower_id, "target_id": target_id,
                               "id": follow_id, "show_reblogs": show_reblogs, "notify": notify,
                               "created_at": at}),
        ])
        return FollowAttempt(account_from(accounts[0]) if accounts else None,
                             _facts(relations), inserted == 1)

    def relations(self, tx: Tx, viewer_id: int, ids: Sequence[int]) -> RelationshipFacts:
        if not ids:
            return RelationshipFacts({}, set(), set(), set())
        return _facts(_RELATIONS.all(tx, {"viewer_id": viewer_id, "ids": ids}))

    def followed_ids(self, tx: Tx, follower_id: int) -> list[int]:
        return list(tx.execute(
            select(follows.c.target_account_id).where(follows.c.account_id == follower_id)
            .order_by(follows.c.target_account_id)
        ).scalars())

    def followed_with_unpushed(self, tx: Tx, follower_id: int) -> list[int]:
        """Accounts the follower follows whose unpushed posts must be merged into their home."""
        return _FOLLOWED_WITH_UNPUSHED.scalars(tx, {"follower_id": follower_id})

    def fanout_targets(self, tx: Tx, author_id: int, after: int, limit: int,
                       reply_to_account_id: int | None, is_reblog: bool,
                       active_since: int = 0) -> list[tuple[int, int]]:
        """(follow id, follower id) of followers of ``author_id`` whose home timeline gets the
        post, in follow-id order from ``after``, so a fan-out can resume where it stopped.

        Like Mastodon, a reply to someone reaches only followers who also follow that someone
        (or are them), and a reblog skips followers who hid the author's reblogs. Followers not
        active since ``active_since`` are skipped (their timeline is rebuilt when they return).
        """
        return self.fanout_targets_many(tx, [FanoutQuery(
            author_id, after, limit, reply_to_account_id, is_reblog, active_since)])[0]

    def fanout_targets_many(self, tx: Tx, queries: Sequence[FanoutQuery]
                            ) -> list[list[tuple[int, int]]]:
        if not queries:
            return []
        # (On PostgreSQL's writer the statements go out together: a worker's batch of fan-out
        # steps waits for one round trip, not one per step.)
        answers = Raw.together(tx, [(_fanout_statement(q), {
            "author_id": q.author_id, "after": q.after, "limit": q.limit,
            "active_since": q.active_since, "reply_to": q.reply_to_account_id,
        }) for q in queries])
        return [[(r[0], r[1]) for r in rows] for rows, _ in answers]

    def record_event(self, tx: Tx, target_id: int, follower_id: int, delta: int,
                     event_id: int, at: int) -> None:
        _RECORD_EVENT.send(tx, {"target_id": target_id, "id": event_id,
                               "follower_id": follower_id, "delta": delta, "created_at": at})


class SqlFollowRequestStore:
    def insert(self, tx: Tx, requester_id: int, target_id: int, request_id: int, at: int,
               show_reblogs: bool, notify: bool) -> bool:
        result = tx.execute(insert_ignore(tx, follow_requests).values(
            account_id=requester_id, target_account_id=target_id, id=request_id,
            show_reblogs=show_reblogs, notify=notify, created_at=at,
        ))
        return result.rowcount == 1

    def take(self, tx: Tx, requester_id: int, target_id: int) -> tuple[bool, bool] | None:
        """Remove a pending request; its (show_reblogs, notify) options, or None."""
        r = follow_requests.c
        row = tx.execute(delete(follow_requests).where(
            r.account_id == requester_id, r.target_account_id == target_id
        ).returning(r.show_reblogs, r.notify)).first()
        return (row[0], row[1]) if row else None

    def page(self, tx: Tx, target_id: int, page: Page) -> list[tuple[int, int]]:
        r = follow_requests.c
        stmt = select(r.id, r.account_id).where(r.target_account_id == target_id)
        rows = tx.execute(paged(stmt, r.id, page)).all()
        return [(row[0], row[1]) for row in newest_first(rows, page)]

    def count(self, tx: Tx, target_id: int) -> int:
        r = follow_requests.c
        return int(tx.execute(select(func.count()).select_from(follow_requests).where(
            r.target_account_id == target_id)).scalar() or 0)


def _facts(rows: Sequence[Sequence[Any]]) -> RelationshipFacts:
    """``_RELATIONS``' rows as facts."""
    facts = RelationshipFacts({}, set(), set(), set())
    kinds = {2: facts.followed_by, 3: facts.requested, 4: facts.requested_by}
    for kind, account_id, show_reblogs, notify in rows:
        if kind == 1:
            facts.following[account_id] = (bool(show_reblogs), bool(notify))
        else:
            kinds[kind].add(account_id)
    return facts
