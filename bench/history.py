"""Follower-count-at-an-instant latency over a long history (issue 4's benchmark).

    .venv/bin/python -m bench.history [--events 10000000] [--engine sqlite|postgresql]

Loads one account's follow/unfollow log of ``--events`` events spread over 30 days (a random
walk of follows and unfollows by a pool of followers, so the count rises and falls), with its
per-minute rollups, then asks the history store for the exact count at random instants, as the
API does, and prints one JSON object: load time, p50/p90/p99/max latency of a count lookup,
and a brute-force check of a sample of answers. The ceiling beside it is a single indexed
primary-key read on the same engine, measured the same way.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator

from sqlalchemy import select

from bench.backends import migrated_database
from roost.domain.stats import MINUTE_MS
from roost.storage.bulk import BulkLoader
from roost.storage.database import Database
from roost.storage.schema import follow_events, follower_rollups, roost_state
from roost.storage.stores import sql_stores

ACCOUNT = 42
DAYS = 30


def _log(message: str) -> None:
    print(f"[history {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _walk(events: int, seed: int, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(time ms, follower, delta) in time order; a follower only unfollows when following."""
    rng = random.Random(seed)
    pool = max(events // 3, 10)
    following = bytearray(pool)
    span = end - start
    for i in range(events):
        at = start + span * i // events
        follower = rng.randrange(pool)
        delta = -1 if following[follower] else 1
        following[follower] ^= 1
        yield at, follower + 1000, delta


def load(db: Database, events: int, seed: int, end: int) -> float:
    loader = BulkLoader(db)
    start = end - DAYS * 86_400_000
    began = time.monotonic()
    seq_ms, seq = -1, 0

    def event_rows() -> Iterator[tuple[int, int, int, int, int]]:
        nonlocal seq_ms, seq
        for at, follower, delta in _walk(events, seed, start, end):
            seq = seq + 1 if at == seq_ms else 0
            seq_ms = at
            yield ACCOUNT, (at << 16) | seq, follower, delta, at

    loader.insert(follow_events, ["target_account_id", "id", "account_id", "delta",
                                  "created_at"], event_rows)
    _log(f"{events:,} events loaded in {time.monotonic() - began:.1f}s")

    def rollup_rows() -> Iterator[tuple[int, int, int, int, int, int]]:
        followers = gained = lost = peak = 0
        minute = None
        for at, _, delta in _walk(events, seed, start, end):
            this = at // MINUTE_MS
            if minute is not None and this != minute:
                yield ACCOUNT, minute, followers, gained, lost, peak
            minute = this
            followers += delta
            gained += delta > 0
            lost += delta < 0
            peak = max(peak, followers)
        if minute is not None:
            yield ACCOUNT, minute, followers, gained, lost, peak

    loader.insert(follower_rollups, ["account_id", "minute", "followers", "gained", "lost",
                                     "peak"], rollup_rows)
    until = end // MINUTE_MS + 1
    loader.insert(roost_state, ["key", "value"], lambda: [("follower_rollup_minute", until)])
    return time.monotonic() - began


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 3),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 3)}


def measure(db: Database, events: int, seed: int, end: int, lookups: int) -> dict[str, object]:
    history = sql_stores().history
    rng = random.Random(seed + 1)
    start = end - DAYS * 86_400_000
    instants = [rng.randrange(start, end) for _ in range(lookups)]
    with db.read_engine.connect() as tx:
        history.snapshot(tx, ACCOUNT, instants[0])  # warm the cache
        times = []
        for at in instants:
            began = time.perf_counter()
            history.snapshot(tx, ACCOUNT, at)
            times.append(time.perf_counter() - began)
        ceiling = []
        stmt = select(follower_rollups.c.followers).where(
            follower_rollups.c.account_id == ACCOUNT, follower_rollups.c.minute == 0)
        for _ in range(lookups):
            began = time.perf_counter()
            tx.execute(stmt).first()
            ceiling.append(time.perf_counter() - began)
        # Brute force a few answers: the whole walk up to the instant.
        checked = 0
        for at in sorted(rng.sample(instants, min(5, len(instants)))):
            expected = sum(d for t, _, d in _walk(events, seed, start, end) if t <= at)
            assert history.snapshot(tx, ACCOUNT, at).followers == expected, at
            checked += 1
    return {"lookup": _percentiles(times), "ceiling_pk_read": _percentiles(ceiling),
            "brute_force_checked": checked}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2009)
    args = parser.parse_args(argv)
    end = 1_776_000_000_000  # fixed, so runs are comparable
    with migrated_database(args.engine, "roost-history") as db:
        seconds = load(db, args.events, args.seed, end)
        result = {"workload": "history_count_at", "engine": args.engine,
                  "events": args.events, "load_seconds": round(seconds, 1),
                  **measure(db, args.events, args.seed, end, args.lookups)}
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
