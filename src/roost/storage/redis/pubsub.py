"""Pub/sub on Redis: live events reach the streaming clients of every web process.

One process opens two Redis connections however many clients stream from it: one shared
subscriber connection and one publishing connection. The subscriber connection is
SUBSCRIBEd to the union of the channels the process's subscriptions want (a channel is
subscribed when its first local listener arrives and unsubscribed when its last one leaves);
one reader task takes its messages and fans each out to the local subscriptions' queues, as
``LocalPubSub`` does. A listener more than ``QUEUE_LIMIT`` messages behind is dropped
(``Overflowed``) instead of slowing the reader, and so every other client, down.

``Subscription.add`` returns once Redis has confirmed the new channels, so a message published
after it returns is delivered. ``publish`` queues the message and returns; one task sends what
has queued as one pipeline, in order, so the publisher's thousands of ``timeline:<id>``
messages for one fan-out batch cost one round trip, not thousands. Redis pub/sub is
at-most-once: a message published while the subscriber connection is down is lost; the reader
reconnects and resubscribes to every channel (redis-py's ``PubSub.on_connect``).

Channel names: ``<prefix><channel>`` with a trailing account or race id as a Redis Cluster
hash tag (``timeline:42`` is ``roost:timeline:{42}``), ready for sharded pub/sub
(SSUBSCRIBE), where the channel's slot picks the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub as RedisConnectionPubSub

from roost.storage.pubsub import Inbox

log = logging.getLogger(__name__)

CONFIRM_SECONDS = 5.0  # how long ``add`` waits for Redis to confirm a SUBSCRIBE
OUTBOX_LIMIT = 50_000  # queued publishes beyond which ``publish`` waits for the sender
_TRAILING_ID = re.compile(r":(\d+)$")


class _RedisSubscription(Inbox):
    def __init__(self, hub: RedisPubSub) -> None:
        super().__init__()
        self._hub = hub

    async def add(self, channels: Iterable[str]) -> None:
        await self._hub.attach(self, list(channels))

    async def remove(self, channels: Iterable[str]) -> None:
        await self._hub.detach(self, list(channels))

    async def close(self) -> None:
        await self.remove(list(self.channels))


class RedisPubSub:
    """``PubSub`` over Redis, with one subscriber connection per process. Connections open
    on first use, in the running event loop; ``close`` releases them."""

    def __init__(self, url: str, *, prefix: str = "roost:",
                 client_name: str | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self.client_name = client_name or f"{prefix}pubsub"  # (CLIENT LIST shows it)
        self.listeners: dict[str, set[_RedisSubscription]] = {}
        self._client: aioredis.Redis | None = None
        self._pubsub: RedisConnectionPubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # orders SUBSCRIBE/UNSUBSCRIBE as the listeners change
        self._local_names: dict[str, str] = {}  # Redis channel -> our channel name
        self._confirming: dict[str, deque[asyncio.Future[None]]] = {}
        self._outbox: list[tuple[str, str]] = []
        self._sender: asyncio.Task[None] | None = None

    def redis_channel(self, channel: str) -> str:
        return self.prefix + _TRAILING_ID.sub(r":{\1}", channel)

    def subscription(self) -> _RedisSubscription:
        return _RedisSubscription(self)

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, channel: str, message: str) -> None:
        self._outbox.append((self.redis_channel(channel), message))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        if len(self._outbox) >= OUTBOX_LIMIT:
            await asyncio.shield(self._sender)

    async def _send(self) -> None:
        await asyncio.sleep(0)  # let the publisher queue the rest of its batch
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                pipe = self._connection().pipeline(transaction=False)
                for channel, message in batch:
                    pipe.publish(channel, message)
                await pipe.execute()
            except Exception:
                log.exception("publishing %d messages to Redis failed", len(batch))

    # -- subscribing --------------------------------------------------------------------------

    def _connection(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url, decode_responses=True, client_name=self.client_name,
                socket_keepalive=True)
        return self._client

    async def attach(self, subscription: _RedisSubscription, channels: list[str]) -> None:
        async with self._lock:
            new = []
            for channel in channels:
                subscription.channels.add(channel)
                listeners = self.listeners.setdefault(channel, set())
                if not listeners:
                    new.append(channel)
                listeners.add(subscription)
            waits = [self._confirming[c][-1] for c in map(self.redis_channel, channels)
                     if self._confirming.get(c)]
            if new:
                try:
                    waits += await self._subscribe(new)
                except BaseException:
                    self._forget(subscription, new)
                    raise
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*map(asyncio.shield, waits)),
                                       CONFIRM_SECONDS)
            except TimeoutError:
                log.warning("Redis did not confirm a subscription within %ss", CONFIRM_SECONDS)

    async def _subscribe(self, channels: list[str]) -> list[asyncio.Future[None]]:
        if self._pubsub is None:
            self._pubsub = self._connection().pubsub()
        names = [self.redis_channel(c) for c in channels]
        loop = asyncio.get_running_loop()
        futures = []
        for channel, name in zip(channels, names, strict=True):
            self._local_names[name] = channel
            future: asyncio.Future[None] = loop.create_future()
            self._confirming.setdefault(name, deque()).append(future)
            futures.append(future)
        try:
            await self._pubsub.subscribe(*names)
        except BaseException:
            for name, future in zip(names, futures, strict=True):
                self._unconfirm(name, future)
            raise
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(self._pubsub))
        return futures

    def _unconfirm(self, name: str, future: asyncio.Future[None]) -> None:
        waiting = self._confirming.get(name)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._confirming[name]
        future.cancel()

    def _forget(self, subscription: _RedisSubscription, channels: list[str]) -> list[str]:
        """Take ``subscription`` off ``channels``; returns those no one listens to now."""
        gone = []
        for channel in channels:
            subscription.channels.discard(channel)
            listeners = self.listeners.get(channel)
            if listeners is not None:
                listeners.discard(subscription)
                if not listeners:
                    del self.listeners[channel]
                    gone.append(channel)
        return gone

    async def detach(self, subscription: _RedisSubscription, channels: list[str]) -> None:
        async with self._lock:
            gone = self._forget(subscription, channels)
            if gone and self._pubsub is not None:
                names = [self.redis_channel(c) for c in gone]
                for name in names:
                    self._local_names.pop(name, None)
                try:
                    await self._pubsub.unsubscribe(*names)
                except Exception:  # (the reader reconnects; a stray message finds no one)
                    log.warning("unsubscribing %d Redis channels failed", len(names),
                                exc_info=True)

    async def _read(self, pubsub: RedisConnectionPubSub) -> None:
        failures = 0
        while True:
            try:
                message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.warning("Redis pub/sub connection failed; reconnecting", exc_info=True)
                await asyncio.sleep(min(5.0, 0.05 * 2**failures))
                continue
            failures = 0
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            channel = self._local_names.get(message["channel"])
            if channel is not None:
                for subscription in list(self.listeners.get(channel, ())):
                    subscription.deliver(channel, message["data"])
        elif kind == "subscribe":
            waiting = self._confirming.get(message["channel"])
            if waiting:
                future = waiting.popleft()
                if not waiting:
                    del self._confirming[message["channel"]]
                if not future.done():
                    future.set_result(None)

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Send what is queued, then close both connections."""
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        for waiting in self._confirming.values():
            for future in waiting:
                future.cancel()
        self._confirming.clear()
        self._local_names.clear()
        self.listeners.clear()
