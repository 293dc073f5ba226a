"""Streaming end to end against real `roost serve` processes, as Mastodon documents it
(docs.joinmastodon.org/methods/streaming): Mastodon.py's SSE streams, a WebSocket client,
celebrity (pulled) authors, Roost's follower stream, error paths, and refused changes.

Absence is checked with a sentinel: an event known to be published after the ones that must
not arrive (fan-out jobs run in order), so no test sleeps for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mastodon import Mastodon, StreamListener
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.e2e.conftest import Server, free_port

TIMEOUT = 20.0  # generous: a loaded 2-core machine
PASSWORD = "correct horse battery staple"
_serial = itertools.count()
_apps: dict[str, tuple[str, str]] = {}


# -- servers and accounts -----------------------------------------------------------------------

def _serve(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[Server]:
    instance = Server(tmp_path_factory.mktemp("streaming") / "data", free_port(),
                      env={"ROOST_ALLOW_PASSWORD_GRANT": "true", **env})
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, {})


@pytest.fixture(scope="module")
def celeb_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Authors become pulled at 2 followers (and pushed again below 1); milestones at 2, 3."""
    yield from _serve(tmp_path_factory, {"ROOST_FANOUT_PULL_ABOVE": "2",
                                         "ROOST_FANOUT_PUSH_BELOW": "1",
                                         "ROOST_MILESTONES": "2,3"})


@dataclass
class User:
    username: str
    id: str
    token: str
    api: Mastodon

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def users(server: Server, *names: str) -> list[User]:
    """Fresh accounts (unique names on a shared server), signed up two at a time."""
    if server.url not in _apps:
        _apps[server.url] = Mastodon.create_app("streaming e2e", api_base_url=server.url)
    client_id, secret = _apps[server.url]

    def one(name: str) -> User:
        username = f"{name}{next(_serial)}"
        token = Mastodon(client_id=client_id, client_secret=secret,
                         api_base_url=server.url).create_account(
            username, PASSWORD, f"{username}@example.com", agreement=True)
        api = Mastodon(access_token=token, api_base_url=server.url)
        return User(username, str(api.me()["id"]), token, api)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, names))


def post(server: Server, user: User, text: str, **form: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/statuses", headers=user.headers,
                      data={"status": text, **form}, timeout=30)


def posted(server: Server, user: User, text: str, **form: Any) -> str:
    response = post(server, user, text, **form)
    assert response.status_code == 200, response.text
    status_id: str = response.json()["id"]
    return status_id


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- Mastodon.py SSE streams --------------------------------------------------------------------

class Recorder(StreamListener):  # type: ignore[misc]
    """Records every event a Mastodon.py stream dispatches; ``connected`` is set by the first
    comment line, which Roost sends only once the subscription is in place."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, Any]] = []
        self.connected = threading.Event()

    def handle_heartbeat(self) -> None:
        self.connected.set()

    def on_any_event(self, name: str, data: Any = None, for_stream: Any = None) -> None:
        self.events.append((name, data))

    def on_unknown_event(self, name: str, unknown_event: Any = None) -> None:
        pass

    def updates(self) -> list[str]:
        return [str(data["id"]) for name, data in self.events if name == "update"]

    def deletes(self) -> list[str]:
        return [str(data) for name, data in self.events if name == "delete"]

    def notifications(self) -> list[tuple[str, str, str | None]]:
        return [(data["type"], str(data["account"]["id"]),
                 str(data["status"]["id"]) if data.get("status") else None)
                for name, data in self.events if name == "notification"]

    def update(self, status_id: str) -> Any:
        return next(d for n, d in self.events if n == "update" and str(d["id"]) == status_id)


def close_sse(handle: Any) -> None:
    """Close a Mastodon.py SSE handle at once: its reader thread sits in a blocking read that
    ``close()`` alone only ends at the next heartbeat (15 s), so shut the socket down first."""
    handle.closed = True
    response = handle.connection
    if response is not None:
        with contextlib.suppress(AttributeError, OSError):
            response.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
    handle.close()
    handle.join(10)


@contextlib.contextmanager
def sse(open_stream: Callable[[Recorder], Any]) -> Iterator[Recorder]:
    """``open_stream(recorder)`` starts a Mastodon.py stream (run_async); yields once it is
    subscribed and closes it on the way out."""
    recorder = Recorder()
    handle = open_stream(recorder)
    try:
        wait_until(recorder.connected.is_set, "the stream to connect")
        yield recorder
    finally:
        close_sse(handle)


class RawSse:
    """A plain SSE reader (httpx on an event loop of its own thread), for Roost's own streams
    that Mastodon.py does not know; closing it is a cancellation, never a blocked read."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.events: list[tuple[str, str]] = []
        self.status: int | None = None
        self.content_type = ""
        self.ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _read(self) -> None:
        try:
            timeout = httpx.Timeout(30, read=None)
            async with httpx.AsyncClient(timeout=timeout) as client, \
                    client.stream("GET", self.url, headers=self.headers) as response:
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        self.ready.set()
                    elif line.startswith("event: "):
                        event = line[len("event: "):]
                    elif line.startswith("data: "):
                        self.events.append((event, line[len("data: "):]))
        finally:
            self.ready.set()

    async def _spawn(self) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self._read())

    async def _stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task  # httpx closes the connection as the task unwinds

    def __enter__(self) -> RawSse:
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._spawn(), self._loop).result(10)
        wait_until(self.ready.is_set, f"{self.url} to connect")
        assert self.status == 200, self.status
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def payloads(self, event: str) -> list[Any]:
        return [json.loads(data) for name, data in self.events if name == event]

    @property
    def ended(self) -> bool:
        """The server ended the response."""
        return self._task.done()


