"""How the Redis pub/sub hub (``pubsub.py``) reaches Redis: one server, or a Redis Cluster.

``OneServer`` is plain pub/sub: SUBSCRIBE and PUBLISH on the one server, one subscriber
connection and one publishing connection.

``ShardedCluster`` is sharded pub/sub (Redis 7): a channel lives on the node that owns its
slot, as a key would (``roost:timeline:{42}`` hashes on ``42``), SSUBSCRIBE must be sent to that
node and SPUBLISH reaches only that node's subscribers. Classic PUBLISH would work on a cluster
too, but every node forwards every message to every other node over the cluster bus, so its
cost grows with the cluster; sharded messages never leave their node. Hence one subscriber
connection per node that holds channels someone listens to, and one pipeline of SPUBLISH per
node for each batch of messages (sent to the nodes concurrently).

Why not redis-py's own ``ClusterPubSub``: its reader polls the per-node connections in turn
with a timeout, so an idle node delays the others' messages, and it offers no way to wait for
the confirmation of a subscription. The hub instead runs one blocking reader per node and
waits for each SSUBSCRIBE's confirmation, as it does on one server. The slot map comes from
redis-py's asyncio ``RedisCluster`` (its nodes manager), refreshed when Redis answers MOVED, a
node's connection fails, or a node unsubscribes us because a slot moved away (``refresh``).

Channels of one slot share one SSUBSCRIBE (Redis refuses one over several slots), also when
redis-py resubscribes after a reconnect (``_ShardPubSub``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError

from roost.storage.redis.topology import node_url

log = logging.getLogger(__name__)


class Transport(Protocol):
    """What the hub needs from Redis, whatever its shape. ``node_of`` names the node a
    channel lives on (one name for one server); the message kinds are redis-py's."""

    confirm_kind: str  # a subscription's confirmation
    message_kind: str  # a published message

    async def start(self) -> None: ...
    def node_of(self, channel: str) -> str: ...
    def subscriber(self, node: str) -> PubSub: ...
    async def subscribe(self, pubsub: PubSub, channels: list[str]) -> None: ...
    async def unsubscribe(self, pubsub: PubSub, channels: list[str]) -> None: ...
    def forget(self, pubsub: PubSub, channels: list[str]) -> None: ...
    async def publish(self, batch: list[tuple[str, str]]) -> None: ...
    async def listened(self, channels: list[str]) -> set[str]: ...
    async def refresh(self) -> None: ...
    async def close(self) -> None: ...


# A batch this large asks Redis which of its channels have subscribers before publishing.
# A post's fan-out publishes one message per follower (the status, ~2 KB each), mostly to
# channels no one listens on; asking first (PUBSUB NUMSUB, a few bytes per channel) cost one
# round trip and saved the worker 42% of its time in the posting benchmark (BENCHMARKS.md).
# A subscriber that arrives between the question and the publish misses that message, as
# one arriving just after the publish would: streaming is at most once either way.
ASK_FIRST_ABOVE = 8


