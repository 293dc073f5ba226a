"""What only a Redis Cluster does, on a real 3-node cluster (``tests/redis_cluster_support.py``):
timelines of different accounts on different nodes, a fan-out batch split into one script
call per node and complete, ``enforce_cap`` on every node, sharded pub/sub with one
subscriber connection per node, and channels that follow their slot when it moves. The shared
suites (test_stores.py ``HOME_STORES``, test_pubsub.py) also run on the cluster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from roost.domain.models import Page, TimelineEntry
from roost.ids import new_id
from roost.storage.database import Tx
from roost.storage.redis.pubsub import RedisPubSub
from roost.storage.redis.timelines import RedisHomeTimelineStore, encode
from roost.storage.redis.topology import ClusterScript
from tests.storage.test_pubsub import next_message, nothing_for, run

# Outside the database writer's batches: the store reads only the transaction's ``info``, where
# a writer's batch would collect its writes (``database.deferred``); here it writes at once.
NO_TX = cast(Tx, SimpleNamespace(info={}))


@pytest.fixture
def cluster(redis_cluster_url: str) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster_url)
    yield client
    client.close()


@pytest.fixture
def nodes(redis_cluster_url: str, cluster: RedisCluster) -> Iterator[dict[str, redis.Redis]]:
    """A plain client of each primary, by node name."""
    clients = {n.name: redis.Redis(host=n.host, port=n.port, decode_responses=True)
               for n in cluster.get_primaries()}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def store(cluster: RedisCluster, cluster_prefix: str) -> RedisHomeTimelineStore:
    return RedisHomeTimelineStore(cluster, cap=800, prefix=cluster_prefix)


def keys_per_node(nodes: dict[str, redis.Redis], prefix: str) -> dict[str, set[str]]:
    return {name: set(client.scan_iter(match=f"{prefix}*", count=1000))
            for name, client in nodes.items()}


def test_accounts_timelines_land_on_every_node(store: RedisHomeTimelineStore,
                                               nodes: dict[str, redis.Redis],
                                               cluster: RedisCluster) -> None:
    entry = TimelineEntry(new_id(), 1)
    for account in range(1, 31):
        store.add_many(NO_TX, account, [entry])
    found = keys_per_node(nodes, store.prefix)
    assert len(nodes) == 3 and all(found.values())  # every node holds some timelines
    assert set().union(*found.values()) == {store.key(a) for a in range(1, 31)}
    for name, keys in found.items():  # each on the node that owns its slot ({account})
        assert {cluster.get_node_from_key(k).name for k in keys} == {name}
    assert key_slot(store.key(7).encode()) == key_slot(b"7")


def test_a_fanout_batch_is_one_script_call_per_node_and_complete(
        store: RedisHomeTimelineStore, nodes: dict[str, redis.Redis],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 followers (nearly as many slots, all three nodes): three script calls, every
    timeline gets the entry, and removing it reaches them all."""
    sent: list[int] = []
    send = ClusterScript._send

    def counted(self: ClusterScript, client: redis.Redis, keys: list[str], args: Any) -> int:
        sent.append(len(keys))
        return send(self, client, keys, args)

    script = cast(ClusterScript, store._add)
    for node in store.topology.primaries():  # (so that no node answers NOSCRIPT below)
        node.script_load(script.text)
    monkeypatch.setattr(ClusterScript, "_send", counted)
    followers = list(range(50_000, 52_000))
    entry = TimelineEntry(new_id(), 5)
    store.add(NO_TX, followers, entry)
    assert len(sent) == 3 and sum(sent) == 2000  # one script call per node
    assert len({key_slot(store.key(a).encode()) for a in followers}) > 1900  # (not per slot)
    found = keys_per_node(nodes, store.prefix)
    assert all(len(keys) > 500 for keys in found.values())
    pipe = store.client.pipeline(transaction=False)  # (redis-py batches it per node)
    for account in followers:
        pipe.zrange(store.key(account), 0, -1)
    assert pipe.execute() == [[encode(entry)]] * len(followers)
    store.remove(NO_TX, followers, entry.status_id)
    assert not any(keys_per_node(nodes, store.prefix).values())


def test_enforce_cap_trims_on_every_node(cluster: RedisCluster, cluster_prefix: str,
                                         nodes: dict[str, redis.Redis]) -> None:
    store = RedisHomeTimelineStore(cluster, cap=5, prefix=cluster_prefix)
    accounts = list(range(1, 31))
    entries = [TimelineEntry(new_id(), 9) for _ in range(4)]
    for entry in entries:
        store.add(NO_TX, accounts, entry)
    assert store.enforce_cap(NO_TX, 2) == 30
    assert all(len(store.page(NO_TX, a, Page())) == 2 for a in accounts)
    assert store.enforce_cap(NO_TX, 0) == 30
    assert not any(keys_per_node(nodes, cluster_prefix).values())


def test_a_node_that_lost_its_scripts_gets_them_again(store: RedisHomeTimelineStore) -> None:
    for node in store.topology.primaries():
        node.script_flush()
    entry = TimelineEntry(new_id(), 3)
    store.add(NO_TX, list(range(1, 31)), entry)
    assert all(store.page(NO_TX, a, Page()) == [entry] for a in range(1, 31))


# -- sharded pub/sub -------------------------------------------------------------------------