# -- WebSocket ----------------------------------------------------------------------------------

class Socket:
    """A WebSocket to /api/v1/streaming whose messages a thread collects."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.binary_frames = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            for frame in self.ws:
                if isinstance(frame, bytes):
                    self.binary_frames += 1  # Mastodon sends text frames only
                    continue
                self.messages.append(json.loads(frame))

    def send(self, message: Any) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if "error" in m]

    def sync(self) -> None:
        """Wait until the server has handled everything sent so far: it reads messages in
        order, so the answer to a message of an unknown type proves that every earlier
        (un)subscribe is done."""
        def answers() -> int:
            return sum(e["error"] == "Unknown message type" for e in self.errors())

        before = answers()
        self.send({"type": "roost-test-sync"})
        wait_until(lambda: answers() > before or not self._reader.is_alive(),
                   "the server to answer")
        assert self._reader.is_alive(), "the server closed the socket"

    def events(self, event: str, stream: list[str]) -> list[Any]:
        """Payloads of ``event`` on ``stream``, decoded (``delete``: the bare id)."""
        out = []
        for m in self.messages:
            if m.get("event") == event and m.get("stream") == stream:
                assert isinstance(m["payload"], str), m  # the payload is JSON *text*
                out.append(m["payload"] if event == "delete" else json.loads(m["payload"]))
        return out

    def updates(self, stream: list[str]) -> list[str]:
        return [str(s["id"]) for s in self.events("update", stream)]

    def wait_update(self, stream: list[str], status_id: str) -> None:
        wait_until(lambda: status_id in self.updates(stream), f"update {status_id} on {stream}")

    def close(self) -> None:
        self.ws.close()
        self._reader.join(10)


def ws_url(server: Server, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/api/v1/streaming" + (f"?{query}" if query else "")


@contextlib.contextmanager
def websocket(server: Server, query: str = "", **options: Any) -> Iterator[Socket]:
    with ws_connect(ws_url(server, query), open_timeout=TIMEOUT, **options) as ws:
        sock = Socket(ws)
        try:
            sock.sync()  # the stream= of the URL is subscribed before any message is read
            yield sock
        finally:
            sock.close()


def db_row(server: Server, sql: str, *args: object) -> tuple[Any, ...]:
    """One row from the server's SQLite database (read-only), to check internal modes."""
    path = Path(server.data_dir) / "roost.db"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute(sql, args).fetchone()
    assert row is not None
    return tuple(row)


# -- 1. Mastodon.py: user, public, local and hashtag streams ------------------------------------

