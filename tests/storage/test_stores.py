"""Every store of ``roost.storage.stores.sql_stores()``, run on SQLite and on PostgreSQL; the
home timeline tests also run on the Redis home timeline store (``HOME_STORES``).

Each test runs its store calls through the database runner (writes through the group-commit
writer, reads on the reader pool), so what is checked is what the domain layer gets.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import random
import re
import threading
import time
import typing
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from roost.domain.models import (
    Account,
    App,
    AuthCode,
    FanoutQuery,
    FollowAttempt,
    Job,
    Marker,
    Milestone,
    Notification,
    Page,
    ProfileField,
    Race,
    RaceEntry,
    RelationshipFacts,
    Snapshot,
    Status,
    TimelineEntry,
    Token,
    Visibility,
)
from roost.ids import id_at_ms, new_id
from roost.storage.database import Database, Tx
from roost.storage.schema import follow_events, jobs
from roost.storage.sql.jobs import JOBS_ENQUEUED
from roost.storage.sql.statuses import FILL_FIRST
from roost.storage.sql.timelines import SqlHomeTimelineStore
from roost.storage.stores import Stores
from tests.storage.conftest import HOME_STORES, Harness
from tests.storage.test_database import Gate

NOW = 1_700_000_000_000
BIG = 2**63 - 1  # the largest BIGINT: ids must round-trip exactly on both engines
WORKER, OTHER_WORKER = 2**62 - 1, 7  # job holders (worker processes)


def make_account(h: Harness, username: str, *, display_name: str = "",
                 email: str | None = None, account_id: int | None = None,
                 **extra: Any) -> Account:
    account = Account(
        id=account_id if account_id is not None else new_id(), username=username,
        display_name=display_name, note="", fields=[], locked=False, bot=False,
        discoverable=True, created_at=NOW, last_status_at=None,
        email=email if email is not None else f"{username.lower()}@example.com", **extra,
    )
    h.write(h.s.accounts.insert, account, "argon2-hash")
    return account


def make_status(h: Harness, author: Account | int, *,
                visibility: Visibility = Visibility.PUBLIC, reply_to: Status | None = None,
                reblog_of: Status | None = None, pushed: bool = True,
                status_id: int | None = None, text: str = "hello") -> Status:
    status = Status(
        id=status_id if status_id is not None else new_id(),
        account_id=author if isinstance(author, int) else author.id,
        text=text, content=f"<p>{text}</p>", spoiler_text="", sensitive=False,
        visibility=visibility, language="en",
        in_reply_to_id=reply_to.id if reply_to else None,
        in_reply_to_account_id=reply_to.account_id if reply_to else None,
        reblog_of_id=reblog_of.id if reblog_of else None, pushed=pushed,
        replies_count=0, reblogs_count=0, favourites_count=0, created_at=NOW,
    )
    h.write(h.s.statuses.insert, status)
    return status


def ids(n: int) -> list[int]:
    return [new_id() for _ in range(n)]


# -- accounts -------------------------------------------------------------------------------


def test_account_round_trip(h: Harness) -> None:
    alice = Account(
        id=new_id(), username="Alice", display_name="Alice Ä", note="<p>hi</p>",
        fields=[ProfileField("Website", "https://example.com"), ProfileField("Pronouns", "she")],
        locked=True, bot=True, discoverable=False, created_at=NOW, last_status_at=None,
        email="alice@example.com", locale="de", is_admin=True,
    )
    h.write(h.s.accounts.insert, alice, "secret-hash")
    loaded = h.read(h.s.accounts.by_ids, [alice.id, alice.id, new_id()])
    assert loaded == {alice.id: alice}
    got = loaded[alice.id]
    for flag in (got.locked, got.bot, got.discoverable, got.is_admin, got.pulled):
        assert type(flag) is bool
    assert type(got.id) is int and type(got.created_at) is int
    assert h.read(h.s.accounts.password_hash, alice.id) == "secret-hash"
    assert h.read(h.s.accounts.password_hash, new_id()) is None
    assert h.read(h.s.accounts.by_ids, []) == {}
    assert h.read(h.s.accounts.count) == 1


def test_account_by_ids_sums_counter_shards(h: Harness) -> None:
    a = make_account(h, "a")
    b = make_account(h, "b")
    h.write(h.s.counters.add, a.id, 0, followers=2, statuses=1)
    h.write(h.s.counters.add, a.id, 7, followers=3, following=4)
    h.write(h.s.counters.add, a.id, 7, followers=-1)
    loaded = h.read(h.s.accounts.by_ids, [a.id, b.id])
    assert (loaded[a.id].followers_count, loaded[a.id].following_count,
            loaded[a.id].statuses_count) == (4, 4, 1)
    assert (loaded[b.id].followers_count, loaded[b.id].following_count,
            loaded[b.id].statuses_count) == (0, 0, 0)
    assert type(loaded[a.id].followers_count) is int


def test_accounts_and_statuses_read_again_are_current_and_apart(h: Harness) -> None:
    """Rows read again come from memo.py's kept objects: each read still gets its own object
    (a caller may change it) and sees every change since (counts included)."""
    a = make_account(h, "a")
    post = make_status(h, a)
    first = h.read(h.s.accounts.by_ids, [a.id])[a.id]
    first.last_active_at = NOW + 99  # as AccountService.touch does to the viewer's account
    first.fields.append(ProfileField("changed", "by a caller"))
    again = h.read(h.s.accounts.by_ids, [a.id])[a.id]
    assert again is not first
    assert (again.last_active_at, again.fields) == (a.last_active_at, [])
    h.write(h.s.counters.add, a.id, 0, followers=1)
    h.write(h.s.accounts.update, a.id, {"display_name": "A again"})
    assert (h.read(h.s.accounts.by_ids, [a.id])[a.id].followers_count,
            h.read(h.s.accounts.by_ids, [a.id])[a.id].display_name) == (1, "A again")
    loaded = h.read(h.s.statuses.by_ids, [post.id])[post.id]
    assert loaded == post and loaded is not h.read(h.s.statuses.by_ids, [post.id])[post.id]
    h.write(partial(h.s.statuses.add_counts, status_id=post.id, favourites=1))
    assert h.read(h.s.statuses.by_ids, [post.id])[post.id].favourites_count == 1


def test_account_lookups_are_case_insensitive(h: Harness) -> None:
    alice = make_account(h, "Alice", email="Alice@Example.COM")
    unal = make_account(h, "unal", email="Ünal@example.com")
    assert h.read(h.s.accounts.by_username, "alice") == alice
    assert h.read(h.s.accounts.by_username, "ALICE") == alice
    assert h.read(h.s.accounts.by_username, "alic") is None
    assert h.read(h.s.accounts.by_email, "alice@example.com") == alice
    assert h.read(h.s.accounts.by_email, "ALICE@EXAMPLE.COM") == alice
    assert h.read(h.s.accounts.by_email, "ünal@EXAMPLE.com") == unal
    assert h.read(h.s.accounts.by_email, "bob@example.com") is None


def test_account_username_is_unique_case_insensitively(h: Harness) -> None:
    make_account(h, "Alice")
    with pytest.raises(IntegrityError):
        make_account(h, "ALICE")
    with pytest.raises(IntegrityError):
        make_account(h, "other", email="alice@example.com")
    assert h.read(h.s.accounts.count) == 1


def test_account_update(h: Harness) -> None:
    a = make_account(h, "a")
    h.write(h.s.accounts.update, a.id, {
        "display_name": "A!", "locked": True, "pulled": True, "has_unpushed": True,
        "fields": [ProfileField("x", "y")], "last_status_at": NOW + 5,
    })
    got = h.read(h.s.accounts.by_ids, [a.id])[a.id]
    assert (got.display_name, got.locked, got.pulled, got.fields, got.last_status_at) == (
        "A!", True, True, [ProfileField("x", "y")], NOW + 5)


def test_account_search_ranks_exact_then_followers_then_id(h: Harness) -> None:
    exact = make_account(h, "alice")
    popular = make_account(h, "alice_two")
    by_name = make_account(h, "bob", display_name="Alice's Friend")
    quiet = make_account(h, "alicex")
    make_account(h, "carol", display_name="Malicious")  # contains "alic" but not as prefix
    make_account(h, "dave")
    h.write(h.s.counters.add, popular.id, 1, followers=3)
    h.write(h.s.counters.add, popular.id, 2, followers=2)
    h.write(h.s.counters.add, by_name.id, 0, followers=1)

    found = h.read(h.s.accounts.search, "alice", 10, 0)
    assert [a.username for a in found] == ["alice", "alice_two", "bob", "alicex"]
    assert found[1].followers_count == 5
    assert h.read(h.s.accounts.search, "@Alice@example.com", 10, 0)[0] == exact
    assert [a.id for a in h.read(h.s.accounts.search, "alice", 2, 1)] == [popular.id, by_name.id]
    assert [a.id for a in h.read(h.s.accounts.search, "alice", 10, 3)] == [quiet.id]
    assert [a.username for a in h.read(h.s.accounts.search, "alic", 10, 0)] == [
        "alice_two", "bob", "alice", "alicex", "carol"]


def test_account_search_treats_like_metacharacters_literally(h: Harness) -> None:
    underscore = make_account(h, "a_b")
    make_account(h, "axb")
    percent = make_account(h, "hundred", display_name="100% real")
    make_account(h, "thousand", display_name="1000 real")
    backslash = make_account(h, "slash", display_name="back\\slash")
    make_account(h, "plain", display_name="backslash")

    def search(query: str) -> list[int]:
        return [a.id for a in h.read(h.s.accounts.search, query, 10, 0)]

    assert search("a_") == [underscore.id]
    assert search("a_b") == [underscore.id]
    assert search("100%") == [percent.id]
    assert search("%") == [percent.id]
    assert search("_") == []
    assert search("k\\s") == [backslash.id]
    assert search("\\") == [backslash.id]


def test_account_search_folds_non_ascii_case(h: Harness) -> None:
    elodie = make_account(h, "elodie", display_name="Élodie Ürsel")
    assert [a.id for a in h.read(h.s.accounts.search, "élodie", 10, 0)] == [elodie.id]
    assert [a.id for a in h.read(h.s.accounts.search, "ÜRS", 10, 0)] == [elodie.id]


# -- counters --------------------------------------------------------------------------------


def test_counters_add_and_totals(h: Harness) -> None:
    a, b, c = ids(3)
    for shard in range(16):
        h.write(h.s.counters.add, a, shard, followers=1)
    h.write(h.s.counters.add, a, 3, following=2, statuses=5)
    h.write(h.s.counters.add, b, 0, statuses=-1)
    h.write(h.s.counters.add, b, 0, statuses=3)
    assert h.read(h.s.counters.totals, [a, b, c]) == {a: (16, 2, 5), b: (0, 0, 2)}
    assert h.read(h.s.counters.totals, []) == {}
    assert h.read(h.s.counters.total_statuses) == 7
    assert h.sql("SELECT count(*) FROM account_counters")[0][0] == 17


def test_viewer_marks_tell_favourites_reblogs_and_bookmarks_apart(h: Harness) -> None:
    author, viewer, other = make_account(h, "author"), make_account(h, "viewer"), \
        make_account(h, "other")
    liked, reblogged, kept, untouched = (make_status(h, author) for _ in range(4))
    h.write(h.s.favourites.insert, viewer.id, liked.id, new_id(), NOW)
    h.write(h.s.favourites.insert, viewer.id, kept.id, new_id(), NOW)
    h.write(h.s.favourites.insert, other.id, untouched.id, new_id(), NOW)
    make_status(h, viewer, reblog_of=reblogged)
    h.write(h.s.bookmarks.insert, viewer.id, kept.id, new_id(), NOW)
    marks = h.read(h.s.statuses.viewer_marks, viewer.id,
                   [liked.id, reblogged.id, kept.id, untouched.id])
    assert marks.favourited == {liked.id, kept.id}
    assert marks.reblogged == {reblogged.id}
    assert marks.bookmarked == {kept.id}


def test_counter_hold_makes_writers_of_one_account_take_turns(h: Harness, db: Database,
                                                             db_url: str) -> None:
    """Two writers (as two processes would have) change one account's followers at once:
    the second waits for the first's commit, so each reads the count it made itself."""
    a, other = ids(2)
    second_writer = Database(db_url, sqlite_synchronous="NORMAL")
    second_writer.start()
    holding = threading.Event()
    release = threading.Event()

    def first(tx: Tx) -> int:
        h.s.counters.hold(tx, a)
        h.s.counters.add(tx, a, 1, followers=1)
        count = h.s.counters.totals(tx, [a])[a][0]  # (sends the two above, if queued)
        holding.set()
        assert release.wait(10)
        return count

    def second(tx: Tx) -> int:
        h.s.counters.hold(tx, a)
        h.s.counters.add(tx, a, 2, followers=1)
        return h.s.counters.totals(tx, [a])[a][0]

    try:
        # A hold on another account does not wait.
        assert h.write(h.s.counters.hold, other) is None
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first_done = pool.submit(db.write_sync, first)
            assert holding.wait(10)
            second_done = pool.submit(second_writer.write_sync, second)
            time.sleep(0.3)
            assert not second_done.done(), "the second writer did not wait for the first"
            release.set()
            assert first_done.result(10) == 1
            assert second_done.result(10) == 2
    finally:
        release.set()
        second_writer.close()
    assert h.read(h.s.counters.totals, [a]) == {a: (2, 0, 0)}


