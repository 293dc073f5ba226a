"""roost seed on both engines: the community it builds is exact and its history works."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.clock import now_ms
from roost.runtime import Roost
from roost.settings import Settings
from roost.tools.seed import Seeder, SeedError, SeedPlan
from tests.pg_support import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def roost(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Roost]:
    with contextlib.ExitStack() as stack:
        database_url = (stack.enter_context(fresh_database("roost_seed"))
                        if request.param == "postgresql" else None)
        instance = Roost(Settings(data_dir=tmp_path, database_url=database_url,
                                  milestones="100,1000", fanout_pull_above=500,
                                  fanout_push_below=400, sqlite_synchronous="NORMAL"))
        instance.start()
        try:
            yield instance
        finally:
            instance.close()


def test_seeded_community_is_exact(roost: Roost) -> None:
    plan = SeedPlan(accounts=3000, celebrities={"star": 1200, "rival": 900}, days=2)
    report = Seeder(roost, plan).run()
    assert report.accounts == 3002
    assert report.posts == 3002 * 3
    assert roost.check() == []
    star = asyncio.run(roost.accounts.lookup("star", roost.settings.domain))
    assert star.followers_count == 1200 and star.pulled
    now = now_ms()
    assert asyncio.run(roost.stats.count_at(star.id, now)) == 1200
    assert asyncio.run(roost.stats.count_at(star.id, now - 3 * 86_400_000)) == 0
    halfway = asyncio.run(roost.stats.count_at(star.id, now - 86_400_000))
    assert 0 < halfway < 1200
    follower, _ = asyncio.run(roost.stats.nth(star.id, 1000))
    assert follower.username.startswith("user")
    found = asyncio.run(roost.stats.milestones(star.id))
    assert [m.count for m, _ in found] == [100, 1000]
    # The rollups and the raw events agree: roll up again (nothing new) and ask again.
    asyncio.run(roost.stats.roll_up())
    assert asyncio.run(roost.stats.count_at(star.id, now - 86_400_000)) == halfway
    ordinary = [c for c in roost.check() if c.kind == "account"]
    assert ordinary == []
    if not roost.db.is_sqlite:  # the planner knows the tables as loaded (BulkLoader.analyze)
        analyzed = roost.db.read_sync(lambda tx: set(tx.exec_driver_sql(
            "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = 'public'").scalars()))
        assert {"accounts", "follows", "statuses", "follow_events"} <= analyzed


def test_seed_refuses_impossible_or_clashing_plans(roost: Roost) -> None:
    with pytest.raises(SeedError):
        Seeder(roost, SeedPlan(accounts=10, celebrities={"star": 50})).run()
    Seeder(roost, SeedPlan(accounts=10, celebrities={"star": 5}, posts_per_account=0)).run()
    with pytest.raises(SeedError):
        Seeder(roost, SeedPlan(accounts=10, celebrities={"star": 5})).run()
