"""The database runner: one writer that group-commits, a pool of readers.

All writes go through one writer thread. It takes whatever operations are queued (up to
``write_batch_max``), runs them inside one transaction, commits once, and only then answers
the callers. One fsync is shared by the whole batch, so a follow storm is limited by the
database's commit rate divided by the batch size rather than by it, and SQLite never sees two
writers. A failing operation fails alone: the batch runs first without savepoints, and if an
operation raises, it is rolled back whole and run again with a savepoint around each
operation. So an operation may run twice, its first run rolled back: whatever it does outside
the transaction (Redis writes, a relay's XADD) must be harmless to repeat, as at-least-once
delivery requires anyway.

Reads run in worker threads on pooled connections; on SQLite in WAL mode they never wait for
the writer.

Statements sent ahead (PostgreSQL's writer only): a statement whose result nobody reads (a
counter bump, a history event, a notification, an outbox job) can be queued with
``send_ahead`` instead of run; it goes out together with the next statement that is run, in
one psycopg pipeline, so a follow's eleven statements cost four round trips instead of
eleven. Order is kept (queued statements always run before the next one), and an error in
one surfaces at the latest when the operation that queued it ends: the writer flushes after
every operation run in a savepoint, and before committing an optimistic batch (a failure
there reruns the batch isolated, as any failure does). A rollback drops what is queued.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

T = TypeVar("T")
Tx = Connection
"""An open transaction. Stores take it as their first argument; the domain never looks inside."""


@dataclass
class _WriteOp:
    fn: Callable[[Tx], Any]
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


_STOP = object()
_EVENTS = "roost.events"


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


_SENT_AHEAD = "roost.sent_ahead"


def send_ahead(tx: Tx, text: str, params: Any) -> bool:
    """Queue ``text`` (in the driver's parameter style) to run before the next statement on
    ``tx``, if ``tx`` is PostgreSQL's writer; False (nothing queued: run it now) otherwise."""
    pending: list[tuple[str, Any]] | None = tx.info.get(_SENT_AHEAD)
    if pending is None:
        return False
    pending.append((text, params))
    return True


def run_sent_ahead(tx: Tx, text: str | None = None, params: Any = None) -> Any:
    """Run what is queued on ``tx`` and then ``text`` (if given) in one round trip; returns
    ``text``'s cursor (None without ``text``). Errors are raised as SQLAlchemy's."""
    pending: list[tuple[str, Any]] | None = tx.info.get(_SENT_AHEAD)
    if not pending:
        if text is None:
            return None
        try:
            return tx.connection.driver_connection.execute(text, params)  # type: ignore[union-attr]
        except tx.dialect.loaded_dbapi.Error as error:
            raise driver_error(tx, text, params, error) from error
    statements = list(pending)
    pending.clear()
    if text is None:
        _pipelined(tx, statements)
        return None
    return _pipelined(tx, [*statements, (text, params)])[-1]


def run_together(tx: Tx, statements: list[tuple[str, Any]]) -> list[Any] | None:
    """On PostgreSQL's writer: run what is queued on ``tx`` and then ``statements`` (in the
    driver's parameter style), in order, in one round trip; returns each statement's cursor,
    its result read. None (nothing run) on any other connection: run them one by one."""
    pending: list[tuple[str, Any]] | None = tx.info.get(_SENT_AHEAD)
    if pending is None:
        return None
    earlier = list(pending)
    pending.clear()
    return _pipelined(tx, [*earlier, *statements])[len(earlier):]


def _pipelined(tx: Tx, statements: list[tuple[str, Any]]) -> list[Any]:
    """Run ``statements`` in one psycopg pipeline (one round trip); their cursors. An error
    is raised as SQLAlchemy's, naming the statement that failed."""
    driver = tx.connection.driver_connection
    cursors: list[Any] = []
    failing = statements[0]
    try:
        with driver.pipeline():  # type: ignore[union-attr]
            for failing in statements:
                cursors.append(driver.execute(*failing))  # type: ignore[union-attr]
    except tx.dialect.loaded_dbapi.Error as error:
        raise driver_error(tx, failing[0], failing[1], error) from error
    return cursors


_DEFERRED = "roost.deferred"


def deferred(tx: Tx, owner: object,
             flush: Callable[[list[Any]], None]) -> list[Any] | None:
    """The list in which ``owner`` (a store writing to another system: Redis) may queue the
    writes of ``tx``: the writer sends them with ``flush(list)`` in one go once every
    operation of its batch has run, just before the commit, so a batch of posts or fan-out
    steps costs one round trip to that system, not one each, and an operation that fails
    sends nothing. None outside the writer (a read): write at once."""
    pending: dict[object, tuple[Callable[[list[Any]], None], list[Any]]] | None = (
        tx.info.get(_DEFERRED))
    if pending is None:
        return None
    if owner not in pending:
        pending[owner] = (flush, [])
    return pending[owner][1]


def flush_deferred(tx: Tx, owner: object) -> None:
    """Send now what ``owner`` queued on ``tx`` (before a write or read that must follow it)."""
    pending = tx.info.get(_DEFERRED)
    if pending and owner in pending:
        flush, items = pending[owner]
        if items:
            batch = list(items)
            items.clear()
            flush(batch)


def _flush_all_deferred(tx: Tx) -> None:
    for owner in list(tx.info.get(_DEFERRED) or ()):
        flush_deferred(tx, owner)


def _drop_deferred(tx: Tx) -> None:
    for _flush, items in (tx.info.get(_DEFERRED) or {}).values():
        items.clear()


def driver_error(tx: Tx, text: str, params: Any, error: Any) -> BaseException:
    """The driver's error as SQLAlchemy would raise it (``IntegrityError`` and so on), so
    callers catch one family of errors whichever way a statement ran; a lost connection is
    marked invalid, as SQLAlchemy does, so the writer opens a new one."""
    disconnected = tx.dialect.is_disconnect(error, tx.connection.dbapi_connection, None)
    if disconnected:
        tx.invalidate()
    wrapped: BaseException = DBAPIError.instance(text, params, error,
                                                 tx.dialect.loaded_dbapi.Error,
                                                 connection_invalidated=disconnected,
                                                 dialect=tx.dialect)
    return wrapped


class AfterCommit:
    """A change to something outside the database that must follow the commit of the
    operation that made it (``after_commit``)."""

    __slots__ = ("done", "fn", "owner")

    def __init__(self, owner: object, fn: Callable[[], None]) -> None:
        self.owner = owner
        self.fn = fn
        self.done = False

    def run(self) -> None:
        if not self.done:
            self.done = True
            self.fn()


def after_commit(tx: Tx, owner: object, fn: Callable[[], None]) -> bool:
    """Have the writer call ``fn`` once ``tx``'s batch has committed, before the callers are
    answered; dropped with an operation that fails. False outside the writer (a read): the
    caller acts at once. For a store in this process's memory, which no rollback can undo and
    which a reader must not see ahead of the database (``run_after_commit_now``)."""
    events = tx.info.get(_EVENTS)
    if events is None:
        return False
    events.append(AfterCommit(owner, fn))
    return True


def run_after_commit_now(tx: Tx, owner: object) -> None:
    """Run now what ``owner`` left for after ``tx``'s commit: a read of that store in the
    same transaction sees the transaction's own writes."""
    for change in tx.info.get(_EVENTS) or ():
        if isinstance(change, AfterCommit) and change.owner is owner:
            change.run()


def emit(tx: Tx, event: object) -> None:
    """Record an event to publish once ``tx`` commits (dropped if it rolls back)."""
    events = tx.info.get(_EVENTS)
    if events is not None:
        events.append(event)


# Reads at once on PostgreSQL by default, each on a connection of the pool kept open for it.
PG_READ_CONNECTIONS = 4
# Reads that may scan a large table (searches) at once, in a lane of their own.
SCAN_READ_THREADS = 2


class Database:
    """Runs read and write operations (plain functions of a transaction) for the async layers."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", write_batch_max: int = 256,
                 read_threads: int | None = None, sqlite_inline_reads: bool = True):
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        if self.dialect == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self._sqlite_synchronous = sqlite_synchronous
        self._write_batch_max = write_batch_max
        # A SQLite read is CPU work under the GIL (the driver lets go of it around every
        # statement step and takes it back, a thread switch each time another thread wants
        # it): a second reader thread only adds those switches (BENCHMARKS.md: home read
        # 585 req/s with four threads, 670 with two, 820 with one, p99 halved). A PostgreSQL
        # read mostly waits on the network, so several run at once, but its rows become
        # Python objects under the GIL too: four, not sixteen (home read +55%, BENCHMARKS.md),
        # and never more than the pool holds: a read beyond it would open a connection of
        # its own and close it afterwards.
        self.read_threads = read_threads or (1 if self.dialect == "sqlite"
                                             else PG_READ_CONNECTIONS)
        self.write_engine = self._make_engine(url, writer=True)
        self.read_engine = self._make_engine(url, writer=False)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._after_commit: list[Callable[[list[object]], None]] = []
        self._read_limiter = anyio.CapacityLimiter(self.read_threads)
        # A search scans (~100-200 ms on SQLite for 220,000 accounts): in the lane of the
        # quick reads it would hold up every timeline read queued behind it.
        self._scan_limiter = anyio.CapacityLimiter(SCAN_READ_THREADS)
        # A bounded read on SQLite costs tens of microseconds of CPU: less than handing it to
        # a reader thread and back, and on the caller's thread it no longer fights the event
        # loop for the GIL (home read +10-70%, celebrity run 365-636 -> 983-1,000 of 1,000
        # followers within 1 s; BENCHMARKS.md). Only bounded reads: a scan
        # there would stall every request and stream of the process.
        self.inline_reads = sqlite_inline_reads and self.dialect == "sqlite"

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _make_engine(self, url: str, *, writer: bool) -> Engine:
        if self.dialect != "sqlite":
            # Readers see one snapshot per operation, as a SQLite read transaction does
            # (read-only REPEATABLE READ never fails to serialise); the writer stays READ
            # COMMITTED so upserts from other processes never raise serialisation errors.
            # JIT off: Roost's statements are index walks that finish in milliseconds, and
            # PostgreSQL's cost estimates for a walk per followed account (a rebuild, a
            # fill) set it compiling for 130 ms a statement that then ran in 15
            # (`python -m bench.fill --engine postgresql`).
            pg = create_engine(url, pool_size=1 if writer
                               else self.read_threads + SCAN_READ_THREADS,
                               max_overflow=0, pool_pre_ping=writer,
                               connect_args={"options": "-c jit=off"},
                               isolation_level="READ COMMITTED" if writer
                               else "REPEATABLE READ")
            if writer:
                _send_ahead_on(pg)
            return pg
        engine = create_engine(url, pool_size=1 if writer else 16,
                               max_overflow=0 if writer else 16,
                               connect_args={"check_same_thread": False, "timeout": 30})
        synchronous = self._sqlite_synchronous

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module so savepoints work and the
            # writer can BEGIN IMMEDIATE (see SQLAlchemy's pysqlite notes).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.close()
            # SQLite's lower() folds ASCII only; PostgreSQL's (and Python's) fold all of Unicode.
            dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

        begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # On the driver's cursor: every read begins one, and SQLAlchemy's execution
            # path costs more than the statement (storage/sql/raw.py).
            conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]

        return engine

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._writer is not None

    def start(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="roost-writer",
                                            daemon=True)
            self._writer.start()

    def close(self) -> None:
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
            self._writer = None
        self.write_engine.dispose()
        self.read_engine.dispose()

    def on_commit(self, callback: Callable[[list[object]], None]) -> None:
        """After each commit, call ``callback`` (in the writer thread) with the events the
        committed operations emitted (see ``emit``); used to wake workers and stream events."""
        self._after_commit.append(callback)

    # -- running operations ----------------------------------------------------------------

    async def read(self, fn: Callable[[Tx], T], *, snapshot: bool = True,
                   scan: bool = False, bounded: bool = False) -> T:
        """Run ``fn`` on a reader. With ``snapshot`` its statements see one snapshot (a read
        transaction); without, each statement sees the latest commits on its own, which on
        PostgreSQL saves the BEGIN and ROLLBACK round trips (for reads that do not need
        their statements to agree, such as authentication). A ``scan`` (a read that may
        go through a large table, such as a search) runs in a lane of its own, beside the
        ``read_threads`` quick reads rather than in front of them. A ``bounded`` read (a
        few rows found by index, however large the tables grow: a token, a timeline page)
        runs on SQLite right here, on the event loop's thread (``inline_reads``); a
        PostgreSQL read waits on the network, so it always goes to a reader thread."""
        if bounded and self.inline_reads and not scan:
            return self.read_sync(fn, snapshot)
        limiter = self._scan_limiter if scan else self._read_limiter
        return await anyio.to_thread.run_sync(self.read_sync, fn, snapshot, limiter=limiter)

    def read_sync(self, fn: Callable[[Tx], T], snapshot: bool = True) -> T:
        try:
            return self._read_once(fn, snapshot)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        # The pooled connection had been lost (the server restarted, or ended it), and so
        # most likely have the others: drop them all and run the read again on a new one.
        # (Cheaper than pool_pre_ping, a round trip to test the connection before each read.)
        self.read_engine.dispose()
        return self._read_once(fn, snapshot)

    def _read_once(self, fn: Callable[[Tx], T], snapshot: bool) -> T:
        with self.read_engine.connect() as conn:
            if not snapshot and not self.is_sqlite:
                conn.execution_options(isolation_level="AUTOCOMMIT")
            return fn(conn)

    async def write(self, fn: Callable[[Tx], T]) -> T:
        future = self.submit(fn)
        # Shielded: a request whose client goes away still gets its write, whole, rather than
        # a write silently dropped or cut in the middle.
        return await asyncio.shield(asyncio.wrap_future(future))

    def write_sync(self, fn: Callable[[Tx], T]) -> T:
        return self.submit(fn).result()

    def submit(self, fn: Callable[[Tx], T]) -> concurrent.futures.Future[T]:
        self.start()
        op = _WriteOp(fn)
        self._queue.put(op)
        return op.future

    def _write_loop(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_WriteOp] = [first]
                stop = False
                while len(batch) < self._write_batch_max:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    batch.append(nxt)
                try:
                    conn = self._commit_batch(conn, batch)
                except BaseException as exc:  # a bug: the writer must outlive it all the same
                    log.exception("write batch of %d failed unexpectedly", len(batch))
                    _fail_unsettled(batch, exc)
                    _discard(conn)
                    conn = None
                if stop:
                    return
        finally:
            _discard(conn)

    def _commit_batch(self, conn: Connection | None, batch: list[_WriteOp]
                      ) -> Connection | None:
        """Run ``batch`` on ``conn`` (a new connection when None) and settle every
        operation's future; the connection to use next (None: open a new one)."""
        # A caller may have given up on an operation still in the queue (its future was
        # cancelled): skip it; the others can no longer be cancelled once marked running.
        batch = [op for op in batch if op.future.set_running_or_notify_cancel()]
        if not batch:
            return conn
        if conn is not None and not self.is_sqlite and _ended_by_server(conn):
            _discard(conn)  # (found before the batch runs on it: the batch needs no retry)
            conn = None
        if conn is None:
            try:
                conn = self.write_engine.connect()
            except BaseException as exc:  # the database is unreachable (an outage: a 503)
                _fail_unsettled(batch, exc)
                return None
        events: list[object] = []
        conn.info[_EVENTS] = events
        outcomes: list[tuple[bool, Any]] = []
        try:
            for attempt in range(TRANSIENT_RETRIES + 1):
                events.clear()
                outcomes.clear()
                try:
                    self._attempt(conn, batch, events, outcomes)
                    break
                except BaseException as exc:
                    if attempt == TRANSIENT_RETRIES or not _transient(exc):
                        raise
                    # Another process's transaction deadlocked with this one, or PostgreSQL
                    # could not serialise them: nothing of the batch was kept, so it runs
                    # again, as a client would retry, rather than failing every caller.
                    log.info("write batch of %d hit %r; running it again", len(batch), exc)
                    time.sleep(0.01 * 2**attempt)
        except BaseException as exc:
            log.debug("write batch of %d failed: %r", len(batch), exc)
            errors = [value if not ok else exc for ok, value in outcomes]
            errors += [exc] * (len(batch) - len(outcomes))
            outcomes = [(False, error) for error in errors]
            if conn.invalidated or conn.closed:
                # The connection was lost (the database restarted, or ended it): the next
                # batch opens a new one, or fails as this one did while the database is down.
                _discard(conn)
                conn = None
        else:
            if any(isinstance(e, AfterCommit) for e in events):
                for change in [e for e in events if isinstance(e, AfterCommit)]:
                    try:
                        change.run()
                    except Exception:
                        log.exception("an after-commit change failed")
                events = [e for e in events if not isinstance(e, AfterCommit)]
            for callback in self._after_commit:
                try:
                    callback(events)
                except Exception:
                    log.exception("after-commit callback failed")
        for op, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)
        return conn

    def _attempt(self, conn: Connection, batch: list[_WriteOp], events: list[object],
                 outcomes: list[tuple[bool, Any]]) -> None:
        try:
            self._run(conn, batch, events, outcomes, isolated=False)
        except _OperationFailed:
            # Optimistic first: no savepoint per operation (two statements each, a quarter
            # of a follow's writer time on SQLite, two round trips on PostgreSQL). One
            # operation failed, so nothing was kept: run the batch again with a savepoint
            # around each operation, so the failure rolls back alone.
            events.clear()
            outcomes.clear()
            self._run(conn, batch, events, outcomes, isolated=True)

    @staticmethod
    def _run(conn: Connection, batch: list[_WriteOp], events: list[object],
             outcomes: list[tuple[bool, Any]], *, isolated: bool) -> None:
        """Run ``batch`` in one transaction and commit it, appending (ok, result or
        exception) per operation to ``outcomes``. Not ``isolated``: a failing operation rolls
        everything back and raises (its own exception when it is alone, else
        ``_OperationFailed``). ``isolated``: each operation in its own savepoint, so a failing
        one is undone alone and reported, and the rest commit."""
        # Other systems' writes (``deferred``) are sent once the batch's operations have run
        # (isolated: once each operation has), so a failed operation's are never sent.
        conn.info[_DEFERRED] = {}
        try:
            Database._run_in_transaction(conn, batch, events, outcomes, isolated=isolated)
        finally:
            conn.info.pop(_DEFERRED, None)

    @staticmethod
    def _run_in_transaction(conn: Connection, batch: list[_WriteOp], events: list[object],
                            outcomes: list[tuple[bool, Any]], *, isolated: bool) -> None:
        with conn.begin():
            for op in batch:
                if len(batch) == 1:
                    outcomes.append((True, op.fn(conn)))
                    run_sent_ahead(conn)  # (a failure here is this operation's)
                    _flush_all_deferred(conn)
                elif not isolated:
                    try:
                        outcomes.append((True, op.fn(conn)))
                    except BaseException as exc:
                        if _transient(exc):
                            raise  # the batch's fault, not the operation's: retry it all
                        raise _OperationFailed from exc
                else:
                    savepoint = conn.begin_nested()
                    emitted_before = len(events)
                    try:
                        result = op.fn(conn)
                        run_sent_ahead(conn)  # its queued statements fail as its own
                        _flush_all_deferred(conn)  # and so do its other systems' writes
                    except BaseException as exc:
                        if _transient(exc):
                            raise
                        _drop_deferred(conn)
                        savepoint.rollback()
                        del events[emitted_before:]
                        outcomes.append((False, exc))
                    else:
                        savepoint.commit()
                        outcomes.append((True, result))
            if len(batch) > 1 and not isolated:
                try:
                    run_sent_ahead(conn)
                    _flush_all_deferred(conn)
                except BaseException as exc:
                    if _transient(exc):
                        raise
                    raise _OperationFailed from exc  # whose, only an isolated run can tell


