"""The web interface's security: CSRF on every form, the CSP and other headers, cookie flags,
escaping of everything people write, login throttling, the session secret, redirects that
stay on the site, and the session on the streaming endpoints (and nowhere else in the API)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from roost.clock import now_ms
from roost.domain.oauth import SESSION_RENEW_MS
from roost.runtime import Roost
from roost.settings import Settings
from roost.storage.schema import web_sessions
from roost.web.app import all_routes, create_app
from roost.web.pages.session import SESSION_COOKIE, secret_key
from tests.conftest import on_app_loop
from tests.web.pages.conftest import PASSWORD, Visitor

EVIL = '<script>alert("x")</script>'
EVIL_IMG = "<img src=x onerror=alert(1)>"


def _page_posts() -> list[str]:
    """Every state-changing page route (not the API), with its path filled in."""
    out = []
    for route in all_routes():
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or set()
        if "POST" in methods and not path.startswith(("/api/", "/oauth/token",
                                                      "/oauth/revoke")):
            out.append(re.sub(r"{[^}]+}", "1", path).replace("/@1", "/@bob"))
    return out


def test_every_form_needs_the_csrf_token(alice: Visitor, bob: Visitor) -> None:
    posts = _page_posts()
    assert {"/statuses", "/auth/sign_in", "/auth/sign_out", "/settings/profile",
            "/@bob/follow", "/oauth/authorize"} <= set(posts)
    alice.page("/")
    for path in posts:
        missing = alice.request("POST", path, data={"status": "x", "login": "alice",
                                                     "password": PASSWORD})
        assert missing.status_code == 403, path
        wrong = alice.request("POST", path, data={"csrf_token": "x" * 43})
        assert wrong.status_code == 403, path
    # nothing happened: still signed in, no post, no follow
    assert 'action="/auth/sign_out"' in alice.page("/").text
    assert "followers-count>0<" in alice.page("/@bob").text.replace(" data-", "")


def test_token_in_header_and_origin_check(alice: Visitor) -> None:
    alice.page("/")
    token = alice.token
    by_header = alice.request("POST", "/statuses", data={"status": "via header"},
                              headers={"X-CSRF-Token": token})
    assert by_header.status_code == 303
    foreign = alice.request("POST", "/statuses",
                            data={"status": "from elsewhere", "csrf_token": token},
                            headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    same = alice.request("POST", "/statuses", data={"status": "same site", "csrf_token": token},
                         headers={"Origin": "http://localhost:8000"})
    assert same.status_code == 303
    other_session = Visitor(alice.client, alice.roost)
    other_session.page("/auth/sign_in")
    stolen = other_session.request("POST", "/auth/sign_out", data={"csrf_token": token})
    assert stolen.status_code == 403  # a token is good for its own session only


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def _no_inline_code(html: str) -> None:
    """No script but the site's own files, no style, no event handler, no foreign image."""
    parser = _Elements()
    parser.feed(html)
    for tag, attrs in parser.found:
        assert tag != "style", "inline style element"
        assert "style" not in attrs, f"style attribute on {tag}"
        assert not [a for a in attrs if a.startswith("on")], f"event handler on {tag}"
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/static/"), attrs
        if tag == "img":
            assert (attrs.get("src") or "").startswith(("/avatars/", "/headers/")), attrs


def test_csp_and_headers_on_every_page(alice: Visitor, visitor: Callable[[], Visitor]
                                       ) -> None:
    post = alice.post("a post")
    for browser in (alice, visitor()):
        for path in ("/", "/public", "/@alice", f"/@alice/{post}", "/search?q=a",
                     "/auth/sign_in", "/auth/sign_up", "/tags/x", "/races", "/@nobody"):
            response = browser.get(path, follow_redirects=True)
            csp = response.headers["content-security-policy"]
            for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'",
                              "frame-ancestors 'none'", "base-uri 'none'",
                              "form-action 'self'", "object-src 'none'"):
                assert directive in csp, (path, directive)
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert "connect-src 'self' ws://localhost:8000" in csp
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["cache-control"] == "no-store"
            _no_inline_code(response.text)
    for path in ("/notifications", "/settings/profile", "/settings/password"):
        _no_inline_code(alice.page(path).text)


