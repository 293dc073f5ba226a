"""Bulk loading for seeding: COPY on PostgreSQL, executemany in one transaction on SQLite.

Only for loading large synthetic data sets into tables nobody else is writing to at the time;
everything the running server writes goes through the stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table

from roost.storage.database import Database, Tx


class BulkLoader:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows`` (tuples in ``columns`` order) in one transaction; returns the count."""

        def load(tx: Tx) -> int:
            raw = tx.connection.driver_connection
            assert raw is not None
            names = ", ".join(columns)
            count = 0
            if self.db.dialect == "postgresql":
                with raw.cursor() as cursor, cursor.copy(
                    f"COPY {table.name} ({names}) FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
                        count += 1
                return count
            marks = ", ".join("?" for _ in columns)
            cursor = raw.cursor()
            batch: list[Sequence[Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= 50_000:
                    cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})",
                                       batch)
                    count += len(batch)
                    batch = []
            if batch:
                cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", batch)
                count += len(batch)
            return count

        return self.db.write_sync(load)
