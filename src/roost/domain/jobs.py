"""Background work: runs the jobs recorded in the outbox, at least once, with retries.

Each job runs in one write transaction together with its own bookkeeping (finish, or save
progress for a long fan-out), so a crash at any point either keeps the job or completes it:
handlers are idempotent, so running a step twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Callable

from roost.clock import now_ms
from roost.domain.models import Job
from roost.storage.database import Database, Tx
from roost.storage.stores import Stores

log = logging.getLogger(__name__)

Handler = Callable[[Tx, dict[str, object]], dict[str, object] | None]
"""Does one step of a job; returns the payload to continue from, or None when done."""

MAX_ATTEMPTS = 8
BATCH = 32


def backoff_ms(attempts: int) -> int:
    return int(min(2**attempts * 1000, 15 * 60 * 1000))


class JobRunner:
    def __init__(self, db: Database, stores: Stores, handlers: dict[str, Handler], *,
                 lease_ms: int = 60_000) -> None:
        self.db = db
        self.stores = stores
        self.handlers = handlers
        self.lease_ms = lease_ms
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _step(self, tx: Tx, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            raise LookupError(f"no handler for job kind {job.kind!r}")
        progress = handler(tx, job.payload)
        if progress is None:
            self.stores.jobs.finish(tx, job.id)
        else:
            self.stores.jobs.save_progress(tx, job.id, progress)

    def _fail(self, tx: Tx, job: Job, error: BaseException) -> None:
        attempts = job.attempts + 1
        text = "".join(traceback.format_exception_only(error)).strip()
        self.stores.jobs.retry(tx, job.id, text, now_ms() + backoff_ms(attempts),
                               dead=attempts >= MAX_ATTEMPTS)
        log.warning("job %s (%s) failed, attempt %d: %s", job.id, job.kind, attempts, text)

    async def run_due(self) -> int:
        """Claim due jobs (up to BATCH) and run one step of each; returns how many ran."""
        due = await self.db.write(
            lambda tx: self.stores.jobs.claim(tx, now_ms(), BATCH, self.lease_ms))

        async def run(job: Job) -> None:
            try:
                await self.db.write(lambda tx: self._step(tx, job))
            except Exception as exc:
                error = exc
                await self.db.write(lambda tx: self._fail(tx, job, error))

        # Submitted together, the steps share one commit in the writer.
        await asyncio.gather(*(run(job) for job in due))
        return len(due)

    def run_due_sync(self) -> int:
        """Run due jobs until none are left (CLI and tests)."""
        total = 0
        while True:
            ran = asyncio.run(self.run_due())
            total += ran
            if ran == 0:
                return total

    def wake(self, events: list[object]) -> None:
        """Database after-commit hook: wake the worker when a commit enqueued jobs."""
        if self._loop is not None and self._wake is not None and events:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run_forever(self, idle_seconds: float = 1.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            try:
                ran = await self.run_due()
            except Exception:
                log.exception("job runner failed; retrying")
                ran = 0
            if ran:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), idle_seconds)
