"""Test data written straight into a target's database before the server starts.

Registering thousands of accounts over HTTP would measure argon2, not Roost, so accounts,
personal tokens and follow edges are bulk-loaded here (``roost.storage.bulk.BulkLoader``, the
loader `roost seed` uses: COPY on PostgreSQL, large ``executemany`` transactions on SQLite)
into the same tables the stores write, with the same values (SqlAccountStore.insert,
OAuthService._insert_token and FollowService._add_edge). The follow edges keep every counter
and follow event consistent, so `roost check` passes on the result; they skip only the side
effects a new follow triggers (the follow notification and the backfill job, a no-op for an
author without posts), and the follow events are folded into the follower-history rollups
before the server starts, so it has no history backlog to work through. Posts go through the
real PostService, and their fan-out jobs are run before the server starts.

Fixture ids are allocated in increasing order from two minutes before the fixture opened: they
sort before anything the server creates, and a million of them span 15 ms of id space.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Table

from bench.backends import Target, pending_jobs
from bench.harness import log
from roost.clock import now_ms
from roost.domain.models import Page, TimelineEntry
from roost.domain.oauth import _digest
from roost.domain.posts import NewPost
from roost.ids import bucket_of, id_at_ms
from roost.runtime import Roost
from roost.storage.bulk import BulkLoader
from roost.storage.database import Tx
from roost.storage.schema import (
    account_counters,
    accounts,
    follow_events,
    follows,
    home_timeline,
    tokens,
)
from roost.storage.sql.accounts import SqlCounterStore

SCOPES = "read write follow"


def _defaults(table: Table) -> dict[str, Any]:
    """Every column's Python-side scalar default (None where it has none)."""
    out: dict[str, Any] = {}
    for column in table.c:
        default = column.default
        out[column.name] = getattr(default, "arg", None) if default is not None and \
            getattr(default, "is_scalar", False) else None
    return out


