"""roost seed on both engines: the community it builds is exact and its history works."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from roost.clock import now_ms
from roost.runtime import Roost
from roost.settings import Settings
from roost.tools.seed import Seeder, SeedError, SeedPlan

PG = os.environ.get("ROOST_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(params=["sqlite", "postgresql"])
def roost(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Roost]:
    database_url = None
    name = f"roost_seed_{uuid.uuid4().hex[:10]}"
    if request.param == "postgresql":
        try:
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            if os.environ.get("CI") == "true":
                raise
            pytest.skip(f"PostgreSQL not reachable: {exc}")
        database_url = PG.rsplit("/", 1)[0] + f"/{name}"
    instance = Roost(Settings(data_dir=tmp_path, database_url=database_url,
                              milestones="100,1000", fanout_pull_above=500,
                              fanout_push_below=400, sqlite_synchronous="NORMAL"))
    instance.start()
    yield instance
    instance.close()
    if database_url:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def test_seed_refuses_impossible_or_clashing_plans(roost: Roost) -> None:
    with pytest.raises(SeedError):
        Seeder(roost, SeedPlan(accounts=10, celebrities={"star": 50})).run()
    Seeder(roost, SeedPlan(accounts=10, celebrities={"star": 5}, posts_per_account=0)).run()
    with pytest.raises(SeedError):
        Seeder(roost, SeedPlan(accounts=10, celebrities={"star": 5})).run()
