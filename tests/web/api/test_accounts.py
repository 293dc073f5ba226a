"""Accounts: registration, credentials, profiles, lookup, search, follows, relationships."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Api, assert_entity


def _register(api: Api, **fields: str) -> Any:
    data = {"username": "alice", "email": "alice@example.com", "password": "long enough pw",
            "agreement": "true", "locale": "en", **fields}
    return api.client.post("/api/v1/accounts", data=data,
                           headers={"Authorization": f"Bearer {api.app_token}"})


def test_registration_validation(api: Api) -> None:
    bad = _register(api, username="no spaces!", email="nope", password="short", agreement="0")
    assert bad.status_code == 422
    body = bad.json()
    assert body["error"].startswith("Validation failed")
    assert set(body["details"]) == {"username", "email", "password", "agreement"}
    assert _register(api).status_code == 200
    taken = _register(api, username="ALICE", email="ALICE@example.com")
    assert taken.status_code == 422
    assert taken.json()["details"]["username"][0]["error"] == "ERR_TAKEN"
    assert taken.json()["details"]["email"][0]["error"] == "ERR_TAKEN"
    assert _register(api, username="x" * 31, email="x@example.com").status_code == 422
    # A trailing newline is not a name of its own: "alice\n" would pass for alice.
    sneaky = _register(api, username="alice\n", email="sneaky@example.com\n")
    assert sneaky.status_code == 422
    assert set(sneaky.json()["details"]) == {"username", "email"}


def test_registration_needs_a_token_and_open_registrations(api: Api, make_api: Any) -> None:
    response = api.client.post("/api/v1/accounts", data={"username": "bob"})
    assert response.status_code == 401
    closed = make_api(registrations_open=False)
    assert _register(closed).status_code == 403


def test_verify_and_update_credentials(api: Api) -> None:
    alice = api.register("alice")
    assert_entity(alice.account, "CredentialAccount")
    assert alice.account["acct"] == "alice"
    assert alice.account["url"] == "http://localhost:8000/@alice"
    updated = alice.patch("/api/v1/accounts/update_credentials", data={
        "display_name": "Alice A.", "note": "Hello, I like #birds",
        "fields_attributes[0][name]": "Website", "fields_attributes[0][value]":
        "https://alice.example/blog", "fields_attributes[1][name]": "Pronouns",
        "fields_attributes[1][value]": "she/her", "locked": "false",
    })
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert_entity(body, "CredentialAccount")
    assert body["display_name"] == "Alice A."
    assert body["source"]["note"] == "Hello, I like #birds"
    assert 'href="http://localhost:8000/tags/birds"' in body["note"]
    website = body["fields"][0]
    assert website["name"] == "Website"
    assert 'href="https://alice.example/blog"' in website["value"]
    assert 'rel="me nofollow noopener noreferrer"' in website["value"]
    assert body["fields"][1]["value"] == "she/her"
    assert body["source"]["fields"][0]["value"] == "https://alice.example/blog"
    public = api.client.get(f"/api/v1/accounts/{alice.id}").json()
    assert_entity(public, "Account")
    assert public["fields"][0]["name"] == "Website"


def test_update_credentials_json_and_limits(api: Api) -> None:
    alice = api.register("alice")
    ok = alice.patch("/api/v1/accounts/update_credentials", json={
        "fields_attributes": [{"name": "Site", "value": "https://a.example"}]})
    assert ok.status_code == 200
    assert ok.json()["fields"][0]["name"] == "Site"
    too_many = alice.patch("/api/v1/accounts/update_credentials", json={
        "fields_attributes": [{"name": f"n{i}", "value": "v"} for i in range(5)]})
    assert too_many.status_code == 422
    assert alice.patch("/api/v1/accounts/update_credentials",
                       data={"display_name": "x" * 31}).status_code == 422
    assert alice.patch("/api/v1/accounts/update_credentials",
                       data={"note": "x" * 501}).status_code == 422
    assert alice.patch("/api/v1/accounts/update_credentials",
                       data={"locked": "maybe"}).status_code == 422
    # Nothing was half-written by the failed updates.
    assert alice.get("/api/v1/accounts/verify_credentials").json()["fields"][0]["name"] == "Site"


def test_get_lookup_and_unknown(api: Api, client: TestClient) -> None:
    alice = api.register("alice")
    assert client.get("/api/v1/accounts/lookup", params={"acct": "ALICE"}).json()["id"] == \
        alice.id
    assert client.get("/api/v1/accounts/lookup",
                      params={"acct": "alice@localhost"}).status_code == 200
    assert client.get("/api/v1/accounts/lookup",
                      params={"acct": "alice@elsewhere.example"}).status_code == 404
    assert client.get("/api/v1/accounts/lookup").status_code == 422
    assert client.get("/api/v1/accounts/lookup", params={"acct": "alice\n"}).status_code == 404
    assert client.get("/api/v1/accounts/123456").status_code == 404
    assert client.get("/api/v1/accounts/not-a-number").status_code == 404
    many = client.get("/api/v1/accounts", params=[("id[]", alice.id), ("id[]", "42")])
    assert [a["id"] for a in many.json()] == [alice.id]


def test_search_accounts(api: Api, client: TestClient) -> None:
    api.register("alice")
    api.register("alicia")
    api.register("bob")
    found = client.get("/api/v1/accounts/search", params={"q": "ali"}).json()
    assert {a["username"] for a in found} == {"alice", "alicia"}
    exact = client.get("/api/v1/accounts/search", params={"q": "@alice"}).json()
    assert exact[0]["username"] == "alice"
    assert client.get("/api/v1/accounts/search", params={"q": "%"}).json() == []
    assert client.get("/api/v1/accounts/search").status_code == 422


def test_follow_unfollow_counts_and_relationships(api: Api) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    assert bob.follow(alice)["following"] is True
    again = bob.post(f"/api/v1/accounts/{alice.id}/follow")
    assert again.status_code == 200
    target = api.client.get(f"/api/v1/accounts/{alice.id}").json()
    assert target["followers_count"] == 1
    assert api.client.get(f"/api/v1/accounts/{bob.id}").json()["following_count"] == 1
    rel = alice.get("/api/v1/accounts/relationships", params={"id[]": bob.id}).json()[0]
    assert rel["followed_by"] is True and rel["following"] is False
    assert_entity(rel, "Relationship")
    no_reblogs = bob.post(f"/api/v1/accounts/{alice.id}/follow", data={"reblogs": "false"})
    assert no_reblogs.json()["showing_reblogs"] is False
    unfollowed = bob.post(f"/api/v1/accounts/{alice.id}/unfollow")
    assert unfollowed.json()["following"] is False
    assert bob.post(f"/api/v1/accounts/{alice.id}/unfollow").status_code == 200
    assert api.client.get(f"/api/v1/accounts/{alice.id}").json()["followers_count"] == 0
    assert bob.post(f"/api/v1/accounts/{bob.id}/follow").status_code == 403
    assert bob.post("/api/v1/accounts/999999/follow").status_code == 404
    follow_notes = alice.get("/api/v1/notifications", params={"types[]": "follow"}).json()
    assert follow_notes == []  # withdrawn with the unfollow


def test_followers_and_following_pages(api: Api) -> None:
    alice = api.register("alice")
    fans = [api.register(f"fan{i}") for i in range(5)]
    for fan in fans:
        fan.follow(alice)
    first = api.client.get(f"/api/v1/accounts/{alice.id}/followers", params={"limit": 2})
    assert [a["username"] for a in first.json()] == ["fan4", "fan3"]
    link = first.headers["link"]
    assert 'rel="next"' in link and 'rel="prev"' in link
    next_url = link.split(";")[0].strip("<>")
    second = api.client.get(next_url)
    assert [a["username"] for a in second.json()] == ["fan2", "fan1"]
    following = api.client.get(f"/api/v1/accounts/{fans[0].id}/following").json()
    assert [a["username"] for a in following] == ["alice"]
    assert api.client.get("/api/v1/accounts/42/followers").status_code == 404
    assert api.client.get(f"/api/v1/accounts/{alice.id}/followers",
                          params={"max_id": "abc"}).status_code == 400
    assert api.client.get(f"/api/v1/accounts/{alice.id}/followers",
                          params={"limit": "ten"}).status_code == 400


def test_account_statuses_filters(api: Api) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    first = alice.post_status("first")
    alice.post_status("self reply", in_reply_to_id=first["id"])
    bobs = bob.post_status("bob's")
    alice.post_status("@bob reply", in_reply_to_id=bobs["id"])
    alice.post(f"/api/v1/statuses/{bobs['id']}/reblog")
    alice.post_status("followers only", visibility="private")
    everything = bob.get(f"/api/v1/accounts/{alice.id}/statuses").json()
    assert len(everything) == 4  # the private one is hidden from a non-follower
    no_replies = bob.get(f"/api/v1/accounts/{alice.id}/statuses",
                         params={"exclude_replies": "true"}).json()
    assert {s["content"] for s in no_replies if not s["reblog"]} == {"<p>first</p>",
                                                                    "<p>self reply</p>"}
    no_reblogs = bob.get(f"/api/v1/accounts/{alice.id}/statuses",
                         params={"exclude_reblogs": "true"}).json()
    assert all(s["reblog"] is None for s in no_reblogs)
    bob.follow(alice)
    assert len(bob.get(f"/api/v1/accounts/{alice.id}/statuses").json()) == 5
    assert bob.get(f"/api/v1/accounts/{alice.id}/statuses",
                   params={"pinned": "true"}).json() == []


def test_familiar_followers(api: Api) -> None:
    """Mastodon's "followed by people you follow": for each account asked, the accounts the
    viewer follows that follow it."""
    alice, bob, carol, dave, star = (api.register(n) for n in
                                     ("alice", "bob", "carol", "dave", "star"))
    for followed in (bob, carol):
        alice.follow(followed)
    for follower in (bob, dave, carol):
        follower.follow(star)
    found = alice.get("/api/v1/accounts/familiar_followers",
                      params=[("id[]", star.id), ("id[]", dave.id), ("id[]", star.id)])
    assert found.status_code == 200
    body = found.json()
    for entry in body:
        assert_entity(entry, "FamiliarFollowers")
    assert [(e["id"], [a["username"] for a in e["accounts"]]) for e in body] == [
        (star.id, ["carol", "bob"]), (dave.id, [])]
    too_many = [("id[]", str(n)) for n in range(1, 82)]
    assert alice.get("/api/v1/accounts/familiar_followers", params=too_many).status_code == 422
    assert api.client.get("/api/v1/accounts/familiar_followers",
                          params={"id[]": star.id}).status_code == 401
