"""A follow storm against a real `roost serve`: 64 clients follow and unfollow one account at
once, and every count, list and relationship must come out exact."""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field

import httpx

from tests.e2e.conftest import (
    Account,
    Server,
    app_token,
    async_client,
    get_all,
    register,
    register_many,
)

CLIENTS = 64
ROUNDS = 3
ACTIONS = ("follow", "unfollow", "double_follow", "double_unfollow")


@dataclass
class Storm:
    in_flight: int = 0
    most_in_flight: int = 0
    requests: int = 0
    failures: list[str] = field(default_factory=list)


async def act(client: httpx.AsyncClient, storm: Storm, user: Account, target: Account,
              verb: str) -> None:
    """One follow or unfollow; it must succeed and answer with the new relationship."""
    storm.in_flight += 1
    storm.most_in_flight = max(storm.most_in_flight, storm.in_flight)
    try:
        response = await client.post(f"/api/v1/accounts/{target.id}/{verb}",
                                     headers=user.headers)
    finally:
        storm.in_flight -= 1
    storm.requests += 1
    if response.status_code != 200:
        storm.failures.append(f"{user.username} {verb}: {response.status_code} {response.text}")
        return
    relationship = response.json()
    if relationship["id"] != target.id or relationship["following"] != (verb == "follow"):
        storm.failures.append(f"{user.username} {verb}: answered {relationship}")


async def client_run(client: httpx.AsyncClient, storm: Storm, user: Account, target: Account,
                     plan: list[str], barrier: asyncio.Barrier) -> bool:
    """Play ``plan`` (one action per round, all clients starting each round together);
    returns whether the client follows the target at the end."""
    following = False
    for action in plan:
        await barrier.wait()
        verb = action.removeprefix("double_")
        times = 2 if verb != action else 1
        # A double action sends both requests at once: the same edge raced against itself.
        await asyncio.gather(*(act(client, storm, user, target, verb) for _ in range(times)))
        following = verb == "follow"
    return following


def test_follow_storm_keeps_counts_exact(server: Server) -> None:
    seed = int(os.environ.get("ROOST_E2E_SEED", random.randrange(1 << 30)))
    print(f"seed {seed}")
    rng = random.Random(seed)
    plans = []
    for _ in range(CLIENTS):
        plan: list[str] = []
        for _ in range(ROUNDS):
            plan += rng.sample(ACTIONS, len(ACTIONS))
        plans.append(plan)

    async def scenario() -> None:
        # Two connections per client: a double action has two requests in flight.
        async with async_client(server, connections=2 * CLIENTS) as client:
            started = time.monotonic()
            token = await app_token(client)
            target = await register(client, token, "target")
            users = await register_many(client, token, [f"fan{i}" for i in range(CLIENTS)])
            print(f"registered {CLIENTS + 1} accounts in {time.monotonic() - started:.1f}s")

            storm = Storm()
            barrier = asyncio.Barrier(CLIENTS)
            started = time.monotonic()
            finals = await asyncio.gather(*(
                client_run(client, storm, user, target, plan, barrier)
                for user, plan in zip(users, plans, strict=True)
            ))
            elapsed = time.monotonic() - started
            print(f"{storm.requests} follow/unfollow requests in {elapsed:.1f}s, "
                  f"up to {storm.most_in_flight} in flight")
            assert not storm.failures, "\n".join(storm.failures[:20])
            assert storm.most_in_flight >= CLIENTS

            expected = {user.id for user, following in zip(users, finals, strict=True)
                        if following}
            assert 0 < len(expected) < CLIENTS, "the plans should leave a mix"

            shown = (await client.get(f"/api/v1/accounts/{target.id}")).json()
            followers = await get_all(client, f"/api/v1/accounts/{target.id}/followers",
                                      params={"limit": 7})
            follower_ids = [a["id"] for a in followers]
            assert len(follower_ids) == len(set(follower_ids)), "a follower listed twice"
            assert set(follower_ids) == expected
            assert shown["followers_count"] == len(expected)
            assert shown["following_count"] == 0

            async def check_user(user: Account, following: bool) -> None:
                account = (await client.get(f"/api/v1/accounts/{user.id}")).json()
                assert account["following_count"] == int(following), user.username
                assert account["followers_count"] == 0, user.username
                relationships = await client.get(
                    "/api/v1/accounts/relationships", params={"id[]": target.id},
                    headers=user.headers)
                assert relationships.status_code == 200, relationships.text
                assert relationships.json()[0]["following"] is following, user.username
                listed = await get_all(client, f"/api/v1/accounts/{user.id}/following")
                assert [a["id"] for a in listed] == ([target.id] if following else [])

            await asyncio.gather(*(check_user(u, f) for u, f in zip(users, finals, strict=True)))

    asyncio.run(scenario())
    checked = server.roost("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    log = server.log()
    assert "Traceback" not in log and "database is locked" not in log, log[-5000:]