def test_counter_upserts_in_one_batch_add_up(h: Harness, db: Database) -> None:
    """Many increments of one shard row queued together: every one counts."""
    a = new_id()
    futures = [db.submit(lambda tx: h.s.counters.add(tx, a, 5, followers=1, following=-1))
               for _ in range(200)]
    for future in futures:
        future.result(10)
    assert h.read(h.s.counters.totals, [a]) == {a: (200, -200, 0)}


def test_counters_discrepancies_and_repair(h: Harness) -> None:
    a, b, c = sorted(ids(3))
    # Rows that the counters should count, written without touching the counters ...
    h.write(h.s.follows.insert, a, b, new_id(), NOW, True, False)
    h.write(h.s.follows.insert, c, b, new_id(), NOW, True, False)
    make_status(h, a)
    # ... and counters that count something that is not there.
    h.write(h.s.counters.add, c, 4, statuses=2)
    h.write(h.s.counters.add, b, 4, followers=2)  # right
    h.write(h.s.counters.add, c, 9, following=1)  # right

    assert h.read(h.s.counters.discrepancies) == [
        (a, "following", 0, 1),
        (a, "statuses", 0, 1),
        (c, "statuses", 2, 0),
    ]
    assert h.write(h.s.counters.repair) == 3
    assert h.read(h.s.counters.discrepancies) == []
    assert h.read(h.s.counters.totals, [a, b, c]) == {
        a: (0, 1, 1), b: (2, 0, 0), c: (0, 1, 0)}
    assert h.write(h.s.counters.repair) == 0


# -- follows ---------------------------------------------------------------------------------


def test_follow_insert_and_delete_report_whether_they_changed_anything(h: Harness) -> None:
    a, b = ids(2)
    first = new_id()
    assert h.write(h.s.follows.insert, a, b, first, NOW, False, True) is True
    assert h.write(h.s.follows.insert, a, b, new_id(), NOW, True, False) is False
    assert h.read(h.s.follows.get, a, b) == (False, True)  # the first one stays
    assert h.read(h.s.follows.following_page, a, Page()) == [(first, b)]
    assert h.read(h.s.follows.get, b, a) is None
    h.write(h.s.follows.update, a, b, True, False)
    assert h.read(h.s.follows.get, a, b) == (True, False)
    assert h.write(h.s.follows.delete, a, b) is True
    assert h.write(h.s.follows.delete, a, b) is False
    assert h.read(h.s.follows.get, a, b) is None
    assert h.write(h.s.follows.insert, a, b, new_id(), NOW, True, False) is True


def test_follow_pages(h: Harness) -> None:
    target = new_id()
    followers = ids(5)
    follow_ids = []
    for follower in followers:
        follow_ids.append(new_id())
        h.write(h.s.follows.insert, follower, target, follow_ids[-1], NOW, True, False)
    edges = list(zip(follow_ids, followers, strict=True))
    newest = edges[::-1]

    def page(**kwargs: int) -> list[tuple[int, int]]:
        return h.read(h.s.follows.followers_page, target, Page(**kwargs))

    assert page() == newest
    assert page(limit=2) == newest[:2]
    assert page(max_id=follow_ids[3], limit=2) == [edges[2], edges[1]]
    assert page(since_id=follow_ids[1], limit=2) == [edges[4], edges[3]]  # newest above
    assert page(min_id=follow_ids[1], limit=2) == [edges[3], edges[2]]  # just above
    assert page(min_id=follow_ids[0], max_id=follow_ids[4]) == [edges[3], edges[2], edges[1]]
    assert page(max_id=follow_ids[0]) == []

    a = followers[0]
    others = ids(3)
    mine = []
    for other in others:
        mine.append(new_id())
        h.write(h.s.follows.insert, a, other, mine[-1], NOW, True, False)
    assert h.read(h.s.follows.following_page, a, Page()) == [
        (mine[2], others[2]), (mine[1], others[1]), (mine[0], others[0]), (follow_ids[0], target)]
    assert h.read(h.s.follows.following_page, a, Page(min_id=mine[0], limit=1)) == [
        (mine[1], others[1])]


def test_follow_relationship_lookups(h: Harness) -> None:
    viewer, a, b, c = ids(4)
    h.write(h.s.follows.insert, viewer, a, new_id(), NOW, True, False)
    h.write(h.s.follows.insert, viewer, b, new_id(), NOW, False, True)
    h.write(h.s.follows.insert, b, viewer, new_id(), NOW, True, False)
    h.write(h.s.follows.insert, c, viewer, new_id(), NOW, True, False)
    assert h.read(h.s.follows.following_of, viewer, [a, b, c]) == {
        a: (True, False), b: (False, True)}
    assert h.read(h.s.follows.following_of, viewer, []) == {}
    assert h.read(h.s.follows.followed_ids, viewer) == sorted([a, b])
    requester, asked = ids(2)
    h.write(h.s.follow_requests.insert, viewer, asked, new_id(), NOW, True, False)
    h.write(h.s.follow_requests.insert, requester, viewer, new_id(), NOW, True, False)
    facts = h.read(h.s.follows.relations, viewer, [a, b, c, asked, requester, new_id()])
    assert facts == RelationshipFacts(following={a: (True, False), b: (False, True)},
                                      followed_by={b, c}, requested={asked},
                                      requested_by={requester})
    assert h.read(h.s.follows.relations, viewer, [a]) == RelationshipFacts(
        {a: (True, False)}, set(), set(), set())
    assert h.read(h.s.follows.relations, viewer, []) == RelationshipFacts({}, set(), set(), set())


def test_follow_open_loads_the_target_and_follows_only_an_open_one(h: Harness) -> None:
    viewer, star, shy = (make_account(h, name) for name in ("viewer", "star", "shy"))
    h.write(h.s.follows.insert, star.id, viewer.id, new_id(), NOW, True, False)
    h.write(h.s.accounts.update, shy.id, {"locked": True})

    def follow(tx: Tx, target_id: int) -> FollowAttempt:
        # With a counter change sent ahead in the same transaction, as a follow's are: the
        # target is loaded after it.
        h.s.counters.add(tx, target_id, 0, followers=7)
        return h.s.follows.follow_open(tx, viewer.id, target_id, new_id(), NOW, False, True)

    first = h.write(follow, star.id)
    assert first.followed and first.target is not None
    assert (first.target.id, first.target.followers_count) == (star.id, 7)
    # The relationship as it was before the edge.
    assert first.facts == RelationshipFacts({}, {star.id}, set(), set())
    assert h.read(h.s.follows.get, viewer.id, star.id) == (False, True)
    again = h.write(follow, star.id)
    assert not again.followed and again.facts.following == {star.id: (False, True)}
    assert again.target is not None and again.target.followers_count == 14
    locked = h.write(follow, shy.id)
    assert not locked.followed and locked.target is not None and locked.target.locked
    assert h.read(h.s.follows.get, viewer.id, shy.id) is None
    nobody = new_id()
    missing = h.write(h.s.follows.follow_open, viewer.id, nobody, new_id(), NOW, True, False)
    assert (missing.target, missing.followed) == (None, False)
    assert h.read(h.s.follows.get, viewer.id, nobody) is None


def test_familiar_followers(h: Harness) -> None:
    viewer, friend, other_friend, stranger, star, quiet = ids(6)
    for followed in (friend, other_friend):
        h.write(h.s.follows.insert, viewer, followed, new_id(), NOW, True, False)
    for follower in (other_friend, stranger, friend):  # (friend's follow the most recent)
        h.write(h.s.follows.insert, follower, star, new_id(), NOW, True, False)
    h.write(h.s.follows.insert, viewer, star, new_id(), NOW, True, False)  # (not one's own)
    assert h.read(h.s.follows.familiar_followers, viewer, [star, quiet], 40) == {
        star: [friend, other_friend]}
    assert h.read(h.s.follows.familiar_followers, viewer, [star], 1) == {star: [friend]}
    assert h.read(h.s.follows.familiar_followers, viewer, [], 40) == {}
    assert h.read(h.s.follows.familiar_followers, stranger, [star], 40) == {}


def test_followed_with_unpushed(h: Harness) -> None:
    reader = make_account(h, "reader")
    celebrity = make_account(h, "celebrity")
    normal = make_account(h, "normal")
    stranger = make_account(h, "stranger")
    for target in (celebrity, normal):
        h.write(h.s.follows.insert, reader.id, target.id, new_id(), NOW, True, False)
    h.write(h.s.accounts.update, celebrity.id, {"pulled": True, "has_unpushed": True})
    h.write(h.s.accounts.update, stranger.id, {"has_unpushed": True})
    assert h.read(h.s.follows.followed_with_unpushed, reader.id) == [celebrity.id]
    assert h.read(h.s.follows.followed_with_unpushed, normal.id) == []


def test_fanout_targets(h: Harness) -> None:
    author, replied, f1, f2, f3, f4 = ids(6)
    edges = {}
    for follower, show_reblogs in ((f1, True), (f2, False), (replied, True), (f3, True),
                                   (f4, True)):
        edges[follower] = new_id()
        h.write(h.s.follows.insert, follower, author, edges[follower], NOW, show_reblogs, False)
    h.write(h.s.follows.insert, f3, replied, new_id(), NOW, True, False)  # f3 also follows them
    h.write(h.s.follows.insert, replied, f4, new_id(), NOW, True, False)  # irrelevant direction

    def targets(after: int = 0, limit: int = 100, reply_to: int | None = None,
                reblog: bool = False) -> list[int]:
        found = h.read(h.s.follows.fanout_targets, author, after, limit, reply_to, reblog)
        assert [fid for fid, _ in found] == sorted(fid for fid, _ in found)
        return [follower for _, follower in found]

    everyone = [f1, f2, replied, f3, f4]
    assert targets() == everyone
    assert targets(reply_to=author) == everyone  # a self-reply (thread) reaches everyone
    assert targets(reply_to=replied) == [replied, f3]
    assert targets(reply_to=new_id()) == []
    assert targets(reblog=True) == [f1, replied, f3, f4]
    assert targets(reply_to=replied, reblog=True) == [replied, f3]
    # Resuming from a cursor, in batches.
    assert targets(limit=2) == [f1, f2]
    assert targets(after=edges[f2], limit=2) == [replied, f3]
    assert targets(after=edges[f3], limit=2) == [f4]
    assert targets(after=edges[f4]) == []
    assert h.read(h.s.follows.fanout_targets, author, 0, 1, None, False) == [(edges[f1], f1)]


def test_fanout_targets_skip_inactive_followers(h: Harness) -> None:
    author = new_id()
    recent = make_account(h, "recent", last_active_at=NOW)
    idle = make_account(h, "idle", last_active_at=NOW - 30 * 86_400_000)
    replied = make_account(h, "replied", last_active_at=NOW)
    for follower in (recent, idle, replied):
        h.write(h.s.follows.insert, follower.id, author, new_id(), NOW, follower is not recent,
                False)
    h.write(h.s.follows.insert, idle.id, replied.id, new_id(), NOW, True, False)

    def targets(reply_to: int | None = None, reblog: bool = False) -> list[int]:
        found = h.read(h.s.follows.fanout_targets, author, 0, 100, reply_to, reblog,
                       active_since=NOW - 86_400_000)
        return [follower for _, follower in found]

    assert targets() == [recent.id, replied.id]
    assert targets(reblog=True) == [replied.id]
    assert targets(reply_to=replied.id) == [replied.id]  # idle also follows them: skipped
    assert [f for _, f in h.read(h.s.follows.fanout_targets, author, 0, 100, replied.id,
                                  False)] == [idle.id, replied.id]


