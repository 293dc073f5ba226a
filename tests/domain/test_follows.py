"""Follow counters: how many rows an account's counts are spread over, on each engine."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import func, select

from roost.runtime import Roost
from roost.settings import Settings
from roost.storage.schema import account_counters


@pytest.fixture
def settings(settings_on_both: Settings) -> Settings:
    return settings_on_both


def test_counter_rows_are_spread_on_postgresql_only(roost: Roost) -> None:
    """Every read of an account sums its counter rows. SQLite's one writer never waits on a
    row, so each account keeps one; PostgreSQL's writers in several processes update the
    same accounts, so their follows are spread over 16 rows (ROOST_COUNTER_SHARDS)."""
    roost.start()
    shards = roost.settings.resolved_counter_shards()
    assert shards == (1 if roost.db.is_sqlite else 16)
    assert roost.follows.shards == roost.posts.shards == shards

    async def follow_star() -> int:
        star = await roost.accounts.register("star", "star@example.com", "password 123",
                                             agreement=True)
        for n in range(40):
            fan = await roost.accounts.register(f"fan{n}", f"fan{n}@example.com",
                                                "password 123", agreement=True)
            await roost.follows.follow(fan.id, star.id)
        return star.id

    star_id = anyio.run(follow_star)
    rows = roost.db.read_sync(lambda tx: tx.execute(
        select(func.count()).select_from(account_counters)
        .where(account_counters.c.account_id == star_id)).scalar_one())
    # (On PostgreSQL a row per follower id modulo 16: ids made a millisecond apart or more
    # all end in the same bits, so how many rows depends on how fast the fans signed up.)
    assert rows == 1 if roost.db.is_sqlite else 1 <= rows <= 16
    assert roost.db.read_sync(
        lambda tx: roost.stores.accounts.by_ids(tx, [star_id]))[star_id].followers_count == 40


def test_counter_shards_can_be_set() -> None:
    assert Settings(counter_shards=4).resolved_counter_shards() == 4
    assert Settings().resolved_counter_shards() == 1
    assert Settings(database_url="postgresql://x/y").resolved_counter_shards() == 16
