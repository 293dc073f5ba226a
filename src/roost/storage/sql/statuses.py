"""Statuses, mentions, reblogs and idempotency keys in SQL."""

from __future__ import annotations

from collections import Counter, namedtuple
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update

from roost.domain.models import Page, Status, StatusMarks, Tag, TimelineEntry, Visibility
from roost.storage.database import Tx
from roost.storage.schema import (
    favourites,
    idempotency_keys,
    mentions,
    status_tags,
    statuses,
)
from roost.storage.sql.common import insert_ignore, newest_first, paged
from roost.storage.sql.memo import RowMemo
from roost.storage.sql.raw import Raw, page_bounds, page_order, page_params, page_shape

# Hydrating a timeline page runs these on every read: on the driver's cursor (raw.py).
_STATUS_COLUMNS: list[str] = [c.name for c in statuses.c]
_StatusRow = namedtuple("_StatusRow", _STATUS_COLUMNS)  # type: ignore[misc]
_BY_IDS = Raw(f"SELECT {', '.join(_STATUS_COLUMNS)} FROM statuses WHERE id IN ids(:ids)",
              lists=["ids"])
# What the viewer favourited, reblogged, bookmarked and pinned, in one round trip for a page.
_VIEWER_MARKS = Raw(
    "SELECT 0, status_id FROM favourites"
    " WHERE account_id = :viewer_id AND status_id IN ids(:ids)"
    " UNION ALL SELECT 1, reblog_of_id FROM statuses"
    " WHERE account_id = :viewer_id AND reblog_of_id IN ids(:ids)"
    " UNION ALL SELECT 2, status_id FROM bookmarks"
    " WHERE account_id = :viewer_id AND status_id IN ids(:ids)"
    " UNION ALL SELECT 3, status_id FROM status_pins"
    " WHERE account_id = :viewer_id AND status_id IN ids(:ids)", lists=["ids"])
_INSERT = Raw(
    f"INSERT INTO statuses ({', '.join(_STATUS_COLUMNS)})"
    f" VALUES ({', '.join(':' + name for name in _STATUS_COLUMNS)})")
# Every home read merges these (see ``pulled``): the newest unpushed posts of each account
# the viewer follows that has some (found from the few has_unpushed accounts, by index, not
# from the viewer's hundreds of follows), with the rules of fan-out. Each author's newest
# ``limit`` are taken in a subquery of their own, walking (account_id, id) from the end, so a
# celebrity's thousands of unpushed posts cost one page, not a sort of all of them
# (`python -m bench.pulled`: with 20,000 such posts SQLite took 5.7 ms per first page, now
# 0.04 ms). The page bounds go inside, the order and limit both inside and out. That is
# SQLite's form (a correlated IN, run once per author). PostgreSQL plans the plain form
# well (0.37 ms for either page) and the per-author forms badly: it ran that correlated IN
# once per status, and a LATERAL join walked the primary key filtered by author (1.7 ms for
# a page deep in the history, and worse the more statuses others have).
_PULLED_AUTHORS = (
    "SELECT accounts.id FROM accounts WHERE accounts.has_unpushed = TRUE AND EXISTS"
    " (SELECT 1 FROM follows WHERE follows.account_id = :viewer"
    " AND follows.target_account_id = accounts.id)")
_PULLED_RULES = (
    f" AND t.pushed = FALSE AND t.visibility != '{Visibility.DIRECT.value}'"
    " AND (t.in_reply_to_account_id IS NULL OR t.in_reply_to_account_id = t.account_id"
    " OR t.in_reply_to_account_id = :viewer OR t.in_reply_to_account_id IN"
    " (SELECT target_account_id FROM follows WHERE account_id = :viewer))"
    " AND (t.reblog_of_id IS NULL OR t.account_id NOT IN (SELECT target_account_id FROM"
    " follows WHERE account_id = :viewer AND show_reblogs = FALSE))")
_PULLED_PAGES: dict[tuple[str, bool, bool, bool], Raw] = {}


