"""Bookmarks and favourites lists, read markers, preferences and custom emoji."""

from __future__ import annotations

from tests.conftest import Api, assert_entity


def test_bookmarks(api: Api) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    first = alice.post_status("one")
    second = alice.post_status("two")
    marked = bob.post(f"/api/v1/statuses/{first['id']}/bookmark").json()
    assert marked["bookmarked"] is True
    bob.post(f"/api/v1/statuses/{second['id']}/bookmark")
    bob.post(f"/api/v1/statuses/{first['id']}/bookmark")  # twice is once
    listed = bob.get("/api/v1/bookmarks")
    assert [s["id"] for s in listed.json()] == [second["id"], first["id"]]
    page = bob.get("/api/v1/bookmarks", params={"limit": 1})
    assert len(page.json()) == 1 and 'rel="next"' in page.headers["link"]
    assert alice.get(f"/api/v1/statuses/{first['id']}").json()["bookmarked"] is False
    unmarked = bob.post(f"/api/v1/statuses/{first['id']}/unbookmark").json()
    assert unmarked["bookmarked"] is False
    alice.delete(f"/api/v1/statuses/{second['id']}")
    assert bob.get("/api/v1/bookmarks").json() == []
    assert bob.post("/api/v1/statuses/1/bookmark").status_code == 404


def test_favourites(api: Api) -> None:
    alice, bob, carol = api.register("alice"), api.register("bob"), api.register("carol")
    first = alice.post_status("one")
    second = alice.post_status("two")
    reblog = carol.post(f"/api/v1/statuses/{second['id']}/reblog").json()
    assert bob.get("/api/v1/favourites").json() == []
    bob.post(f"/api/v1/statuses/{second['id']}/favourite")
    bob.post(f"/api/v1/statuses/{first['id']}/favourite")  # most recently favourited first
    listed = bob.get("/api/v1/favourites")
    assert [s["id"] for s in listed.json()] == [first["id"], second["id"]]
    for status in listed.json():
        assert_entity(status, "Status")
        assert status["favourited"] is True
    page = bob.get("/api/v1/favourites", params={"limit": 1})
    assert [s["id"] for s in page.json()] == [first["id"]]
    assert 'rel="next"' in page.headers["link"] and 'rel="prev"' in page.headers["link"]
    next_url = page.headers["link"].split(";")[0].strip("<>")
    assert [s["id"] for s in bob.get(next_url).json()] == [second["id"]]
    # As in Mastodon, favouriting a reblog favourites the reblogged post, once.
    via_reblog = carol.post(f"/api/v1/statuses/{reblog['id']}/favourite").json()
    assert via_reblog["reblog"]["favourited"] is True
    assert via_reblog["reblog"]["favourites_count"] == 2
    assert [s["id"] for s in carol.get("/api/v1/favourites").json()] == [second["id"]]
    carol.post(f"/api/v1/statuses/{second['id']}/favourite")
    assert alice.get(f"/api/v1/statuses/{second['id']}").json()["favourites_count"] == 2
    carol.post(f"/api/v1/statuses/{reblog['id']}/unfavourite")
    assert carol.get("/api/v1/favourites").json() == []
    # Others' favourites stay their own; a deleted post leaves the list.
    assert alice.get("/api/v1/favourites").json() == []
    alice.delete(f"/api/v1/statuses/{first['id']}")
    assert [s["id"] for s in bob.get("/api/v1/favourites").json()] == [second["id"]]
    assert api.client.get("/api/v1/favourites").status_code == 401


def test_markers(api: Api) -> None:
    alice = api.register("alice")
    assert alice.get("/api/v1/markers", params={"timeline[]": "home"}).json() == {}
    saved = alice.post("/api/v1/markers", data={"home[last_read_id]": "123"}).json()
    assert saved["home"]["last_read_id"] == "123" and saved["home"]["version"] == 1
    alice.post("/api/v1/markers", json={"home": {"last_read_id": "456"},
                                        "notifications": {"last_read_id": "7"}})
    both = alice.get("/api/v1/markers",
                     params=[("timeline[]", "home"), ("timeline[]", "notifications")]).json()
    assert both["home"]["last_read_id"] == "456" and both["home"]["version"] == 2
    assert_entity(both["home"], "Marker")
    assert alice.post("/api/v1/markers", data={"home[last_read_id]": "x"}).status_code == 422
    assert alice.post("/api/v1/markers", data={}).status_code == 422


def test_preferences_and_custom_emojis(api: Api) -> None:
    alice = api.register("alice")
    prefs = alice.get("/api/v1/preferences").json()
    assert prefs["posting:default:visibility"] == "public"
    assert_entity(prefs, "Preferences")
    assert api.client.get("/api/v1/custom_emojis").json() == []
