"""Telling a storage outage from a bug (``roost.storage.unavailable``), on real failures."""

from __future__ import annotations

import socket

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from roost.storage.database import Database
from roost.storage.unavailable import is_outage


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # (nothing listens there once the socket is closed)


def test_an_unreachable_database_or_redis_is_an_outage() -> None:
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/x")
    with pytest.raises(DBAPIError) as refused:
        engine.connect()
    engine.dispose()
    assert is_outage(refused.value)
    client = redis.Redis(port=_closed_port())
    with pytest.raises(redis.ConnectionError) as down:
        client.ping()
    client.close()
    assert is_outage(down.value)


def test_a_failing_statement_is_not_an_outage(db: Database) -> None:
    with pytest.raises(DBAPIError) as failed:
        db.read_sync(lambda tx: tx.execute(text("SELECT * FROM no_such_table")))
    assert not is_outage(failed.value)
    assert not is_outage(ValueError("a bug"))
