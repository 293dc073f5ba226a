"""Statuses: posting rules, visibility, threads, deletion, favourites and reblogs."""

from __future__ import annotations

from roost.runtime import Roost
from tests.conftest import Api, assert_entity, wait_for_jobs


def test_post_validation(api: Api) -> None:
    alice = api.register("alice")
    blank = alice.post("/api/v1/statuses", data={"status": "   "})
    assert blank.status_code == 422
    assert blank.json() == {"error": "Validation failed: Text can't be blank"}
    too_long = alice.post("/api/v1/statuses", data={"status": "x" * 501})
    assert too_long.status_code == 422
    assert "character limit of 500" in too_long.json()["error"]
    exactly = alice.post("/api/v1/statuses", data={"status": "x" * 500})
    assert exactly.status_code == 200
    # A link counts 23 characters however long it is.
    link = "https://example.com/" + "a" * 200
    assert alice.post("/api/v1/statuses",
                      data={"status": "y" * 470 + " " + link}).status_code == 200
    with_warning = alice.post("/api/v1/statuses",
                              data={"status": "x" * 490, "spoiler_text": "y" * 11})
    assert with_warning.status_code == 422
    assert alice.post("/api/v1/statuses", data={"status": "hi", "visibility": "secret"}
                      ).status_code == 422
    assert alice.post("/api/v1/statuses", data={"status": "hi", "in_reply_to_id": "999"}
                      ).status_code == 404
    assert alice.post("/api/v1/statuses", data={"status": "hi", "in_reply_to_id": "x"}
                      ).status_code == 400
    count = api.client.get(f"/api/v1/accounts/{alice.id}").json()["statuses_count"]
    assert count == 2


def test_content_is_escaped_and_linked(api: Api) -> None:
    alice = api.register("alice")
    api.register("bob")
    status = alice.post_status("<script>alert(1)</script> hi @bob and @nobody #Tag\n\nbye")
    assert "<script>" not in status["content"]
    assert "&lt;script&gt;" in status["content"]
    assert 'class="u-url mention"' in status["content"]
    assert "@nobody" in status["content"]
    assert [m["acct"] for m in status["mentions"]] == ["bob"]
    assert status["tags"] == [{"name": "Tag", "url": "http://localhost:8000/tags/Tag"}]
    assert status["content"].count("<p>") == 2


def test_a_new_status_is_answered_as_it_reads_back(api: Api) -> None:
    """The status a post returns is built without reading it back: it must equal what
    GET /api/v1/statuses/:id gives just after (mentions and tags in the same order, the
    author's new count), for every kind of post."""
    alice = api.register("alice")
    zed, bob = api.register("zed"), api.register("bob")  # zed's id is the smaller
    parent = bob.post_status("first")
    posts = [
        ("plain", {}),
        ("hi @bob and @zed and @BOB #Zeta #alpha #ZETA #2026x", {}),
        ("a reply @bob", {"in_reply_to_id": parent["id"], "spoiler_text": "cw",
                          "language": "en"}),
        ("for followers @zed", {"visibility": "private"}),
        ("just us @bob", {"visibility": "direct", "sensitive": "true"}),
        ("@alice talking to myself #Self", {}),
    ]
    answered = []
    for text, fields in posts:
        posted = alice.post_status(text, **fields)
        assert alice.get(f"/api/v1/statuses/{posted['id']}").json() == posted
        answered.append(posted)
    assert [m["id"] for m in answered[1]["mentions"]] == [zed.id, bob.id]
    assert [t["name"] for t in answered[1]["tags"]] == ["Zeta", "alpha", "2026x"]
    assert answered[-1]["account"]["statuses_count"] == len(posts)


def test_idempotency_key(api: Api) -> None:
    alice = api.register("alice")
    headers = {"Idempotency-Key": "abc-123"}
    first = alice.post("/api/v1/statuses", data={"status": "once"}, headers=headers).json()
    second = alice.post("/api/v1/statuses", data={"status": "once"}, headers=headers).json()
    assert first["id"] == second["id"]
    assert api.client.get(f"/api/v1/accounts/{alice.id}").json()["statuses_count"] == 1


def test_json_body(api: Api) -> None:
    alice = api.register("alice")
    response = alice.post("/api/v1/statuses", json={"status": "json!", "sensitive": True,
                                                     "spoiler_text": "cw", "language": "en"})
    assert response.status_code == 200
    body = response.json()
    assert body["sensitive"] is True and body["spoiler_text"] == "cw"
    assert body["language"] == "en"
    assert alice.post("/api/v1/statuses", content=b"{not json",
                      headers={"content-type": "application/json"}).status_code == 400


