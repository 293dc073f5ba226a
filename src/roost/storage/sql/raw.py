"""Hot statements run on the database driver's own cursor, inside the SQLAlchemy transaction.

Why: on the request paths that run most (authentication, a follow, hydrating a timeline
page) the statements are tiny primary-key lookups and one-row inserts, and SQLAlchemy's
execution machinery costs 3-4 times the statement itself even when the statement is built
once (BENCHMARKS.md, "statement_us": ~50 us per call through ``Connection.execute``, ~12 us
on the ``sqlite3`` cursor). Everywhere else the stores keep SQLAlchemy Core.

A ``Raw`` is written once in SQLite's named style (``:name``) and turned into psycopg's
(``%(name)s``) for PostgreSQL. A list parameter for ``IN`` is written ``IN ids(:ids)`` and
becomes ``IN (SELECT value FROM json_each(:ids))`` on SQLite (the list passed as one JSON
text, so the statement text never changes) and ``= ANY(CAST(:ids AS BIGINT[]))`` on
PostgreSQL (the list passed as an array literal, ``{1,2,3}``: psycopg's dumping of a Python
list cost ~45 us of CPU a statement, a third of the statement; home read +20-30%).
Results are plain tuples: booleans come back as 0/1 from SQLite, so callers wrap them in
``bool()``. The statement runs on the same connection, so it sees and joins the
transaction and savepoint the writer opened; a read transaction is begun first if none is
open yet, so one read operation sees one snapshot as it does through SQLAlchemy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from roost.domain.models import Page
from roost.storage.database import Tx, driver_error, run_sent_ahead, run_together, send_ahead

_IN_LIST = re.compile(r"\bIN ids\(:(\w+)\)")
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def _for_sqlite(sql: str) -> str:
    return _IN_LIST.sub(r"IN (SELECT value FROM json_each(:\1))", sql)


def _for_postgresql(sql: str) -> str:
    sql = _IN_LIST.sub(r"= ANY(CAST(:\1 AS BIGINT[]))", sql)
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class Raw:
    """One SQL statement for both engines, run on the driver's cursor (see the module doc)."""

    def __init__(self, sql: str, *, lists: Iterable[str] = ()) -> None:
        self.lists = tuple(lists)  # the parameters that are lists of ids
        self._text = {"sqlite": _for_sqlite(sql), "postgresql": _for_postgresql(sql)}

    def _prepared(self, tx: Tx, params: dict[str, Any] | None) -> tuple[bool, str, Any]:
        sqlite = tx.dialect.name == "sqlite"
        if sqlite and not tx.in_transaction():
            tx.begin()  # (runs the engine's BEGIN hook, as SQLAlchemy's autobegin would)
        values = params or {}
        if self.lists:
            values = dict(values)
            for name in self.lists:
                ids = list(values[name])
                values[name] = (orjson.dumps(ids).decode() if sqlite
                                else "{" + ",".join(map(str, ids)) + "}")
        return sqlite, self._text["sqlite" if sqlite else "postgresql"], values

    def run(self, tx: Tx, params: dict[str, Any] | None = None) -> Any:
        """Execute; returns the driver's cursor."""
        return self._execute(tx, *self._prepared(tx, params))

    @staticmethod
    def _execute(tx: Tx, sqlite: bool, text: str, values: Any) -> Any:
        if not sqlite:  # with whatever was sent ahead, in one round trip
            return run_sent_ahead(tx, text, values)
        try:
            return tx.connection.driver_connection.execute(text, values)  # type: ignore[union-attr]
        except tx.dialect.loaded_dbapi.Error as error:
            raise driver_error(tx, text, values, error) from error

    @staticmethod
    def together(tx: Tx, statements: Sequence[tuple[Raw, dict[str, Any]]]
                 ) -> list[tuple[list[tuple[Any, ...]], int]]:
        """Run ``statements`` in order, each one's (rows, rowcount): on PostgreSQL's writer
        in one round trip (with whatever was sent ahead), elsewhere one after the other,
        each read whole before the next runs."""
        prepared = [raw._prepared(tx, params) for raw, params in statements]
        cursors = run_together(tx, [(text, values) for _, text, values in prepared])
        if cursors is not None:
            return [_result(cursor) for cursor in cursors]
        # (Each read before the next runs: SQLite steps a SELECT lazily, and a later
        # statement of the batch could change what it had yet to return.)
        return [_result(Raw._execute(tx, *statement)) for statement in prepared]

    def send(self, tx: Tx, params: dict[str, Any] | None = None) -> None:
        """Execute a statement whose result nobody reads: on PostgreSQL's writer it goes out
        with the next statement, in one round trip (``database.send_ahead``); else now."""
        sqlite, text, values = self._prepared(tx, params)
        if sqlite or not send_ahead(tx, text, values):
            self._execute(tx, sqlite, text, values)

    def all(self, tx: Tx, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.run(tx, params).fetchall()
        return rows

    def first(self, tx: Tx, params: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.run(tx, params).fetchone()
        return row

    def scalars(self, tx: Tx, params: dict[str, Any] | None = None) -> list[Any]:
        return [row[0] for row in self.run(tx, params).fetchall()]

    def rowcount(self, tx: Tx, params: dict[str, Any] | None = None) -> int:
        count: int = self.run(tx, params).rowcount
        return count

    def many(self, tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
        """Execute once per row (``executemany``): a fan-out step's thousands of inserts."""
        assert not self.lists, "executemany takes no list parameters"
        sqlite = tx.dialect.name == "sqlite"
        if sqlite and not tx.in_transaction():
            tx.begin()
        text = self._text["sqlite" if sqlite else "postgresql"]
        if not sqlite:
            run_sent_ahead(tx)
        try:
            cursor = tx.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(text, rows)
        except tx.dialect.loaded_dbapi.Error as error:
            raise driver_error(tx, text, rows, error) from error


def _result(cursor: Any) -> tuple[list[tuple[Any, ...]], int]:
    """A cursor's rows (none for a statement that returns none) and rowcount."""
    rowcount: int = cursor.rowcount
    return (list(cursor.fetchall()) if cursor.description else []), rowcount


def page_shape(page: Page) -> tuple[bool, bool, bool]:
    """Which of ``page``'s bounds are set (max_id, since_id, min_id): one statement text
    per shape."""
    return page.max_id is not None, page.since_id is not None, page.min_id is not None


def page_bounds(column: str, page: Page) -> str:
    """``page``'s window on ``column`` as conditions to append to a WHERE clause."""
    max_id, since_id, min_id = page_shape(page)
    return ((f" AND {column} < :max_id" if max_id else "")
            + (f" AND {column} > :since_id" if since_id else "")
            + (f" AND {column} > :min_id" if min_id else ""))


def page_order(page: Page) -> str:
    """The order a page is read in: with min_id the entries just above it (ascending)."""
    return "ASC" if page.min_id is not None else "DESC"


def page_params(page: Page) -> dict[str, Any]:
    return {"max_id": page.max_id, "since_id": page.since_id, "min_id": page.min_id,
            "limit": page.limit}


def paged_raw(select_sql: str, column: str, page: Page, cache: dict[tuple[bool, bool, bool], Raw],
              *, lists: Iterable[str] = ()) -> tuple[Raw, dict[str, Any]]:
    """``select_sql`` (a SELECT ... WHERE ...) restricted to ``page``'s window on ``column``
    and ordered as the page asks, as ``common.paged`` does for SQLAlchemy statements; one
    statement per combination of bounds, kept in ``cache``."""
    shape = page_shape(page)
    raw = cache.get(shape)
    if raw is None:
        sql = (f"{select_sql}{page_bounds(column, page)}"
               f" ORDER BY {column} {page_order(page)} LIMIT :limit")
        raw = cache[shape] = Raw(sql, lists=lists)
    return raw, page_params(page)
