"""Rendering of entities: the memoised renderings never show a stale value."""

from __future__ import annotations

from dataclasses import replace

from roost.domain.models import Account, ProfileField, Status, StatusView, Tag, Visibility
from roost.domain.site import Site
from roost.web import entities
from tests.conftest import assert_entity

SITE = Site("roost.example", "https://roost.example")


def _account(account_id: int = 1, **changes: object) -> Account:
    account = Account(id=account_id, username=f"user{account_id}", display_name="User",
                      note="hello #roost", fields=[ProfileField("Website", "https://a.example")],
                      locked=False, bot=False, discoverable=True, created_at=1_700_000_000_000,
                      last_status_at=None, followers_count=10, following_count=2,
                      statuses_count=3)
    return replace(account, **changes)  # type: ignore[arg-type]


def _view(status_id: int = 100, author: Account | None = None, **changes: object) -> StatusView:
    status = Status(id=status_id, account_id=1, text="hi @user2 #roost", content="<p>hi</p>",
                    spoiler_text="", sensitive=False, visibility=Visibility.PUBLIC,
                    language="en", in_reply_to_id=None, in_reply_to_account_id=None,
                    reblog_of_id=None, pushed=True, replies_count=0, reblogs_count=0,
                    favourites_count=0, created_at=1_700_000_000_123)
    return StatusView(status=replace(status, **changes),  # type: ignore[arg-type]
                      account=author or _account(), mentions=[_account(2)],
                      tags=[Tag(1, "roost")])


def test_an_account_shows_its_current_counts_and_profile() -> None:
    assert entities.account(SITE, _account())["followers_count"] == 10
    assert entities.account(SITE, _account(followers_count=11))["followers_count"] == 11
    changed = entities.account(SITE, _account(fields=[ProfileField("Website", "https://b.example")]))
    assert "b.example" in changed["fields"][0]["value"]
    assert entities.account(SITE, _account(display_name="New"))["display_name"] == "New"


def test_a_caller_changing_an_account_entity_changes_no_other() -> None:
    first = entities.account(SITE, _account())
    first["display_name"] = "changed by a caller"
    assert entities.account(SITE, _account())["display_name"] == "User"


def test_a_status_shows_its_current_counts_marks_and_author() -> None:
    before = entities.status(SITE, _view())
    after = entities.status(SITE, _view(author=_account(followers_count=99), favourites_count=5))
    after_marked = entities.status(SITE, replace(_view(), favourited=True, bookmarked=True))
    assert (before["favourites_count"], after["favourites_count"]) == (0, 5)
    assert after["account"]["followers_count"] == 99
    assert (after_marked["favourited"], after_marked["bookmarked"]) == (True, True)
    assert before["mentions"][0]["username"] == "user2"
    assert before["tags"] == [{"name": "roost", "url": "https://roost.example/tags/roost"}]
    assert_entity(after_marked, "Status")


def test_an_edited_status_is_rendered_again() -> None:
    entities.status(SITE, _view(content="<p>first</p>"))
    edited = entities.status(SITE, _view(content="<p>second</p>", edited_at=1_700_000_001_000))
    assert edited["content"] == "<p>second</p>"
    assert edited["edited_at"] is not None


def test_each_site_renders_its_own_urls() -> None:
    other = Site("other.example", "https://other.example")
    assert entities.status(SITE, _view())["url"].startswith("https://roost.example/")
    assert entities.status(other, _view())["url"].startswith("https://other.example/")
    assert entities.account(other, _account())["url"] == "https://other.example/@user1"


def test_a_boost_shows_the_viewers_marks_on_the_boosted_post() -> None:
    original = replace(_view(200), favourited=True)
    boost = replace(_view(201, reblog_of_id=200), reblog=original)
    shown = entities.status(SITE, boost)
    assert shown["favourited"] is True and shown["reblog"]["id"] == "200"


def test_the_memos_stay_bounded() -> None:
    for i in range(entities.MEMO_SIZE + 10):
        entities.status(SITE, _view(10_000 + i, author=_account(followers_count=i)))
    assert len(entities._statuses) <= entities.MEMO_SIZE
    assert len(entities._accounts) <= entities.MEMO_SIZE