def test_user_stream_updates_mirror_the_home_timeline(srv: Server) -> None:
    alice, bob, carol, dave = users(srv, "alice", "bob", "carol", "dave")
    bob.api.account_follow(alice.id)
    bob.api.account_follow(dave.id, reblogs=False)
    carols = posted(srv, carol, "carol's first post")
    bobs = posted(srv, bob, "bob's first post")
    with sse(lambda r: bob.api.stream_user(r, run_async=True)) as stream:
        thread = posted(srv, alice, "a thread starts")
        shown = {
            "thread start": thread,
            "followed author": posted(srv, alice, "hello followers"),
            "own post": posted(srv, bob, "my own post"),
            "unlisted": posted(srv, alice, "quietly", visibility="unlisted"),
            "followers-only": posted(srv, alice, "just for followers", visibility="private"),
            "self-reply": posted(srv, alice, "and goes on", in_reply_to_id=thread),
            "reply to the follower": posted(srv, alice, "answering bob", in_reply_to_id=bobs),
            "direct to the follower": posted(srv, alice, f"@{bob.username} psst",
                                             visibility="direct"),
        }
        reblog = alice.api.status_reblog(carols)
        shown["reblog by followed author"] = str(reblog["id"])
        hidden = {
            "reply to someone not followed": posted(srv, alice, "answering carol",
                                                    in_reply_to_id=carols),
            "author not followed": posted(srv, carol, "nobody follows me"),
            "direct to someone else": posted(srv, alice, f"@{carol.username} secret",
                                             visibility="direct"),
            "mention by someone not followed": posted(srv, carol, f"hi @{bob.username}"),
            "reblog by an author whose reblogs are hidden": str(
                dave.api.status_reblog(carols)["id"]),
        }
        sentinel = posted(srv, alice, "sentinel")
        wait_until(lambda: sentinel in stream.updates(), "the sentinel")
    got = stream.updates()
    missing = {k: v for k, v in shown.items() if v not in got}
    leaked = {k: v for k, v in hidden.items() if v in got}
    assert not missing and not leaked, (missing, leaked)
    assert len(got) == len(set(got)), "an update arrived twice"
    update = stream.update(shown["followed author"])
    assert str(update["account"]["id"]) == alice.id
    assert "hello followers" in update["content"]
    assert str(stream.update(shown["reblog by followed author"])["reblog"]["id"]) == carols
    # the stream carried exactly what the home timeline holds for the same span
    home = [str(s["id"]) for s in bob.api.timeline_home(since_id=bobs, limit=40)]
    assert sorted(got) == sorted(home)


def test_user_stream_notifications_and_deletes(srv: Server) -> None:
    alice, bob, carol = users(srv, "alice", "bob", "carol")
    bob.api.account_follow(alice.id)
    mine = posted(srv, bob, "a post to react to")
    with sse(lambda r: bob.api.stream_user(r, run_async=True)) as stream, \
            sse(lambda r: bob.api.stream_user_notifications(r, run_async=True)) as only:
        carol.api.account_follow(bob.id)
        mention = posted(srv, carol, f"hello @{bob.username}")
        carol.api.status_favourite(mine)
        reblog = str(carol.api.status_reblog(mine)["id"])
        doomed = posted(srv, alice, "soon gone")
        wait_until(lambda: doomed in stream.updates(), "the post to delete")
        alice.api.status_delete(doomed)
        own = posted(srv, bob, "mine, soon gone")
        bob.api.status_delete(own)
        expected = [("follow", carol.id, None), ("mention", carol.id, mention),
                    ("favourite", carol.id, mine), ("reblog", carol.id, mine)]
        wait_until(lambda: sorted(stream.notifications()) == sorted(expected)
                   and sorted(only.notifications()) == sorted(expected)
                   and {doomed, own} <= set(stream.deletes()), "notifications and deletes")
        sentinel = posted(srv, alice, "sentinel")
        wait_until(lambda: sentinel in stream.updates(), "the sentinel")
    assert sorted(stream.notifications()) == sorted(expected)  # each exactly once
    assert [name for name, _ in only.events] == ["notification"] * 4  # nothing else
    assert sorted(stream.deletes()) == sorted([doomed, own])
    assert reblog not in stream.updates()  # carol is not followed: her reblog is not home
    assert mention not in stream.updates()


