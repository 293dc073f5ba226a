"""Raw store ceilings, measured without Roost in the same run as the workloads: what SQLite,
PostgreSQL and Redis themselves allow on this machine right now."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

from roost.storage.redis.timelines import _ADD


def _timed(seconds: float, batch: Callable[[], int]) -> float:
    """Rows/s of ``batch`` (which returns the rows it wrote) repeated for ``seconds``."""
    rows = 0
    began = time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        rows += batch()
    return round(rows / (time.perf_counter() - began), 1)


def sqlite_ceiling(path: Path, synchronous: str, seconds: float) -> dict[str, float]:
    """Raw sqlite3 with the server's pragmas: commits/s of one-row transactions, rows/s of
    64-row transactions (a group commit of 64 follows), and rows/s of 2,000-row executemany
    transactions into a home_timeline-shaped table (one fan-out step)."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None)
    for pragma in ("journal_mode=WAL", f"synchronous={synchronous}", "busy_timeout=30000",
                   "cache_size=-65536"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("CREATE TABLE edges (a INTEGER NOT NULL, b INTEGER NOT NULL, "
                 "id INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (a, b))")
    conn.execute("CREATE TABLE home (account_id INTEGER NOT NULL, status_id INTEGER NOT NULL, "
                 "author_id INTEGER NOT NULL, reblog_of_id INTEGER, "
                 "PRIMARY KEY (account_id, status_id))")
    conn.execute("CREATE INDEX home_author ON home (account_id, author_id)")
    n = 0

    def one_row() -> int:
        nonlocal n
        n += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO edges VALUES (?, 1, ?, 0)", (n, n))
        conn.execute("COMMIT")
        return 1

    def rows_64() -> int:
        nonlocal n
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(64):
            n += 1
            conn.execute("INSERT INTO edges VALUES (?, 1, ?, 0)", (n, n))
        conn.execute("COMMIT")
        return 64

    def bulk_2000() -> int:
        nonlocal n
        n += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR IGNORE INTO home VALUES (?, ?, 7, NULL)",
                         ((a, n) for a in range(2000)))
        conn.execute("COMMIT")
        return 2000

    out = {"commits_per_s": _timed(seconds, one_row),
           "rows_per_s_64_per_commit": _timed(seconds, rows_64),
           "fanout_rows_per_s_2000_per_commit": _timed(seconds, bulk_2000)}
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return out


def postgresql_ceiling(url: str, seconds: float) -> dict[str, float | str]:
    """Raw psycopg on the server's PostgreSQL (settings as found: ``synchronous_commit`` is
    reported): one-row commits/s, rows/s at 64 rows per commit, rows/s of 2,000-row
    ``executemany`` commits into a home_timeline-shaped table (a fan-out step, were home
    timelines in the database), and rows/s of COPY (the bulk loader's path)."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE edges (a bigint NOT NULL, b bigint NOT NULL, "
                     "id bigint NOT NULL, at bigint NOT NULL, PRIMARY KEY (a, b))")
        conn.execute("CREATE TABLE home (account_id bigint NOT NULL, status_id bigint NOT NULL,"
                     " author_id bigint NOT NULL, reblog_of_id bigint, "
                     "PRIMARY KEY (account_id, status_id))")
        conn.execute("CREATE INDEX home_author ON home (account_id, author_id)")
        conn.commit()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        n = 0

        def one_row() -> int:
            nonlocal n
            n += 1
            conn.execute("INSERT INTO edges VALUES (%s, 1, %s, 0)", (n, n))
            conn.commit()
            return 1

        def rows_64() -> int:
            nonlocal n
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO edges VALUES (%s, 1, %s, 0)",
                                [(n + i + 1, n + i + 1) for i in range(64)])
            n += 64
            conn.commit()
            return 64

        def bulk_2000() -> int:
            nonlocal n
            n += 1
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO home VALUES (%s, %s, 7, NULL) "
                                "ON CONFLICT DO NOTHING", [(a, n) for a in range(2000)])
            conn.commit()
            return 2000

        def copy_50000() -> int:
            nonlocal n
            with conn.cursor() as cur, cur.copy("COPY edges (a, b, id, at) FROM STDIN") as copy:
                for i in range(50_000):
                    copy.write_row((n + i + 1, 2, i, 0))
            n += 50_000
            conn.commit()
            return 50_000

        out: dict[str, float | str] = {
            "synchronous_commit": str(sync[0]) if sync else "?",
            "commits_per_s": _timed(seconds, one_row),
            "rows_per_s_64_per_commit": _timed(seconds, rows_64),
            "fanout_rows_per_s_2000_per_commit": _timed(seconds, bulk_2000),
            "copy_rows_per_s": _timed(seconds, copy_50000),
        }
        conn.execute("DROP TABLE edges, home")
        conn.commit()
    return out


def redis_ceiling(url: str, prefix: str, seconds: float) -> dict[str, float]:
    """Raw Redis: ZADD/s through one redis-py pipeline of 2,000 ZADDs to 2,000 keys (what a
    Python client can push), timeline entries/s through Roost's own fan-out Lua script over
    2,000 keys without Roost around it, and the server's ZADD/s under redis-benchmark with 16
    pipelined commands per connection (what Redis itself can take)."""
    client = redis.Redis.from_url(url)
    keys = [f"{prefix}ceiling:{{{i}}}" for i in range(2000)]
    script = client.register_script(_ADD)
    n = 0

    def pipelined() -> int:
        nonlocal n
        n += 1
        pipe = client.pipeline(transaction=False)
        member = n.to_bytes(16, "big")
        for key in keys:
            pipe.zadd(key, {member: 0})
        pipe.execute()
        return len(keys)

    def lua() -> int:
        nonlocal n
        n += 1
        script(keys=keys, args=[n.to_bytes(16, "big"), 800])
        return len(keys)

    out = {"zadd_per_s_redis_py_pipeline": _timed(seconds, pipelined),
           "entries_per_s_fanout_script_2000_keys": _timed(seconds, lua)}
    host = client.connection_pool.connection_kwargs.get("host", "127.0.0.1")
    port = client.connection_pool.connection_kwargs.get("port", 6379)
    try:
        done = subprocess.run(
            ["redis-benchmark", "-h", str(host), "-p", str(port), "-c", "50", "-P", "16",
             "-n", str(int(max(seconds, 0.5) * 400_000)), "-r", "2000", "-q", "--csv",
             "ZADD", f"{prefix}rb:{{__rand_int__}}", "0", "m__rand_int__"],
            capture_output=True, text=True, timeout=120)
        line = [x for x in done.stdout.splitlines() if x.startswith('"ZADD')]
        if line:
            out["zadd_per_s_redis_benchmark_P16"] = float(line[-1].split(",")[1].strip('"'))
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        pass
    for pattern in (f"{prefix}ceiling:*", f"{prefix}rb:*"):
        batch = list(client.scan_iter(match=pattern, count=5000))
        for start in range(0, len(batch), 5000):
            client.unlink(*batch[start:start + 5000])
    client.close()
    return out
