"""Bookmarks and timeline read markers in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select

from roost.domain.models import Marker, Page
from roost.storage.database import Tx
from roost.storage.schema import bookmarks, markers
from roost.storage.sql.common import insert_ignore, newest_first, paged, upsert

b = bookmarks.c
m = markers.c


class SqlBookmarkStore:
    def insert(self, tx: Tx, account_id: int, status_id: int, bookmark_id: int, at: int) -> None:
        tx.execute(insert_ignore(tx, bookmarks).values(
            account_id=account_id, status_id=status_id, id=bookmark_id, created_at=at))

    def delete(self, tx: Tx, account_id: int, status_id: int) -> None:
        tx.execute(delete(bookmarks).where(b.account_id == account_id, b.status_id == status_id))

    def delete_for_status(self, tx: Tx, status_id: int) -> None:
        tx.execute(delete(bookmarks).where(b.status_id == status_id))

    def page(self, tx: Tx, account_id: int, page: Page) -> list[tuple[int, int]]:
        """(bookmark id, status id), newest bookmark first."""
        stmt = select(b.id, b.status_id).where(b.account_id == account_id)
        rows = tx.execute(paged(stmt, b.id, page)).all()
        return [(r[0], r[1]) for r in newest_first(rows, page)]


class SqlMarkerStore:
    def get(self, tx: Tx, account_id: int, timelines: Sequence[str]) -> list[Marker]:
        rows = tx.execute(select(markers).where(
            m.account_id == account_id, m.timeline.in_(list(timelines))).order_by(m.timeline))
        return [Marker(r.timeline, r.last_read_id, r.version, r.updated_at) for r in rows]

    def set(self, tx: Tx, account_id: int, timeline: str, last_read_id: int, at: int) -> None:
        stmt = upsert(tx, markers).values(account_id=account_id, timeline=timeline,
                                          last_read_id=last_read_id, version=1, updated_at=at)
        tx.execute(stmt.on_conflict_do_update(
            index_elements=["account_id", "timeline"],
            set_={"last_read_id": last_read_id, "version": m.version + 1, "updated_at": at},
        ))
