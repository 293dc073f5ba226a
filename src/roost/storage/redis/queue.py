"""The job queue on Redis Streams, fed from the outbox: the production queue.

Flow. Domain code enqueues into the outbox (the ``jobs`` table) in the change's own
transaction, exactly as embedded. A relay moves committed rows into one stream: in one
database transaction it takes due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so relays
in several workers split the rows instead of doubling them), XADDs them and deletes them. The
deletion commits only after the XADDs succeeded; a crash between the two relays the rows
again, which is a duplicate delivery, harmless because every handler is idempotent. Each
message carries the job's id, kind, payload and failed attempts.

Workers read the stream in one consumer group (XREADGROUP; a consumer name unique per process,
``host:pid:random``), run one step of each job in a database write transaction, and only after
that commit settle it, atomically (one Lua script each, so a job is never both or neither):

- finished: XACK + XDEL;
- continued (a long fan-out's next cursor): XACK + XADD the continuation + XDEL;
- failed: XACK + ZADD to the delayed set, scored by when to try again (``backoff_ms``), + XDEL.
  Each relay pass also promotes the due members back onto the stream (another script). After
  ``MAX_ATTEMPTS`` the job is written back to the outbox as a dead row, then acknowledged:
  ``roost jobs dead`` and ``roost jobs replay`` work unchanged, and a replayed job is relayed
  again.

The continuation or retry is added only if this XACK acknowledged the message (XACK returns
1): when a worker outlives its lease and its message is reclaimed and run by another, both
settle, and only the first one's continuation counts, so the job never forks into two chains.

XDEL, not MAXLEN. An acknowledged message is deleted at once, so the stream holds exactly the
jobs not yet finished (XLEN + ZCARD of the delayed set + the outbox is ``pending_count``).
``XADD ... MAXLEN`` trims by length whatever the group has read: under a backlog it would
drop jobs not yet delivered (Redis 7.0 has no "acknowledged only" trimming).

Crashes. A step is acknowledged only after it committed, so a crash replays at most the steps
in flight. A consumer that dies leaves its messages in the group's pending entries list. A live
consumer keeps a heartbeat key (``<stream>:alive:<consumer>``, expiring after ``ALIVE_MS``, set
every second by the runner); another consumer that finds a consumer with pending messages,
silent that long and without the key, claims them (XCLAIM) and runs them again: a killed
worker's jobs resume within seconds. A consumer alive but stuck keeps its messages until they
are idle longer than the lease (XAUTOCLAIM, ``ROOST_JOB_LEASE_SECONDS``). When a connection
drops, redis-py reconnects; a message Redis delivered on the lost connection stays pending for
this consumer, which reads its own pending entries again (XREADGROUP from id 0) within a
second: a consumer takes jobs one batch at a time, so any entry it owns while it looks for work
was lost in transit.

Consumers that are gone. A process that is killed never leaves the group, so each restart
would add a consumer name for good. Every ``SWEEP_SECONDS`` a consumer deletes, in one script,
the other consumers that own no pending entry and have not been heard from for
``STALE_CONSUMER_MS``. Deleting a consumer with nothing pending loses nothing; one that was
only slow is made again by its next XREADGROUP.

Keys, all with the queue name as the Redis Cluster hash tag so that one script can touch
them together: ``<prefix>jobs:{default}`` (the stream, group ``workers``),
``<prefix>jobs:{default}:delayed`` (the sorted set) and ``<prefix>jobs:{default}:alive:<consumer>``
(the heartbeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from roost.clock import now_ms
from roost.domain.models import Job
from roost.storage.database import Database, Tx
from roost.storage.protocols import JobStore
from roost.storage.queue import ALIVE_MS, Doorbell

log = logging.getLogger(__name__)

GROUP = "workers"
QUEUE = "default"
RELAY_BATCH = 500  # outbox rows moved per relay transaction
BLOCK_SECONDS = 1.0  # a blocked XREADGROUP wakes on XADD, so a long block costs no latency
ERROR_PAUSE_SECONDS = 1.0  # after a failed relay (database or Redis unreachable)
RECLAIM_SECONDS = 1.0  # how often a consumer looks for its own lost and others' expired entries
# A message whose worker stopped mid-step this many times (reclaimed after each lease) is a
# job that kills workers (out of memory, a crash in a library): it goes to the dead jobs
# instead of taking down every worker in turn, forever.
MAX_DELIVERIES = 10
SWEEP_SECONDS = 300.0  # how often a consumer removes the group's stale consumers
STALE_CONSUMER_MS = 3_600_000  # silent this long with nothing pending: gone

# KEYS: the delayed set, the stream; ARGV: now (ms), most to promote. Moves the due members
# (JSON objects of string fields) onto the stream.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local job = cjson.decode(member)
  redis.call('XADD', KEYS[2], '*', 'id', job.id, 'kind', job.kind, 'payload', job.payload,
             'attempts', job.attempts)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""

# KEYS: the stream; ARGV: the group, then per job its receipt, id, kind, continuation payload
# ("" when finished) and attempts. Acknowledges each message and XADDs its continuation only
# if this acknowledgement was the one that counted: a worker that took longer than the lease
# and settles after the one that reclaimed its message must not fork the job into two.
_SETTLE = """
local continued = 0
for i = 2, #ARGV, 5 do
  local receipt = ARGV[i]
  if redis.call('XACK', KEYS[1], ARGV[1], receipt) == 1 and ARGV[i + 3] ~= '' then
    redis.call('XADD', KEYS[1], '*', 'id', ARGV[i + 1], 'kind', ARGV[i + 2],
               'payload', ARGV[i + 3], 'attempts', ARGV[i + 4])
    continued = continued + 1
  end
  redis.call('XDEL', KEYS[1], receipt)
