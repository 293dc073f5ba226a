"""Job queue throughput: the outbox as the queue against Redis Streams fed from the outbox.

    .venv/bin/python -m bench.queue [--jobs 2000] [--followers 10000] [--workers 1 2]
                                    [--repeat 3]

For each queue (``ROOST_JOB_QUEUE=database``, then ``redis``) and each worker count, on a fresh
PostgreSQL database (127.0.0.1:5432, user postgres) with home timelines in Redis
(127.0.0.1:6379, a unique key prefix: the production shape, where only the queue differs),
it starts that many `roost worker` processes, waits until they idle, and measures the time from
the commit that enqueued the work to the moment nothing is pending (``pending_count``: outbox,
stream and delayed set):

- ``noop``: ``--jobs`` jobs committed in one transaction, each a near-empty step (a
  ``backfill`` for a follow that does not exist: one indexed read, then finished);
- ``fanout``: one post by an author with ``--followers`` followers (steps of
  ``ROOST_FANOUT_BATCH_SIZE``, default 2,000), checked to have reached every home timeline.

The queues take turns run by run (fresh workers each run), so that both meet the same load on
a shared machine; each result has the median and best of ``--repeat`` runs and every run. Idle
workers poll the outbox every 50 ms in both modes, so up to 50 ms of each figure is that poll.
Prints one JSON object per (queue, workers) on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import insert

from bench.backends import scratch_database
from roost.clock import now_ms
from roost.domain.posts import NewPost
from roost.runtime import Roost
from roost.settings import Settings
from roost.storage.schema import accounts, follows
from roost.storage.sql.jobs import JOBS_ENQUEUED

REDIS_URL = "redis://127.0.0.1:6379/14"
AUTHOR = 1 << 40


def _log(message: str) -> None:
    print(f"[queue {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _seed(roost: Roost, followers: int) -> list[int]:
    """The author and ``followers`` active accounts following it, bulk-inserted."""
    base = now_ms() - 86_400_000
    ids = [(base + i) << 16 for i in range(followers)]
    rows = [{"id": AUTHOR, "username": "author", "username_lower": "author",
             "created_at": base, "last_active_at": now_ms()}]
    rows += [{"id": i, "username": f"fan{n}", "username_lower": f"fan{n}", "created_at": base,
              "last_active_at": now_ms()} for n, i in enumerate(ids)]
    edges = [{"account_id": i, "target_account_id": AUTHOR, "id": i, "created_at": base}
             for i in ids]

    def load(tx: Any) -> None:
        tx.execute(insert(accounts), rows)
        tx.execute(insert(follows), edges)

    roost.db.write_sync(load)
    return ids


class CommitClock:
    """The moment of the last commit that enqueued jobs, taken in the database's after-commit
    hook: the figures run from the commit, not from when the caller got its answer back."""

    def __init__(self, roost: Roost) -> None:
        self.at = 0.0
        roost.db.on_commit(self._on_commit)

    def _on_commit(self, events: list[object]) -> None:
        if JOBS_ENQUEUED in events:
            self.at = time.perf_counter()


def _wait_drained(roost: Roost, clock: CommitClock, timeout: float = 300) -> float:
    while roost.jobs.pending_count():
        if time.perf_counter() - clock.at > timeout:
            raise RuntimeError("the queue did not drain")
        time.sleep(0.005)
    return time.perf_counter() - clock.at


def _noop(roost: Roost, clock: CommitClock, jobs: int) -> float:
    def enqueue(tx: Any) -> None:
        for n in range(jobs):
            roost.stores.jobs.enqueue(tx, "backfill", {"account_id": n + 1, "author_id": 7}, 0)

    roost.db.write_sync(enqueue)
    return _wait_drained(roost, clock)


def _fanout(roost: Roost, clock: CommitClock, client: redis.Redis, prefix: str,
            fans: list[int], run: int) -> float:
    """Seconds from the post's commit to an empty queue; run ``run`` (0-based) leaves
    ``run + 1`` entries in every follower's home timeline."""
    view = asyncio.run(roost.posts.create(AUTHOR, NewPost(text=f"to everyone, run {run}")))
    seconds = _wait_drained(roost, clock)
    pipe = client.pipeline(transaction=False)
    for fan in fans:
        pipe.zcard(f"{prefix}home:{{{fan}}}")
    reached = sum(1 for size in pipe.execute() if size == run + 1)
    if reached < len(fans):
        raise RuntimeError(f"fan-out of {view.status.id} reached {reached} of {len(fans)}")
    return seconds


