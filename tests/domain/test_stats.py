"""Follower history is exact: rollups plus partial minutes against a brute-force recount."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.domain.stats import MilestoneRule
from roost.ids import id_at_ms
from roost.runtime import Roost
from roost.storage.database import Tx
from tests.conftest import on_app_loop

T0 = 1_239_900_000_000  # April 2009, in ms
MINUTE = 60_000
TARGET = 1


def _write_events(roost: Roost, events: list[tuple[int, int, int]]) -> None:
    """(time ms, follower id, delta) rows, with ids as the server would give them."""

    def write(tx: Tx) -> None:
        last: dict[int, int] = {}
        for at, follower, delta in events:
            seq = last.get(at, -1) + 1
            last[at] = seq
            roost.stores.follows.record_event(tx, TARGET, follower, delta,
                                              id_at_ms(at) | seq, at)

    roost.db.write_sync(write)


def _random_log(rng: random.Random, steps: int) -> list[tuple[int, int, int]]:
    """A consistent log: a follower only unfollows when following, and vice versa."""
    following: set[int] = set()
    at = T0
    events = []
    for _ in range(steps):
        at += rng.choice([0, 1, 500, 20_000, 61_000, 3 * MINUTE])
        follower = rng.randrange(1, 30)
        delta = -1 if follower in following else 1
        (following.discard if delta < 0 else following.add)(follower)
        events.append((at, follower, delta))
    return events


def _brute(events: list[tuple[int, int, int]], at: int) -> tuple[int, int, int]:
    followers = gained = lost = 0
    for t, _, delta in events:
        if t <= at:
            followers += delta
            gained += delta > 0
            lost += delta < 0
    return followers, gained, lost


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 120),
       rolled_fraction=st.floats(0, 1))
def test_snapshot_and_nth_match_brute_force(roost: Roost, seed: int, steps: int,
                                            rolled_fraction: float) -> None:
    roost.start()
    roost.db.write_sync(lambda tx: tx.exec_driver_sql("DELETE FROM follow_events"))
    roost.db.write_sync(lambda tx: tx.exec_driver_sql("DELETE FROM follower_rollups"))
    roost.db.write_sync(lambda tx: tx.exec_driver_sql("DELETE FROM roost_state"))
    rng = random.Random(seed)
    events = _random_log(rng, steps)
    _write_events(roost, events)
    end = events[-1][0]
    # Roll up only part of the history: reads must be exact whatever the rollup's progress.
    until = T0 + int((end - T0 + 2 * MINUTE) * rolled_fraction)
    history = roost.stores.history
    while not roost.db.write_sync(lambda tx: history.roll_up(tx, until // MINUTE, 7)):
        pass
    probes = {T0 - 1, end, end + MINUTE, *(t for t, _, _ in events),
              *(t - 1 for t, _, _ in events), *(rng.randrange(T0, end + 1) for _ in range(10))}
    for at in probes:
        snap = roost.db.read_sync(lambda tx, at=at: history.snapshot(tx, TARGET, at))
        assert (snap.followers, snap.gained, snap.lost) == _brute(events, at), at
    running, first_reach = 0, {}
    for at, follower, delta in events:
        running += delta
        first_reach.setdefault(running, (follower, at))
    for n in range(1, max(first_reach) + 2):
        found = roost.db.read_sync(lambda tx, n=n: history.nth(tx, TARGET, n))
        assert found == first_reach.get(n), n


def test_milestone_rule() -> None:
    rule = MilestoneRule([1000, 10_000, 100_000, 1_000_000], 1_000_000)
    assert 1000 in rule and 1_000_000 in rule and 3_000_000 in rule
    assert 999 not in rule and 1_500_000 not in rule and 20_000 not in rule


def test_milestones_once_under_churn(make_api: Any) -> None:
    api = make_api(milestones="2,3")
    roost: Roost = api.roost
    star = api.register("star")
    fans = [api.register(f"fan{i}") for i in range(3)]
    for fan in fans[:2]:
        fan.follow(star)
    for _ in range(3):  # churn across the milestone of 2
        fans[1].post(f"/api/v1/accounts/{star.id}/unfollow")
        fans[1].follow(star)
    fans[2].follow(star)
    body = api.client.get(f"/api/v1/roost/accounts/{star.id}/milestones").json()
    assert [(m["count"], m["account"]["username"]) for m in body] == [(2, "fan1"), (3, "fan2")]
    notes = star.get("/api/v1/notifications", params={"types[]": "roost.milestone"}).json()
    assert [n["milestone"]["count"] for n in notes] == [3, 2]
    assert roost.check() == []


def test_stats_api(make_api: Any) -> None:
    api = make_api()
    roost: Roost = api.roost
    star = api.register("star")
    fans = [api.register(f"fan{i}") for i in range(3)]
    for fan in fans:
        fan.follow(star)
    fans[0].post(f"/api/v1/accounts/{star.id}/unfollow")
    base = f"/api/v1/roost/accounts/{star.id}"
    now = api.client.get(f"{base}/followers/count").json()
    assert now["followers_count"] == 2 and now["account_id"] == star.id
    past = api.client.get(f"{base}/followers/count", params={"at": "2009-04-17T02:13:00-04:00"})
    assert past.json()["followers_count"] == 0
    assert past.json()["at"] == "2009-04-17T06:13:00.000Z"
    # fold everything, as if far in the future
    on_app_loop(api.client, roost.stats.roll_up, 10**13)
    assert api.client.get(f"{base}/followers/count").json()["followers_count"] == 2
    stats = api.client.get(f"{base}/followers/stats").json()
    assert stats["followers_count"] == 2
    assert stats["gained"] == {"15m": 3, "1h": 3, "1d": 3}
    assert stats["lost"]["15m"] == 1
    assert stats["velocity_per_hour"] == 8.0
    series = api.client.get(f"{base}/followers/history", params={"step": "minute"})
    points = series.json()
    assert len(points) == 24 * 60 + 1 and points[-1]["followers_count"] == 2
    assert points[0]["followers_count"] == 0
    second = api.client.get(f"{base}/followers/nth/2").json()
    assert second["n"] == 2 and second["account"]["username"] == "fan1"
    third = api.client.get(f"{base}/followers/nth/3").json()
    assert third["account"]["username"] == "fan2"
    assert api.client.get(f"{base}/followers/nth/4").status_code == 404
    assert api.client.get(f"{base}/followers/nth/0").status_code == 422
    assert api.client.get(f"{base}/followers/nth/x").status_code == 404
    bad = [
        {"at": "yesterday"}, {"at": "2999-01-01T00:00:00Z"},
    ]
    for params in bad:
        assert api.client.get(f"{base}/followers/count", params=params).status_code == 422
    assert api.client.get(f"{base}/followers/history", params={
        "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}).status_code == 422
    assert api.client.get(f"{base}/followers/history", params={
        "start": "2000-01-01T00:00:00Z", "step": "minute"}).status_code == 422
    assert api.client.get(f"{base}/followers/history", params={"step": "week"}
                          ).status_code == 422
    assert api.client.get("/api/v1/roost/accounts/42/followers/count").status_code == 404


def test_history_stays_exact_under_concurrent_writers(roost: Roost) -> None:
    from roost.domain.models import Account, Page
    from roost.ids import new_id

    roost.start()
    accounts = [Account(new_id(), f"user{i}", "", "", [], False, False, True, 0, None)
                for i in range(41)]
    for account in accounts:
        roost.db.write_sync(lambda tx, a=account: roost.stores.accounts.insert(tx, a, None))
    target, followers = accounts[0], accounts[1:]
    rng = random.Random(7)

    async def storm() -> None:
        async def churn(account_id: int) -> None:
            for _ in range(6):
                if rng.random() < 0.6:
                    await roost.follows.follow(account_id, target.id)
                else:
                    await roost.follows.unfollow(account_id, target.id)

        await asyncio.gather(*(churn(a.id) for a in followers))

    asyncio.run(storm())
    edges = roost.db.read_sync(
        lambda tx: len(roost.stores.follows.followers_page(
            tx, target.id, Page(limit=1000))))
    assert asyncio.run(roost.stats.count_at(target.id, 10**13)) == edges
    asyncio.run(roost.stats.roll_up(now=10**13))
    assert asyncio.run(roost.stats.count_at(target.id, 10**13)) == edges
    assert roost.check() == []