async def heard_only(client: aioredis.Redis,
                     items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The messages of ``items`` whose channel has a subscriber now. (One server only: on a
    cluster PUBSUB SHARDNUMSUB takes the channels of one slot per call, and a fan-out's
    channels are spread over nearly as many slots as followers, so there it would cost more
    round trips than it saves; a cluster publishes every message.)"""
    if len(items) <= ASK_FIRST_ABOVE:
        return items
    channels = list(dict.fromkeys(channel for channel, _ in items))
    counts: list[tuple[Any, Any]] = await client.pubsub_numsub(*channels)
    heard = {str(channel) for channel, count in counts if int(count) > 0}
    return [item for item in items if item[0] in heard]


def by_slot(channels: Iterable[str]) -> list[list[str]]:
    slots: dict[int, list[str]] = {}
    for channel in channels:
        slots.setdefault(key_slot(channel.encode()), []).append(channel)
    return list(slots.values())


def _once_more() -> Retry:
    """A command that met a dead connection is sent once more, on a new one: after Redis
    restarted, every pooled connection is dead and the first message published on each would
    be lost (a home stream's ``roost.revive`` among them). A publish whose reply alone was lost
    is sent twice; clients see the message again, which is better than never."""
    return Retry(NoBackoff(), 1)


class OneServer:
    """Classic pub/sub on one Redis server."""

    confirm_kind = "subscribe"
    message_kind = "message"
    NODE = "redis"

    def __init__(self, url: str, client_name: str) -> None:
        self.url = url
        self.client_name = client_name
        self._client: aioredis.Redis | None = None

    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url, decode_responses=True, client_name=self.client_name,
                socket_keepalive=True, retry=_once_more())
        return self._client

    async def start(self) -> None:
        """Nothing to learn first: connections open on first use."""

    def node_of(self, channel: str) -> str:
        return self.NODE

    def subscriber(self, node: str) -> PubSub:
        return self.client().pubsub()

    async def subscribe(self, pubsub: PubSub, channels: list[str]) -> None:
        await pubsub.subscribe(*channels)

    async def unsubscribe(self, pubsub: PubSub, channels: list[str]) -> None:
        await pubsub.unsubscribe(*channels)

    def forget(self, pubsub: PubSub, channels: list[str]) -> None:
        for channel in channels:
            pubsub.channels.pop(channel, None)

    async def publish(self, batch: list[tuple[str, str]]) -> None:
        batch = await heard_only(self.client(), batch)
        if not batch:
            return
        pipe = self.client().pipeline(transaction=False)
        for channel, message in batch:
            pipe.publish(channel, message)
        await pipe.execute()

    async def listened(self, channels: list[str]) -> set[str]:
        """The channels with a subscriber on any process (PUBSUB NUMSUB)."""
        if not channels:
            return set()
        counts: list[tuple[Any, Any]] = await self.client().pubsub_numsub(*channels)
        return {str(channel) for channel, count in counts if int(count) > 0}

    async def refresh(self) -> None:
        """One server: nothing moves."""

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class _ShardPubSub(PubSub):
    """A node's subscriber connection that, on reconnecting, resubscribes its shard channels
    one SSUBSCRIBE per slot (redis-py would send one for all, which Redis refuses)."""

    async def on_connect(self, connection: Any) -> None:
        channels, self.shard_channels = self.shard_channels, {}
        await super().on_connect(connection)
        for group in by_slot(channels):
            await self.ssubscribe(*group)


class ShardedCluster:
    """Sharded pub/sub on a Redis Cluster: each channel on the node that owns its slot."""

    confirm_kind = "ssubscribe"
    message_kind = "smessage"

    def __init__(self, url: str, client_name: str) -> None:
        self.url = url
        self.client_name = client_name
        self._cluster: RedisCluster | None = None
        self._starting: asyncio.Future[None] | None = None
        self._nodes: dict[str, aioredis.Redis] = {}  # node name -> a client of that node

    async def start(self) -> None:
        """Read the slot map, once (concurrent callers wait for the same reading)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._connect())
        try:
            await asyncio.shield(self._starting)
        except Exception:
            self._starting = None  # (the next call tries again)
            raise

    async def _connect(self) -> None:
        cluster = RedisCluster.from_url(self.url, client_name=self.client_name)
        await cluster.initialize()
        self._cluster = cluster

    def _manager(self) -> Any:
        if self._cluster is None:
            raise RuntimeError("ShardedCluster.start() has not completed")
        return self._cluster.nodes_manager

    def node_of(self, channel: str) -> str:
        name: str = self._manager().get_node_from_slot(key_slot(channel.encode())).name
        return name

    def client(self, node: str) -> aioredis.Redis:
        client = self._nodes.get(node)
        if client is None:
            host, _, port = node.rpartition(":")
            client = aioredis.Redis.from_url(
                node_url(self.url, host.strip("[]"), int(port)), decode_responses=True,
                client_name=self.client_name, socket_keepalive=True, retry=_once_more())
            self._nodes[node] = client
        return client

    def subscriber(self, node: str) -> PubSub:
        return _ShardPubSub(self.client(node).connection_pool)

    async def subscribe(self, pubsub: PubSub, channels: list[str]) -> None:
        for group in by_slot(channels):
            await pubsub.ssubscribe(*group)

    async def unsubscribe(self, pubsub: PubSub, channels: list[str]) -> None:
        for group in by_slot(channels):
            await pubsub.sunsubscribe(*group)

    def forget(self, pubsub: PubSub, channels: list[str]) -> None:
        """Stop resubscribing ``channels`` on this connection (their slot moved away)."""
        for channel in channels:
            pubsub.shard_channels.pop(channel, None)

    async def publish(self, batch: list[tuple[str, str]]) -> None:
        """SPUBLISH every message on its channel's node, one pipeline per node. Messages a
        node refused with MOVED/ASK were not published: they go again, once, after the slot
        map is refreshed."""
        await self.start()
        refused = await self._publish(batch)
        if refused:
            await self.refresh()
            again = await self._publish(refused)
            if again:
                log.warning("%d messages lost: their slots are moving", len(again))

    async def _publish(self, batch: list[tuple[str, str]]) -> list[tuple[str, str]]:
        nodes: dict[str, list[tuple[str, str]]] = {}
        for item in batch:
            nodes.setdefault(self.node_of(item[0]), []).append(item)
        results = await asyncio.gather(*(self._publish_on(node, items)
                                          for node, items in nodes.items()))
        return [item for refused in results for item in refused]

    async def _publish_on(self, node: str,
                          items: list[tuple[str, str]]) -> list[tuple[str, str]]:
        pipe = self.client(node).pipeline(transaction=False)
        for channel, message in items:
            pipe.spublish(channel, message)
        replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and not isinstance(reply, MovedError | AskError):
                raise reply
        return [item for item, reply in zip(items, replies, strict=True)
                if isinstance(reply, MovedError | AskError)]

    async def listened(self, channels: list[str]) -> set[str]:
        """All of them: SHARDNUMSUB answers for one slot per call (see ``listened``)."""
        return set(channels)

    async def refresh(self) -> None:
        """Read the slot map again (after MOVED, a failed node, or a moved slot)."""
        await self.start()
        await self._manager().initialize()

    async def close(self) -> None:
        for client in self._nodes.values():
            await client.aclose()
        self._nodes.clear()
        if self._cluster is not None:
            await self._cluster.aclose()
            self._cluster = None
        self._starting = None
