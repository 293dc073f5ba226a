"""A real `roost serve` process driven through Mastodon.py, the way a real client app would.

Plain httpx stands in for the browser only where one would act: the authorise form at
/oauth/authorize. Everything else goes through Mastodon.py with its default behaviours.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from mastodon import Mastodon
from mastodon.errors import (
    MastodonIllegalArgumentError,
    MastodonNotFoundError,
    MastodonUnauthorizedError,
)

from tests.e2e.conftest import Server

SCOPES = ["read", "write", "follow", "push"]
REDIRECT = "http://localhost:8123/callback"
OOB = "urn:ietf:wg:oauth:2.0:oob"
PASSWORD = "correct horse battery staple"

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 5.0) -> T:
    """Poll ``probe`` until it returns something truthy (fan-out is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


class _Forms(HTMLParser):
    """The first form of a page: its action and its named inputs (hidden ones and others)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: dict[str, str] = {}
        self.hidden: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action, self._in_form = a.get("action", ""), True
        elif tag == "input" and "name" in a and self._in_form:
            self.inputs[a["name"]] = a.get("value", "")
            if a.get("type") == "hidden":
                self.hidden[a["name"]] = a.get("value", "")
        elif tag == "input" and a.get("id") == "code":
            self.inputs["code"] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def parse_page(html: str) -> _Forms:
    parser = _Forms()
    parser.feed(html)
    return parser


def supports(method: Callable[..., Any], parameter: str) -> bool:
    """Whether this Mastodon.py version's ``method`` takes ``parameter``."""
    return parameter in inspect.signature(method).parameters


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def approve_in_browser(authorize_url: str, login: str, password: str) -> httpx.Response:
    """What a person does in the browser: open the page, sign in, press Authorise."""
    with httpx.Client(timeout=10) as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        form = parse_page(page.text)
        assert form.action, "the authorise page has no form"
        assert {"client_id", "redirect_uri", "scope", "response_type"} <= form.hidden.keys()
        assert {"login", "password"} <= form.inputs.keys()
        data = {**form.hidden, "login": login, "password": password, "decision": "approve"}
        return browser.post(urljoin(str(page.url), form.action), data=data)


@dataclass
class User:
    username: str
    email: str
    api: Mastodon
    id: str


@dataclass
class World:
    server: Server
    client_id: str
    client_secret: str

    def client(self, **kwargs: Any) -> Mastodon:
        return Mastodon(client_id=self.client_id, client_secret=self.client_secret,
                        api_base_url=self.server.url, **kwargs)


def create_world(server: Server) -> World:
    client_id, client_secret = Mastodon.create_app(
        "Roost e2e", scopes=SCOPES, redirect_uris=[REDIRECT, OOB],
        website="https://example.org/app", api_base_url=server.url,
    )
    assert client_id and client_secret
    return World(server, client_id, client_secret)


def register(world: World, username: str) -> str:
    """create_account with an app token; answers the new account's access token."""
    email = f"{username}@example.org"
    token = world.client().create_account(username, PASSWORD, email, agreement=True,
                                          scopes=SCOPES)
    assert isinstance(token, str) and token
    return token


def password_login(world: World, username: str) -> User:
    api = world.client(version_check_mode="created")
    email = f"{username}@example.org"
    token = api.log_in(username=email, password=PASSWORD, scopes=SCOPES, allow_http=True)
    assert token == api.access_token
    me = api.account_verify_credentials()
    assert me.username == username
    return User(username, email, api, str(me.id))


def test_oauth_flows(server: Server) -> None:
    world = create_world(server)
    app_api = world.client()
    register(world, "alice")

    # create_account answers the new user's own token.
    registered = Mastodon(access_token=register(world, "bob"), api_base_url=server.url)
    assert registered.account_verify_credentials().username == "bob"

    # Authorization code with PKCE. Mastodon.py builds the URL; the "browser" approves.
    # Mastodon.py 2.3 has no PKCE parameters, so the app adds code_challenge and its method.
    verifier, challenge = pkce_pair()
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    state = secrets.token_urlsafe(16)
    if supports(Mastodon.auth_request_url, "code_challenge"):
        url = app_api.auth_request_url(redirect_uris=REDIRECT, scopes=SCOPES, state=state,
                                       allow_http=True, **pkce)
    else:
        url = app_api.auth_request_url(redirect_uris=REDIRECT, scopes=SCOPES, state=state,
                                       allow_http=True) + "&" + urlencode(pkce)
    assert url.startswith(f"{server.url}/oauth/authorize?")
    answer = approve_in_browser(url, "alice", PASSWORD)
    assert answer.status_code in (302, 303), answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == [state]
    code = query["code"][0]

    # Without its code_verifier (or with a wrong one) the PKCE code is refused.
    with pytest.raises(MastodonIllegalArgumentError):
        world.client().log_in(code=code, redirect_uri=REDIRECT, scopes=SCOPES, allow_http=True)
    token_url = f"{server.url}/oauth/token"
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "client_id": world.client_id, "client_secret": world.client_secret}
    wrong = httpx.post(token_url, data={**exchange, "code_verifier": pkce_pair()[0]})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    if supports(Mastodon.log_in, "code_verifier"):
        alice = world.client()
        alice.log_in(code=code, redirect_uri=REDIRECT, scopes=SCOPES, allow_http=True,
                     code_verifier=verifier)
    else:  # Mastodon.py 2.3 cannot send code_verifier: exchange by hand, then use the token
        right = httpx.post(token_url, data={**exchange, "code_verifier": verifier})
        assert right.status_code == 200, right.text
        assert set(right.json()["scope"].split()) == set(SCOPES)
        alice = Mastodon(access_token=right.json()["access_token"], api_base_url=server.url)
    again = httpx.post(token_url, data={**exchange, "code_verifier": verifier})
    assert again.status_code == 400, "an authorization code is good for one exchange only"
    assert alice.account_verify_credentials().username == "alice"
    assert alice.app_verify_credentials().name == "Roost e2e"

    # Out of band: the code is shown on a page, and Mastodon.py's log_in exchanges it.
    url = app_api.auth_request_url(redirect_uris=OOB, scopes=SCOPES, allow_http=True)
    shown = approve_in_browser(url, "alice@example.org", PASSWORD)
    assert shown.status_code == 200, shown.text
    oob_code = parse_page(shown.text).inputs["code"]
    assert oob_code
    oob_api = world.client()
    oob_api.log_in(code=oob_code, redirect_uri=OOB, scopes=SCOPES, allow_http=True)
    assert oob_api.account_verify_credentials().username == "alice"

    # A wrong password is refused on the form and by the password grant.
    refused = approve_in_browser(url, "alice", "not the password")
    assert refused.status_code == 401
    with pytest.raises(MastodonIllegalArgumentError):
        world.client().log_in(username="alice@example.org", password="nope", scopes=SCOPES,
                              allow_http=True)

    # The password grant, through Mastodon.py.
    bob = password_login(world, "bob")
    assert bob.api.account_verify_credentials().acct == "bob"

    # Revoking the token locks Mastodon.py out.
    bob_token = bob.api.access_token
    bob.api.revoke_access_token(allow_http=True)
    with pytest.raises(MastodonUnauthorizedError):
        Mastodon(access_token=bob_token, api_base_url=server.url).account_verify_credentials()


