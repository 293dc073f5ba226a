"""Malformed and hostile input on every page route: never a 500."""

from __future__ import annotations

import re

import pytest

from roost.settings import Settings
from roost.web.app import all_routes
from tests.web.garbage import POSTGRESQL_GARBAGE
from tests.web.pages.conftest import Visitor

GARBAGE = ["", "-1", "99999999999999999999999", "abc", "\x00", "☃" * 300, "%", "a" * 5000,
           "//evil.example", "<script>"]
PARAMS = ["status", "max_id", "min_id", "since_id", "q", "in_reply_to_id", "visibility",
          "spoiler_text", "back", "next", "entry", "login", "password", "website", "note",
          "display_name", "fields_attributes[0][name]", "locked", "fragment", "username",
          "email", "idempotency_key", "current_password", "new_password"]


def _page_routes() -> list[tuple[str, str]]:
    out = []
    for route in all_routes():
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None)
        if not methods or path.startswith(("/api/", "/static", "/avatars/", "/headers/",
                                           "/.well-known/")):
            continue
        for method in sorted(methods - {"HEAD"}):
            out.append((method, path))
    return out


@pytest.fixture
def settings(settings_on_both: Settings) -> Settings:
    """On SQLite and on PostgreSQL, which refuses what SQLite takes (a NUL in text)."""
    return settings_on_both


def test_every_page_survives_garbage(alice: Visitor, settings: Settings) -> None:
    garbage = POSTGRESQL_GARBAGE if settings.database_url else GARBAGE
    routes = _page_routes()
    assert len(routes) > 25
    for method, path in routes:
        if path == "/auth/sign_out":
            continue  # signing out would end the test's session
        values = (("1", "alice", "abc", "99999999999999999999", "%00", "alice%0A")
                  if "{" in path else ("",))
        for path_value in values:
            url = re.sub(r"{[^}]+}", path_value, path)
            for value in garbage:
                data = {name: value for name in PARAMS}
                if method == "GET":
                    if len(value) > 1000:  # keep the query within what a URL may hold
                        data = {name: value for name in ("q", "max_id", "fragment")}
                    response = alice.get(url, params=data)
                else:
                    alice.page("/")
                    response = alice.submit(url, data)
                assert response.status_code < 500, (method, url, value, response.text[:300])
    assert 'action="/auth/sign_out"' in alice.page("/").text
