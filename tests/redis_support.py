"""Redis for the tests of the production backends.

The server is ``ROOST_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``, a database of
its own). When it cannot be reached the Redis tests are skipped, except with ``CI=true``,
where they fail. Each test gets a key prefix of its own (``redis_prefix``) and its keys are
deleted afterwards, so tests, and test runs sharing the server, never see each other's keys
or channels.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis

from tests.services import unusable

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("ROOST_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        unusable(f"Redis at {url} is not usable: {exc}")
    finally:
        client.close()
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key and channel prefix for one test; its keys are deleted afterwards. Ask for it
    before any fixture that runs a Roost on it (``make_api``): fixtures are torn down in the
    reverse order, so the Roost stops first; the other way round its job runner, still
    reading, made the job stream again after the deletion and left it in Redis."""
    prefix = f"roost-test-{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
    finally:
        client.close()
