"""The roost command: help, migrate, create-user, token, check, jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from roost.cli import main
from roost.runtime import Roost
from roost.settings import Settings


def test_help_documents_every_command_and_setting() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "migrate", "check", "create-user", "token"):
        assert command in result.output
    for name in Settings.model_fields:
        assert f"ROOST_{name.upper()}" in result.output


def test_user_token_and_check(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(main, [*data, "migrate"]).exit_code == 0
    created = runner.invoke(main, [*data, "create-user", "admin", "--email", "a@example.com",
                                   "--password", "long enough pw", "--admin"])
    assert created.exit_code == 0, created.output
    assert "Created @admin" in created.output
    duplicate = runner.invoke(main, [*data, "create-user", "admin", "--email", "b@example.com",
                                     "--password", "long enough pw"])
    assert duplicate.exit_code != 0
    token = runner.invoke(main, [*data, "token", "create", "admin", "--scopes", "read"])
    assert token.exit_code == 0, token.output
    assert len(token.output.strip()) > 30
    assert runner.invoke(main, [*data, "token", "create", "ghost"]).exit_code != 0
    assert runner.invoke(main, [*data, "token", "create", "admin", "--scopes", "root"]
                         ).exit_code != 0
    check = runner.invoke(main, [*data, "check"])
    assert check.exit_code == 0 and "match" in check.output


def test_jobs_pending_counts_what_the_workers_have_not_run(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(main, [*data, "migrate"]).exit_code == 0
    assert runner.invoke(main, [*data, "jobs", "pending"]).output == "0 pending job(s).\n"
    roost = Roost(Settings(data_dir=tmp_path))
    try:
        for n in range(2):
            roost.db.write_sync(lambda tx, n=n: roost.stores.jobs.enqueue(
                tx, "rebuild_home", {"account_id": n, "after": 0}, 0))
    finally:
        roost.close()
    assert runner.invoke(main, [*data, "jobs", "pending"]).output == "2 pending job(s).\n"


def test_check_finds_and_repairs_a_wrong_counter(tmp_path: Path) -> None:
    import sqlite3

    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    runner.invoke(main, [*data, "create-user", "alice", "--email", "a@example.com",
                         "--password", "long enough pw"])
    with sqlite3.connect(tmp_path / "roost.db") as db:
        (account_id,) = db.execute("SELECT id FROM accounts").fetchone()
        db.execute("INSERT INTO account_counters VALUES (?, 3, 5, 0, 0)", (account_id,))
    broken = runner.invoke(main, [*data, "check"])
    assert broken.exit_code == 1
    assert "followers is 5, rows say 0" in broken.output
    assert runner.invoke(main, [*data, "check", "--repair"]).exit_code == 1
    assert runner.invoke(main, [*data, "check"]).exit_code == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("event_loop", [None, "uvloop"])
def test_serve_uses_data_dir_and_event_loop_from_environment(tmp_path: Path,
                                                              event_loop: str | None) -> None:
    """The settings reach the server: its data folder, and its event loop (the standard
    library's unless ROOST_EVENT_LOOP asks for uvloop, seen in the libraries it loaded)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ROOST_DATA_DIR": str(tmp_path / "env-data"), "ROOST_PORT": str(port)}
    env.pop("ROOST_EVENT_LOOP", None)
    if event_loop:
        env["ROOST_EVENT_LOOP"] = event_loop
    process = subprocess.Popen([sys.executable, "-m", "roost", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/instance").status_code == 200:
                    break
            except httpx.HTTPError:
                import time

                time.sleep(0.1)
        else:
            raise AssertionError("server did not start")
        assert (tmp_path / "env-data" / "roost.db").exists()
        loaded = Path(f"/proc/{process.pid}/maps").read_text()
        assert ("/uvloop/" in loaded) == (event_loop == "uvloop")
    finally:
        process.terminate()
        process.wait(10)


def test_seed_then_check(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    seeded = runner.invoke(main, [*data, "seed", "--accounts", "500", "--celebrity",
                                  "star=300", "--posts", "1", "--days", "1"])
    assert seeded.exit_code == 0, seeded.output
    assert "Seeded 501 accounts" in seeded.output
    assert runner.invoke(main, [*data, "check"]).exit_code == 0
    again = runner.invoke(main, [*data, "seed", "--accounts", "10", "--celebrity", "star=5"])
    assert again.exit_code != 0 and "already taken" in again.output
    bad = runner.invoke(main, [*data, "seed", "--celebrity", "nonsense"])
    assert bad.exit_code != 0


def test_a_worker_writes_its_threads_stacks_on_sigusr1_and_goes_on(tmp_path: Path) -> None:
    """`kill -USR1` on a roost process: every thread's stack on its stderr, and it runs on."""
    import signal
    import time

    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "roost", "--data-dir", str(tmp_path / "data"), "worker"],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "ROOST_EMBEDDED_WORKER": "false"})
    try:
        deadline = time.monotonic() + 30
        while "Roost worker on" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        process.send_signal(signal.SIGUSR1)
        while "File " not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        assert "Thread 0x" in text and "roost" in text  # every thread, Roost's frames in them
        time.sleep(0.5)
        assert process.poll() is None  # still running
    finally:
        process.terminate()
        process.wait(10)


def test_worker_and_serve_refuse_home_timelines_they_cannot_share(tmp_path: Path) -> None:
    """On SQLite with the embedded worker (the default) the home timelines live in the
    memory of `roost serve`: a `roost worker` would write its fan-outs where no one reads
    them, so it refuses, saying what to set; so does serve asked for memory with workers."""
    data = str(tmp_path / "data")
    refused = CliRunner().invoke(main, ["--data-dir", data, "worker"], env={})
    assert refused.exit_code == 2
    assert "ROOST_EMBEDDED_WORKER=false" in refused.output
    apart = CliRunner().invoke(main, ["--data-dir", data, "serve"], env={
        "ROOST_HOME_TIMELINES": "memory", "ROOST_EMBEDDED_WORKER": "false"})
    assert apart.exit_code == 2 and "ROOST_HOME_TIMELINES=memory needs" in apart.output
    no_redis = CliRunner().invoke(main, ["--data-dir", data, "serve"],
                                  env={"ROOST_HOME_TIMELINES": "redis"})
    assert no_redis.exit_code == 2 and "needs ROOST_REDIS_URL" in no_redis.output
