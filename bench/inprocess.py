"""In-process measurements behind the analysis in BENCHMARKS.md: no HTTP, no threads competing.

    .venv/bin/python -m bench.inprocess [--rounds N]

Prints one JSON object:

- ``statement_us``: microseconds per call of one SELECT (an account by id) made four ways:
  built per call as the stores used to, prebuilt with bound parameters, as a raw SQL string
  through SQLAlchemy, and with raw ``sqlite3``;
- ``follow_tx``: the body of one follow (FollowService.follow's write function) run in
  transactions of 64 with a savepoint each, as the writer thread runs them: follows/s and CPU
  ms per follow — the most one writer thread can do, before HTTP and the GIL take their share;
- ``home_read``: authenticate a token, read a home timeline page of 20 (a reader following 500
  accounts) and render the Mastodon entities, in one thread: requests/s and CPU ms each;
- ``accounts_us``: microseconds to load 28 accounts with their counts (a page's authors), when
  each account's counts are in 1 row and in 16 (``ROOST_COUNTER_SHARDS``).

To compare with another source tree, run it with ``PYTHONPATH=<that tree>`` in front.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, select

from bench.fixtures import Fixture
from roost.domain.models import Page
from roost.domain.oauth import _digest
from roost.storage.schema import accounts
from roost.web import entities


def per_call_us(conn: Connection, fn: Callable[[Connection], object], n: int = 2000) -> float:
    for _ in range(100):
        fn(conn)
    began = time.perf_counter()
    for _ in range(n):
        fn(conn)
    return round((time.perf_counter() - began) / n * 1e6, 1)


def statement_costs(work: Path) -> dict[str, float]:
    fixture = Fixture.embedded(work / "statements", "NORMAL")
    ids = fixture.accounts("someone", 100)
    db_path = fixture.db_path
    fixture.close()
    engine = fixture.roost.db.read_engine
    columns = [c for c in accounts.c if c.name != "password_hash"]
    one = [ids[5]]
    prebuilt = select(*columns).where(accounts.c.id.in_(bindparam("ids", expanding=True)))
    raw_sql = f"SELECT {', '.join(c.name for c in columns)} FROM accounts WHERE id IN (?)"
    out: dict[str, float] = {}
    with engine.connect() as conn:
        out["built_per_call"] = per_call_us(conn, lambda c: c.execute(
            select(*columns).where(accounts.c.id.in_(one))).all())
        out["prebuilt_bindparam"] = per_call_us(conn, lambda c: c.execute(
            prebuilt, {"ids": one}).all())
        out["exec_driver_sql"] = per_call_us(conn, lambda c: c.exec_driver_sql(
            raw_sql, (one[0],)).all())
    raw = sqlite3.connect(db_path)
    began = time.perf_counter()
    for _ in range(2000):
        raw.execute(raw_sql, (one[0],)).fetchall()
    out["raw_sqlite3"] = round((time.perf_counter() - began) / 2000 * 1e6, 1)
    raw.close()
    engine.dispose()
    return out


def follow_tx(work: Path, rounds: int) -> dict[str, Any]:
    fixture = Fixture.embedded(work / "follows", "NORMAL")
    (target,) = fixture.accounts("target", 1)
    fans = fixture.accounts("fan", 1000 * (rounds + 1))
    fixture.close()
    roost = fixture.roost
    bodies: list[Callable[[Connection], object]] = []

    class Capture:  # FollowService.follow hands its write function to db.write: keep it
        async def write(self, fn: Callable[[Connection], object]) -> None:
            bodies.append(fn)

    service = roost.follows
    service.db = Capture()  # type: ignore[assignment]
    conn = roost.db.write_engine.connect()

    def batch(followers: list[int]) -> None:
        bodies.clear()

        async def collect() -> None:
            for follower in followers:
                await service.follow(follower, target)

        asyncio.run(collect())
        with conn.begin():
            for body in bodies:
                savepoint = conn.begin_nested()
                body(conn)
                savepoint.commit()

    rates, cpu = [], []
    for r in range(rounds + 1):  # the first round warms the caches and is not counted
        chunk = fans[r * 1000:(r + 1) * 1000]
        wall, used = time.perf_counter(), time.process_time()
        for start in range(0, 1000, 64):
            batch(chunk[start:start + 64])
        if r:
            rates.append(1000 / (time.perf_counter() - wall))
            cpu.append(time.process_time() - used)
    conn.close()
    roost.db.write_engine.dispose()
    return {"follows_per_s": round(statistics.median(rates), 1),
            "cpu_ms_per_follow": round(statistics.median(cpu), 3), "rounds": rounds}


def home_read(work: Path, rounds: int) -> dict[str, Any]:
    fixture = Fixture.embedded(work / "home", "NORMAL")
    (reader,) = fixture.accounts("reader", 1)
    authors = fixture.accounts("author", 500)
    fixture.follow_edges((reader, a) for a in authors)
    fixture.post([(a, f"Post {r} from author {i}" + (" #roostbench" if i % 4 == 0 else ""))
                  for r in range(5) for i, a in enumerate(authors[:150]) if i % 5 >= r])
    (token,) = fixture.tokens([reader])
    roost = fixture.roost

    def one() -> None:
        def who(tx: Connection) -> int:
            found = roost.stores.oauth.token_by_hash(tx, _digest(token))
            assert found is not None and found.account_id is not None
            return roost.stores.accounts.by_ids(tx, [found.account_id])[found.account_id].id

        viewer = roost.db.read_sync(who)

        def page(tx: Connection) -> list[Any]:
            found = roost.timelines.home_entries(tx, viewer, Page(None, None, None, 20))
            return roost.posts.views(tx, [e.status_id for e in found], viewer)

        views = roost.db.read_sync(page)
        assert len(views) == 20
        [entities.status(roost.site, v) for v in views]

    for _ in range(50):
        one()
    rates, cpu = [], []
    for _ in range(rounds):
        wall, used = time.perf_counter(), time.process_time()
        for _ in range(200):
            one()
        rates.append(200 / (time.perf_counter() - wall))
        cpu.append((time.process_time() - used) / 200 * 1000)
    fixture.close()
    return {"requests_per_s": round(statistics.median(rates), 1),
            "cpu_ms_per_request": round(statistics.median(cpu), 3), "rounds": rounds}


def account_loads(work: Path) -> dict[str, float]:
    fixture = Fixture.embedded(work / "accounts", "NORMAL")
    roost = fixture.roost
    load = roost.stores.accounts.by_ids
    out = {}
    for rows in (1, 16):
        ids = fixture.accounts(f"rows{rows}x", 28)

        def spread(tx: Connection, ids: list[int] = ids, rows: int = rows) -> None:
            for account_id in ids:
                for shard in range(rows):
                    roost.stores.counters.add(tx, account_id, shard, followers=1)

        roost.db.write_sync(spread)
        assert {a.followers_count for a in roost.db.read_sync(
            lambda tx, ids=ids: load(tx, ids)).values()} == {rows}
        with roost.db.read_engine.connect() as conn:
            out[f"{rows}_rows_each"] = per_call_us(conn, lambda tx, ids=ids: load(tx, ids))
    fixture.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="roost-inprocess-"))
    try:
        import roost

        result = {
            "name": "inprocess",
            "roost_from": str(Path(roost.__file__).parent),
            "statement_us": statement_costs(work),
            "follow_tx": follow_tx(work, args.rounds),
            "home_read": home_read(work, args.rounds),
            "accounts_us": account_loads(work),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
