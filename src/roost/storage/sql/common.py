"""Small helpers shared by the SQL stores: Mastodon-style paging and dialect-neutral upserts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Table
from sqlalchemy.dialects import postgresql, sqlite

from roost.domain.models import Page
from roost.storage.database import Tx


def paged(stmt: Select[Any], column: ColumnElement[Any], page: Page) -> Select[Any]:
    """Restrict ``stmt`` to the page window on ``column`` and order it as the page asks."""
    if page.max_id is not None:
        stmt = stmt.where(column < page.max_id)
    if page.since_id is not None:
        stmt = stmt.where(column > page.since_id)
    if page.min_id is not None:
        return stmt.where(column > page.min_id).order_by(column.asc()).limit(page.limit)
    return stmt.order_by(column.desc()).limit(page.limit)


def newest_first(rows: Sequence[Any], page: Page) -> list[Any]:
    """Rows fetched for ``page`` in newest-first order (``min_id`` pages come oldest first)."""
    return list(reversed(rows)) if page.min_id is not None else list(rows)


def insert_ignore(tx: Tx, table: Table) -> Any:
    """INSERT that silently skips rows whose primary or unique key already exists; its
    ``rowcount`` is the number of rows inserted (SQLAlchemy keeps an INSERT's rowcount only
    when asked: without ``preserve_rowcount`` psycopg reports -1)."""
    stmt: Any
    if tx.dialect.name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    return stmt.execution_options(preserve_rowcount=True)


def upsert(tx: Tx, table: Table) -> Any:
    """The dialect's INSERT ... ON CONFLICT construct, for ``on_conflict_do_update``."""
    if tx.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
