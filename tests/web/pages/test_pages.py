"""Every page renders, signed out and signed in; the signed-out are sent to sign in; forms
work without JavaScript (post, reply, favourite, boost, delete, follow, settings), paging."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from roost.domain import content
from tests.conftest import on_app_loop, wait_for_jobs
from tests.web.pages.conftest import PASSWORD, Visitor


def test_signed_out_pages_render(visitor: Callable[[], Visitor], alice: Visitor) -> None:
    status_id = alice.post("Hello #roost world")
    guest = visitor()
    for path in ("/", "/public", "/tags/roost", "/search", "/search?q=ali", "/races",
                 "/auth/sign_in", "/auth/sign_up", "/auth/sign_out", "/@alice",
                 "/@alice/followers", "/@alice/following", f"/@alice/{status_id}"):
        response = guest.page(path)
        assert response.headers["content-type"].startswith("text/html"), path
        assert "<nav" in response.text and 'href="/auth/sign_in"' in response.text, path
    landing = guest.page("/").text
    assert "Create an account" in landing and "Hello" in landing
    assert "#roost" in guest.page("/search?q=%23ro").text


def test_signed_in_pages_render(alice: Visitor, bob: Visitor) -> None:
    status_id = bob.post("Hi @alice, see #tests")
    for path in ("/", "/public", "/tags/tests", "/search?q=bob", "/races", "/notifications",
                 "/settings/profile", "/settings/password", "/@bob", "/@bob/followers",
                 "/@bob/following", f"/@bob/{status_id}", "/@alice", "/auth/sign_out"):
        response = alice.page(path)
        assert 'action="/auth/sign_out"' in response.text, path  # the signed-in nav
    home = alice.page("/").text
    assert 'action="/statuses"' in home and 'data-live="home"' in home
    assert "mentioned you" in alice.page("/notifications").text
    assert alice.page("/settings").url.path == "/settings/profile"


def test_signed_out_are_sent_to_sign_in(visitor: Callable[[], Visitor]) -> None:
    guest = visitor()
    for path in ("/notifications", "/settings/profile", "/settings/password"):
        response = guest.get(path)
        assert response.status_code == 303, path
        location = urlsplit(response.headers["location"])
        assert location.path == "/auth/sign_in"
        assert parse_qs(location.query)["next"] == [path]
    guest.get("/auth/sign_in")
    response = guest.submit("/statuses", {"status": "hi", "back": "/public"})
    assert response.status_code == 303 and "/auth/sign_in" in response.headers["location"]


def test_sign_in_returns_to_next_and_sign_out(visitor: Callable[[], Visitor],
                                              alice: Visitor) -> None:
    browser = visitor()
    page = browser.page("/auth/sign_in?next=/notifications")
    assert 'name="next" value="/notifications"' in page.text
    wrong = browser.submit("/auth/sign_in", {"login": "alice", "password": "nope nope",
                                             "next": "/notifications"})
    assert wrong.status_code == 401 and "Wrong username" in wrong.text
    right = browser.submit("/auth/sign_in", {"login": "alice@example.com",
                                             "password": PASSWORD, "next": "/notifications"})
    assert (right.status_code, right.headers["location"]) == (303, "/notifications")
    assert browser.page("/notifications").status_code == 200
    assert browser.submit("/auth/sign_out").status_code == 303
    assert browser.get("/notifications").status_code == 303  # signed out again
    assert 'href="/auth/sign_in"' in browser.page("/").text


def test_sign_up_shows_what_is_wrong(visitor: Callable[[], Visitor], alice: Visitor) -> None:
    browser = visitor()
    browser.get("/auth/sign_up")
    taken = browser.submit("/auth/sign_up", {
        "username": "alice", "email": "not-an-email", "password": "short",
        "password_confirmation": "short"})
    assert taken.status_code == 422
    assert "Username is already taken" in taken.text or "E-mail is invalid" in taken.text
    assert 'aria-invalid="true"' in taken.text
    mismatch = browser.submit("/auth/sign_up", {
        "username": "carol", "email": "c@example.com", "password": PASSWORD,
        "password_confirmation": PASSWORD + "!", "agreement": "1"})
    assert mismatch.status_code == 422 and "not the same" in mismatch.text


def test_post_reply_favourite_boost_delete_without_javascript(alice: Visitor,
                                                               bob: Visitor) -> None:
    first = alice.post("A first post with a link https://example.com/" + "x" * 80)
    bob.page(f"/@alice/{first}")
    assert "@alice " in bob.page(f"/@alice/{first}").text  # the reply box mentions the author
    reply = bob.submit("/statuses", {"status": "@alice a reply", "in_reply_to_id": str(first),
                                     "back": f"/@alice/{first}"})
    assert (reply.status_code, reply.headers["location"]) == (303, f"/@alice/{first}")
    thread = bob.page(f"/@alice/{first}").text
    assert "a reply" in thread and "Replies" in thread and "In reply to @alice" in thread
    for action in ("favourite", "reblog"):
        done = bob.submit(f"/statuses/{first}/{action}", {"back": "/public"})
        assert (done.status_code, done.headers["location"]) == (303, "/public")
    page = bob.page(f"/@alice/{first}").text
    assert f'action="/statuses/{first}/unfavourite"' in page
    assert f'action="/statuses/{first}/unreblog"' in page
    notifications = alice.page("/notifications").text
    assert "favourited your post" in notifications and "boosted your post" in notifications
    assert "mentioned you" in notifications
    for action in ("unfavourite", "unreblog"):
        assert bob.submit(f"/statuses/{first}/{action}", {"back": "/"}).status_code == 303
    assert f'action="/statuses/{first}/favourite"' in bob.page(f"/@alice/{first}").text
    # only the author may delete; deleting from the post's own page goes home
    assert bob.submit(f"/statuses/{first}/delete", {"back": "/"}).status_code == 404
    gone = alice.submit(f"/statuses/{first}/delete", {"back": f"/@alice/{first}"})
    assert (gone.status_code, gone.headers["location"]) == (303, "/")
    assert alice.get(f"/@alice/{first}").status_code == 404


def test_actions_in_place_answer_the_post_again(alice: Visitor, bob: Visitor) -> None:
    post = alice.post("in place")
    bob.page("/public")
    fetch = {"X-Requested-With": "fetch"}
    liked = bob.submit(f"/statuses/{post}/favourite", {"back": "/public", "entry": str(post)},
                       headers=fetch)
    assert liked.status_code == 200
    assert liked.text.lstrip().startswith("<article") and 'aria-pressed="true"' in liked.text
    assert f'action="/statuses/{post}/unfavourite"' in liked.text
    boosted = bob.submit(f"/statuses/{post}/reblog", {"back": "/"}, headers=fetch)
    assert 'aria-pressed="true"' in boosted.text
    # the boost as it shows in bob's timeline: unboosting it answers the original post
    boost_id = re.search(rf'data-id="(\d+)" data-original-id="{post}"',
                         bob.page("/@bob").text)
    assert boost_id
    undone = bob.submit(f"/statuses/{post}/unreblog", {"entry": boost_id.group(1)},
                        headers=fetch)
    assert undone.status_code == 200 and f'data-id="{post}"' in undone.text
    deleted = alice.submit(f"/statuses/{post}/delete", {}, headers=fetch)
    assert (deleted.status_code, deleted.text) == (200, "")
    missing = bob.submit(f"/statuses/{post}/favourite", {}, headers=fetch)
    assert missing.status_code == 404


def test_compose_errors_keep_the_draft(alice: Visitor) -> None:
    alice.page("/")
    too_long = "x" * 501
    response = alice.submit("/statuses", {"status": too_long, "back": "/"})
    assert response.status_code == 422
    assert "character limit" in response.text and too_long in response.text
    blank = alice.submit("/statuses", {"status": "   ", "back": "/"})
    assert blank.status_code == 422 and "blank" in blank.text


def test_compose_counts_as_the_server_and_takes_crlf_as_one(alice: Visitor) -> None:
    # 500 characters with CR LF line breaks as browsers send them: one character each
    text = ("a" * 98 + "\r\n") * 5
    alice.page("/")
    assert content.count_characters(text.replace("\r\n", "\n")) == 495
    ok = alice.submit("/statuses", {"status": text + "b" * 5, "back": "/"})
    assert ok.status_code == 303
    home = alice.page("/").text
    assert "aaaa<br" in home


def test_idempotency_key_stops_a_double_submit(alice: Visitor) -> None:
    alice.page("/")
    for _ in range(2):
        alice.submit("/statuses", {"status": "only once", "idempotency_key": "k1", "back": "/"})
    assert alice.page("/@alice").text.count("only once") == 1


def test_follow_unfollow_and_lists(alice: Visitor, bob: Visitor) -> None:
    profile = alice.page("/@bob").text
    assert 'action="/@bob/follow"' in profile
    followed = alice.submit("/@bob/follow", {"back": "/@bob"})
    assert (followed.status_code, followed.headers["location"]) == (303, "/@bob")
    profile = alice.page("/@bob").text
    assert 'action="/@bob/unfollow"' in profile
    assert re.search(r'data-followers-count>1<', profile)
    assert "@alice" in alice.page("/@bob/followers").text
    assert "@bob" in alice.page("/@alice/following").text
    assert "Follows you" in bob.page("/@alice").text
    assert "followed you" in bob.page("/notifications").text
    assert alice.submit("/@bob/unfollow", {"back": "/@bob"}).status_code == 303
    assert re.search(r'data-followers-count>0<', alice.page("/@bob").text)
    assert alice.submit("/@nobody/follow").status_code == 404
    assert alice.submit("/@alice/follow").status_code == 403  # not oneself


def test_home_timeline_and_paging(alice: Visitor, bob: Visitor) -> None:
    alice.submit("/@bob/follow")
    ids = [bob.post(f"post number {n}") for n in range(25)]
    wait_for_jobs(alice.roost)
    home = alice.page("/").text
    assert "post number 24" in home and "post number 4" not in home
    older = re.search(r'rel="next" href="([^"]+)"', home)
    assert older, "a full page links to older posts"
    older_page = alice.page(older.group(1).replace("&amp;", "&")).text
    assert "post number 4" in older_page and "post number 0" in older_page
    assert "post number 5" not in older_page
    newer = re.search(r'rel="prev" href="([^"]+)"', older_page)
    assert newer
    newer_page = alice.page(newer.group(1).replace("&amp;", "&")).text
    assert "post number 5" in newer_page and "post number 4" not in newer_page
    # the live page's own fetch: what is newer than a post, as a fragment
    fragment = alice.page(f"/?fragment=1&since_id={ids[22]}").text
    assert "<nav" not in fragment and "post number 24" in fragment
    assert "post number 22" not in fragment
    profile = alice.page("/@bob").text
    assert 'rel="next"' in profile


def test_locked_account_follow_requests(alice: Visitor, bob: Visitor) -> None:
    bob.page("/settings/profile")
    bob.submit("/settings/profile", {"display_name": "Bob", "locked": "1"})
    assert "Request to follow" in alice.page("/@bob").text
    alice.submit("/@bob/follow")
    assert "Cancel follow request" in alice.page("/@bob").text
    requests = bob.page("/notifications").text
    assert "asked to follow you" in requests
    accept = re.search(r'action="(/follow_requests/\d+/authorize)"', requests)
    assert accept
    assert bob.submit(accept.group(1), {"back": "/notifications"}).status_code == 303
    assert 'action="/@bob/unfollow"' in alice.page("/@bob").text
    assert "Unfollow" in alice.page("/@bob").text


def test_profile_settings_website_and_fields(alice: Visitor, visitor: Callable[[], Visitor]
                                             ) -> None:
    form = alice.page("/settings/profile").text
    assert 'name="website"' in form and 'name="display_name"' in form
    saved = alice.submit("/settings/profile", {
        "display_name": "Alice A.", "note": "I write #python at https://blog.example",
        "website": "https://alice.example/",
        "fields_attributes[0][name]": "Pronouns", "fields_attributes[0][value]": "she/her"})
    assert (saved.status_code, saved.headers["location"]) == (303, "/settings/profile")
    assert "Your profile is saved" in alice.page("/settings/profile").text
    profile = visitor().page("/@alice").text
    assert "Alice A." in profile and "Pronouns" in profile and "she/her" in profile
    link = re.search(r'<a href="https://alice.example/"[^>]*>', profile)
    assert link, profile
    rel = re.search(r'rel="([^"]+)"', link.group(0))
    assert rel and {"me", "nofollow", "noopener"} <= set(rel.group(1).split())
    assert 'href="http://localhost:8000/tags/python"' in profile
    again = alice.page("/settings/profile").text
    assert 'value="https://alice.example/"' in again and 'value="Pronouns"' in again
    bad = alice.submit("/settings/profile", {"website": "javascript:alert(1)"})
    assert bad.status_code == 422 and "must be a link" in bad.text
    too_long = alice.submit("/settings/profile", {"display_name": "x" * 31})
    assert too_long.status_code == 422 and "too long" in too_long.text


def test_password_change(alice: Visitor, visitor: Callable[[], Visitor]) -> None:
    alice.page("/settings/password")
    wrong = alice.submit("/settings/password", {
        "current_password": "not it at all", "new_password": "a new password",
        "new_password_confirmation": "a new password"})
    assert wrong.status_code == 422 and "not right" in wrong.text
    ok = alice.submit("/settings/password", {
        "current_password": PASSWORD, "new_password": "a new password",
        "new_password_confirmation": "a new password"})
    assert ok.status_code == 303
    other = visitor()
    other.get("/auth/sign_in")
    assert other.submit("/auth/sign_in", {"login": "alice", "password": PASSWORD}
                        ).status_code == 401
    assert other.submit("/auth/sign_in", {"login": "alice", "password": "a new password"}
                        ).status_code == 303


def test_search_and_tags(alice: Visitor, bob: Visitor) -> None:
    bob.post("Loving #Gardening today")
    results = alice.page("/search?q=bo").text
    assert 'href="/@bob"' in results
    tags = alice.page("/search?q=%23garden").text
    assert 'href="/tags/Gardening"' in tags
    assert "Loving" in alice.page("/tags/gardening").text
    assert "No one matches" in alice.page("/search?q=zzz").text


def test_unknown_things_are_404_pages(alice: Visitor) -> None:
    for path in ("/@nobody", "/@alice/123", "/@alice/notanumber", "/statuses/999",
                 "/@nobody/followers"):
        response = alice.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Not found" in response.text


def test_status_url_is_canonical(alice: Visitor, bob: Visitor) -> None:
    post = alice.post("canonical")
    wrong = bob.get(f"/@bob/{post}")
    assert (wrong.status_code, wrong.headers["location"]) == (303, f"/@alice/{post}")
    short = bob.get(f"/statuses/{post}")
    assert short.headers["location"] == f"/@alice/{post}"


def test_profile_shows_pinned_posts_first(alice: Visitor, visitor: Callable[[], Visitor]) -> None:
    older = alice.post("pinned long ago")
    for n in range(3):
        alice.post(f"newer post {n}")
    on_app_loop(alice.client, alice.roost.posts.pin, alice.account_id, older)
    page = visitor().page("/@alice").text
    pinned, posts = page.index('id="pinned-heading"'), page.index('id="posts-heading"')
    assert pinned < page.index("pinned long ago") < posts
    assert page.count("pinned long ago") == 2  # pinned, and again in its place among posts
    paged = visitor().page(f"/@alice?max_id={older + 1}").text
    assert 'id="pinned-heading"' not in paged  # (on the first page only)
    on_app_loop(alice.client, alice.roost.posts.unpin, alice.account_id, older)
    assert 'id="pinned-heading"' not in visitor().page("/@alice").text
