"""A real Redis outage under a running production server: a Redis of the test's own (a
`redis-server` process on a free port, keeping nothing on disk, as this machine's does) is
killed and started again empty. While it is down, what needs it is answered 503 in Mastodon's
shape and nothing else breaks; once it is back, the loss is noticed and home timelines are
rebuilt on their next read, or at once for an account whose stream is open."""

from __future__ import annotations

import functools
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.conftest import Server, free_port, home_of, post_as, sign_up
from tests.e2e.test_streaming import RawSse
from tests.pg_support import fresh_database
from tests.services import unusable


def _start_redis(port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    client.close()
    return process


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if shutil.which("redis-server") is None:
        unusable("redis-server (the Redis outage test starts one of its own)")
    port = free_port()
    yield port, tmp_path / "redis.log"
    subprocess.run(["pkill", "-f", f"redis-server 127.0.0.1:{port}"], check=False)


@pytest.mark.timeout(120)
def test_a_redis_outage_is_a_503_and_its_lost_timelines_come_back(
        tmp_path: Path, own_redis: tuple[int, Path]) -> None:
    port, log = own_redis
    redis_server = _start_redis(port, log)
    with fresh_database("roost_outage") as database_url:
        server = Server(tmp_path / "data", free_port(), env={
            "ROOST_DATABASE_URL": database_url, "ROOST_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "ROOST_AUTH_CACHE_SECONDS": "0"})
        server.start()
        try:
            author, reader, listener = sign_up(server, ["author", "reader", "listener"])
            stream = RawSse(f"{server.url}/api/v1/streaming/user", listener.headers)
            with httpx.Client(base_url=server.url, timeout=30) as client:
                home = functools.partial(home_of, client, reader)
                post = functools.partial(post_as, client, author)

                for follower in (reader, listener):
                    assert client.post(f"/api/v1/accounts/{author.id}/follow",
                                       headers=follower.headers).status_code == 200
                stream.__enter__()  # the listener only listens, from now on
                before = post("before the outage").json()["id"]
                deadline = time.monotonic() + 30
                while [s["id"] for s in home().json()] != [before]:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)

                redis_server.kill()
                redis_server.wait()
                for answer in (home(), post("during the outage")):
                    assert answer.status_code == 503, answer.text
                    assert isinstance(answer.json()["error"], str)
                    assert answer.headers["retry-after"] == "5"
                public = client.get("/api/v1/timelines/public")
                assert public.status_code == 200
                assert [s["id"] for s in public.json()] == [before]  # nothing half-written

                redis_server = _start_redis(port, log)  # back, and empty
                deadline = time.monotonic() + 60
                while (answer := home()).status_code != 206:  # the loss noticed
                    assert answer.status_code in (200, 503), answer.text
                    assert time.monotonic() < deadline, server.log()
                    time.sleep(0.2)
                while (answer := home()).status_code != 200:
                    assert time.monotonic() < deadline, server.log()
                    time.sleep(0.1)
                assert [s["id"] for s in answer.json()] == [before]
                after = post("after the outage").json()["id"]
                while [s["id"] for s in home().json()] != [after, before]:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)

                # The listener was marked inactive with every account (the reader's 206 says
                # the mark is done), but its stream is open: its account is revived, and the
                # author's next posts reach it without it making a request.
                def heard() -> set[str]:
                    return {s["id"] for s in stream.payloads("update")}

                assert before in heard()
                later = [after]
                while not heard() & set(later):
                    assert time.monotonic() < deadline, server.log()
                    time.sleep(0.5)
                    later.append(post(f"later {len(later)}").json()["id"])
        finally:
            stream.__exit__()
            server.stop()
            redis_server.kill()
            redis_server.wait()
