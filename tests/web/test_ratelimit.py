"""Rate limits: sign-ups per client, failed sign-ins per client and login."""

from __future__ import annotations

import socket
from typing import Any

from roost.storage.redis.ratelimits import RedisRateWindows
from roost.web.ratelimit import Window
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


def _sign_up(api: Api, username: str) -> int:
    response = api.client.post("/api/v1/accounts",
                               headers={"Authorization": f"Bearer {api.app_token}"},
                               data={"username": username, "email": f"{username}@example.com",
                                     "password": "long enough pw", "agreement": "true"})
    return response.status_code


def test_web_processes_share_the_limits_through_redis(redis_url: str, redis_prefix: str,
                                                      make_api: Any) -> None:
    """Two apps on one Redis prefix, as two web processes (each on its own database here, so
    only Redis can carry the counts across)."""
    shared = {"redis_url": redis_url, "redis_prefix": redis_prefix, "job_queue": "database"}
    first: Api = make_api(signups_per_hour=2, allow_password_grant=True,
                          failed_logins_per_5min=2, **shared)
    second: Api = make_api(signups_per_hour=2, allow_password_grant=True,
                           failed_logins_per_5min=2, **shared)
    assert _sign_up(first, "one") == 200
    assert _sign_up(second, "two") == 200
    assert _sign_up(first, "three") == 429
    assert _sign_up(second, "three") == 429

    def sign_in(api: Api, password: str) -> int:
        return api.client.post("/oauth/token", data={
            "grant_type": "password", "client_id": api.app["client_id"],
            "client_secret": api.app["client_secret"], "username": "one@example.com",
            "password": password}).status_code

    assert sign_in(first, "long enough pw") == 200  # a success is not counted
    assert sign_in(first, "wrong!!!") == 400
    assert sign_in(second, "wrong!!!") == 400
    assert sign_in(first, "long enough pw") == 429
    assert sign_in(second, "wrong!!!") == 429


def test_sign_in_works_while_redis_is_down(make_api: Any) -> None:
    """A rate limit Redis cannot answer counts in-process: no 500, and still a limit."""
    api: Api = make_api(allow_password_grant=True, failed_logins_per_5min=2)
    api.register("alice")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    window: Window = api.client.app.state.failed_logins  # type: ignore[attr-defined]
    window.counters = RedisRateWindows.from_url(f"redis://127.0.0.1:{port}/0",
                                                name="failed_logins", seconds=300)
    form = {"grant_type": "password", "client_id": api.app["client_id"],
            "client_secret": api.app["client_secret"], "username": "alice"}
    assert api.client.post("/oauth/token", data={**form, "password": "correct horse battery"}
                           ).status_code == 200
    for _ in range(2):
        assert api.client.post("/oauth/token", data={**form, "password": "wrong!!!"}
                               ).status_code == 400
    assert api.client.post("/oauth/token", data={**form, "password": "correct horse battery"}
                           ).status_code == 429
    window.counters.close()
