"""Shared fixtures: a Roost on a temporary SQLite file, an in-process client, helpers to make
users and tokens, and Mastodon entity validation against the OpenAPI document."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest
from jsonschema import Draft202012Validator
from starlette.testclient import TestClient

from roost.runtime import Roost
from roost.settings import Settings
from roost.web.app import create_app
from tests.redis_cluster_support import cluster_prefix, redis_cluster_url  # noqa: F401
from tests.redis_support import redis_prefix, redis_url  # noqa: F401 (fixtures)

T = TypeVar("T")
SCHEMA = Path(__file__).parent / "schemas" / "mastodon-openapi.json"

# Passwords hashed in ~2 ms instead of ~0.2 s, in this process and every server it starts
# (they inherit the environment): the suite signs up well over a thousand accounts. The
# default, strong hashing is tested on its own (tests/domain/test_accounts.py).
os.environ.setdefault("ROOST_PASSWORD_HASHING", "fast")


@cache
def _components() -> dict[str, Any]:
    components: dict[str, Any] = json.loads(SCHEMA.read_text())["components"]
    return components


def assert_entity(value: Any, name: str) -> None:
    """Fail unless ``value`` is a valid Mastodon ``name`` entity (e.g. "Status")."""
    validator = Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                      "components": _components()})
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    assert not errors, f"{name} invalid: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", port=8000, sqlite_synchronous="NORMAL")


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_on_both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """``settings`` on SQLite, then on a fresh PostgreSQL database: a test module that wants
    its in-process tests run on both engines overrides ``settings`` with this."""
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path / "data", port=8000, sqlite_synchronous="NORMAL")
        return
    from tests.pg_support import fresh_database

    with fresh_database("roost_web") as url:
        yield Settings(data_dir=tmp_path / "data", port=8000, database_url=url)


@pytest.fixture
def roost(settings: Settings) -> Iterator[Roost]:
    instance = Roost(settings, serving=True)  # (as `roost serve` makes it)
    yield instance
    instance.close()


@pytest.fixture
def client(roost: Roost) -> Iterator[TestClient]:
    with TestClient(create_app(roost), base_url="http://localhost:8000") as test_client:
        yield test_client


def on_app_loop(client: TestClient, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Await ``fn(*args)`` on the app's own event loop (the test client's thread), as a request
    would, never with ``asyncio.run`` beside it: the Roost's database runner gates reads with
    a limiter that belongs to one loop, as in a server, and a read waiting on it from a second
    loop may never be woken when the app's loop releases it (seen as a test hanging)."""
    assert client.portal is not None, "the test client is not running"
    return client.portal.call(fn, *args)


def wait_for_jobs(roost: Roost, timeout: float = 10.0) -> None:
    """Wait until the background worker has run every job that is due."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if roost.jobs.pending_count() == 0:
            return
        time.sleep(0.01)
    raise AssertionError("background jobs did not finish in time")


class Api:
    """A small helper around the test client: an app, users, and their tokens."""

    def __init__(self, client: TestClient, roost: Roost) -> None:
        self.client = client
        self.roost = roost
        created = client.post("/api/v1/apps", data={
            "client_name": "tests", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
            "scopes": "read write follow push",
        })
        assert created.status_code == 200, created.text
        self.app = created.json()
        token = client.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": self.app["client_id"],
            "client_secret": self.app["client_secret"], "scope": "read write follow push",
        })
        assert token.status_code == 200, token.text
        self.app_token = token.json()["access_token"]

    def register(self, username: str) -> User:
        response = self.client.post(
            "/api/v1/accounts",
            headers={"Authorization": f"Bearer {self.app_token}"},
            data={"username": username, "email": f"{username}@example.com",
                  "password": "correct horse battery", "agreement": "true", "locale": "en"},
        )
        assert response.status_code == 200, response.text
        user = User(self.client, response.json()["access_token"])
        user.account = user.get("/api/v1/accounts/verify_credentials").json()
        return user


class User:
    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.token = token
        self.account: dict[str, Any] = {}

    @property
    def id(self) -> str:
        return str(self.account["id"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.post(path, headers=headers, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.client.patch(path, headers=self.headers, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.client.delete(path, headers=self.headers, **kwargs)

    def post_status(self, text: str, **fields: Any) -> dict[str, Any]:
        response = self.post("/api/v1/statuses", data={"status": text, **fields})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def follow(self, other: User) -> dict[str, Any]:
        response = self.post(f"/api/v1/accounts/{other.id}/follow")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def api(client: TestClient, roost: Roost) -> Api:
    return Api(client, roost)


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Any]:
    """Build an Api on a Roost with custom settings: ``make_api(allow_password_grant=True)``."""
    opened: list[tuple[TestClient, Roost]] = []

    def make(**overrides: Any) -> Api:
        data_dir = tmp_path / f"data{len(opened)}"
        instance = Roost(Settings(data_dir=data_dir, port=8000, sqlite_synchronous="NORMAL",
                                  **overrides), serving=True)
        test_client = TestClient(create_app(instance), base_url="http://localhost:8000")
        test_client.__enter__()
        opened.append((test_client, instance))
        return Api(test_client, instance)

    yield make
    for test_client, instance in opened:
        test_client.__exit__(None, None, None)
        instance.close()