def test_public_local_and_hashtag_streams(srv: Server) -> None:
    alice, bob = users(srv, "alice", "bob")
    api = bob.api
    with sse(lambda r: api.stream_public(r, run_async=True)) as public, \
            sse(lambda r: api.stream_local(r, run_async=True)) as local, \
            sse(lambda r: api.stream_hashtag("roostlive", r, run_async=True)) as tag, \
            sse(lambda r: api.stream_hashtag("RoostLive", r, local=True, run_async=True)) as \
            tag_local:
        tagged = posted(srv, alice, "hello #RoostLive")
        untagged = posted(srv, alice, "hello everyone")
        other_tag = posted(srv, alice, "hello #elsewhere")
        reply = posted(srv, bob, "welcome #roostlive", in_reply_to_id=tagged)
        not_public = {
            "unlisted": posted(srv, alice, "#roostlive unlisted", visibility="unlisted"),
            "private": posted(srv, alice, "#roostlive private", visibility="private"),
            "direct": posted(srv, alice, f"@{bob.username} #roostlive", visibility="direct"),
            "reblog": str(bob.api.status_reblog(tagged)["id"]),
        }
        alice.api.status_delete(not_public["private"])
        alice.api.status_delete(tagged)  # takes bob's reblog with it
        sentinel = posted(srv, alice, "sentinel #RoostLive")
        for stream in (public, local, tag, tag_local):
            wait_until(lambda s=stream: sentinel in s.updates(), "the sentinel")
    for stream in (public, local):
        assert stream.updates() == [tagged, untagged, other_tag, reply, sentinel]
        assert stream.deletes() == [tagged], "only public posts' deletes are public"
    for stream in (tag, tag_local):
        assert stream.updates() == [tagged, reply, sentinel]
        assert stream.deletes() == [tagged], "a hashtag stream hears of its posts' deletion"
    assert [t["name"].lower() for t in tag.update(tagged)["tags"]] == ["roostlive"]


# -- 2. WebSocket -------------------------------------------------------------------------------

def test_websocket_subscribe_unsubscribe_and_message_shape(srv: Server) -> None:
    alice, bob, carol = users(srv, "alice", "bob", "carol")
    bob.api.account_follow(alice.id)
    with websocket(srv, f"access_token={bob.token}&stream=user") as sock:
        first = posted(srv, alice, "to the socket")
        sock.wait_update(["user"], first)
        raw = next(m for m in sock.messages if m.get("event") == "update")
        assert set(raw) == {"stream", "event", "payload"}
        assert isinstance(raw["payload"], str) and json.loads(raw["payload"])["id"] == first

        sock.send({"type": "subscribe", "stream": "hashtag", "tag": "wsTag"})
        sock.sync()
        stranger = posted(srv, carol, "a #wstag from a stranger")
        both = posted(srv, alice, "#WsTag from a followed author")
        sock.wait_update(["hashtag", "wsTag"], both)
        assert sock.updates(["hashtag", "wsTag"]) == [stranger, both]
        sock.wait_update(["user"], both)  # one message per stream it belongs to
        assert stranger not in sock.updates(["user"])

        sock.send({"type": "unsubscribe", "stream": "hashtag", "tag": "wsTag"})
        sock.sync()
        after = posted(srv, carol, "#wstag after unsubscribing")
        sentinel = posted(srv, alice, "sentinel")
        sock.wait_update(["user"], sentinel)

        alice.api.status_delete(first)
        wait_until(lambda: first in sock.events("delete", ["user"]), "the delete")
        carol.api.account_follow(bob.id)
        wait_until(lambda: sock.events("notification", ["user"]), "the notification")
    assert not any(after in m.get("payload", "") for m in sock.messages)
    assert sock.updates(["hashtag", "wsTag"]) == [stranger, both]
    assert [n["type"] for n in sock.events("notification", ["user"])] == ["follow"]
    assert all(m["stream"] in (["user"], ["hashtag", "wsTag"]) for m in sock.messages
               if "event" in m)
    assert sock.binary_frames == 0


def test_websocket_token_in_the_protocol_and_authorization_headers(srv: Server) -> None:
    (bob,) = users(srv, "bob")
    with websocket(srv, "stream=user", subprotocols=[bob.token]) as by_protocol, \
            websocket(srv, "stream=user",
                      additional_headers={"Authorization": f"Bearer {bob.token}"}) as by_header:
        assert by_protocol.ws.subprotocol == bob.token  # the offered protocol is echoed
        own = posted(srv, bob, "heard by both sockets")
        by_protocol.wait_update(["user"], own)
        by_header.wait_update(["user"], own)


