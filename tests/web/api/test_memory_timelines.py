"""Home timelines in the memory of `roost serve` (the embedded default): pushed while the
process runs, filled from the database at each account's first read after a start."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from roost.runtime import Roost
from roost.settings import Settings
from roost.storage.memory.timelines import MemoryHomeTimelineStore
from roost.storage.sql.timelines import SqlHomeTimelineStore
from roost.web.app import create_app
from tests.conftest import Api, User, on_app_loop, wait_for_jobs


class Instance:
    """`roost serve` on one data folder, which a test can stop and start again."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.opened: list[tuple[TestClient, Roost]] = []

    def start(self, **settings: Any) -> tuple[TestClient, Roost]:
        roost = Roost(Settings(data_dir=self.data_dir, port=8000, sqlite_synchronous="NORMAL",
                               auth_cache_seconds=0, **settings), serving=True)
        client = TestClient(create_app(roost), base_url="http://localhost:8000")
        client.__enter__()
        self.opened.append((client, roost))
        return client, roost

    def stop(self) -> None:
        client, roost = self.opened.pop()
        client.__exit__(None, None, None)
        roost.close()


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    made = Instance(tmp_path / "data")
    yield made
    while made.opened:
        made.stop()


def _ids(statuses: list[dict[str, Any]]) -> list[str]:
    return [s["id"] for s in statuses]


def _home(user: User, **params: Any) -> tuple[int, list[str]]:
    response = user.get("/api/v1/timelines/home", params={"limit": 40, **params})
    return response.status_code, _ids(response.json())


def test_embedded_serve_keeps_home_timelines_in_memory(instance: Instance) -> None:
    _, roost = instance.start()
    assert isinstance(roost.stores.home, MemoryHomeTimelineStore)
    tool = Roost(Settings(data_dir=instance.data_dir))  # (a command-line tool: not serving)
    try:
        assert isinstance(tool.stores.home, SqlHomeTimelineStore)
    finally:
        tool.close()


def test_a_restart_fills_each_home_timeline_as_delivery_had_it(instance: Instance) -> None:
    """Every rule of delivery (replies, hidden reblogs, reblogs of private posts, private
    mentions, direct posts, one's own) gives the same timelines pushed while running and
    filled from the database after a restart, answered 200 at once."""
    client, roost = instance.start()
    api = Api(client, roost)
    alice, bob, carol, dave = (api.register(n) for n in ("alice", "bob", "carol", "dave"))
    for user in (alice, bob, carol, dave):
        assert _home(user) == (200, [])  # each one's timeline is held from now on
    bob.follow(alice)
    bob.follow(carol)
    dave.follow(alice)
    quiet = dave.post(f"/api/v1/accounts/{carol.id}/follow", data={"reblogs": "false"})
    assert quiet.status_code == 200
    wait_for_jobs(roost)
    first = alice.post_status("hello")
    alice.post_status("to carol, whom bob follows", in_reply_to_id=carol.post_status("hi")["id"])
    alice.post_status("to dave, whom bob does not follow",
                      in_reply_to_id=dave.post_status("dave here")["id"])
    alice.post_status("and to myself", in_reply_to_id=first["id"])
    carol.post(f"/api/v1/statuses/{first['id']}/reblog")  # hidden from dave
    secret = carol.post_status("followers only", visibility="private")
    carol.post(f"/api/v1/statuses/{secret['id']}/reblog")  # (to carol herself only)
    alice.post_status("@dave a word in private", visibility="private")
    carol.post_status("@alice direct", visibility="direct")
    gone = alice.post_status("deleted again")
    assert alice.delete(f"/api/v1/statuses/{gone['id']}").status_code == 200
    wait_for_jobs(roost)
    pushed = {u.id: _home(u) for u in (alice, bob, carol, dave)}
    assert all(len(ids) >= 3 for _, ids in pushed.values())

    instance.stop()
    client, roost = instance.start()
    store = roost.stores.home
    assert isinstance(store, MemoryHomeTimelineStore) and store.held() == (0, 0)
    for user in (alice, bob, carol, dave):
        user.client = client
        assert _home(user) == pushed[user.id], user.account["username"]
    max_id = pushed[bob.id][1][1]
    assert _home(bob, max_id=max_id)[1] == pushed[bob.id][1][2:]


def test_fan_out_reaches_held_timelines_and_leaves_the_others_to_their_fill(
        instance: Instance) -> None:
    client, roost = instance.start()
    api = Api(client, roost)
    alice, bob, carol = (api.register(n) for n in ("alice", "bob", "carol"))
    bob.follow(alice)
    carol.follow(alice)
    wait_for_jobs(roost)
    instance.stop()
    client, roost = instance.start()
    for user in (alice, bob, carol):
        user.client = client
    assert _home(bob) == (200, [])  # bob reads: held from now on; carol does not
    post = alice.post_status("after the restart")
    wait_for_jobs(roost)
    store = roost.stores.home
    assert isinstance(store, MemoryHomeTimelineStore)
    assert store.held() == (1, 1)  # bob's: alice's own waits for her first read, as carol's
    assert _home(bob) == (200, [post["id"]])
    assert _home(carol) == (200, [post["id"]])  # filled at her first read
    unfollowed = carol.post(f"/api/v1/accounts/{alice.id}/unfollow")
    assert unfollowed.status_code == 200
    wait_for_jobs(roost)
    assert _home(carol) == (200, [])


