"""The job outbox in SQL: the embedded job queue, and the source production relays from."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import delete, func, or_, select, update

from roost.domain.models import Job
from roost.ids import new_id
from roost.storage.database import Tx, emit
from roost.storage.schema import job_holders, jobs
from roost.storage.sql.raw import Raw

c = jobs.c
# Every post and follow enqueues a job; nothing reads the insert's result, so on
# PostgreSQL's writer it goes out with the next statement (Raw.send).
_INSERT = Raw("INSERT INTO jobs (id, kind, payload, attempts, run_after, last_error, dead,"
              " locked_until) VALUES (:id, :kind, :payload, 0, :run_after, NULL, FALSE, 0)")
JOBS_ENQUEUED = "jobs-enqueued"
# A worker's heartbeat (OutboxQueue.beat, and each claim) and the forgetting of processes
# past their time; sent ahead on PostgreSQL, with the claim that follows.
_ALIVE = Raw("INSERT INTO job_holders (id, alive_until) VALUES (:holder, :alive_until)"
             " ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until")
_FORGET_DEAD = Raw("DELETE FROM job_holders WHERE alive_until < :now")


def _job(row: Any) -> Job:
    return Job(row.id, row.kind, orjson.loads(row.payload), row.attempts)


class SqlJobStore:
    def enqueue(self, tx: Tx, kind: str, payload: dict[str, object], run_after: int) -> int:
        job_id = new_id()
        _INSERT.send(tx, {"id": job_id, "kind": kind, "payload": orjson.dumps(payload).decode(),
                          "run_after": run_after})
        emit(tx, JOBS_ENQUEUED)
        return job_id

    def due(self, tx: Tx, now: int, limit: int) -> list[Job]:
        rows = tx.execute(
            select(jobs).where(c.dead.is_(False), c.run_after <= now).order_by(c.id).limit(limit)
        )
        return [_job(r) for r in rows]

    def alive(self, tx: Tx, holder: int, now: int, alive_until: int) -> None:
        """Record that worker process ``holder`` is alive until ``alive_until``, and forget
        the processes whose time has passed (their jobs are free to take)."""
        _ALIVE.send(tx, {"holder": holder, "alive_until": alive_until})
        _FORGET_DEAD.send(tx, {"now": now})

    def claim(self, tx: Tx, now: int, limit: int, lease_ms: int, holder: int) -> list[Job]:
        """Take up to ``limit`` due jobs that no live lease holds, leasing them to ``holder``
        until ``now + lease_ms``. A lease is over when it runs out or, sooner, when its
        holder is no longer alive (``alive``): a killed worker's jobs wait seconds, not the
        lease. On PostgreSQL, rows another worker is claiming are skipped. A job whose lease
        ended unreleased (its worker stopped mid-step) counts that as a failed attempt, so a
        job that kills its workers ends up dead instead of looping."""
        live_holders = select(job_holders.c.id).where(job_holders.c.alive_until > now)
        stmt = (select(jobs).where(c.dead.is_(False), c.run_after <= now,
                                   or_(c.locked_until <= now, c.locked_by.not_in(live_holders)))
                .order_by(c.id).limit(limit))
        if tx.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True, of=jobs)
        rows = tx.execute(stmt).all()
        if not rows:
            return []
        tx.execute(update(jobs).where(c.id.in_([r.id for r in rows]))
                   .values(locked_until=now + lease_ms, locked_by=holder))
        abandoned = [r.id for r in rows if r.locked_until > 0]
        if abandoned:
            tx.execute(update(jobs).where(c.id.in_(abandoned)).values(attempts=c.attempts + 1))
        return [replace(_job(r), attempts=r.attempts + 1) if r.locked_until > 0 else _job(r)
                for r in rows]

    def finish(self, tx: Tx, job_id: int) -> None:
        tx.execute(delete(jobs).where(c.id == job_id))

    def save_progress(self, tx: Tx, job_id: int, payload: dict[str, object]) -> None:
        encoded = orjson.dumps(payload).decode()
        tx.execute(update(jobs).where(c.id == job_id).values(payload=encoded, locked_until=0,
                                                            locked_by=None))

    def retry(self, tx: Tx, job_id: int, error: str, run_after: int, dead: bool) -> None:
        tx.execute(update(jobs).where(c.id == job_id).values(
            attempts=c.attempts + 1, last_error=error[:2000], run_after=run_after, dead=dead,
            locked_until=0, locked_by=None,
        ))

    def dead(self, tx: Tx) -> list[tuple[Job, str | None]]:
        rows = tx.execute(select(jobs).where(c.dead.is_(True)).order_by(c.id))
        return [(_job(r), r.last_error) for r in rows]

    def revive(self, tx: Tx, job_id: int, now: int) -> bool:
        result = tx.execute(update(jobs).where(c.id == job_id, c.dead.is_(True)).values(
            dead=False, attempts=0, run_after=now, locked_until=0, locked_by=None
        ))
        if result.rowcount == 1:
            emit(tx, JOBS_ENQUEUED)
        return result.rowcount == 1

    def take(self, tx: Tx, now: int, limit: int) -> list[Job]:
        """Remove and return up to ``limit`` due jobs (the relay to Redis Streams). Deleted
        in the transaction that hands them over, so they leave the outbox only if it commits;
        on PostgreSQL rows another relay is taking are skipped."""
        stmt = (select(jobs).where(c.dead.is_(False), c.run_after <= now, c.locked_until <= now)
                .order_by(c.id).limit(limit))
        if tx.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        taken = [_job(r) for r in tx.execute(stmt)]
        if taken:
            tx.execute(delete(jobs).where(c.id.in_([j.id for j in taken])))
        return taken

    def bury(self, tx: Tx, job: Job, error: str) -> None:
        """Write back a job taken by ``take`` as dead, so ``dead`` lists it and ``revive``
        returns it to the outbox (replacing the row if a duplicate relay left one)."""
        tx.execute(delete(jobs).where(c.id == job.id))
        tx.execute(jobs.insert(), {"id": job.id, "kind": job.kind,
                                   "payload": orjson.dumps(job.payload).decode(),
                                   "attempts": job.attempts, "run_after": 0,
                                   "last_error": error[:2000], "dead": True,
                                   "locked_until": 0})

    def pending_count(self, tx: Tx) -> int:
        return int(tx.execute(select(func.count()).select_from(jobs).where(c.dead.is_(False)))
                   .scalar() or 0)
