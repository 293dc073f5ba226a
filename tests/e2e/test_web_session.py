"""The browser session on a real server, without a browser: the Server-Sent Events stream
accepts it from the site's own pages (the WebSocket is tested in test_browser.py), and ends
when the session does."""

from __future__ import annotations

import re
import threading
import time

import httpx

from tests.e2e.conftest import Server

PASSWORD = "correct horse battery"


def _signed_up(server: Server, username: str) -> httpx.Client:
    browser = httpx.Client(base_url=server.url, timeout=10)
    page = browser.get("/auth/sign_up")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    response = browser.post("/auth/sign_up", data={
        "csrf_token": token.group(1), "username": username, "email": f"{username}@example.com",
        "password": PASSWORD, "password_confirmation": PASSWORD, "agreement": "1"})
    assert response.status_code == 303, response.text
    return browser


def _submit(browser: httpx.Client, path: str, form: dict[str, str] | None = None) -> None:
    """Post ``path``'s own form, with the CSRF token its page carries."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(path).text)
    assert token
    response = browser.post(path, data={"csrf_token": token.group(1), **(form or {})})
    assert response.status_code == 303, response.text


class _Listening:
    """The user stream read in a thread with ``browser``'s cookie, until the server ends it."""

    def __init__(self, browser: httpx.Client) -> None:
        self.browser = browser
        self.subscribed = threading.Event()
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.subscribed.wait(10), "the stream did not start"

    def _read(self) -> None:
        try:
            with self.browser.stream("GET", "/api/v1/streaming/user", timeout=httpx.Timeout(
                    10, read=None), headers={"Sec-Fetch-Site": "same-origin"}) as stream:
                assert stream.status_code == 200
                for line in stream.iter_lines():
                    if line.startswith(":"):
                        self.subscribed.set()
        finally:
            self.ended.set()


def test_a_session_that_ends_ends_the_streams_its_pages_opened(server: Server) -> None:
    """As Mastodon: a password change ends the other sessions' streams, signing out ends
    the session's own (on every copy of its cookie)."""
    dora = _signed_up(server, "dora")
    elsewhere = httpx.Client(base_url=server.url, timeout=10)
    _submit(elsewhere, "/auth/sign_in", {"login": "dora", "password": PASSWORD})
    copy = httpx.Client(base_url=server.url, timeout=10, cookies=dora.cookies)
    own, other = _Listening(copy), _Listening(elsewhere)

    _submit(dora, "/settings/password", {"current_password": PASSWORD,
                                         "new_password": "another password",
                                         "new_password_confirmation": "another password"})
    assert other.ended.wait(10), "the other session's stream goes on"
    time.sleep(0.3)
    assert not own.ended.is_set()  # the session that changed the password goes on

    _submit(dora, "/auth/sign_out")
    assert own.ended.wait(10), "the signed-out session's stream goes on"
    refused = copy.get("/api/v1/streaming/user", headers={"Sec-Fetch-Site": "same-origin"})
    assert refused.status_code == 401
    for browser in (dora, elsewhere, copy):
        browser.close()


def _follow(browser: httpx.Client, username: str) -> None:
    page = browser.get(f"/@{username}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    response = browser.post(f"/@{username}/follow", data={"csrf_token": token.group(1)})
    assert response.status_code == 303, response.text


def test_event_stream_with_the_session(server: Server) -> None:
    alice = _signed_up(server, "alice")
    bob = _signed_up(server, "bob")
    seen: list[str] = []
    with alice.stream("GET", "/api/v1/streaming/user",
                      headers={"Sec-Fetch-Site": "same-origin"}) as stream:
        assert stream.status_code == 200
        follower = threading.Thread(target=lambda: (time.sleep(0.3), _follow(bob, "alice")))
        follower.start()
        for line in stream.iter_lines():
            seen.append(line)
            if line.startswith("data:") and '"follow"' in line:
                break
        follower.join()
    assert "event: notification" in seen
    anonymous = httpx.get(f"{server.url}/api/v1/streaming/user", timeout=10)
    assert anonymous.status_code == 401
    alice.close()
    bob.close()
