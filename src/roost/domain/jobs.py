"""Background work: runs the jobs recorded in the outbox, at least once, with retries.

Jobs are written to the outbox in the transaction of the change that needs them and reach the
runner through a ``JobQueue``: the outbox itself (embedded) or a Redis Stream the outbox is
relayed into (production; ``storage/queue.py`` chooses). Each step of a job runs in one write
transaction; the queue learns its outcome in that transaction (outbox) or right after it
commits (stream). A crash at any point therefore either keeps the job or completes it, and a
step may run twice: handlers are idempotent, so that is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable

from roost.clock import now_ms
from roost.domain.models import Job
from roost.storage.database import Database, Tx
from roost.storage.protocols import JobQueue

log = logging.getLogger(__name__)

Handler = Callable[[Tx, dict[str, object]], dict[str, object] | None]
"""Does one step of a job; returns the payload to continue from, or None when done."""
Outcome = tuple[Job, dict[str, object] | None, Exception | None]
BatchHandler = Callable[[Tx, list[dict[str, object]]], list[dict[str, object] | None]]
"""Does one step of several jobs of one kind at once; returns each one's ``Handler`` answer."""

MAX_ATTEMPTS = 8
BATCH = 32
ERROR_PAUSE_SECONDS = 1.0  # after the queue itself failed (database or broker unreachable)
HEARTBEAT_SECONDS = 1.0  # how often a running worker tells the others it is alive


def backoff_ms(attempts: int) -> int:
    return int(min(2**attempts * 1000, 15 * 60 * 1000))


class JobRunner:
    def __init__(self, db: Database, queue: JobQueue, handlers: dict[str, Handler],
                 batch_handlers: dict[str, BatchHandler] | None = None) -> None:
        self.db = db
        self.queue = queue
        self.handlers = handlers
        # Kinds whose due jobs run their steps in one operation: a burst of posts' fan-outs
        # then asks the database once, not once per post (BENCHMARKS.md).
        self.batch_handlers = batch_handlers or {}

    def _step(self, tx: Tx, job: Job) -> dict[str, object] | None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            raise LookupError(f"no handler for job kind {job.kind!r}")
        progress = handler(tx, job.payload)
        self.queue.record(tx, job, progress)
        return progress

    async def _fail(self, job: Job, error: BaseException) -> None:
        attempts = job.attempts + 1
        text = "".join(traceback.format_exception_only(error)).strip()
        await self.queue.retry(job, text, now_ms() + backoff_ms(attempts),
                               dead=attempts >= MAX_ATTEMPTS)
        log.warning("job %s (%s) failed, attempt %d: %s", job.id, job.kind, attempts, text)

    def _steps(self, tx: Tx, kind: str, jobs: list[Job]) -> list[dict[str, object] | None]:
        progress = self.batch_handlers[kind](tx, [job.payload for job in jobs])
        for job, job_progress in zip(jobs, progress, strict=True):
            self.queue.record(tx, job, job_progress)
        return progress

    async def run(self, due: list[Job]) -> None:
        """Run one step of each job, then settle them with the queue."""

        async def step(job: Job) -> list[Outcome]:
            try:
                return [(job, await self.db.write(lambda tx: self._step(tx, job)), None)]
            except Exception as exc:
                return [(job, None, exc)]

        async def steps(kind: str, jobs: list[Job]) -> list[Outcome]:
            try:
                progress = await self.db.write(lambda tx: self._steps(tx, kind, jobs))
            except Exception as exc:  # one of them, most likely: each runs alone, to fail alone
                log.info("%d %s jobs failed together (%s); running each alone",
                         len(jobs), kind, exc)
                return [outcome for one in await asyncio.gather(*(step(job) for job in jobs))
                        for outcome in one]
            return list(zip(jobs, progress, [None] * len(jobs), strict=True))

        together: dict[str, list[Job]] = {}
        alone: list[Job] = []
        for job in due:
            if job.kind in self.batch_handlers:
                together.setdefault(job.kind, []).append(job)
            else:
                alone.append(job)
        # Submitted together, the operations share one commit in the writer.
        outcomes = [outcome for done in await asyncio.gather(
            *(step(job) for job in alone),
            *(steps(kind, jobs) if len(jobs) > 1 else step(jobs[0])
              for kind, jobs in together.items()))
            for outcome in done]
        await self.queue.settle([(job, progress) for job, progress, error in outcomes
                                 if error is None])
        for job, _, error in outcomes:
            if error is not None:
                await self._fail(job, error)

    async def run_due(self) -> int:
        """Relay what the outbox holds, take due jobs (up to BATCH) without waiting and run
        one step of each; returns how many ran."""
        await self.queue.relay()
        due = await self.queue.take(BATCH, 0)
        await self.run(due)
        return len(due)

    def run_due_sync(self) -> int:
        """Run due jobs until none are left (CLI, tests and benchmarks)."""
        total = 0
        while True:
            ran = asyncio.run(self.run_due())
            total += ran
            if ran == 0:
                return total

    def pending_count(self) -> int:
        """Jobs not finished and not dead, wherever they wait (the outbox, a stream)."""
        return self.queue.pending_count()

    async def run_forever(self, poll_seconds: float = 1.0) -> None:
        """Relay and run jobs as they come. Jobs committed in this process are seen at once;
        ``poll_seconds`` is how soon the outbox is checked for other processes' jobs."""
        await asyncio.gather(self.queue.relay_forever(poll_seconds),
                             self._consume_forever(poll_seconds), self._beat_forever())

    async def _beat_forever(self) -> None:
        """Keep this worker known as alive, apart from the steps: a long step does not make
        it look dead, and a killed worker's jobs go to the others seconds after it died."""
        silent = False
        while True:
            try:
                await self.queue.beat()
            except Exception as exc:  # the others take its jobs once it stays silent
                if not silent:
                    log.warning("cannot tell the other workers this one is alive: %s", exc)
                silent = True
            else:
                if silent:
                    log.warning("telling the other workers this one is alive again")
                silent = False
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _consume_forever(self, poll_seconds: float) -> None:
        while True:
            try:
                await self.run(await self.queue.take(BATCH, poll_seconds))
            except Exception:
                log.exception("job runner failed; retrying")
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
