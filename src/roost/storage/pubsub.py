"""Publish/subscribe for live events: channels carry ready-to-send text messages.

The embedded implementation delivers within the process; the production one (Redis pub/sub)
delivers to every web process. Channel names carry the owning account id (``timeline:42``),
which is also the Redis Cluster hash tag in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Protocol

from roost.settings import Settings

QUEUE_LIMIT = 1000  # a listener this far behind is dropped rather than slowing everyone


class Subscription(Protocol):
    async def add(self, channels: Iterable[str]) -> None: ...
    async def remove(self, channels: Iterable[str]) -> None: ...
    async def get(self) -> tuple[str, str]: ...
    async def close(self) -> None: ...


class PubSub(Protocol):
    async def publish(self, channel: str, message: str) -> None: ...
    async def listened(self, channels: Sequence[str]) -> set[str]:
        """Which of ``channels`` someone may be listening on now (a superset is allowed):
        the publisher skips loading and rendering what no one would receive."""
        ...
    def subscription(self) -> Subscription: ...
    async def close(self) -> None: ...


class Overflowed(Exception):
    """The listener fell too far behind and was dropped."""


class Inbox:
    """One listener's queue of (channel, message); a listener that falls QUEUE_LIMIT behind
    is dropped (its next ``get`` raises Overflowed) rather than slowing everyone down."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(QUEUE_LIMIT)
        self.channels: set[str] = set()
        self.overflowed = False

    def deliver(self, channel: str, message: str) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait((channel, message))
        except asyncio.QueueFull:
            self.overflowed = True
            self._queue = asyncio.Queue(1)
            self._queue.put_nowait(None)

    async def get(self) -> tuple[str, str]:
        item = await self._queue.get()
        if item is None:
            raise Overflowed()
        return item


class _LocalSubscription(Inbox):
    def __init__(self, hub: LocalPubSub) -> None:
        super().__init__()
        self._hub = hub

    async def add(self, channels: Iterable[str]) -> None:
        for channel in channels:
            self.channels.add(channel)
            self._hub.listeners.setdefault(channel, set()).add(self)

    async def remove(self, channels: Iterable[str]) -> None:
        for channel in channels:
            self.channels.discard(channel)
            listeners = self._hub.listeners.get(channel)
            if listeners is not None:
                listeners.discard(self)
                if not listeners:
                    del self._hub.listeners[channel]

    async def close(self) -> None:
        await self.remove(list(self.channels))


class LocalPubSub:
    """In-process pub/sub for the embedded server (one event loop)."""

    def __init__(self) -> None:
        self.listeners: dict[str, set[_LocalSubscription]] = {}

    async def publish(self, channel: str, message: str) -> None:
        for subscription in list(self.listeners.get(channel, ())):
            subscription.deliver(channel, message)

    async def listened(self, channels: Sequence[str]) -> set[str]:
        if len(self.listeners) < len(channels):  # (a fan-out step asks of thousands)
            wanted = set(channels)
            return {channel for channel, subscriptions in self.listeners.items()
                    if subscriptions and channel in wanted}
        return {channel for channel in channels if self.listeners.get(channel)}

    def subscription(self) -> _LocalSubscription:
        return _LocalSubscription(self)

    async def close(self) -> None:
        """Nothing to release: subscriptions end with their clients."""


def pubsub_for(settings: Settings) -> PubSub:
    """In-process pub/sub, or Redis's with ``ROOST_REDIS_URL`` (so that every web process
    streams every event); sharded pub/sub on a Redis Cluster with ``ROOST_REDIS_CLUSTER``."""
    if settings.redis_url:
        from roost.storage.redis.pubsub import RedisPubSub

        return RedisPubSub(settings.redis_url, prefix=settings.redis_prefix,
                           cluster=settings.redis_cluster)
    return LocalPubSub()
