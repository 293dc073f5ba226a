"""The follow graph and its event log in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, bindparam, delete, exists, func, select, update

from roost.domain.models import Page
from roost.storage.database import Tx
from roost.storage.schema import accounts, follow_events, follow_requests, follows
from roost.storage.sql.common import insert_ignore, insert_ignore_once, newest_first, paged

# Built once with bound parameters: this runs on a hot path, and building a statement per
# call costs several times more Python than executing it (see BENCHMARKS.md).
_GET = select(follows.c.show_reblogs, follows.c.notify).where(
    follows.c.account_id == bindparam("follower_id"),
    follows.c.target_account_id == bindparam("target_id"),
)
_FOLLOWING_OF = select(
    follows.c.target_account_id, follows.c.show_reblogs, follows.c.notify
).where(follows.c.account_id == bindparam("viewer_id"),
        follows.c.target_account_id.in_(bindparam("ids", expanding=True)))
_FOLLOWED_BY = select(follows.c.account_id).where(
    follows.c.target_account_id == bindparam("viewer_id"),
    follows.c.account_id.in_(bindparam("ids", expanding=True)),
)
_FOLLOWED_WITH_UNPUSHED = (
    select(follows.c.target_account_id)
    .join(accounts, accounts.c.id == follows.c.target_account_id)
    .where(follows.c.account_id == bindparam("follower_id"), accounts.c.has_unpushed.is_(True))
    .order_by(follows.c.target_account_id)
)
_RECORD_EVENT = follow_events.insert()
_PENDING_FROM = select(follow_requests.c.target_account_id).where(
    follow_requests.c.account_id == bindparam("requester_id"),
    follow_requests.c.target_account_id.in_(bindparam("ids", expanding=True)),
)
_PENDING_TO = select(follow_requests.c.account_id).where(
    follow_requests.c.target_account_id == bindparam("target_id"),
    follow_requests.c.account_id.in_(bindparam("ids", expanding=True)),
)


class SqlFollowStore:
    def insert(self, tx: Tx, follower_id: int, target_id: int, follow_id: int, at: int,
               show_reblogs: bool, notify: bool) -> bool:
        result = tx.execute(insert_ignore_once(tx, follows), {
            "account_id": follower_id, "target_account_id": target_id, "id": follow_id,
            "show_reblogs": show_reblogs, "notify": notify, "created_at": at,
        })
        return result.rowcount == 1

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
        row = tx.execute(_GET, {"follower_id": follower_id, "target_id": target_id}).first()
        return (row[0], row[1]) if row else None

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
        rows = tx.execute(_FOLLOWING_OF, {"viewer_id": viewer_id, "ids": list(ids)})
        return {r[0]: (r[1], r[2]) for r in rows}

    def followed_by(self, tx: Tx, viewer_id: int, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        return set(tx.execute(_FOLLOWED_BY, {"viewer_id": viewer_id, "ids": list(ids)}).scalars())

    def followed_ids(self, tx: Tx, follower_id: int) -> list[int]:
        return list(tx.execute(
            select(follows.c.target_account_id).where(follows.c.account_id == follower_id)
            .order_by(follows.c.target_account_id)
        ).scalars())

    def followed_with_unpushed(self, tx: Tx, follower_id: int) -> list[int]:
        """Accounts the follower follows whose unpushed posts must be merged into their home."""
        return list(tx.execute(_FOLLOWED_WITH_UNPUSHED, {"follower_id": follower_id}).scalars())

    def fanout_targets(self, tx: Tx, author_id: int, after: int, limit: int,
                       reply_to_account_id: int | None, is_reblog: bool,
                       active_since: int = 0) -> list[tuple[int, int]]:
        """(follow id, follower id) of followers of ``author_id`` whose home timeline gets the
        post, in follow-id order from ``after``, so a fan-out can resume where it stopped.

        Like Mastodon, a reply to someone reaches only followers who also follow that someone
        (or are them), and a reblog skips followers who hid the author's reblogs. Followers not
        active since ``active_since`` are skipped (their timeline is rebuilt when they return).
        """
        f = follows.alias("f")
        stmt = select(f.c.id, f.c.account_id).where(
            f.c.target_account_id == author_id, f.c.id > after
        )
        if active_since:
            stmt = stmt.join(accounts, accounts.c.id == f.c.account_id).where(
                accounts.c.last_active_at >= active_since)
        if is_reblog:
            stmt = stmt.where(f.c.show_reblogs.is_(True))
        if reply_to_account_id is not None and reply_to_account_id != author_id:
            also = follows.alias("also")
            stmt = stmt.where(
                (f.c.account_id == reply_to_account_id)
                | exists().where(and_(
                    also.c.account_id == f.c.account_id,
                    also.c.target_account_id == reply_to_account_id,
                ))
            )
        rows = tx.execute(stmt.order_by(f.c.id).limit(limit)).all()
        return [(r[0], r[1]) for r in rows]

    def record_event(self, tx: Tx, target_id: int, follower_id: int, delta: int,
                     event_id: int, at: int) -> None:
        tx.execute(_RECORD_EVENT, {"target_account_id": target_id, "id": event_id,
                                   "account_id": follower_id, "delta": delta, "created_at": at})


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

    def pending_from(self, tx: Tx, requester_id: int, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        return set(tx.execute(_PENDING_FROM, {"requester_id": requester_id,
                                              "ids": list(ids)}).scalars())

    def pending_to(self, tx: Tx, target_id: int, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        return set(tx.execute(_PENDING_TO, {"target_id": target_id, "ids": list(ids)}).scalars())

    def page(self, tx: Tx, target_id: int, page: Page) -> list[tuple[int, int]]:
        r = follow_requests.c
        stmt = select(r.id, r.account_id).where(r.target_account_id == target_id)
        rows = tx.execute(paged(stmt, r.id, page)).all()
        return [(row[0], row[1]) for row in newest_first(rows, page)]

    def count(self, tx: Tx, target_id: int) -> int:
        r = follow_requests.c
        return int(tx.execute(select(func.count()).select_from(follow_requests).where(
            r.target_account_id == target_id)).scalar() or 0)
