"""`roost serve --processes N` on PostgreSQL + Redis: several web processes on one port share
every write and every live event, keep follower counts and milestones exact under a follow
storm spread over them, and a process that dies is replaced without losing anything."""

from __future__ import annotations

import asyncio
import contextlib
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
    register,
    register_many,
)
from tests.e2e.test_streaming import Socket, wait_until, websocket
from tests.pg_support import fresh_database

FANS = 200
MILESTONES = list(range(6, FANS + 1, 6))


def web_processes(server: Server) -> list[int]:
    """The processes uvicorn's supervisor (the `roost serve` process) started to serve."""
    assert server.process is not None
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == server.process.pid and b"spawn_main" in (
                    stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
    return sorted(found)


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str,
           redis_prefix: str) -> Iterator[Server]:
    """Two web processes, each also running background work (the embedded worker); a test
    may add settings with ``@pytest.mark.parametrize("served", [{...}], indirect=True)``."""
    with fresh_database("roost_procs") as database_url:
        instance = Server(tmp_path / "data", free_port(), env={
            "ROOST_DATABASE_URL": database_url, "ROOST_REDIS_URL": redis_url,
            "ROOST_REDIS_PREFIX": redis_prefix, "ROOST_WEB_PROCESSES": "2",
            "ROOST_MILESTONES": ",".join(map(str, MILESTONES)), "ROOST_MILESTONE_EVERY": "0",
            "ROOST_SIGNUPS_PER_HOUR": "1000", **getattr(request, "param", {})})
        instance.start()
        try:
            wait_until(lambda: len(web_processes(instance)) == 2, "two web processes")
            yield instance
        finally:
            instance.stop()


def test_serve_refuses_several_processes_without_postgresql_and_redis(tmp_path: Path) -> None:
    def serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "roost", "--data-dir", str(tmp_path), "serve", *args],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "ROOST_PORT": str(free_port()), **env})

    on_sqlite = serve("--processes", "2")
    assert on_sqlite.returncode == 2
    assert "ROOST_WEB_PROCESSES > 1 needs PostgreSQL" in on_sqlite.stderr
    no_redis = serve(ROOST_WEB_PROCESSES="3",
                     ROOST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres")
    assert no_redis.returncode == 2
    assert "needs ROOST_REDIS_URL" in no_redis.stderr
    assert serve("--processes", "0").returncode == 2
    assert not (tmp_path / "roost.db").exists(), "refused before touching the database"


def test_web_processes_share_writes_events_and_exact_counts(served: Server) -> None:
    async def accounts() -> tuple[Account, list[Account]]:
        async with async_client(served, connections=FANS) as client:
            token = await app_token(client)
            star = await register(client, token, "star")
            fans = await register_many(client, token, [f"fan{i}" for i in range(FANS)])
            return star, fans

    star, fans = asyncio.run(accounts())
    # Several live streams of the star's notifications: the kernel hands the connections to
    # either process, while the follows below land on both.
    with contextlib.ExitStack() as stack:
        sockets: list[Socket] = [
            stack.enter_context(websocket(served, f"access_token={star.token}&stream=user"))
            for _ in range(6)]

        async def storm() -> list[httpx.Response]:
            async with async_client(served, connections=FANS) as client:
                return list(await asyncio.gather(*(
                    client.post(f"/api/v1/accounts/{star.id}/follow", headers=fan.headers)
                    for fan in fans)))

        answers = asyncio.run(storm())
        assert [a.status_code for a in answers] == [200] * FANS, [a.text for a in answers]

        def followed(sock: Socket) -> set[str]:
            return {n["account"]["id"] for n in sock.events("notification", ["user"])
                    if n["type"] == "follow"}

        everyone = {fan.id for fan in fans}
        for sock in sockets:
            wait_until(lambda s=sock: followed(s) == everyone,  # type: ignore[misc]
                       "every follow notification on every stream")

    shown = httpx.get(f"{served.url}/api/v1/accounts/{star.id}").json()
    assert shown["followers_count"] == FANS
    # Each milestone fell exactly once, to the follower whose follow made the count: with
    # both processes writing, a count read without the counter lock would skip some.
    milestones = httpx.get(f"{served.url}/api/v1/roost/accounts/{star.id}/milestones").json()
    assert sorted(m["count"] for m in milestones) == MILESTONES
    for milestone in milestones:
        nth = httpx.get(f"{served.url}/api/v1/roost/accounts/{star.id}/followers/nth/"
                        f"{milestone['count']}").json()
        assert nth["account"]["id"] == milestone["account"]["id"], milestone
    checked = served.roost("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_web_process_that_dies_is_replaced(served: Server) -> None:
    async def post_and_read() -> tuple[Account, str]:
        async with async_client(served) as client:
            author = await register(client, await app_token(client), "author")
            posted = await client.post("/api/v1/statuses", headers=author.headers,
                                       data={"status": "before the crash"})
            assert posted.status_code == 200, posted.text
            return author, posted.json()["id"]

    author, status_id = asyncio.run(post_and_read())
    victim = web_processes(served)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(web_processes(served)) == 2 and victim not in web_processes(served),
               "the supervisor to start a new web process")
    deadline = time.monotonic() + 20
    # Every request is answered, whichever process takes it, and nothing written is lost.
    answered = 0
    while answered < 40:
        assert time.monotonic() < deadline, "requests failed after the restart"
        try:
            with httpx.Client(base_url=served.url, timeout=5) as client:  # a new connection
                response = client.get(f"/api/v1/statuses/{status_id}", headers=author.headers)
        except httpx.TransportError:
            continue  # the replacement may still be starting; the old one is gone
        assert response.status_code == 200, response.text
        assert response.json()["content"] == "<p>before the crash</p>"
        answered += 1
    assert served.process is not None and served.process.poll() is None


@pytest.mark.parametrize("served", [{"ROOST_AUTH_CACHE_SECONDS": "600"}], indirect=True)
def test_a_revoked_token_stops_working_on_every_process_at_once(served: Server) -> None:
    """Each process remembers the tokens it saw (here for 10 minutes); revoking one through
    either process makes both forget it at once, and ends the streams opened with it."""
    created = httpx.post(f"{served.url}/api/v1/apps", data={
        "client_name": "revoker", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
        "scopes": "read"}).json()
    credentials = {"client_id": created["client_id"], "client_secret": created["client_secret"]}
    token = httpx.post(f"{served.url}/oauth/token", data={
        "grant_type": "client_credentials", "scope": "read", **credentials}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def answers() -> list[int]:
        """One request per new connection: the kernel hands them to either process."""
        return [httpx.get(f"{served.url}/api/v1/apps/verify_credentials",
                          headers=headers).status_code for _ in range(40)]

    assert answers() == [200] * 40  # (both processes now remember the token)
    with contextlib.ExitStack() as stack:
        # Streams opened with it on either process end too.
        sockets = [stack.enter_context(websocket(served, f"access_token={token}&stream=public"))
                   for _ in range(6)]
        revoked = httpx.post(f"{served.url}/oauth/revoke", data={"token": token, **credentials})
        assert revoked.status_code == 200
        deadline = time.monotonic() + 5  # the broadcast, not the 600 s memory
        while (statuses := answers()) != [401] * 40:
            assert time.monotonic() < deadline, statuses
        wait_until(lambda: all(s.ws.close_code == 1000 for s in sockets),
                   "every stream opened with the token to end")