def test_visibility_rules(api: Api) -> None:
    alice, bob, carol = api.register("alice"), api.register("bob"), api.register("carol")
    bob.follow(alice)
    private = alice.post_status("followers only", visibility="private")
    direct = alice.post_status("psst @carol", visibility="direct")
    assert bob.get(f"/api/v1/statuses/{private['id']}").status_code == 200
    assert carol.get(f"/api/v1/statuses/{private['id']}").status_code == 404
    assert api.client.get(f"/api/v1/statuses/{private['id']}").status_code == 404
    assert carol.get(f"/api/v1/statuses/{direct['id']}").status_code == 200
    assert bob.get(f"/api/v1/statuses/{direct['id']}").status_code == 404
    assert alice.get(f"/api/v1/statuses/{direct['id']}").status_code == 200
    assert carol.post("/api/v1/statuses", data={"status": "reply",
                                                "in_reply_to_id": private["id"]}
                      ).status_code == 404


def test_thread_context(api: Api) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    root = alice.post_status("root")
    reply = bob.post_status("@alice reply", in_reply_to_id=root["id"])
    nested = alice.post_status("@bob nested", in_reply_to_id=reply["id"])
    second = bob.post_status("@alice second", in_reply_to_id=root["id"])
    assert reply["in_reply_to_account_id"] == alice.id
    context = api.client.get(f"/api/v1/statuses/{nested['id']}/context").json()
    assert_entity(context, "Context")
    assert [s["id"] for s in context["ancestors"]] == [root["id"], reply["id"]]
    root_context = api.client.get(f"/api/v1/statuses/{root['id']}/context").json()
    assert [s["id"] for s in root_context["descendants"]] == [reply["id"], nested["id"],
                                                              second["id"]]
    assert api.client.get(f"/api/v1/statuses/{root['id']}").json()["replies_count"] == 2


