"""Timelines: home with hybrid fan-out, public, hashtag, paging."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from roost.domain.models import Page
from roost.runtime import Roost
from roost.storage.pubsub import PubSub
from roost.web.streaming import routes as streaming_routes
from roost.web.streaming.publisher import message
from tests.conftest import Api, on_app_loop, wait_for_jobs


def _ids(statuses: list[dict[str, Any]]) -> list[str]:
    return [s["id"] for s in statuses]


def test_home_timelines_in_the_database_are_never_found_lost(api: Api, roost: Roost) -> None:
    """Only a store apart from the database (Redis) can lose its timelines on its own
    (``check_home_store``; the Redis case is in test_redis_mode.py)."""
    bob = api.register("bob")
    active_at = roost.db.read_sync(lambda tx: roost.stores.accounts.by_ids(
        tx, [int(bob.id)]))[int(bob.id)].last_active_at
    assert on_app_loop(api.client, roost.timelines.check_home_store) is False
    assert on_app_loop(api.client, roost.timelines.check_home_store) is False
    wait_for_jobs(roost)
    assert roost.db.read_sync(lambda tx: roost.stores.accounts.by_ids(
        tx, [int(bob.id)]))[int(bob.id)].last_active_at == active_at
    assert bob.get("/api/v1/timelines/home").status_code == 200


def test_home_has_own_and_followed_posts(api: Api, roost: Roost) -> None:
    alice, bob, carol = api.register("alice"), api.register("bob"), api.register("carol")
    bob.follow(alice)
    mine = bob.post_status("mine")
    theirs = alice.post_status("theirs")
    stranger = carol.post_status("stranger")
    wait_for_jobs(roost)
    home = _ids(bob.get("/api/v1/timelines/home").json())
    assert home == [theirs["id"], mine["id"]]
    assert stranger["id"] not in home


def test_follow_backfills_and_unfollow_removes(api: Api, roost: Roost) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    old = [alice.post_status(f"old {i}") for i in range(3)]
    bob.follow(alice)
    wait_for_jobs(roost)
    assert _ids(bob.get("/api/v1/timelines/home").json()) == _ids(old[::-1])
    bob.post(f"/api/v1/accounts/{alice.id}/unfollow")
    wait_for_jobs(roost)
    assert bob.get("/api/v1/timelines/home").json() == []


def test_replies_reach_only_those_who_follow_both(api: Api, roost: Roost) -> None:
    alice, bob, carol, dave = (api.register(n) for n in ("alice", "bob", "carol", "dave"))
    carol.follow(alice)
    dave.follow(alice)
    dave.follow(bob)
    bobs = bob.post_status("bob says")
    reply = alice.post_status("@bob indeed", in_reply_to_id=bobs["id"])
    wait_for_jobs(roost)
    assert reply["id"] not in _ids(carol.get("/api/v1/timelines/home").json())
    assert reply["id"] in _ids(dave.get("/api/v1/timelines/home").json())


def test_reblogs_reach_followers_unless_hidden(api: Api, roost: Roost) -> None:
    alice, bob, carol, dave = (api.register(n) for n in ("alice", "bob", "carol", "dave"))
    carol.follow(bob)
    dave.post(f"/api/v1/accounts/{bob.id}/follow", data={"reblogs": "false"})
    original = alice.post_status("worth sharing")
    reblog = bob.post(f"/api/v1/statuses/{original['id']}/reblog").json()
    wait_for_jobs(roost)
    carol_home = carol.get("/api/v1/timelines/home").json()
    assert _ids(carol_home) == [reblog["id"]]
    assert carol_home[0]["reblog"]["id"] == original["id"]
    assert dave.get("/api/v1/timelines/home").json() == []


def test_private_and_direct_delivery(api: Api, roost: Roost) -> None:
    alice, bob, carol = api.register("alice"), api.register("bob"), api.register("carol")
    bob.follow(alice)
    private = alice.post_status("followers", visibility="private")
    direct = alice.post_status("hi @carol", visibility="direct")
    wait_for_jobs(roost)
    assert _ids(bob.get("/api/v1/timelines/home").json()) == [private["id"]]
    assert _ids(carol.get("/api/v1/timelines/home").json()) == [direct["id"]]
    assert _ids(alice.get("/api/v1/timelines/home").json()) == [direct["id"], private["id"]]


def test_paging_windows_and_links(api: Api, roost: Roost) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    posts = [alice.post_status(f"post {i}")["id"] for i in range(7)]
    wait_for_jobs(roost)
    newest_first = posts[::-1]
    page = bob.get("/api/v1/timelines/home", params={"limit": 3})
    assert _ids(page.json()) == newest_first[:3]
    next_url = page.headers["link"].split(";")[0].strip("<>")
    assert _ids(bob.get(next_url).json()) == newest_first[3:6]
    since = bob.get("/api/v1/timelines/home", params={"since_id": posts[2], "limit": 2})
    assert _ids(since.json()) == newest_first[:2]
    above = bob.get("/api/v1/timelines/home", params={"min_id": posts[2], "limit": 2})
    assert _ids(above.json()) == [posts[4], posts[3]]
    window = bob.get("/api/v1/timelines/home",
                     params={"max_id": posts[5], "since_id": posts[1]})
    assert _ids(window.json()) == [posts[4], posts[3], posts[2]]
    assert bob.get("/api/v1/timelines/home", params={"limit": 1000}).status_code == 200
    assert len(bob.get("/api/v1/timelines/home", params={"limit": 0}).json()) == 1
    assert bob.get("/api/v1/timelines/home", params={"max_id": "x"}).status_code == 400
    assert bob.get("/api/v1/timelines/home", params={"limit": "x"}).status_code == 400
    empty = bob.get("/api/v1/timelines/home", params={"max_id": posts[0]})
    assert empty.json() == [] and "link" not in empty.headers


def test_public_and_tag_timelines(api: Api) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    public = alice.post_status("hello #Birds")
    alice.post_status("quiet #birds", visibility="unlisted")
    alice.post_status("friends #birds", visibility="private")
    bob.post_status("@alice reply #birds", in_reply_to_id=public["id"])
    alice.post(f"/api/v1/statuses/{public['id']}/reblog")
    timeline = api.client.get("/api/v1/timelines/public").json()
    assert _ids(timeline) == [public["id"]]
    assert api.client.get("/api/v1/timelines/public", params={"remote": "true"}).json() == []
    tagged = api.client.get("/api/v1/timelines/tag/BIRDS").json()
    assert len(tagged) == 2 and public["id"] in _ids(tagged)
    assert api.client.get("/api/v1/timelines/tag/nothing").json() == []


@pytest.fixture(params=["sql", "redis"])
def timeline_backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings for home timelines in the database, or in Redis."""
    if request.param == "sql":
        return {}
    return {"redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": request.getfixturevalue("redis_prefix")}