def _pulled_for(dialect: str, page: Page) -> tuple[Raw, dict[str, Any]]:
    key = (dialect, *page_shape(page))
    raw = _PULLED_PAGES.get(key)
    if raw is None:
        bounds, order = page_bounds("t.id", page), page_order(page)
        if dialect == "postgresql":
            sql = ("SELECT t.id, t.account_id, t.reblog_of_id FROM statuses t WHERE"
                   f" t.account_id IN ({_PULLED_AUTHORS}){_PULLED_RULES}{bounds}"
                   f" ORDER BY t.id {order} LIMIT :limit")
        else:
            sql = (f"SELECT s.id, s.account_id, s.reblog_of_id FROM ({_PULLED_AUTHORS}) a"
                   " JOIN statuses s ON s.id IN (SELECT t.id FROM statuses t WHERE"
                   f" t.account_id = a.id{_PULLED_RULES}{bounds} ORDER BY t.id {order}"
                   f" LIMIT :limit) ORDER BY s.id {order} LIMIT :limit")
        raw = _PULLED_PAGES[key] = Raw(sql)
    return raw, page_params(page)


# What push delivery puts in a viewer's home timeline, read back from the statuses: the
# fan-out's pushed posts of followed accounts, under the rules of ``fanout_targets`` and
# ``Fanout.steps`` (replies, hidden reblogs, reblogs of private posts), plus the
# viewer's own posts and the private and direct posts that mention them (``_deliver``).
# Each followed account's newest first by its own index, at most :per_author from each, then a
# second look (``_PUSHED_BY``) at the accounts that gave that many, above the oldest id kept.
# A reblog's original is looked up by its id, one row per reblog: as NOT EXISTS, PostgreSQL
# hashed the ids of every private status in the table for each statement instead.
FILL_FIRST = 40  # the most posts per followed account in a fill's first look (``delivered_to``)
_PUSHED_RULES = (
    f" AND t.pushed = TRUE AND t.visibility != '{Visibility.DIRECT.value}'"
    " AND (t.in_reply_to_account_id IS NULL OR t.in_reply_to_account_id = t.account_id"
    " OR t.in_reply_to_account_id = :viewer OR t.in_reply_to_account_id IN"
    " (SELECT target_account_id FROM follows WHERE account_id = :viewer))"
    " AND (t.reblog_of_id IS NULL OR (f.show_reblogs = TRUE AND COALESCE((SELECT o.visibility"
    f" FROM statuses o WHERE o.id = t.reblog_of_id), '') != '{Visibility.PRIVATE.value}'))")
_PUSHED_NEWEST = (f"FROM statuses t WHERE t.account_id = f.target_account_id{_PUSHED_RULES}"
                  " AND t.id > :floor ORDER BY t.id DESC LIMIT :per_author")
# Each followed account's newest, by the (account_id, id) index: SQLite runs the IN once per
# followed account; PostgreSQL ran it once per status of the table (minutes for a thousand
# followed accounts, `python -m bench.fill`), and a LATERAL join is its form of the same walk.
_PUSHED_FROM = {
    "sqlite": "SELECT s.id, s.account_id, s.reblog_of_id FROM follows f JOIN statuses s ON"
              f" s.id IN (SELECT t.id {_PUSHED_NEWEST}) WHERE f.account_id = :viewer",
    "postgresql": "SELECT s.id, s.account_id, s.reblog_of_id FROM follows f CROSS JOIN"
                  " LATERAL (SELECT t.id, t.account_id, t.reblog_of_id"
                  f" {_PUSHED_NEWEST}) s WHERE f.account_id = :viewer",
}
# What ``_deliver`` puts in a home timeline besides fan-out: one's own posts and the private
# and direct posts that mention one.
_DIRECTLY = (
    "SELECT id, account_id, reblog_of_id FROM (SELECT id, account_id, reblog_of_id"
    " FROM statuses WHERE account_id = :viewer ORDER BY id DESC LIMIT :limit) own"
    " UNION SELECT id, account_id, reblog_of_id FROM (SELECT s.id, s.account_id,"
    " s.reblog_of_id FROM mentions m JOIN statuses s ON s.id = m.status_id"
    f" WHERE m.account_id = :viewer AND s.visibility IN ('{Visibility.PRIVATE.value}',"
    f" '{Visibility.DIRECT.value}') ORDER BY m.status_id DESC LIMIT :limit) mentioned")
_DELIVERED_DIRECTLY = Raw(_DIRECTLY + " ORDER BY 1 DESC LIMIT :limit")
# Posts of the given followed accounts (``delivered_from``; a fill's second look).
_PUSHED_BY = {engine: Raw(sql + " AND f.target_account_id IN ids(:authors) ORDER BY 1 DESC",
                          lists=["authors"]) for engine, sql in _PUSHED_FROM.items()}