def test_delete(api: Api, roost: Roost) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    status = alice.post_status("to be deleted #gone")
    reply = bob.post_status("reply", in_reply_to_id=status["id"])
    bob.post(f"/api/v1/statuses/{status['id']}/favourite")
    bob.post(f"/api/v1/statuses/{status['id']}/reblog")
    wait_for_jobs(roost)
    assert bob.delete(f"/api/v1/statuses/{status['id']}").status_code == 404
    deleted = alice.delete(f"/api/v1/statuses/{status['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["text"] == "to be deleted #gone"
    assert api.client.get(f"/api/v1/statuses/{status['id']}").status_code == 404
    wait_for_jobs(roost)
    home = bob.get("/api/v1/timelines/home").json()
    assert status["id"] not in {s["id"] for s in home}
    assert all(s["reblog"] is None for s in home)
    assert api.client.get(f"/api/v1/statuses/{reply['id']}").status_code == 200
    assert api.client.get(f"/api/v1/accounts/{alice.id}").json()["statuses_count"] == 0
    assert api.client.get(f"/api/v1/accounts/{bob.id}").json()["statuses_count"] == 1
    remaining = [n["type"] for n in alice.get("/api/v1/notifications").json()]
    assert remaining == ["follow"]  # the favourite and reblog went with the status
    assert api.client.get("/api/v1/timelines/tag/gone").json() == []
    assert roost.check() == []


def test_favourite_and_reblog(api: Api, roost: Roost) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    status = alice.post_status("like me")
    faved = bob.post(f"/api/v1/statuses/{status['id']}/favourite").json()
    assert faved["favourited"] is True and faved["favourites_count"] == 1
    again = bob.post(f"/api/v1/statuses/{status['id']}/favourite").json()
    assert again["favourites_count"] == 1
    reblog = bob.post(f"/api/v1/statuses/{status['id']}/reblog").json()
    assert_entity(reblog, "Status")
    assert reblog["reblog"]["id"] == status["id"]
    assert reblog["reblog"]["reblogs_count"] == 1
    assert reblog["reblogged"] is True
    assert bob.post(f"/api/v1/statuses/{status['id']}/reblog").json()["id"] == reblog["id"]
    # Reblogging the reblog reblogs the original.
    assert bob.post(f"/api/v1/statuses/{reblog['id']}/reblog").json()["id"] == reblog["id"]
    by = api.client.get(f"/api/v1/statuses/{status['id']}/favourited_by").json()
    assert [a["username"] for a in by] == ["bob"]
    by = api.client.get(f"/api/v1/statuses/{status['id']}/reblogged_by").json()
    assert [a["username"] for a in by] == ["bob"]
    types = [n["type"] for n in alice.get("/api/v1/notifications").json()]
    assert types == ["reblog", "favourite"]
    undone = bob.post(f"/api/v1/statuses/{status['id']}/unreblog").json()
    assert undone["id"] == status["id"] and undone["reblogged"] is False
    assert undone["reblogs_count"] == 0
    unfaved = bob.post(f"/api/v1/statuses/{status['id']}/unfavourite").json()
    assert unfaved["favourited"] is False and unfaved["favourites_count"] == 0
    assert bob.post(f"/api/v1/statuses/{status['id']}/unfavourite").status_code == 200
    assert alice.get("/api/v1/notifications").json() == []
    assert bob.post("/api/v1/statuses/123/favourite").status_code == 404
    assert roost.check() == []


def test_private_posts_cannot_be_reblogged_by_others(api: Api) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    private = alice.post_status("mine", visibility="private")
    refused = bob.post(f"/api/v1/statuses/{private['id']}/reblog")
    assert refused.status_code == 403
    assert refused.json() == {"error": "This action is not allowed"}
    assert alice.post(f"/api/v1/statuses/{private['id']}/reblog").status_code == 200


def test_pinned_posts(api: Api) -> None:
    """As Mastodon: one's own posts (not a boost, not a direct post), at most 5, newest pin
    first on the profile; ``pinned`` shows on one's own posts only."""
    alice, bob = api.register("alice"), api.register("bob")
    posts = [alice.post_status(f"post {i}") for i in range(6)]
    assert posts[0]["pinned"] is False  # (pinnable, not pinned)
    pinned = alice.post(f"/api/v1/statuses/{posts[0]['id']}/pin")
    assert pinned.status_code == 200 and pinned.json()["pinned"] is True
    assert_entity(pinned.json(), "Status")
    assert alice.post(f"/api/v1/statuses/{posts[0]['id']}/pin").json()["pinned"] is True
    for post in posts[1:5]:
        assert alice.post(f"/api/v1/statuses/{post['id']}/pin").status_code == 200
    too_many = alice.post(f"/api/v1/statuses/{posts[5]['id']}/pin")
    assert too_many.status_code == 422 and "at most 5" in too_many.json()["error"]
    profile = f"/api/v1/accounts/{alice.id}/statuses"
    listed = api.client.get(profile, params={"pinned": "true"}).json()
    assert [s["id"] for s in listed] == [p["id"] for p in posts[4::-1]]
    assert all("pinned" not in s for s in listed)  # (not the viewer's own)
    mine = alice.get(profile, params={"pinned": "true"}).json()
    assert all(s["pinned"] is True for s in mine)
    seen_by_bob = bob.get(f"/api/v1/statuses/{posts[0]['id']}").json()
    assert "pinned" not in seen_by_bob
    # Not someone else's post, a boost or a direct post; not a post one cannot see.
    theirs = bob.post_status("bob's")
    boost = alice.post(f"/api/v1/statuses/{theirs['id']}/reblog").json()
    direct = alice.post_status("just us", visibility="direct")
    for status_id in (theirs["id"], boost["id"], direct["id"]):
        refused = alice.post(f"/api/v1/statuses/{status_id}/unpin")
        assert refused.status_code == 200  # (unpinning what is not pinned changes nothing)
        refused = alice.post(f"/api/v1/statuses/{status_id}/pin")
        assert refused.status_code == 422, refused.text
    assert "pinned" not in boost and "pinned" not in alice.get(
        f"/api/v1/statuses/{direct['id']}").json()
    assert bob.post(f"/api/v1/statuses/{direct['id']}/pin").status_code == 404
    assert alice.post("/api/v1/statuses/1/pin").status_code == 404
    # Unpinned and deleted posts leave the list; the freed place can be used again.
    unpinned = alice.post(f"/api/v1/statuses/{posts[1]['id']}/unpin").json()
    assert unpinned["pinned"] is False
    alice.delete(f"/api/v1/statuses/{posts[2]['id']}")
    assert alice.post(f"/api/v1/statuses/{posts[5]['id']}/pin").status_code == 200
    listed = api.client.get(profile, params={"pinned": "true"}).json()
    assert [s["id"] for s in listed] == [posts[5]["id"], posts[4]["id"], posts[3]["id"],
                                         posts[0]["id"]]
    assert api.client.get("/api/v1/accounts/1/statuses",
                          params={"pinned": "true"}).status_code == 404
    assert api.client.post(f"/api/v1/statuses/{posts[0]['id']}/pin").status_code == 401