def test_api_responses_are_untouched(client: TestClient) -> None:
    response = client.get("/api/v1/instance")
    assert "content-security-policy" not in response.headers
    assert "set-cookie" not in response.headers


def test_cookie_flags_over_http(visitor: Callable[[], Visitor]) -> None:
    browser = visitor()
    cookie = browser.get("/auth/sign_in").headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= flags
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in flags


@pytest.fixture
def https_client(tmp_path: Path) -> Iterator[TestClient]:
    roost = Roost(Settings(data_dir=tmp_path / "https", public_url="https://roost.example",
                           sqlite_synchronous="NORMAL"))
    with TestClient(create_app(roost), base_url="https://roost.example") as client:
        yield client
    roost.close()


def test_cookie_is_secure_behind_tls(https_client: TestClient) -> None:
    response = https_client.get("/auth/sign_in")
    flags = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert "secure" in flags and "httponly" in flags and "samesite=lax" in flags
    assert "connect-src 'self' wss://roost.example" in response.headers[
        "content-security-policy"]


def test_what_people_write_is_escaped(alice: Visitor, bob: Visitor,
                                      visitor: Callable[[], Visitor]) -> None:
    alice.page("/settings/profile")
    saved = alice.submit("/settings/profile", {
        "display_name": EVIL[:30], "note": f"bio {EVIL} {EVIL_IMG}",
        "fields_attributes[0][name]": EVIL, "fields_attributes[0][value]": EVIL_IMG,
        "website": 'https://x.example/"><script>alert(1)</script>'})
    assert saved.status_code == 422  # not a link: refused
    saved = alice.submit("/settings/profile", {
        "display_name": EVIL[:30], "note": f"bio {EVIL} {EVIL_IMG}",
        "fields_attributes[0][name]": EVIL, "fields_attributes[0][value]": EVIL_IMG})
    assert saved.status_code == 303
    post = alice.post(f"post {EVIL} {EVIL_IMG} #tag and https://example.com/?a=<b>")
    alice.post(f"spoiler post {EVIL}", spoiler_text=EVIL)
    bob.submit("/@alice/follow")
    bob.submit(f"/statuses/{post}/favourite")
    pages = ["/", "/public", "/@alice", f"/@alice/{post}", "/@alice/followers",
             "/search?q=" + EVIL, "/tags/" + EVIL, "/search?q=alice"]
    for browser in (alice, bob, visitor()):
        for path in pages:
            html = browser.get(path).text
            assert "<script>alert" not in html, (path, html)
            assert "<img src=x" not in html, path
            _no_inline_code(html)
    assert "&lt;script&gt;" in bob.page("/@alice").text
    for notifications in (bob.page("/notifications").text, alice.page("/notifications").text):
        assert "<script>alert" not in notifications
        _no_inline_code(notifications)


def test_login_throttling(make_api: Any) -> None:
    api = make_api(failed_logins_per_5min=3)
    api.register("alice")
    browser = Visitor(api.client, api.roost)
    browser.get("/auth/sign_in")
    for _ in range(3):
        wrong = browser.submit("/auth/sign_in", {"login": "alice", "password": "wrong!!!"})
        assert wrong.status_code == 401
    throttled = browser.submit("/auth/sign_in", {"login": "alice",
                                                 "password": "correct horse battery"})
    assert throttled.status_code == 429 and "Too many failed attempts" in throttled.text
    other = browser.submit("/auth/sign_in", {"login": "bob", "password": "whatever1"})
    assert other.status_code == 401  # another login is not locked out


def test_sign_up_throttling(make_api: Any) -> None:
    api = make_api(signups_per_hour=1)
    first = Visitor(api.client, api.roost).sign_up("first")
    assert first.username == "first"
    second = Visitor(api.client, api.roost)
    second.get("/auth/sign_up")
    response = second.submit("/auth/sign_up", {
        "username": "second", "email": "s@example.com", "password": PASSWORD,
        "password_confirmation": PASSWORD, "agreement": "1"})
    assert response.status_code == 429


