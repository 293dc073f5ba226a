"""A browser-like visitor for the page tests: its own cookies, and forms sent with the CSRF
token of the page they came from."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from roost.domain.models import Page, Visibility
from roost.runtime import Roost
from tests.conftest import wait_for_jobs

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Visitor:
    """One browser: a cookie jar of its own on the shared test client."""

    def __init__(self, client: TestClient, roost: Roost) -> None:
        self.client = client
        self.roost = roost
        self._cookies = type(client.cookies)  # the test client's own httpx flavour
        self.jar = self._cookies()
        self.token = ""
        self.username = ""

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.client.cookies = self.jar
        kwargs.setdefault("follow_redirects", False)
        try:
            response = self.client.request(method, path, **kwargs)
        finally:
            self.jar = self._cookies(self.client.cookies)
            self.client.cookies = self._cookies()
        found = _TOKEN.search(response.text) if "text/html" in response.headers.get(
            "content-type", "") else None
        if found:
            self.token = found.group(1)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def page(self, path: str, **kwargs: Any) -> Any:
        """GET, following redirects, and expect a page."""
        response = self.request("GET", path, follow_redirects=True, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return response

    def submit(self, path: str, data: dict[str, Any] | None = None,
               **kwargs: Any) -> Any:
        """POST a form with the CSRF token of the last page seen."""
        if not self.token:
            self.get("/auth/sign_in")
        return self.request("POST", path, data={"csrf_token": self.token, **(data or {})},
                            **kwargs)

    def sign_up(self, username: str) -> Visitor:
        self.get("/auth/sign_up")
        response = self.submit("/auth/sign_up", {
            "username": username, "email": f"{username}@example.com", "password": PASSWORD,
            "password_confirmation": PASSWORD, "agreement": "1"})
        assert response.status_code == 303, response.text
        self.username = username
        self.page("/")
        return self

    @property
    def account_id(self) -> int:
        return self.roost.db.read_sync(
            lambda tx: self.roost.stores.accounts.by_username(tx, self.username)).id

    def post(self, text: str, **fields: Any) -> int:
        """Post through the compose form; the new post's id."""
        self.page("/")
        response = self.submit("/statuses", {"status": text, "back": "/", **fields})
        assert response.status_code == 303, response.text
        account_id = self.account_id
        ids = self.roost.db.read_sync(lambda tx: self.roost.stores.statuses.by_account(
            tx, account_id, Page(limit=1), list(Visibility), False, False))
        return int(ids[0])


@pytest.fixture
def visitor(client: TestClient, roost: Roost) -> Callable[[], Visitor]:
    """Make visitors (browsers) on the test app."""
    return lambda: Visitor(client, roost)


@pytest.fixture
def alice(visitor: Callable[[], Visitor]) -> Visitor:
    return visitor().sign_up("alice")


@pytest.fixture
def bob(visitor: Callable[[], Visitor]) -> Visitor:
    return visitor().sign_up("bob")


def settle(roost: Roost) -> None:
    wait_for_jobs(roost)
