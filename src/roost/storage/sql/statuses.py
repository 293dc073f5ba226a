"""Statuses, mentions, reblogs and idempotency keys in SQL."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update

from roost.domain.models import Page, Status, TimelineEntry, Visibility
from roost.storage.database import Tx
from roost.storage.schema import (
    favourites,
    idempotency_keys,
    mentions,
    status_tags,
    statuses,
)
from roost.storage.sql.common import insert_ignore, newest_first, paged
from roost.storage.sql.raw import Raw, paged_raw

# Hydrating a timeline page runs these on every read: on the driver's cursor (raw.py).
_STATUS_COLUMNS: list[str] = [c.name for c in statuses.c]
_StatusRow = namedtuple("_StatusRow", _STATUS_COLUMNS)  # type: ignore[misc]
_BY_IDS = Raw(f"SELECT {', '.join(_STATUS_COLUMNS)} FROM statuses WHERE id IN ids(:ids)",
              lists=["ids"])
_REBLOGGED = Raw("SELECT reblog_of_id FROM statuses"
                 " WHERE account_id = :viewer_id AND reblog_of_id IN ids(:ids)", lists=["ids"])
_INSERT = Raw(
    f"INSERT INTO statuses ({', '.join(_STATUS_COLUMNS)})"
    f" VALUES ({', '.join(':' + name for name in _STATUS_COLUMNS)})")
# Every home read of someone following a pulled author merges these (see ``pulled``).
_PULLED = ("SELECT id, account_id, reblog_of_id FROM statuses"
           " WHERE account_id IN ids(:authors) AND pushed = FALSE"
           f" AND visibility != '{Visibility.DIRECT.value}'")
_PULLED_FOR_VIEWER = (
    " AND (in_reply_to_account_id IS NULL OR in_reply_to_account_id = account_id"
    " OR in_reply_to_account_id = :viewer OR in_reply_to_account_id IN"
    " (SELECT target_account_id FROM follows WHERE account_id = :viewer))"
    " AND (reblog_of_id IS NULL OR account_id NOT IN (SELECT target_account_id FROM follows"
    " WHERE account_id = :viewer AND show_reblogs = FALSE))")
_PULLED_PAGES: dict[tuple[bool, bool, bool], Raw] = {}
_PULLED_FOR_VIEWER_PAGES: dict[tuple[bool, bool, bool], Raw] = {}
_MENTIONS_OF = Raw("SELECT status_id, account_id FROM mentions WHERE status_id IN ids(:ids)"
                   " ORDER BY status_id, account_id", lists=["ids"])


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


class SqlStatusStore:
    def insert(self, tx: Tx, status: Status) -> None:
        _INSERT.run(tx, dict(
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
        return {r[0]: _status(_StatusRow._make(r)) for r in _BY_IDS.all(tx, {"ids": wanted})}

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

    def pulled(self, tx: Tx, author_ids: Sequence[int], page: Page,
               viewer_id: int | None = None) -> list[TimelineEntry]:
        """Posts of pulled (celebrity) authors that were not pushed, for merging at read time.

        For ``viewer_id``, the rules fan-out applies to pushed posts hold here too: a reply
        reaches the viewer only if it answers the author themself, the viewer, or someone the
        viewer follows; reblogs of an author whose reblogs the viewer hides are left out.
        """
        if not author_ids:
            return []
        if viewer_id is None:
            raw, params = paged_raw(_PULLED, "id", page, _PULLED_PAGES, lists=["authors"])
        else:
            raw, params = paged_raw(_PULLED + _PULLED_FOR_VIEWER, "id", page,
                                    _PULLED_FOR_VIEWER_PAGES, lists=["authors"])
        rows = newest_first(raw.all(tx, {**params, "authors": author_ids, "viewer": viewer_id}),
                            page)
        return [TimelineEntry(r[0], r[1], r[2]) for r in rows]

    def recent_pushed(self, tx: Tx, author_id: int, limit: int) -> list[TimelineEntry]:
        c = statuses.c
        rows = tx.execute(
            select(c.id, c.account_id, c.reblog_of_id)
            .where(c.account_id == author_id, c.pushed.is_(True),
                   c.visibility != Visibility.DIRECT.value,
                   c.in_reply_to_id.is_(None) | (c.in_reply_to_account_id == author_id))
            .order_by(c.id.desc()).limit(limit)
        ).all()
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

    def reblogged(self, tx: Tx, viewer_id: int, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        return set(_REBLOGGED.scalars(tx, {"viewer_id": viewer_id, "ids": ids}))

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
