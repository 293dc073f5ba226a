"""Storage fixtures: every test runs once on SQLite and once on PostgreSQL.

``db`` is a started ``Database`` on a schema brought up by ``roost.storage.migrate.upgrade``:

- sqlite: a temporary file, migrated once per session;
- postgresql: a fresh database ``roost_test_<random>`` created on the local server for the test
  session (through the ``postgres`` maintenance database), migrated once and dropped at the end.
  The server is ``ROOST_TEST_POSTGRES_URL`` (default
  ``postgresql://postgres@127.0.0.1:5432/postgres``). When it cannot be reached the PostgreSQL
  tests are skipped, except with ``CI=true``, where they fail. The database gets an ICU en-US
  collation when the server has ICU, like most production databases, so that nothing depends
  on the C collation's code point order by accident.

Every table is emptied before each test, so tests are independent.

The home timeline store also has an in-memory and a Redis implementation: a test marked
``@HOME_STORES`` runs with ``h.s.home`` being each of them (Redis: see
``tests/redis_support.py``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from roost.storage import migrate
from roost.storage.database import Database, Tx
from roost.storage.memory.timelines import MemoryHomeTimelineStore
from roost.storage.stores import Stores, close_stores, sql_stores
from tests.services import unusable

T = TypeVar("T")
ENGINES = ["sqlite", "postgresql"]
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _psycopg_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _empty_all(engine: Engine, tables: list[str]) -> None:
    with engine.begin() as conn:
        for name in tables:
            conn.execute(text(f'DELETE FROM "{name}"'))


def _migrated(url: str) -> None:
    database = Database(url)
    try:
        migrate.upgrade(database)
    finally:
        database.close()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('storage') / 'roost.db'}"
    _migrated(url)
    yield url


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session; dropped at the end."""
    server = os.environ.get("ROOST_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    admin = create_engine(_psycopg_url(server), isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 5}, pool_size=1)
    name = f"roost_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            create = f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'
            try:
                conn.execute(text(f"{create} LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"))
            except DBAPIError:  # no ICU (or before PostgreSQL 15): the server's default
                conn.execute(text(create))
            # Commits need not reach the disk in tests; visibility and locking are unchanged.
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    except Exception as exc:
        admin.dispose()
        unusable(f"PostgreSQL at {make_url(server).render_as_string()} is not usable: {exc}")
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        _migrated(url)
        yield url
    finally:
        with admin.connect() as conn:
            try:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except DBAPIError:  # before PostgreSQL 13: every connection is closed by now
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def _cleaners() -> Iterator[dict[str, tuple[Engine, list[str]]]]:
    """Per database URL: an engine to empty the tables between tests, and the tables (those
    the migrations made, whatever ``schema.metadata`` says)."""
    engines: dict[str, tuple[Engine, list[str]]] = {}
    yield engines
    for engine, _tables in engines.values():
        engine.dispose()


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest,
           _cleaners: dict[str, tuple[Engine, list[str]]]) -> str:
    """The URL of a migrated database of each engine, with every table empty."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    if url not in _cleaners:
        engine = create_engine(_psycopg_url(url), pool_size=1)
        tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
        _cleaners[url] = (engine, tables)
    _empty_all(*_cleaners[url])
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url, sqlite_synchronous="NORMAL")
    database.start()
    yield database
    database.close()


class Harness:
    """Runs store calls through the database runner: ``h.write(store.method, *args)``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.s: Stores = sql_stores()

    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.db.write_sync(lambda tx: fn(tx, *args, **kwargs))

    def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.db.read_sync(lambda tx: fn(tx, *args, **kwargs))

    def sql(self, statement: str, **params: Any) -> list[Any]:
        def run(tx: Tx) -> list[Any]:
            return list(tx.execute(text(statement), params).all())

        return self.db.read_sync(run)


HOME_STORES = pytest.mark.parametrize(
    "h", ["sql-home", "memory-home", "redis-home", "redis-cluster-home"], indirect=True)


@pytest.fixture
def h(request: pytest.FixtureRequest, db: Database) -> Iterator[Harness]:
    """The stores of ``sql_stores()``; parametrised with "redis-home" (``HOME_STORES``), the
    home timelines are in Redis, with "redis-cluster-home" in a 3-node Redis Cluster."""
    harness = Harness(db)
    param = getattr(request, "param", "sql-home")
    if param == "memory-home":
        harness.s.home = MemoryHomeTimelineStore(cap=800)
    elif param == "redis-home":
        from roost.storage.redis.timelines import RedisHomeTimelineStore

        harness.s.home = RedisHomeTimelineStore.from_url(
            request.getfixturevalue("redis_url"), cap=800,
            prefix=request.getfixturevalue("redis_prefix"))
    elif param == "redis-cluster-home":
        from roost.storage.redis.timelines import RedisHomeTimelineStore

        harness.s.home = RedisHomeTimelineStore.from_url(
            request.getfixturevalue("redis_cluster_url"), cap=800,
            prefix=request.getfixturevalue("cluster_prefix"), cluster=True)
    yield harness
    close_stores(harness.s)
