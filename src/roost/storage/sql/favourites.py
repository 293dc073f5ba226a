"""Favourites in SQL."""

from __future__ import annotations

from sqlalchemy import delete, select

from roost.domain.models import Page
from roost.storage.database import Tx
from roost.storage.schema import favourites
from roost.storage.sql.common import insert_ignore, newest_first, paged


class SqlFavouriteStore:
    def insert(self, tx: Tx, account_id: int, status_id: int, fav_id: int, at: int) -> bool:
        result = tx.execute(insert_ignore(tx, favourites).values(
            account_id=account_id, status_id=status_id, id=fav_id, created_at=at
        ))
        return result.rowcount == 1

    def delete(self, tx: Tx, account_id: int, status_id: int) -> bool:
        result = tx.execute(delete(favourites).where(
            favourites.c.account_id == account_id, favourites.c.status_id == status_id
        ))
        return result.rowcount == 1

    def favouriters_page(self, tx: Tx, status_id: int, page: Page) -> list[tuple[int, int]]:
        stmt = select(favourites.c.id, favourites.c.account_id).where(
            favourites.c.status_id == status_id
        )
        rows = tx.execute(paged(stmt, favourites.c.id, page)).all()
        return [(r[0], r[1]) for r in newest_first(rows, page)]

    def page(self, tx: Tx, account_id: int, page: Page) -> list[tuple[int, int]]:
        """(favourite id, status id) of ``account_id``'s favourites, newest favourite first."""
        stmt = select(favourites.c.id, favourites.c.status_id).where(
            favourites.c.account_id == account_id
        )
        rows = tx.execute(paged(stmt, favourites.c.id, page)).all()
        return [(r[0], r[1]) for r in newest_first(rows, page)]

    def delete_for_status(self, tx: Tx, status_id: int) -> None:
        tx.execute(delete(favourites).where(favourites.c.status_id == status_id))
