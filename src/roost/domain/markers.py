"""Timeline read markers: where a user stopped reading, shared between their apps."""

from __future__ import annotations

from roost.clock import now_ms
from roost.domain.errors import InvalidInput
from roost.domain.models import Marker
from roost.storage.database import Database, Tx
from roost.storage.stores import Stores

TIMELINES = ("home", "notifications")


class MarkerService:
    def __init__(self, db: Database, stores: Stores) -> None:
        self.db = db
        self.stores = stores

    async def get(self, account_id: int, timelines: list[str]) -> list[Marker]:
        wanted = [t for t in timelines if t in TIMELINES] or list(TIMELINES)
        return await self.db.read(lambda tx: self.stores.markers.get(tx, account_id, wanted),
                                  bounded=True)

    async def save(self, account_id: int, positions: dict[str, int]) -> list[Marker]:
        unknown = [t for t in positions if t not in TIMELINES]
        if unknown or not positions:
            raise InvalidInput("Timeline must be home or notifications")

        def apply(tx: Tx) -> list[Marker]:
            at = now_ms()
            for timeline, last_read_id in positions.items():
                self.stores.markers.set(tx, account_id, timeline, last_read_id, at)
            return self.stores.markers.get(tx, account_id, list(positions))

        return await self.db.write(apply)