@pytest.mark.parametrize("how", ["query", "protocol", "header"])
def test_websocket_refuses_an_invalid_token(srv: Server, how: str) -> None:
    options: dict[str, Any] = {
        "query": {},
        "protocol": {"subprotocols": ["not-a-token"]},
        "header": {"additional_headers": {"Authorization": "Bearer not-a-token"}},
    }[how]
    query = "stream=user" + ("&access_token=not-a-token" if how == "query" else "")
    with pytest.raises((InvalidHandshake, ConnectionClosed)), \
            ws_connect(ws_url(srv, query), open_timeout=TIMEOUT, **options) as ws:
        ws.recv(timeout=TIMEOUT)  # if refused only after the handshake: closed at once


def test_websocket_bad_requests_get_errors_not_a_crash(srv: Server) -> None:
    (bob,) = users(srv, "bob")
    with websocket(srv, f"access_token={bob.token}&stream=nonsense") as sock:
        assert {"error": "Unknown stream type", "status": 400} in sock.messages
        for bad in ("not json", "[1, 2]", '"subscribe"', {"type": "what"},
                    {"type": "subscribe", "stream": "nonsense"},
                    {"type": "subscribe", "stream": "hashtag"},
                    {"type": "subscribe", "stream": "roost:followers"},
                    {"type": "subscribe"}):
            before = len(sock.errors())
            sock.send(bad)
            wait_until(lambda b=before: len(sock.errors()) > b, f"the answer to {bad}")
        before = len(sock.errors())
        sock.send({"type": "unsubscribe", "stream": "never-subscribed"})  # nothing to say
        sock.sync()
        assert len(sock.errors()) == before + 1
        assert all(e["status"] == 400 for e in sock.errors()), sock.errors()
        sock.send({"type": "subscribe", "stream": "user"})
        sock.sync()
        own = posted(srv, bob, "still alive")
        sock.wait_update(["user"], own)
    with websocket(srv, "stream=user") as anonymous:  # the user stream needs a user
        assert any(e["status"] == 401 for e in anonymous.errors()), anonymous.messages


def test_websocket_streams_sharing_a_channel_stay_independent(srv: Server) -> None:
    bob, carol = users(srv, "bob", "carol")
    mine = posted(srv, bob, "to be favourited")
    with websocket(srv, f"access_token={bob.token}&stream=user") as sock:
        sock.send({"type": "subscribe", "stream": "user:notification"})
        sock.sync()
        carol.api.account_follow(bob.id)
        wait_until(lambda: sock.events("notification", ["user"])
                   and sock.events("notification", ["user:notification"]),
                   "the notification on both streams")
        sock.send({"type": "unsubscribe", "stream": "user:notification"})
        sock.sync()
        carol.api.status_favourite(mine)
        wait_until(lambda: len(sock.events("notification", ["user"])) == 2,
                   "the user stream to keep its notifications")
        sentinel = posted(srv, bob, "sentinel")
        sock.wait_update(["user"], sentinel)
    assert [n["type"] for n in sock.events("notification", ["user"])] == ["follow", "favourite"]
    assert [n["type"] for n in sock.events("notification", ["user:notification"])] == ["follow"]


# -- 3. Celebrity (pulled) authors -------------------------------------------------------------