def test_one_subscriber_connection_per_node(redis_cluster_url: str, cluster_prefix: str,
                                            nodes: dict[str, redis.Redis]) -> None:
    name = f"{cluster_prefix}hub"
    channels = [f"timeline:{i}" for i in range(200)]

    async def scenario() -> None:
        pubsub = RedisPubSub(redis_cluster_url, prefix=cluster_prefix, client_name=name,
                             cluster=True)
        try:
            subs = [pubsub.subscription() for _ in range(3)]
            for sub in subs:
                await sub.add(channels)
            subscribers = {node: [int(c["ssub"]) for c in client.client_list()
                                  if c.get("name") == name and int(c["ssub"])]
                           for node, client in nodes.items()}
            # one connection per node, holding that node's share of the 200 channels
            assert all(len(counts) == 1 for counts in subscribers.values())
            assert sum(counts[0] for counts in subscribers.values()) == 200
            for i in range(200):
                await pubsub.publish(f"timeline:{i}", str(i))
            for sub in subs:
                got = {await next_message(sub) for _ in range(200)}
                assert got == {(f"timeline:{i}", str(i)) for i in range(200)}
            for sub in subs:
                await sub.close()
            await asyncio.sleep(0.1)  # (SUNSUBSCRIBE is not awaited)
            assert not any(int(c["ssub"]) for client in nodes.values()
                           for c in client.client_list() if c.get("name") == name)
        finally:
            await pubsub.close()

    run(scenario())


def test_resubscribes_by_slot_after_losing_a_node_connection(
        redis_cluster_url: str, cluster_prefix: str, nodes: dict[str, redis.Redis]) -> None:
    """Kill one node's subscriber connection: the hub reconnects and resubscribes the many
    slots that node holds (one SSUBSCRIBE per slot: one for all would be refused)."""
    name = f"{cluster_prefix}hub"
    channels = [f"timeline:{i}" for i in range(60)]

    async def scenario() -> None:
        pubsub = RedisPubSub(redis_cluster_url, prefix=cluster_prefix, client_name=name,
                             cluster=True)
        try:
            sub = pubsub.subscription()
            await sub.add(channels)
            client = next(iter(nodes.values()))
            victim = [c for c in client.client_list() if c.get("name") == name
                      and int(c["ssub"])]
            assert len(victim) == 1 and int(victim[0]["ssub"]) > 1
            assert client.client_kill_filter(_id=victim[0]["id"]) == 1
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if [int(c["ssub"]) for c in client.client_list()
                        if c.get("name") == name and int(c["ssub"])] == [int(victim[0]["ssub"])]:
                    break
            for i in range(60):
                await pubsub.publish(f"timeline:{i}", "again")
            got = {await next_message(sub) for _ in range(60)}
            assert got == {(c, "again") for c in channels}
            assert await nothing_for(sub, 0.1)
            await sub.close()
        finally:
            await pubsub.close()

    run(scenario())


def _move_slot(nodes: dict[str, redis.Redis], slot: int, source: str, target: str) -> None:
    """Give an empty ``slot`` from ``source`` to ``target`` (the documented resharding steps,
    without keys to migrate), telling every node."""
    ids = {name: client.cluster("myid") for name, client in nodes.items()}
    nodes[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
    nodes[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
    for name in (target, source, *(n for n in nodes if n not in (source, target))):
        nodes[name].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])


def test_channels_and_timelines_follow_a_moved_slot(
        redis_cluster_url: str, cluster_prefix: str, cluster: RedisCluster,
        nodes: dict[str, redis.Redis], store: RedisHomeTimelineStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A slot moves to another node: the old node unsubscribes us, the hub finds the new
    owner and subscribes there; publishing and fan-out with the old slot map get MOVED,
    refresh, and reach the new owner."""
    account = next(a for a in range(10**6, 10**6 + 1000)  # (a slot with no keys to migrate)
                   if cluster.cluster_countkeysinslot(key_slot(str(a).encode())) == 0)
    slot = key_slot(str(account).encode())
    source = cluster.get_node_from_key(str(account)).name
    target = next(n for n in nodes if n != source)
    neighbour = next(a for a in range(1, 100) if cluster.get_node_from_key(str(a)).name == source)
    store.page(NO_TX, account, Page())  # (the store reads the slot map before the move)
    channel = f"timeline:{account}"
    entry = TimelineEntry(new_id(), 4)

    async def scenario() -> None:
        pubsub = RedisPubSub(redis_cluster_url, prefix=cluster_prefix, cluster=True)
        other = RedisPubSub(redis_cluster_url, prefix=cluster_prefix, cluster=True)
        try:
            sub = pubsub.subscription()
            await sub.add([channel])
            await other.publish(channel, "before")  # (``other`` reads the slot map now)
            assert await next_message(sub) == (channel, "before")
            _move_slot(nodes, slot, source, target)
            try:
                deadline = time.monotonic() + 5
                while pubsub._node_of.get(pubsub.redis_channel(channel)) != target:
                    assert time.monotonic() < deadline, "the channel did not move"
                    await asyncio.sleep(0.05)
                await other.publish(channel, "after")  # MOVED, then sent again to the target
                assert await next_message(sub) == (channel, "after")
                # the store's client still has the old map: the call to the source node
                # declares the neighbour's key (still there) and meets the moved one
                refreshes: list[int] = []
                initialize = store.client.nodes_manager.initialize
                monkeypatch.setattr(store.client.nodes_manager, "initialize",
                                    lambda: refreshes.append(1) or initialize())
                store.add(NO_TX, [neighbour, account], entry)
                assert refreshes == [1]  # ("non local key": the map is refreshed, sent again)
                assert nodes[target].exists(store.key(account)) == 1
                assert nodes[source].exists(store.key(neighbour)) == 1
                store.add(NO_TX, [account], entry)  # (MOVED, had the map been stale)
            finally:
                store.remove(NO_TX, [neighbour, account], entry.status_id)
                _move_slot(nodes, slot, target, source)
            await sub.close()
        finally:
            await pubsub.close()
            await other.close()

    run(scenario())
