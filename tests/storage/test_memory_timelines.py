"""What only the in-memory home timeline store does: it lacks every timeline until the
first read fills it, and keeps what is written while the fill reads."""

from __future__ import annotations

import threading

from sqlalchemy import event

from roost.domain.models import Page, TimelineEntry
from roost.ids import new_id
from roost.storage.database import Database, Tx
from roost.storage.memory.timelines import MemoryHomeTimelineStore


def test_writes_to_a_timeline_not_held_are_left_to_its_fill(db: Database) -> None:
    store = MemoryHomeTimelineStore(cap=800)
    author = new_id()
    dropped = TimelineEntry(new_id(), author)
    db.write_sync(lambda tx: store.add(tx, [1, 2], dropped))
    db.write_sync(lambda tx: store.add_many(tx, 1, [dropped]))
    assert store.held() == (0, 0)
    assert db.read_sync(lambda tx: store.page(tx, 1, Page())) == []
    assert db.read_sync(lambda tx: store.missing(tx, 1))
    db.write_sync(lambda tx: store.fill(tx, 1, [dropped]))
    assert not db.read_sync(lambda tx: store.missing(tx, 1))
    assert db.read_sync(lambda tx: store.page(tx, 1, Page())) == [dropped]
    later = TimelineEntry(new_id(), author)
    db.write_sync(lambda tx: store.fill(tx, 1, [later]))  # (filled already: nothing)
    assert db.read_sync(lambda tx: store.page(tx, 1, Page())) == [dropped]
    assert store.held() == (1, 1)


def test_what_is_written_while_a_fill_reads_is_neither_lost_nor_back(db: Database) -> None:
    """Between ``missing`` and ``fill`` (the database being read): a post delivered is kept,
    a post deleted and an author unfollowed stay out although the fill read them."""
    store = MemoryHomeTimelineStore(cap=3)
    kept, unfollowed = new_id(), new_id()
    old = TimelineEntry(new_id(), kept)
    deleted = TimelineEntry(new_id(), kept)
    theirs = TimelineEntry(new_id(), unfollowed)
    assert db.read_sync(lambda tx: store.missing(tx, 7))
    assert db.read_sync(lambda tx: store.missing(tx, 7))  # (a second reader fills it too)
    delivered = TimelineEntry(new_id(), kept, old.status_id)  # a reblog, posted last
    db.write_sync(lambda tx: store.add(tx, [7], delivered))
    db.write_sync(lambda tx: store.remove(tx, [7], deleted.status_id))
    db.write_sync(lambda tx: store.remove_author(tx, 7, unfollowed))
    read_before = [theirs, deleted, old]  # newest first, as the database answered
    db.write_sync(lambda tx: store.fill(tx, 7, read_before))
    assert db.read_sync(lambda tx: store.page(tx, 7, Page())) == [delivered, old]
    db.write_sync(lambda tx: store.add(tx, [7], theirs))  # (after the fill: as any write)
    assert db.read_sync(lambda tx: store.page(tx, 7, Page())) == [delivered, theirs, old]


def test_a_fill_and_writes_keep_the_newest_within_the_cap(db: Database) -> None:
    """Pages show the newest ``cap`` entries; fan-out trims a timeline only once it is a
    slack (an eighth of the cap, at least one) past it, the sweep every minute exactly."""
    store = MemoryHomeTimelineStore(cap=3)
    author = new_id()
    entries = [TimelineEntry(new_id(), author, new_id() if n % 2 else None) for n in range(6)]
    assert db.read_sync(lambda tx: store.missing(tx, 1))
    db.write_sync(lambda tx: store.fill(tx, 1, entries[:4][::-1]))
    assert db.read_sync(lambda tx: store.page(tx, 1, Page())) == entries[1:4][::-1]
    for entry in entries[4:]:
        db.write_sync(lambda tx, e=entry: store.add(tx, [1], e))
    assert db.read_sync(lambda tx: store.page(tx, 1, Page())) == entries[3:][::-1]
    db.write_sync(lambda tx: store.add(tx, [1], entries[0]))  # older than all it keeps
    assert db.read_sync(lambda tx: store.page(tx, 1, Page())) == entries[3:][::-1]
    assert store.held() == (1, 4)  # (fan-out trims only past the cap and a slack of one)
    assert db.write_sync(lambda tx: store.cap_step(tx, 3, 0)) == (1, None)  # (every minute)
    assert store.held() == (1, 3)
    assert db.read_sync(lambda tx: store.page(tx, 1, Page())) == entries[3:][::-1]


