"""Real `roost serve` processes on a temporary data dir, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pg_support import fresh_database
from tests.services import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A `roost serve` child process, with ``workers`` `roost worker` processes beside it
    (their output in ``worker.log`` next to the data dir); restartable on the same data dir."""

    data_dir: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    worker_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        env = {**os.environ, "ROOST_SQLITE_SYNCHRONOUS": "NORMAL", "ROOST_LOG_LEVEL": "warning",
               "ROOST_PUBLIC_URL": self.url, **self.env}
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "roost", "--data-dir", str(self.data_dir), "serve",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"roost serve exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/instance", timeout=1).status_code == 200:
                    self._start_workers()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"roost serve did not start:\n{self.log()}")

    def _start_workers(self) -> None:
        log = (self.data_dir.parent / "worker.log").open("ab")
        self.worker_processes = [subprocess.Popen(
            [sys.executable, "-m", "roost", "--data-dir", str(self.data_dir), "worker"],
            env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT)
            for _ in range(self.workers)]

    def kill(self) -> None:
        """kill -9, the server and its workers: no shutdown, no flush."""
        for process in [self.process, *self.worker_processes]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
        self.process, self.worker_processes = None, []

    def stop(self) -> None:
        for process in [*self.worker_processes, self.process]:
            if process is not None:
                stop_process(process)
        self.worker_processes = []
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def roost(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a `roost` CLI command against this server's data dir."""
        return subprocess.run(
            [sys.executable, "-m", "roost", "--data-dir", str(self.data_dir), *args],
            capture_output=True, text=True, env={**os.environ, **self.env}, timeout=120,
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A running server with the password grant enabled (scripts and tests rely on it)."""
    instance = Server(tmp_path / "data", free_port(),
                      env={"ROOST_ALLOW_PASSWORD_GRANT": "true"})
    instance.start()
    yield instance
    instance.stop()


# -- async HTTP helpers for the concurrency and crash tests ----------------------------------

PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    """A registered account and its user token."""

    username: str
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def async_client(server: Server, connections: int = 16) -> httpx.AsyncClient:
    """An AsyncClient for ``server`` that really opens up to ``connections`` at once."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60.0)


async def app_token(client: httpx.AsyncClient, scopes: str = "read write follow") -> str:
    """Register an app and get an app token (client_credentials) that may sign accounts up."""
    created = await client.post("/api/v1/apps", data={
        "client_name": "e2e", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": scopes,
    })
    assert created.status_code == 200, created.text
    app = created.json()
    token = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app["client_id"],
        "client_secret": app["client_secret"], "scope": scopes,
    })
    assert token.status_code == 200, token.text
    value: str = token.json()["access_token"]
    return value


async def register(client: httpx.AsyncClient, token: str, username: str) -> Account:
    response = await client.post(
        "/api/v1/accounts", headers={"Authorization": f"Bearer {token}"},
        data={"username": username, "email": f"{username}@example.com", "password": PASSWORD,
              "agreement": "true"},
    )
    assert response.status_code == 200, response.text
    user_token: str = response.json()["access_token"]
    me = await client.get("/api/v1/accounts/verify_credentials",
                          headers={"Authorization": f"Bearer {user_token}"})
    assert me.status_code == 200, me.text
    return Account(username, str(me.json()["id"]), user_token)


async def register_many(client: httpx.AsyncClient, token: str, usernames: list[str],
                        parallel: int = 4) -> list[Account]:
    """Sign accounts up, a few at a time (argon2 hashing is the slow part, on every core)."""
    gate = asyncio.Semaphore(parallel)

    async def one(username: str) -> Account:
        async with gate:
            return await register(client, token, username)

    return list(await asyncio.gather(*(one(u) for u in usernames)))


def sign_up(server: Server, usernames: list[str]) -> list[Account]:
    """Register ``usernames`` on a running server, from synchronous test code."""
    async def run() -> list[Account]:
        async with async_client(server) as client:
            return await register_many(client, await app_token(client), usernames)

    return asyncio.run(run())


def home_of(client: httpx.Client, reader: Account) -> httpx.Response:
    return client.get("/api/v1/timelines/home", headers=reader.headers)


def post_as(client: httpx.Client, author: Account, text: str) -> httpx.Response:
    return client.post("/api/v1/statuses", headers=author.headers, data={"status": text})


async def get_all(client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None,
                  params: dict[str, Any] | None = None) -> list[Any]:
    """Every item of a Mastodon list endpoint, following the Link rel="next" headers."""
    items: list[Any] = []
    url: str | None = path
    query = params
    for _ in range(10_000):
        if url is None:
            return items
        response = await client.get(url, headers=headers, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        if not page:
            return items
        items.extend(page)
        url = response.links.get("next", {}).get("url")
        query = None  # the next link carries the query
    raise AssertionError(f"{path}: pagination does not end")


# -- production shape: PostgreSQL + Redis + separate workers ---------------------------------

@pytest.fixture
def production_server(tmp_path: Path, redis_url: str,
                      redis_prefix: str) -> Iterator[Server]:
    """`roost serve` on a fresh PostgreSQL database with Redis for timelines and pub/sub, its
    background work done by a separate `roost worker` process."""
    with fresh_database("roost_e2e") as database_url:
        yield from _production_server(tmp_path, database_url, redis_url, redis_prefix)


def _production_server(tmp_path: Path, database_url: str, redis_url: str,
                       redis_prefix: str) -> Iterator[Server]:
    yield from server_with_worker(tmp_path, {
        "ROOST_DATABASE_URL": database_url, "ROOST_REDIS_URL": redis_url,
        "ROOST_REDIS_PREFIX": redis_prefix})


def server_with_worker(tmp_path: Path, env: dict[str, str]) -> Iterator[Server]:
    """`roost serve` with ``env`` (plus the password grant, and no embedded worker) and one
    separate `roost worker` (its output in worker.log); both stopped afterwards."""
    env = {"ROOST_ALLOW_PASSWORD_GRANT": "true", **env, "ROOST_EMBEDDED_WORKER": "false"}
    instance = Server(tmp_path / "data", free_port(), env=env, workers=1)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
