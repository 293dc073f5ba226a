"""Mastodon's streaming API: Server-Sent Events under /api/v1/streaming/..., the WebSocket at
/api/v1/streaming, and Roost's follower stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from roost.domain.errors import BadRequest, DomainError, Forbidden, InvalidInput, Unauthorized
from roost.domain.models import Account
from roost.domain.oauth import Authenticated, grants, session_hash
from roost.runtime import Roost
from roost.storage.pubsub import Overflowed, PubSub, Subscription
from roost.web.auth import INVALID_TOKEN, authenticated
from roost.web.pages.session import session_secret, stream_account
from roost.web.params import read_params
from roost.web.streaming.publisher import (
    HOMES_CHANNEL,
    KILL,
    PULLED_CHANNEL,
    RESUBSCRIBE,
    REVIVE,
    session_channel,
    token_channel,
)

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
PUBLIC_STREAMS = {"public": ["public"], "public:local": ["public:local"], "public:remote": []}


def _pubsub(conn: HTTPConnection) -> PubSub:
    pubsub: PubSub = conn.app.state.pubsub
    return pubsub


async def channels_for(roost: Roost, stream: str, account: Account | None,
                       tag: str | None = None, account_id: str | None = None) -> list[str]:
    """The pub/sub channels behind one Mastodon stream name (BadRequest if unknown)."""
    if stream in PUBLIC_STREAMS:
        return PUBLIC_STREAMS[stream]
    if stream in ("hashtag", "hashtag:local"):
        if not tag or not tag.strip():
            raise BadRequest("Missing tag name parameter")
        name = tag.strip().lstrip("#").lower()
        return [f"hashtag:{name}"] if stream == "hashtag" else [f"hashtag:local:{name}"]
    if stream == "roost:race":
        if not account_id or not account_id.isdigit():
            raise InvalidInput("Missing race_id parameter")
        return [f"roost:race:{account_id}"]
    if stream == "roost:followers":
        if not account_id or not account_id.isdigit():
            raise BadRequest("Missing account_id parameter")
        return [f"roost:followers:{account_id}"]
    if stream in ("user", "user:notification"):
        if account is None:
            raise Unauthorized("Missing access token")
        if stream == "user:notification":
            return [f"notifications:{account.id}"]
        pulled = await roost.timelines.pulled_authors(account.id)
        return [f"timeline:{account.id}", f"notifications:{account.id}", PULLED_CHANNEL,
                HOMES_CHANNEL, *(f"author:{a}" for a in pulled)]
    raise BadRequest("Unknown stream type")


async def _listener(roost: Roost, conn: HTTPConnection, subscription: Subscription,
                    auth: Authenticated | None) -> Account | None:
    """Who the stream is for: the token's account, or without a token the account of the web
    session of one of this server's pages (None: nobody). First it listens for the end of
    what lets it stream (a ``kill`` when the token is revoked or the session ends ends the
    stream, as in Mastodon), then checks that afresh: ended since it was first checked, it is
    refused now rather than left streaming."""
    if auth is not None:
        await subscription.add([token_channel(auth.token.id)])
        if not await roost.oauth.in_force(auth.token.id):
            roost.oauth.recent.forget(auth.token.id)
            raise Unauthorized(INVALID_TOKEN)
        return auth.account
    secret = session_secret(conn)
    if secret is None:
        return None
    await subscription.add([session_channel(session_hash(secret))])
    return await stream_account(conn)


def _check_scope(auth: Authenticated | None, stream: str) -> None:
    if stream.startswith("user") and auth is not None:
        needed = "read:notifications" if stream == "user:notification" else "read:statuses"
        if not grants(auth.token.scopes, needed):
            raise Forbidden("This action is outside the authorized scopes")


async def _keep_active(roost: Roost, account: Account | None) -> None:
    """An open stream keeps its account active, as a request does (at most one write an
    hour): a client that only listens is a user all the same, and fan-out must reach it."""
    if account is not None:
        try:
            await roost.accounts.touch(account)
        except Exception:  # (the database is down: the stream stays, the next beat retries)
            log.warning("noting the stream's account as active failed", exc_info=True)


async def _revive(roost: Roost, account: Account | None) -> None:
    """Every account was just marked inactive (the home timeline store lost its timelines):
    this stream's is not, and its home timeline is rebuilt now."""
    if account is not None:
        try:
            await roost.accounts.revive(account)
        except Exception:  # (its next request rebuilds it, as for any other account)
            log.warning("reviving the stream's account failed", exc_info=True)