_DELIVERED_TO = {engine: Raw(sql + " UNION " + _DIRECTLY + " ORDER BY 1 DESC LIMIT :limit")
                 for engine, sql in _PUSHED_FROM.items()}
_FOLLOWING = Raw("SELECT count(*) FROM follows WHERE account_id = :viewer")

_MENTIONS_OF = Raw("SELECT status_id, account_id FROM mentions WHERE status_id IN ids(:ids)"
                   " ORDER BY status_id, account_id", lists=["ids"])
# Mentions (kind 0: the account) and hashtags (kind 1: the tag's id and name) of a page of
# statuses in one round trip.
_MENTIONS_AND_TAGS = Raw(
    "SELECT 0, status_id, account_id, NULL FROM mentions WHERE status_id IN ids(:ids)"
    " UNION ALL SELECT 1, status_tags.status_id, tags.id, tags.name FROM status_tags"
    " JOIN tags ON tags.id = status_tags.tag_id WHERE status_tags.status_id IN ids(:ids)"
    " ORDER BY 1, 2, 3", lists=["ids"])


def _status(row: Any) -> Status:
    return Status(
        id=row.id, account_id=row.account_id, text=row.text, content=row.content,
        spoiler_text=row.spoiler_text, sensitive=bool(row.sensitive),
        visibility=Visibility(row.visibility), language=row.language,
        in_reply_to_id=row.in_reply_to_id, in_reply_to_account_id=row.in_reply_to_account_id,
        reblog_of_id=row.reblog_of_id, pushed=bool(row.pushed), replies_count=row.replies_count,
        reblogs_count=row.reblogs_count, favourites_count=row.favourites_count,
        created_at=row.created_at, edited_at=row.edited_at,
    )


_status_from = RowMemo(lambda row: _status(_StatusRow._make(row)))  # (memo.py)


