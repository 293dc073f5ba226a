"""Production shape: web without background work, separate `roost worker` processes on
PostgreSQL sharing the jobs, through leases on the outbox (no Redis) or a Redis Stream consumer
group fed from the outbox (with Redis); killing a worker, or the workers' Redis connections,
mid fan-out loses nothing and delivers nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, func, insert, select

from roost.clock import now_ms
from roost.storage.redis.timelines import decode
from roost.storage.schema import accounts, follows, jobs
from tests.e2e.conftest import (
    Account,
    Server,
    app_token,
    async_client,
    free_port,
    register_many,
)
from tests.pg_support import fresh_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database("roost_workers") as url:
        yield url


def _sign_up(server: Server, names: list[str]) -> list[Account]:
    async def sign_up() -> list[Account]:
        async with async_client(server) as client:
            return await register_many(client, await app_token(client), names)

    return asyncio.run(sign_up())


def _worker(data_dir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A `roost worker` process; its job queue's Redis connections are named
    ``roost-jobs-<pid>``."""
    return subprocess.Popen([sys.executable, "-m", "roost", "--data-dir", str(data_dir),
                             "worker"], env={**os.environ, **env},
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _with_stacks(worker: subprocess.Popen[bytes], log: Path) -> str:
    """The worker's log, with every thread's stack appended (SIGUSR1): what it was doing
    when a test gave up waiting for it."""
    worker.send_signal(signal.SIGUSR1)
    time.sleep(1)
    return log.read_text()


@pytest.mark.timeout(180)
def test_workers_share_fanout_and_survive_a_kill(tmp_path: Path, pg_url: str) -> None:
    # Leases of two minutes: the killed worker's jobs go to the other because it is known
    # dead (silent for ALIVE_MS), well within the minute allowed, not because they ran out.
    env = {"ROOST_DATABASE_URL": pg_url, "ROOST_EMBEDDED_WORKER": "false",
           "ROOST_FANOUT_BATCH_SIZE": "3", "ROOST_JOB_LEASE_SECONDS": "120"}
    server = Server(tmp_path / "data", free_port(), env=env)
    server.start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async def sign_up() -> list[Account]:
            async with async_client(server) as client:
                token = await app_token(client)
                return await register_many(client, token, [f"user{i}" for i in range(13)])

        accounts = asyncio.run(sign_up())
        author, fans = accounts[0], accounts[1:]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for fan in fans:
                assert client.post(f"/api/v1/accounts/{author.id}/follow",
                                   headers=fan.headers).status_code == 200
            posts = [client.post("/api/v1/statuses", headers=author.headers,
                                 data={"status": f"post {i}"}).json()["id"] for i in range(5)]
            time.sleep(0.5)
            home = client.get("/api/v1/timelines/home", headers=fans[0].headers).json()
            assert home == []  # no worker yet: nothing fanned out
            log = tmp_path / "workers.log"
            workers = [_worker(server.data_dir, env, log) for _ in range(2)]
            time.sleep(1.0)
            workers[0].send_signal(signal.SIGKILL)  # dies holding whatever it had claimed
            deadline = time.monotonic() + 60
            missing = True
            while missing and time.monotonic() < deadline:
                missing = False
                for fan in fans:
                    ids = {s["id"] for s in client.get("/api/v1/timelines/home",
                                                       headers=fan.headers).json()}
                    if not set(posts) <= ids:
                        missing = True
                        break
                time.sleep(0.3)
            assert not missing, log.read_text()
        assert server.roost("check").returncode == 0
        dead = server.roost("jobs", "dead")
        assert "0 dead job(s)." in dead.stdout
    finally:
        for process in workers:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        server.stop()


def _add_followers(database_url: str, author_id: int, count: int) -> list[int]:
    """Bulk-insert ``count`` active accounts following ``author_id`` (argon2 sign-ups through
    the API would take minutes); ids a day in the past, so none collides with the server's."""
    base = now_ms() - 86_400_000
    ids = [(base + i) << 16 for i in range(count)]
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(insert(accounts), [
                {"id": i, "username": f"fan{n}", "username_lower": f"fan{n}", "created_at": base,
                 "last_active_at": now_ms()} for n, i in enumerate(ids)])
            conn.execute(insert(follows), [
                {"account_id": i, "target_account_id": author_id, "id": i, "created_at": base}
                for i in ids])
    finally:
        engine.dispose()
    return ids


def _outbox_rows(database_url: str) -> int:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(jobs)).scalar() or 0)
    finally:
        engine.dispose()