async def _sse_events(roost: Roost, account: Account | None, subscription: Subscription,
                      resubscribe: Callable[[], Awaitable[None]] | None = None,
                      ) -> AsyncIterator[bytes]:
    yield b":)\n\n"
    # (by the clock, not only when the stream is quiet: a busy stream's account is active too)
    next_beat = time.monotonic() + HEARTBEAT_SECONDS
    try:
        while True:
            try:
                _, text = await asyncio.wait_for(subscription.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                text = None
            except Overflowed:
                return
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_SECONDS
                await _keep_active(roost, account)
            if text is None:
                yield b":thump\n\n"
                continue
            body = orjson.loads(text)  # payloads are JSON text or an id: never a newline
            if body["event"] == KILL:  # its token was revoked or its session ended
                return
            if body["event"] == RESUBSCRIBE:
                if resubscribe is not None:
                    await resubscribe()
                continue
            if body["event"] == REVIVE:
                await _revive(roost, account)
                continue
            yield f"event: {body['event']}\ndata: {body['payload']}\n\n".encode()
    finally:
        await subscription.close()


def sse_endpoint(stream: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        roost: Roost = request.app.state.roost
        params = await read_params(request)
        auth = await authenticated(request)
        _check_scope(auth, stream)
        subscription = _pubsub(request).subscription()
        try:
            account = await _listener(roost, request, subscription, auth)
            channels = await channels_for(roost, stream, account, params.str("tag"),
                                          params.str("account_id") or params.str("race_id"))
            await subscription.add(channels)
        except BaseException:
            await subscription.close()
            raise

        async def resubscribe() -> None:
            """The user stream follows the pulled authors its account follows as they change."""
            nonlocal channels
            fresh = await channels_for(roost, stream, account)
            await subscription.remove([c for c in channels if c not in fresh])
            await subscription.add([c for c in fresh if c not in channels])
            channels = fresh

        events = _sse_events(roost, account, subscription,
                             resubscribe if stream == "user" else None)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    endpoint.__name__ = f"stream_{stream.replace(':', '_')}"
    endpoint.__doc__ = f"Server-Sent Events: the {stream} stream."
    return endpoint


async def health(_request: Request) -> Response:
    """The streaming API is up."""
    return PlainTextResponse("OK")


async def websocket(ws: WebSocket) -> None:
    """One WebSocket carrying any number of streams: ``{"type": "subscribe", "stream": ...}``."""
    roost: Roost = ws.app.state.roost
    # Mastodon takes the token from the Authorization header, the access_token parameter or
    # the Sec-WebSocket-Protocol header (which is then echoed back as the chosen protocol).
    header = ws.headers.get("authorization", "")
    protocol = ws.headers.get("sec-websocket-protocol")
    token = (ws.query_params.get("access_token")
             or (header[7:].strip() if header[:7].lower() == "bearer " else None)
             or protocol)
    auth = None
    if token:
        auth = await roost.oauth.authenticate(token)
        if auth is None:
            await ws.close(code=4001, reason=INVALID_TOKEN)
            return
    subscription = _pubsub(ws).subscription()
    try:
        # without a token: a page of this server, signed in with its session (Origin checked)
        account = await _listener(roost, ws, subscription, auth)
    except Unauthorized:
        await subscription.close()
        await ws.close(code=4001, reason=INVALID_TOKEN)
        return
    except BaseException:
        await subscription.close()
        raise
    await ws.accept(subprotocol=protocol if token and token == protocol else None)
    streams: dict[tuple[str, ...], list[str]] = {}
    # Streams may share a channel (user and user:notification): each gets its own message.
    channel_streams: dict[str, list[tuple[str, ...]]] = {}

    async def subscribe(stream: str, tag: str | None, account_id: str | None) -> None:
        try:
            _check_scope(auth, stream)
            channels = await channels_for(roost, stream, account, tag, account_id)
        except DomainError as exc:
            await ws.send_text(orjson.dumps({"error": exc.message, "status": exc.status}).decode())
            return
        key = tuple(x for x in (stream, tag or account_id) if x)
        if key in streams:
            return
        streams[key] = channels
        await attach(key, channels)

    async def unsubscribe(stream: str, tag: str | None, account_id: str | None) -> None:
        key = tuple(x for x in (stream, tag or account_id) if x)
        await detach(key, streams.pop(key, []))

    async def attach(key: tuple[str, ...], channels: list[str]) -> None:
        for channel in channels:
            channel_streams.setdefault(channel, []).append(key)
        await subscription.add(channels)

    async def detach(key: tuple[str, ...], channels: list[str]) -> None:
        for channel in channels:
            keys = channel_streams.get(channel, [])
            if key in keys:
                keys.remove(key)
            if not keys:
                channel_streams.pop(channel, None)
                await subscription.remove([channel])

    async def resubscribe() -> None:
        """The user stream follows the pulled authors its account follows as they change."""
        key = ("user",)
        old = streams.get(key)
        if old is None:
            return
        fresh = await channels_for(roost, "user", account)
        if streams.get(key) is not old:
            return  # unsubscribed (or changed) meanwhile
        streams[key] = fresh
        await detach(key, [c for c in old if c not in fresh])
        await attach(key, [c for c in fresh if c not in old])

    async def pump() -> None:
        while True:
            channel, text = await subscription.get()
            body = orjson.loads(text)
            if body["event"] == KILL:  # its token was revoked or its session ended: close
                return
            if body["event"] == RESUBSCRIBE:
                await resubscribe()
                continue
            if body["event"] == REVIVE:
                await _revive(roost, account)
                continue
            # none: unsubscribed while the message was queued
            for key in list(channel_streams.get(channel, ())):
                await ws.send_text(orjson.dumps({"stream": list(key), "event": body["event"],
                                                 "payload": body["payload"]}).decode())

    async def receive() -> None:
        while True:
            try:
                request = orjson.loads(await ws.receive_text())
                if not isinstance(request, dict):
                    raise ValueError
            except (ValueError, orjson.JSONDecodeError):
                await ws.send_text('{"error":"Bad message","status":400}')
                continue
            kind = request.get("type")
            stream = str(request.get("stream") or "")
            tag = str(request["tag"]) if request.get("tag") else None
            target_id = request.get("account_id") or request.get("race_id")
            target = str(target_id) if target_id else None
            if kind == "subscribe":
                await subscribe(stream, tag, target)
            elif kind == "unsubscribe":
                await unsubscribe(stream, tag, target)
            else:
                await ws.send_text('{"error":"Unknown message type","status":400}')

    initial = ws.query_params.get("stream")
    if initial:
        await subscribe(initial, ws.query_params.get("tag"),
                        ws.query_params.get("account_id") or ws.query_params.get("race_id"))
    # Whichever ends first (the client leaves, or falls too far behind) ends the connection.
    # Keep-alive is the server's ping frames (uvicorn's): Mastodon sends text frames only.
    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await _keep_active(roost, account)

    tasks = [asyncio.create_task(pump()), asyncio.create_task(receive()),
             asyncio.create_task(beat())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Overflowed,
                                     Exception):
                await task
        await subscription.close()
        with contextlib.suppress(Exception):
            await ws.close()


routes = [
    Route("/api/v1/streaming/health", health),
    Route("/api/v1/streaming/user", sse_endpoint("user")),
    Route("/api/v1/streaming/user/notification", sse_endpoint("user:notification")),
    Route("/api/v1/streaming/public", sse_endpoint("public")),
    Route("/api/v1/streaming/public/local", sse_endpoint("public:local")),
    Route("/api/v1/streaming/public/remote", sse_endpoint("public:remote")),
    Route("/api/v1/streaming/hashtag", sse_endpoint("hashtag")),
    Route("/api/v1/streaming/hashtag/local", sse_endpoint("hashtag:local")),
    Route("/api/v1/roost/streaming/followers", sse_endpoint("roost:followers")),
    Route("/api/v1/roost/streaming/race", sse_endpoint("roost:race")),
    WebSocketRoute("/api/v1/streaming", websocket),
    WebSocketRoute("/api/v1/streaming/", websocket),
]