def test_pulled_author_reaches_follower_streams_exactly_once(celeb_srv: Server) -> None:
    srv = celeb_srv
    celeb, fan_a, fan_b, plain_a, plain_b = users(srv, "celeb", "fan", "fan", "plain", "plain")
    for fan in (fan_a, fan_b):
        fan.api.account_follow(celeb.id)
    fan_a.api.account_follow(plain_a.id)  # one follower each: plain authors stay pushed
    fan_b.api.account_follow(plain_b.id)
    assert db_row(srv, "SELECT pulled FROM accounts WHERE id = ?", int(celeb.id)) == (1,)
    with sse(lambda r: fan_a.api.stream_user(r, run_async=True)) as fan_stream, \
            sse(lambda r: celeb.api.stream_user(r, run_async=True)) as own_stream, \
            websocket(srv, f"access_token={fan_b.token}&stream=user") as fan_socket:
        public = posted(srv, celeb, "a celebrity speaks")
        private = posted(srv, celeb, "for followers only", visibility="private")
        assert db_row(srv, "SELECT pushed FROM statuses WHERE id = ?", int(public)) == (0,)
        # plain authors' posts are pushed by fan-out jobs, which run after any job of the
        # celebrity's posts: once they arrive, so would have any duplicate
        sentinel_a = posted(srv, plain_a, "sentinel a")
        sentinel_b = posted(srv, plain_b, "sentinel b")
        wait_until(lambda: sentinel_a in fan_stream.updates(), "sentinel a")
        fan_socket.wait_update(["user"], sentinel_b)
        wait_until(lambda: private in own_stream.updates(), "the author's own post")
        celeb.api.status_delete(public)
        sentinel_a2 = posted(srv, plain_a, "sentinel a2")
        sentinel_b2 = posted(srv, plain_b, "sentinel b2")
        wait_until(lambda: sentinel_a2 in fan_stream.updates(), "sentinel a2")
        fan_socket.wait_update(["user"], sentinel_b2)
        wait_until(lambda: public in own_stream.deletes(), "the author's own delete")
    assert fan_stream.updates() == [public, private, sentinel_a, sentinel_a2]
    assert fan_socket.updates(["user"]) == [public, private, sentinel_b, sentinel_b2]
    assert own_stream.updates() == [public, private]
    assert fan_stream.deletes() == [public]
    assert fan_socket.events("delete", ["user"]) == [public]
    assert own_stream.deletes() == [public]
    home = [str(s["id"]) for s in fan_a.api.timeline_home(limit=5)]
    assert home[:3] == [sentinel_a2, sentinel_a, private]  # merged at read time


def test_open_streams_follow_authors_that_become_pulled(celeb_srv: Server) -> None:
    """Streams opened before the author became pulled, or before following a pulled author,
    receive its posts once; an unfollow stops them."""
    srv = celeb_srv
    celeb, early, late = users(srv, "celeb", "early", "late")
    early.api.account_follow(celeb.id)  # one follower: still pushed
    with sse(lambda r: early.api.stream_user(r, run_async=True)) as early_stream, \
            sse(lambda r: late.api.stream_user(r, run_async=True)) as late_stream, \
            websocket(srv, f"access_token={early.token}&stream=user") as early_socket:

        def barrier(user: User, stream: Recorder, socket: Socket | None = None) -> str:
            """A stream handles its messages in order, and the server tells it to re-check
            its pulled authors at the follow's commit: once an own post made after the follow
            arrives, the stream listens to the right authors."""
            own = posted(srv, user, "barrier")
            wait_until(lambda: own in stream.updates(), "the barrier")
            if socket is not None:
                socket.wait_update(["user"], own)
            return own

        late.api.account_follow(celeb.id)  # two followers: the author is pulled from now on
        assert db_row(srv, "SELECT pulled FROM accounts WHERE id = ?", int(celeb.id)) == (1,)
        early_barrier = barrier(early, early_stream, early_socket)
        late_barriers = [barrier(late, late_stream)]
        heard = posted(srv, celeb, "heard by both followers")
        late.api.account_unfollow(celeb.id)
        late_barriers.append(barrier(late, late_stream))
        unheard = posted(srv, celeb, "heard by the early follower only")
        late.api.account_follow(celeb.id)  # following a pulled author
        late_barriers.append(barrier(late, late_stream))
        again = posted(srv, celeb, "heard by both followers again")
        sentinel_early = barrier(early, early_stream, early_socket)
        sentinel_late = barrier(late, late_stream)
    early_expected = [early_barrier, heard, unheard, again, sentinel_early]
    assert early_stream.updates() == early_expected
    assert early_socket.updates(["user"]) == early_expected
    late_expected = [late_barriers[0], heard, late_barriers[1], late_barriers[2], again,
                     sentinel_late]
    assert late_stream.updates() == late_expected
    internal = [m for m in early_socket.messages if m.get("event") == "roost.resubscribe"]
    internal += [e for e in early_stream.events + late_stream.events if e[0] != "update"]
    assert internal == [], "Roost's internal messages never reach a client"