def test_social_scenario(server: Server) -> None:
    world = create_world(server)
    # `roost --data-dir X serve` must use X (a fresh database), not ./roost-data.
    assert (server.data_dir / "roost.db").exists()
    register(world, "alice")
    register(world, "bob")
    alice = password_login(world, "alice")
    bob = password_login(world, "bob")

    # Instance information parses, and version checking ("created") is happy.
    assert alice.api.verify_minimum_version("4.0.0", cached=True)
    assert alice.api.retrieve_mastodon_version(fail_hard=True).startswith("4.")
    info = alice.api.instance()
    assert info.version.startswith("4.")
    v2 = alice.api.instance_v2()
    assert v2.configuration.statuses.max_characters > 0
    assert alice.api.mastodon_api_version >= 2
    anonymous = Mastodon(api_base_url=server.url, version_check_mode="changed")
    assert anonymous.instance_v1().stats.user_count >= 2

    # Profile with a website link.
    updated = alice.api.account_update_credentials(
        display_name="Alice A.", note="Hello, I am #alice.",
        fields=[("Website", "https://example.org")],
    )
    assert updated.display_name == "Alice A."
    me = alice.api.account_verify_credentials()
    assert me.display_name == "Alice A."
    assert me.source.note == "Hello, I am #alice."
    assert [(f.name, f.value) for f in me.source.fields] == [("Website", "https://example.org")]
    for shown in (me, bob.api.account(alice.id)):
        assert [f.name for f in shown.fields] == ["Website"]
        assert 'href="https://example.org"' in shown.fields[0].value
        assert "<a " in shown.fields[0].value
        assert 'href="' in shown.note and "#<span>alice</span>" in shown.note

    # Post, follow, and the post reaches the follower's home timeline.
    relationship = bob.api.account_follow(alice.id)
    assert relationship.following
    first = alice.api.status_post("First post from alice")

    def in_bob_home() -> bool:
        return any(s.id == first.id for s in bob.api.timeline_home())

    eventually(in_bob_home)

    # Reply with a mention, favourite, reblog; alice hears about all of it.
    reply = bob.api.status_post("@alice welcome!", in_reply_to_id=first.id)
    assert reply.in_reply_to_id == first.id
    assert [m.acct for m in reply.mentions] == ["alice"]
    assert alice.api.status_pin(first.id).pinned
    assert [s.id for s in bob.api.account_statuses(alice.id, pinned=True)] == [first.id]
    assert bob.api.status_favourite(first.id).favourited
    assert [s.id for s in bob.api.favourites()] == [first.id]
    reblog = bob.api.status_reblog(first.id)
    assert reblog.reblog.id == first.id
    assert bob.api.status(first.id).reblogged

    wanted = {"mention", "favourite", "reblog", "follow"}

    def alice_notifications() -> list[Any] | None:
        found = alice.api.notifications(types=sorted(wanted))
        return found if {n.type for n in found} >= wanted else None

    notes = eventually(alice_notifications)
    by_type = {n.type: n for n in notes}
    assert all(n.account.id == bob.id for n in notes)
    assert by_type["mention"].status.id == reply.id
    assert by_type["favourite"].status.id == first.id
    assert by_type["reblog"].status.id == first.id
    assert by_type["follow"].status is None
    mentions = alice.api.notifications(types=["mention"])
    assert [n.type for n in mentions] == ["mention"]
    single = alice.api.notifications(id=by_type["follow"].id)
    assert single.type == "follow"

    # Thread context.
    thread = alice.api.status_context(first.id)
    assert thread.ancestors == []
    assert [s.id for s in thread.descendants] == [reply.id]
    assert [s.id for s in bob.api.status_context(reply.id).ancestors] == [first.id]

    # Paging through the home timeline with Link headers.
    posted = [alice.api.status_post(f"numbered post {i}").id for i in range(25)]

    def all_in_home() -> bool:
        return set(posted) <= {s.id for s in bob.api.timeline_home(limit=40)}

    eventually(all_in_home)
    page = bob.api.timeline_home(limit=10)
    newest_page = page
    seen: list[Any] = []
    while page:
        assert len(page) <= 10
        seen.extend(s.id for s in page)
        page = bob.api.fetch_next(page)
    assert len(seen) == len(set(seen)), "a status showed up on two pages"
    assert seen == sorted(seen, key=int, reverse=True), "pages are not newest first"
    assert seen[:25] == list(reversed(posted))
    assert first.id in seen
    second_page = bob.api.fetch_next(newest_page)
    assert second_page is not None
    back = bob.api.fetch_previous(second_page)
    assert back is not None
    assert [s.id for s in back] == [s.id for s in newest_page]
    assert not bob.api.fetch_previous(newest_page)

    # Delete: the reply is gone, and the thread no longer shows it.
    deleted = bob.api.status_delete(reply.id)
    assert deleted.id == reply.id and deleted.text == "@alice welcome!"  # for redrafting
    with pytest.raises(MastodonNotFoundError):
        alice.api.status(reply.id)
    assert alice.api.status_context(first.id).descendants == []

    # Unfollow: alice's posts leave bob's home timeline; bob's own stay.
    own = bob.api.status_post("bob is still here")
    assert not bob.api.account_unfollow(alice.id).following

    def alice_gone() -> bool:
        home = bob.api.timeline_home(limit=40)
        return (all(s.account.id != alice.id for s in home)
                and any(s.id == own.id for s in home))

    eventually(alice_gone)
    assert alice.id not in [a.id for a in bob.api.account_following(bob.id)]
