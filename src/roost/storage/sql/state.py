"""Small named values the server keeps for itself, in SQL (the ``roost_state`` table)."""

from __future__ import annotations

from sqlalchemy import select

from roost.storage.database import Tx
from roost.storage.schema import roost_state
from roost.storage.sql.common import upsert


class SqlStateStore:
    def get(self, tx: Tx, key: str) -> int | None:
        value = tx.execute(select(roost_state.c.value).where(roost_state.c.key == key)).scalar()
        return int(value) if value is not None else None

    def claim(self, tx: Tx, key: str, value: int) -> int:
        tx.execute(upsert(tx, roost_state).values(key=key, value=value)
                   .on_conflict_do_nothing(index_elements=["key"]))
        stored = self.get(tx, key)
        assert stored is not None
        return stored

    def put(self, tx: Tx, key: str, value: int) -> None:
        stmt = upsert(tx, roost_state).values(key=key, value=value)
        tx.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))
