"""Fresh PostgreSQL databases for tests that run Roost on PostgreSQL.

The server is ``ROOST_TEST_POSTGRES_URL`` (default the local ``postgres`` database). When it
cannot be reached the test is skipped, except with ``CI=true``, where it fails.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg

from tests.services import unusable

PG_ADMIN = os.environ.get("ROOST_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def fresh_database(prefix: str = "roost_test") -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        unusable(f"PostgreSQL not reachable: {exc}")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