def _send_ahead_on(engine: Engine) -> None:
    """Let the stores queue statements on this engine's connections (``send_ahead``): they
    run before any statement SQLAlchemy runs and before a commit; a rollback drops them."""

    @event.listens_for(engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info[_SENT_AHEAD] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _before_execute(conn: Connection, *_: Any) -> None:
        if conn.info.get(_SENT_AHEAD):
            run_sent_ahead(conn)

    @event.listens_for(engine, "commit")
    def _before_commit(conn: Connection) -> None:
        if conn.info.get(_SENT_AHEAD):
            run_sent_ahead(conn)

    @event.listens_for(engine, "rollback")
    @event.listens_for(engine, "rollback_savepoint")
    def _drop(conn: Connection, *_: Any) -> None:
        if conn.invalidated:  # the connection is gone, and its queue with it
            return
        pending = conn.info.get(_SENT_AHEAD)
        if pending:
            pending.clear()


TRANSIENT_RETRIES = 3
# PostgreSQL's deadlock_detected and serialization_failure: the transaction lost a race with
# another one (another process's writer), not an error of the operations in it.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def _transient(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _TRANSIENT_SQLSTATES


class _OperationFailed(Exception):
    """An operation of an optimistic (savepoint-free) batch failed: run it again isolated."""


def _fail_unsettled(batch: list[_WriteOp], exc: BaseException) -> None:
    for op in batch:
        if not op.future.done():
            op.future.set_exception(exc)


def _discard(conn: Connection | None) -> None:
    """Close ``conn`` if any, whatever state it is in."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def _ended_by_server(conn: Connection) -> bool:
    """Whether the server has ended this idle connection (it restarted, or timed the session
    out): an idle connection is sent nothing, so a socket with something to read, the
    server's farewell or the end of the stream, has been ended. One non-blocking poll, where a
    ping would cost a round trip per batch. (Rarely the server tells an idle session that a
    reported setting changed, after a configuration reload: one needless reconnection.)"""
    try:
        driver = conn.connection.driver_connection
        if driver is None or driver.closed or driver.broken:
            return True
        readable, _, _ = select.select([driver.pgconn.socket], [], [], 0)
        return bool(readable)
    except Exception:
        return True