def test_celebrity_posts_are_merged_at_read_time(timeline_backend: dict[str, str],
                                                 make_api: Any) -> None:
    # (timeline_backend first: its Redis prefix is then torn down after the app has stopped,
    # not while its job runner still reads the stream, which would make the stream again)
    api = make_api(fanout_pull_above=3, fanout_push_below=2, **timeline_backend)
    roost: Roost = api.roost
    star = api.register("star")
    fans = [api.register(f"fan{i}") for i in range(3)]
    before = star.post_status("pushed before")
    for fan in fans:
        fan.follow(star)
    wait_for_jobs(roost)
    pulled = star.post_status("merged at read")
    assert roost.db.read_sync(roost.stores.jobs.pending_count) == 0  # no fan-out job
    for fan in fans:
        home = _ids(fan.get("/api/v1/timelines/home").json())
        assert home == [pulled["id"], before["id"]]
    assert _ids(star.get("/api/v1/timelines/home").json()) == [pulled["id"], before["id"]]
    # Back below the lower threshold: pushed again, and the pulled post is neither lost
    # nor duplicated.
    fans[0].post(f"/api/v1/accounts/{star.id}/unfollow")
    fans[1].post(f"/api/v1/accounts/{star.id}/unfollow")
    after = star.post_status("pushed after")
    wait_for_jobs(roost)
    home = _ids(fans[2].get("/api/v1/timelines/home").json())
    assert home == [after["id"], pulled["id"], before["id"]]
    page = _ids(fans[2].get("/api/v1/timelines/home", params={"limit": 2}).json())
    assert page == [after["id"], pulled["id"]]
    assert fans[0].get("/api/v1/timelines/home").json() == []


def test_home_timelines_are_capped(make_api: Any) -> None:
    api = make_api(home_timeline_size=5)
    roost: Roost = api.roost
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    posts = [alice.post_status(f"post {i}")["id"] for i in range(8)]
    wait_for_jobs(roost)
    on_app_loop(api.client, roost.maintain)
    home = bob.get("/api/v1/timelines/home", params={"limit": 40}).json()
    assert _ids(home) == posts[::-1][:5]


