"""A real PostgreSQL outage under a running production server: a PostgreSQL of the test's own
(a cluster made with initdb, on a free port) is stopped as abruptly as a crash and started
again. While it is down every request is answered 503 in Mastodon's shape; once it is back,
reads, writes and background fan-out work again without restarting Roost."""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, free_port, home_of, post_as, sign_up
from tests.services import unusable


class OwnPostgres:
    """A throwaway PostgreSQL cluster; run as the ``postgres`` user when the tests run as
    root (PostgreSQL refuses to run as root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="roost-pg-"))
        self.data = self.folder / "data"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.folder.chmod(0o777)  # (the postgres user writes its socket and log here)
        self.data.mkdir()
        if self.as_postgres:
            shutil.chown(self.data, "postgres")
        self._run("initdb", "-A", "trust", "-U", "postgres", "-D", str(self.data))

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_postgres, str(self.bin_dir / tool), *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
                   " -c fsync=off")
        self._run("pg_ctl", "-D", str(self.data), "-o", options,
                  "-l", str(self.folder / "postgres.log"), "-w", "start")

    def crash(self) -> None:
        """Stop at once, as a crash would: no checkpoint, every connection cut."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        subprocess.run([*self.as_postgres, str(self.bin_dir / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        unusable("PostgreSQL's initdb (the PostgreSQL outage test makes a cluster of its own)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unusable("runuser (to run PostgreSQL as the postgres user)")
    postgres = OwnPostgres(Path(found[-1]).parent)
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.remove()


@pytest.mark.timeout(120)
def test_a_postgresql_outage_is_a_503_and_everything_works_after_it(
        tmp_path: Path, own_postgres: OwnPostgres) -> None:
    server = Server(tmp_path / "data", free_port(), env={
        "ROOST_DATABASE_URL": own_postgres.url, "ROOST_AUTH_CACHE_SECONDS": "0"})
    server.start()
    try:
        author, reader = sign_up(server, ["author", "reader"])
        with httpx.Client(base_url=server.url, timeout=30) as client:
            home = functools.partial(home_of, client, reader)
            post = functools.partial(post_as, client, author)

            def home_becomes(ids: list[str]) -> None:
                deadline = time.monotonic() + 30
                while [s["id"] for s in home().json()] != ids:
                    assert time.monotonic() < deadline, server.log()
                    time.sleep(0.1)

            assert client.post(f"/api/v1/accounts/{author.id}/follow",
                               headers=reader.headers).status_code == 200
            before = post("before the outage").json()["id"]
            home_becomes([before])

            own_postgres.crash()
            for answer in (home(), post("during the outage"),
                           client.get("/api/v1/timelines/public"),
                           client.get(f"/api/v1/accounts/{author.id}")):
                assert answer.status_code == 503, answer.text
                assert isinstance(answer.json()["error"], str)
                assert answer.headers["retry-after"] == "5"

            own_postgres.start()
            deadline = time.monotonic() + 30
            while (answer := home()).status_code != 200:
                assert answer.status_code == 503, answer.text
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)
            assert [s["id"] for s in answer.json()] == [before]  # nothing half-written
            after = post("after the outage")  # the writer connects again
            assert after.status_code == 200, after.text
            home_becomes([after.json()["id"], before])  # and so does the fan-out
    finally:
        server.stop()
    assert "Exception in thread" not in server.log(), server.log()
