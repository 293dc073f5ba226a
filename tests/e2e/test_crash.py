"""kill -9 in the middle of a burst of posts and follows: after a restart nothing that was
answered is lost, unfinished fan-outs resume from the outbox, and no counter is off. Embedded
(one `roost serve` on SQLite) and production (`roost serve` and a `roost worker` on PostgreSQL
and Redis, both killed at once)."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    Account,
    Server,
    app_token,
    async_client,
    free_port,
    get_all,
    register_many,
)
from tests.pg_support import fresh_database

AUTHORS = 3
FOLLOWERS = 4  # follow every author before the burst
LATE_FOLLOWERS = 4  # follow the authors during the burst
PRE_POSTS = 2
WORKERS_PER_AUTHOR = 2
POSTS_PER_WORKER = 15
# A new follower's backfill copies the author's 40 newest posts: staying under that, every
# follower's home timeline must end up holding exactly all posts of the authors it follows.
assert PRE_POSTS + WORKERS_PER_AUTHOR * POSTS_PER_WORKER <= 40
BURST_POSTS = AUTHORS * WORKERS_PER_AUTHOR * POSTS_PER_WORKER


@dataclass
class Burst:
    server: Server
    kill_at: int  # accepted posts after which the server is killed
    accepted_posts: dict[str, str] = field(default_factory=dict)  # idempotency key -> id
    unknown_posts: dict[str, tuple[Account, str]] = field(default_factory=dict)  # key -> text
    sent_posts: dict[str, Account] = field(default_factory=dict)  # key -> author
    accepted_follows: set[tuple[str, str]] = field(default_factory=set)  # (follower, author)
    unknown_follows: set[tuple[str, str]] = field(default_factory=set)
    killed: bool = False
    posting_done: bool = False
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def accepted_post(self) -> None:
        if len(self.accepted_posts) >= self.kill_at and not self.killed:
            self.server.kill()  # blocks the loop for the kill only: requests stay in flight
            self.killed = True
        async with self.progress:
            self.progress.notify_all()

    async def wait_for_posts(self, count: int) -> None:
        async with self.progress:
            await self.progress.wait_for(
                lambda: self.killed or self.posting_done or len(self.accepted_posts) >= count)

    async def post_all(self, posters: list[Awaitable[None]]) -> None:
        try:
            await asyncio.gather(*posters)
        finally:
            self.posting_done = True  # never leave a follower waiting for posts to come
            async with self.progress:
                self.progress.notify_all()


async def poster(client: httpx.AsyncClient, burst: Burst, author: Account, worker: int) -> None:
    for i in range(POSTS_PER_WORKER):
        if burst.killed:
            return
        key = f"{author.username}-{worker}-{i}"
        text = f"Burst post {key}"
        burst.sent_posts[key] = author
        try:
            response = await client.post("/api/v1/statuses", data={"status": text},
                                         headers={**author.headers, "Idempotency-Key": key})
        except httpx.TransportError:
            burst.unknown_posts[key] = (author, text)
            return
        assert response.status_code == 200, response.text
        burst.accepted_posts[key] = response.json()["id"]
        await burst.accepted_post()


async def late_follower(client: httpx.AsyncClient, burst: Burst, user: Account,
                        plan: list[tuple[Account, int]]) -> None:
    """Follow each author of ``plan`` once that many posts have been accepted."""
    for author, after_posts in plan:
        await burst.wait_for_posts(after_posts)
        if burst.killed:
            return
        try:
            response = await client.post(f"/api/v1/accounts/{author.id}/follow",
                                         headers=user.headers)
        except httpx.TransportError:
            burst.unknown_follows.add((user.id, author.id))
            return
        assert response.status_code == 200, response.text
        assert response.json()["following"] is True
        burst.accepted_follows.add((user.id, author.id))


def pending_jobs(server: Server) -> tuple[int, int]:
    """(pending, dead) jobs. Embedded: in the outbox, read straight from the SQLite file
    (read-only, so a crashed database's WAL is left for the restarted server to recover).
    Production: wherever they wait (the outbox, the stream), as `roost jobs` counts them."""
    if "ROOST_DATABASE_URL" in server.env:
        pending, dead = server.roost("jobs", "pending"), server.roost("jobs", "dead")
        assert pending.returncode == dead.returncode == 0, pending.stderr + dead.stderr
        return int(pending.stdout.split()[0]), int(dead.stdout.splitlines()[-1].split()[0])
    db = sqlite3.connect(f"file:{server.data_dir / 'roost.db'}?mode=ro", uri=True,
                         timeout=30)
    try:
        row = db.execute("SELECT count(*) - coalesce(sum(dead), 0), coalesce(sum(dead), 0) "
                         "FROM jobs").fetchone()
    finally:
        db.close()
    return int(row[0]), int(row[1])


async def eventually(probe: Callable[[], Awaitable[bool]], what: str,
                     timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.fixture(params=["embedded", "production"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """Not started. One follower per fan-out step, so a kill lands in the middle of fan-outs
    and the restarted worker must resume them from their saved cursor. It does once the
    killed process is known dead (silent for ALIVE_MS), not when its leases run out: with
    leases of two minutes the fan-outs must still all finish within `eventually`'s minute."""
    env = {"ROOST_ALLOW_PASSWORD_GRANT": "true", "ROOST_FANOUT_BATCH_SIZE": "1",
           "ROOST_JOB_LEASE_SECONDS": "120"}
    if request.param == "embedded":
        yield Server(tmp_path / "data", free_port(), env=env)
        return
    with fresh_database("roost_crash") as database_url:
        yield Server(tmp_path / "data", free_port(), workers=1, env={
            **env, "ROOST_DATABASE_URL": database_url, "ROOST_EMBEDDED_WORKER": "false",
            "ROOST_REDIS_URL": request.getfixturevalue("redis_url"),
            "ROOST_REDIS_PREFIX": request.getfixturevalue("redis_prefix")})


def test_kill_during_burst_loses_nothing_answered(server: Server) -> None:
    seed = int(os.environ.get("ROOST_E2E_SEED", random.randrange(1 << 30)))
    print(f"seed {seed}")
    rng = random.Random(seed)
    server.start()
    try:
        asyncio.run(scenario(server, rng))
    finally:
        server.stop()
    checked = server.roost("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Traceback" not in server.log(), server.log()[-5000:]
    workers_log = server.data_dir.parent / "worker.log"
    if server.workers:
        assert "Traceback" not in workers_log.read_text(), workers_log.read_text()[-5000:]


async def scenario(server: Server, rng: random.Random) -> None:
    async with async_client(server, connections=32) as client:
        token = await app_token(client)
        users = await register_many(
            client, token, [f"author{i}" for i in range(AUTHORS)]
            + [f"reader{i}" for i in range(FOLLOWERS)]
            + [f"late{i}" for i in range(LATE_FOLLOWERS)])
        authors = users[:AUTHORS]
        readers = users[AUTHORS:AUTHORS + FOLLOWERS]
        late = users[AUTHORS + FOLLOWERS:]
        for reader in readers:
            for author in authors:
                response = await client.post(f"/api/v1/accounts/{author.id}/follow",
                                             headers=reader.headers)
                assert response.status_code == 200, response.text
        for author in authors:
            for i in range(PRE_POSTS):
                response = await client.post("/api/v1/statuses", headers=author.headers,
                                             data={"status": f"Before the burst {i}"})
                assert response.status_code == 200, response.text

        burst = Burst(server, kill_at=rng.randint(BURST_POSTS // 4, BURST_POSTS * 3 // 5))
        plans = [[(author, rng.randint(0, BURST_POSTS * 3 // 4))
                  for author in rng.sample(authors, len(authors))] for _ in late]
        for plan in plans:
            plan.sort(key=lambda step: step[1])
        await asyncio.gather(
            burst.post_all([poster(client, burst, author, w) for author in authors
                            for w in range(WORKERS_PER_AUTHOR)]),
            *(late_follower(client, burst, user, plan) for user, plan in zip(late, plans,
                                                                              strict=True)),
        )
    assert burst.killed
    pending, dead = pending_jobs(server)
    print(f"killed after {len(burst.accepted_posts)} accepted posts and "
          f"{len(burst.accepted_follows)} accepted follows; {len(burst.unknown_posts)} posts "
          f"and {len(burst.unknown_follows)} follows unanswered; {pending} jobs pending")
    assert dead == 0

    server.start()
    # Whatever the kill interrupted, the database holds whole operations only (checked
    # alongside the restarted server, while it resumes the fan-outs).
    checked = server.roost("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    async with async_client(server, connections=32) as client:
        await after_restart(client, server, burst, authors, readers, late)


async def after_restart(client: httpx.AsyncClient, server: Server, burst: Burst,
                        authors: list[Account], readers: list[Account],
                        late: list[Account]) -> None:
    by_id = {a.id: a for a in authors}
    # Every answered post survived, and its Idempotency-Key still names it.
    for key, status_id in burst.accepted_posts.items():
        author = burst.sent_posts[key]
        shown = await client.get(f"/api/v1/statuses/{status_id}", headers=author.headers)
        assert shown.status_code == 200, (key, shown.text)
        assert shown.json()["account"]["id"] == author.id
        assert f"Burst post {key}" in shown.json()["content"]
        again = await client.post("/api/v1/statuses", data={"status": f"Burst post {key}"},
                                  headers={**author.headers, "Idempotency-Key": key})
        assert again.status_code == 200, again.text
        assert again.json()["id"] == status_id, f"{key} posted twice"
    # Unanswered posts were applied whole or not at all: a client's retry with the same key
    # gets the one post either way.
    post_ids = dict(burst.accepted_posts)
    for key, (author, text) in burst.unknown_posts.items():
        retried = await client.post("/api/v1/statuses", data={"status": text},
                                    headers={**author.headers, "Idempotency-Key": key})
        assert retried.status_code == 200, retried.text
        post_ids[key] = retried.json()["id"]
    for follower_id, author_id in burst.unknown_follows:
        user = next(u for u in late if u.id == follower_id)
        retried = await client.post(f"/api/v1/accounts/{author_id}/follow",
                                    headers=user.headers)
        assert retried.status_code == 200, retried.text
    follows = burst.accepted_follows | burst.unknown_follows

    # Every answered follow survived (and the unanswered, now retried, ones are there too).
    for user in late:
        response = await client.get("/api/v1/accounts/relationships", headers=user.headers,
                                    params={"id[]": [a.id for a in authors]})
        assert response.status_code == 200, response.text
        following = {r["id"] for r in response.json() if r["following"]}
        assert following == {a for f, a in follows if f == user.id}, user.username

    # Counts: every post and follow that exists is counted once.
    posts_by_author: dict[str, set[str]] = {a.id: set() for a in authors}
    for key, status_id in post_ids.items():
        posts_by_author[burst.sent_posts[key].id].add(status_id)
    for author in authors:
        shown = (await client.get(f"/api/v1/accounts/{author.id}")).json()
        statuses = await get_all(client, f"/api/v1/accounts/{author.id}/statuses",
                                 params={"limit": 40})
        burst_ids = {s["id"] for s in statuses if "Burst post" in s["content"]}
        assert burst_ids == posts_by_author[author.id], author.username
        assert shown["statuses_count"] == len(statuses) == PRE_POSTS + len(burst_ids)
        expected_followers = {r.id for r in readers} | {f for f, a in follows if a == author.id}
        followers = await get_all(client, f"/api/v1/accounts/{author.id}/followers")
        assert {f["id"] for f in followers} == expected_followers, author.username
        assert shown["followers_count"] == len(expected_followers)
        posts_by_author[author.id] |= {s["id"] for s in statuses}

    # Every post reaches every follower's home timeline: the fan-outs cut short by the kill
    # resume from the outbox after the restart.
    followed = {r.id: set(by_id) for r in readers}
    for user in late:
        followed[user.id] = {a for f, a in follows if f == user.id}
    headers = {u.id: u.headers for u in readers + late}

    async def homes_complete() -> bool:
        for user_id, authors_followed in followed.items():
            home = await get_all(client, "/api/v1/timelines/home", headers=headers[user_id],
                                 params={"limit": 40})
            ids = [s["id"] for s in home]
            assert len(ids) == len(set(ids)), "a post shown twice in a home timeline"
            want = set().union(*(posts_by_author[a] for a in authors_followed))
            assert set(ids) <= want, "a home timeline shows a post it should not"
            if set(ids) != want:
                return False
        return True

    await eventually(homes_complete, "fan-out to every home timeline")
    await eventually(lambda: asyncio.to_thread(lambda: pending_jobs(server) == (0, 0)),
                     "the outbox to drain")
