"""The database runner on both engines: group commit, savepoints, events, migrations."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from roost.ids import new_id
from roost.storage import migrate
from roost.storage.database import (
    PG_READ_CONNECTIONS,
    Database,
    Tx,
    deferred,
    emit,
    flush_deferred,
)
from roost.storage.schema import metadata, tags
from roost.storage.sql.raw import Raw
from roost.storage.unavailable import is_outage
from tests.pg_support import PG_ADMIN, fresh_database


def _insert(tag_id: int, *, event: object = None) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        tx.execute(tags.insert().values(id=tag_id, name=f"T{tag_id}", name_lower=f"t{tag_id}",
                                        created_at=0))
        if event is not None:
            emit(tx, event)
        return tag_id

    return op


def _insert_then_fail(tag_id: int, error: BaseException, *,
                      event: object = None) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        _insert(tag_id, event=event)(tx)
        raise error

    return op


def _insert_then_duplicate(tag_id: int, existing: int) -> Callable[[Tx], int]:
    """Writes a row, then violates a key: on PostgreSQL this aborts the whole transaction
    unless the runner's savepoint is rolled back."""

    def op(tx: Tx) -> int:
        _insert(tag_id)(tx)
        _insert(existing)(tx)
        return tag_id

    return op


def _ids(db: Database) -> set[int]:
    return set(db.read_sync(lambda tx: tx.execute(select(tags.c.id)).scalars().all()))


class Gate:
    """Holds the writer thread inside an operation, so what is submitted meanwhile is queued
    and then taken as one batch."""

    def __init__(self, db: Database) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

        def hold(_tx: Tx) -> None:
            self.entered.set()
            assert self.released.wait(10)

        self.future = db.submit(hold)
        assert self.entered.wait(10)

    def release(self) -> None:
        self.released.set()
        self.future.result(10)


@pytest.fixture
def commits(db: Database) -> list[list[object]]:
    """The events passed to each after-commit callback call, one list per commit."""
    seen: list[list[object]] = []
    db.on_commit(lambda events: seen.append(list(events)))
    return seen


@pytest.fixture
def own_db(db_url: str) -> Iterator[Callable[..., Database]]:
    made: list[Database] = []

    def make(**kwargs: Any) -> Database:
        database = Database(db_url, sqlite_synchronous="NORMAL", **kwargs)
        made.append(database)
        return database

    yield make
    for database in made:
        database.close()


def test_migrations_create_the_schema_and_are_idempotent(
    own_db: Callable[..., Database], db: Database
) -> None:
    migrate.upgrade(own_db())  # already at head: nothing to do, nothing breaks
    with db.read_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == [], "the migrations do not build schema.py's tables on this engine"
    version = db.read_sync(lambda tx: tx.execute(text("SELECT version_num FROM alembic_version"))
                           .scalars().all())
    head = ScriptDirectory.from_config(migrate.alembic_config(db.url)).get_current_head()
    assert version == [head]