# -- 4. Roost's follower stream ------------------------------------------------------------------

def test_follower_stream_counts_and_milestones(celeb_srv: Server) -> None:
    srv = celeb_srv
    star, a, b, c, d = users(srv, "star", "a", "b", "c", "d")
    url = f"{srv.url}/api/v1/roost/streaming/followers?account_id={star.id}"
    with RawSse(url) as stream, websocket(srv, f"access_token={star.token}&stream=user") as sock:
        assert stream.content_type.startswith("text/event-stream")
        sock.send({"type": "subscribe", "stream": "roost:followers", "account_id": star.id})
        sock.sync()
        a.api.account_follow(star.id)
        b.api.account_follow(star.id)  # 2: a milestone
        c.api.account_follow(star.id)  # 3: a milestone
        a.api.account_unfollow(star.id)
        a.api.account_follow(star.id)  # 3 again: not a milestone again
        d.api.account_follow(star.id)  # 4: the sentinel
        wait_until(lambda: [p["followers_count"] for p in stream.payloads("roost.followers")][-1:]
                   == [4], "the sentinel count on SSE")
        followers_ws = ["roost:followers", star.id]
        wait_until(lambda: [p["followers_count"] for p in sock.events("roost.followers",
                                                                        followers_ws)][-1:]
                   == [4], "the sentinel count on the WebSocket")
        wait_until(lambda: len([n for n in sock.events("notification", ["user"])
                                if n["type"] == "roost.milestone"]) == 2,
                   "the milestone notifications")
    for counts in (stream.payloads("roost.followers"), sock.events("roost.followers",
                                                                     followers_ws)):
        assert [p["followers_count"] for p in counts] == [1, 2, 3, 2, 3, 4]
        assert {p["account_id"] for p in counts} == {star.id}
    for milestones in (stream.payloads("roost.milestone"), sock.events("roost.milestone",
                                                                         followers_ws)):
        assert [(m["count"], m["follower_id"]) for m in milestones] == [(2, b.id), (3, c.id)]
    notes = [n for n in sock.events("notification", ["user"]) if n["type"] == "roost.milestone"]
    assert [(n["milestone"]["count"], n["account"]["id"]) for n in notes] == [(2, b.id),
                                                                              (3, c.id)]


# -- 5. SSE error paths --------------------------------------------------------------------------

def test_sse_error_paths_and_health(srv: Server) -> None:
    (bob,) = users(srv, "bob")
    base = f"{srv.url}/api/v1/streaming"
    for path, headers in (("/user", {}), ("/user/notification", {}),
                          ("/user", {"Authorization": "Bearer not-a-token"})):
        response = httpx.get(base + path, headers=headers, timeout=30)
        assert response.status_code == 401, (path, response.text)
        assert isinstance(response.json()["error"], str)
    for url in (f"{base}/hashtag", f"{base}/hashtag?tag=", f"{base}/hashtag/local",
                f"{srv.url}/api/v1/roost/streaming/followers",
                f"{srv.url}/api/v1/roost/streaming/followers?account_id=abc"):
        response = httpx.get(url, headers=bob.headers, timeout=30)
        assert response.status_code == 400, (url, response.status_code)
        assert isinstance(response.json()["error"], str)
    client_id, secret = _apps[srv.url]
    token = httpx.post(f"{srv.url}/oauth/token", data={
        "grant_type": "password", "client_id": client_id, "client_secret": secret,
        "username": f"{bob.username}@example.com", "password": PASSWORD, "scope": "write",
    }, timeout=30)
    assert token.status_code == 200, token.text
    write_only = {"Authorization": f"Bearer {token.json()['access_token']}"}
    response = httpx.get(f"{base}/user", headers=write_only, timeout=30)
    assert response.status_code == 403 and "error" in response.json()
    health = httpx.get(f"{base}/health", timeout=30)
    assert (health.status_code, health.text) == (200, "OK")
    assert bob.api.stream_healthy()


