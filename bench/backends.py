"""The two ways Roost runs, as the benchmarks set them up: where a workload's data lives, how
its servers start, and how the harness watches the stores the server writes.

- ``embedded``: one `roost serve` on a fresh SQLite data dir (the background worker inside).
- ``production``: a fresh PostgreSQL database and a unique Redis key prefix per workload, one
  `roost serve` with ``ROOST_EMBEDDED_WORKER=false`` and ``--workers`` `roost worker`
  processes. The databases are dropped and the Redis keys deleted at the end (unless --keep).

Watching (``Probe``) goes where the data is: the job store's pending count for the backlog,
the database for rows, and for home timelines the Redis sorted sets (production), with the
timeline store's own key and member encoding, the ``home_timeline`` table (a server with
``ROOST_HOME_TIMELINES=database``), or, for timelines in the embedded server's own memory,
its API (``bench/homes.py``: each account's home read with its token).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import text

from bench.harness import REPO, Process, die_with_parent, log, roost_server
from bench.homes import HttpHomes
from roost.domain.models import TimelineEntry
from roost.runtime import Roost
from roost.settings import Settings
from roost.storage import migrate
from roost.storage.database import Database, Tx
from roost.storage.redis.timelines import RedisHomeTimelineStore, encode

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql://postgres@127.0.0.1:5432/{name}"
REDIS_URL = "redis://127.0.0.1:6379/0"

# KEYS: timelines; ARGV[1]: a member. Returns 1 per key holding the member, else 0: one round
# trip however many timelines are checked.
_HOLDS = """
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('ZSCORE', KEYS[i], ARGV[1]) and 1 or 0
end
return out
"""


@dataclass
class Target:
    """Where one workload's data lives."""

    name: str
    data_dir: Path
    synchronous: str
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "roost:"
    overrides: dict[str, str] = field(default_factory=dict)  # more ROOST_* settings

    @property
    def production(self) -> bool:
        return self.database_url is not None

    def env(self) -> dict[str, str]:
        """The ROOST_* environment of every process started on this target."""
        env = {"ROOST_SQLITE_SYNCHRONOUS": self.synchronous, "ROOST_LOG_LEVEL": "warning",
               **self.overrides}
        if self.database_url:
            env["ROOST_DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["ROOST_REDIS_URL"] = self.redis_url
            env["ROOST_REDIS_PREFIX"] = self.redis_prefix
        return env

    def settings(self) -> Settings:
        values: dict[str, Any] = {k.removeprefix("ROOST_").lower(): v
                                  for k, v in self.env().items()}
        values.pop("log_level", None)
        return Settings(data_dir=self.data_dir, **values)


@dataclass
class Deployment:
    """The running processes of one workload: the web server and any workers."""

    server: Process
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    web_processes: int = 1

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def web_pids(self) -> list[int]:
        """The processes that serve requests: the server itself, or with several web
        processes the ones uvicorn's supervisor started (its multiprocessing children)."""
        if self.web_processes == 1:
            return [self.server.pid]
        return server_children(self.server.pid)

    @property
    def pids(self) -> dict[str, int]:
        """Every Roost process by role: ``server`` (or ``server1``, ``server2``, ... with
        several web processes), ``worker1``, ``worker2``, ..."""
        web = self.web_pids
        out = ({"server": web[0]} if len(web) == 1
               else {f"server{i + 1}": pid for i, pid in enumerate(web)})
        out.update({f"worker{i + 1}": w.pid for i, w in enumerate(self.workers)})
        return out

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self.workers.clear()
        self.server.stop()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class Backend:
    """Makes targets, starts their servers, runs the CLI on them, and cleans up."""

    name = "embedded"

    def __init__(self, work_dir: Path, synchronous: str, workers: int = 0,
                 src: Path | None = None, keep: bool = False, web_processes: int = 1) -> None:
        self.web_processes = web_processes
        self.work_dir = work_dir
        self.synchronous = synchronous
        self.workers = workers
        self.src = src
        self.keep = keep
        self.targets: list[Target] = []

    def target(self, name: str, **overrides: str) -> Target:
        data_dir = self.work_dir / name / "data"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        target = Target(name, data_dir, self.synchronous, overrides=dict(overrides))
        self.targets.append(target)
        return target

    def deploy(self, target: Target) -> Deployment:
        """Start `roost serve` (and the workers) on ``target``; returns once it answers."""
        env = target.env()
        if self.web_processes > 1:
            env["ROOST_WEB_PROCESSES"] = str(self.web_processes)
        server = roost_server(target.data_dir, self.synchronous, self.src, env)
        log(f"{target.name}: starting roost serve"
            + (f" with {self.web_processes} processes" if self.web_processes > 1 else "")
            + (f" and {self.workers} roost worker(s)" if self.workers else ""))
        server.start()
        deployment = Deployment(server, web_processes=self.web_processes)
        try:
            if self.web_processes > 1:  # every process answers before the load starts
                wait_for_children(server.pid, self.web_processes)
            for n in range(self.workers):
                deployment.workers.append(self._worker(target, n))
        except BaseException:
            deployment.stop()
            raise
        return deployment

    def _worker(self, target: Target, n: int) -> subprocess.Popen[bytes]:
        env = dict(server_env(self.src))
        env.update(target.env())
        log_path = target.data_dir.parent / f"worker{n + 1}.log"
        with log_path.open("ab") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "roost", "--data-dir", str(target.data_dir), "worker"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # it prints its banner once it is running
            if worker.poll() is not None:
                raise RuntimeError(f"roost worker exited:\n{log_path.read_text()[-3000:]}")
            if b"Roost worker on" in log_path.read_bytes():
                return worker
            time.sleep(0.05)
        worker.kill()
        raise RuntimeError(f"roost worker did not start:\n{log_path.read_text()[-3000:]}")

    def cli(self, target: Target, *args: str,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``roost <args>`` on ``target`` (a fresh process, the target's ROOST_* settings)."""
        env = dict(server_env(None))
        env.update(target.env())
        return subprocess.run([sys.executable, "-m", "roost", "--data-dir", str(target.data_dir),
                               *args], capture_output=True, text=True, timeout=timeout,
                              cwd=REPO, env=env)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "workers": self.workers or None,
                "web_processes": self.web_processes}

    def cleanup(self) -> None:
        """Remove what the targets hold outside the work dir (nothing, when embedded)."""


class ProductionBackend(Backend):
    name = "production"

    def __init__(self, work_dir: Path, synchronous: str, workers: int = 1,
                 src: Path | None = None, keep: bool = False, web_processes: int = 1) -> None:
        super().__init__(work_dir, synchronous, workers, src, keep, web_processes)
        self.run_id = secrets.token_hex(4)
        self.databases: list[str] = []
        self.prefixes: list[str] = []

    def target(self, name: str, **overrides: str) -> Target:
        target = super().target(name, **overrides)
        database = f"roost_bench_{self.run_id}_{name}"
        create_database(database)
        self.databases.append(database)
        target.database_url = PG_URL.format(name=database)
        target.redis_url = REDIS_URL
        target.redis_prefix = f"roostbench:{self.run_id}:{name}:"
        target.overrides.setdefault("ROOST_EMBEDDED_WORKER", "false")  # `roost worker` does it
        self.prefixes.append(target.redis_prefix)
        return target

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "workers": self.workers,
                "web_processes": self.web_processes, "run_id": self.run_id,
                "job_queue": os.environ.get("ROOST_JOB_QUEUE", "auto"),
                "postgresql": pg_version(), "redis": redis_version()}

    def cleanup(self) -> None:
        if self.keep:
            log(f"kept databases {', '.join(self.databases)} and Redis prefixes "
                f"{', '.join(self.prefixes)}")
            return
        for database in self.databases:
            drop_database(database)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            for prefix in self.prefixes:
                delete_keys(client, prefix)
        finally:
            client.close()
        self.databases.clear()
        self.prefixes.clear()


def make_backend(name: str, work_dir: Path, synchronous: str, workers: int | None,
                 src: Path | None, keep: bool, web_processes: int = 1) -> Backend:
    if name == "production":
        return ProductionBackend(work_dir, synchronous, 1 if workers is None else workers,
                                 src, keep, web_processes)
    if web_processes > 1:
        raise ValueError("several web processes need the production backend")
    return Backend(work_dir, synchronous, 0, src, keep)


def server_children(pid: int) -> list[int]:
    """The web processes uvicorn's supervisor ``pid`` started (not multiprocessing's
    resource tracker), oldest first."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            children.append((int(fields[19]), int(stat.parent.name)))  # (start time, pid)
    return [child for _, child in sorted(children)]


def wait_for_children(pid: int, count: int, timeout: float = 60) -> None:
    """Wait until the supervisor ``pid`` has ``count`` web processes, each past startup
    (its listening socket is shared, so answering requests proves nothing about the rest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = server_children(pid)
        if len(children) == count and all(_threads(child) > 1 for child in children):
            time.sleep(1.0)  # startup (migrations done in the parent) takes well under this
            return
        time.sleep(0.1)
    raise RuntimeError(f"roost serve did not start {count} web processes")


def _threads(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


def server_env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(src)] if src is not None else []
    paths += [str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


# -- PostgreSQL and Redis administration -----------------------------------------------------


def pending_jobs(roost: Roost) -> int:
    """Jobs not yet finished and not dead: the job queue's own count (the outbox plus, with
    the Redis Streams queue, the stream), or the outbox's where the runner has no queue."""
    queue = getattr(roost.jobs, "queue", None)
    if queue is not None and callable(getattr(queue, "pending_count", None)):
        return int(queue.pending_count())
    return roost.db.read_sync(lambda tx: roost.stores.jobs.pending_count(tx))


@contextlib.contextmanager
def scratch_database(engine: str, prefix: str) -> Iterator[str]:
    """The URL of an empty database for an in-process measurement: a SQLite file in a new
    temporary folder, or a new PostgreSQL database on the local server, dropped afterwards."""
    if engine != "postgresql":
        folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        yield Settings(data_dir=folder).resolved_database_url()
        return
    name = f"roost_bench_{secrets.token_hex(4)}"
    create_database(name)
    try:
        yield PG_URL.format(name=name)
    finally:
        drop_database(name)


@contextlib.contextmanager
def migrated_database(engine: str, prefix: str) -> Iterator[Database]:
    """A started ``Database`` on a new ``scratch_database``, migrated, closed afterwards."""
    with scratch_database(engine, prefix) as url:
        db = Database(url, sqlite_synchronous="NORMAL")
        try:
            migrate.upgrade(db)
            db.start()
            yield db
        finally:
            db.close()


def create_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_version() -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


def redis_version() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


def delete_keys(client: redis.Redis, prefix: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += int(client.unlink(*batch))
            batch = []
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted


# -- watching a target -----------------------------------------------------------------------


class Probe:
    """Read-only views of a target's stores for the harness, while its server runs."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.roost = Roost(target.settings())  # not started: reads only, no writer
        self.home = self.roost.stores.home
        # (in the server's memory: seen only over HTTP, through ``use``)
        self.in_memory = target.settings().resolved_home_timelines() == "memory"
        self.http: HttpHomes | None = None
        self.redis: redis.Redis | None = None
        if isinstance(self.home, RedisHomeTimelineStore):
            self.redis = redis.Redis.from_url(target.redis_url or REDIS_URL)
            self._holds = self.redis.register_script(_HOLDS)

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
        self.roost.close()

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def pending_jobs(self) -> int:
        """The backlog: jobs not yet finished, wherever they wait."""
        return pending_jobs(self.roost)

    def scalar(self, sql: str, **params: Any) -> int:
        """One number from the database; ``sql`` uses ``:name`` parameters."""

        def query(tx: Tx) -> int:
            return int(tx.execute(text(sql), params).scalar() or 0)

        return self.roost.db.read_sync(query)

    def use(self, homes: HttpHomes) -> None:
        """Read home timelines through the server's API (timelines in its memory)."""
        self.http = homes

    def holding(self, status_id: int, author_id: int, accounts: Sequence[int]) -> list[int]:
        """The accounts among ``accounts`` whose home timeline holds the status."""
        if self.in_memory:
            assert self.http is not None, "timelines in the server's memory: call use() first"
            return self.http.holding(status_id, accounts)
        found: set[int] = set()
        for start in range(0, len(accounts), 5_000):
            chunk = list(accounts[start:start + 5_000])
            if self.redis is None:
                found.update(self._sql_holding(status_id, chunk))
            else:
                assert isinstance(self.home, RedisHomeTimelineStore)
                member = encode(TimelineEntry(status_id, author_id, None))
                flags = self._holds(keys=[self.home.key(a) for a in chunk], args=[member])
                found.update(a for a, flag in zip(chunk, flags, strict=True) if flag)
        return [a for a in accounts if a in found]

    def _sql_holding(self, status_id: int, accounts: list[int]) -> list[int]:
        if self.roost.db.is_sqlite:
            sql = ("SELECT account_id FROM home_timeline WHERE status_id = :s "
                   "AND account_id IN (SELECT value FROM json_each(:ids))")
            ids: Any = "[" + ",".join(map(str, accounts)) + "]"
        else:
            sql = ("SELECT account_id FROM home_timeline WHERE status_id = :s "
                   "AND account_id = ANY(:ids)")
            ids = accounts

        def query(tx: Tx) -> list[int]:
            return [int(r[0]) for r in tx.execute(text(sql), {"s": status_id, "ids": ids})]

        return self.roost.db.read_sync(query)

    def delivered_count(self, status_id: int) -> int | None:
        """How many home timelines hold the status, when one query can tell (SQL stores)."""
        if self.redis is not None or self.in_memory:
            return None
        return self.scalar("SELECT count(*) FROM home_timeline WHERE status_id = :s",
                           s=status_id)

    def home_entries(self, accounts: Sequence[int]) -> int | None:
        """Entries in the home timelines of ``accounts`` (ZCARD, or a count in SQL); None for
        timelines in the server's memory, which no query outside it can count."""
        if self.in_memory:
            return None
        if self.redis is None:
            return sum(self.scalar("SELECT count(*) FROM home_timeline WHERE account_id IN "
                                   f"({', '.join(str(int(a)) for a in accounts[i:i + 500])})")
                       for i in range(0, len(accounts), 500))
        assert isinstance(self.home, RedisHomeTimelineStore)
        total = 0
        pipe = self.redis.pipeline(transaction=False)
        for start in range(0, len(accounts), 5_000):
            for account in accounts[start:start + 5_000]:
                pipe.zcard(self.home.key(account))
            total += sum(int(n) for n in pipe.execute())
        return total


class Delivery:
    """Tracks one status reaching a set of home timelines, cheaply enough to poll every few
    milliseconds: in SQL one count says "not yet"; in Redis a random sample of the timelines
    still missing it is checked, and all of them only once the whole sample has it. In the
    server's memory, delivery is complete when no job is pending, since a fan-out step puts
    its entries there as its transaction, which also finishes the job, commits
    (``complete_at``); which timelines hold the status is then read over HTTP."""

    SAMPLE = 200

    def __init__(self, probe: Probe, status_id: int, author_id: int,
                 accounts: Sequence[int]) -> None:
        self.probe = probe
        self.status_id = status_id
        self.author_id = author_id
        self.total = len(accounts)
        self.missing = list(accounts)
        self.rng = random.Random(status_id)
        self.complete_at: float | None = None

    @property
    def delivered(self) -> int:
        return self.total - len(self.missing)

    def poll(self) -> int:
        if self.probe.in_memory:
            if self.probe.pending_jobs() > 0:
                return self.delivered
            self.complete_at = self.complete_at or time.perf_counter()
        count = self.probe.delivered_count(self.status_id)
        if count is not None and count - 1 < self.total:  # minus the author's own timeline
            return max(0, count - 1)
        if len(self.missing) > 2 * self.SAMPLE:
            sample = self.rng.sample(self.missing, self.SAMPLE)
            got = set(self.probe.holding(self.status_id, self.author_id, sample))
            if len(got) < len(sample):
                self.missing = [a for a in self.missing if a not in got]
                return self.delivered
        got = set(self.probe.holding(self.status_id, self.author_id, self.missing))
        self.missing = [a for a in self.missing if a not in got]
        return self.delivered
