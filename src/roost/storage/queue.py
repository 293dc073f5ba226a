"""The job queue: the outbox itself (embedded), or Redis Streams fed from the outbox.

Either way domain code enqueues into the outbox (the ``jobs`` table, ``JobStore.enqueue``)
inside the transaction of the change that needs the job, so a job exists exactly when its
change committed. What differs is where workers take jobs from:

- ``OutboxQueue`` (no Redis, or ``ROOST_JOB_QUEUE=database``): workers lease due rows straight
  from the outbox (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and write each step's outcome in
  the step's own transaction.
- ``RedisStreamQueue`` (``storage/redis/queue.py``, with ``ROOST_REDIS_URL``): a relay moves
  committed rows into a Redis Stream read by a consumer group (docs/architecture.md,
  "Background workers and the job queue", has the design and the measured comparison).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence

from roost.clock import now_ms
from roost.domain.models import Job
from roost.settings import Settings
from roost.storage.database import Database, Tx
from roost.storage.protocols import JobQueue, JobStore
from roost.storage.sql.jobs import JOBS_ENQUEUED


class Doorbell:
    """Wakes an asyncio waiter from another thread: the database's after-commit hook (in the
    writer thread) rings it when a commit enqueued jobs, so a worker in the same process
    starts on them at once instead of at its next poll."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def _bound(self) -> asyncio.Event:
        # run_due_sync runs each round in a new event loop; an Event belongs to one loop.
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._event is None:
            self._loop, self._event = loop, asyncio.Event()
        return self._event

    def on_commit(self, events: list[object]) -> None:
        loop, event = self._loop, self._event
        if loop is not None and event is not None and JOBS_ENQUEUED in events:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(event.set)

    def clear(self) -> None:
        """Forget earlier rings; call before looking for work, then ``wait`` if none."""
        self._bound().clear()

    async def wait(self, timeout: float) -> None:
        """Until rung (since the last ``clear``) or ``timeout`` seconds passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bound().wait(), timeout)


# A claimed job this many attempts old (failures, and leases that ran out because the worker
# stopped mid-step) is set aside as dead rather than run again: a job that kills whichever
# worker runs it would otherwise take them down one after another, forever. (The same count
# as the runner's retries, domain/jobs.py MAX_ATTEMPTS.)
ABANDON_LIMIT = 8

# How long a worker counts as alive after its last beat (JobQueue.beat): five of the
# runner's beats (domain/jobs.py HEARTBEAT_SECONDS), so a beat delayed by a busy writer or a
# slow round trip does not hand a live worker's jobs to another. A killed worker's jobs are
# taken again this long after its last beat, where the lease (ROOST_JOB_LEASE_SECONDS) is
# the wait only for a worker alive but stuck.
ALIVE_MS = 5_000


class OutboxQueue:
    """The ``jobs`` table as the queue: a worker leases due rows for ``lease_ms``, and another
    takes them again when the lease runs out or the worker is no longer alive (``beat``), and a
    step's outcome (finished, or the payload to continue from) commits in the step's own
    transaction, so a step and its bookkeeping are one."""

    def __init__(self, db: Database, store: JobStore, *, lease_ms: int,
                 alive_ms: int = ALIVE_MS) -> None:
        self.db = db
        self.store = store
        self.lease_ms = lease_ms
        self.alive_ms = alive_ms
        self.holder = secrets.randbits(62)  # this process, as the holder of its leases
        self._holding = False  # whether its last claim took jobs (it asks again when done)
        self._bell = Doorbell()
        db.on_commit(self._bell.on_commit)

    def _alive(self, tx: Tx, now: int) -> None:
        self.store.alive(tx, self.holder, now, now + self.alive_ms)

    async def beat(self) -> None:
        # Only while it holds jobs: an idle worker has none for others to take, and an idle
        # embedded server then writes nothing (no commit, no fsync, every second, forever).
        if self._holding:
            await self.db.write(lambda tx: self._alive(tx, now_ms()))

    async def relay(self) -> int:
        return 0  # workers take jobs straight from the outbox

    async def relay_forever(self, poll_seconds: float) -> None:
        return

    async def take(self, limit: int, wait: float) -> list[Job]:
        def claim(tx: Tx) -> list[Job]:
            now = now_ms()
            claimed = self.store.claim(tx, now, limit, self.lease_ms, self.holder)
            if claimed:  # a worker holding jobs is known alive, beating or not
                self._alive(tx, now)
            for job in claimed:
                if job.attempts >= ABANDON_LIMIT:
                    self.store.bury(tx, job, f"set aside after {job.attempts} attempts; the "
                                    "last ones ended with the worker stopping mid-step")
            return [job for job in claimed if job.attempts < ABANDON_LIMIT]

        self._bell.clear()
        jobs = await self.db.write(claim)
        self._holding = bool(jobs)
        if not jobs and wait > 0:
            # Jobs committed by this process ring the bell; other processes' are seen by
            # polling: the caller takes again either way.
            await self._bell.wait(wait)
        return jobs

    def record(self, tx: Tx, job: Job, progress: dict[str, object] | None) -> None:
        if progress is None:
            self.store.finish(tx, job.id)
        else:
            self.store.save_progress(tx, job.id, progress)

    async def settle(self, outcomes: Sequence[tuple[Job, dict[str, object] | None]]) -> None:
        return  # recorded in the steps' own transaction

    async def retry(self, job: Job, error: str, run_after: int, dead: bool) -> None:
        await self.db.write(lambda tx: self.store.retry(tx, job.id, error, run_after, dead))

    def pending_count(self) -> int:
        return self.db.read_sync(self.store.pending_count)

    def close(self) -> None:
        return


def queue_for(settings: Settings, db: Database, store: JobStore) -> JobQueue:
    """The queue ``settings`` ask for: Redis Streams when Redis is configured (unless
    ``ROOST_JOB_QUEUE=database``), else the outbox. redis-py is imported only then."""
    lease_ms = int(settings.job_lease_seconds * 1000)
    use_redis = settings.job_queue == "redis" or (
        settings.job_queue == "auto" and settings.redis_url is not None)
    if not use_redis:
        return OutboxQueue(db, store, lease_ms=lease_ms)
    if not settings.redis_url:
        raise ValueError("ROOST_JOB_QUEUE=redis needs ROOST_REDIS_URL")
    from roost.storage.redis.queue import RedisStreamQueue

    return RedisStreamQueue.from_url(settings.redis_url, db, store, prefix=settings.redis_prefix,
                                     lease_ms=lease_ms, cluster=settings.redis_cluster)
