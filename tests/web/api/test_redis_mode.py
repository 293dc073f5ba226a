"""Core flows with ``ROOST_REDIS_URL`` set: home timelines and streaming pub/sub in Redis, the
rest in the database (see tests/redis_support.py for the Redis the tests use)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from roost.domain.models import Page, TimelineEntry
from roost.ids import new_id
from roost.runtime import Roost
from roost.settings import Settings
from roost.storage.redis.pubsub import RedisPubSub
from roost.storage.redis.timelines import RedisHomeTimelineStore
from roost.storage.schema import home_timeline
from roost.web.streaming.publisher import message
from tests.conftest import Api, on_app_loop, wait_for_jobs


@pytest.fixture
def rapi(redis_url: str, redis_prefix: str, make_api: Any) -> Api:
    # (make_api last: torn down first, so the app has stopped before its keys are deleted; the
    # other way its job runner, still reading, made the stream again and left it behind)
    api: Api = make_api(redis_url=redis_url, redis_prefix=redis_prefix)
    return api


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def _ids(statuses: list[dict[str, Any]]) -> list[str]:
    return [s["id"] for s in statuses]


def _sql_home_rows(roost: Roost) -> int:
    return int(roost.db.read_sync(
        lambda tx: tx.execute(select(func.count()).select_from(home_timeline)).scalar()))


def test_the_stores_are_chosen_by_settings(rapi: Api, redis_prefix: str) -> None:
    assert isinstance(rapi.roost.stores.home, RedisHomeTimelineStore)
    assert rapi.roost.stores.home.prefix == redis_prefix
    assert isinstance(rapi.client.app.state.pubsub, RedisPubSub)  # type: ignore[attr-defined]


def test_post_follow_home_and_unfollow(rapi: Api, redis_url: str, redis_prefix: str) -> None:
    roost = rapi.roost
    alice, bob, carol = rapi.register("alice"), rapi.register("bob"), rapi.register("carol")
    old = alice.post_status("before the follow")
    bob.follow(alice)
    mine = bob.post_status("mine")
    theirs = alice.post_status("theirs")
    stranger = carol.post_status("stranger")
    wait_for_jobs(roost)
    home = bob.get("/api/v1/timelines/home")
    assert home.status_code == 200
    assert _ids(home.json()) == [theirs["id"], mine["id"], old["id"]]
    paged = bob.get("/api/v1/timelines/home", params={"limit": 1, "max_id": theirs["id"]})
    assert _ids(paged.json()) == [mine["id"]]
    assert stranger["id"] not in _ids(home.json())
    assert _sql_home_rows(roost) == 0  # none of it in the database
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zcard(f"{redis_prefix}home:{{{bob.id}}}") == 3
    finally:
        client.close()
    bob.post(f"/api/v1/accounts/{alice.id}/unfollow")
    wait_for_jobs(roost)
    assert _ids(bob.get("/api/v1/timelines/home").json()) == [mine["id"]]
    alice.delete(f"/api/v1/statuses/{theirs['id']}")
    wait_for_jobs(roost)
    assert _ids(alice.get("/api/v1/timelines/home").json()) == [old["id"]]


def test_a_loss_before_any_check_is_noticed(tmp_path: Path, raw: redis.Redis, redis_url: str,
                                           redis_prefix: str) -> None:
    """The store's mark is recorded as a process starts, not by the first check: Redis losing
    its data before any worker ever checked (one killed early, say) is still a loss found."""
    roost = Roost(Settings(data_dir=tmp_path, redis_url=redis_url, redis_prefix=redis_prefix))
    try:
        roost.start()  # (a web process without the background work, or a worker's first step)
        assert raw.get(f"{redis_prefix}home-epoch") is not None
        raw.delete(*raw.scan_iter(match=f"{redis_prefix}*"))
        assert asyncio.run(roost.timelines.check_home_store()) is True
    finally:
        roost.close()


def test_home_timelines_lost_with_redis_are_rebuilt(rapi: Api, raw: redis.Redis,
                                                     redis_prefix: str) -> None:
    """Redis restarts without its data (here: this Roost's keys deleted): the loss is noticed,
    and each account's next request rebuilds its home timeline (206 meanwhile, as Mastodon),
    with what was posted before the loss and while it went unnoticed: its own posts and the
    direct ones mentioning it too."""
    roost = rapi.roost
    alice, bob, carol = rapi.register("alice"), rapi.register("bob"), rapi.register("carol")
    bob.follow(alice)
    bob.follow(carol)
    own = bob.post_status("bob's own")
    before = alice.post_status("before the loss")
    mention = carol.post_status("@bob just between us", visibility="direct")
    wait_for_jobs(roost)
    assert _ids(bob.get("/api/v1/timelines/home").json()) == [
        mention["id"], before["id"], own["id"]]
    assert on_app_loop(rapi.client, roost.timelines.check_home_store) is False  # (intact)

    raw.delete(*raw.scan_iter(match=f"{redis_prefix}*"))
    unnoticed = carol.post_status("while the loss went unnoticed")
    wait_for_jobs(roost)
    assert on_app_loop(rapi.client, roost.timelines.check_home_store) is True
    wait_for_jobs(roost)
    assert on_app_loop(rapi.client, roost.timelines.check_home_store) is False  # (once)
    roost.oauth.recent.clear()  # (as after ROOST_AUTH_CACHE_SECONDS)

    first = bob.get("/api/v1/timelines/home")
    assert first.status_code == 206  # being rebuilt
    wait_for_jobs(roost)
    roost.oauth.recent.clear()
    rebuilt = bob.get("/api/v1/timelines/home")
    assert rebuilt.status_code == 200
    assert _ids(rebuilt.json()) == [unnoticed["id"], mention["id"], before["id"], own["id"]]
    after = alice.post_status("after the rebuild")
    wait_for_jobs(roost)
    assert _ids(bob.get("/api/v1/timelines/home").json()) == [
        after["id"], unnoticed["id"], mention["id"], before["id"], own["id"]]


def test_entries_of_missing_statuses_are_skipped(rapi: Api) -> None:
    """What a rolled-back transaction may leave in Redis: readers never see it."""
    roost = rapi.roost
    alice = rapi.register("alice")
    kept = alice.post_status("kept")
    roost.db.write_sync(lambda tx: roost.stores.home.add(
        tx, [int(alice.id)], TimelineEntry(new_id(), int(alice.id))))
    assert _ids(alice.get("/api/v1/timelines/home").json()) == [kept["id"]]


def test_timelines_are_capped_as_they_are_written(redis_url: str, redis_prefix: str,
                                                  make_api: Any) -> None:  # (see rapi)
    api = make_api(redis_url=redis_url, redis_prefix=redis_prefix, home_timeline_size=5)
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    posts = [alice.post_status(f"post {i}")["id"] for i in range(8)]
    wait_for_jobs(api.roost)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zcard(f"{redis_prefix}home:{{{bob.id}}}") == 5  # no maintenance ran
    finally:
        client.close()
    home = bob.get("/api/v1/timelines/home", params={"limit": 40}).json()
    assert _ids(home) == posts[::-1][:5]

def _wait_subscribed(client: redis.Redis, channel: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.pubsub_numsub(channel) == [(channel, 1)]:
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing subscribed to {channel}")


def test_streaming_goes_through_redis(rapi: Api, raw: redis.Redis, redis_prefix: str) -> None:
    alice, bob = rapi.register("alice"), rapi.register("bob")
    bob.follow(alice)
    wait_for_jobs(rapi.roost)
    url = f"/api/v1/streaming?stream=user&access_token={bob.token}"
    with rapi.client.websocket_connect(url) as ws:
        _wait_subscribed(raw, f"{redis_prefix}timeline:{{{bob.id}}}")
        posted = alice.post_status("live through Redis")
        event = ws.receive_json()
        assert (event["stream"], event["event"]) == (["user"], "update")
        assert event["payload"].startswith("{") and posted["id"] in event["payload"]
        # another web process publishing on the same Redis reaches this one's streams
        raw.publish(f"{redis_prefix}timeline:{{{bob.id}}}", message("delete", "12345"))
        assert ws.receive_json() == {"stream": ["user"], "event": "delete", "payload": "12345"}


def test_close_releases_the_redis_connections(redis_url: str, redis_prefix: str,
                                              raw: redis.Redis, tmp_path: Any) -> None:
    roost = Roost(Settings(data_dir=tmp_path / "data", redis_url=redis_url,
                           redis_prefix=redis_prefix, sqlite_synchronous="NORMAL"))
    roost.start()
    roost.db.read_sync(lambda tx: roost.stores.home.page(tx, 1, Page()))
    names = [c.get("name") for c in raw.client_list()]
    assert f"{redis_prefix}home" in names
    roost.close()
    for _ in range(100):  # the server notices a closed connection a moment later
        if f"{redis_prefix}home" not in [c.get("name") for c in raw.client_list()]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("Roost.close() left its Redis connections open")
