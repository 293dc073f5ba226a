"""Notifications: list and filter, get, dismiss, clear."""

from __future__ import annotations

from typing import Any

import pytest

from roost.runtime import Roost
from tests.conftest import Api, assert_entity


def test_notification_lifecycle(api: Api) -> None:
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    status = alice.post_status("hi")
    bob.post_status("@alice hello")
    bob.post(f"/api/v1/statuses/{status['id']}/favourite")
    everything = alice.get("/api/v1/notifications").json()
    assert [n["type"] for n in everything] == ["favourite", "mention", "follow"]
    for notification in everything:
        assert_entity(notification, "Notification")
    assert everything[0]["status"]["id"] == status["id"]
    only = alice.get("/api/v1/notifications", params={"types[]": ["mention", "follow"]}).json()
    assert [n["type"] for n in only] == ["mention", "follow"]
    excluded = alice.get("/api/v1/notifications",
                         params={"exclude_types[]": "favourite"}).json()
    assert [n["type"] for n in excluded] == ["mention", "follow"]
    from_bob = alice.get("/api/v1/notifications", params={"account_id": bob.id}).json()
    assert len(from_bob) == 3
    assert alice.get("/api/v1/notifications", params={"types[]": "bogus"}).status_code == 422
    first = everything[0]["id"]
    assert alice.get(f"/api/v1/notifications/{first}").json()["type"] == "favourite"
    assert bob.get(f"/api/v1/notifications/{first}").status_code == 404
    assert alice.post(f"/api/v1/notifications/{first}/dismiss").status_code == 200
    assert alice.post(f"/api/v1/notifications/{first}/dismiss").status_code == 404
    assert len(alice.get("/api/v1/notifications").json()) == 2
    paged = alice.get("/api/v1/notifications", params={"limit": 1})
    assert len(paged.json()) == 1 and 'rel="next"' in paged.headers["link"]
    assert alice.post("/api/v1/notifications/clear").status_code == 200
    assert alice.get("/api/v1/notifications").json() == []
    assert api.client.get("/api/v1/notifications").status_code == 401


def test_only_unfiltered_pages_are_bounded_reads(api: Api, roost: Roost,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An unfiltered page is the newest rows of the viewer's index, a bounded read (on SQLite
    it runs on the event loop's thread); a filtered one may walk far, so it does not."""
    alice, bob = api.register("alice"), api.register("bob")
    bob.follow(alice)
    bounded: list[bool] = []
    read = roost.db.read

    async def spy(fn: Any, **options: bool) -> Any:
        bounded.append(options.get("bounded", False))
        return await read(fn, **options)

    monkeypatch.setattr(roost.db, "read", spy)
    for params, expected in [({}, True), ({"limit": 5, "max_id": "999999999999999999"}, True),
                             ({"types[]": "mention"}, False),
                             ({"exclude_types[]": "favourite"}, False),
                             ({"account_id": bob.id}, False)]:
        bounded.clear()
        assert len(alice.get("/api/v1/notifications", params=params).json()) == int(
            "types[]" not in params)
        assert bounded[-1] is expected, params