class Fixture:
    """A Roost opened on ``target`` for setting up data; close it before serving."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.settings = target.settings()
        self.roost = Roost(self.settings)
        self.roost.start()
        self.shards = self.settings.counter_shards
        self.loader = BulkLoader(self.roost.db)
        self._ids = itertools.count(id_at_ms(now_ms() - 120_000))
        self._counter_rows: set[tuple[int, int]] = set()
        self._events = False

    @classmethod
    def embedded(cls, data_dir: Path, synchronous: str) -> Fixture:
        """A fixture on an embedded (SQLite) data dir."""
        return cls(Target(data_dir.name, data_dir, synchronous))

    @property
    def db_path(self) -> Path:
        """The SQLite database file (embedded targets only)."""
        return (self.settings.data_dir / "roost.db").resolve()

    def close(self) -> None:
        if self._events:  # fold the follow events into rollups now, not while measuring
            log(f"{self.target.name}: rolling the follow events up")
            asyncio.run(self.roost.stats.roll_up())
        self.analyze()
        self.roost.close()

    def analyze(self) -> None:
        """Refresh PostgreSQL's planner statistics after a bulk load, as autovacuum would
        within a minute or so: without them the first queries plan for empty tables."""
        if not self.roost.db.is_sqlite:
            self.roost.db.write_sync(lambda tx: tx.exec_driver_sql("ANALYZE"))

    def __enter__(self) -> Fixture:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def ids(self, count: int) -> list[int]:
        return [next(self._ids) for _ in range(count)]

    def accounts(self, prefix: str, count: int, *, pulled: bool = False) -> list[int]:
        """``count`` unlocked, active accounts named ``<prefix><n>`` without passwords or
        e-mail addresses; their ids. ``pulled``: above the fan-out pull threshold."""
        at = now_ms()
        ids = self.ids(count)
        base = _defaults(accounts)
        base.update({"locked": False, "bot": False, "discoverable": True, "email": None,
                     "password_hash": None, "is_admin": False, "locale": "en",
                     "pulled": pulled, "has_unpushed": pulled, "created_at": at,
                     "last_status_at": None, "last_active_at": at})  # active now, as
        columns = list(base)                                         # registration leaves them
        at_id, at_name, at_lower = (columns.index(c) for c in ("id", "username",
                                                               "username_lower"))
        template = [base[c] for c in columns]

        def rows() -> Iterator[list[Any]]:
            for n, account_id in enumerate(ids):
                row = template.copy()
                row[at_id] = account_id
                row[at_name] = row[at_lower] = f"{prefix}{n}"
                yield row

        self.loader.insert(accounts, columns, rows)
        return ids

    def tokens(self, account_ids: Sequence[int]) -> list[str]:
        """A personal access token ("read write follow") for each account, in order."""
        at = now_ms()
        secrets_out = [secrets.token_urlsafe(32) for _ in account_ids]
        ids = self.ids(len(account_ids))
        self.loader.insert(
            tokens, ["id", "token_hash", "refresh_hash", "app_id", "account_id", "scopes",
                     "created_at", "revoked_at"],
            lambda: ((token_id, _digest(secret), None, None, account_id, SCOPES, at, None)
                     for token_id, account_id, secret in zip(ids, account_ids, secrets_out,
                                                             strict=True)))
        return secrets_out

    def follow_edges(self, pairs: Iterable[tuple[int, int]]) -> int:
        """Insert (follower, target) edges with their follow events and sharded counters,
        as FollowService._add_edge writes them; returns how many."""
        pairs = list(pairs)
        ids = self.ids(len(pairs))
        counts: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
        shards = self.shards
        for follower, target in pairs:
            counts[(target, bucket_of(follower, shards))][0] += 1
            counts[(follower, bucket_of(target, shards))][1] += 1
        self.loader.insert(
            follows, ["account_id", "target_account_id", "id", "show_reblogs", "notify",
                      "created_at"],
            lambda: ((follower, target, edge_id, True, False, edge_id >> 16)
                     for (follower, target), edge_id in zip(pairs, ids, strict=True)))
        self.loader.insert(
            follow_events, ["target_account_id", "id", "account_id", "delta", "created_at"],
            lambda: ((target, event_id, follower, 1, event_id >> 16)
                     for (follower, target), event_id in zip(pairs, ids, strict=True)))
        fresh = [(key, fg) for key, fg in counts.items() if key not in self._counter_rows]
        seen = [(key, fg) for key, fg in counts.items() if key in self._counter_rows]
        self.loader.insert(
            account_counters, ["account_id", "shard", "followers", "following", "statuses"],
            lambda: ((account_id, shard, f, g, 0) for (account_id, shard), (f, g) in fresh))
        if seen:
            store = SqlCounterStore()

            def bump(tx: Tx) -> None:
                for (account_id, shard), (f, g) in seen:
                    store.add(tx, account_id, shard, followers=f, following=g)

            self.roost.db.write_sync(bump)
        self._counter_rows.update(counts)
        self._events = self._events or bool(pairs)
        return len(pairs)

    def home_entries(self, rows: Iterable[tuple[int, int, int]]) -> int:
        """(account, status, author) rows straight into the SQL ``home_timeline`` table, for
        measuring its size (the statuses need not exist)."""
        entries = list(rows)  # (the loader may ask for the rows twice)
        return self.loader.insert(home_timeline, ["account_id", "status_id", "author_id",
                                                  "reblog_of_id"],
                                  lambda: ((a, s, w, None) for a, s, w in entries))

    def timeline_entries(self, account_id: int, entries: Sequence[tuple[int, int]]) -> None:
        """(status, author) entries into one home timeline through the configured store."""
        home = self.roost.stores.home
        page = [TimelineEntry(status, author, None) for status, author in entries]
        self.roost.db.write_sync(lambda tx: home.add_many(tx, account_id, page))

    def home_page(self, account_id: int, limit: int) -> list[TimelineEntry]:
        home = self.roost.stores.home
        return self.roost.db.read_sync(lambda tx: home.page(tx, account_id, Page(limit=limit)))

    def post(self, posts: Sequence[tuple[int, str]], parallel: int = 64) -> list[int]:
        """Publish (author, text) posts through PostService (content rendering, counters,
        outbox job), ``parallel`` at a time so they share commits; then run every fan-out job.
        Returns the status ids in order."""

        async def publish() -> list[int]:
            out: list[int] = []
            for start in range(0, len(posts), parallel):
                views = await asyncio.gather(*(
                    self.roost.posts.create(author, NewPost(text=text))
                    for author, text in posts[start:start + parallel]))
                out.extend(v.status.id for v in views)
            return out

        ids = asyncio.run(publish())
        self.roost.jobs.run_due_sync()
        return ids

    def pending_jobs(self) -> int:
        return pending_jobs(self.roost)
