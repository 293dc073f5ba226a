"""Statuses pinned to their author's profile, in SQL."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from roost.storage.database import Tx
from roost.storage.schema import status_pins
from roost.storage.sql.common import insert_ignore

p = status_pins.c


class SqlPinStore:
    def insert(self, tx: Tx, account_id: int, status_id: int, pin_id: int, at: int) -> bool:
        result = tx.execute(insert_ignore(tx, status_pins).values(
            account_id=account_id, status_id=status_id, id=pin_id, created_at=at))
        return result.rowcount == 1

    def delete(self, tx: Tx, account_id: int, status_id: int) -> bool:
        result = tx.execute(delete(status_pins).where(p.account_id == account_id,
                                                      p.status_id == status_id))
        return result.rowcount == 1

    def count(self, tx: Tx, account_id: int) -> int:
        return int(tx.execute(select(func.count()).select_from(status_pins)
                              .where(p.account_id == account_id)).scalar_one())

    def of_account(self, tx: Tx, account_id: int) -> list[int]:
        """The status ids ``account_id`` pinned, most recently pinned first."""
        return list(tx.execute(select(p.status_id).where(p.account_id == account_id)
                               .order_by(p.id.desc())).scalars())

    def delete_for_status(self, tx: Tx, status_id: int) -> None:
        tx.execute(delete(status_pins).where(p.status_id == status_id))