# The rebuilds of inactive accounts are tested on a store that holds every timeline (the
# database; Redis in test_redis_mode.py): the in-memory store fills a timeline it lacks at its
# first read instead (tests/web/api/test_memory_timelines.py).
def test_inactive_followers_are_skipped_and_rebuilt_on_return(make_api: Any) -> None:
    # The test moves Bob's last activity back 30 days in the database; a process that had
    # remembered his token (ROOST_AUTH_CACHE_SECONDS) would have forgotten it by then.
    api = make_api(auth_cache_seconds=0, home_timelines="database")
    roost: Roost = api.roost
    alice, bob, carol = api.register("alice"), api.register("bob"), api.register("carol")
    bob.follow(alice)
    carol.follow(alice)
    wait_for_jobs(roost)
    # Bob has not been seen for longer than ROOST_INACTIVE_DAYS.
    roost.db.write_sync(lambda tx: roost.stores.accounts.update(
        tx, int(bob.id), {"last_active_at": 1}))
    post = alice.post_status("while bob was away")
    wait_for_jobs(roost)
    rows = roost.db.read_sync(lambda tx: roost.stores.home.page(
        tx, int(bob.id), Page()))
    assert post["id"] not in {str(e.status_id) for e in rows}  # skipped by fan-out
    assert _ids(carol.get("/api/v1/timelines/home").json()) == [post["id"]]
    back = bob.get("/api/v1/timelines/home")
    assert back.status_code == 206  # being rebuilt, as Mastodon answers
    wait_for_jobs(roost)
    again = bob.get("/api/v1/timelines/home")
    assert again.status_code == 200
    assert _ids(again.json()) == [post["id"]]


def _away(roost: Roost, account_id: str) -> None:
    """The account was last seen longer ago than ROOST_INACTIVE_DAYS (as far as the
    database knows: a process may remember otherwise)."""
    roost.db.write_sync(lambda tx: roost.stores.accounts.update(
        tx, int(account_id), {"last_active_at": 1}))


def _home_ids(roost: Roost, account_id: str) -> set[str]:
    rows = roost.db.read_sync(lambda tx: roost.stores.home.page(tx, int(account_id), Page()))
    return {str(e.status_id) for e in rows}


def test_a_rebuilt_home_holds_what_fan_out_would_have_pushed(make_api: Any) -> None:
    """An inactive account is skipped by fan-out; its rebuild puts back what fan-out would
    have given it, under the same rules: an account with the same follows that stayed
    active reads the same home timeline."""
    api = make_api(auth_cache_seconds=0, home_timelines="database")
    roost: Roost = api.roost
    alice, carol, dave, bob, twin = (api.register(n) for n in
                                     ("alice", "carol", "dave", "bob", "twin"))
    for user in (bob, twin):
        user.follow(alice)
        hiding = user.post(f"/api/v1/accounts/{carol.id}/follow", data={"reblogs": "false"})
        assert hiding.status_code == 200
    wait_for_jobs(roost)
    _away(roost, bob.id)

    carols, daves = carol.post_status("carol speaks"), dave.post_status("dave speaks")
    shown = [
        alice.post_status("to carol", in_reply_to_id=carols["id"]),  # carol is followed too
        alice.post_status("followers only", visibility="private"),
        alice.post(f"/api/v1/statuses/{daves['id']}/reblog").json(),
        dave.post_status("@bob @twin between us", visibility="direct"),
    ]
    hidden = [
        alice.post_status("to dave", in_reply_to_id=daves["id"]),  # dave is not followed
        carol.post(f"/api/v1/statuses/{daves['id']}/reblog").json(),  # carol's reblogs hidden
    ]
    wait_for_jobs(roost)
    assert bob.get("/api/v1/timelines/home").status_code == 206
    wait_for_jobs(roost)

    rebuilt = bob.get("/api/v1/timelines/home", params={"limit": 40})
    assert rebuilt.status_code == 200
    assert _ids(rebuilt.json()) == _ids(twin.get("/api/v1/timelines/home",
                                                 params={"limit": 40}).json())
    assert {s["id"] for s in shown} <= set(_ids(rebuilt.json()))
    assert not {s["id"] for s in hidden} & set(_ids(rebuilt.json()))


def test_an_account_marked_inactive_behind_its_open_stream_is_revived(make_api: Any) -> None:
    api = make_api(auth_cache_seconds=0, home_timelines="database")
    roost: Roost = api.roost
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    wait_for_jobs(roost)
    streaming = roost.db.read_sync(lambda tx: roost.stores.accounts.by_ids(tx, [int(bob.id)]))
    listener = streaming[int(bob.id)]  # the account as its stream knows it: active
    _away(roost, bob.id)  # then marked inactive, as after a loss of the home timelines
    missed = alice.post_status("while bob was marked away")
    wait_for_jobs(roost)
    assert missed["id"] not in _home_ids(roost, bob.id)

    on_app_loop(api.client, roost.accounts.revive, listener)
    on_app_loop(api.client, roost.accounts.revive, listener)  # a second stream of the same account
    assert listener.home_rebuilding
    wait_for_jobs(roost)
    assert missed["id"] in _home_ids(roost, bob.id)  # rebuilt without a request of bob's
    reached = alice.post_status("pushed again")
    wait_for_jobs(roost)
    assert reached["id"] in _home_ids(roost, bob.id)


