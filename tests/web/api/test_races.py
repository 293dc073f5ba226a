"""Races: standings, lead changes, crossings and the milestone follower, on a script."""

from __future__ import annotations

from typing import Any

from roost.runtime import Roost
from tests.conftest import Api


def test_scripted_race(make_api: Any) -> None:
    api: Api = make_api()
    roost: Roost = api.roost
    ashton, cnn = api.register("aplusk"), api.register("cnnbrk")
    fans = [api.register(f"fan{i}") for i in range(6)]
    fans[0].follow(cnn)  # cnn leads 1-0 when the race starts
    created = fans[0].post("/api/v1/roost/races", json={
        "account_ids": [ashton.id, cnn.id], "target": 3})
    assert created.status_code == 200, created.text
    race = created.json()
    assert race["target"] == 3 and race["winner_id"] is None
    assert [s["account"]["username"] for s in race["standings"]] == ["cnnbrk", "aplusk"]
    assert race["lead_changes"] == []
    script = [(1, ashton), (2, ashton), (3, cnn), (4, cnn), (1, cnn), (2, ashton),
              (5, ashton), (3, ashton), (4, ashton)]
    for fan, account in script:
        fans[fan].follow(account)
    # Counts after each step (aplusk-cnnbrk): 1-1 (tie: cnn keeps the lead), 2-1 (aplusk
    # leads), 2-2, 2-3 (cnn leads and reaches 3 with fan4), 2-4, 2-4 (fan2 already follows),
    # 3-4 (aplusk reaches 3 with fan5: the race is over), 4-4, 5-4 (aplusk leads again, after
    # the race: not a lead change of it, whether or not the worker refreshed it before).
    body = api.client.get(f"/api/v1/roost/races/{race['id']}").json()
    standings = {s["account"]["username"]: s for s in body["standings"]}
    assert standings["aplusk"]["followers_count"] == 5
    assert standings["cnnbrk"]["followers_count"] == 4
    leaders = [c["leader_id"] for c in body["lead_changes"]]
    assert leaders == [ashton.id, cnn.id]
    assert body["winner_id"] == cnn.id
    assert standings["cnnbrk"]["milestone_follower"]["username"] == "fan4"
    assert standings["aplusk"]["milestone_follower"]["username"] == "fan5"
    assert standings["cnnbrk"]["reached_at"] <= standings["aplusk"]["reached_at"]
    assert body["finished_at"] == standings["cnnbrk"]["reached_at"]
    assert standings["aplusk"]["velocity_per_hour"] > 0
    listed = api.client.get("/api/v1/roost/races").json()
    assert [r["id"] for r in listed] == [race["id"]]
    assert fans[1].delete(f"/api/v1/roost/races/{race['id']}").status_code == 403
    assert fans[0].delete(f"/api/v1/roost/races/{race['id']}").status_code == 200
    assert api.client.get(f"/api/v1/roost/races/{race['id']}").status_code == 404
    assert roost.check() == []


def test_a_race_comes_out_the_same_however_often_it_is_refreshed(make_api: Any) -> None:
    """The script of the test above, refreshed (read) after every follow, as a busy worker
    would: the same lead changes, winner and crossings as one refresh at the end."""
    api: Api = make_api()
    ashton, cnn = api.register("aplusk"), api.register("cnnbrk")
    fans = [api.register(f"fan{i}") for i in range(6)]
    fans[0].follow(cnn)
    race = fans[0].post("/api/v1/roost/races", json={
        "account_ids": [ashton.id, cnn.id], "target": 3}).json()
    for fan, account in [(1, ashton), (2, ashton), (3, cnn), (4, cnn), (1, cnn), (2, ashton),
                         (5, ashton), (3, ashton), (4, ashton)]:
        fans[fan].follow(account)
        assert api.client.get(f"/api/v1/roost/races/{race['id']}").status_code == 200
    body = api.client.get(f"/api/v1/roost/races/{race['id']}").json()
    assert [c["leader_id"] for c in body["lead_changes"]] == [ashton.id, cnn.id]
    assert body["winner_id"] == cnn.id
    standings = {s["account"]["username"]: s for s in body["standings"]}
    assert standings["aplusk"]["milestone_follower"]["username"] == "fan5"
    assert standings["aplusk"]["followers_count"] == 5  # live counts go on after the race


def test_race_input_errors(api: Api) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    post = alice.post
    assert post("/api/v1/roost/races", json={"account_ids": [alice.id]}).status_code == 422
    assert post("/api/v1/roost/races", json={"account_ids": [alice.id, alice.id]}
                ).status_code == 422
    assert post("/api/v1/roost/races", json={"account_ids": [alice.id, "123"]}
                ).status_code == 422
    assert post("/api/v1/roost/races", json={"account_ids": [alice.id, bob.id], "target": 0}
                ).status_code == 422
    assert post("/api/v1/roost/races", data={"account_ids[]": [alice.id, bob.id],
                                             "target": "x"}).status_code == 400
    form = post("/api/v1/roost/races", data={"account_ids[]": [alice.id, bob.id]})
    assert form.status_code == 200 and form.json()["target"] == 1_000_000
    assert api.client.post("/api/v1/roost/races", json={"account_ids": [alice.id, bob.id]}
                           ).status_code == 401
    assert api.client.get("/api/v1/roost/races/42").status_code == 404


def test_a_race_walks_only_events_old_enough_to_have_settled(make_api: Any) -> None:
    """With concurrent writers (PostgreSQL, several processes) a follow event can commit after
    a newer one; a refresh only walks events older than ``settle_ms``, so none is skipped."""
    api: Api = make_api()
    roost: Roost = api.roost
    assert roost.races.settle_ms == 0  # SQLite serialises its writers: no wait
    ashton, cnn, fan = api.register("aplusk"), api.register("cnnbrk"), api.register("fan")
    race = fan.post("/api/v1/roost/races", json={
        "account_ids": [ashton.id, cnn.id], "target": 1}).json()

    def winner() -> str | None:
        """From the race's own walk of the event log, not from the live counts."""
        return api.client.get(f"/api/v1/roost/races/{race['id']}").json()["winner_id"]

    roost.races.settle_ms = 60_000
    fan.follow(ashton)
    assert winner() is None  # the follow is too recent to be sure of its place in the log
    roost.races.settle_ms = 0
    assert winner() == ashton.id