end
return continued
"""

# KEYS: the stream, the delayed set; ARGV: the group, the receipt, when to run again (ms),
# the delayed member. Sets the job aside for a retry, unless another worker already settled it.
_DELAY = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
end
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# KEYS: the stream; ARGV: the group, the idle time (ms) past which a consumer with nothing
# pending is deleted, the caller's own name (kept). Returns the number deleted.
_SWEEP = """
local removed = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  if info['name'] ~= ARGV[3] and tonumber(info['pending']) == 0
      and tonumber(info['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
"""

Client = redis.Redis | RedisCluster


def fields(job_id: int, kind: str, payload: dict[str, object],
           attempts: int) -> dict[FieldT, EncodableT]:
    """A job as stream message fields (ids as strings: Lua numbers are doubles)."""
    return {"id": str(job_id), "kind": kind, "payload": orjson.dumps(payload).decode(),
            "attempts": str(attempts)}


def _job(message_id: str, values: dict[str, str]) -> Job:
    return Job(int(values["id"]), values["kind"], orjson.loads(values["payload"]),
               int(values["attempts"]), receipt=message_id)


def _id_order(message_id: str) -> tuple[int, int]:
    """Stream ids order as (milliseconds, sequence), not as strings."""
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisStreamQueue:
    """``JobQueue`` on a Redis Stream and consumer group, fed from the outbox ``store``."""

    def __init__(self, client: Client, db: Database, store: JobStore, *, prefix: str = "roost:",
                 lease_ms: int = 15_000, alive_ms: int = ALIVE_MS,
                 consumer: str | None = None) -> None:
        self.client = client
        self.db = db
        self.store = store
        self.lease_ms = lease_ms
        self.alive_ms = alive_ms
        self.stream = f"{prefix}jobs:{{{QUEUE}}}"
        self.delayed = f"{self.stream}:delayed"
        self.consumer = consumer or consumer_name()
        self._promote = client.register_script(_PROMOTE)
        self._settle_script = client.register_script(_SETTLE)
        self._delay = client.register_script(_DELAY)
        self._sweep = client.register_script(_SWEEP)
        self._group_ready = False
        self._next_reclaim = 0.0
        self._next_sweep = 0.0
        self._claim_cursor = "0-0"
        self._poisoned: list[tuple[Job, int]] = []  # found by _take; buried by take
        self._bell = Doorbell()
        db.on_commit(self._bell.on_commit)

    @classmethod
    def from_url(cls, url: str, db: Database, store: JobStore, *, prefix: str = "roost:",
                 lease_ms: int = 15_000, alive_ms: int = ALIVE_MS,
                 cluster: bool = False) -> RedisStreamQueue:
        """A queue on the server at ``url`` (or the Redis Cluster it belongs to). A command
        that meets a dropped connection is retried a few times on a new one, quickly: the
        relay runs in the database's writer thread and must not hold it long."""
        options: dict[str, Any] = {
            "decode_responses": True, "socket_keepalive": True, "socket_connect_timeout": 5,
            "socket_timeout": 30, "client_name": f"roost-jobs-{os.getpid()}",
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.02), 3),
        }
        client = (RedisCluster.from_url(url, **options) if cluster
                  else redis.Redis.from_url(url, **options))
        return cls(client, db, store, prefix=prefix, lease_ms=lease_ms, alive_ms=alive_ms)

    # -- relay: outbox -> stream, delayed -> stream ----------------------------------------

    async def relay(self) -> int:
        moved = await self.db.write(self._relay_batch)
        promoted = await asyncio.to_thread(self._promote_due)
        return moved + promoted

    def _relay_batch(self, tx: Tx) -> int:
        # Runs in the writer: the rows are deleted by this transaction, which commits only if
        # every XADD went through (a failure rolls the deletion back).
        jobs = self.store.take(tx, now_ms(), RELAY_BATCH)
        if jobs:
            pipe = self.client.pipeline(transaction=False)
            for job in jobs:
                pipe.xadd(self.stream, fields(job.id, job.kind, job.payload, job.attempts))
            pipe.execute()
        return len(jobs)

    def _promote_due(self) -> int:
        return int(cast(int, self._promote(keys=[self.delayed, self.stream],
                                           args=[now_ms(), RELAY_BATCH])))

    async def relay_forever(self, poll_seconds: float) -> None:
        while True:
            self._bell.clear()
            try:
                moved = await self.relay()
            except Exception:
                log.exception("job relay failed; retrying")
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            if not moved:
                await self._bell.wait(poll_seconds)

    # -- consumer --------------------------------------------------------------------------

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From id 0: messages relayed before the group existed are read too.
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def take(self, limit: int, wait: float) -> list[Job]:
        try:
            jobs = await asyncio.to_thread(self._take, limit, wait)
        except redis.ResponseError as exc:
            # The stream was deleted (Redis lost its data: TimelineService.check_home_store),
            # before the read or while it blocked: make the group again.
            if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                raise
            self._group_ready = False
            return []
        poisoned, self._poisoned = self._poisoned, []
        for job, deliveries in poisoned:
            log.error("job %s (%s) was abandoned by %d workers; set aside as dead",
                      job.id, job.kind, deliveries)
            await self.retry(job, f"abandoned {deliveries} times: every worker that ran it "
                             "stopped before it finished", 0, dead=True)
        return jobs

    def _take(self, limit: int, wait: float) -> list[Job]:
        self._ensure_group()
        if time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + min(RECLAIM_SECONDS, self.lease_ms / 2000)
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + SWEEP_SECONDS
                self.remove_stale_consumers(STALE_CONSUMER_MS)
            orphans = self._orphans(limit)
            if orphans:
                return orphans
        block = int(max(wait, BLOCK_SECONDS) * 1000) if wait > 0 else None
        reply = self.client.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=limit,
                                       block=block)
        return self._jobs(reply)

    def _orphans(self, limit: int) -> list[Job]:
        """Messages this consumer owns but is not running (delivered on a connection that
        dropped before the reply came back), else the messages of consumers no longer alive
        (killed), else other consumers' messages idle past the lease (their consumer hangs),
        which become this consumer's."""
        own = self._jobs(self.client.xreadgroup(GROUP, self.consumer, {self.stream: "0"},
                                                count=limit))
        if own:
            return own
        adopted = self._from_dead_consumers(limit)
        if adopted:
            return adopted
        reply: list[Any] = self.client.xautoclaim(
            self.stream, GROUP, self.consumer, min_idle_time=self.lease_ms,
            start_id=self._claim_cursor, count=limit)
        self._claim_cursor = reply[0]  # back to 0-0 once the whole list was scanned
        claimed = [_job(mid, values) for mid, values in reply[1] if values]
        if claimed:
            log.warning("reclaimed %d job(s) idle for %d ms", len(claimed), self.lease_ms)
        return self._not_poisoned(claimed)

    def _from_dead_consumers(self, limit: int) -> list[Job]:
        """Claim the pending messages of other consumers that are no longer alive: silent
        past ``alive_ms`` (no XREADGROUP) and without a heartbeat (``beat``)."""
        silent = [str(c["name"]) for c in self.client.xinfo_consumers(self.stream, GROUP)
                  if c["name"] != self.consumer and int(c["pending"]) > 0
                  and int(c["idle"]) >= self.alive_ms]
        if not silent:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name in silent:
            pipe.exists(self._alive_key(name))
        dead = [name for name, beating in zip(silent, pipe.execute(), strict=True)
                if not beating]
        claimed: list[Job] = []
        for name in dead:
            pending = self.client.xpending_range(self.stream, GROUP, min="-", max="+",
                                                 count=limit - len(claimed), consumername=name)
            if pending:
                # min_idle_time: a message another consumer adopted a moment ago is its.
                reply: list[Any] = self.client.xclaim(self.stream, GROUP, self.consumer,
                                           min_idle_time=self.alive_ms,
                                           message_ids=[p["message_id"] for p in pending])
                taken = [_job(mid, values) for mid, values in reply if values]
                if taken:
                    log.warning("took %d job(s) of worker %s, no longer alive", len(taken),
                                name)
                claimed += taken
            if len(claimed) >= limit:
                break
        return self._not_poisoned(claimed)

    def _not_poisoned(self, claimed: list[Job]) -> list[Job]:
        """``claimed`` but the messages delivered ``MAX_DELIVERIES`` times, kept for ``take``
        to set aside as dead."""
        if not claimed:
            return []
        deliveries = self._deliveries([job.receipt or "" for job in claimed])
        self._poisoned += [(j, deliveries[j.receipt or ""]) for j in claimed
                           if deliveries.get(j.receipt or "", 0) >= MAX_DELIVERIES]
        return [j for j in claimed if deliveries.get(j.receipt or "", 0) < MAX_DELIVERIES]

    def _alive_key(self, consumer: str) -> str:
        return f"{self.stream}:alive:{consumer}"

    async def beat(self) -> None:
        await asyncio.to_thread(self.client.set, self._alive_key(self.consumer), 1,
                                px=self.alive_ms)

    def remove_stale_consumers(self, idle_ms: int) -> int:
        """Delete the group's other consumers that own nothing pending and have been silent
        for ``idle_ms`` (processes that died); returns how many."""
        removed = int(cast(int, self._sweep(keys=[self.stream],
                                            args=[GROUP, idle_ms, self.consumer])))
        if removed:
            log.info("removed %d stale consumer(s) from the job group", removed)
        return removed

    def _deliveries(self, message_ids: list[str]) -> dict[str, int]:
        """How many times each of this consumer's pending ``message_ids`` was delivered."""
        pending = self.client.xpending_range(
            self.stream, GROUP, min=min(message_ids, key=_id_order),
            max=max(message_ids, key=_id_order), count=len(message_ids) + 100,
            consumername=self.consumer)
        wanted = set(message_ids)
        return {str(p["message_id"]): int(p["times_delivered"]) for p in pending
                if str(p["message_id"]) in wanted}

    @staticmethod
    def _jobs(reply: Any) -> list[Job]:
        if not reply:
            return []
        streams = reply.items() if isinstance(reply, dict) else reply
        return [_job(mid, values) for _name, messages in streams for mid, values in messages
                if values]

    # -- settling --------------------------------------------------------------------------

    def record(self, tx: Tx, job: Job, progress: dict[str, object] | None) -> None:
        return  # settled in Redis once the step's transaction has committed

    async def settle(self, outcomes: Sequence[tuple[Job, dict[str, object] | None]]) -> None:
        if outcomes:
            await asyncio.to_thread(self._settle, outcomes)

    def _settle(self, outcomes: Sequence[tuple[Job, dict[str, object] | None]]) -> None:
        args: list[str | int] = [GROUP]
        for job, progress in outcomes:
            assert job.receipt is not None, "a stream job carries its message id"
            continuation = "" if progress is None else orjson.dumps(progress).decode()
            args += [job.receipt, str(job.id), job.kind, continuation, str(job.attempts)]
        self._settle_script(keys=[self.stream], args=args)

    async def retry(self, job: Job, error: str, run_after: int, dead: bool) -> None:
        failed = replace(job, attempts=job.attempts + 1)
        if dead:
            await self.db.write(lambda tx: self.store.bury(tx, failed, error))
            await self.settle([(job, None)])
            return
        member = orjson.dumps(fields(failed.id, failed.kind, failed.payload, failed.attempts))
        await asyncio.to_thread(self._delay, keys=[self.stream, self.delayed],
                                args=[GROUP, str(job.receipt), run_after, member])

    # -- the rest --------------------------------------------------------------------------

    def pending_count(self) -> int:
        in_outbox = self.db.read_sync(self.store.pending_count)
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(self.stream)
        pipe.zcard(self.delayed)
        in_stream, delayed = pipe.execute()
        return in_outbox + int(in_stream) + int(delayed)

    def close(self) -> None:
        """Leave the group if nothing is pending for this consumer (a consumer deleted with
        pending entries would lose them), then close the connections."""
        with contextlib.suppress(redis.RedisError):
            if self._group_ready and not self.client.xpending_range(
                    self.stream, GROUP, min="-", max="+", count=1, consumername=self.consumer):
                self.client.xgroup_delconsumer(self.stream, GROUP, self.consumer)
            # Stopped: whatever it still holds goes to the others once silent for alive_ms.
            self.client.delete(self._alive_key(self.consumer))
        self.client.close()
