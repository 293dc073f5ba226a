"""Home timelines in Redis: the production implementation of the home timeline store.

Layout. One sorted set per account, ``<prefix>home:{<account id>}`` (``roost:home:{42}``): the
account id in braces is the Redis Cluster hash tag, so every key of one account lives in one
slot. Each entry is one member, all with score 0, and the member itself is the order:

    8 bytes status id, big-endian | 8 bytes author id | 8 bytes reblogged status id (reblogs only)

Why not score = status id: a score is a double, exact only up to 2**53, and ids are 64-bit
(``ms << 16 | node << 10 | seq``, already above 2**53 today), so neighbouring posts would tie
or swap. Members with equal scores are ordered bytewise, and fixed-width big-endian ids order
bytewise exactly as numerically, up to 2**64 - 1. Paging is then ``ZRANGE ... BYLEX`` between
``[<id + 1>`` and ``(<id>`` bounds; removing a status from a timeline is one
``ZREMRANGEBYLEX`` over its 8-byte prefix, without knowing its author; trimming to the newest
N is ``ZREMRANGEBYRANK key 0 -(N+1)``. A member is 16 or 24 bytes, about 115 bytes an entry in
an 800-entry timeline. A status's author and reblog never change, so "one entry per status
id", the SQL store's primary key, is "one member per status id" here.

Cap. Every write keeps the timeline at ``cap`` (``ROOST_HOME_TIMELINE_SIZE``) newest entries
in the same script or transaction, so ``enforce_cap`` has nothing to do unless asked for a
smaller size than the store's cap.

Fan-out. ``add`` to many accounts (a batch of up to ``ROOST_FANOUT_BATCH_SIZE`` followers) is
one Lua script call looping over the keys: against one pipeline of ZADD + ZREMRANGEBYRANK
per key, 2,000 keys, it was 4 times faster into small timelines and 1.6 times into full ones
(docs/architecture.md, "Production mode").

Redis Cluster (``ROOST_REDIS_CLUSTER``). The keys one script declares must share a slot
there, and the followers of one batch are spread over every slot, so the scripts run through a
``Topology`` (``topology.py``): on one server a script is one EVALSHA, as above; on a cluster
it is one call per node of the same script flagged ``allow-cross-slot-keys``. Single-key
commands go through redis-py's cluster client, which routes them by slot; ``enforce_cap``
scans every primary.

Transactions. Every method takes the SQL transaction ``tx`` of the domain operation (the
Protocol's first argument). Redis is written before the commit, not after it: at once, or, in
the database writer's batches, ``add`` and ``remove`` are queued on ``tx``
(``database.deferred``) and the whole batch's calls go out in one pipeline once its
operations have run, just before its commit (a batch of 50 posts: one round trip to Redis,
not 50). Any other call on ``tx`` first sends what is queued, so Redis sees the writes in the
order they were made. Writing before the commit is safe because every write here is
idempotent (adding an entry twice, or removing one that is gone, changes nothing) and because
readers hydrate entries from the database and drop the statuses that do not exist
(``PostService.views``): an entry written by a transaction that then rolls back points at a
status that was never committed, so no one sees it, and the job that rolls back is retried
and writes the same entry again. The one thing Redis cannot undo is a removal: a status
deletion that rolls back after its ``remove`` has left that status out of its author's and
mentioned accounts' home timelines (it is still on its page and in public timelines);
deletions fail only when the database does, and the entry comes back with the next backfill.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import cast

import redis
from redis.cluster import RedisCluster

from roost.domain.models import Page, TimelineEntry
from roost.storage.database import Tx, deferred, flush_deferred
from roost.storage.redis.topology import (
    Cluster,
    MultiKeyScript,
    ScriptArg,
    ScriptCall,
    SingleServer,
    Topology,
)

_ID = struct.Struct(">Q")
_PAIR = struct.Struct(">QQ")
_TRIPLE = struct.Struct(">QQQ")
MAX_ID = 2**64 - 1
SCAN_COUNT = 1000

# KEYS: the timelines; ARGV: the member, the cap. Add, then trim to the newest ``cap``.
_ADD = """
local member = ARGV[1]
local cap = tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 0, member)
  if redis.call('ZCARD', KEYS[i]) > cap then
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -cap - 1)
  end