class SqlStatusStore:
    def insert(self, tx: Tx, status: Status) -> None:
        _INSERT.send(tx, dict(
            id=status.id, account_id=status.account_id, text=status.text, content=status.content,
            spoiler_text=status.spoiler_text, sensitive=status.sensitive,
            visibility=status.visibility.value, language=status.language,
            in_reply_to_id=status.in_reply_to_id,
            in_reply_to_account_id=status.in_reply_to_account_id,
            reblog_of_id=status.reblog_of_id, pushed=status.pushed, replies_count=0,
            reblogs_count=0, favourites_count=0, created_at=status.created_at, edited_at=None,
        ))

    def by_ids(self, tx: Tx, ids: Iterable[int]) -> dict[int, Status]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        return {r[0]: _status_from(r) for r in _BY_IDS.all(tx, {"ids": wanted})}

    def delete(self, tx: Tx, status_id: int) -> None:
        tx.execute(delete(mentions).where(mentions.c.status_id == status_id))
        tx.execute(delete(statuses).where(statuses.c.id == status_id))

    def add_counts(self, tx: Tx, status_id: int, *, replies: int = 0, reblogs: int = 0,
                   favourites: int = 0) -> None:
        c = statuses.c
        tx.execute(update(statuses).where(c.id == status_id).values(
            replies_count=c.replies_count + replies,
            reblogs_count=c.reblogs_count + reblogs,
            favourites_count=c.favourites_count + favourites,
        ))

    def by_account(self, tx: Tx, account_id: int, page: Page, visibilities: Sequence[str],
                   exclude_replies: bool, exclude_reblogs: bool) -> list[int]:
        c = statuses.c
        stmt = select(c.id).where(c.account_id == account_id, c.visibility.in_(list(visibilities)))
        if exclude_replies:
            # Mastodon keeps self-replies (threads) when replies are excluded.
            stmt = stmt.where(
                c.in_reply_to_id.is_(None) | (c.in_reply_to_account_id == account_id)
            )
        if exclude_reblogs:
            stmt = stmt.where(c.reblog_of_id.is_(None))
        return newest_first(tx.execute(paged(stmt, c.id, page)).scalars().all(), page)

    def public(self, tx: Tx, page: Page) -> list[int]:
        c = statuses.c
        stmt = select(c.id).where(
            c.visibility == Visibility.PUBLIC.value,
            c.reblog_of_id.is_(None),
            c.in_reply_to_id.is_(None) | (c.in_reply_to_account_id == c.account_id),
        )
        return newest_first(tx.execute(paged(stmt, c.id, page)).scalars().all(), page)

    def by_tag(self, tx: Tx, tag_id: int, page: Page) -> list[int]:
        st = status_tags.c
        stmt = (
            select(st.status_id)
            .join(statuses, statuses.c.id == st.status_id)
            .where(st.tag_id == tag_id, statuses.c.visibility == Visibility.PUBLIC.value)
        )
        return newest_first(tx.execute(paged(stmt, st.status_id, page)).scalars().all(), page)

    def pulled(self, tx: Tx, viewer_id: int, page: Page) -> list[TimelineEntry]:
        """Posts not pushed to followers, of the pulled (celebrity) accounts ``viewer_id``
        follows, for merging into their home at read time; in one query with finding those
        accounts, since every home read asks.

        The rules fan-out applies to pushed posts hold here too: a reply reaches the viewer
        only if it answers the author themself, the viewer, or someone the viewer follows;
        reblogs of an author whose reblogs the viewer hides are left out.
        """
        raw, params = _pulled_for(tx.dialect.name, page)
        rows = newest_first(raw.all(tx, {**params, "viewer": viewer_id}), page)
        return [TimelineEntry(r[0], r[1], r[2]) for r in rows]

    def delivered_to(self, tx: Tx, viewer_id: int, limit: int) -> list[TimelineEntry]:
        # A first look takes a few posts from each followed account, enough for twice
        # ``limit`` in all (at most FILL_FIRST): ``limit`` from each would read thousands of
        # rows per account for someone following prolific ones, and a fixed 40 from each
        # cost 220 ms of SQLite for someone following 5,000 (now 12; `python -m
        # bench.fill`). An account that gave all it was asked for may have more among the
        # newest ``limit``: those accounts are read again, above the oldest id kept.
        engine = tx.dialect.name
        following = _FOLLOWING.first(tx, {"viewer": viewer_id})[0]  # type: ignore[index]
        first = min(FILL_FIRST, max(1, -(-2 * limit // max(following, 1))))
        params = {"viewer": viewer_id, "limit": limit, "floor": 0, "per_author": first}
        rows = _DELIVERED_TO[engine].all(tx, params)
        given = Counter(r[1] for r in rows)
        again = [author for author, n in given.items() if n >= first and author != viewer_id]
        if again:
            floor = rows[-1][0] if len(rows) >= limit else 0
            more = _PUSHED_BY[engine].all(tx, {**params, "floor": floor, "per_author": limit,
                                               "authors": again})
            rows = sorted({r[0]: r for r in [*rows, *more]}.values(), reverse=True)[:limit]
        return [TimelineEntry(r[0], r[1], r[2]) for r in rows]

    def delivered_from(self, tx: Tx, viewer_id: int, author_ids: Sequence[int],
                       per_author: int) -> list[TimelineEntry]:
        if not author_ids:
            return []
        rows = _PUSHED_BY[tx.dialect.name].all(tx, {
            "viewer": viewer_id, "authors": author_ids, "floor": 0, "per_author": per_author})
        return [TimelineEntry(r[0], r[1], r[2]) for r in rows]

    def delivered_directly(self, tx: Tx, viewer_id: int, limit: int) -> list[TimelineEntry]:
        rows = _DELIVERED_DIRECTLY.all(tx, {"viewer": viewer_id, "limit": limit})
        return [TimelineEntry(r[0], r[1], r[2]) for r in rows]

    def reblog_id(self, tx: Tx, account_id: int, status_id: int) -> int | None:
        value: int | None = tx.execute(select(statuses.c.id).where(
            statuses.c.account_id == account_id, statuses.c.reblog_of_id == status_id
        )).scalar()
        return value

    def reblogs_of(self, tx: Tx, status_id: int) -> list[int]:
        return list(tx.execute(
            select(statuses.c.id).where(statuses.c.reblog_of_id == status_id)
            .order_by(statuses.c.id)
        ).scalars())

    def viewer_marks(self, tx: Tx, viewer_id: int, ids: Sequence[int]) -> StatusMarks:
        marks = StatusMarks(set(), set(), set(), set())
        if not ids:
            return marks
        kinds = (marks.favourited, marks.reblogged, marks.bookmarked, marks.pinned)
        for kind, status_id in _VIEWER_MARKS.all(tx, {"viewer_id": viewer_id, "ids": ids}):
            kinds[kind].add(status_id)
        return marks

    def rebloggers_page(self, tx: Tx, status_id: int, page: Page) -> list[tuple[int, int]]:
        stmt = select(statuses.c.id, statuses.c.account_id).where(
            statuses.c.reblog_of_id == status_id
        )
        rows = tx.execute(paged(stmt, statuses.c.id, page)).all()
        return [(r[0], r[1]) for r in newest_first(rows, page)]

    def replies_to(self, tx: Tx, ids: Sequence[int]) -> list[Status]:
        if not ids:
            return []
        rows = tx.execute(
            select(statuses).where(statuses.c.in_reply_to_id.in_(list(ids))).order_by(statuses.c.id)
        )
        return [_status(r) for r in rows]

    def add_mentions(self, tx: Tx, status_id: int, account_ids: Iterable[int]) -> None:
        rows = [{"status_id": status_id, "account_id": a} for a in set(account_ids)]
        if rows:
            tx.execute(insert_ignore(tx, mentions), rows)

    def mentions_of(self, tx: Tx, ids: Sequence[int]) -> dict[int, list[int]]:
        if not ids:
            return {}
        out: dict[int, list[int]] = {}
        for status_id, account_id in _MENTIONS_OF.all(tx, {"ids": ids}):
            out.setdefault(status_id, []).append(account_id)
        return out

    def mentions_and_tags(self, tx: Tx, ids: Sequence[int]
                          ) -> tuple[dict[int, list[int]], dict[int, list[Tag]]]:
        """``mentions_of`` and ``TagStore.of_statuses`` together, for hydrating a page."""
        mentions: dict[int, list[int]] = {}
        tags: dict[int, list[Tag]] = {}
        if not ids:
            return mentions, tags
        for kind, status_id, other_id, name in _MENTIONS_AND_TAGS.all(tx, {"ids": ids}):
            if kind == 0:
                mentions.setdefault(status_id, []).append(other_id)
            else:
                tags.setdefault(status_id, []).append(Tag(other_id, name))
        return mentions, tags

    def idempotent_status(self, tx: Tx, account_id: int, key: str) -> int | None:
        value: int | None = tx.execute(select(idempotency_keys.c.status_id).where(
            idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
        )).scalar()
        return value

    def remember_idempotency(self, tx: Tx, account_id: int, key: str, status_id: int,
                             at: int) -> None:
        tx.execute(idempotency_keys.insert().values(
            account_id=account_id, key=key, status_id=status_id, created_at=at
        ))

    def _recounted(self, tx: Tx) -> list[tuple[int, str, int, int]]:
        c = statuses.c
        replies: dict[int, int] = dict(tx.execute(
            select(c.in_reply_to_id, func.count()).where(c.in_reply_to_id.is_not(None))
            .group_by(c.in_reply_to_id)
        ).all())
        reblogs: dict[int, int] = dict(tx.execute(
            select(c.reblog_of_id, func.count()).where(c.reblog_of_id.is_not(None))
            .group_by(c.reblog_of_id)
        ).all())
        favs: dict[int, int] = dict(tx.execute(
            select(favourites.c.status_id, func.count()).group_by(favourites.c.status_id)
        ).all())
        out = []
        for row in tx.execute(select(c.id, c.replies_count, c.reblogs_count, c.favourites_count)):
            for name, stored, actual in (
                ("replies", row[1], replies.get(row[0], 0)),
                ("reblogs", row[2], reblogs.get(row[0], 0)),
                ("favourites", row[3], favs.get(row[0], 0)),
            ):
                if stored != actual:
                    out.append((row[0], name, stored, actual))
        return out

    def discrepancies(self, tx: Tx) -> list[tuple[int, str, int, int]]:
        return self._recounted(tx)

    def repair(self, tx: Tx) -> int:
        wrong = self._recounted(tx)
        for status_id, name, stored, actual in wrong:
            self.add_counts(tx, status_id, **{name: actual - stored})
        return len(wrong)
