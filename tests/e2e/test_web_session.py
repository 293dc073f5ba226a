"""The browser session on a real server, without a browser: the Server-Sent Events stream
accepts it from the site's own pages (the WebSocket is tested in test_browser.py)."""

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
