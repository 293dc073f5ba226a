"""Notifications: created inside the transaction of the action that causes them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from roost.clock import now_ms
from roost.domain.errors import NotFound
from roost.domain.events import NotificationCreated
from roost.domain.models import Notification, NotificationView, Page, StatusView
from roost.ids import new_id
from roost.storage.database import Database, Tx, emit
from roost.storage.stores import Stores

TYPES = ("mention", "status", "reblog", "follow", "follow_request", "favourite", "poll",
         "update", "admin.sign_up", "admin.report", "roost.milestone")

StatusViews = Callable[[Tx, Sequence[int], int | None], list[StatusView]]


def notify(stores: Stores, tx: Tx, recipient_id: int, type: str, from_account_id: int,
           status_id: int | None = None, detail: int | None = None) -> Notification | None:
    """Record a notification (none for acting on oneself). Call inside the causing write."""
    if recipient_id == from_account_id:
        return None
    notification = Notification(new_id(), recipient_id, type, from_account_id, status_id,
                                now_ms(), detail)
    stores.notifications.insert(tx, notification)
    emit(tx, NotificationCreated(recipient_id, notification.id))
    return notification


def withdraw(stores: Stores, tx: Tx, recipient_id: int, type: str, from_account_id: int,
             status_id: int | None = None) -> None:
    """Remove the notification an undone action had caused (unfollow, unfavourite)."""
    stores.notifications.delete_matching(tx, recipient_id, type, from_account_id, status_id)


class NotificationService:
    def __init__(self, db: Database, stores: Stores, status_views: StatusViews) -> None:
        self.db = db
        self.stores = stores
        self.status_views = status_views

    def views(self, tx: Tx, notifications: Sequence[Notification],
              viewer_id: int) -> list[NotificationView]:
        accounts = self.stores.accounts.by_ids(tx, [n.from_account_id for n in notifications])
        status_ids = [n.status_id for n in notifications if n.status_id is not None]
        statuses = {v.status.id: v for v in self.status_views(tx, status_ids, viewer_id)}
        out = []
        for n in notifications:
            account = accounts.get(n.from_account_id)
            status = statuses.get(n.status_id) if n.status_id is not None else None
            if account is None or (n.status_id is not None and status is None):
                continue  # the account or status is gone
            out.append(NotificationView(n, account, status))
        return out

    async def page(self, viewer_id: int, page: Page, types: Sequence[str] | None,
                   exclude_types: Sequence[str],
                   from_account_id: int | None) -> list[NotificationView]:
        def read(tx: Tx) -> list[NotificationView]:
            found = self.stores.notifications.page(tx, viewer_id, page, types, exclude_types,
                                                   from_account_id)
            return self.views(tx, found, viewer_id)

        # Unfiltered, a page is the newest rows of the viewer's index: bounded. A filter may
        # walk far (mentions only, for an account with a million follow notifications).
        unfiltered = not types and not exclude_types and from_account_id is None
        return await self.db.read(read, bounded=unfiltered)

    async def get(self, viewer_id: int, notification_id: int) -> NotificationView:
        def read(tx: Tx) -> list[NotificationView]:
            found = self.stores.notifications.get(tx, viewer_id, notification_id)
            return self.views(tx, [found], viewer_id) if found else []

        views = await self.db.read(read, bounded=True)
        if not views:
            raise NotFound()
        return views[0]

    async def dismiss(self, viewer_id: int, notification_id: int) -> None:
        dismissed = await self.db.write(
            lambda tx: self.stores.notifications.dismiss(tx, viewer_id, notification_id)
        )
        if not dismissed:
            raise NotFound()

    async def clear(self, viewer_id: int) -> None:
        await self.db.write(lambda tx: self.stores.notifications.clear(tx, viewer_id))