@contextlib.contextmanager
def _empty_database(engine: str, tmp_path: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_database("roost_migrate") as url:
        yield url


def _migrate_to(database: Database, revision: str, *, down: bool = False) -> None:
    with database.write_engine.begin() as conn:
        config = migrate.alembic_config(database.url)
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_home_timelines_keep_their_rows_through_migration_0014(engine: str,
                                                              tmp_path: Path) -> None:
    """0014 drops the author index (and rebuilds the table WITHOUT ROWID on SQLite): every
    entry is still there after it, and after going back."""
    entries = [(1, 10, 5, None), (1, 11, 6, 10), (2, 10, 5, None)]
    with _empty_database(engine, tmp_path) as url:
        database = Database(url, sqlite_synchronous="NORMAL")
        try:
            _migrate_to(database, "0013")
            with database.write_engine.begin() as conn:
                for row in entries:
                    conn.execute(text("INSERT INTO home_timeline VALUES (:a, :s, :au, :r)"),
                                 dict(zip(["a", "s", "au", "r"], row, strict=True)))

            def table() -> tuple[list[tuple[Any, ...]], list[str], str]:
                with database.write_engine.connect() as conn:
                    rows = [tuple(r) for r in conn.execute(text(
                        "SELECT account_id, status_id, author_id, reblog_of_id"
                        " FROM home_timeline ORDER BY account_id, status_id"))]
                    indexes = [i["name"] or "" for i in inspect(conn).get_indexes("home_timeline")]
                    ddl = (conn.execute(text("SELECT sql FROM sqlite_master WHERE name ="
                                             " 'home_timeline'")).scalar_one()
                           if engine == "sqlite" else "")
                return rows, indexes, ddl

            migrate.upgrade(database)
            rows, indexes, ddl = table()
            assert rows == entries and indexes == []
            assert ("WITHOUT ROWID" in ddl) == (engine == "sqlite")
            _migrate_to(database, "0013", down=True)
            rows, indexes, ddl = table()
            assert rows == entries and indexes == ["ix_home_timeline_author"]
            assert "WITHOUT ROWID" not in ddl
        finally:
            database.close()


def test_processes_starting_together_on_postgresql_migrate_once() -> None:
    """Web processes and workers started at once on an empty database: one migrates, the
    others wait for it and find nothing to do (no 'relation already exists')."""
    from tests.pg_support import fresh_database

    with fresh_database("roost_migrate") as url:
        databases = [Database(url) for _ in range(3)]
        try:
            barrier = threading.Barrier(len(databases))

            def start(database: Database) -> None:
                barrier.wait()
                migrate.upgrade(database)

            with concurrent.futures.ThreadPoolExecutor(len(databases)) as pool:
                for done in [pool.submit(start, d) for d in databases]:
                    done.result(60)
            head = ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()
            versions = databases[0].read_sync(
                lambda tx: tx.execute(text("SELECT version_num FROM alembic_version")).all())
            assert [v[0] for v in versions] == [head]
        finally:
            for database in databases:
                database.close()


def test_each_process_claims_its_own_id_node(db: Database, db_url: str) -> None:
    from roost.ids import IdGenerator
    from roost.storage.nodes import claim_id_node

    other = Database(db_url, sqlite_synchronous="NORMAL")  # (as another process would)
    other.start()
    try:
        claims = [claim_id_node(db), claim_id_node(other), claim_id_node(db)]
    finally:
        other.close()
    assert claims[1] == claims[0] + 1 and claims[2] == claims[0] + 2
    # Two generators in the same millisecond make different ids once their nodes differ.
    first, second = IdGenerator(node=claims[0]), IdGenerator(node=claims[1])
    assert first.next_id(at_ms=1_000) != second.next_id(at_ms=1_000)


def test_an_id_generator_that_changes_node_stays_monotonic() -> None:
    from roost.ids import IdGenerator

    generator = IdGenerator(node=63)
    before = generator.next_id(at_ms=5_000)
    generator.use_node(1)
    after = generator.next_id(at_ms=5_000)
    assert after > before
    assert (after >> 10) & 63 == 1


def test_postgresql_urls_use_psycopg(db: Database) -> None:
    assert db.url.startswith(f"{db.dialect}:")
    if db.dialect == "postgresql":
        assert db.write_engine.dialect.driver == "psycopg"
        assert db.read_engine.dialect.driver == "psycopg"
    else:
        assert db.is_sqlite


def test_postgresql_connections_run_without_jit(postgresql_url: str) -> None:
    """PostgreSQL's JIT compiled a rebuild's statement for 130 ms to run it in 15
    (``database._make_engine``)."""
    database = Database(postgresql_url)
    database.start()
    try:
        def jit(tx: Tx) -> str:
            return str(tx.exec_driver_sql("SHOW jit").scalar())

        assert database.read_sync(jit) == "off"
        assert database.read_sync(jit, snapshot=False) == "off"
        assert database.write_sync(jit) == "off"
    finally:
        database.close()


def test_concurrent_writes_all_commit(db: Database, commits: list[list[object]]) -> None:
    def worker(start: int) -> list[int]:
        return [db.write_sync(_insert(start + i)) for i in range(25)]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(worker, range(1000, 1000 + 16 * 25, 25)))
    assert sorted(x for r in results for x in r) == list(range(1000, 1400))
    assert _ids(db) == set(range(1000, 1400))
    assert 1 <= len(commits) <= 400


