"""The pub/sub behind streaming: one suite for the in-process ``LocalPubSub`` and for
``RedisPubSub`` (what every web process shares in production), on one Redis server and on a
3-node Redis Cluster (sharded pub/sub), then what only Redis does (cluster specifics:
test_redis_cluster.py)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import redis

from roost.storage.pubsub import QUEUE_LIMIT, LocalPubSub, Overflowed, PubSub, Subscription
from roost.storage.redis.pubsub import RedisPubSub

Hub = Callable[[], PubSub]


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 30))


async def next_message(subscription: Subscription) -> tuple[str, str]:
    return await asyncio.wait_for(subscription.get(), 5)


async def nothing_for(subscription: Subscription, seconds: float = 0.2) -> bool:
    try:
        await asyncio.wait_for(subscription.get(), seconds)
    except TimeoutError:
        return True
    return False


@pytest.fixture(params=["local", "redis", "redis-cluster"])
def hub(request: pytest.FixtureRequest) -> Hub:
    """Makes the pub/sub under test (inside the test's event loop)."""
    if request.param == "local":
        return LocalPubSub
    if request.param == "redis-cluster":
        url = request.getfixturevalue("redis_cluster_url")
        prefix = request.getfixturevalue("cluster_prefix")
        return lambda: RedisPubSub(url, prefix=prefix, cluster=True)
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisPubSub(url, prefix=prefix, client_name=f"{prefix}hub")


def test_delivery_by_channel(hub: Hub) -> None:
    async def scenario() -> None:
        pubsub = hub()
        try:
            a, b = pubsub.subscription(), pubsub.subscription()
            await a.add(["timeline:42", "public"])
            await b.add(["public"])
            await pubsub.publish("timeline:42", "one")
            await pubsub.publish("public", "two")
            await pubsub.publish("timeline:4", "nobody")
            await pubsub.publish("hashtag:birds", "nobody")
            # (on a cluster, channels on different nodes are not ordered with each other)
            assert {await next_message(a), await next_message(a)} == {
                ("timeline:42", "one"), ("public", "two")}
            assert await next_message(b) == ("public", "two")
            assert await nothing_for(a) and await nothing_for(b)
            await a.close()
            await b.close()
        finally:
            await pubsub.close()

    run(scenario())


def test_unsubscribe_and_close(hub: Hub) -> None:
    async def scenario() -> None:
        pubsub = hub()
        try:
            sub, other = pubsub.subscription(), pubsub.subscription()
            await sub.add(["x", "y", "author:7"])
            await other.add(["x"])
            await sub.remove(["x", "author:7", "never-added"])
            await pubsub.publish("x", "1")
            await pubsub.publish("author:7", "2")
            await pubsub.publish("y", "3")
            assert await next_message(sub) == ("y", "3")  # not x's, nor author:7's
            assert await next_message(other) == ("x", "1")
            await sub.add(["x"])
            await sub.add(["x"])  # twice is once
            await pubsub.publish("x", "4")
            assert await next_message(sub) == ("x", "4")
            assert await next_message(other) == ("x", "4")
            assert await nothing_for(sub)
            await sub.close()
            await pubsub.publish("x", "5")
            await pubsub.publish("y", "6")
            assert await next_message(other) == ("x", "5")
            assert await nothing_for(sub)
            await other.close()
        finally:
            await pubsub.close()

    run(scenario())


def test_a_listener_too_far_behind_is_dropped(hub: Hub) -> None:
    async def scenario() -> None:
        pubsub = hub()
        try:
            slow, fast, marker = (pubsub.subscription() for _ in range(3))
            busy, done = "busy:7", "marker:7"  # (one hash tag: one cluster node, one order)
            await slow.add([busy])
            await fast.add([busy])
            await marker.add([done])

            async def publish_busy(count: int) -> None:
                for i in range(count):
                    await pubsub.publish(busy, str(i))
                # what one connection carries arrives in order: once the marker is here,
                # every "busy" message has been handed to the listeners
                await pubsub.publish(done, "done")
                assert await next_message(marker) == (done, "done")

            await publish_busy(QUEUE_LIMIT)  # as many as a queue holds: all kept
            got = [await next_message(slow) for _ in range(QUEUE_LIMIT)]
            assert got == [(busy, str(i)) for i in range(QUEUE_LIMIT)]
            for i in range(QUEUE_LIMIT):
                assert await next_message(fast) == (busy, str(i))
            await publish_busy(QUEUE_LIMIT // 2)
            assert [await next_message(fast) for _ in range(QUEUE_LIMIT // 2)] == [
                (busy, str(i)) for i in range(QUEUE_LIMIT // 2)]
            await publish_busy(QUEUE_LIMIT // 2 + 1)  # slow is one past the limit now
            with pytest.raises(Overflowed):
                await next_message(slow)
            assert await next_message(fast) == (busy, "0")  # the others go on
            await slow.close()
            await fast.close()
            await marker.close()
        finally:
            await pubsub.close()

    run(scenario())


def test_many_listeners_on_one_channel(hub: Hub) -> None:
    async def scenario() -> None:
        pubsub = hub()
        try:
            subs = [pubsub.subscription() for _ in range(300)]
            for i, sub in enumerate(subs):
                await sub.add(["public", f"timeline:{i}"])
            await pubsub.publish("public", "all")
            await pubsub.publish("timeline:7", "one")
            for sub in subs[:7] + subs[8:]:
                assert await next_message(sub) == ("public", "all")
            # (on a cluster, channels on different nodes are not ordered with each other)
            assert {await next_message(subs[7]), await next_message(subs[7])} == {
                ("public", "all"), ("timeline:7", "one")}
            assert await nothing_for(subs[8], 0.05)
            for sub in subs:
                await sub.close()
        finally:
            await pubsub.close()

    run(scenario())


# -- Redis only ------------------------------------------------------------------------------


def _connections(client: redis.Redis, name: str) -> list[dict[str, Any]]:
    return [c for c in client.client_list() if c.get("name") == name]


def _all_closed(client: redis.Redis, name: str) -> bool:
    """The server has seen every connection named ``name`` go (it notices a moment later)."""
    for _ in range(100):
        if not _connections(client, name):
            return True
        time.sleep(0.05)
    return False


def test_redis_one_connection_subscribes_for_every_listener(redis_url: str,
                                                            redis_prefix: str) -> None:
    name = f"{redis_prefix}hub"
    admin = redis.Redis.from_url(redis_url, decode_responses=True)

    async def scenario() -> None:
        pubsub = RedisPubSub(redis_url, prefix=redis_prefix, client_name=name)
        try:
            subs = [pubsub.subscription() for _ in range(1000)]
            for i, sub in enumerate(subs):
                await sub.add(["public", f"timeline:{i}"])
            public = f"{redis_prefix}public"
            assert admin.pubsub_numsub(public, f"{redis_prefix}timeline:{{999}}") == [
                (public, 1), (f"{redis_prefix}timeline:{{999}}", 1)]
            await pubsub.publish("public", "hello")
            for sub in subs:
                assert await next_message(sub) == ("public", "hello")
            connections = _connections(admin, name)
            assert len(connections) == 2  # one subscriber, one publisher
            assert sorted(int(c["sub"]) for c in connections) == [0, 1001]
            for sub in subs[:999]:
                await sub.close()
            await asyncio.sleep(0.1)  # (UNSUBSCRIBE is not awaited)
            assert admin.pubsub_numsub(public) == [(public, 1)]
            await subs[999].close()
            await asyncio.sleep(0.1)
            assert admin.pubsub_numsub(public) == [(public, 0)]
        finally:
            await pubsub.close()
        assert _all_closed(admin, name)

    try:
        run(scenario())
    finally:
        admin.close()


def test_redis_reaches_every_process(redis_url: str, redis_prefix: str) -> None:
    """Two web processes (two RedisPubSub): what one publishes, the other's listeners get,
    also when published right after ``add`` returns, from any connection."""
    raw = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        web1 = RedisPubSub(redis_url, prefix=redis_prefix, client_name=f"{redis_prefix}1")
        web2 = RedisPubSub(redis_url, prefix=redis_prefix, client_name=f"{redis_prefix}2")
        try:
            listener = web2.subscription()
            await listener.add(["timeline:42"])
            raw.publish(f"{redis_prefix}timeline:{{42}}", "direct")
            await web1.publish("timeline:42", "from web1")
            assert await next_message(listener) == ("timeline:42", "direct")
            assert await next_message(listener) == ("timeline:42", "from web1")
            await listener.close()
        finally:
            await web1.close()
            await web2.close()

    try:
        run(scenario())
    finally:
        raw.close()


def test_redis_resubscribes_after_losing_its_connection(redis_url: str,
                                                        redis_prefix: str) -> None:
    name = f"{redis_prefix}hub"
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    channel = f"{redis_prefix}timeline:{{5}}"

    async def scenario() -> None:
        pubsub = RedisPubSub(redis_url, prefix=redis_prefix, client_name=name)
        try:
            sub = pubsub.subscription()
            await sub.add(["timeline:5"])
            subscriber = [c for c in _connections(admin, name) if int(c["sub"])]
            assert len(subscriber) == 1
            assert admin.client_kill_filter(_id=subscriber[0]["id"]) == 1
            await pubsub.publish("timeline:5", "lost")  # (maybe: pub/sub is at-most-once)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if admin.pubsub_numsub(channel) == [(channel, 1)]:
                    break
            await pubsub.publish("timeline:5", "again")
            received = await next_message(sub)
            if received == ("timeline:5", "lost"):
                received = await next_message(sub)
            assert received == ("timeline:5", "again")
            assert [c["id"] for c in _connections(admin, name) if int(c["sub"])] != [
                subscriber[0]["id"]]
            await sub.close()
        finally:
            await pubsub.close()

    try:
        run(scenario())
    finally:
        admin.close()


def test_redis_channel_names_carry_hash_tags() -> None:
    pubsub = RedisPubSub("redis://unused", prefix=f"p{secrets.token_hex(2)}:")
    p = pubsub.prefix
    assert pubsub.redis_channel("timeline:42") == f"{p}timeline:{{42}}"
    assert pubsub.redis_channel("roost:followers:7") == f"{p}roost:followers:{{7}}"
    assert pubsub.redis_channel("public") == f"{p}public"
    assert pubsub.redis_channel("hashtag:local:birds") == f"{p}hashtag:local:birds"
    assert pubsub.redis_channel("hashtag:2026") == f"{p}hashtag:{{2026}}"
    assert pubsub.redis_channel("42") == f"{p}42"


def test_a_large_batch_is_published_only_where_someone_listens(redis_url: str,
                                                               redis_prefix: str) -> None:
    """A fan-out publishes one message per follower; on one server, channels without a
    subscriber anywhere (PUBSUB NUMSUB) are skipped rather than sent a copy of the status."""
    async def scenario() -> None:
        pubsub = RedisPubSub(redis_url, prefix=redis_prefix)
        watcher = redis.Redis.from_url(redis_url, decode_responses=True).pubsub()
        try:
            listening = pubsub.subscription()
            await listening.add(["timeline:3", "timeline:17"])
            watcher.psubscribe(f"{redis_prefix}*")  # (a pattern: not counted by NUMSUB)
            assert watcher.get_message(timeout=5)["type"] == "psubscribe"
            for account in range(20):  # queued in one tick: one batch
                await pubsub.publish(f"timeline:{account}", f"post for {account}")
            assert {await next_message(listening), await next_message(listening)} == {
                ("timeline:3", "post for 3"), ("timeline:17", "post for 17")}
            seen = []
            while (message := watcher.get_message(timeout=0.5)) is not None:
                seen.append(message["channel"])
            assert sorted(seen) == [f"{redis_prefix}timeline:{{17}}",
                                    f"{redis_prefix}timeline:{{3}}"]
            await listening.close()
        finally:
            watcher.close()
            await pubsub.close()

    run(scenario())


def test_listened_names_the_channels_with_a_listener(hub: Hub) -> None:
    """What the publisher asks before loading a notification or a delivery to render: a
    superset is allowed (a cluster names every channel), a listened channel is never left
    out."""
    async def scenario() -> None:
        pubsub = hub()
        try:
            listening = pubsub.subscription()
            await listening.add(["timeline:42", "notifications:7"])
            asked = ["timeline:42", "timeline:43", "notifications:7", "notifications:8"]
            heard = await pubsub.listened(asked)
            assert {"timeline:42", "notifications:7"} <= heard <= set(asked)
            # (fewer asked than listened, and many more: each way round)
            assert await pubsub.listened(["timeline:42"]) == {"timeline:42"}
            many = [f"timeline:{n}" for n in range(1_000)]
            assert {"timeline:42"} <= await pubsub.listened(many) <= set(many)
            await listening.close()
            assert await pubsub.listened([]) == set()
        finally:
            await pubsub.close()

    run(scenario())
