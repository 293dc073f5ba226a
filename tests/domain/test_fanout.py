"""Fan-out steps of several posts taken together (``Fanout.steps``, the batch
handler of "fanout" jobs): each post reaches the followers it would reach alone, no more."""

from __future__ import annotations

import asyncio
from pathlib import Path

from roost.domain.models import Page, Visibility
from roost.domain.posts import NewPost
from roost.runtime import Roost
from roost.settings import Settings
from roost.storage.database import Tx


def test_a_burst_of_fanouts_reaches_whom_each_post_reaches_alone(tmp_path: Path) -> None:
    # Two followers per step: carol's posts reach their three followers in two steps.
    roost = Roost(Settings(data_dir=tmp_path, fanout_batch_size=2))
    roost.start()  # (no background work: the test runs the jobs itself)
    try:
        asyncio.run(_burst(roost))
    finally:
        roost.close()


async def _burst(roost: Roost) -> None:
    alice, carol, bob, dave, eve = await roost.accounts.create_named(
        ["alice", "carol", "bob", "dave", "eve"])
    await roost.follows.follow(bob.id, alice.id)
    await roost.follows.follow(bob.id, carol.id)
    await roost.follows.follow(dave.id, alice.id, reblogs=False)
    await roost.follows.follow(dave.id, carol.id)
    await roost.follows.follow(eve.id, carol.id)
    await _run_jobs(roost)

    batches: list[int] = []
    together = roost.jobs.batch_handlers["fanout"]

    def counted(tx: Tx, payloads: list[dict[str, object]]) -> list[dict[str, object] | None]:
        batches.append(len(payloads))
        return together(tx, payloads)

    roost.jobs.batch_handlers["fanout"] = counted

    first = (await roost.posts.create(alice.id, NewPost("first"))).status.id
    gone = (await roost.posts.create(alice.id, NewPost("deleted before delivery"))).status.id
    await roost.posts.delete(alice.id, gone)
    private = (await roost.posts.create(carol.id, NewPost(
        "followers only", visibility=Visibility.PRIVATE))).status.id
    private_boost = (await roost.posts.reblog(carol.id, private)).status.id
    public = (await roost.posts.create(carol.id, NewPost("for everyone"))).status.id
    reply = (await roost.posts.create(carol.id, NewPost(
        "a reply to alice", in_reply_to_id=first))).status.id
    boost = (await roost.posts.reblog(alice.id, public)).status.id
    await _run_jobs(roost)

    assert batches and batches[0] >= 6  # the posts' fan-outs ran as one step
    homes = {name: await _home(roost, account.id)
             for name, account in (("bob", bob), ("dave", dave), ("eve", eve))}
    assert homes["bob"] == {first, private, public, reply, boost}
    assert homes["dave"] == {first, private, public, reply}  # hides alice's reblogs
    assert homes["eve"] == {private, public}  # follows carol, not the replied-to alice
    assert all(gone not in home and private_boost not in home for home in homes.values())


async def _run_jobs(roost: Roost) -> None:
    while await roost.jobs.run_due():
        pass


async def _home(roost: Roost, account_id: int) -> set[int]:
    views = await roost.timelines.home(account_id, Page(None, None, None, 40))
    return {v.status.id for v in views}
