"""Notifications in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select

from roost.domain.models import Notification, Page
from roost.storage.database import Tx
from roost.storage.schema import notifications
from roost.storage.sql.common import newest_first, paged
from roost.storage.sql.raw import Raw

c = notifications.c
# Written by follows, favourites and mentions: on the driver's cursor (raw.py).
_INSERT = Raw("INSERT INTO notifications"
              " (account_id, id, type, from_account_id, status_id, created_at, detail)"
              " VALUES (:account_id, :id, :type, :from_account_id, :status_id, :created_at,"
              " :detail)")


def _notification(row: Any) -> Notification:
    return Notification(row.id, row.account_id, row.type, row.from_account_id, row.status_id,
                        row.created_at, row.detail)


class SqlNotificationStore:
    def insert(self, tx: Tx, notification: Notification) -> None:
        _INSERT.send(tx, {
            "account_id": notification.account_id, "id": notification.id,
            "type": notification.type, "from_account_id": notification.from_account_id,
            "status_id": notification.status_id, "created_at": notification.created_at,
            "detail": notification.detail,
        })

    def get(self, tx: Tx, account_id: int, notification_id: int) -> Notification | None:
        row = tx.execute(
            select(notifications).where(c.account_id == account_id, c.id == notification_id)
        ).first()
        return _notification(row) if row else None

    def page(self, tx: Tx, account_id: int, page: Page, types: Sequence[str] | None,
             exclude_types: Sequence[str], from_account_id: int | None) -> list[Notification]:
        stmt = select(notifications).where(c.account_id == account_id)
        if types:
            stmt = stmt.where(c.type.in_(list(types)))
        if exclude_types:
            stmt = stmt.where(c.type.not_in(list(exclude_types)))
        if from_account_id is not None:
            stmt = stmt.where(c.from_account_id == from_account_id)
        rows = tx.execute(paged(stmt, c.id, page)).all()
        return [_notification(r) for r in newest_first(rows, page)]

    def dismiss(self, tx: Tx, account_id: int, notification_id: int) -> bool:
        result = tx.execute(
            delete(notifications).where(c.account_id == account_id, c.id == notification_id)
        )
        return result.rowcount == 1

    def clear(self, tx: Tx, account_id: int) -> None:
        tx.execute(delete(notifications).where(c.account_id == account_id))

    def delete_matching(self, tx: Tx, account_id: int, type: str, from_account_id: int,
                        status_id: int | None) -> None:
        stmt = delete(notifications).where(
            c.account_id == account_id, c.type == type, c.from_account_id == from_account_id
        )
        if status_id is not None:
            stmt = stmt.where(c.status_id == status_id)
        tx.execute(stmt)

    def delete_for_status(self, tx: Tx, status_id: int) -> None:
        tx.execute(delete(notifications).where(c.status_id == status_id))