def test_fanout_targets_many_answers_each_query_as_alone(h: Harness) -> None:
    """Several fan-out steps' questions at once (one round trip on PostgreSQL's writer, so
    asked in a write here): each answer is what ``fanout_targets`` gives for its question."""
    first, second, replied = ids(3)
    active = make_account(h, "active", last_active_at=NOW)
    idle = make_account(h, "idle", last_active_at=NOW - 30 * 86_400_000)
    for follower in (active.id, idle.id, replied):
        h.write(h.s.follows.insert, follower, first, new_id(), NOW, follower != replied, False)
    h.write(h.s.follows.insert, active.id, second, new_id(), NOW, True, False)
    h.write(h.s.follows.insert, idle.id, replied, new_id(), NOW, True, False)
    queries = [FanoutQuery(first, 0, 100, None, False),
               FanoutQuery(second, 0, 100, None, False),
               FanoutQuery(first, 0, 100, None, True, NOW - 86_400_000),
               FanoutQuery(first, 0, 1, replied, False),
               FanoutQuery(new_id(), 0, 100, None, False),
               FanoutQuery(first, 0, 100, None, False)]
    alone = [h.read(h.s.follows.fanout_targets, *q) for q in queries]
    assert [[f for _, f in found] for found in alone] == [
        [active.id, idle.id, replied], [active.id], [active.id], [idle.id], [],
        [active.id, idle.id, replied]]
    assert h.write(h.s.follows.fanout_targets_many, queries) == alone
    assert h.read(h.s.follows.fanout_targets_many, queries) == alone
    assert h.write(h.s.follows.fanout_targets_many, []) == []


def test_follow_events(h: Harness) -> None:
    target, follower = ids(2)
    first, second = new_id(), new_id()
    h.write(h.s.follows.record_event, target, follower, 1, first, NOW)
    h.write(h.s.follows.record_event, target, follower, -1, second, NOW + 1)
    rows = h.read(lambda tx: tx.execute(
        select(follow_events.c.id, follow_events.c.account_id, follow_events.c.delta,
               follow_events.c.created_at)
        .where(follow_events.c.target_account_id == target).order_by(follow_events.c.id)
    ).all())
    assert [tuple(r) for r in rows] == [(first, follower, 1, NOW), (second, follower, -1, NOW + 1)]
    with pytest.raises(IntegrityError):
        h.write(h.s.follows.record_event, target, follower, 1, first, NOW)


# -- races -------------------------------------------------------------------------------------


def test_races(h: Harness) -> None:
    a, b, other, creator = ids(4)
    cursor = new_id()
    race = Race(new_id(), creator, 3, NOW, cursor,
                [RaceEntry(a, 0, 1), RaceEntry(b, 1, 0)], [(NOW, a)], leader_id=a)
    h.write(h.s.races.insert, race)
    loaded = h.read(h.s.races.get, race.id)
    assert loaded == race
    assert h.read(h.s.races.get, new_id()) is None
    events = [new_id() for _ in range(3)]
    h.write(h.s.follows.record_event, a, other, 1, events[0], NOW + 1)
    h.write(h.s.follows.record_event, new_id(), other, 1, events[1], NOW + 2)  # not racing
    h.write(h.s.follows.record_event, b, other, 1, events[2], NOW + 3)
    last = (1 << 63) - 1
    assert h.read(h.s.races.events_after, [a, b], cursor, last, 10) == [
        (events[0], a, other, 1, NOW + 1), (events[2], b, other, 1, NOW + 3)]
    assert h.read(h.s.races.events_after, [a, b], events[0], last, 10) == [
        (events[2], b, other, 1, NOW + 3)]
    assert h.read(h.s.races.events_after, [a, b], cursor, last, 1) == [
        (events[0], a, other, 1, NOW + 1)]
    assert h.read(h.s.races.events_after, [a, b], cursor, events[2], 10) == [
        (events[0], a, other, 1, NOW + 1)]  # not yet settled: the newest waits
    assert h.read(h.s.races.unsettled_ids, 10) == [race.id]
    race.cursor_id = events[2]
    race.entries[0].followers = 3
    race.entries[0].reached_at, race.entries[0].milestone_follower_id = NOW + 1, other
    race.winner_id, race.finished_at, race.settled = a, NOW + 1, True
    race.lead_changes += [(NOW + 2, b), (NOW + 3, a)]
    h.write(h.s.races.save_progress, race, 2)
    assert h.read(h.s.races.get, race.id) == race
    assert h.read(h.s.races.unsettled_ids, 10) == []
    newer = Race(new_id(), creator, 5, NOW, new_id(), [RaceEntry(a, 0, 0), RaceEntry(b, 1, 0)],
                 [])
    h.write(h.s.races.insert, newer)
    assert [r.id for r in h.read(h.s.races.page, Page(limit=10))] == [newer.id, race.id]
    assert [r.id for r in h.read(h.s.races.page, Page(limit=1, max_id=newer.id))] == [race.id]
    h.write(h.s.races.delete, race.id)
    assert h.read(h.s.races.get, race.id) is None
    assert h.sql("SELECT count(*) FROM race_entries WHERE race_id = :r", r=race.id)[0][0] == 0


# -- follow requests -------------------------------------------------------------------------


def test_follow_requests(h: Harness) -> None:
    locked, other = ids(2)
    requesters = ids(3)
    request_ids = []
    for i, requester in enumerate(requesters):
        request_ids.append(new_id())
        assert h.write(h.s.follow_requests.insert, requester, locked, request_ids[-1], NOW,
                       i != 1, i == 1) is True
    assert h.write(h.s.follow_requests.insert, requesters[0], locked, new_id(), NOW, False,
                   False) is False
    assert h.write(h.s.follow_requests.insert, requesters[0], other, new_id(), NOW, True,
                   False) is True
    assert h.read(h.s.follow_requests.count, locked) == 3
    assert h.read(h.s.follow_requests.count, requesters[0]) == 0
    pairs = list(zip(request_ids, requesters, strict=True))
    assert h.read(h.s.follow_requests.page, locked, Page()) == pairs[::-1]
    assert h.read(h.s.follow_requests.page, locked, Page(max_id=request_ids[2], limit=1)) == [
        pairs[1]]
    assert h.read(h.s.follow_requests.page, locked, Page(min_id=request_ids[0], limit=1)) == [
        pairs[1]]
    assert h.read(h.s.follows.relations, requesters[0], [locked, other, new_id()]).requested == {
        locked, other}
    assert h.read(h.s.follows.relations, locked, [*requesters, other]).requested_by == set(
        requesters)

    assert h.write(h.s.follow_requests.take, requesters[1], locked) == (False, True)
    assert h.write(h.s.follow_requests.take, requesters[1], locked) is None
    assert h.write(h.s.follow_requests.take, requesters[0], locked) == (True, False)
    assert h.read(h.s.follow_requests.count, locked) == 1
    assert h.read(h.s.follows.relations, requesters[0], [locked, other]).requested == {other}


# -- follower history ------------------------------------------------------------------------


