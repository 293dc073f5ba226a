"""Test data written straight into a data dir before the server starts.

Registering thousands of accounts over HTTP would measure argon2, not Roost, so accounts,
personal tokens and follow edges are bulk-inserted here into the same tables the stores
write, with the same values (SqlAccountStore.insert, OAuthService._insert_token and
FollowService._add_edge). The follow edges keep every counter and follow event consistent, so
`roost check` passes on the result; they skip only the side effects a new follow triggers
(the follow notification and the backfill job, a no-op for an author without posts). Posts go
through the real PostService, and their fan-out jobs are run before the server starts.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy.dialects import sqlite

from roost.clock import now_ms
from roost.domain.oauth import _digest
from roost.domain.posts import NewPost
from roost.ids import new_id
from roost.runtime import Roost
from roost.settings import Settings
from roost.storage.database import Tx
from roost.storage.schema import account_counters, accounts, follow_events, follows, tokens

SCOPES = "read write follow"
CHUNK = 5_000


class Fixture:
    """A Roost opened on ``data_dir`` for setting up data; close it before serving."""

    def __init__(self, data_dir: Path, synchronous: str) -> None:
        self.settings = Settings(data_dir=data_dir, sqlite_synchronous=synchronous)  # type: ignore[arg-type]
        self.roost = Roost(self.settings)
        self.roost.start()
        self.shards = self.settings.counter_shards

    @property
    def db_path(self) -> Path:
        return (self.settings.data_dir / "roost.db").resolve()

    def close(self) -> None:
        self.roost.close()

    def _write_chunks(self, statement: object, rows: Sequence[dict[str, object]]) -> None:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            self.roost.db.write_sync(lambda tx, c=chunk: tx.execute(statement, c))  # type: ignore[misc]

    def accounts(self, prefix: str, count: int) -> list[int]:
        """``count`` unlocked, active accounts named ``<prefix><n>`` without passwords; their
        ids."""
        at = now_ms()
        rows: list[dict[str, object]] = []
        for n in range(count):
            username = f"{prefix}{n}"
            rows.append({
                "id": new_id(), "username": username, "username_lower": username.lower(),
                "display_name": "", "note": "", "fields": "[]", "locked": False, "bot": False,
                "discoverable": True, "email": f"{username}@bench.invalid",
                "password_hash": None, "is_admin": False, "locale": "en", "pulled": False,
                "has_unpushed": False, "created_at": at, "last_status_at": None,
            })
            if "last_active_at" in accounts.c:  # active now, as registration leaves them:
                rows[-1]["last_active_at"] = at  # fan-out skips inactive followers
        self._write_chunks(accounts.insert(), rows)
        return [int(r["id"]) for r in rows]  # type: ignore[call-overload]

    def tokens(self, account_ids: Sequence[int]) -> list[str]:
        """A personal access token ("read write follow") for each account, in order."""
        at = now_ms()
        secrets_out = [secrets.token_urlsafe(32) for _ in account_ids]
        rows: list[dict[str, object]] = [
            {"id": new_id(), "token_hash": _digest(secret), "refresh_hash": None,
             "app_id": None, "account_id": account_id, "scopes": SCOPES, "created_at": at,
             "revoked_at": None}
            for account_id, secret in zip(account_ids, secrets_out, strict=True)
        ]
        self._write_chunks(tokens.insert(), rows)
        return secrets_out

    def follow_edges(self, pairs: Iterable[tuple[int, int]]) -> int:
        """Insert (follower, target) edges with their follow events and sharded counters,
        as FollowService._add_edge writes them; returns how many."""
        at = now_ms()
        edge_rows: list[dict[str, object]] = []
        event_rows: list[dict[str, object]] = []
        counts: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
        for follower, target in pairs:
            edge_rows.append({"account_id": follower, "target_account_id": target,
                              "id": new_id(), "show_reblogs": True, "notify": False,
                              "created_at": at})
            event_rows.append({"target_account_id": target, "id": new_id(),
                               "account_id": follower, "delta": 1, "created_at": at})
            counts[(target, follower % self.shards)][0] += 1
            counts[(follower, target % self.shards)][1] += 1
        self._write_chunks(follows.insert(), edge_rows)
        self._write_chunks(follow_events.insert(), event_rows)
        upsert = sqlite.insert(account_counters)
        upsert = upsert.on_conflict_do_update(
            index_elements=["account_id", "shard"],
            set_={"followers": account_counters.c.followers + upsert.excluded.followers,
                  "following": account_counters.c.following + upsert.excluded.following},
        )
        counter_rows: list[dict[str, object]] = [
            {"account_id": account_id, "shard": shard, "followers": f, "following": g,
             "statuses": 0}
            for (account_id, shard), (f, g) in counts.items()
        ]
        self._write_chunks(upsert, counter_rows)
        return len(edge_rows)

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
        return self.roost.db.read_sync(lambda tx: self.roost.stores.jobs.pending_count(tx))

    def read(self, sql: str, *args: object) -> int:
        def query(tx: Tx) -> int:
            return int(tx.exec_driver_sql(sql, args).scalar() or 0)

        return self.roost.db.read_sync(query)
