"""What only the Redis home timeline store does: its key layout, the cap kept on every write,
one script call per fan-out batch, and writes that a rolled-back transaction leaves behind.
Its Protocol behaviour is checked with the SQL store's in test_stores.py (``HOME_STORES``)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis

from roost.domain.models import Page, TimelineEntry
from roost.ids import new_id
from roost.storage.database import Database, Tx
from roost.storage.redis.timelines import RedisHomeTimelineStore, decode, encode
from tests.storage.conftest import Harness
from tests.storage.test_database import Gate

# Outside the database writer's batches: the store reads only the transaction's ``info``, where
# a writer's batch would collect its writes (``database.deferred``); here it writes at once.
NO_TX = cast(Tx, SimpleNamespace(info={}))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def make_store(client: redis.Redis, prefix: str, cap: int) -> RedisHomeTimelineStore:
    return RedisHomeTimelineStore(client, cap=cap, prefix=prefix)


def newest(store: RedisHomeTimelineStore, account_id: int, limit: int = 40) -> list[int]:
    return [e.status_id for e in store.page(NO_TX, account_id, Page(limit=limit))]


def test_key_layout_and_members(client: redis.Redis, redis_prefix: str) -> None:
    store = make_store(client, redis_prefix, 800)
    post = TimelineEntry(2**63 - 1, 42)
    reblog = TimelineEntry(2**62, 7, 2**63 - 1)
    store.add(NO_TX, [42, 43], post)
    store.add_many(NO_TX, 42, [reblog])
    key = f"{redis_prefix}home:{{42}}"
    assert store.key(42) == key
    assert sorted(client.scan_iter(match=f"{redis_prefix}*")) == [
        key.encode(), f"{redis_prefix}home:{{43}}".encode()]
    assert client.type(key) == b"zset"
    members = client.zrange(key, 0, -1, withscores=True)
    assert members == [(struct.pack(">QQQ", 2**62, 7, 2**63 - 1), 0.0),
                       (struct.pack(">QQ", 2**63 - 1, 42), 0.0)]
    assert [decode(m) for m, _ in members] == [reblog, post]
    assert encode(post) == members[1][0]


def test_the_epoch_is_lost_with_the_timelines(client: redis.Redis, redis_prefix: str) -> None:
    """What ``TimelineService.check_home_store`` looks at: Redis restarted without its data
    has neither the timelines nor the mark."""
    store = make_store(client, redis_prefix, 800)
    store.set_epoch(NO_TX, 99)
    store.add(NO_TX, [42], TimelineEntry(new_id(), 7))
    assert store.epoch(NO_TX) == 99 and newest(store, 42)
    client.delete(*client.scan_iter(match=f"{redis_prefix}*"))  # (a restart, for this prefix)
    assert store.epoch(NO_TX) is None and newest(store, 42) == []


def test_every_write_keeps_the_cap(client: redis.Redis, redis_prefix: str) -> None:
    store = make_store(client, redis_prefix, 5)
    a, b, c, author = 1, 2, 3, 9
    entries = [TimelineEntry(new_id(), author) for _ in range(8)]
    for entry in entries:
        store.add(NO_TX, [a, b], entry)
    store.add_many(NO_TX, c, entries)
    kept = [e.status_id for e in entries[:2:-1]]
    for account in (a, b, c):
        assert client.zcard(store.key(account)) == 5
        assert newest(store, account) == kept
    store.add(NO_TX, [a], TimelineEntry(entries[0].status_id - 1, author))  # older than all
    assert newest(store, a) == kept
    assert store.enforce_cap(NO_TX, 5) == 0  # nothing can be longer than the cap
    assert store.enforce_cap(NO_TX, 80) == 0
    assert store.enforce_cap(NO_TX, 3) == 3
    assert newest(store, b) == kept[:3]
    assert store.enforce_cap(NO_TX, 0) == 3
    assert client.exists(store.key(a), store.key(b), store.key(c)) == 0


def test_a_fanout_batch_is_one_script_call(client: redis.Redis, redis_prefix: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(client, redis_prefix, 800)
    calls: list[int] = []
    script = store._add

    def counted(*, keys: list[str], args: list[Any]) -> Any:
        calls.append(len(keys))
        return script(keys=keys, args=args)

    monkeypatch.setattr(store, "_add", counted)
    followers = list(range(10_000, 12_000))
    entry = TimelineEntry(new_id(), 5)
    store.add(NO_TX, followers, entry)
    assert calls == [2000]
    pipe = client.pipeline(transaction=False)
    for account in followers:
        pipe.zrange(store.key(account), 0, -1)
    assert pipe.execute() == [[encode(entry)]] * 2000
    monkeypatch.setattr(RedisHomeTimelineStore, "KEYS_PER_CALL", 3)
    store.add(NO_TX, [1, 2, 3, 4, 5, 6, 7], entry)
    assert calls == [2000, 3, 3, 1]
    store.add(NO_TX, [], entry)
    assert calls == [2000, 3, 3, 1]
    store.remove(NO_TX, [*followers, 1, 2, 3, 4, 5, 6, 7], entry.status_id)
    assert client.exists(*(store.key(a) for a in followers)) == 0


def test_remove_author_from_a_long_timeline(client: redis.Redis, redis_prefix: str) -> None:
    store = make_store(client, redis_prefix, 5000)
    x, y = 2**63 - 2, 2**40  # (ids whose bytes would match each other's in a decimal form)
    entries = [TimelineEntry(1000 + i, x if i % 3 else y, 7 if i % 5 == 0 else None)
               for i in range(3000)]
    store.add_many(NO_TX, 1, entries)
    store.remove_author(NO_TX, 1, x)
    kept = [e for e in entries if e.author_id == y]
    assert store.page(NO_TX, 1, Page(limit=5000)) == kept[::-1]
    store.remove_author(NO_TX, 1, y)
    assert client.exists(store.key(1)) == 0


@pytest.mark.parametrize("h", ["redis-home"], indirect=True)
def test_writes_of_a_rolled_back_transaction_stay_and_are_idempotent(
        h: Harness, db: Database) -> None:
    """Redis is written before the commit, not at it: a transaction that fails after a write
    that went out at once (``add_many``, which also sends the queued ``add`` first) leaves
    its entries (readers skip statuses that do not exist), and the retry adds nothing twice."""
    account, author = new_id(), new_id()
    entry = TimelineEntry(new_id(), author)

    def deliver(tx: Tx, fail: bool) -> None:
        h.s.home.add(tx, [account], entry)
        h.s.home.add_many(tx, account, [entry])
        if fail:
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        db.write_sync(lambda tx: deliver(tx, True))
    assert h.read(h.s.home.page, account, Page()) == [entry]
    db.write_sync(lambda tx: deliver(tx, False))
    assert h.read(h.s.home.page, account, Page()) == [entry]


@pytest.mark.parametrize("h", ["redis-home"], indirect=True)
def test_a_batch_sends_its_timeline_writes_in_one_round_trip(
        h: Harness, db: Database, client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writes of one database batch (posts delivered to their authors, fan-out steps)
    go to Redis as one pipeline, once its operations have run; a server that lost its
    scripts meanwhile gets them again."""
    store = cast(RedisHomeTimelineStore, h.s.home)
    flushes: list[int] = []
    run_all = store.topology.run_all

    def counted(calls: Any) -> None:
        flushes.append(len(calls))
        run_all(calls)

    monkeypatch.setattr(store.topology, "run_all", counted)
    client.script_flush()
    entries = [TimelineEntry(new_id(), new_id()) for _ in range(20)]
    gate = Gate(db)
    futures = [db.submit(lambda tx, e=e: store.add(tx, [e.author_id, 7], e)) for e in entries]
    gate.release()
    for future in futures:
        future.result(10)
    assert flushes == [20]
    assert [e.status_id for e in h.read(store.page, 7, Page(limit=40))] == sorted(
        (e.status_id for e in entries), reverse=True)
    assert all(h.read(store.page, e.author_id, Page()) == [e] for e in entries)
