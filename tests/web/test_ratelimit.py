"""Rate limits: sign-ups per client, failed sign-ins per client and login."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api


def test_failed_logins_are_throttled_per_login(make_api: Any) -> None:
    api: Api = make_api(allow_password_grant=True, failed_logins_per_5min=3)
    api.register("alice")
    form = {"grant_type": "password", "client_id": api.app["client_id"],
            "client_secret": api.app["client_secret"], "username": "alice"}
    for _ in range(3):
        assert api.client.post("/oauth/token", data={**form, "password": "wrong!!!"}
                               ).status_code == 400
    limited = api.client.post("/oauth/token", data={**form, "password": "correct horse battery"})
    assert limited.status_code == 429
    assert limited.json() == {"error": "Too many requests"}
    other = api.client.post("/oauth/token", data={**form, "username": "bob", "password": "x"})
    assert other.status_code == 400  # another login is not locked out


def test_signups_are_limited_per_client(make_api: Any) -> None:
    api: Api = make_api(signups_per_hour=2)
    api.register("one")
    api.register("two")
    third = api.client.post("/api/v1/accounts", headers={"Authorization": f"Bearer "
                                                                        f"{api.app_token}"},
                            data={"username": "three", "email": "t@example.com",
                                  "password": "long enough pw", "agreement": "true"})
    assert third.status_code == 429