def test_closed_registrations(make_api: Any) -> None:
    api = make_api(registrations_open=False)
    browser = Visitor(api.client, api.roost)
    assert browser.get("/auth/sign_up").status_code == 403
    response = browser.submit("/auth/sign_up", {
        "username": "x", "email": "x@example.com", "password": PASSWORD,
        "password_confirmation": PASSWORD, "agreement": "1"})
    assert response.status_code == 403
    assert "Create an account" not in browser.page("/").text


def test_redirects_stay_on_this_site(alice: Visitor, visitor: Callable[[], Visitor]) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example",
                   "javascript:alert(1)"):
        browser = visitor()
        browser.get("/auth/sign_in")
        response = browser.submit("/auth/sign_in", {"login": "alice", "password": PASSWORD,
                                                    "next": target})
        assert (response.status_code, response.headers["location"]) == (303, "/"), target
        done = alice.submit("/statuses", {"status": "hi", "back": target})
        assert done.headers["location"] == "/", target


def test_tampered_cookies_are_signed_out(alice: Visitor, client: TestClient) -> None:
    value = alice.jar.get(SESSION_COOKIE)
    assert value
    good = client.get("/notifications", headers={"cookie": f"{SESSION_COOKIE}={value}"})
    assert good.status_code == 200
    payload, _, signature = value.partition(".")
    middle = len(payload) // 2
    flipped = "A" if payload[middle] != "A" else "B"
    forged = payload[:middle] + flipped + payload[middle + 1:] + "." + signature
    for cookie in (forged, value[:-2] + ("AA" if not value.endswith("AA") else "BB"), "x"):
        response = client.get("/notifications", headers={"cookie": f"{SESSION_COOKIE}={cookie}"},
                              follow_redirects=False)
        assert response.status_code == 303, cookie


