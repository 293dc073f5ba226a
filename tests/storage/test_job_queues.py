"""The job queues, each on SQLite and PostgreSQL: the outbox itself, and Redis Streams fed
from the outbox (on one server and on a Redis Cluster). Jobs are always enqueued into the
outbox in a database transaction; the runner takes them from the queue, runs a step, and
settles it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import delete, func, select

import roost.domain.jobs as jobs_module
import roost.storage.queue as outbox_queue
import roost.storage.redis.queue as redis_queue
from roost.domain.jobs import MAX_ATTEMPTS, Handler, JobRunner
from roost.domain.models import Job
from roost.storage.database import Database, Tx
from roost.storage.protocols import JobQueue
from roost.storage.queue import OutboxQueue
from roost.storage.redis.queue import GROUP, RECLAIM_SECONDS, RedisStreamQueue
from roost.storage.schema import job_holders
from roost.storage.sql.jobs import SqlJobStore

MakeQueue = Callable[..., JobQueue]


@pytest.fixture(params=["outbox", "redis", "redis-cluster"])
def make_queue(request: pytest.FixtureRequest, db: Database) -> Iterator[MakeQueue]:
    """Builds queues of one kind on ``db`` (several: one per simulated worker process)."""
    made: list[JobQueue] = []

    def make(lease_ms: int = 60_000, alive_ms: int = outbox_queue.ALIVE_MS) -> JobQueue:
        queue: JobQueue
        if request.param == "outbox":
            queue = OutboxQueue(db, SqlJobStore(), lease_ms=lease_ms, alive_ms=alive_ms)
        elif request.param == "redis":
            queue = RedisStreamQueue.from_url(
                request.getfixturevalue("redis_url"), db, SqlJobStore(),
                prefix=request.getfixturevalue("redis_prefix"), lease_ms=lease_ms,
                alive_ms=alive_ms)
        else:  # the stream and its delayed set share one slot of a 3-node cluster
            queue = RedisStreamQueue.from_url(
                request.getfixturevalue("redis_cluster_url"), db, SqlJobStore(),
                prefix=request.getfixturevalue("cluster_prefix"), lease_ms=lease_ms,
                alive_ms=alive_ms, cluster=True)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


def enqueue(db: Database, kind: str, payload: dict[str, object]) -> int:
    return db.write_sync(lambda tx: SqlJobStore().enqueue(tx, kind, payload, 0))


class Recorder:
    """Handlers that record their calls; ``fail`` makes the next N calls raise."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []
        self.fail = 0

    def count(self, tx: Tx, payload: dict[str, object]) -> dict[str, object] | None:
        self.calls.append(payload)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("boom")
        cursor = int(str(payload.get("cursor", 0)))
        return {**payload, "cursor": cursor + 1} if cursor < int(str(payload["steps"])) else None

    def handlers(self) -> dict[str, Handler]:
        return {"count": self.count}


def take_now(queue: JobQueue) -> list[Job]:
    """Relay what the outbox holds and take up to 10 due jobs, without waiting: a worker that
    then never settles them is one that died holding them."""

    async def take() -> list[Job]:
        await queue.relay()
        return await queue.take(10, 0)

    return asyncio.run(take())