def _wait_stopped(pid: int) -> None:
    """Wait until the kernel shows ``pid`` stopped (a signal is delivered asynchronously)."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 10
    while (state := stat.read_text().rpartition(")")[2].split()[0]) != "T":
        assert state not in ("Z", "X"), f"worker {pid} died instead of stopping"
        assert time.monotonic() < deadline, f"worker {pid} did not stop (state {state})"
        time.sleep(0.001)


def _freeze_one_holding(workers: list[subprocess.Popen[bytes]],
                        holding: Callable[[], set[int]],
                        deadline: float) -> subprocess.Popen[bytes]:
    """SIGSTOP a worker that holds taken messages and return it once it is frozen still holding
    them: between reading the pending list and a kill, a running worker can settle all it held."""
    while True:
        assert time.monotonic() < deadline, "no worker held messages long enough to be frozen"
        for worker in workers:
            if worker.pid not in holding():
                continue
            worker.send_signal(signal.SIGSTOP)
            _wait_stopped(worker.pid)
            if worker.pid in holding():
                return worker
            worker.send_signal(signal.SIGCONT)
        time.sleep(0.01)


@pytest.mark.timeout(240)
def test_stream_workers_survive_a_kill_and_dropped_connections(
        tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str) -> None:
    """`roost serve` + 2 `roost worker` on PostgreSQL and Redis Streams: a fan-out to 3,000
    followers in small steps; one worker is SIGKILLed and the other's Redis connections are
    killed mid fan-out; every home timeline still gets every post, once."""
    env = {"ROOST_DATABASE_URL": pg_url, "ROOST_REDIS_URL": redis_url,
           "ROOST_REDIS_PREFIX": redis_prefix, "ROOST_EMBEDDED_WORKER": "false",
           "ROOST_FANOUT_BATCH_SIZE": "20", "ROOST_JOB_LEASE_SECONDS": "120"}
    server = Server(tmp_path / "data", free_port(), env=env)
    server.start()
    workers: list[subprocess.Popen[bytes]] = []
    rds = redis.Redis.from_url(redis_url)
    try:
        author, reader = _sign_up(server, ["author", "reader"])
        fans = [*_add_followers(pg_url, int(author.id), 3_000), int(reader.id)]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post(f"/api/v1/accounts/{author.id}/follow",
                               headers=reader.headers).status_code == 200
            log = tmp_path / "workers.log"
            workers = [_worker(server.data_dir, env, log) for _ in range(2)]
            posts: set[int] = set()

            def delivered() -> list[int]:
                pipe = rds.pipeline(transaction=False)
                for fan in fans:
                    pipe.zrange(f"{redis_prefix}home:{{{fan}}}", 0, -1)
                return [sum(decode(m).status_id in posts for m in members)
                        for members in pipe.execute()]

            stream = f"{redis_prefix}jobs:{{default}}"

            def holding() -> set[int]:
                """The pids of the workers holding taken, unsettled messages."""
                summary = rds.xpending(stream, "workers")
                return {int(c["name"].split(b":")[-2]) for c in summary["consumers"]
                        if c["pending"]}

            def connected() -> bool:
                """Both workers are up and talking to Redis (a loaded machine can start one
                a while after the other has begun the fan-out)."""
                names = {c.get("name") for c in rds.client_list()}
                return all(f"roost-jobs-{w.pid}" in names for w in workers)

            # Both workers up before the posts, so that the fan-out cannot end before the
            # second one starts (a loaded machine can take seconds to start a process).
            deadline = time.monotonic() + 60
            while not connected():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            posts.update(int(client.post("/api/v1/statuses", headers=author.headers,
                                         data={"status": f"post {i}"}).json()["id"])
                         for i in range(3))
            while sum(delivered()) < len(fans) // 2 or not holding():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.02)
            assert sum(delivered()) < len(fans) * len(posts), "fan-out ended before the kill"
            victim = _freeze_one_holding(workers, holding, time.monotonic() + 30)
            victim.send_signal(signal.SIGKILL)  # dies holding the messages it had taken
            victim.wait()
            assert victim.pid in holding()
            [survivor] = [w for w in workers if w is not victim]
            name = f"roost-jobs-{survivor.pid}"
            killed = [c["id"] for c in rds.client_list() if c.get("name") == name]
            assert killed
            for client_id in killed:  # the broker drops the other worker's connections
                rds.client_kill_filter(_id=client_id)
            deadline = time.monotonic() + 90
            while (counts := delivered()) != [len(posts)] * len(fans):
                assert max(counts) <= len(posts)
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            home = client.get("/api/v1/timelines/home", headers=reader.headers).json()
            assert {int(s["id"]) for s in home} == posts
        # The survivor took over the victim's messages once it was silent, not after the lease.
        assert "no longer alive" in log.read_text()
        assert (rds.xlen(stream), rds.zcard(f"{stream}:delayed"), _outbox_rows(pg_url)) == (
            0, 0, 0)
        assert "0 dead job(s)." in server.roost("jobs", "dead").stdout
    finally:
        rds.close()
        for process in workers:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        server.stop()


@pytest.mark.timeout(120)
def test_timelines_lost_with_redis_are_rebuilt_on_the_next_request(
        tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str) -> None:
    """Redis restarts without its data while the worker is down (here: this run's keys are
    deleted): the worker notices when it starts again, and a reader's next request rebuilds
    their home timeline (206 while it runs), posts of before and after the loss included."""
    env = {"ROOST_DATABASE_URL": pg_url, "ROOST_REDIS_URL": redis_url,
           "ROOST_REDIS_PREFIX": redis_prefix, "ROOST_EMBEDDED_WORKER": "false",
           "ROOST_AUTH_CACHE_SECONDS": "0"}
    server = Server(tmp_path / "data", free_port(), env=env)
    server.start()
    log = tmp_path / "workers.log"
    worker = _worker(server.data_dir, env, log)
    rds = redis.Redis.from_url(redis_url)
    try:
        author, reader = _sign_up(server, ["author", "reader"])
        with httpx.Client(base_url=server.url, timeout=30) as client:
            def home() -> httpx.Response:
                return client.get("/api/v1/timelines/home", headers=reader.headers)

            def posted(text: str) -> str:
                status_id: str = client.post("/api/v1/statuses", headers=author.headers,
                                             data={"status": text}).json()["id"]
                return status_id

            assert client.post(f"/api/v1/accounts/{author.id}/follow",
                               headers=reader.headers).status_code == 200
            before = posted("before the loss")
            deadline = time.monotonic() + 30
            while [s["id"] for s in home().json()] != [before]:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)

            worker.send_signal(signal.SIGKILL)
            worker.wait()
            rds.delete(*rds.scan_iter(match=f"{redis_prefix}*"))
            during = posted("while no worker ran")
            assert home().json() == []  # lost
            worker = _worker(server.data_dir, env, log)
            deadline = time.monotonic() + 30
            while (answer := home()).status_code != 206:  # once the worker has noticed
                # Until then the timeline holds what fan-out wrote since the loss: the post
                # made while no worker ran may already be there (its fan-out and the job that
                # marks every account run in either order), the one from before is not.
                assert answer.status_code == 200 and time.monotonic() < deadline, \
                    _with_stacks(worker, log)
                assert [s["id"] for s in answer.json()] in ([], [during]), answer.json()
                time.sleep(0.2)
            while (answer := home()).status_code != 200:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            assert [s["id"] for s in answer.json()] == [during, before]
        assert "had lost its timelines" in log.read_text()
        assert "0 dead job(s)." in server.roost("jobs", "dead").stdout
    finally:
        rds.close()
        if worker.poll() is None:
            worker.terminate()
            worker.wait(10)
        server.stop()
