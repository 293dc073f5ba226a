"""One pass through the core API, checking entities against Mastodon's schema."""

from __future__ import annotations

from roost.runtime import Roost
from tests.conftest import Api, assert_entity, wait_for_jobs


def test_post_follow_home_timeline(api: Api, roost: Roost) -> None:
    alice = api.register("alice")
    bob = api.register("bob")
    assert_entity(alice.account, "CredentialAccount")
    first = alice.post_status("Hello #roost from @bob https://example.com")
    assert_entity(first, "Status")
    assert first["mentions"][0]["username"] == "bob"
    assert first["tags"][0]["name"] == "roost"
    relationship = bob.follow(alice)
    assert_entity(relationship, "Relationship")
    assert relationship["following"] is True
    second = alice.post_status("Second post")
    wait_for_jobs(roost)
    home = bob.get("/api/v1/timelines/home").json()
    assert [s["id"] for s in home] == [second["id"], first["id"]]
    for status in home:
        assert_entity(status, "Status")
    notes = bob.get("/api/v1/notifications").json()
    assert [n["type"] for n in notes] == ["mention"]
    assert_entity(notes[0], "Notification")
