"""Mastodon.py's user stream against a real server, on both backends: the embedded one
(SQLite, in-process pub/sub, worker inside `roost serve`) and the production one (PostgreSQL,
Redis timelines and pub/sub, a separate `roost worker` doing the fan-out)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mastodon import Mastodon, StreamListener

from tests.e2e.conftest import Server
from tests.e2e.test_streaming import close_sse


class Recorder(StreamListener):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, Any]] = []

    def on_update(self, status: Any) -> None:
        self.events.append(("update", status["id"]))

    def on_notification(self, notification: Any) -> None:
        self.events.append(("notification", notification["type"]))

    def on_delete(self, status_id: Any) -> None:
        self.events.append(("delete", str(status_id)))


def _wait_for(recorder: Recorder, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(recorder.events) < count and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(params=["embedded", "production"])
def any_server(request: pytest.FixtureRequest) -> Server:
    fixture = "server" if request.param == "embedded" else "production_server"
    found: Server = request.getfixturevalue(fixture)
    return found


def test_user_stream_with_mastodon_py(any_server: Server) -> None:
    server = any_server
    client_id, secret = Mastodon.create_app("stream test", api_base_url=server.url)
    tokens = [Mastodon(client_id=client_id, client_secret=secret, api_base_url=server.url)
              .create_account(name, "correct horse battery", f"{name}@example.com",
                              agreement=True)
              for name in ("alice", "bob")]
    alice, bob = (Mastodon(access_token=t, api_base_url=server.url) for t in tokens)
    bob.account_follow(alice.me()["id"])
    recorder = Recorder()
    handle = bob.stream_user(recorder, run_async=True)
    try:
        time.sleep(0.3)  # let the subscription settle before posting
        posted = alice.status_post("live!")
        _wait_for(recorder, 1)  # delivered by fan-out (a separate worker in production)
        own = bob.status_post("mine")
        alice.status_favourite(own["id"])
        alice.status_delete(posted["id"])
        _wait_for(recorder, 4)
    finally:
        close_sse(handle)
    assert ("update", posted["id"]) in recorder.events
    assert ("update", own["id"]) in recorder.events
    assert ("notification", "favourite") in recorder.events
    assert ("delete", str(posted["id"])) in recorder.events
