"""Follow counters: how many rows an account's counts are spread over, on each engine."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from sqlalchemy import func, select

from roost.runtime import Roost
from roost.settings import Settings
from roost.storage.schema import account_counters


@pytest.fixture
def settings(settings_on_both: Settings) -> Settings:
    return settings_on_both


def _star_with_fans(roost: Roost, fans: int) -> tuple[int, int]:
    """A star followed by ``fans`` new accounts: (its followers count, its counter rows)."""

    async def follow_star() -> int:
        star = await roost.accounts.register("star", "star@example.com", "password 123",
                                             agreement=True)
        for n in range(fans):
            fan = await roost.accounts.register(f"fan{n}", f"fan{n}@example.com",
                                                "password 123", agreement=True)
            await roost.follows.follow(fan.id, star.id)
        return star.id

    star_id = anyio.run(follow_star)
    rows = roost.db.read_sync(lambda tx: tx.execute(
        select(func.count()).select_from(account_counters)
        .where(account_counters.c.account_id == star_id)).scalar_one())
    count = roost.db.read_sync(
        lambda tx: roost.stores.accounts.by_ids(tx, [star_id]))[star_id].followers_count
    return count, rows


def test_one_counter_row_per_account_by_default(roost: Roost) -> None:
    """Every read of an account sums its counter rows, so by default there is one; the
    follows of one account wait on its counter lock whatever the rows."""
    roost.start()
    assert roost.follows.shards == roost.posts.shards == 1
    assert _star_with_fans(roost, 10) == (10, 1)


@pytest.fixture
def sixteen_rows(settings: Settings) -> Iterator[Roost]:
    instance = Roost(settings.model_copy(update={"counter_shards": 16}))
    yield instance
    instance.close()


def test_more_counter_rows_spread_the_follows(sixteen_rows: Roost) -> None:
    """With ROOST_COUNTER_SHARDS=16 the follows of 40 new accounts land on many rows (ids
    made in separate milliseconds share their low bits: chosen by ``id % 16`` they would
    land on one), and the sum stays exact."""
    sixteen_rows.start()
    count, rows = _star_with_fans(sixteen_rows, 40)
    assert count == 40
    assert 8 <= rows <= 16


def test_counter_shards_can_be_set() -> None:
    assert Settings().counter_shards == 1
    assert Settings(counter_shards=4).counter_shards == 4