def test_queued_writes_share_one_commit(db: Database, commits: list[list[object]]) -> None:
    gate = Gate(db)
    futures = [db.submit(_insert(i, event=i)) for i in range(1, 101)]
    gate.release()
    assert [f.result(10) for f in futures] == list(range(1, 101))
    assert commits == [[], list(range(1, 101))]  # the gate's commit, then the batch's
    assert _ids(db) == set(range(1, 101))


def test_batches_are_capped(own_db: Callable[..., Database]) -> None:
    database = own_db(write_batch_max=4)
    sizes: list[int] = []
    database.on_commit(lambda events: sizes.append(len(events)))
    gate = Gate(database)
    futures = [database.submit(_insert(i, event=i)) for i in range(10)]
    gate.release()
    assert [f.result(10) for f in futures] == list(range(10))
    assert sizes == [0, 4, 4, 2]


def test_failing_operations_roll_back_alone(db: Database, commits: list[list[object]]) -> None:
    boom = ValueError("boom")
    gate = Gate(db)
    ok1 = db.submit(_insert(1, event="one"))
    bad = db.submit(_insert_then_fail(2, boom, event="two"))
    ok3 = db.submit(_insert(3, event="three"))
    duplicate = db.submit(_insert_then_duplicate(4, existing=1))
    ok5 = db.submit(_insert(5, event="five"))
    gate.release()

    assert ok1.result(10) == 1
    assert ok3.result(10) == 3
    assert ok5.result(10) == 5
    with pytest.raises(ValueError) as caught:
        bad.result(10)
    assert caught.value is boom  # the caller gets its own exception
    with pytest.raises(IntegrityError):
        duplicate.result(10)
    assert _ids(db) == {1, 3, 5}
    assert commits[-1] == ["one", "three", "five"]
    assert len(commits) == 2  # everything after the gate committed together


def test_a_batch_takes_savepoints_only_after_an_operation_failed(db: Database) -> None:
    savepoints: list[str] = []

    @event.listens_for(db.write_engine, "before_cursor_execute")
    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.upper().startswith("SAVEPOINT"):
            savepoints.append(statement)

    runs: list[int] = []

    def counted(tag_id: int) -> Callable[[Tx], int]:
        def op(tx: Tx) -> int:
            runs.append(tag_id)
            return _insert(tag_id)(tx)
        return op

    try:
        gate = Gate(db)
        fine = [db.submit(counted(i)) for i in (1, 2, 3)]
        gate.release()
        assert [f.result(10) for f in fine] == [1, 2, 3]
        assert savepoints == [] and runs == [1, 2, 3]  # all went well: no savepoint at all

        gate = Gate(db)
        before = db.submit(counted(4))
        bad = db.submit(_insert_then_fail(5, ValueError("no")))
        after = db.submit(counted(6))
        gate.release()
        assert (before.result(10), after.result(10)) == (4, 6)
        with pytest.raises(ValueError):
            bad.result(10)
        # The optimistic run stopped at the failure and was rolled back; the batch ran again,
        # each operation in its own savepoint.
        assert runs == [1, 2, 3, 4, 4, 6] and len(savepoints) == 3
        assert _ids(db) == {1, 2, 3, 4, 6}
    finally:
        event.remove(db.write_engine, "before_cursor_execute", spy)


def test_a_lone_failing_operation_fails_and_the_writer_recovers(
    db: Database, commits: list[list[object]]
) -> None:
    db.write_sync(_insert(1))
    with pytest.raises(IntegrityError):
        db.write_sync(_insert_then_duplicate(2, existing=1))
    with pytest.raises(RuntimeError, match="nope"):
        db.write_sync(_insert_then_fail(3, RuntimeError("nope"), event="lost"))
    assert db.write_sync(_insert(4, event="four")) == 4
    assert _ids(db) == {1, 4}
    assert commits == [[], ["four"]]


def test_events_are_published_only_after_commit(db: Database) -> None:
    seen: list[tuple[list[object], set[int]]] = []

    def callback(events: list[object]) -> None:
        # Runs after the commit: a fresh reader already sees the batch's rows.
        seen.append((list(events), _ids(db)))

    db.on_commit(callback)
    db.write_sync(_insert(1, event="a"))
    assert seen == [(["a"], {1})]
    db.read_sync(lambda tx: emit(tx, "ignored outside the writer"))
    assert seen == [(["a"], {1})]