def test_writes_apply_after_the_commit_so_a_fill_cannot_miss_them(db: Database) -> None:
    """A post pushed in its own transaction to a timeline not yet held, while that timeline's
    first read fills it from the database just before the post commits: applied before the
    commit, the push would find nothing to write to and the fill nothing to read."""
    store = MemoryHomeTimelineStore(cap=800)
    entry = TimelineEntry(new_id(), new_id())
    filled: list[bool] = []

    def fill_before_the_commit(_conn: object) -> None:
        if filled:
            return

        def first_read(tx: Tx) -> None:
            filled.append(store.missing(tx, 7))
            store.fill(tx, 7, [])  # (the database does not have the post yet)

        reader = threading.Thread(target=db.read_sync, args=(first_read,))
        reader.start()
        reader.join()

    event.listen(db.write_engine, "commit", fill_before_the_commit)
    try:
        db.write_sync(lambda tx: store.add(tx, [7], entry))
    finally:
        event.remove(db.write_engine, "commit", fill_before_the_commit)
    assert filled == [True]
    assert db.read_sync(lambda tx: store.page(tx, 7, Page())) == [entry]


def test_a_read_in_the_writing_transaction_sees_its_writes(db: Database) -> None:
    store = MemoryHomeTimelineStore(cap=800)
    db.read_sync(lambda tx: (store.missing(tx, 7), store.fill(tx, 7, [])))
    entry = TimelineEntry(new_id(), new_id())

    def add_then_read(tx: Tx) -> list[TimelineEntry]:
        store.add(tx, [7], entry)
        return store.page(tx, 7, Page())

    assert db.write_sync(add_then_read) == [entry]


def test_a_timeline_unread_for_a_while_is_forgotten_and_filled_again(db: Database) -> None:
    """The sweep (``enforce_cap``) forgets timelines unread for ``forget_after``: fan-out
    skips them from then on, and the next read fills them again; one being filled stays."""
    now = [0.0]
    store = MemoryHomeTimelineStore(cap=800, forget_after=60, clock=lambda: now[0])
    entry = TimelineEntry(new_id(), new_id())
    for account_id in (1, 2):
        db.read_sync(lambda tx, a=account_id: (store.missing(tx, a), store.fill(tx, a, [entry])))
    assert db.read_sync(lambda tx: store.missing(tx, 3))  # (its fill still reading)
    now[0] = 50.0
    assert db.read_sync(lambda tx: store.page(tx, 2, Page())) == [entry]  # read: kept
    now[0] = 100.0
    db.write_sync(lambda tx: store.enforce_cap(tx, 800))
    assert store.held() == (2, 1)  # 1 forgotten; 2 read 50 s ago; 3 being filled
    assert db.read_sync(lambda tx: store.page(tx, 1, Page())) == []
    skipped = TimelineEntry(new_id(), entry.author_id)
    db.write_sync(lambda tx: store.add(tx, [1, 2], skipped))
    assert db.read_sync(lambda tx: store.page(tx, 2, Page())) == [skipped, entry]
    assert db.read_sync(lambda tx: store.missing(tx, 1))
    db.write_sync(lambda tx: store.fill(tx, 1, [skipped, entry]))  # (read from the database)
    assert db.read_sync(lambda tx: store.page(tx, 1, Page())) == [skipped, entry]
    now[0] = 1_000.0
    db.write_sync(lambda tx: store.fill(tx, 3, []))
    db.write_sync(lambda tx: store.enforce_cap(tx, 800))
    assert store.held() == (0, 0)
