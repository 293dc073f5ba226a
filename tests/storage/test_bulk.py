"""The bulk loader on both engines: into an empty table its secondary indexes are built after
the rows, in the same transaction, so a failed load leaves the table as it was."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, func, inspect, select

from roost.storage.bulk import BulkLoader
from roost.storage.database import Database, Tx
from roost.storage.schema import follows

COLUMNS = ["account_id", "target_account_id", "id", "show_reblogs", "notify", "created_at"]


def _edges(first: int, count: int) -> list[tuple[int, int, int, bool, bool, int]]:
    return [(first + i, 1, 1000 + first + i, True, False, 0) for i in range(count)]


def _index_names(db: Database) -> set[str]:
    return db.read_sync(lambda tx: {str(i["name"]) for i in inspect(tx).get_indexes("follows")})


def _rows(db: Database) -> int:
    return int(db.read_sync(lambda tx: tx.execute(select(func.count()).select_from(follows))
                            .scalar_one()))


def _uses_index(db: Database) -> bool:
    """Whether looking up an account's followers goes through ix_follows_target_id."""
    statement = ("EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN ") + (
        "SELECT id FROM follows WHERE target_account_id = 1 ORDER BY id DESC LIMIT 5")

    def plan(tx: Tx) -> str:
        driver = tx.connection.driver_connection
        assert driver is not None
        if not db.is_sqlite:
            driver.execute("SET LOCAL enable_seqscan = off")
        return " ".join(str(row) for row in driver.execute(statement).fetchall())

    return "ix_follows_target_id" in db.read_sync(plan)


def test_an_empty_table_is_loaded_and_indexed_again(db: Database) -> None:
    indexes = _index_names(db)
    assert {"ix_follows_target_id", "ix_follows_account_id"} <= indexes
    ddl: list[str] = []

    @event.listens_for(db.write_engine, "before_cursor_execute")
    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith(("DROP INDEX", "CREATE INDEX")):
            ddl.append(" ".join(statement.split()[:3]))

    try:
        assert BulkLoader(db).insert(follows, COLUMNS, lambda: _edges(1, 5000)) == 5000
        assert ddl == ["DROP INDEX ix_follows_account_id", "DROP INDEX ix_follows_target_id",
                       "CREATE INDEX ix_follows_account_id", "CREATE INDEX ix_follows_target_id"]
        assert _rows(db) == 5000
        assert _index_names(db) == indexes
        assert _uses_index(db)
        # Into a table that has rows, the indexes stay and take the new rows as they come.
        ddl.clear()
        assert BulkLoader(db).insert(follows, COLUMNS, lambda: _edges(10_000, 10)) == 10
        assert ddl == []
        assert _rows(db) == 5010 and _index_names(db) == indexes
    finally:
        event.remove(db.write_engine, "before_cursor_execute", record)


def test_a_failed_load_leaves_the_empty_table_and_its_indexes(db: Database) -> None:
    indexes = _index_names(db)
    clashing = [*_edges(1, 100), (5, 1, 99_999, True, False, 0)]  # a second (5, 1) edge
    with pytest.raises(Exception, match="follows"):  # (the driver's own unique violation)
        BulkLoader(db).insert(follows, COLUMNS, lambda: clashing)
    assert _rows(db) == 0
    assert _index_names(db) == indexes


def test_a_load_run_again_by_the_writer_loads_its_rows_again(db: Database) -> None:
    """When another operation of its batch fails, the writer runs the batch again, each
    operation in a savepoint: the load's rows must come again, not from a spent generator."""
    busy, release = threading.Event(), threading.Event()

    def block(tx: Tx) -> None:  # the writer is busy: the next two share a batch
        busy.set()
        release.wait(10)

    blocker = db.submit(block)
    assert busy.wait(10)
    loading = threading.Thread(target=BulkLoader(db).insert, args=(
        follows, COLUMNS, lambda: (edge for edge in _edges(1, 300))))
    loading.start()
    deadline = time.monotonic() + 10
    while db._queue.qsize() < 1:  # (the load is queued behind the blocker)
        assert time.monotonic() < deadline
        time.sleep(0.01)

    def fails(tx: Tx) -> None:
        raise ValueError("this operation fails, and its batch runs again")

    failing = db.submit(fails)
    release.set()
    loading.join(10)
    blocker.result(10)
    with pytest.raises(ValueError):
        failing.result(10)
    assert _rows(db) == 300
