"""The node bits of ids (``roost.ids``): each process that starts on a database claims the
next number from it, so that processes running at once never make the same id."""

from __future__ import annotations

from roost.storage.database import Database, Tx
from roost.storage.sql.raw import Raw

_CLAIM = Raw("INSERT INTO id_nodes (id, claimed) VALUES (1, 1) ON CONFLICT (id)"
             " DO UPDATE SET claimed = id_nodes.claimed + 1 RETURNING claimed")


def claim_id_node(db: Database) -> int:
    """A number no other process on ``db`` took among the last 64 claims (ids keep 6 bits)."""

    def claim(tx: Tx) -> int:
        row = _CLAIM.first(tx)
        assert row is not None
        return int(row[0]) - 1

    return db.write_sync(claim)
