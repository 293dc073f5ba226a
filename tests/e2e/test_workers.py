"""Production shape: web without background work, separate `roost worker` processes on
PostgreSQL sharing jobs through leases; killing a worker mid fan-out loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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


def _worker(data_dir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "roost", "--data-dir", str(data_dir),
                             "worker"], env={**os.environ, **env},
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.timeout(180)
def test_workers_share_fanout_and_survive_a_kill(tmp_path: Path, pg_url: str) -> None:
    env = {"ROOST_DATABASE_URL": pg_url, "ROOST_EMBEDDED_WORKER": "false",
           "ROOST_FANOUT_BATCH_SIZE": "3", "ROOST_JOB_LEASE_SECONDS": "2"}
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