def test_the_api_ignores_the_session(alice: Visitor, client: TestClient) -> None:
    cookie = alice.jar.get(SESSION_COOKIE)
    response = client.get("/api/v1/accounts/verify_credentials",
                          headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
    assert response.status_code == 401
    posted = client.post("/api/v1/statuses", data={"status": "no"},
                         headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
    assert posted.status_code == 401


def test_secret_key_is_made_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "fresh")
    first = secret_key(settings)
    assert len(first) >= 40 and first == secret_key(settings)
    path = tmp_path / "fresh" / "secret_key"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert secret_key(Settings(data_dir=tmp_path / "fresh", secret_key="given")) == "given"
    (tmp_path / "a-file").write_text("not a folder")
    unkept = Settings(data_dir=tmp_path / "a-file" / "data")
    assert secret_key(unkept) != secret_key(unkept)  # a key per process, with a warning


def test_sessions_survive_a_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", sqlite_synchronous="NORMAL")
    roost = Roost(settings)
    with TestClient(create_app(roost), base_url="http://localhost:8000") as client:
        alice = Visitor(client, roost).sign_up("alice")
        cookie = alice.jar.get(SESSION_COOKIE)
    roost.close()
    again = Roost(settings)
    with TestClient(create_app(again), base_url="http://localhost:8000") as client:
        page = client.get("/notifications", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
        assert page.status_code == 200 and "Notifications" in page.text
    again.close()


# -- live updates with the session -----------------------------------------------------------


def _ws_headers(visitor: Visitor, origin: str | None) -> dict[str, str]:
    headers = {"cookie": f"{SESSION_COOKIE}={visitor.jar.get(SESSION_COOKIE)}"}
    if origin:
        headers["origin"] = origin
    return headers


def test_websocket_accepts_the_session_from_this_site(alice: Visitor, bob: Visitor,
                                                      client: TestClient) -> None:
    with client.websocket_connect("/api/v1/streaming?stream=user",
                                  headers=_ws_headers(alice, "http://localhost:8000")) as ws:
        bob.submit("/@alice/follow")
        event = ws.receive_json()
        assert (event["stream"], event["event"]) == (["user"], "notification")
        assert '"follow"' in event["payload"]


@pytest.mark.parametrize("origin", [None, "https://evil.example", "null"])
def test_websocket_refuses_the_session_from_elsewhere(alice: Visitor, client: TestClient,
                                                      origin: str | None) -> None:
    with client.websocket_connect("/api/v1/streaming?stream=user",
                                  headers=_ws_headers(alice, origin)) as ws:
        refusal = ws.receive_json()
        assert refusal == {"error": "Missing access token", "status": 401}


def test_sse_refuses_the_session_cross_site(alice: Visitor, client: TestClient) -> None:
    cookie = {"cookie": f"{SESSION_COOKIE}={alice.jar.get(SESSION_COOKIE)}"}
    refused = client.get("/api/v1/streaming/user",
                         headers={**cookie, "sec-fetch-site": "cross-site"})
    assert refused.status_code == 401
    foreign = client.get("/api/v1/streaming/user",
                         headers={**cookie, "origin": "https://evil.example"})
    assert foreign.status_code == 401
    # accepted from this site's own pages: tests/e2e/test_web_session.py (a stream never ends)


def _copy(browser: Visitor) -> Visitor:
    """Another browser holding a copy of ``browser``'s cookies (a stolen or synced cookie)."""
    thief = Visitor(browser.client, browser.roost)
    thief.jar = browser._cookies(browser.jar)
    return thief


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(alice: Visitor) -> None:
    copy = _copy(alice)
    assert 'action="/auth/sign_out"' in copy.page("/").text  # the copy is signed in too
    alice.page("/")
    assert alice.submit("/auth/sign_out").status_code == 303
    assert 'action="/auth/sign_out"' not in copy.page("/").text
    assert copy.get("/notifications").status_code == 303  # to the sign-in page
    assert copy.request("POST", "/statuses", data={"status": "replayed",
                                                   "csrf_token": copy.token}).status_code in (
        303, 403)
    assert "replayed" not in alice.page("/public").text


def test_a_password_change_ends_the_other_sessions(alice: Visitor,
                                                   visitor: Callable[[], Visitor]) -> None:
    elsewhere = visitor()
    elsewhere.get("/auth/sign_in")
    assert elsewhere.submit("/auth/sign_in", {"login": "alice", "password": PASSWORD}
                            ).status_code == 303
    assert 'action="/auth/sign_out"' in elsewhere.page("/").text
    alice.page("/settings/password")
    assert alice.submit("/settings/password", {
        "current_password": PASSWORD, "new_password": "a new password",
        "new_password_confirmation": "a new password"}).status_code == 303
    assert 'action="/auth/sign_out"' in alice.page("/").text  # this browser stays signed in
    assert 'action="/auth/sign_out"' not in elsewhere.page("/").text


def test_sessions_unused_for_longer_than_their_cookies_are_swept(alice: Visitor) -> None:
    roost = alice.roost
    assert 'action="/auth/sign_out"' in alice.page("/").text
    on_app_loop(alice.client, roost.maintain)
    assert 'action="/auth/sign_out"' in alice.page("/").text  # in use: kept
    # Unused for the cookie's lifetime: kept one renewal period more (the cookie, re-sent
    # whenever the session changes, may outlive the row's last renewal by that much).
    days = roost.settings.session_days * 86_400_000
    roost.db.write_sync(lambda tx: tx.execute(update(web_sessions).values(
        renewed_at=now_ms() - days - SESSION_RENEW_MS // 2)))
    on_app_loop(alice.client, roost.maintain)
    assert 'action="/auth/sign_out"' in alice.page("/").text
    roost.db.write_sync(lambda tx: tx.execute(update(web_sessions).values(
        renewed_at=now_ms() - days - SESSION_RENEW_MS - 60_000)))
    on_app_loop(alice.client, roost.maintain)
    assert 'action="/auth/sign_out"' not in alice.page("/").text