def drain(runner: JobRunner, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while runner.pending_count():
        assert time.monotonic() < deadline, "jobs did not drain"
        runner.run_due_sync()
        time.sleep(0.01)


def test_a_job_runs_to_the_end_in_steps(db: Database, make_queue: MakeQueue) -> None:
    recorder = Recorder()
    runner = JobRunner(db, make_queue(), recorder.handlers())
    enqueue(db, "count", {"steps": 0})
    enqueue(db, "count", {"steps": 3})
    assert runner.pending_count() == 2
    runner.run_due_sync()
    assert runner.pending_count() == 0
    assert [c.get("cursor") for c in recorder.calls if c["steps"] == 3] == [None, 1, 2, 3]
    assert sum(c["steps"] == 0 for c in recorder.calls) == 1
    assert db.read_sync(SqlJobStore().dead) == []


class BatchRecorder(Recorder):
    """``Recorder`` whose "count" jobs also run as a batch; a payload with ``bad`` fails."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def count(self, tx: Tx, payload: dict[str, object]) -> dict[str, object] | None:
        if payload.get("bad"):
            raise RuntimeError("bad payload")
        return super().count(tx, payload)

    def count_many(self, tx: Tx, payloads: list[dict[str, object]]
                   ) -> list[dict[str, object] | None]:
        self.batches.append(len(payloads))
        return [self.count(tx, payload) for payload in payloads]


def test_jobs_of_a_batched_kind_step_together_and_fail_alone(
        db: Database, make_queue: MakeQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    """Due jobs of a kind with a batch handler run their steps in one operation; when that
    fails, each runs alone, so only the failing job is retried and the others go on."""
    monkeypatch.setattr(jobs_module, "backoff_ms", lambda attempts: 60_000)
    recorder = BatchRecorder()
    runner = JobRunner(db, make_queue(), recorder.handlers(),
                       batch_handlers={"count": recorder.count_many})
    for steps in (1, 2, 0):
        enqueue(db, "count", {"steps": steps})
    drain(runner)
    assert recorder.batches[0] == 3
    assert sorted(c.get("cursor", 0) for c in recorder.calls) == [0, 0, 0, 1, 1, 2]

    recorder.calls.clear()
    recorder.batches.clear()
    for payload in ({"steps": 0}, {"steps": 0, "bad": True}, {"steps": 1}):
        enqueue(db, "count", payload)
    runner.run_due_sync()
    assert recorder.batches[0] == 3  # tried together first
    assert runner.pending_count() == 1  # only the bad one is left, waiting for its retry
    assert {"steps": 1, "cursor": 1} in recorder.calls  # the others went on to their end
    assert db.read_sync(SqlJobStore().dead) == []


def test_a_taken_job_keeps_its_id_through_continuations(db: Database,
                                                        make_queue: MakeQueue) -> None:
    queue = make_queue()
    job_id = enqueue(db, "count", {"steps": 2})

    async def take_and_continue() -> list[Job]:
        await queue.relay()
        first = await queue.take(10, 0)
        db.write_sync(lambda tx: queue.record(tx, first[0], {"steps": 2, "cursor": 1}))
        await queue.settle([(first[0], {"steps": 2, "cursor": 1})])
        await queue.relay()
        return first + await queue.take(10, 0)

    first, second = asyncio.run(take_and_continue())
    assert first.id == second.id == job_id
    assert second.payload == {"steps": 2, "cursor": 1}
    assert queue.pending_count() == 1


def test_a_failing_job_is_retried_after_its_backoff(db: Database, make_queue: MakeQueue,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs_module, "backoff_ms", lambda attempts: 300)
    recorder = Recorder()
    recorder.fail = 1
    runner = JobRunner(db, make_queue(), recorder.handlers())
    enqueue(db, "count", {"steps": 0})
    runner.run_due_sync()
    assert len(recorder.calls) == 1 and runner.pending_count() == 1
    runner.run_due_sync()  # not due yet
    assert len(recorder.calls) == 1
    time.sleep(0.35)
    drain(runner)
    assert len(recorder.calls) == 2
    assert db.read_sync(SqlJobStore().dead) == []


def test_a_job_that_always_fails_is_dead_then_replayed(db: Database, make_queue: MakeQueue,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs_module, "backoff_ms", lambda attempts: 0)
    recorder = Recorder()
    recorder.fail = 100
    runner = JobRunner(db, make_queue(), recorder.handlers())
    job_id = enqueue(db, "count", {"steps": 1})
    drain(runner)
    assert len(recorder.calls) == MAX_ATTEMPTS
    store = SqlJobStore()
    [(dead, error)] = db.read_sync(store.dead)
    assert (dead.id, dead.kind, dead.attempts) == (job_id, "count", MAX_ATTEMPTS)
    assert dead.payload == {"steps": 1}
    assert error is not None and "boom" in error
    # `roost jobs replay`: back in the outbox, relayed again, and now it succeeds.
    recorder.fail = 0
    assert db.write_sync(lambda tx: store.revive(tx, job_id, 0)) is True
    assert runner.pending_count() == 1
    drain(runner)
    assert db.read_sync(store.dead) == []
    assert recorder.calls[-2:] == [{"steps": 1}, {"steps": 1, "cursor": 1}]


def test_a_job_taken_by_a_dead_worker_is_run_by_another_after_the_lease(
        db: Database, make_queue: MakeQueue) -> None:
    recorder = Recorder()
    doomed, survivor = make_queue(lease_ms=400), make_queue(lease_ms=400)
    runner = JobRunner(db, survivor, recorder.handlers())
    job_id = enqueue(db, "count", {"steps": 1})

    [lost] = take_now(doomed)  # ... and that worker never settles it
    assert lost.id == job_id
    assert take_now(survivor) == []  # still leased
    time.sleep(0.45)
    [again] = take_now(survivor)
    assert again.id == job_id
    asyncio.run(runner.run([again]))
    assert recorder.calls == [{"steps": 1}]
    # The first worker was only slow: its late step and settle neither fail nor fork the job
    # into a second chain of continuations.
    asyncio.run(JobRunner(db, doomed, recorder.handlers()).run([lost]))
    drain(runner)
    assert recorder.calls == [{"steps": 1}, {"steps": 1}, {"steps": 1, "cursor": 1}]
    assert survivor.pending_count() == doomed.pending_count() == 0
    assert db.read_sync(SqlJobStore().dead) == []


def test_a_killed_workers_jobs_are_taken_again_once_it_is_silent_not_after_the_lease(
        db: Database, make_queue: MakeQueue) -> None:
    recorder = Recorder()
    doomed, survivor = make_queue(alive_ms=300), make_queue(alive_ms=300)
    runner = JobRunner(db, survivor, recorder.handlers())
    job_id = enqueue(db, "count", {"steps": 0})

    asyncio.run(doomed.beat())
    [held] = take_now(doomed)
    assert held.id == job_id
    # Alive, its step running long past alive_ms (and past the Redis queue's look for
    # orphans, every RECLAIM_SECONDS): it keeps its job while it beats.
    beating_until = time.monotonic() + RECLAIM_SECONDS + 0.5
    while time.monotonic() < beating_until:
        asyncio.run(doomed.beat())
        assert take_now(survivor) == []
        time.sleep(0.1)
    # Killed: no more beats. The lease has a minute to run; the job is taken within seconds.
    killed = time.monotonic()
    again: list[Job] = []
    while not again:
        assert time.monotonic() - killed < 0.3 + RECLAIM_SECONDS + 2, "not taken again"
        time.sleep(0.05)
        again = take_now(survivor)
    assert [j.id for j in again] == [job_id]
    asyncio.run(runner.run(again))
    assert recorder.calls == [{"steps": 0}]
    assert survivor.pending_count() == 0
    assert db.read_sync(SqlJobStore().dead) == []


def test_an_idle_outbox_worker_beats_without_writing(db: Database) -> None:
    """Its beats write only while it holds jobs: an idle embedded server writes nothing."""
    queue = OutboxQueue(db, SqlJobStore(), lease_ms=60_000)

    def beats_written() -> int:
        return int(db.read_sync(lambda tx: tx.execute(
            select(func.count()).select_from(job_holders)
            .where(job_holders.c.id == queue.holder)).scalar_one()))

    asyncio.run(queue.beat())
    assert take_now(queue) == []
    asyncio.run(queue.beat())
    assert beats_written() == 0
    enqueue(db, "count", {"steps": 0})
    assert len(take_now(queue)) == 1
    db.write_sync(lambda tx: tx.execute(delete(job_holders)))
    asyncio.run(queue.beat())  # holding a job: known alive
    assert beats_written() == 1


# -- Redis Streams only --------------------------------------------------------------------

@pytest.fixture
def streams(db: Database, redis_url: str, redis_prefix: str) -> Iterator[RedisStreamQueue]:
    queue = RedisStreamQueue.from_url(redis_url, db, SqlJobStore(), prefix=redis_prefix,
                                      lease_ms=60_000)
    yield queue
    queue.close()


class _RelayTwice:
    """An outbox store whose first ``take`` does not delete: the relay crashed between its
    XADD and its commit, so the same rows are relayed again."""

    def __init__(self) -> None:
        self.store = SqlJobStore()
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def take(self, tx: Tx, now: int, limit: int) -> list[Job]:
        if self.crashed:
            return self.store.take(tx, now, limit)
        self.crashed = True
        return self.store.due(tx, now, limit)


def test_a_duplicate_relay_is_harmless(db: Database, redis_url: str,
                                       redis_prefix: str) -> None:
    queue = RedisStreamQueue(redis.Redis.from_url(redis_url, decode_responses=True), db,
                             _RelayTwice(), prefix=redis_prefix)  # type: ignore[arg-type]
    seen: set[tuple[str, str]] = set()

    def deliver(tx: Tx, payload: dict[str, object]) -> None:
        seen.add((str(payload["to"]), str(payload["post"])))  # idempotent, as handlers are

    runner = JobRunner(db, queue, {"deliver": deliver})
    job_id = enqueue(db, "deliver", {"to": "bob", "post": "1"})
    assert asyncio.run(queue.relay()) == 1
    assert asyncio.run(queue.relay()) == 1  # the same row again
    assert queue.client.xlen(queue.stream) == 2
    messages = queue.client.xrange(queue.stream)
    assert [int(fields["id"]) for _, fields in messages] == [job_id, job_id]
    runner.run_due_sync()
    assert seen == {("bob", "1")}
    assert queue.pending_count() == 0
    queue.close()


def test_a_message_delivered_on_a_lost_connection_is_taken_again(
        db: Database, streams: RedisStreamQueue) -> None:
    assert asyncio.run(streams.take(10, 0)) == []  # a running consumer, nothing to do
    job_id = enqueue(db, "count", {"steps": 0})
    asyncio.run(streams.relay())
    # Redis delivered the message to this consumer, but the reply never arrived.
    streams.client.xreadgroup(GROUP, streams.consumer, {streams.stream: ">"}, count=10)
    assert asyncio.run(streams.take(10, 0)) == []
    time.sleep(RECLAIM_SECONDS)
    assert [job.id for job in asyncio.run(streams.take(10, 0))] == [job_id]


def test_the_consumer_survives_its_stream_being_deleted(db: Database,
                                                        streams: RedisStreamQueue) -> None:
    """Redis lost its data (here: the stream deleted) before a read, or while one blocked:
    the consumer makes its group again and takes what is relayed next."""
    assert asyncio.run(streams.take(10, 0)) == []
    streams.client.delete(streams.stream)
    assert asyncio.run(streams.take(10, 0)) == []  # NOGROUP

    async def blocked_while_deleted() -> list[Job]:
        taking = asyncio.create_task(streams.take(10, 5))
        await asyncio.sleep(0.3)
        streams.client.delete(streams.stream)  # UNBLOCKED
        return await asyncio.wait_for(taking, 5)

    assert asyncio.run(blocked_while_deleted()) == []
    job_id = enqueue(db, "count", {"steps": 0})
    asyncio.run(streams.relay())
    assert [job.id for job in asyncio.run(streams.take(10, 0))] == [job_id]


def test_the_consumer_survives_its_connections_being_killed(
        db: Database, streams: RedisStreamQueue, redis_url: str) -> None:
    recorder = Recorder()
    runner = JobRunner(db, streams, recorder.handlers())
    enqueue(db, "count", {"steps": 1})
    asyncio.run(streams.relay())
    [job] = asyncio.run(streams.take(10, 0))
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        name = streams.client.client_getname()
        killed = [c["id"] for c in admin.client_list() if c.get("name") == name]
        assert killed
        for client_id in killed:
            admin.client_kill_filter(_id=client_id)
    finally:
        admin.close()
    asyncio.run(runner.run([job]))  # settles on a new connection
    drain(runner)
    assert [c.get("cursor") for c in recorder.calls] == [None, 1]
    assert streams.pending_count() == 0


def test_the_keys_share_one_cluster_slot(streams: RedisStreamQueue, redis_prefix: str) -> None:
    assert streams.stream == f"{redis_prefix}jobs:{{default}}"
    assert streams.delayed == f"{redis_prefix}jobs:{{default}}:delayed"


def test_a_job_that_keeps_stopping_its_workers_is_set_aside_as_dead(
        db: Database, redis_url: str, redis_prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_queue, "MAX_DELIVERIES", 3)
    workers = [RedisStreamQueue.from_url(redis_url, db, SqlJobStore(), prefix=redis_prefix,
                                         lease_ms=50) for _ in range(3)]
    job_id = enqueue(db, "count", {"steps": 1})

    async def take(queue: JobQueue) -> list[Job]:
        await queue.relay()
        return await queue.take(10, 0)

    try:
        [first] = asyncio.run(take(workers[0]))  # delivered once; this worker then dies
        time.sleep(0.08)
        [second] = asyncio.run(take(workers[1]))  # reclaimed: twice; this one dies too
        assert first.id == second.id == job_id
        time.sleep(0.08)
        assert asyncio.run(take(workers[2])) == []  # a third time: set aside, not run
        dead = db.read_sync(SqlJobStore().dead)
        assert [(job.id, error) for job, error in dead] == [
            (job_id, "abandoned 3 times: every worker that ran it stopped before it finished")]
        assert workers[2].pending_count() == 0  # not in the stream any more, only dead
    finally:
        for worker in workers:
            worker.close()


def test_an_outbox_job_whose_workers_keep_stopping_is_set_aside_as_dead(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_queue, "ABANDON_LIMIT", 3)
    queue = OutboxQueue(db, SqlJobStore(), lease_ms=50)
    job_id = enqueue(db, "count", {"steps": 1})
    for attempt in range(3):  # each worker takes the job and stops before settling it
        [taken] = asyncio.run(queue.take(10, 0))
        assert (taken.id, taken.attempts) == (job_id, attempt)
        time.sleep(0.08)
    assert asyncio.run(queue.take(10, 0)) == []  # a third lost run: set aside, not run
    [(dead, error)] = db.read_sync(SqlJobStore().dead)
    assert dead.id == job_id and error is not None and "set aside after 3 attempts" in error
    assert queue.pending_count() == 0


def test_consumers_of_dead_processes_leave_the_group(
        db: Database, streams: RedisStreamQueue) -> None:
    """A killed worker never leaves the group itself: the others remove it once it has been
    silent long enough, unless it still owns a pending entry (that one waits for the lease)."""
    asyncio.run(streams.take(10, 0))  # this consumer and the group exist
    client = streams.client
    client.xgroup_createconsumer(streams.stream, GROUP, "dead-idle")  # took nothing
    enqueue(db, "count", {"steps": 0})
    asyncio.run(streams.relay())
    client.xreadgroup(GROUP, "dead-holding", {streams.stream: ">"}, count=1)  # owns a job
    time.sleep(0.05)

    def names() -> set[str]:
        return {str(c["name"]) for c in client.xinfo_consumers(streams.stream, GROUP)}

    assert names() == {streams.consumer, "dead-idle", "dead-holding"}
    assert streams.remove_stale_consumers(60_000) == 0  # not silent for long enough yet
    assert streams.remove_stale_consumers(20) == 1
    assert names() == {streams.consumer, "dead-holding"}