def test_a_worker_cannot_share_the_memory_of_serve() -> None:
    embedded = Settings()
    assert embedded.resolved_home_timelines() == "memory"
    assert embedded.home_timelines_problem() is None
    assert "roost worker" in (embedded.home_timelines_problem(worker=True) or "")
    apart = Settings(embedded_worker=False)
    assert apart.resolved_home_timelines() == "database"
    assert apart.home_timelines_problem(worker=True) is None
    forced = Settings(home_timelines="memory", embedded_worker=False)
    assert "ROOST_EMBEDDED_WORKER" in (forced.home_timelines_problem() or "")
    assert Settings(home_timelines="redis").home_timelines_problem() is not None
    assert Settings(redis_url="redis://127.0.0.1:6379/15").resolved_home_timelines() == "redis"
    postgres = Settings(database_url="postgresql://127.0.0.1/roost")
    assert postgres.resolved_home_timelines() == "database"


def test_an_account_back_after_long_inactivity_reads_at_once(instance: Instance) -> None:
    """Fan-out skips no timeline the store holds, so nothing is rebuilt: no 206."""
    client, roost = instance.start()
    api = Api(client, roost)
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    assert _home(bob) == (200, [])
    roost.db.write_sync(lambda tx: roost.stores.accounts.update(
        tx, int(bob.id), {"last_active_at": 1}))  # not seen for longer than inactive_days
    post = alice.post_status("while bob was away")
    wait_for_jobs(roost)
    assert _home(bob) == (200, [post["id"]])
    account = roost.db.read_sync(lambda tx: roost.stores.accounts.by_ids(tx, [int(bob.id)]))
    assert not account[int(bob.id)].home_rebuilding and account[int(bob.id)].last_active_at > 1


def test_a_post_reaches_held_timelines_in_its_own_transaction(
        instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the timelines in memory a job would protect nothing (they go with the process and
    are filled from the database), so a post whose author has fewer followers than a step
    takes is pushed before it is answered; a step's worth or more still go through a job."""
    client, roost = instance.start(fanout_batch_size=3)
    api = Api(client, roost)
    alice, bob, carol, dave = (api.register(n) for n in ("alice", "bob", "carol", "dave"))
    for user in (bob, carol, dave):
        assert _home(user) == (200, [])
    bob.follow(alice)
    carol.follow(alice)
    wait_for_jobs(roost)
    enqueued: list[str] = []
    enqueue = roost.stores.jobs.enqueue

    def noting(tx: Any, kind: str, payload: dict[str, object], run_after: int) -> int:
        enqueued.append(kind)
        return enqueue(tx, kind, payload, run_after)

    monkeypatch.setattr(roost.stores.jobs, "enqueue", noting)
    two = alice.post_status("to my two followers")
    assert "fanout" not in enqueued  # pushed already
    assert _home(bob)[1] == [two["id"]] and _home(carol)[1] == [two["id"]]
    dave.follow(alice)
    wait_for_jobs(roost)
    three = alice.post_status("to my three followers")
    assert enqueued.count("fanout") == 1  # (a full step: there may be more)
    wait_for_jobs(roost)
    for user in (bob, carol, dave):
        assert _home(user)[1][0] == three["id"]


def test_a_timeline_unread_for_inactive_days_is_forgotten_then_filled(
        instance: Instance) -> None:
    client, roost = instance.start(inactive_days=1 / 86_400)  # (a second)
    store = roost.stores.home
    assert isinstance(store, MemoryHomeTimelineStore) and store.forget_after == 1.0
    api = Api(client, roost)
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    first = alice.post_status("before")
    wait_for_jobs(roost)
    assert _home(bob) == (200, [first["id"]])
    time.sleep(1.1)
    on_app_loop(client, roost.maintain)  # (the minute sweep)
    assert store.held()[0] == 0
    second = alice.post_status("while bob's timeline was forgotten")
    wait_for_jobs(roost)
    assert _home(bob) == (200, [second["id"], first["id"]])
    assert store.held()[0] == 1


def test_a_fill_runs_off_the_event_loop_and_a_held_timeline_on_it(
        instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fill reads the newest posts of every account followed, tens of milliseconds for an
    account following thousands (`python -m bench.fill`): the other requests do not wait."""
    client, roost = instance.start()
    api = Api(client, roost)
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    posted = alice.post_status("hello")
    instance.stop()
    client, roost = instance.start()
    bob.client = client
    fills: list[threading.Thread] = []
    pages: list[threading.Thread] = []
    statuses, home = roost.stores.statuses, roost.stores.home
    delivered_to, page = statuses.delivered_to, home.page
    monkeypatch.setattr(statuses, "delivered_to", lambda *a: (
        fills.append(threading.current_thread()), delivered_to(*a))[1])
    monkeypatch.setattr(home, "page", lambda *a: (
        pages.append(threading.current_thread()), page(*a))[1])

    async def current() -> threading.Thread:
        return threading.current_thread()

    loop = on_app_loop(client, current)
    assert _home(bob) == (200, [posted["id"]])
    assert _home(bob) == (200, [posted["id"]])
    assert len(fills) == 1 and fills[0] is not loop
    assert pages[0] is not loop and pages[1] is loop  # (SQLite's bounded reads: inline)
