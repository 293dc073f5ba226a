"""Bulk loading for seeding: COPY on PostgreSQL, executemany in one transaction on SQLite.

Only for loading large synthetic data sets into tables nobody else is writing to at the time;
everything the running server writes goes through the stores.

Into an empty table, the secondary indexes are dropped before the rows go in and built again
after, in the same transaction: one sorted build per index instead of a million scattered
inserts into each (both engines' advice for populating a database; `roost seed`'s million
follows load in a quarter less time, BENCHMARKS.md). A load that fails or is killed rolls
back whole, indexes included. While it runs, PostgreSQL keeps other writers and readers of
that table waiting (DROP INDEX locks it to the commit), as SQLite's single writer does anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Table, literal, select

from roost.storage.database import Database, Tx


class BulkLoader:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.loaded: set[str] = set()  # the tables rows went into

    def insert(self, table: Table, columns: Sequence[str],
               rows: Callable[[], Iterable[Sequence[Any]]]) -> int:
        """Insert the tuples (in ``columns`` order) that ``rows()`` yields, in one transaction;
        returns the count. ``rows`` is called on each run: the writer may run an operation
        again (after another one of its batch failed), and a generator, once consumed, would
        then insert nothing and succeed."""

        def load(tx: Tx) -> int:
            deferred = ([] if tx.execute(select(literal(1)).select_from(table).limit(1)).first()
                        else sorted(table.indexes, key=lambda index: str(index.name)))
            for index in deferred:
                index.drop(tx)
            count = _copy_in(tx, table, columns, rows())
            for index in deferred:
                index.create(tx)
            return count

        count = self.db.write_sync(load)
        self.loaded.add(table.name)
        return count

    def analyze(self) -> None:
        """Refresh PostgreSQL's planner statistics of the tables loaded. Until autovacuum
        gets to it, a bulk load leaves them describing the tables before it, and the plans
        made from them walked whole tables: on a community of 100,000 accounts the public
        timeline took 125 ms a page and familiar followers 183 ms, against 2-7 ms after
        (`python -m bench.endpoints`). SQLite's plans come from its rules and Roost's
        indexes, not from statistics: nothing to do."""
        if self.loaded and not self.db.is_sqlite:
            names = ", ".join(sorted(self.loaded))
            self.db.write_sync(lambda tx: tx.exec_driver_sql(f"ANALYZE {names}"))


def _copy_in(tx: Tx, table: Table, columns: Sequence[str],
             rows: Iterable[Sequence[Any]]) -> int:
    """Send ``rows`` into ``table``: COPY on PostgreSQL, executemany in batches on SQLite."""
    raw = tx.connection.driver_connection
    assert raw is not None
    names = ", ".join(columns)
    count = 0
    if tx.dialect.name == "postgresql":
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
            cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", batch)
            count += len(batch)
            batch = []
    if batch:
        cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", batch)
        count += len(batch)
    return count