def test_a_failing_callback_does_not_fail_the_write(db: Database) -> None:
    calls: list[list[object]] = []

    def broken(_events: list[object]) -> None:
        raise RuntimeError("callback broke")

    db.on_commit(broken)
    db.on_commit(calls.append)
    assert db.write_sync(_insert(7, event="x")) == 7
    assert calls == [["x"]]
    assert _ids(db) == {7}


def test_async_write_and_read(db: Database) -> None:
    async def main() -> tuple[int, int]:
        written = await asyncio.gather(*(db.write(_insert(i)) for i in range(20)))
        count = await db.read(lambda tx: int(tx.execute(
            select(func.count()).select_from(tags)).scalar_one()))
        return len(written), count

    assert asyncio.run(main()) == (20, 20)


@pytest.mark.parametrize("asked", [None, 3])
def test_reads_run_at_most_read_threads_at_once(own_db: Callable[..., Database],
                                                asked: int | None) -> None:
    """One reader thread on SQLite by default (a read there is CPU under the GIL), the read
    pool's size on PostgreSQL; a setting changes either."""
    database = own_db(read_threads=asked)
    expected = asked or (1 if database.is_sqlite else PG_READ_CONNECTIONS)
    assert database.read_threads == expected
    running, most = 0, 0
    changed = threading.Condition()

    def slow(tx: Tx) -> None:
        """Hold the reader until ``expected`` run at once (a fixed sleep let the first ones
        finish before the last started on a loaded machine), or 5 s have passed."""
        nonlocal running, most
        with changed:
            running += 1
            most = max(most, running)
            changed.notify_all()
            changed.wait_for(lambda: most >= expected, timeout=5)
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(database.read(slow) for _ in range(expected + 4)))

    asyncio.run(main())
    assert most == expected


def test_a_scan_does_not_hold_up_the_quick_reads(own_db: Callable[..., Database]) -> None:
    """A search runs in a lane of its own: with one reader thread, quick reads still run
    while a long scan is in progress instead of queueing behind it."""
    database = own_db(read_threads=1)
    scanning = threading.Event()
    finished: dict[str, float] = {}

    def scan(tx: Tx) -> None:
        scanning.set()
        time.sleep(0.5)
        finished["scan"] = time.monotonic()

    def quick(tx: Tx) -> int:
        return int(tx.execute(select(func.count()).select_from(tags)).scalar_one())

    async def main() -> None:
        long_read = asyncio.create_task(database.read(scan, scan=True))
        while not scanning.is_set():
            await asyncio.sleep(0.005)
        assert [await database.read(quick) for _ in range(5)] == [0] * 5
        finished["quick"] = time.monotonic()
        await long_read

    asyncio.run(main())
    assert finished["quick"] < finished["scan"] - 0.2


@pytest.mark.parametrize("inline_reads", [True, False])
def test_a_bounded_read_runs_on_the_event_loop_thread_on_sqlite(
        own_db: Callable[..., Database], inline_reads: bool) -> None:
    """On SQLite a bounded read (a token, a timeline page) runs where it is awaited, saving
    the hand-off to the reader thread; every other read, every read with the setting off,
    and every PostgreSQL read (it waits on the network) runs on a reader thread."""
    database = own_db(sqlite_inline_reads=inline_reads)
    assert database.inline_reads == (inline_reads and database.is_sqlite)

    def where(tx: Tx) -> tuple[int, int]:
        return threading.get_ident(), int(tx.execute(
            select(func.count()).select_from(tags)).scalar_one())

    async def main() -> dict[str, bool]:
        here = threading.get_ident()
        ran = {"bounded": await database.read(where, bounded=True),
               "bounded, no snapshot": await database.read(where, bounded=True, snapshot=False),
               "any": await database.read(where),
               "scan": await database.read(where, bounded=True, scan=True)}
        assert {count for _, count in ran.values()} == {0}
        return {name: thread == here for name, (thread, _) in ran.items()}

    inline = database.inline_reads
    assert asyncio.run(main()) == {"bounded": inline, "bounded, no snapshot": inline,
                                   "any": False, "scan": False}


