"""Search (v2) for accounts and hashtags."""

from __future__ import annotations

from tests.conftest import Api, assert_entity


def test_search_accounts_and_hashtags(api: Api) -> None:
    alice = api.register("alice")
    alice.post_status("#birdwatching and #birds")
    result = api.client.get("/api/v2/search", params={"q": "bird"}).json()
    assert_entity(result, "Search")
    assert {t["name"] for t in result["hashtags"]} == {"birdwatching", "birds"}
    assert result["statuses"] == []
    people = api.client.get("/api/v2/search", params={"q": "ali", "type": "accounts"}).json()
    assert [a["username"] for a in people["accounts"]] == ["alice"]
    assert people["hashtags"] == []
    tags_only = api.client.get("/api/v2/search", params={"q": "#birds"}).json()
    assert [t["name"] for t in tags_only["hashtags"]] == ["birds"]
    assert api.client.get("/api/v2/search").status_code == 422
    assert api.client.get("/api/v2/search", params={"q": "x", "type": "nope"}).status_code == 422
