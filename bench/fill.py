"""A home timeline's fill from the database, against how many accounts the reader follows.

    .venv/bin/python -m bench.fill [--following 100 1000 5000] [--posts 50]
                                   [--engine sqlite|postgresql]

With the home timelines in the embedded server's memory, an account's first home read after a
start (or after its timeline was forgotten) fills it with ``StatusStore.delivered_to``: a
first look at the newest ``FILL_FIRST`` posts of every followed account, then a second look
at the accounts that gave that many. The read runs on the event loop's thread (SQLite's
bounded reads do), so its time is time every other request waits. For each size, one reader
follows that many accounts, each of which has posted ``--posts`` pushed posts, interleaved in
time; prints one JSON object with the fill's time (p50, p99 of ``--repeat``) per size, the
entries it returned, and a single primary-key read on the same engine as the ceiling.

Beside each fill, the reads of the same rules that the database and Redis stores run in jobs:
a new follow's backfill (``delivered_from`` one account) and a step of a returning account's
rebuild (``delivered_from`` ``REBUILD_BATCH`` accounts).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy import select

from bench.backends import migrated_database
from bench.pulled import _account, _status, _timed
from roost.domain.timelines import BACKFILL_POSTS, REBUILD_BATCH
from roost.storage.database import Database, Tx
from roost.storage.schema import accounts, follows, statuses
from roost.storage.stores import sql_stores

HOME_SIZE = 800
FIRST_STATUS = 1_000_000


def load(db: Database, reader: int, following: int, posts: int, first_account: int) -> None:
    """``reader`` and the ``following`` accounts it follows (ids from ``first_account``),
    each with ``posts`` pushed posts, the newest round from every account last."""
    authors = list(range(first_account, first_account + following))

    def write(tx: Tx) -> None:
        tx.execute(accounts.insert(), [_account(reader, f"reader{reader}", False)] + [
            _account(a, f"author{a}", False) for a in authors])
        tx.execute(follows.insert(), [
            {"account_id": reader, "target_account_id": a, "id": a, "created_at": 0,
             "show_reblogs": True, "notify": False} for a in authors])
        rows = []
        next_id = FIRST_STATUS + first_account * posts
        for _ in range(posts):
            for author in authors:
                rows.append({**_status(next_id, author), "pushed": True})
                next_id += 1
        for start in range(0, len(rows), 10_000):
            tx.execute(statuses.insert(), rows[start:start + 10_000])

    db.write_sync(write)


def measure(db: Database, reader: int, repeat: int) -> dict[str, Any]:
    store = sql_stores().statuses
    filled = db.read_sync(lambda tx: store.delivered_to(tx, reader, HOME_SIZE))
    authors = db.read_sync(lambda tx: sql_stores().follows.followed_ids(tx, reader))
    step = authors[:REBUILD_BATCH]
    return {"entries": len(filled),
            **_timed(db, lambda tx: store.delivered_to(tx, reader, HOME_SIZE), repeat),
            "backfill": _timed(db, lambda tx: store.delivered_from(
                tx, reader, authors[:1], BACKFILL_POSTS), repeat),
            "rebuild_step": _timed(db, lambda tx: store.delivered_from(
                tx, reader, step, BACKFILL_POSTS), repeat)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--following", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--posts", type=int, default=50)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"workload": "home_fill", "engine": args.engine,
                           "posts_per_account": args.posts, "home_size": HOME_SIZE, "fills": {}}
    with migrated_database(args.engine, "roost-fill") as db:
        first_account = 10
        for reader, following in enumerate(args.following, start=1):
            load(db, reader, following, args.posts, first_account)
            first_account += following
        if not db.is_sqlite:
            db.write_sync(lambda tx: tx.exec_driver_sql("ANALYZE"))
        for reader, following in enumerate(args.following, start=1):
            out["fills"][str(following)] = measure(db, reader, args.repeat)
        ceiling = select(statuses.c.id).where(statuses.c.id == FIRST_STATUS + 10 * args.posts)
        out["ceiling_pk_read"] = _timed(db, lambda tx: tx.execute(ceiling).first(),
                                        args.repeat * 10)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