def test_an_open_stream_keeps_its_account_active(make_api: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming_routes, "HEARTBEAT_SECONDS", 0.05)
    api = make_api(auth_cache_seconds=0, home_timelines="database")
    roost: Roost = api.roost
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    wait_for_jobs(roost)
    _away(roost, bob.id)
    missed = alice.post_status("while bob was away")
    wait_for_jobs(roost)
    with api.client.websocket_connect(f"/api/v1/streaming?access_token={bob.token}"):
        deadline = time.monotonic() + 10
        while missed["id"] not in _home_ids(roost, bob.id):  # a beat noted bob back
            assert time.monotonic() < deadline
            wait_for_jobs(roost)
            time.sleep(0.05)


def test_a_busy_sse_stream_keeps_its_account_active_too(make_api: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that is never quiet for a whole heartbeat notes its account active by the
    clock all the same."""
    monkeypatch.setattr(streaming_routes, "HEARTBEAT_SECONDS", 0.2)
    api = make_api()
    roost: Roost = api.roost
    bob = api.register("bob")
    _away(roost, bob.id)
    listener = roost.db.read_sync(
        lambda tx: roost.stores.accounts.by_ids(tx, [int(bob.id)]))[int(bob.id)]
    pubsub: PubSub = api.client.app.state.pubsub  # type: ignore[attr-defined]
    channel = f"timeline:{bob.id}"

    async def listen_while_busy() -> list[bytes]:
        subscription = pubsub.subscription()
        await subscription.add([channel])
        events = streaming_routes._sse_events(roost, listener, subscription)

        async def chatter() -> None:
            while True:  # an event every 5 ms: never a heartbeat's silence
                await pubsub.publish(channel, message("update", "{}"))
                await asyncio.sleep(0.005)

        talking = asyncio.create_task(chatter())
        received: list[bytes] = []
        try:
            deadline = time.monotonic() + 1.0
            async for chunk in events:
                received.append(chunk)
                if time.monotonic() > deadline:
                    break
        finally:
            talking.cancel()
            await events.aclose()
        return received

    received = on_app_loop(api.client, listen_while_busy)
    assert len(received) > 50 and b":thump\n\n" not in received
    stored = roost.db.read_sync(
        lambda tx: roost.stores.accounts.by_ids(tx, [int(bob.id)]))[int(bob.id)]
    assert stored.last_active_at > 1


def test_pulled_authors_follow_the_home_rules_too(make_api: Any) -> None:
    api = make_api(fanout_pull_above=1, fanout_push_below=1)
    roost: Roost = api.roost
    star, fan, other = api.register("star"), api.register("fan"), api.register("other")
    fan.post(f"/api/v1/accounts/{star.id}/follow", data={"reblogs": "false"})
    others = other.post_status("hello")
    plain = star.post_status("for everyone")
    star.post_status("@other hi", in_reply_to_id=others["id"])  # fan does not follow other
    star.post(f"/api/v1/statuses/{others['id']}/reblog")  # fan hides star's reblogs
    wait_for_jobs(roost)
    assert _ids(fan.get("/api/v1/timelines/home").json()) == [plain["id"]]


def test_timeline_pages_are_read_without_a_snapshot(api: Api, roost: Roost,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL a snapshot costs a BEGIN and a ROLLBACK round trip per page (half of
    PostgreSQL's CPU in the home read benchmark); timeline pages do without, as Mastodon's
    reads do (domain/timelines.py). Each page is a bounded read (on SQLite it runs on the
    event loop's thread), once the home timeline is held: a first read that fills it from
    the database is not (test_memory_timelines.py)."""
    alice = api.register("alice")
    post = alice.post_status("#birds sing")
    assert _ids(alice.get("/api/v1/timelines/home").json()) == [post["id"]]
    asked: list[dict[str, bool]] = []
    read = roost.db.read

    async def spy(fn: Any, **options: bool) -> Any:
        asked.append(options)
        return await read(fn, **options)

    monkeypatch.setattr(roost.db, "read", spy)
    for path in ("/api/v1/timelines/home", "/api/v1/timelines/public",
                 "/api/v1/timelines/tag/birds", f"/api/v1/accounts/{alice.id}/statuses"):
        asked.clear()
        assert _ids(alice.get(path).json()) == [post["id"]]
        assert asked[-1] == {"snapshot": False, "bounded": True}, path
