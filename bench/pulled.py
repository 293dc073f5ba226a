"""The read-time merge of a celebrity's posts: one home read's pulled query, against the
number of the celebrity's unpushed posts.

    .venv/bin/python -m bench.pulled [--posts 20000] [--engine sqlite|postgresql]

Every home read of a follower of a pulled (celebrity) account asks ``StatusStore.pulled`` for
the newest unpushed posts of the pulled accounts it follows, and a celebrity keeps posting
unpushed for as long as it stays above the threshold. Loads one celebrity with ``--posts``
unpushed posts, an ordinary pulled account with a few, and a reader following both, then
times the first page (limit 20) and a page deep in the history (``max_id``), and prints one
JSON object. The ceiling beside it is a single primary-key read on the same engine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from sqlalchemy import select

from bench.backends import migrated_database
from roost.domain.models import Page
from roost.storage.database import Database, Tx
from roost.storage.schema import accounts, follows, statuses
from roost.storage.stores import sql_stores

READER, STAR, OTHER = 1, 2, 3
FIRST_STATUS = 1_000_000


def _account(account_id: int, name: str, pulled: bool) -> dict[str, Any]:
    return {"id": account_id, "username": name, "username_lower": name, "display_name": "",
            "note": "", "fields": "[]", "locked": False, "bot": False, "discoverable": True,
            "email": f"{name}@example.com", "is_admin": False, "locale": "en",
            "pulled": pulled, "has_unpushed": pulled, "created_at": 0}


def _status(status_id: int, author: int) -> dict[str, Any]:
    return {"id": status_id, "account_id": author, "text": "x", "content": "<p>x</p>",
            "spoiler_text": "", "sensitive": False, "visibility": "public", "language": "en",
            "pushed": False, "replies_count": 0, "reblogs_count": 0, "favourites_count": 0,
            "created_at": 0}


def load(db: Database, posts: int) -> None:
    def write(tx: Tx) -> None:
        tx.execute(accounts.insert(), [_account(READER, "reader", False),
                                       _account(STAR, "star", True),
                                       _account(OTHER, "other", True)])
        tx.execute(follows.insert(), [
            {"account_id": READER, "target_account_id": target, "id": target,
             "created_at": 0, "show_reblogs": True, "notify": False}
            for target in (STAR, OTHER)])
        rows = [_status(FIRST_STATUS + i, STAR) for i in range(posts)]
        rows += [_status(FIRST_STATUS + posts + i, OTHER) for i in range(5)]
        for start in range(0, len(rows), 10_000):
            tx.execute(statuses.insert(), rows[start:start + 10_000])

    db.write_sync(write)
    if not db.is_sqlite:
        db.write_sync(lambda tx: tx.exec_driver_sql("ANALYZE"))


def _timed(db: Database, fn: Any, repeat: int) -> dict[str, float]:
    times = []
    with db.read_engine.connect() as tx:
        fn(tx)  # warm
        for _ in range(repeat):
            began = time.perf_counter()
            fn(tx)
            times.append(time.perf_counter() - began)
    ordered = sorted(times)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 3)}


def measure(db: Database, posts: int, repeat: int) -> dict[str, Any]:
    store = sql_stores().statuses
    first = store.pulled
    deep = Page(max_id=FIRST_STATUS + posts // 2, limit=20)
    page = db.read_sync(lambda tx: first(tx, READER, Page(limit=20)))
    assert [e.status_id for e in page][:5] == [FIRST_STATUS + posts + 4 - i for i in range(5)]
    assert len(page) == 20
    ceiling = select(statuses.c.id).where(statuses.c.id == FIRST_STATUS)
    return {
        "first_page": _timed(db, lambda tx: first(tx, READER, Page(limit=20)), repeat),
        "deep_page": _timed(db, lambda tx: first(tx, READER, deep), repeat),
        "ceiling_pk_read": _timed(db, lambda tx: tx.execute(ceiling).first(), repeat),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pulled", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    with migrated_database(args.engine, "roost-pulled") as db:
        load(db, args.posts)
        print(json.dumps({"workload": "pulled_merge", "engine": args.engine,
                          "unpushed_posts": args.posts,
                          **measure(db, args.posts, args.repeat)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