def _password_token(server: Server, user: User) -> str:
    """Another access token of ``user``'s, from the password grant."""
    client_id, secret = _apps[server.url]
    response = httpx.post(f"{server.url}/oauth/token", data={
        "grant_type": "password", "client_id": client_id, "client_secret": secret,
        "username": f"{user.username}@example.com", "password": PASSWORD,
        "scope": "read write"}, timeout=30)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_revoking_a_token_ends_the_streams_opened_with_it(srv: Server) -> None:
    """As Mastodon: the WebSocket is closed and the SSE response ends; streams opened with
    the account's other tokens go on; the token opens no new stream."""
    (bob,) = users(srv, "bob")
    doomed, other = _password_token(srv, bob), _password_token(srv, bob)
    sse_url = f"{srv.url}/api/v1/streaming/user"
    with websocket(srv, f"access_token={doomed}&stream=user") as killed, \
            websocket(srv, f"access_token={other}&stream=user") as kept, \
            RawSse(sse_url, {"Authorization": f"Bearer {doomed}"}) as killed_sse, \
            RawSse(sse_url, {"Authorization": f"Bearer {other}"}) as kept_sse:
        client_id, secret = _apps[srv.url]
        revoked = httpx.post(f"{srv.url}/oauth/revoke", data={
            "token": doomed, "client_id": client_id, "client_secret": secret}, timeout=30)
        assert revoked.status_code == 200, revoked.text
        wait_until(lambda: killed.ws.close_code is not None and killed_sse.ended,
                   "the revoked token's streams to end")
        assert killed.ws.close_code == 1000
        kept.sync()
        after = posted(srv, bob, "heard by the other token's streams")
        kept.wait_update(["user"], after)
        wait_until(lambda: after in [str(s["id"]) for s in kept_sse.payloads("update")],
                   "the update on the other token's SSE stream")
        assert not kept_sse.ended
    assert after not in killed.updates(["user"])
    refused = httpx.get(sse_url, headers={"Authorization": f"Bearer {doomed}"}, timeout=30)
    assert refused.status_code == 401
    with pytest.raises((InvalidHandshake, ConnectionClosed)), \
            ws_connect(ws_url(srv, f"access_token={doomed}&stream=user"),
                       open_timeout=TIMEOUT) as ws:
        ws.recv(timeout=TIMEOUT)


# -- 6. Refused changes publish nothing ----------------------------------------------------------

def test_refused_changes_never_reach_a_stream(srv: Server) -> None:
    alice, bob, carol = users(srv, "alice", "bob", "carol")
    bob.api.account_follow(alice.id)
    followers_url = f"{srv.url}/api/v1/roost/streaming/followers?account_id={alice.id}"
    with sse(lambda r: bob.api.stream_user(r, run_async=True)) as home, \
            sse(lambda r: bob.api.stream_hashtag("refused", r, run_async=True)) as tag, \
            RawSse(followers_url) as followers:
        mention = f"@{bob.username} #refused"
        refused = [
            post(srv, alice, mention + " " + "x" * 600),  # too long
            post(srv, alice, mention, **{"media_ids[]": "1"}),  # media: not supported yet
            post(srv, alice, mention, visibility="everyone"),
            post(srv, alice, mention, in_reply_to_id="1"),  # no such post
            post(srv, alice, "   "),
            *(httpx.post(f"{srv.url}{path}", headers=user.headers, timeout=30)
              for path, user in (("/api/v1/statuses/1/favourite", alice),  # no such post
                                 ("/api/v1/statuses/1/reblog", alice),
                                 (f"/api/v1/accounts/{alice.id}/follow", alice),  # oneself
                                 ("/api/v1/accounts/1/follow", carol))),  # no such account
        ]
        assert all(400 <= r.status_code < 500 for r in refused), [
            (r.status_code, r.text) for r in refused]
        assert refused[0].status_code == refused[1].status_code == 422
        sentinel = posted(srv, alice, mention + " accepted")
        carol.api.account_follow(alice.id)
        wait_until(lambda: sentinel in home.updates() and sentinel in tag.updates()
                   and followers.payloads("roost.followers"), "the accepted changes")
        wait_until(lambda: home.notifications(), "the mention")
    assert home.updates() == [sentinel]
    assert home.notifications() == [("mention", alice.id, sentinel)]
    assert tag.updates() == [sentinel]
    assert [p["followers_count"] for p in followers.payloads("roost.followers")] == [2]