def test_close_finishes_queued_writes(own_db: Callable[..., Database], db: Database) -> None:
    database = own_db()
    futures = [database.submit(_insert(i)) for i in range(50)]
    database.close()
    assert [f.result(0) for f in futures] == list(range(50))
    assert _ids(db) == set(range(50))


def test_a_read_sees_one_snapshot(db: Database) -> None:
    """Like SQLite's read transactions, a read operation sees the database as of its first
    query, even when a write commits in between (PostgreSQL: REPEATABLE READ readers)."""
    db.write_sync(_insert(1))

    def read(tx: Tx) -> tuple[int, int, set[int]]:
        before = tx.execute(select(func.count()).select_from(tags)).scalar_one()
        db.write_sync(_insert(2))
        after = tx.execute(select(func.count()).select_from(tags)).scalar_one()
        return before, after, _ids(db)

    assert db.read_sync(read) == (1, 1, {1, 2})


def test_a_read_without_snapshot_sees_each_commit_on_postgresql(db: Database) -> None:
    """``snapshot=False`` (authentication): on PostgreSQL each statement runs on its own,
    with no BEGIN or ROLLBACK around them; SQLite reads keep their transaction."""
    db.write_sync(_insert(1))
    count_tags = Raw("SELECT count(*) FROM tags")

    def read(tx: Tx) -> tuple[int, int]:
        before = tx.execute(select(func.count()).select_from(tags)).scalar_one()
        db.write_sync(_insert(2))
        row = count_tags.first(tx)
        assert row is not None
        return before, int(row[0])

    assert db.read_sync(read, snapshot=False) == ((1, 2) if db.dialect == "postgresql"
                                                  else (1, 1))
    # The connection goes back to the pool as it came: the next read has its snapshot.
    db.write_sync(_insert(3))
    assert db.read_sync(lambda tx: (tx.execute(select(func.count()).select_from(tags))
                                    .scalar_one(), db.write_sync(_insert(4)),
                                    count_tags.first(tx))) == (3, 4, (3,))


