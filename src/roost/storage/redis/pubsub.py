"""Pub/sub on Redis: live events reach the streaming clients of every web process.

One process opens one subscriber connection per Redis node however many clients stream from
it (one server: one connection), plus one publishing connection per node. A subscriber
connection is subscribed to the union of the channels the process's subscriptions want that
live on its node (a channel is subscribed when its first local listener arrives and
unsubscribed when its last one leaves); one reader task per connection takes its messages and
fans each out to the local subscriptions' queues, as ``LocalPubSub`` does. A listener more
than ``QUEUE_LIMIT`` messages behind is dropped (``Overflowed``) instead of slowing the reader,
and so every other client, down.

``Subscription.add`` returns once Redis has confirmed the new channels, so a message published
after it returns is delivered. ``publish`` queues the message and returns; one task sends what
has queued as one pipeline per node, in order, so the publisher's thousands of
``timeline:<id>`` messages for one fan-out batch cost one round trip per node, not thousands.
Redis pub/sub is at-most-once: a message published while a subscriber connection is down is
lost; the reader reconnects and resubscribes to every channel (redis-py's
``PubSub.on_connect``).

Channel names: ``<prefix><channel>`` with a trailing account or race id as a Redis Cluster
hash tag (``timeline:42`` is ``roost:timeline:{42}``). On a Redis Cluster
(``ROOST_REDIS_CLUSTER``) the hub uses sharded pub/sub, where the channel's slot picks the
node (``transports.ShardedCluster``): all the streams of one account (``timeline:{42}``,
``notifications:{42}``) share a node and so keep their order; channels on different nodes are
not ordered with each other. When a slot moves, or a node's connection fails, the hub reads the
slot map again and moves the channels whose node changed (``_rehome``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio.client import PubSub as RedisConnectionPubSub

from roost.storage.pubsub import Inbox
from roost.storage.redis.transports import OneServer, ShardedCluster, Transport

log = logging.getLogger(__name__)

CONFIRM_SECONDS = 5.0  # how long ``add`` waits for Redis to confirm a SUBSCRIBE
OUTBOX_LIMIT = 50_000  # queued publishes beyond which ``publish`` waits for the sender
REHOME_RETRY_SECONDS = 1.0  # how soon channels that could not move to their new node try again


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


class _Shard:
    """The subscriber connection to one node, the channels subscribed on it, its reader."""

    def __init__(self, pubsub: RedisConnectionPubSub) -> None:
        self.pubsub = pubsub
        self.channels: set[str] = set()
        self.reader: asyncio.Task[None] | None = None


class RedisPubSub:
    """``PubSub`` over Redis, with one subscriber connection per node and process (one node
    unless ``cluster``). Connections open on first use, in the running event loop; ``close``
    releases them."""

    def __init__(self, url: str, *, prefix: str = "roost:", client_name: str | None = None,
                 cluster: bool = False) -> None:
        self.url = url
        self.prefix = prefix
        self.client_name = client_name or f"{prefix}pubsub"  # (CLIENT LIST shows it)
        self.listeners: dict[str, set[_RedisSubscription]] = {}
        self.transport: Transport = (ShardedCluster(url, self.client_name) if cluster
                                     else OneServer(url, self.client_name))
        self.shards: dict[str, _Shard] = {}  # node -> its subscriber connection
        self._node_of: dict[str, str] = {}  # subscribed Redis channel -> its node
        self._lock = asyncio.Lock()  # orders (un)subscribing as the listeners change
        self._local_names: dict[str, str] = {}  # Redis channel -> our channel name
        self._confirming: dict[str, deque[asyncio.Future[None]]] = {}
        self._outbox: list[tuple[str, str]] = []
        self._sender: asyncio.Task[None] | None = None
        self._rehoming: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None

    def redis_channel(self, channel: str) -> str:
        """``timeline:42`` -> ``<prefix>timeline:{42}``: a trailing account id becomes the
        Redis Cluster hash tag. (Called once per follower of a fan-out step: no regex.)"""
        head, colon, tail = channel.rpartition(":")
        if colon and tail.isdecimal():
            return f"{self.prefix}{head}:{{{tail}}}"
        return self.prefix + channel

    def subscription(self) -> _RedisSubscription:
        return _RedisSubscription(self)

    # -- publishing ---------------------------------------------------------------------------

    async def listened(self, channels: Sequence[str]) -> set[str]:
        names = {self.redis_channel(c): c for c in channels}
        try:
            heard = await self.transport.listened(list(names))
        except Exception:  # (unknown: better to load and publish for nothing)
            log.warning("asking Redis who listens failed", exc_info=True)
            return set(channels)
        return {names[name] for name in heard if name in names}

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
                await self.transport.publish(batch)
            except Exception:
                log.exception("publishing %d messages to Redis failed", len(batch))

    # -- subscribing --------------------------------------------------------------------------

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
        await self.transport.start()
        names = [self.redis_channel(c) for c in channels]
        loop = asyncio.get_running_loop()
        futures = []
        for channel, name in zip(channels, names, strict=True):
            self._local_names[name] = channel
            future: asyncio.Future[None] = loop.create_future()
            self._confirming.setdefault(name, deque()).append(future)
            futures.append(future)
        try:
            await self._subscribe_on_nodes(names)
        except BaseException:
            for name, future in zip(names, futures, strict=True):
                self._unconfirm(name, future)
            raise
        return futures

    async def _subscribe_on_nodes(self, names: list[str]) -> None:
        """Subscribe ``names`` on their nodes (one call per node), starting readers as
        needed. Called with the lock held."""
        by_node: dict[str, list[str]] = {}
        for name in names:
            by_node.setdefault(self.transport.node_of(name), []).append(name)
        for node, group in by_node.items():
            shard = self.shards.get(node)
            if shard is None:
                shard = self.shards[node] = _Shard(self.transport.subscriber(node))
            await self.transport.subscribe(shard.pubsub, group)
            shard.channels.update(group)
            self._node_of.update(dict.fromkeys(group, node))
            if shard.reader is None or shard.reader.done():
                shard.reader = asyncio.create_task(self._read(shard))

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
            by_node: dict[str, list[str]] = {}
            for name in map(self.redis_channel, gone):
                self._local_names.pop(name, None)
                node = self._node_of.pop(name, None)
                if node is not None:
                    by_node.setdefault(node, []).append(name)
            for node, names in by_node.items():
                shard = self.shards[node]
                shard.channels.difference_update(names)
                try:
                    await self.transport.unsubscribe(shard.pubsub, names)
                except Exception:  # (the reader reconnects; a stray message finds no one)
                    log.warning("unsubscribing %d Redis channels failed", len(names),
                                exc_info=True)

    async def _read(self, shard: _Shard) -> None:
        failures = 0
        while True:
            try:
                message: dict[str, Any] | None = await shard.pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.warning("Redis pub/sub connection failed; reconnecting", exc_info=True)
                self._rehome_soon()  # (on a cluster, the node may be gone for good)
                await asyncio.sleep(min(5.0, 0.05 * 2**failures))
                continue
            failures = 0
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == self.transport.message_kind:
            channel = self._local_names.get(message["channel"])
            if channel is not None:
                for subscription in list(self.listeners.get(channel, ())):
                    subscription.deliver(channel, message["data"])
        elif kind == self.transport.confirm_kind:
            waiting = self._confirming.get(message["channel"])
            if waiting:
                future = waiting.popleft()
                if not waiting:
                    del self._confirming[message["channel"]]
                if not future.done():
                    future.set_result(None)
        elif kind == "sunsubscribe" and message["channel"] in self._node_of:
            self._rehome_soon()  # a node dropped a channel we want: its slot moved

    # -- the cluster changing under us ----------------------------------------------------

    def _rehome_soon(self) -> None:
        if self._rehoming is None or self._rehoming.done():
            self._rehoming = asyncio.create_task(self._rehome())

    async def _rehome(self) -> None:
        """Read the slot map again and subscribe every wanted channel on the node that owns
        it now, moving those whose node changed; close the connections left with no channel.
        Tries again a second later when that fails. Nothing moves on one server."""
        try:
            await self.transport.refresh()
        except Exception:
            log.warning("reading the Redis Cluster slot map failed", exc_info=True)
            self._retry_rehome()
            return
        async with self._lock:
            for name, node in list(self._node_of.items()):
                if self.transport.node_of(name) != node:
                    del self._node_of[name]
                    self.shards[node].channels.discard(name)
                    self.transport.forget(self.shards[node].pubsub, [name])
            wanted = {self.redis_channel(c) for c in self.listeners}
            moved = sorted(wanted.difference(self._node_of))  # (also any that failed before)
            if not moved:
                return
            log.info("subscribing %d Redis channels on their new nodes", len(moved))
            for node in [n for n, shard in self.shards.items() if not shard.channels]:
                await self._close_shard(self.shards.pop(node))
            try:
                await self._subscribe_on_nodes(moved)
            except Exception:
                log.warning("subscribing %d moved Redis channels failed", len(moved),
                            exc_info=True)
                self._retry_rehome()

    def _retry_rehome(self) -> None:
        if self._retry is None:
            def retry() -> None:
                self._retry = None
                self._rehome_soon()

            self._retry = asyncio.get_running_loop().call_later(REHOME_RETRY_SECONDS, retry)

    # -- lifecycle ----------------------------------------------------------------------------

    @staticmethod
    async def _close_shard(shard: _Shard) -> None:
        if shard.reader is not None and shard.reader is not asyncio.current_task():
            shard.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await shard.reader
        await shard.pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Send what is queued, then close every connection."""
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._rehoming is not None:
            self._rehoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rehoming
        for shard in self.shards.values():
            await self._close_shard(shard)
        self.shards.clear()
        await self.transport.close()
        for waiting in self._confirming.values():
            for future in waiting:
                future.cancel()
        self._confirming.clear()
        self._local_names.clear()
        self._node_of.clear()
        self.listeners.clear()
