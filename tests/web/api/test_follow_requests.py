"""Locked accounts: follows become requests to accept or reject."""

from __future__ import annotations

from roost.runtime import Roost
from tests.conftest import Api, wait_for_jobs


def test_locked_account_request_authorize_and_reject(api: Api, roost: Roost) -> None:
    alice, bob, carol = api.register("alice"), api.register("bob"), api.register("carol")
    alice.patch("/api/v1/accounts/update_credentials", data={"locked": "true"})
    private = alice.post_status("for followers", visibility="private")
    requested = bob.follow(alice)
    assert requested["following"] is False and requested["requested"] is True
    assert bob.follow(alice)["requested"] is True  # asking twice is one request
    carol.follow(alice)
    me = alice.get("/api/v1/accounts/verify_credentials").json()
    assert me["followers_count"] == 0
    assert me["source"]["follow_requests_count"] == 2
    assert [n["type"] for n in alice.get("/api/v1/notifications").json()] == [
        "follow_request", "follow_request"]
    pending = alice.get("/api/v1/follow_requests").json()
    assert [a["username"] for a in pending] == ["carol", "bob"]
    rel = alice.get("/api/v1/accounts/relationships", params={"id[]": bob.id}).json()[0]
    assert rel["requested_by"] is True
    accepted = alice.post(f"/api/v1/follow_requests/{bob.id}/authorize")
    assert accepted.status_code == 200
    assert accepted.json()["followed_by"] is True
    rejected = alice.post(f"/api/v1/follow_requests/{carol.id}/reject")
    assert rejected.json()["requested_by"] is False
    assert alice.post(f"/api/v1/follow_requests/{carol.id}/authorize").status_code == 404
    assert alice.get("/api/v1/follow_requests").json() == []
    assert alice.get("/api/v1/notifications").json() == []
    wait_for_jobs(roost)
    assert [s["id"] for s in bob.get("/api/v1/timelines/home").json()] == [private["id"]]
    rel = bob.get("/api/v1/accounts/relationships", params={"id[]": alice.id}).json()[0]
    assert rel["following"] is True and rel["requested"] is False
    assert api.client.get(f"/api/v1/accounts/{alice.id}").json()["followers_count"] == 1
    assert roost.check() == []


def test_withdrawing_a_request(api: Api) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    alice.patch("/api/v1/accounts/update_credentials", data={"locked": "true"})
    bob.follow(alice)
    withdrawn = bob.post(f"/api/v1/accounts/{alice.id}/unfollow").json()
    assert withdrawn["requested"] is False
    assert alice.get("/api/v1/follow_requests").json() == []
    assert alice.get("/api/v1/notifications").json() == []


def test_unlocking_accepts_pending_requests(api: Api, roost: Roost) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    alice.patch("/api/v1/accounts/update_credentials", data={"locked": "true"})
    bob.follow(alice)
    unlocked = alice.patch("/api/v1/accounts/update_credentials", data={"locked": "false"})
    assert unlocked.json()["followers_count"] == 1
    assert unlocked.json()["source"]["follow_requests_count"] == 0
    assert [n["type"] for n in alice.get("/api/v1/notifications").json()] == ["follow"]
    assert roost.check() == []