def test_follower_history_rollups_snapshots_and_nth(h: Harness) -> None:
    target, bystander = ids(2)
    minute = 60_000
    start = NOW - NOW % minute
    # (ms after start, follower, delta): a consistent log across five minutes.
    log = [(0, 1, 1), (10, 2, 1), (10, 3, 1), (minute + 5, 2, -1), (minute + 6, 4, 1),
           (3 * minute, 5, 1), (3 * minute + 1, 1, -1), (4 * minute + 59_999, 6, 1)]

    def write_log(tx: Tx) -> None:
        seq: dict[int, int] = {}
        for offset, follower, delta in log:
            at = start + offset
            seq[at] = seq.get(at, -1) + 1
            h.s.follows.record_event(tx, target, follower, delta, id_at_ms(at) | seq[at], at)
        h.s.follows.record_event(tx, bystander, 1, 1, id_at_ms(start + 5), start + 5)

    h.write(write_log)

    def brute(at: int) -> Snapshot:
        past = [d for o, _, d in log if start + o <= at]
        return Snapshot(sum(past), past.count(1), past.count(-1))

    probes = [start - 1, start, start + 10, start + minute + 5, start + 2 * minute,
              start + 3 * minute + 1, start + 4 * minute + 59_999, start + 10 * minute]
    firsts = {1: (1, start), 2: (2, start + 10), 3: (3, start + 10),
              4: (5, start + 3 * minute), 5: None}
    assert h.read(h.s.history.rolled_up_to) == 0
    for until in (start // minute, start // minute + 2, start // minute + 2,
                  start // minute + 4, start // minute + 10):
        while not h.write(h.s.history.roll_up, until, 2):
            pass
        assert h.read(h.s.history.rolled_up_to) == until
        for at in probes:
            assert h.read(h.s.history.snapshot, target, at) == brute(at), (until, at)
        for n, first in firsts.items():
            assert h.read(h.s.history.nth, target, n) == first, (until, n)
    assert h.read(h.s.history.snapshot, bystander, start + minute) == Snapshot(1, 1, 0)


def test_follower_milestones(h: Harness) -> None:
    a, b = ids(2)
    hundred = Milestone(a, 100, NOW, new_id())
    ten = Milestone(a, 10, NOW - 5, new_id())
    assert h.write(h.s.history.record_milestone, hundred) is True
    assert h.write(h.s.history.record_milestone, ten) is True
    assert h.write(h.s.history.record_milestone, Milestone(a, 100, NOW + 9, new_id())) is False
    assert h.write(h.s.history.record_milestone, Milestone(b, 10, NOW, BIG)) is True
    assert h.read(h.s.history.milestones, a) == [ten, hundred]  # first time only, by count
    assert h.read(h.s.history.milestones, b) == [Milestone(b, 10, NOW, BIG)]
    assert h.read(h.s.history.milestones, new_id()) == []


# -- statuses --------------------------------------------------------------------------------


def test_status_round_trip(h: Harness) -> None:
    author = new_id()
    status = Status(
        id=BIG, account_id=author, text="t", content="<p>t</p>", spoiler_text="cw",
        sensitive=True, visibility=Visibility.UNLISTED, language=None, in_reply_to_id=BIG - 1,
        in_reply_to_account_id=author, reblog_of_id=None, pushed=False, replies_count=0,
        reblogs_count=0, favourites_count=0, created_at=NOW,
    )
    h.write(h.s.statuses.insert, status)
    got = h.read(h.s.statuses.by_ids, [BIG, BIG, new_id()])
    assert got == {BIG: status}
    assert type(got[BIG].sensitive) is bool and type(got[BIG].pushed) is bool
    assert got[BIG].visibility is Visibility.UNLISTED
    assert h.read(h.s.statuses.by_ids, []) == {}
    assert h.read(h.s.statuses.by_account, author, Page(max_id=BIG), ["unlisted"], False,
                  False) == []
    assert h.read(h.s.statuses.by_account, author, Page(), ["unlisted"], False, False) == [BIG]


def test_status_counts(h: Harness) -> None:
    s = make_status(h, new_id())
    h.write(h.s.statuses.add_counts, s.id, replies=2, reblogs=1)
    h.write(h.s.statuses.add_counts, s.id, replies=-1, favourites=4)
    got = h.read(h.s.statuses.by_ids, [s.id])[s.id]
    assert (got.replies_count, got.reblogs_count, got.favourites_count) == (1, 1, 4)


def test_statuses_by_account(h: Harness) -> None:
    me = make_account(h, "me")
    other = make_account(h, "other")
    theirs = make_status(h, other)
    public = make_status(h, me)
    private = make_status(h, me, visibility=Visibility.PRIVATE)
    self_reply = make_status(h, me, reply_to=public)
    reply = make_status(h, me, reply_to=theirs)
    reblog = make_status(h, me, reblog_of=theirs)
    direct = make_status(h, me, visibility=Visibility.DIRECT)

    def by_account(visibilities: list[str], replies: bool = False, reblogs: bool = False,
                   page: Page | None = None) -> list[int]:
        return h.read(h.s.statuses.by_account, me.id, page or Page(), visibilities, replies,
                      reblogs)

    visible = ["public", "unlisted", "private"]
    assert by_account(visible) == [reblog.id, reply.id, self_reply.id, private.id, public.id]
    assert by_account(["public", "unlisted"]) == [reblog.id, reply.id, self_reply.id, public.id]
    assert by_account([*visible, "direct"])[0] == direct.id
    assert by_account(visible, replies=True) == [reblog.id, self_reply.id, private.id,
                                                 public.id]
    assert by_account(visible, reblogs=True) == [reply.id, self_reply.id, private.id,
                                                 public.id]
    assert by_account(visible, True, True) == [self_reply.id, private.id, public.id]
    assert by_account(visible, page=Page(max_id=reply.id, limit=2)) == [self_reply.id,
                                                                        private.id]
    assert by_account(visible, page=Page(min_id=public.id, limit=2)) == [self_reply.id,
                                                                         private.id]
    assert by_account(visible, page=Page(since_id=public.id, limit=2)) == [reblog.id, reply.id]
    assert by_account([]) == []


def test_public_timeline(h: Harness) -> None:
    a = make_account(h, "a")
    b = make_account(h, "b")
    first = make_status(h, a)
    make_status(h, b, reply_to=first)  # a reply to someone else: not public timeline
    thread = make_status(h, a, reply_to=first)  # a self-reply: shown
    make_status(h, b, reblog_of=first)  # reblogs: never
    make_status(h, a, visibility=Visibility.UNLISTED)
    make_status(h, a, visibility=Visibility.PRIVATE)
    make_status(h, a, visibility=Visibility.DIRECT)
    last = make_status(h, b)
    assert h.read(h.s.statuses.public, Page()) == [last.id, thread.id, first.id]
    assert h.read(h.s.statuses.public, Page(limit=1, max_id=last.id)) == [thread.id]
    assert h.read(h.s.statuses.public, Page(min_id=first.id, limit=1)) == [thread.id]


def test_statuses_by_tag(h: Harness) -> None:
    a = make_account(h, "a")
    (cats, dogs) = h.write(h.s.tags.ensure, ["cats", "dogs"], NOW)
    tagged = []
    for visibility in (Visibility.PUBLIC, Visibility.UNLISTED, Visibility.PUBLIC,
                       Visibility.PRIVATE, Visibility.PUBLIC):
        s = make_status(h, a, visibility=visibility)
        h.write(h.s.tags.link, s.id, [cats.id, cats.id])
        tagged.append(s)
    h.write(h.s.tags.link, tagged[0].id, [dogs.id])
    public = [tagged[4].id, tagged[2].id, tagged[0].id]
    assert h.read(h.s.statuses.by_tag, cats.id, Page()) == public
    assert h.read(h.s.statuses.by_tag, cats.id, Page(limit=2, max_id=tagged[4].id)) == public[1:]
    assert h.read(h.s.statuses.by_tag, cats.id, Page(min_id=tagged[0].id, limit=1)) == [
        tagged[2].id]
    assert h.read(h.s.statuses.by_tag, dogs.id, Page()) == [tagged[0].id]
    assert h.read(h.s.statuses.by_tag, new_id(), Page()) == []


def test_pulled_and_delivered_from(h: Harness) -> None:
    star = make_account(h, "star")
    other = make_account(h, "other")
    pushed = make_status(h, star)
    unpushed = [make_status(h, star, pushed=False) for _ in range(3)]
    make_status(h, star, pushed=False, visibility=Visibility.DIRECT)
    reply_to_other = make_status(h, star, reply_to=make_status(h, other))
    thread = make_status(h, star, reply_to=pushed)
    other_original = make_status(h, other, pushed=False)
    reblog = make_status(h, star, reblog_of=other_original)
    make_status(h, star, visibility=Visibility.DIRECT)
    other_unpushed = make_status(h, other, pushed=False, visibility=Visibility.PRIVATE)

    def entry(s: Status) -> TimelineEntry:
        return TimelineEntry(s.id, s.account_id, s.reblog_of_id)

    # The unpushed posts of the followed accounts that have some (has_unpushed).
    fan, fan_of_both, nobody = (make_account(h, n) for n in ("fan", "both", "nobody"))
    h.write(h.s.follows.insert, fan.id, star.id, new_id(), NOW, True, False)
    for target in (star, other):
        h.write(h.s.follows.insert, fan_of_both.id, target.id, new_id(), NOW, True, False)
    assert h.read(h.s.statuses.pulled, fan.id, Page()) == []  # star not marked yet
    for account in (star, other):
        h.write(h.s.accounts.update, account.id, {"pulled": True, "has_unpushed": True})
    assert h.read(h.s.statuses.pulled, fan.id, Page()) == [entry(s) for s in unpushed[::-1]]
    assert h.read(h.s.statuses.pulled, fan_of_both.id, Page(limit=2)) == [
        entry(other_unpushed), entry(other_original)]
    assert h.read(h.s.statuses.pulled, fan.id, Page(min_id=unpushed[0].id, limit=1)) == [
        entry(unpushed[1])]
    assert h.read(h.s.statuses.pulled, nobody.id, Page()) == []
    # The pushed posts of followed accounts, under fan-out's rules for the viewer: a reply
    # to someone else only for a viewer who follows them too.
    assert h.read(h.s.statuses.delivered_from, fan.id, [star.id], 10) == [
        entry(reblog), entry(thread), entry(pushed)]
    assert h.read(h.s.statuses.delivered_from, fan_of_both.id, [star.id], 10) == [
        entry(reblog), entry(thread), entry(reply_to_other), entry(pushed)]
    assert h.read(h.s.statuses.delivered_from, fan.id, [star.id], 1) == [entry(reblog)]
    assert h.read(h.s.statuses.delivered_from, fan.id, [other.id], 10) == []  # not followed
    assert h.read(h.s.statuses.delivered_from, fan.id, [], 10) == []


def test_delivered_to_reads_back_what_delivery_pushed(h: Harness) -> None:
    """The statuses push delivery puts in a viewer's home timeline, read back from the
    database (an in-memory store fills a timeline with them): fan-out's rules for followed
    accounts, one's own posts, private and direct posts that mention one."""
    viewer, shown, quiet, stranger = (make_account(h, n) for n in
                                      ("viewer", "shown", "quiet", "stranger"))
    h.write(h.s.follows.insert, viewer.id, shown.id, new_id(), NOW, True, False)
    h.write(h.s.follows.insert, viewer.id, quiet.id, new_id(), NOW, False, False)
    theirs = make_status(h, stranger)
    secret = make_status(h, stranger, visibility=Visibility.PRIVATE)
    own = [make_status(h, viewer), make_status(h, viewer, visibility=Visibility.DIRECT,
                                               reply_to=theirs)]
    post, followed_too = make_status(h, shown), make_status(h, quiet)
    wanted = [
        post,
        followed_too,
        make_status(h, shown, reply_to=post),  # a thread of one's own
        make_status(h, shown, reply_to=followed_too),  # to someone the viewer follows
        make_status(h, shown, reply_to=own[0]),  # to the viewer
        make_status(h, shown, reblog_of=theirs),
        make_status(h, shown, visibility=Visibility.PRIVATE),
        make_status(h, quiet),
    ]
    unwanted = [
        make_status(h, shown, reply_to=theirs),  # to someone the viewer does not follow
        make_status(h, quiet, reblog_of=theirs),  # the viewer hides quiet's reblogs
        make_status(h, shown, reblog_of=secret),  # (only its author may reblog it)
        make_status(h, shown, visibility=Visibility.DIRECT),
        make_status(h, shown, pushed=False),  # merged at read time instead
        make_status(h, stranger),
    ]
    mentioned = make_status(h, stranger, visibility=Visibility.DIRECT)
    h.write(h.s.statuses.add_mentions, mentioned.id, [viewer.id])
    public_mention = make_status(h, stranger)
    h.write(h.s.statuses.add_mentions, public_mention.id, [viewer.id])
    unwanted.append(public_mention)  # not followed: a notification, not the home timeline

    def ids_of(statuses: list[Status]) -> list[int]:
        return sorted((s.id for s in statuses), reverse=True)

    delivered = h.read(h.s.statuses.delivered_to, viewer.id, 100)
    assert [e.status_id for e in delivered] == ids_of([*wanted, *own, mentioned])
    assert not {s.id for s in unwanted} & {e.status_id for e in delivered}
    assert TimelineEntry(wanted[5].id, shown.id, theirs.id) in delivered
    assert [e.status_id for e in h.read(h.s.statuses.delivered_to, viewer.id, 3)] == ids_of(
        [*wanted, *own, mentioned])[:3]
    assert h.read(h.s.statuses.delivered_to, stranger.id, 100)[0].status_id == (
        public_mention.id)  # (their own)

    # The same, in the parts a rebuild reads them in.
    followed = h.read(h.s.statuses.delivered_from, viewer.id, [shown.id, quiet.id], 100)
    directly = h.read(h.s.statuses.delivered_directly, viewer.id, 100)
    assert [e.status_id for e in followed] == ids_of(wanted)
    assert [e.status_id for e in directly] == ids_of([*own, mentioned])
    assert [e.status_id for e in h.read(h.s.statuses.delivered_directly, viewer.id, 1)] == [
        mentioned.id]


def test_delivered_to_is_exact_when_followed_accounts_post_a_lot(h: Harness) -> None:
    """More posts from one account than a fill's first look takes from each (FILL_FIRST):
    the newest ``limit`` all the same, whichever accounts they come from."""
    viewer, busy, calm = (make_account(h, n) for n in ("viewer", "busy", "calm"))
    for target in (busy, calm):
        h.write(h.s.follows.insert, viewer.id, target.id, new_id(), NOW, True, False)
    posted = []
    for n in range(FILL_FIRST + 20):
        posted.append(make_status(h, busy).id)
        if n % 10 == 0:
            posted.append(make_status(h, calm).id)
    newest = sorted(posted, reverse=True)
    for limit in (10, FILL_FIRST, FILL_FIRST + 5, len(posted), len(posted) + 10):
        got = [e.status_id for e in h.read(h.s.statuses.delivered_to, viewer.id, limit)]
        assert got == newest[:limit], limit


def test_delivered_to_is_exact_for_an_account_following_many(h: Harness) -> None:
    """Following many accounts, a fill's first look takes only one or two posts from each
    (enough for twice the limit in all): the newest ``limit`` all the same."""
    viewer = make_account(h, "viewer")
    authors = [make_account(h, f"author{n}") for n in range(30)]
    for author in authors:
        h.write(h.s.follows.insert, viewer.id, author.id, new_id(), NOW, True, False)
    rng = random.Random(7)
    posted = []
    for n in range(150):  # one prolific account, the others now and then
        author = authors[0] if n % 3 else rng.choice(authors[1:20])
        posted.append(make_status(h, author).id)
    newest = sorted(posted, reverse=True)
    for limit in (1, 3, 10, 25, 60, 149, 150, 400):
        got = [e.status_id for e in h.read(h.s.statuses.delivered_to, viewer.id, limit)]
        assert got == newest[:limit], limit


def test_pulled_pages_match_every_unpushed_post_in_order(h: Harness) -> None:
    """Each author's newest posts are taken apart (a celebrity's thousands cost one page):
    every page shape must still be the right window of all their posts, merged."""
    reader, a, b = (make_account(h, n) for n in ("reader", "a", "b"))
    for author in (a, b):
        h.write(h.s.follows.insert, reader.id, author.id, new_id(), NOW, True, False)
        h.write(h.s.accounts.update, author.id, {"pulled": True, "has_unpushed": True})
    # a posts 12 times, then b 3 times, then a and b alternate: pages cross authors.
    posts = [make_status(h, a, pushed=False) for _ in range(12)]
    posts += [make_status(h, b, pushed=False) for _ in range(3)]
    posts += [make_status(h, (a, b)[i % 2], pushed=False) for i in range(6)]
    ids = [p.id for p in posts]  # oldest first
    newest = ids[::-1]

    def page_ids(page: Page) -> list[int]:
        return [e.status_id for e in h.read(h.s.statuses.pulled, reader.id, page)]

    assert page_ids(Page(limit=40)) == newest
    assert page_ids(Page(limit=4)) == newest[:4]
    assert page_ids(Page(max_id=ids[15], limit=5)) == [i for i in newest if i < ids[15]][:5]
    assert page_ids(Page(since_id=ids[10], limit=3)) == newest[:3]
    assert page_ids(Page(min_id=ids[10], limit=3)) == ids[11:14][::-1]
    assert page_ids(Page(max_id=ids[18], since_id=ids[2], limit=40)) == newest[3:18]


def test_pulled_applies_the_viewers_reply_and_reblog_rules(h: Harness) -> None:
    star, viewer, friend, stranger = (make_account(h, n) for n in
                                      ("star", "viewer", "friend", "stranger"))
    h.write(h.s.follows.insert, viewer.id, star.id, new_id(), NOW, False, False)  # no reblogs
    h.write(h.s.follows.insert, viewer.id, friend.id, new_id(), NOW, True, False)
    plain = make_status(h, star, pushed=False)
    to_friend = make_status(h, star, pushed=False, reply_to=make_status(h, friend))
    to_viewer = make_status(h, star, pushed=False, reply_to=make_status(h, viewer))
    to_self = make_status(h, star, pushed=False, reply_to=plain)
    to_stranger = make_status(h, star, pushed=False, reply_to=make_status(h, stranger))
    reblog = make_status(h, star, pushed=False, reblog_of=make_status(h, friend))
    h.write(h.s.accounts.update, star.id, {"pulled": True, "has_unpushed": True})
    seen = [e.status_id for e in h.read(h.s.statuses.pulled, viewer.id, Page())]
    assert seen == [to_self.id, to_viewer.id, to_friend.id, plain.id]
    assert to_stranger.id not in seen and reblog.id not in seen
    # Someone who follows the stranger too, and wants the star's reblogs, sees both.
    h.write(h.s.follows.insert, stranger.id, star.id, new_id(), NOW, True, False)
    h.write(h.s.follows.insert, stranger.id, friend.id, new_id(), NOW, True, False)
    everything = [e.status_id for e in h.read(h.s.statuses.pulled, stranger.id, Page())]
    assert to_stranger.id in everything and reblog.id in everything


def test_reblogs(h: Harness) -> None:
    author = make_account(h, "author")
    original = make_status(h, author)
    make_status(h, author)  # two originals by one account: NULL reblog_of_id is not unique
    rebloggers = [make_account(h, f"r{i}") for i in range(3)]
    reblogs = [make_status(h, r, reblog_of=original) for r in rebloggers]
    with pytest.raises(IntegrityError):
        make_status(h, rebloggers[0], reblog_of=original)

    assert h.read(h.s.statuses.reblog_id, rebloggers[1].id, original.id) == reblogs[1].id
    assert h.read(h.s.statuses.reblog_id, author.id, original.id) is None
    assert h.read(h.s.statuses.reblogs_of, original.id) == [r.id for r in reblogs]
    marks = h.read(h.s.statuses.viewer_marks, rebloggers[0].id, [original.id, reblogs[1].id])
    assert marks.reblogged == {original.id}
    assert h.read(h.s.statuses.viewer_marks, rebloggers[0].id, []).reblogged == set()
    pairs = [(s.id, r.id) for s, r in zip(reblogs, rebloggers, strict=True)]
    assert h.read(h.s.statuses.rebloggers_page, original.id, Page()) == pairs[::-1]
    assert h.read(h.s.statuses.rebloggers_page, original.id, Page(min_id=pairs[0][0],
                                                                   limit=1)) == [pairs[1]]


def test_replies_and_mentions(h: Harness) -> None:
    a = make_account(h, "a")
    b = make_account(h, "b")
    root = make_status(h, a)
    other_root = make_status(h, b)
    r1 = make_status(h, b, reply_to=root)
    r2 = make_status(h, a, reply_to=root)
    r3 = make_status(h, a, reply_to=other_root)
    make_status(h, a, reply_to=r1)
    assert [s.id for s in h.read(h.s.statuses.replies_to, [root.id, other_root.id])] == [
        r1.id, r2.id, r3.id]
    assert h.read(h.s.statuses.replies_to, []) == []

    mentioned = sorted(ids(3))
    h.write(h.s.statuses.add_mentions, r1.id, [mentioned[2], mentioned[0], mentioned[2]])
    h.write(h.s.statuses.add_mentions, r1.id, [mentioned[0], mentioned[1]])  # duplicates ignored
    h.write(h.s.statuses.add_mentions, r2.id, [])
    h.write(h.s.statuses.add_mentions, r3.id, [mentioned[1]])
    assert h.read(h.s.statuses.mentions_of, [r1.id, r2.id, r3.id]) == {
        r1.id: mentioned, r3.id: [mentioned[1]]}
    assert h.read(h.s.statuses.mentions_of, []) == {}
    h.write(h.s.statuses.delete, r1.id)
    assert h.read(h.s.statuses.by_ids, [r1.id]) == {}
    assert h.read(h.s.statuses.mentions_of, [r1.id]) == {}


def test_idempotency_keys(h: Harness) -> None:
    a, b = ids(2)
    status = make_status(h, a)
    assert h.read(h.s.statuses.idempotent_status, a, "key-1") is None
    h.write(h.s.statuses.remember_idempotency, a, "key-1", status.id, NOW)
    assert h.read(h.s.statuses.idempotent_status, a, "key-1") == status.id
    assert h.read(h.s.statuses.idempotent_status, a, "KEY-1") is None
    assert h.read(h.s.statuses.idempotent_status, b, "key-1") is None
    with pytest.raises(IntegrityError):
        h.write(h.s.statuses.remember_idempotency, a, "key-1", new_id(), NOW)
    h.write(h.s.statuses.remember_idempotency, b, "key-1", new_id(), NOW)


def test_status_discrepancies_and_repair(h: Harness) -> None:
    a = make_account(h, "a")
    root = make_status(h, a)
    make_status(h, a, reply_to=root)
    make_status(h, a, reblog_of=root)
    h.write(h.s.favourites.insert, a.id, root.id, new_id(), NOW)
    other = make_status(h, a)
    h.write(h.s.statuses.add_counts, other.id, favourites=2)
    h.write(h.s.statuses.add_counts, root.id, replies=1)
    assert sorted(h.read(h.s.statuses.discrepancies)) == sorted([
        (root.id, "reblogs", 0, 1), (root.id, "favourites", 0, 1),
        (other.id, "favourites", 2, 0)])
    assert h.write(h.s.statuses.repair) == 3
    assert h.read(h.s.statuses.discrepancies) == []
    got = h.read(h.s.statuses.by_ids, [root.id, other.id])
    assert (got[root.id].replies_count, got[root.id].reblogs_count,
            got[root.id].favourites_count, got[other.id].favourites_count) == (1, 1, 1, 0)


# -- favourites ------------------------------------------------------------------------------


def test_favourites(h: Harness) -> None:
    s1 = make_status(h, new_id())
    s2 = make_status(h, new_id())
    fans = ids(3)
    fav_ids = []
    for fan in fans:
        fav_ids.append(new_id())
        assert h.write(h.s.favourites.insert, fan, s1.id, fav_ids[-1], NOW) is True
    assert h.write(h.s.favourites.insert, fans[0], s1.id, new_id(), NOW) is False
    assert h.write(h.s.favourites.insert, fans[0], s2.id, new_id(), NOW) is True
    marks = h.read(h.s.statuses.viewer_marks, fans[0], [s1.id, s2.id, new_id()])
    assert marks.favourited == {s1.id, s2.id}
    assert h.read(h.s.statuses.viewer_marks, fans[1], [s2.id]).favourited == set()
    assert h.read(h.s.statuses.viewer_marks, fans[1], []).favourited == set()
    pairs = list(zip(fav_ids, fans, strict=True))
    assert h.read(h.s.favourites.favouriters_page, s1.id, Page()) == pairs[::-1]
    assert h.read(h.s.favourites.favouriters_page, s1.id, Page(max_id=fav_ids[2])) == [
        pairs[1], pairs[0]]
    assert h.read(h.s.favourites.favouriters_page, s1.id, Page(min_id=fav_ids[0], limit=1)) == [
        pairs[1]]
    # One account's favourites, newest favourite first, paged by favourite id.
    mine = h.read(h.s.favourites.page, fans[0], Page())
    assert [s for _, s in mine] == [s2.id, s1.id] and mine[1][0] == fav_ids[0]
    assert h.read(h.s.favourites.page, fans[0], Page(max_id=mine[0][0])) == [mine[1]]
    assert h.read(h.s.favourites.page, fans[0], Page(min_id=mine[1][0], limit=1)) == [mine[0]]
    assert h.read(h.s.favourites.page, fans[1], Page()) == [(fav_ids[1], s1.id)]
    assert h.write(h.s.favourites.delete, fans[1], s1.id) is True
    assert h.write(h.s.favourites.delete, fans[1], s1.id) is False
    h.write(h.s.favourites.delete_for_status, s1.id)
    assert h.read(h.s.favourites.favouriters_page, s1.id, Page()) == []
    assert h.read(h.s.statuses.viewer_marks, fans[0], [s1.id, s2.id]).favourited == {s2.id}


def test_pins(h: Harness) -> None:
    me, other = ids(2)
    first, second, third = (make_status(h, new_id()) for _ in range(3))
    assert h.write(h.s.pins.insert, me, first.id, new_id(), NOW) is True
    assert h.write(h.s.pins.insert, me, second.id, new_id(), NOW) is True
    assert h.write(h.s.pins.insert, me, first.id, new_id(), NOW) is False  # once
    assert h.write(h.s.pins.insert, other, third.id, new_id(), NOW) is True
    assert h.read(h.s.pins.of_account, me) == [second.id, first.id]  # newest pin first
    assert (h.read(h.s.pins.count, me), h.read(h.s.pins.count, new_id())) == (2, 0)
    marks = h.read(h.s.statuses.viewer_marks, me, [first.id, second.id, third.id])
    assert marks.pinned == {first.id, second.id}
    assert h.write(h.s.pins.delete, me, second.id) is True
    assert h.write(h.s.pins.delete, me, second.id) is False
    h.write(h.s.pins.delete_for_status, first.id)
    assert h.read(h.s.pins.of_account, me) == []
    assert h.read(h.s.pins.of_account, other) == [third.id]


# -- bookmarks and markers -------------------------------------------------------------------


def test_bookmarks(h: Harness) -> None:
    me, other = ids(2)
    statuses = ids(4)
    marks = []
    for status_id in statuses:
        marks.append(new_id())
        h.write(h.s.bookmarks.insert, me, status_id, marks[-1], NOW)
    h.write(h.s.bookmarks.insert, me, statuses[0], new_id(), NOW)  # again: ignored
    h.write(h.s.bookmarks.insert, other, statuses[0], new_id(), NOW)
    pairs = list(zip(marks, statuses, strict=True))
    assert h.read(h.s.bookmarks.page, me, Page()) == pairs[::-1]
    assert h.read(h.s.bookmarks.page, me, Page(max_id=marks[3], limit=2)) == [pairs[2], pairs[1]]
    assert h.read(h.s.bookmarks.page, me, Page(min_id=marks[0], limit=1)) == [pairs[1]]
    found = h.read(h.s.statuses.viewer_marks, me, [statuses[0], statuses[3], new_id()])
    assert found.bookmarked == {statuses[0], statuses[3]}
    assert h.read(h.s.statuses.viewer_marks, me, []).bookmarked == set()
    h.write(h.s.bookmarks.delete, me, statuses[1])
    h.write(h.s.bookmarks.delete, me, statuses[1])
    h.write(h.s.bookmarks.delete_for_status, statuses[0])
    assert h.read(h.s.bookmarks.page, me, Page()) == [pairs[3], pairs[2]]
    assert h.read(h.s.statuses.viewer_marks, other, [statuses[0]]).bookmarked == set()


def test_markers(h: Harness) -> None:
    me, other = ids(2)
    assert h.read(h.s.markers.get, me, ["home", "notifications"]) == []
    h.write(h.s.markers.set, me, "notifications", 5, NOW)
    h.write(h.s.markers.set, me, "home", BIG, NOW + 1)
    h.write(h.s.markers.set, me, "notifications", 7, NOW + 2)
    h.write(h.s.markers.set, other, "home", 1, NOW)
    assert h.read(h.s.markers.get, me, ["notifications", "home"]) == [
        Marker("home", BIG, 1, NOW + 1), Marker("notifications", 7, 2, NOW + 2)]
    assert h.read(h.s.markers.get, me, ["home"]) == [Marker("home", BIG, 1, NOW + 1)]
    assert h.read(h.s.markers.get, me, []) == []


def test_marker_updates_in_one_batch_all_count(h: Harness, db: Database) -> None:
    futures = [db.submit(lambda tx, i=i: h.s.markers.set(tx, 1, "home", i, NOW + i))
               for i in range(1, 51)]
    for future in futures:
        future.result(10)
    assert h.read(h.s.markers.get, 1, ["home"]) == [Marker("home", 50, 50, NOW + 50)]


# -- tags ------------------------------------------------------------------------------------


def test_tags_ensure_is_idempotent_and_case_insensitive(h: Harness) -> None:
    first = h.write(h.s.tags.ensure, ["Cats", "dogs"], NOW)
    assert [t.name for t in first] == ["Cats", "dogs"]
    again = h.write(h.s.tags.ensure, ["CATS", "Birds", "DOGS", "birds"], NOW + 1)
    assert again[0] == first[0] and again[2] == first[1]  # first spelling is kept
    assert again[1] == again[3] and again[1].name == "Birds"
    assert h.write(h.s.tags.ensure, [], NOW) == []
    assert h.read(h.s.tags.by_name, "cAtS") == first[0]
    assert h.read(h.s.tags.by_name, "fish") is None
    assert h.sql("SELECT count(*) FROM tags")[0][0] == 3
    assert type(first[0].id) is int


def test_tags_link_and_of_statuses(h: Harness) -> None:
    s1, s2, s3 = ids(3)
    tags = h.write(h.s.tags.ensure, ["zebra", "apple", "mango"], NOW)
    h.write(h.s.tags.link, s1, [tags[2].id, tags[0].id, tags[1].id])
    h.write(h.s.tags.link, s1, [tags[0].id])  # again: ignored
    h.write(h.s.tags.link, s2, [tags[1].id])
    h.write(h.s.tags.link, s3, [])
    by_id = sorted(tags, key=lambda t: t.id)
    assert h.read(h.s.tags.of_statuses, [s1, s2, s3]) == {s1: by_id, s2: [tags[1]]}
    assert h.read(h.s.tags.of_statuses, []) == {}
    # Together with mentions, as a page is hydrated: both in id order, in one query.
    mentioned = sorted(ids(2))
    h.write(h.s.statuses.add_mentions, s2, [mentioned[1], mentioned[0]])
    assert h.read(h.s.statuses.mentions_and_tags, [s1, s2, s3]) == (
        {s2: mentioned}, {s1: by_id, s2: [tags[1]]})
    assert h.read(h.s.statuses.mentions_and_tags, [s3]) == ({}, {})
    assert h.read(h.s.statuses.mentions_and_tags, []) == ({}, {})
    h.write(h.s.tags.unlink, s1)
    assert h.read(h.s.tags.of_statuses, [s1, s2]) == {s2: [tags[1]]}


def test_tags_search(h: Harness) -> None:
    names = ["foobar", "foo_bar", "Foo1", "fooa", "fooé", "foo", "fox", "xfoo", "fo_o"]
    made = {t.name: t for t in h.write(h.s.tags.ensure, names, NOW)}

    def search(prefix: str, limit: int = 20, offset: int = 0) -> list[str]:
        return [t.name for t in h.read(h.s.tags.search, prefix, limit, offset)]

    # Ordered by the lower-cased name, code point by code point, on every engine and locale.
    assert search("foo") == ["foo", "Foo1", "foo_bar", "fooa", "foobar", "fooé"]
    assert search("#FOO", 2, 1) == ["Foo1", "foo_bar"]
    assert search("fo_") == ["fo_o"]
    assert search("foo_") == ["foo_bar"]
    assert search("%") == []
    assert search("FOOÉ") == ["fooé"]
    assert h.read(h.s.tags.search, "fox", 5, 0) == [made["fox"]]


# -- notifications ---------------------------------------------------------------------------


def _notify(h: Harness, account: int, type: str, source: int,
            status: int | None = None) -> Notification:
    n = Notification(new_id(), account, type, source, status, NOW)
    h.write(h.s.notifications.insert, n)
    return n


def test_notifications(h: Harness) -> None:
    me, alice, bob = ids(3)
    post = new_id()
    follow = _notify(h, me, "follow", alice)
    fav = _notify(h, me, "favourite", bob, post)
    mention = _notify(h, me, "mention", alice, post)
    reblog = _notify(h, me, "reblog", bob, post)
    theirs = _notify(h, alice, "follow", me)

    def page(types: list[str] | None = None, exclude: list[str] | None = None,
             source: int | None = None, **window: int) -> list[Notification]:
        return h.read(h.s.notifications.page, me, Page(**window), types, exclude or [], source)

    assert page() == [reblog, mention, fav, follow]
    assert page(types=["follow", "mention"]) == [mention, follow]
    assert page(exclude=["reblog", "favourite"]) == [mention, follow]
    assert page(types=["follow", "reblog"], exclude=["reblog"]) == [follow]
    assert page(types=[]) == [reblog, mention, fav, follow]  # empty means all
    assert page(source=bob) == [reblog, fav]
    assert page(max_id=reblog.id, limit=2) == [mention, fav]
    assert page(since_id=follow.id, limit=1) == [reblog]
    assert page(min_id=follow.id, limit=1) == [fav]
    assert h.read(h.s.notifications.get, me, fav.id) == fav
    assert h.read(h.s.notifications.get, alice, fav.id) is None

    assert h.write(h.s.notifications.dismiss, alice, fav.id) is False
    assert h.write(h.s.notifications.dismiss, me, fav.id) is True
    assert h.write(h.s.notifications.dismiss, me, fav.id) is False
    assert page() == [reblog, mention, follow]
    h.write(h.s.notifications.clear, me)
    assert page() == []
    assert h.read(h.s.notifications.get, alice, theirs.id) == theirs


def test_notifications_delete_matching_and_for_status(h: Harness) -> None:
    me, alice = ids(2)
    p1, p2 = ids(2)
    fav1 = _notify(h, me, "favourite", alice, p1)
    fav2 = _notify(h, me, "favourite", alice, p2)
    follow = _notify(h, me, "follow", alice)
    mention = _notify(h, me, "mention", alice, p1)

    def remaining() -> list[Notification]:
        return h.read(h.s.notifications.page, me, Page(), None, [], None)

    h.write(h.s.notifications.delete_matching, me, "favourite", alice, p1)
    assert remaining() == [mention, follow, fav2]
    h.write(h.s.notifications.delete_matching, me, "follow", alice, None)
    assert remaining() == [mention, fav2]
    h.write(h.s.notifications.delete_matching, me, "favourite", me, None)  # no match
    h.write(h.s.notifications.delete_for_status, p1)
    assert remaining() == [fav2]
    assert fav1 not in remaining()


# -- oauth -----------------------------------------------------------------------------------


def test_oauth_apps(h: Harness) -> None:
    app = App(new_id(), "Tusky", None, ["urn:ietf:wg:oauth:2.0:oob", "https://x.example/cb"],
              ["read", "write:statuses"], "client-id", "client-secret", NOW)
    h.write(h.s.oauth.insert_app, app)
    assert h.read(h.s.oauth.app_by_client_id, "client-id") == app
    assert h.read(h.s.oauth.app_by_id, app.id) == app
    assert h.read(h.s.oauth.app_by_client_id, "CLIENT-ID") is None
    assert h.read(h.s.oauth.app_by_id, new_id()) is None
    with pytest.raises(IntegrityError):
        h.write(h.s.oauth.insert_app, App(new_id(), "Copy", "https://copy.example", ["x"],
                                          ["read"], "client-id", "s", NOW))


def test_oauth_codes_are_single_use(h: Harness) -> None:
    code = AuthCode(new_id(), new_id(), "urn:ietf:wg:oauth:2.0:oob", ["read", "follow"],
                    "challenge", "S256", NOW + 600_000)
    h.write(h.s.oauth.insert_code, "hash-1", code)
    assert h.write(h.s.oauth.take_code, "hash-1") == code
    assert h.write(h.s.oauth.take_code, "hash-1") is None
    assert h.write(h.s.oauth.take_code, "never-issued") is None
    plain = AuthCode(new_id(), new_id(), "https://x.example/cb", ["read"], None, None, NOW)
    h.write(h.s.oauth.insert_code, "hash-2", plain)
    assert h.write(h.s.oauth.take_code, "hash-2") == plain


def test_oauth_code_is_taken_once_even_by_two_writers(h: Harness, db_url: str) -> None:
    """Another process takes the code while our writer tries to: only one of them gets it."""
    code = AuthCode(new_id(), new_id(), "urn:ietf:wg:oauth:2.0:oob", ["read"], None, None, NOW)
    h.write(h.s.oauth.insert_code, "contested", code)
    other = Database(db_url)
    try:
        with other.write_engine.begin() as tx:
            assert h.s.oauth.take_code(tx, "contested") == code
            ours: list[AuthCode | None] = []
            thread = threading.Thread(
                target=lambda: ours.append(h.write(h.s.oauth.take_code, "contested")))
            thread.start()
            time.sleep(0.2)  # our writer now waits for the other transaction
        thread.join(10)
        assert ours == [None]
    finally:
        other.close()


def test_web_sessions(h: Harness) -> None:
    alice, bob = ids(2)
    for session_hash, account_id in (("a1", alice), ("a2", alice), ("a3", alice), ("b1", bob)):
        h.write(h.s.oauth.insert_session, session_hash, account_id, NOW)
    assert h.read(h.s.oauth.session_account, "a1") == alice
    assert h.read(h.s.oauth.session_account, "b1") == bob
    assert h.read(h.s.oauth.session_account, "nope") is None
    h.write(h.s.oauth.delete_session, "a1")
    h.write(h.s.oauth.delete_session, "a1")  # (ending it twice is fine)
    assert h.read(h.s.oauth.session_account, "a1") is None
    assert h.write(h.s.oauth.delete_sessions_of, alice, "a2") == ["a3"]  # all but this one
    assert [h.read(h.s.oauth.session_account, k) for k in ("a2", "a3", "b1")] == [
        alice, None, bob]
    assert h.write(h.s.oauth.delete_sessions_of, alice, None) == ["a2"]
    assert h.write(h.s.oauth.delete_sessions_of, alice, None) == []
    assert h.read(h.s.oauth.session_account, "a2") is None
    assert h.read(h.s.oauth.session_account, "b1") == bob
    # Sessions unused since before a moment are swept; a renewed one stays.
    h.write(h.s.oauth.insert_session, "old", alice, NOW - 10)
    h.write(h.s.oauth.renew_session, "b1", NOW + 5)
    assert h.write(h.s.oauth.delete_sessions_before, NOW) == 1
    assert h.read(h.s.oauth.session_account, "old") is None
    assert h.write(h.s.oauth.delete_sessions_before, NOW + 5) == 0
    assert h.read(h.s.oauth.session_account, "b1") == bob


def test_oauth_tokens(h: Harness) -> None:
    app_id, account_id = ids(2)
    user_token = Token(new_id(), app_id, account_id, ["read", "write"], NOW)
    app_token = Token(new_id(), app_id, None, ["read"], NOW)
    personal = Token(new_id(), None, account_id, ["read"], NOW)
    h.write(h.s.oauth.insert_token, user_token, "t-user", "r-user")
    h.write(h.s.oauth.insert_token, app_token, "t-app", None)
    h.write(h.s.oauth.insert_token, personal, "t-personal", None)  # a second NULL refresh hash
    assert h.read(h.s.oauth.token_by_hash, "t-user") == user_token
    assert h.read(h.s.oauth.token_by_hash, "t-app") == app_token
    assert h.read(h.s.oauth.token_by_hash, "t-personal") == personal
    assert h.read(h.s.oauth.token_by_hash, "r-user") is None
    assert h.read(h.s.oauth.token_by_refresh, "r-user") == user_token
    assert h.read(h.s.oauth.token_by_refresh, "t-user") is None
    # Authentication's read: the token with its app and account, in one statement.
    assert h.read(h.s.oauth.credentials, "t-user") == (user_token, None, None)  # (neither there)
    app = App(app_id, "Client", "https://client.example", ["urn:ietf:wg:oauth:2.0:oob",
              "https://client.example/cb"], ["read", "write"], "cid", "csecret", NOW)
    h.write(h.s.oauth.insert_app, app)
    assert h.read(h.s.oauth.credentials, "t-user") == (user_token, app, None)
    assert h.read(h.s.oauth.credentials, "t-app") == (app_token, app, None)
    assert h.read(h.s.oauth.credentials, "t-personal") == (personal, None, None)
    assert h.read(h.s.oauth.credentials, "r-user") is None
    with pytest.raises(IntegrityError):
        h.write(h.s.oauth.insert_token, Token(new_id(), app_id, None, ["read"], NOW), "t-app",
                None)
    assert h.read(h.s.oauth.token_in_force, user_token.id)
    h.write(h.s.oauth.revoke, user_token.id, NOW + 1)
    assert not h.read(h.s.oauth.token_in_force, user_token.id)
    assert h.read(h.s.oauth.token_in_force, app_token.id)
    assert not h.read(h.s.oauth.token_in_force, new_id())  # no such token
    assert h.read(h.s.oauth.token_by_hash, "t-user") is None
    assert h.read(h.s.oauth.credentials, "t-user") is None
    assert h.read(h.s.oauth.token_by_refresh, "r-user") is None
    assert h.read(h.s.oauth.token_by_hash, "t-app") == app_token


# -- home timeline (the SQL store, the in-memory one and the Redis one) ----------------------


def hold(h: Harness, *accounts: int) -> None:
    """Have the store hold these accounts' (empty) timelines: a store that fills timelines
    on read (in memory) takes writes only to those it holds."""
    for account in accounts:
        if h.read(h.s.home.missing, account):
            h.write(h.s.home.fill, account, [])


@HOME_STORES
def test_home_holds_a_timeline_unless_it_needs_a_fill(h: Harness) -> None:
    (account,) = ids(1)
    if h.s.home.fills_on_read:
        assert not h.s.home.holds(account)
        assert h.read(h.s.home.missing, account)
        assert not h.s.home.holds(account)  # (being filled)
        h.write(h.s.home.fill, account, [])
    else:
        assert not h.read(h.s.home.missing, account)
    assert h.s.home.holds(account)


@HOME_STORES
def test_home_timeline_add_and_page(h: Harness) -> None:
    a, b, author = ids(3)
    hold(h, a, b)
    entries = [TimelineEntry(new_id(), author) for _ in range(5)]
    reblog = TimelineEntry(new_id(), author, entries[0].status_id)
    for e in entries:
        h.write(h.s.home.add, [a, b], e)
    h.write(h.s.home.add, [a, b], entries[2])  # duplicates are ignored
    h.write(h.s.home.add, [], entries[2])
    h.write(h.s.home.add_many, a, [reblog, entries[1], reblog])
    h.write(h.s.home.add_many, a, [])
    newest = [reblog, *entries[::-1]]

    def page(account: int = a, **window: int) -> list[TimelineEntry]:
        return h.read(h.s.home.page, account, Page(**window))

    assert page() == newest
    assert page(b) == entries[::-1]
    assert page(limit=2) == newest[:2]
    assert page(max_id=entries[3].status_id, limit=2) == [entries[2], entries[1]]
    assert page(since_id=entries[3].status_id) == [reblog, entries[4]]
    assert page(min_id=entries[0].status_id, limit=2) == [entries[2], entries[1]]
    assert page(min_id=entries[0].status_id, max_id=entries[3].status_id) == [
        entries[2], entries[1]]


@HOME_STORES
def test_home_timeline_removal(h: Harness) -> None:
    a, b, x, y = ids(4)
    hold(h, a, b)
    ex = [TimelineEntry(new_id(), x) for _ in range(3)]
    ey = [TimelineEntry(new_id(), y) for _ in range(2)]
    h.write(h.s.home.add_many, a, ex + ey)
    h.write(h.s.home.add_many, b, ex + ey)
    h.write(h.s.home.remove_author, a, x)
    assert h.read(h.s.home.page, a, Page()) == ey[::-1]
    h.write(h.s.home.remove, [a, b], ey[0].status_id)
    h.write(h.s.home.remove, [], ey[1].status_id)
    assert h.read(h.s.home.page, a, Page()) == [ey[1]]
    assert h.read(h.s.home.page, b, Page()) == [ey[1], *ex[::-1]]


@HOME_STORES
def test_home_timeline_trim_and_cap(h: Harness) -> None:
    a, b, c, author = ids(4)
    hold(h, a, b, c)
    entries = [TimelineEntry(new_id(), author) for _ in range(6)]
    for account in (a, b):
        h.write(h.s.home.add_many, account, entries)
    h.write(h.s.home.add_many, c, entries[:2])
    h.write(h.s.home.trim, a, 4)
    assert h.read(h.s.home.page, a, Page()) == entries[:1:-1]
    h.write(h.s.home.trim, a, 10)
    assert len(h.read(h.s.home.page, a, Page())) == 4
    h.write(h.s.home.trim, c, 0)
    assert h.read(h.s.home.page, c, Page()) == []
    h.write(h.s.home.add_many, c, entries[:2])
    assert h.write(h.s.home.enforce_cap, 3) == 2  # a and b; c has only two
    for account in (a, b):
        assert h.read(h.s.home.page, account, Page()) == entries[:2:-1]
    assert len(h.read(h.s.home.page, c, Page())) == 2
    assert h.write(h.s.home.enforce_cap, 3) == 0


@HOME_STORES
def test_home_timeline_cap_in_steps(h: Harness) -> None:
    """A sweep of the cap in steps, each its own transaction, trims every timeline over it
    and ends; the SQL store's steps each look at some of the accounts."""
    author = new_id()
    accounts = sorted(ids(7))
    hold(h, *accounts)
    for n, account in enumerate(accounts):
        h.write(h.s.home.add_many, account,
                [TimelineEntry(new_id(), author) for _ in range(2 + n)])
    trimmed = steps = 0
    after: int | None = 0
    while after is not None:
        step = (partial(h.s.home.cap_step, rows=10) if isinstance(h.s.home, SqlHomeTimelineStore)
                else h.s.home.cap_step)
        more, after = h.write(step, 4, after)
        trimmed += more
        steps += 1
        assert steps < 20
    assert trimmed == 4  # the timelines of 5 to 8 entries
    assert [len(h.read(h.s.home.page, a, Page())) for a in accounts] == [2, 3, 4, 4, 4, 4, 4]
    assert steps > 1 if isinstance(h.s.home, SqlHomeTimelineStore) else steps == 1


@HOME_STORES
def test_home_timeline_orders_ids_beyond_double_precision(h: Harness) -> None:
    """Ids are 64-bit; a double (a Redis score) is exact only up to 2**53, where these would
    tie or swap."""
    a, author, other = ids(3)
    hold(h, a)
    near = [2**53, 2**53 + 1, 2**53 + 2, 2**62 + 1, BIG - 2, BIG - 1, BIG]
    entries = [TimelineEntry(i, author if i % 2 else other, None if i % 3 else 2**53 + 1)
               for i in near]
    h.write(h.s.home.add_many, a, entries[::2])
    for e in entries[1::2]:
        h.write(h.s.home.add, [a], e)

    def page(**window: int) -> list[int]:
        return [e.status_id for e in h.read(h.s.home.page, a, Page(**window))]

    assert h.read(h.s.home.page, a, Page()) == entries[::-1]
    assert page(max_id=BIG) == near[-2::-1]
    assert page(max_id=2**53 + 2) == [2**53 + 1, 2**53]
    assert page(since_id=BIG - 1) == [BIG]
    assert page(since_id=2**53, limit=2) == [BIG, BIG - 1]
    assert page(min_id=2**53, limit=2) == [2**53 + 2, 2**53 + 1]
    assert page(min_id=BIG - 2) == [BIG, BIG - 1]
    assert page(min_id=BIG) == [] and page(since_id=BIG) == []
    h.write(h.s.home.remove, [a], 2**53 + 1)
    h.write(h.s.home.remove, [a], BIG)
    assert page() == [BIG - 1, BIG - 2, 2**62 + 1, 2**53 + 2, 2**53]
    h.write(h.s.home.trim, a, 2)
    assert page() == [BIG - 1, BIG - 2]


@HOME_STORES
def test_home_timeline_store_keeps_the_epoch_it_was_given(h: Harness) -> None:
    assert h.read(h.s.home.epoch) is None
    hold(h, 1)
    h.write(h.s.home.set_epoch, 2**62 + 5)
    assert h.read(h.s.home.epoch) == 2**62 + 5
    h.write(h.s.home.add, [1], TimelineEntry(new_id(), 2))
    h.write(h.s.home.set_epoch, 7)
    assert h.read(h.s.home.epoch) == 7
    assert [e.author_id for e in h.read(h.s.home.page, 1, Page())] == [2]


def test_state_values(h: Harness) -> None:
    assert h.read(h.s.state.get, "answer") is None
    h.write(h.s.state.put, "answer", 42)
    h.write(h.s.state.put, "other", -1)
    h.write(h.s.state.put, "answer", 2**62)
    assert (h.read(h.s.state.get, "answer"), h.read(h.s.state.get, "other")) == (2**62, -1)
    assert h.write(h.s.state.claim, "first", 3) == 3
    assert h.write(h.s.state.claim, "first", 4) == 3  # (the first claim stands)
    assert h.read(h.s.state.get, "first") == 3


def test_mark_inactive_walks_the_accounts_by_id(h: Harness) -> None:
    made = sorted(ids(5))
    for n, account_id in enumerate(made):
        make_account(h, f"walker{n}", account_id=account_id, last_active_at=NOW)
    h.write(h.s.accounts.update, made[1], {"last_active_at": NOW - 50})  # already inactive
    assert h.write(h.s.accounts.mark_inactive, 0, 3, NOW - 10) == made[2]
    assert h.write(h.s.accounts.mark_inactive, made[2], 3, NOW - 10) == made[4]
    assert h.write(h.s.accounts.mark_inactive, made[4], 3, NOW - 10) is None
    found = h.read(h.s.accounts.by_ids, made)
    assert [found[a].last_active_at for a in made] == [
        NOW - 10, NOW - 50, NOW - 10, NOW - 10, NOW - 10]


@HOME_STORES
def test_home_timeline_writes_of_one_batch_apply_in_order(h: Harness) -> None:
    """Operations batched into one commit (the Redis store sends their writes together, just
    before it): each sees the ones before it, and a failed one's writes never land."""
    a, b, author = ids(3)
    hold(h, a, b)
    kept, removed, lost = (TimelineEntry(new_id(), author) for _ in range(3))

    def add(entry: TimelineEntry, *, fail: bool = False) -> Callable[[Tx], None]:
        def op(tx: Tx) -> None:
            h.s.home.add(tx, [a, b], entry)
            if fail:
                raise ValueError("no")
        return op

    def remove_then_read(tx: Tx) -> list[TimelineEntry]:
        h.s.home.remove(tx, [a, b], removed.status_id)
        h.s.home.add_many(tx, b, [lost])  # (written at once on Redis: the queue goes first)
        h.s.home.remove(tx, [b], lost.status_id)
        return h.s.home.page(tx, a, Page())

    for failing in (False, True):  # (one failure: the batch runs again, op by op)
        gate = Gate(h.db)
        futures = [h.db.submit(add(kept)), h.db.submit(add(removed))]
        if failing:
            futures.append(h.db.submit(add(lost, fail=True)))
        last = h.db.submit(remove_then_read)
        gate.release()
        assert futures[0].result(10) is None and futures[1].result(10) is None
        if failing:
            with pytest.raises(ValueError):
                futures[2].result(10)
        assert last.result(10) == [kept]
        assert h.read(h.s.home.page, a, Page()) == [kept]
        assert h.read(h.s.home.page, b, Page()) == [kept]


# -- jobs ------------------------------------------------------------------------------------


def test_jobs_enqueue_and_due(h: Harness, db: Database) -> None:
    events: list[list[object]] = []
    db.on_commit(events.append)
    first = h.write(h.s.jobs.enqueue, "fanout", {"status_id": str(BIG), "cursor": 0}, NOW)
    later = h.write(h.s.jobs.enqueue, "backfill", {"n": [1, 2]}, NOW + 1000)
    second = h.write(h.s.jobs.enqueue, "unfanout", {}, NOW - 5)
    assert events == [[JOBS_ENQUEUED]] * 3
    assert first < later < second
    due = h.read(h.s.jobs.due, NOW, 10)
    assert [(j.id, j.kind, j.payload, j.attempts) for j in due] == [
        (first, "fanout", {"status_id": str(BIG), "cursor": 0}, 0),
        (second, "unfanout", {}, 0)]
    assert [j.id for j in h.read(h.s.jobs.due, NOW + 1000, 10)] == [first, later, second]
    assert [j.id for j in h.read(h.s.jobs.due, NOW + 1000, 2)] == [first, later]
    assert h.read(h.s.jobs.pending_count) == 3
    h.write(h.s.jobs.save_progress, first, {"status_id": str(BIG), "cursor": 42})
    assert h.read(h.s.jobs.due, NOW, 1)[0].payload == {"status_id": str(BIG), "cursor": 42}
    h.write(h.s.jobs.finish, first)
    assert [j.id for j in h.read(h.s.jobs.due, NOW, 10)] == [second]
    assert h.read(h.s.jobs.pending_count) == 2


def test_jobs_claim_leases(h: Harness, db_url: str) -> None:
    first = h.write(h.s.jobs.enqueue, "fanout", {"n": 1}, NOW)
    second = h.write(h.s.jobs.enqueue, "fanout", {"n": 2}, NOW)
    h.write(h.s.jobs.enqueue, "fanout", {"n": 3}, NOW + 10_000)  # not due yet
    h.write(h.s.jobs.alive, WORKER, NOW, NOW + 60_000)
    assert [j.id for j in h.write(h.s.jobs.claim, NOW, 1, 1000, WORKER)] == [first]
    # Leased: another claim before the lease ends skips it.
    assert [j.id for j in h.write(h.s.jobs.claim, NOW + 10, 10, 1000, WORKER)] == [second]
    assert h.write(h.s.jobs.claim, NOW + 20, 10, 1000, OTHER_WORKER) == []
    # A worker alive but stuck: its lease runs out and the job is claimed again (at least
    # once), the lost run counted as a failed attempt.
    h.write(h.s.jobs.alive, OTHER_WORKER, NOW, NOW + 60_000)
    again = h.write(h.s.jobs.claim, NOW + 1010, 10, 1000, OTHER_WORKER)
    assert [(j.id, j.attempts) for j in again] == [(first, 1), (second, 1)]
    # Saving progress releases the lease so the next step can run at once (not a failure).
    h.write(h.s.jobs.save_progress, first, {"n": 1, "after": 5})
    assert [(j.payload, j.attempts)
            for j in h.write(h.s.jobs.claim, NOW + 1011, 10, 1000, OTHER_WORKER)] == [
        ({"n": 1, "after": 5}, 1)]


def test_jobs_of_a_holder_no_longer_alive_are_claimed_before_their_lease_ends(
        h: Harness) -> None:
    job = h.write(h.s.jobs.enqueue, "fanout", {"n": 1}, NOW)
    h.write(h.s.jobs.alive, WORKER, NOW, NOW + 500)
    assert [j.id for j in h.write(h.s.jobs.claim, NOW, 10, 60_000, WORKER)] == [job]
    h.write(h.s.jobs.alive, WORKER, NOW + 400, NOW + 900)  # it beats: still its job
    assert h.write(h.s.jobs.claim, NOW + 800, 10, 60_000, OTHER_WORKER) == []
    # Silent past its time (killed): the minute-long lease no longer holds the job.
    [again] = h.write(h.s.jobs.claim, NOW + 900, 10, 60_000, OTHER_WORKER)
    assert (again.id, again.attempts) == (job, 1)
    # Now the other worker's: the first, back and beating again, does not take it too.
    h.write(h.s.jobs.alive, OTHER_WORKER, NOW + 900, NOW + 5_000)
    h.write(h.s.jobs.alive, WORKER, NOW + 1_000, NOW + 5_000)
    assert h.write(h.s.jobs.claim, NOW + 1_000, 10, 60_000, WORKER) == []


def _taken_by_two_writers_at_once(h: Harness, db_url: str,
                                  take: Callable[[Tx], list[Job]]) -> list[list[int]]:
    """40 due jobs; this harness's writer and another process's each run ``take`` until it
    comes back empty, at the same time; the job ids each got."""
    from roost.storage.database import Database as Other

    for n in range(40):
        h.write(h.s.jobs.enqueue, "fanout", {"n": n}, NOW)
    other = Other(db_url)
    results: list[list[int]] = [[], []]

    def take_all(db: Database, into: list[int]) -> None:
        while got := db.write_sync(take):
            into.extend(j.id for j in got)

    try:
        threads = [threading.Thread(target=take_all, args=(d, r))
                   for d, r in ((h.db, results[0]), (other, results[1]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.close()
    return results


def test_jobs_claim_is_exclusive_between_processes(h: Harness, db_url: str) -> None:
    """Two writers claiming at once never get the same job (PostgreSQL: SKIP LOCKED)."""
    h.write(h.s.jobs.alive, WORKER, NOW, NOW + 60_000)
    mine, theirs = _taken_by_two_writers_at_once(
        h, db_url, lambda tx: h.s.jobs.claim(tx, NOW, 3, 60_000, WORKER))
    assert not set(mine) & set(theirs)
    assert len(mine) + len(theirs) == 40


def test_jobs_take_is_exclusive_between_relays(h: Harness, db_url: str) -> None:
    """Two relays taking at once, each holding its rows a moment (its XADDs), never take the
    same job (PostgreSQL: SKIP LOCKED)."""

    def relay(tx: Tx) -> list[Job]:
        taken = h.s.jobs.take(tx, NOW, 3)
        time.sleep(0.005)
        return taken

    mine, theirs = _taken_by_two_writers_at_once(h, db_url, relay)
    assert not set(mine) & set(theirs)
    assert len(mine) + len(theirs) == 40


def test_jobs_retry_dead_and_revive(h: Harness) -> None:
    job = h.write(h.s.jobs.enqueue, "fanout", {"x": 1}, NOW)
    other = h.write(h.s.jobs.enqueue, "fanout", {"x": 2}, NOW)
    h.write(h.s.jobs.retry, job, "boom", NOW + 500, False)
    assert [j.id for j in h.read(h.s.jobs.due, NOW, 10)] == [other]
    retried = h.read(h.s.jobs.due, NOW + 500, 10)[0]
    assert (retried.id, retried.attempts) == (job, 1)
    h.write(h.s.jobs.retry, job, "x" * 5000, NOW, True)
    assert [j.id for j in h.read(h.s.jobs.due, NOW + 10_000, 10)] == [other]
    assert h.read(h.s.jobs.pending_count) == 1
    dead = h.read(h.s.jobs.dead)
    assert [(j.id, j.attempts, j.payload) for j, _ in dead] == [(job, 2, {"x": 1})]
    assert dead[0][1] == "x" * 2000
    assert h.write(h.s.jobs.revive, other, NOW) is False  # not dead
    assert h.write(h.s.jobs.revive, new_id(), NOW) is False
    assert h.write(h.s.jobs.revive, job, NOW + 1) is True
    assert h.write(h.s.jobs.revive, job, NOW + 1) is False
    assert h.read(h.s.jobs.dead) == []
    revived = h.read(h.s.jobs.due, NOW + 1, 10)
    assert [(j.id, j.attempts) for j in revived] == [(job, 0), (other, 0)]
    assert h.read(h.s.jobs.pending_count) == 2
    row = h.read(lambda tx: tx.execute(select(jobs.c.dead, jobs.c.last_error)
                                       .where(jobs.c.id == job)).one())
    assert row[0] is False and row[1] == "x" * 2000


def test_jobs_taken_by_a_relay_and_buried_when_dead(h: Harness) -> None:
    first = h.write(h.s.jobs.enqueue, "fanout", {"n": 1}, NOW)
    second = h.write(h.s.jobs.enqueue, "fanout", {"n": 2}, NOW)
    h.write(h.s.jobs.enqueue, "fanout", {"n": 3}, NOW + 10_000)  # not due yet
    dead = h.write(h.s.jobs.enqueue, "fanout", {"n": 4}, NOW)
    h.write(h.s.jobs.retry, dead, "boom", NOW, True)

    def relay_fails(tx: Tx) -> None:
        assert h.s.jobs.take(tx, NOW, 10)
        raise RuntimeError("XADD failed")

    with pytest.raises(RuntimeError):
        h.write(relay_fails)  # rolled back: the rows stay in the outbox
    assert [j.id for j in h.write(h.s.jobs.take, NOW, 1)] == [first]
    taken = h.write(h.s.jobs.take, NOW, 10)
    assert [(j.id, j.payload, j.attempts) for j in taken] == [(second, {"n": 2}, 0)]
    assert h.write(h.s.jobs.take, NOW, 10) == []
    assert h.read(h.s.jobs.pending_count) == 1  # the one not due yet
    # The broker gave up on the second: it comes back as a dead job.
    h.write(h.s.jobs.bury, Job(second, "fanout", {"n": 2, "after": 7}, 8, "1-0"), "y" * 3000)
    buried = {j.id: (j.payload, j.attempts, error) for j, error in h.read(h.s.jobs.dead)}
    assert buried == {dead: ({"n": 4}, 1, "boom"),
                      second: ({"n": 2, "after": 7}, 8, "y" * 2000)}
    assert h.read(h.s.jobs.pending_count) == 1
    assert h.write(h.s.jobs.revive, second, NOW) is True
    assert [(j.id, j.attempts) for j in h.write(h.s.jobs.take, NOW, 10)] == [(second, 0)]


def test_a_domain_style_write_is_atomic(h: Harness, db: Database) -> None:
    """A follow as the domain writes it (edge, counters, event, job) commits together or not at
    all, on both engines, even when it fails after its last statement."""
    a, b = ids(2)

    def follow(tx: Tx, fail: bool) -> None:
        assert h.s.follows.insert(tx, a, b, new_id(), NOW, True, False)
        h.s.counters.add(tx, b, a % 16, followers=1)
        h.s.counters.add(tx, a, b % 16, following=1)
        h.s.follows.record_event(tx, b, a, 1, new_id(), NOW)
        h.s.jobs.enqueue(tx, "backfill", {"a": a, "b": b}, NOW)
        if fail:
            raise RuntimeError("after everything")

    bystander = new_id()
    alongside = db.submit(lambda tx: h.s.counters.add(tx, bystander, 0, statuses=1))
    failing = db.submit(lambda tx: follow(tx, True))
    with pytest.raises(RuntimeError):
        failing.result(10)
    alongside.result(10)
    assert h.read(h.s.counters.totals, [bystander]) == {bystander: (0, 0, 1)}
    assert h.read(h.s.follows.get, a, b) is None
    assert h.read(h.s.counters.totals, [a, b]) == {}
    assert h.read(h.s.jobs.pending_count) == 0
    assert h.sql("SELECT count(*) FROM follow_events")[0][0] == 0
    h.write(follow, False)
    assert h.read(h.s.counters.totals, [a, b]) == {a: (0, 1, 0), b: (1, 0, 0)}
    assert h.read(h.s.jobs.pending_count) == 1


def test_every_store_method_is_covered_here() -> None:
    """New store methods get a test in this file, so they are checked on both engines."""
    source = Path(__file__).read_text()
    missing = []
    for store in dataclasses.fields(Stores):
        protocol = typing.get_type_hints(Stores)[store.name]
        for name in dir(protocol):
            if not name.startswith("_") and not re.search(
                    rf"\bh\.s\.{store.name}\.{name}\b", source):
                missing.append(f"{store.name}.{name}")
    assert not missing, f"store methods without a test in {Path(__file__).name}: {missing}"


def test_credentials_carry_the_account_with_its_counts(h: Harness) -> None:
    owner = make_account(h, "owner")
    other = make_account(h, "other")
    h.write(h.s.counters.add, owner.id, 0, followers=2, statuses=1)
    h.write(h.s.counters.add, owner.id, 5, followers=3, following=4)
    h.write(h.s.counters.add, other.id, 0, followers=9)
    token = Token(new_id(), None, owner.id, ["read"], NOW)
    h.write(h.s.oauth.insert_token, token, "t-owner", None)
    found = h.read(h.s.oauth.credentials, "t-owner")
    assert found is not None
    assert found[2] == h.read(h.s.accounts.by_ids, [owner.id])[owner.id]
    assert (found[2].followers_count, found[2].following_count,
            found[2].statuses_count) == (5, 4, 1)
    quiet = make_account(h, "quiet")  # no counter rows yet
    h.write(h.s.oauth.insert_token, Token(new_id(), None, quiet.id, ["read"], NOW), "t-quiet",
            None)
    found = h.read(h.s.oauth.credentials, "t-quiet")
    assert found is not None and found[2] is not None and found[2].followers_count == 0