end
return #KEYS
"""

# KEYS: the timelines; ARGV: the 8-byte status id prefix, and the prefix of the next id (or
# "+" when there is none). Removes every member of that status id.
_REMOVE = """
local low = '[' .. ARGV[1]
local high = ARGV[2]
if high ~= '+' then high = '(' .. high end
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYLEX', KEYS[i], low, high)
end
return #KEYS
"""

# KEYS[1]: one timeline; ARGV[1]: the 8-byte author id. Removes the author's entries.
_REMOVE_AUTHOR = """
local author = ARGV[1]
local doomed = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 9, 16) == author then
    doomed[#doomed + 1] = member
  end
end
for i = 1, #doomed, 1000 do
  redis.call('ZREM', KEYS[1], unpack(doomed, i, math.min(i + 999, #doomed)))
end
return #doomed
"""


def encode(entry: TimelineEntry) -> bytes:
    """The sorted-set member of one entry (see the module docstring)."""
    if entry.reblog_of_id is None:
        return _PAIR.pack(entry.status_id, entry.author_id)
    return _TRIPLE.pack(entry.status_id, entry.author_id, entry.reblog_of_id)


def decode(member: bytes) -> TimelineEntry:
    if len(member) == _TRIPLE.size:
        return TimelineEntry(*_TRIPLE.unpack(member))
    return TimelineEntry(*_PAIR.unpack(member))


def _bounds(page: Page) -> tuple[bytes, bytes] | None:
    """The BYLEX range (low, high) of ``page``'s window, or None when it is empty."""
    high = b"+"
    if page.max_id is not None and page.max_id <= MAX_ID:
        if page.max_id <= 0:
            return None
        high = b"(" + _ID.pack(page.max_id)
    lows = [i for i in (page.since_id, page.min_id) if i is not None]
    low = b"-"
    if lows and max(lows) >= 0:
        if max(lows) >= MAX_ID:
            return None
        low = b"[" + _ID.pack(max(lows) + 1)
    return low, high


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class RedisHomeTimelineStore:
    """``HomeTimelineStore`` on Redis sorted sets, each capped at ``cap`` entries."""

    KEYS_PER_CALL = 5000  # fan-out batches are smaller; bounds one script's run time
    fills_on_read = False

    def __init__(self, client: redis.Redis | RedisCluster, *, cap: int,
                 prefix: str = "roost:") -> None:
        self.client = client
        self.cap = cap
        self.prefix = prefix
        self.topology: Topology = (
            Cluster(client) if isinstance(client, RedisCluster) else SingleServer(client))
        self._add = self.topology.script(_ADD)
        self._remove = self.topology.script(_REMOVE)
        self._remove_author = self.topology.script(_REMOVE_AUTHOR)

    @classmethod
    def from_url(cls, url: str, *, cap: int, prefix: str = "roost:",
                 cluster: bool = False) -> RedisHomeTimelineStore:
        """A store on the server at ``url``, or, with ``cluster``, on the Redis Cluster that
        the node at ``url`` belongs to (the client discovers the other nodes)."""
        # Timeouts: these calls run inside the database writer's transactions, and a reply
        # that never comes (a hung server, a half-open connection) must fail the operation,
        # to be retried, rather than hold the writer, and every write behind it, forever.
        options = {"socket_keepalive": True, "client_name": f"{prefix}home",
                   "socket_connect_timeout": 5, "socket_timeout": 30}
        client = (RedisCluster.from_url(url, **options) if cluster
                  else redis.Redis.from_url(url, **options))
        return cls(client, cap=cap, prefix=prefix)

    def key(self, account_id: int) -> str:
        return f"{self.prefix}home:{{{account_id}}}"

    @property
    def epoch_key(self) -> str:
        """Where ``set_epoch`` leaves its mark: gone with the timelines if Redis loses them."""
        return f"{self.prefix}home-epoch"

    def close(self) -> None:
        self.client.close()

    # -- the HomeTimelineStore Protocol ------------------------------------------------------

    def _call(self, tx: Tx, script: MultiKeyScript, keys: list[str],
              args: list[ScriptArg]) -> None:
        """Queue the call on ``tx`` for the writer's batch (``database.deferred``), or make
        it at once outside the writer."""
        queued: list[ScriptCall] | None = deferred(tx, self, self.topology.run_all)
        if queued is None:
            script(keys=keys, args=args)
        else:
            queued.append((script, keys, args))

    def add(self, tx: Tx, account_ids: Sequence[int], entry: TimelineEntry) -> None:
        member = encode(entry)
        for chunk in _chunks(account_ids, self.KEYS_PER_CALL):
            self._call(tx, self._add, [self.key(a) for a in chunk], [member, self.cap])

    def add_many(self, tx: Tx, account_id: int, entries: Sequence[TimelineEntry]) -> None:
        flush_deferred(tx, self)
        if not entries:
            return
        key = self.key(account_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(key, dict.fromkeys(map(encode, entries), 0))
        pipe.zremrangebyrank(key, 0, -self.cap - 1)
        pipe.execute()

    def holds(self, account_id: int) -> bool:
        return True

    def missing(self, tx: Tx, account_id: int) -> bool:
        return False  # (a lost Redis is recovered by check_home_store and rebuilds)

    def fill(self, tx: Tx, account_id: int, entries: Sequence[TimelineEntry]) -> None:
        self.add_many(tx, account_id, entries)

    def page(self, tx: Tx, account_id: int, page: Page) -> list[TimelineEntry]:
        flush_deferred(tx, self)
        bounds = _bounds(page)
        if bounds is None or page.limit <= 0:
            return []
        low, high = bounds
        key = self.key(account_id)
        if page.min_id is not None:  # the entries just above min_id, then newest first
            members = self.client.zrangebylex(key, low, high, start=0, num=page.limit)[::-1]
        else:
            members = self.client.zrevrangebylex(key, high, low, start=0, num=page.limit)
        return [decode(cast(bytes, m)) for m in members]

    def remove_author(self, tx: Tx, account_id: int, author_id: int) -> None:
        flush_deferred(tx, self)
        self._remove_author(keys=[self.key(account_id)], args=[_ID.pack(author_id)])

    def remove(self, tx: Tx, account_ids: Sequence[int], status_id: int) -> None:
        after = _ID.pack(status_id + 1) if status_id < MAX_ID else b"+"
        for chunk in _chunks(account_ids, self.KEYS_PER_CALL):
            self._call(tx, self._remove, [self.key(a) for a in chunk],
                       [_ID.pack(status_id), after])

    def trim(self, tx: Tx, account_id: int, keep: int) -> None:
        flush_deferred(tx, self)
        if keep <= 0:
            self.client.delete(self.key(account_id))
        else:
            self.client.zremrangebyrank(self.key(account_id), 0, -keep - 1)

    def epoch(self, tx: Tx) -> int | None:
        flush_deferred(tx, self)
        value = self.client.get(self.epoch_key)
        return int(cast(bytes, value)) if value is not None else None

    def set_epoch(self, tx: Tx, epoch: int) -> None:
        flush_deferred(tx, self)
        self.client.set(self.epoch_key, epoch)

    def cap_step(self, tx: Tx, keep: int, after: int) -> tuple[int, int | None]:
        # (one step: writes keep every timeline within the cap, so there is rarely a scan)
        return self.enforce_cap(tx, keep), None

    def enforce_cap(self, tx: Tx, keep: int) -> int:
        """Trim every timeline longer than ``keep``; returns how many were trimmed. Writes keep
        every timeline within the store's cap, so only a smaller ``keep`` needs a scan."""
        flush_deferred(tx, self)
        if keep >= self.cap:
            return 0
        trimmed = 0
        for node in self.topology.primaries():  # (a cluster node scans only its own keys)
            batch: list[bytes] = []
            for key in node.scan_iter(match=f"{self.prefix}home:{{*}}", count=SCAN_COUNT):
                batch.append(key)
                if len(batch) >= SCAN_COUNT:
                    trimmed += self._trim_oversized(node, batch, keep)
                    batch = []
            if batch:
                trimmed += self._trim_oversized(node, batch, keep)
        return trimmed

    @staticmethod
    def _trim_oversized(node: redis.Redis, keys: list[bytes], keep: int) -> int:
        """Trims those of ``keys`` (all on ``node``) longer than ``keep``."""
        pipe = node.pipeline(transaction=False)
        for key in keys:
            pipe.zcard(key)
        oversized = [k for k, n in zip(keys, pipe.execute(), strict=True) if n > keep]
        for key in oversized:
            if keep <= 0:
                pipe.delete(key)
            else:
                pipe.zremrangebyrank(key, 0, -keep - 1)
        pipe.execute()
        return len(oversized)