def _workers(count: int, data_dir: Path, env: dict[str, str],
             log: Path) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-m", "roost", "--data-dir", str(data_dir),
                              "worker"], env={**os.environ, **env},
                             stdout=log.open("ab"), stderr=subprocess.STDOUT)
            for _ in range(count)]


class Setup:
    """One queue's world: a fresh database with the author and followers, a key prefix, and a
    Roost in this process that commits the work and watches ``pending_count``."""

    def __init__(self, queue: str, followers: int, root: Path, stack: ExitStack) -> None:
        self.queue = queue
        self.prefix = f"roost-bench-queue-{secrets.token_hex(4)}:"
        database_url = stack.enter_context(scratch_database("postgresql", "roost-queue"))
        self.env = {"ROOST_DATABASE_URL": database_url, "ROOST_REDIS_URL": REDIS_URL,
                    "ROOST_REDIS_PREFIX": self.prefix, "ROOST_JOB_QUEUE": queue,
                    "ROOST_LOG_LEVEL": "warning"}
        self.root = root / queue
        self.roost = Roost(Settings.model_validate({
            "data_dir": self.root, "database_url": database_url, "redis_url": REDIS_URL,
            "redis_prefix": self.prefix, "job_queue": queue}))
        self.roost.start()
        self.clock = CommitClock(self.roost)
        stack.callback(self.close)
        self.fans = _seed(self.roost, followers)
        self.posts = 0

    def close(self) -> None:
        self.roost.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
        client.close()

    def round(self, workers: int, jobs: int, client: redis.Redis) -> tuple[float, float]:
        """Start ``workers`` workers, let them idle, time the no-op jobs and one fan-out."""
        processes = _workers(workers, self.root, self.env, self.root.parent / f"{self.queue}.log")
        try:
            time.sleep(2.0)  # started and idle
            noop = _noop(self.roost, self.clock, jobs)
            fanout = _fanout(self.roost, self.clock, client, self.prefix, self.fans, self.posts)
            self.posts += 1
            return noop, fanout
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)


def _summary(queue: str, workers: int, jobs: int, followers: int,
             runs: list[tuple[float, float]]) -> dict[str, Any]:
    noop = [n for n, _ in runs]
    fanout = [f for _, f in runs]
    return {
        "name": "queue", "queue": queue, "workers": workers,
        "noop": {"jobs": jobs, "median_seconds": round(statistics.median(noop), 3),
                 "median_jobs_per_second": round(jobs / statistics.median(noop)),
                 "best_jobs_per_second": round(jobs / min(noop)),
                 "runs": [round(s, 3) for s in noop]},
        "fanout": {"followers": followers,
                   "median_seconds": round(statistics.median(fanout), 3),
                   "best_seconds": round(min(fanout), 3),
                   "runs": [round(s, 3) for s in fanout]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queues", nargs="+", default=["database", "redis"])
    args = parser.parse_args()
    client = redis.Redis.from_url(REDIS_URL)
    with tempfile.TemporaryDirectory(prefix="roost-bench-queue-") as tmp, ExitStack() as stack:
        setups = [Setup(queue, args.followers, Path(tmp), stack) for queue in args.queues]
        for workers in args.workers:
            runs: dict[str, list[tuple[float, float]]] = {q: [] for q in args.queues}
            load = [os.getloadavg()[0]]
            for repeat in range(args.repeat):
                # The queues take turns, so both meet the same (shared, noisy) machine.
                for setup in setups if repeat % 2 == 0 else setups[::-1]:
                    _log(f"{setup.queue} queue, {workers} worker(s), run {repeat + 1}")
                    runs[setup.queue].append(setup.round(workers, args.jobs, client))
            load.append(os.getloadavg()[0])
            for queue in args.queues:
                print(json.dumps({**_summary(queue, workers, args.jobs, args.followers,
                                              runs[queue]), "load_average": load}), flush=True)
    client.close()


if __name__ == "__main__":
    main()