def test_postgresql_writer_reconnects_after_losing_its_connection(postgresql_url: str) -> None:
    """A backend killed while the writer's connection is idle is noticed before the next
    batch, which runs on a new connection; one killed in the middle of a batch fails that
    batch, not the writer."""
    database = Database(postgresql_url)
    try:
        def backend(tx: Tx) -> int:
            pid: int = tx.execute(text("SELECT pg_backend_pid()")).scalar_one()
            return pid

        def gone(pid: int) -> bool:
            return not database.read_sync(lambda tx: tx.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid}).scalar_one())

        idle = database.write_sync(backend)
        assert database.read_sync(lambda tx: tx.execute(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": idle}).scalar_one()) is True
        deadline = time.monotonic() + 10
        while not gone(idle):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        first = new_id()
        assert database.write_sync(_insert(first)) == first  # no failure for anyone

        lost = new_id()

        def dies_midway(tx: Tx) -> None:
            _insert(lost)(tx)
            tx.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

        with pytest.raises(DBAPIError):
            database.write_sync(dies_midway)
        kept = new_id()
        assert database.write_sync(_insert(kept)) == kept
        assert _ids(database) >= {first, kept} and lost not in _ids(database)
        assert database.write_sync(backend) != idle
    finally:
        database.close()


def test_cancelled_callers_do_not_stop_the_writer(db: Database) -> None:
    """A caller that gives up (cancelled while its write is queued or running) neither kills
    the writer thread nor loses its write."""
    import asyncio
    import threading as _threading

    from roost.storage.schema import roost_state

    gate = _threading.Event()

    def slow(tx: Tx) -> None:
        gate.wait(5)

    async def scenario() -> None:
        blocker = asyncio.create_task(db.write(slow))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(db.write(
            lambda tx: tx.execute(roost_state.insert().values(key="cancelled", value=1))))
        await asyncio.sleep(0.05)
        queued.cancel()
        gate.set()
        await blocker
        done = await db.write(lambda tx: 42)
        assert done == 42

    asyncio.run(scenario())
    rows = db.read_sync(lambda tx: tx.execute(
        roost_state.select().where(roost_state.c.key == "cancelled")).all())
    assert len(rows) == 1  # the cancelled caller's write still happened, whole
    db.write_sync(lambda tx: tx.execute(roost_state.delete().where(
        roost_state.c.key == "cancelled")))


def test_postgresql_batches_that_lose_a_race_run_again(postgresql_url: str) -> None:
    """A deadlock or serialization failure (another process's writer won) is the batch's
    bad luck, not its operations' fault: the whole batch runs again and every caller gets its
    result, not the error."""
    database = Database(postgresql_url)
    kept_id, failed_id = new_id(), new_id()  # (this database is shared by the session)
    unlucky = {"left": 2}  # the first two runs of the batch lose the race

    def race(tx: Tx) -> str:
        if unlucky["left"]:
            unlucky["left"] -= 1
            tx.execute(text("DO $$ BEGIN RAISE EXCEPTION 'lost' USING ERRCODE = '40P01'; "
                            "END $$"))
        return "won"

    try:
        gate = Gate(database)
        first = database.submit(_insert(kept_id, event="one"))
        racing = database.submit(race)
        failing = database.submit(_insert_then_fail(failed_id, ValueError("mine"),
                                                    event="two"))
        gate.release()
        assert first.result(10) == kept_id
        assert racing.result(10) == "won"
        with pytest.raises(ValueError, match="mine"):  # an ordinary error still fails alone
            failing.result(10)
        assert unlucky["left"] == 0
        kept = _ids(database)
        assert kept_id in kept and failed_id not in kept
    finally:
        database.close()


_TAGS_IN = Raw("SELECT id FROM tags WHERE id IN ids(:ids) ORDER BY id", lists=["ids"])


@pytest.mark.parametrize("wanted", [[], [1], [2, 1, 2, 5], [2**62, 1]],
                         ids=["none", "one", "repeated", "largest-ids"])
def test_a_list_parameter_matches_its_ids(db: Database, wanted: list[int]) -> None:
    """``IN ids(:ids)``: a JSON text on SQLite, an array literal on PostgreSQL, whatever
    the list's length, with ids up to the top of the 63-bit range."""
    for tag_id in (1, 2, 2**62):
        db.write_sync(_insert(tag_id))
    found = db.read_sync(lambda tx: _TAGS_IN.scalars(tx, {"ids": wanted}))
    assert found == sorted(set(wanted) - {5})  # (5 is no tag's)


# -- statements sent ahead (Raw.send: queued on PostgreSQL's writer, run at once elsewhere) --

_SEND_TAG = Raw("INSERT INTO tags (id, name, name_lower, created_at)"
                " VALUES (:id, :name, :name, 0)")
_COUNT_TAGS = Raw("SELECT count(*) FROM tags")


def _send_tags(*tag_ids: int, then_count: bool = False) -> Callable[[Tx], int | None]:
    def op(tx: Tx) -> int | None:
        for tag_id in tag_ids:
            _SEND_TAG.send(tx, {"id": tag_id, "name": f"t{tag_id}"})
        if then_count:
            row = _COUNT_TAGS.first(tx)
            return int(row[0]) if row else None
        return tag_ids[0]

    return op


def test_statements_sent_ahead_run_in_order_before_the_next(db: Database) -> None:
    # The count sees both inserts; so does a statement SQLAlchemy runs.
    assert db.write_sync(_send_tags(1, 2, then_count=True)) == 2

    def op(tx: Tx) -> list[int]:
        _SEND_TAG.send(tx, {"id": 3, "name": "t3"})
        return list(tx.execute(select(tags.c.id).order_by(tags.c.id)).scalars())

    assert db.write_sync(op) == [1, 2, 3]
    assert db.write_sync(_send_tags(4)) == 4  # queued last: runs before the commit
    assert _ids(db) == {1, 2, 3, 4}


def test_a_statement_sent_ahead_that_fails_fails_its_own_operation(db: Database) -> None:
    """Its error surfaces in a later operation or at the end of the batch; either way only
    the operation that queued it fails."""
    db.write_sync(_send_tags(1))
    gate = Gate(db)
    ok = db.submit(_send_tags(10))
    bad = db.submit(_send_tags(11, 1))  # 1 exists
    after = db.submit(_send_tags(12, then_count=True))
    last_bad = db.submit(_send_tags(13, 10))  # fails in the batch's final round trip
    gate.release()
    assert ok.result(10) == 10
    assert after.result(10) == 3  # 1, 10 and its own 12: 11 was undone with its operation
    with pytest.raises(IntegrityError):
        bad.result(10)
    with pytest.raises(IntegrityError):
        last_bad.result(10)
    assert _ids(db) == {1, 10, 12}
    with pytest.raises(IntegrityError):  # alone in its batch
        db.write_sync(_send_tags(20, 1))
    assert _ids(db) == {1, 10, 12}


def test_statements_run_together_see_what_was_sent_ahead_and_each_other(db: Database) -> None:
    """Raw.together: on PostgreSQL's writer one round trip with the queue before it, each
    statement's rows and rowcount; elsewhere the same results one statement at a time."""
    def op(tx: Tx) -> list[tuple[list[tuple[Any, ...]], int]]:
        _SEND_TAG.send(tx, {"id": 1, "name": "t1"})
        return Raw.together(tx, [(_COUNT_TAGS, {}), (_SEND_TAG, {"id": 2, "name": "t2"}),
                                 (_COUNT_TAGS, {})])

    (before, _), (_, inserted), (after, _) = db.write_sync(op)
    assert (before, inserted, after) == ([(1,)], 1, [(2,)])

    def failing(tx: Tx) -> object:
        return Raw.together(tx, [(_SEND_TAG, {"id": 3, "name": "t3"}),
                                 (_SEND_TAG, {"id": 1, "name": "again"})])

    with pytest.raises(IntegrityError):  # the operation fails whole: 3 is not kept either
        db.write_sync(failing)
    assert _ids(db) == {1, 2}


def test_statements_sent_ahead_by_a_failed_operation_are_dropped(db: Database) -> None:
    def op(tx: Tx) -> None:
        _SEND_TAG.send(tx, {"id": 5, "name": "t5"})
        raise ValueError("changed my mind")

    with pytest.raises(ValueError):
        db.write_sync(op)
    assert db.write_sync(_send_tags(6)) == 6  # the dropped insert does not come back here
    assert _ids(db) == {6}


def test_postgresql_reads_survive_lost_connections(postgresql_url: str) -> None:
    """Every pooled read connection is ended by the server (a restart): the next reads, raw
    or through SQLAlchemy, run again on new connections instead of failing."""
    database = Database(postgresql_url)
    try:
        def backend(tx: Tx) -> int:
            pid: int = tx.execute(text("SELECT pg_backend_pid()")).scalar_one()
            time.sleep(0.05)  # (held a moment, so the reads below use several connections)
            return pid

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            pids = set(pool.map(lambda _: database.read_sync(backend), range(8)))
        assert len(pids) > 1
        admin = Database(postgresql_url)
        try:
            ended = admin.read_sync(lambda tx: tx.execute(
                text("SELECT count(*) FILTER (WHERE pg_terminate_backend(p))"
                     " FROM unnest(CAST(:pids AS int[])) p"), {"pids": list(pids)}).scalar_one())
        finally:
            admin.close()
        assert ended == len(pids)
        count_tags = Raw("SELECT count(*) FROM tags")
        for _ in range(3):
            assert database.read_sync(lambda tx: count_tags.first(tx)) is not None
            assert database.read_sync(backend) not in pids
    finally:
        database.close()


def test_the_writer_outlives_a_database_that_goes_away_and_comes_back() -> None:
    """The writer's connection is ended by the server and no new one can be opened (a
    restart under way): the writes meanwhile fail as an outage (a 503), and once the
    database takes connections again the next write commits, on the same writer."""
    with fresh_database("roost_writer") as url:
        name = url.rsplit("/", 1)[1]
        database = Database(url)
        try:
            def one(tx: Tx) -> int:
                value: int = tx.execute(text("SELECT 1")).scalar_one()
                return value

            assert database.write_sync(one) == 1
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE datname = %s", [name])
                for _ in range(2):  # refused, again and again, while it is refused
                    with pytest.raises(DBAPIError) as refused:
                        database.submit(one).result(timeout=10)
                    assert is_outage(refused.value)
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert database.submit(one).result(timeout=10) == 1
        finally:
            database.close()


class Outside:
    """Another system a store writes to (as the Redis home timelines): records each flush
    of the writes queued with ``database.deferred``, and whether the batch's rows were
    committed yet when it came."""

    def __init__(self, db: Database, *, fail_on: object = None) -> None:
        self.db = db
        self.fail_on = fail_on
        self.flushes: list[tuple[list[object], set[int]]] = []

    def flush(self, items: list[object]) -> None:
        if self.fail_on in items:
            raise ConnectionError("the other system refused")
        self.flushes.append((items, _ids(self.db)))

    def write(self, tx: Tx, item: object) -> None:
        queued = deferred(tx, self, self.flush)
        if queued is None:
            self.flush([item])
        else:
            queued.append(item)

    def op(self, tag_id: int, *items: object, fail: bool = False) -> Callable[[Tx], int]:
        def run(tx: Tx) -> int:
            _insert(tag_id)(tx)
            for item in items:
                self.write(tx, item)
            if fail:
                raise ValueError("no")
            return tag_id

        return run


def test_writes_to_another_system_go_in_one_flush_before_the_commit(db: Database) -> None:
    outside = Outside(db)
    gate = Gate(db)
    futures = [db.submit(outside.op(i, f"a{i}", f"b{i}")) for i in (1, 2, 3)]
    gate.release()
    assert [f.result(10) for f in futures] == [1, 2, 3]
    # One flush for the batch, in the order written, before its rows were committed.
    assert outside.flushes == [(["a1", "b1", "a2", "b2", "a3", "b3"], set())]
    assert db.write_sync(outside.op(4, "a4")) == 4  # alone in its batch: the same
    assert outside.flushes[-1] == (["a4"], {1, 2, 3})
    # A read (or any transaction outside the writer) writes at once.
    db.read_sync(lambda tx: outside.write(tx, "read"))
    assert outside.flushes[-1] == (["read"], {1, 2, 3, 4})


def test_writes_queued_by_a_failed_operation_are_never_sent(db: Database) -> None:
    outside = Outside(db)
    gate = Gate(db)
    ok = db.submit(outside.op(1, "one"))
    bad = db.submit(outside.op(2, "two", fail=True))
    after = db.submit(outside.op(3, "three"))
    gate.release()
    assert (ok.result(10), after.result(10)) == (1, 3)
    with pytest.raises(ValueError):
        bad.result(10)
    # The optimistic run was dropped unsent; run again operation by operation, each
    # operation's writes were sent once it had run, and the failed one's never.
    assert [items for items, _ in outside.flushes] == [["one"], ["three"]]
    with pytest.raises(ValueError):
        db.write_sync(outside.op(4, "four", fail=True))
    assert [items for items, _ in outside.flushes] == [["one"], ["three"]]
    assert _ids(db) == {1, 3}


def test_a_failed_flush_fails_only_the_operation_whose_write_it_refused(db: Database) -> None:
    outside = Outside(db, fail_on="poison")
    gate = Gate(db)
    ok = db.submit(outside.op(1, "one"))
    bad = db.submit(outside.op(2, "poison"))
    gate.release()
    assert ok.result(10) == 1
    with pytest.raises(ConnectionError):
        bad.result(10)
    with pytest.raises(ConnectionError):  # alone in its batch: its own error, rolled back
        db.write_sync(outside.op(3, "poison"))
    assert _ids(db) == {1}
    assert [items for items, _ in outside.flushes] == [["one"]]


def test_flushing_early_keeps_the_order_of_writes(db: Database) -> None:
    outside = Outside(db)

    def op(tx: Tx) -> None:
        outside.write(tx, "queued")
        flush_deferred(tx, outside)  # as a store does before a write it cannot queue
        outside.flushes.append((["at once"], set()))
        outside.write(tx, "queued after")

    db.write_sync(op)
    assert [items for items, _ in outside.flushes] == [["queued"], ["at once"],
                                                       ["queued after"]]
