"""The workloads. Each returns one JSON-able dict:

    name, parameters, throughput {value, unit}, latency_ms {p50, p90, p99, ...},
    ceiling {...figures from this run...}, ratio {...}, and what it verified.

Every workload starts its own `roost serve` on a fresh temporary data dir, sets its data up
before the server starts (bench/fixtures.py) and sends the measured load over HTTP with
bearer tokens.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.fixtures import Fixture
from bench.harness import (
    Load,
    Process,
    Profiler,
    ceiling_server,
    load_average,
    log,
    read_only,
    roost_cli,
    roost_server,
    run_load,
    scalar,
    thread_report,
    thread_times,
)


@dataclass
class Sizes:
    """Every size a workload uses; ``quick()`` is the small set a test can afford."""

    http_seconds: float = 8.0
    sqlite_seconds: float = 2.0
    storm_connections: int = 64
    storm_seconds: float = 15.0
    storm_pool_per_second: int = 4_000  # follower accounts prepared per second of storm
    home_connections: int = 32
    home_seconds: float = 15.0
    home_following: int = 500
    home_authors_posting: int = 150
    fanout_followers: int = 10_000
    fanout_repeats: int = 3
    posting_authors: int = 32
    posting_followers_each: int = 500
    posting_follower_pool: int = 4_000
    posting_seconds: float = 20.0
    posting_connections: int = 32
    drain_timeout: float = 600.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(http_seconds=2, sqlite_seconds=0.5, storm_seconds=3, home_seconds=3,
                   home_following=100, home_authors_posting=30, fanout_followers=1_000,
                   fanout_repeats=2, posting_authors=8, posting_followers_each=50,
                   posting_follower_pool=200, posting_seconds=3, posting_connections=16,
                   drain_timeout=60)

    def with_seconds(self, seconds: float) -> Sizes:
        """Every load phase shortened (or lengthened) to ``seconds``."""
        return Sizes(**{**asdict(self), "http_seconds": seconds, "storm_seconds": seconds,
                        "home_seconds": seconds, "posting_seconds": seconds,
                        "sqlite_seconds": min(self.sqlite_seconds, seconds)})


@dataclass
class Context:
    work_dir: Path
    sizes: Sizes
    generator: str  # "wrk" or "httpx"
    wrk_threads: int
    synchronous: str
    profiler: Profiler
    src: Path | None = None  # serve the roost package from this folder instead
    ceiling: dict[str, Any] = field(default_factory=dict)

    def data_dir(self, name: str) -> Path:
        path = self.work_dir / name / "data"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def load(self, load: Load) -> dict[str, Any]:
        return run_load(load, self.work_dir, self.generator, self.wrk_threads)

    def common(self) -> dict[str, Any]:
        out = {"load_generator": self.generator,
               "wrk_threads": self.wrk_threads if self.generator == "wrk" else None,
               "sqlite_synchronous": self.synchronous}
        if self.src is not None:
            out["server_src"] = str(self.src)
        return out

    def server(self, data_dir: Path) -> Process:
        return roost_server(data_dir, self.synchronous, self.src)


def _ratio(value: float, ceiling: float | None) -> float | None:
    return round(value / ceiling, 3) if ceiling else None


def _measured(server: Process, ctx: Context, name: str, seconds: float,
              run: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``run`` (the load) while recording the server's CPU use per thread and, if asked,
    a py-spy profile; returns (load result, server figures)."""
    cpu_before = server.cpu_seconds()
    threads_before = thread_times(server.pid)
    loadavg_before = load_average()
    ctx.profiler.start(name, server.pid, seconds)
    began = time.monotonic()
    result = run()
    elapsed = time.monotonic() - began
    threads_after = thread_times(server.pid)
    cpu_after = server.cpu_seconds()
    ctx.profiler.wait()
    figures: dict[str, Any] = {"loadavg_before": loadavg_before, "loadavg_after": load_average()}
    if cpu_before is not None and cpu_after is not None:
        figures["server_cpu_percent"] = round(100 * (cpu_after - cpu_before) / elapsed, 1)
    figures["threads"] = thread_report(server.pid, threads_before, threads_after, elapsed)
    return result, figures


def _latency(result: dict[str, Any]) -> dict[str, float]:
    lat = result["latency_ms"]
    return {k: lat[k] for k in ("p50", "p90", "p99", "p999", "max", "mean")}


# -- 1. ceiling ------------------------------------------------------------------------------


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
    out: dict[str, float] = {}
    n = 0

    def timed(batch: Callable[[], int]) -> float:
        rows = 0
        began = time.perf_counter()
        deadline = began + seconds
        while time.perf_counter() < deadline:
            rows += batch()
        return rows / (time.perf_counter() - began)

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

    out["commits_per_s"] = round(timed(one_row), 1)
    out["rows_per_s_64_per_commit"] = round(timed(rows_64), 1)
    out["fanout_rows_per_s_2000_per_commit"] = round(timed(bulk_2000), 1)
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return out


def ceiling(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    server = ceiling_server(ctx.work_dir, ctx.synchronous)
    log("ceiling: trivial endpoints and a bare follow, same uvicorn settings")
    server.start()
    try:
        http = {}
        for key, method, path, connections, tokens in (
            ("json_c32", "GET", "/json", 32, ["-"]),
            ("json_c64", "GET", "/json", 64, ["-"]),
            ("hop_c32", "GET", "/hop", 32, ["-"]),
            ("bare_follow_c64", "POST", "/follow/1", 64,
             [str(i) for i in range(2, 2 + int(s.http_seconds * 40_000))]),
        ):
            result = ctx.load(Load(server.url, method, path, tokens, "", connections,
                                   s.http_seconds))
            http[key] = {"rps": result["ok_rps"], "latency_ms": _latency(result),
                         "errors": result["errors"]["status"]}
    finally:
        server.stop()
    log("ceiling: raw sqlite3 commits")
    sqlite = {mode: sqlite_ceiling(ctx.work_dir / f"raw-{mode}.db", mode, s.sqlite_seconds)
              for mode in ("FULL", "NORMAL")}
    ctx.ceiling = {"http": http, "sqlite": sqlite}
    return {
        "name": "ceiling",
        "parameters": {**ctx.common(), "http_seconds": s.http_seconds,
                       "sqlite_seconds": s.sqlite_seconds},
        "throughput": {"value": http["json_c32"]["rps"], "unit": "req/s (trivial JSON, 32 conns)"},
        "latency_ms": http["json_c32"]["latency_ms"],
        "ceiling": ctx.ceiling,
        "ratio": {"hop_vs_trivial": _ratio(http["hop_c32"]["rps"], http["json_c32"]["rps"]),
                  "bare_follow_vs_trivial_c64": _ratio(http["bare_follow_c64"]["rps"],
                                                       http["json_c64"]["rps"])},
        "loadavg": load_average(),
    }


def _http_ceiling(ctx: Context, key: str) -> float | None:
    value = ctx.ceiling.get("http", {}).get(key, {}).get("rps")
    return float(value) if value else None


def _sqlite_ceiling(ctx: Context, key: str) -> float | None:
    value = ctx.ceiling.get("sqlite", {}).get(ctx.synchronous, {}).get(key)
    return float(value) if value else None


def _wait_for_jobs(db: sqlite3.Connection, timeout: float) -> tuple[bool, float]:
    """Poll the outbox until it is empty (or ``timeout``); (emptied, seconds waited)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if scalar(db, "SELECT count(*) FROM jobs WHERE dead = 0") == 0:
            return True, time.monotonic() - began
        time.sleep(0.02)
    return False, time.monotonic() - began


# -- 2. follow storm -------------------------------------------------------------------------


def follow_storm(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    data_dir = ctx.data_dir("follow_storm")
    pool = max(1_000, int(s.storm_seconds * s.storm_pool_per_second))
    log(f"follow_storm: preparing 1 target and {pool} followers with tokens")
    fixture = Fixture(data_dir, ctx.synchronous)
    (target,) = fixture.accounts("target", 1)
    followers = fixture.accounts("fan", pool)
    tokens = fixture.tokens(followers)
    (viewer_token,) = fixture.tokens([target])
    db_path = fixture.db_path
    fixture.close()
    random.Random(1).shuffle(tokens)

    server = ctx.server(data_dir)
    server.start()
    try:
        log(f"follow_storm: {s.storm_connections} connections for {s.storm_seconds}s")
        load = Load(server.url, "POST", f"/api/v1/accounts/{target}/follow", tokens, "",
                    s.storm_connections, s.storm_seconds)
        result, figures = _measured(server, ctx, "follow_storm", s.storm_seconds,
                                    lambda: ctx.load(load))
        db = read_only(db_path)
        drained, drain_s = _wait_for_jobs(db, s.drain_timeout)  # the backfill jobs
        edges = scalar(db, "SELECT count(*) FROM follows WHERE target_account_id = ?", target)
        events = scalar(db, "SELECT coalesce(sum(delta), 0) FROM follow_events "
                            "WHERE target_account_id = ?", target)
        db.close()
        shown = httpx.get(f"{server.url}/api/v1/accounts/{target}",
                          headers={"Authorization": f"Bearer {viewer_token}"}, timeout=30)
        followers_count = int(shown.json()["followers_count"])
    finally:
        server.stop()
    check = roost_cli(data_dir, "check")
    ok = result["requests"] - result["errors"]["status"]
    verified = {
        "followers_count": followers_count, "edges": edges, "follow_events_sum": events,
        "ok_responses": ok, "non_2xx": result["errors"]["status"],
        "tokens_reused": result["wrapped"],
        "followers_count_equals_edges": followers_count == edges == events,
        # a follow still in flight when the load stops is committed but not counted as a
        # response, so edges may exceed the answered follows by at most the connection count
        "edges_match_responses": ok <= edges <= ok + s.storm_connections,
        "roost_check_clean": check.returncode == 0,
        "roost_check_output": check.stdout.strip()[-300:],
        "backfill_jobs_drained": drained, "backfill_drain_s": round(drain_s, 2),
    }
    rate = result["ok_rps"]
    return {
        "name": "follow_storm",
        "parameters": {**ctx.common(), "connections": s.storm_connections,
                       "seconds": s.storm_seconds, "follower_pool": pool,
                       "endpoint": "POST /api/v1/accounts/:id/follow"},
        "throughput": {"value": rate, "unit": "follows/s"},
        "latency_ms": _latency(result),
        "ceiling": {"trivial_json_c64_rps": _http_ceiling(ctx, "json_c64"),
                    "bare_follow_c64_rps": _http_ceiling(ctx, "bare_follow_c64"),
                    "sqlite_commits_per_s": _sqlite_ceiling(ctx, "commits_per_s"),
                    "sqlite_rows_per_s_64_per_commit":
                        _sqlite_ceiling(ctx, "rows_per_s_64_per_commit")},
        "ratio": {"vs_trivial_json": _ratio(rate, _http_ceiling(ctx, "json_c64")),
                  "vs_bare_follow": _ratio(rate, _http_ceiling(ctx, "bare_follow_c64")),
                  "vs_sqlite_commits": _ratio(rate, _sqlite_ceiling(ctx, "commits_per_s"))},
        "target": {"follows_per_s": 2000, "met": rate >= 2000},
        "server": figures,
        "verified": verified,
    }


# -- 3. home timeline read -------------------------------------------------------------------


def home_read(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    data_dir = ctx.data_dir("home_read")
    log(f"home_read: a reader following {s.home_following} accounts, "
        f"{s.home_authors_posting} of them with 1-5 posts")
    fixture = Fixture(data_dir, ctx.synchronous)
    (reader,) = fixture.accounts("reader", 1)
    authors = fixture.accounts("author", s.home_following)
    fixture.follow_edges((reader, a) for a in authors)
    posts: list[tuple[int, str]] = []
    for round_ in range(5):  # interleaved so the newest posts come from many authors
        for i, author in enumerate(authors[:s.home_authors_posting]):
            if i % 5 >= round_:
                mention = f" @author{(i + 1) % s.home_following}" if i % 3 == 0 else ""
                tag = " #roostbench" if i % 4 == 0 else ""
                posts.append((author, f"Post {round_} from author {i}{mention}{tag}, "
                                      "with a little text to render."))
    fixture.post(posts)
    (token,) = fixture.tokens([reader])
    entries = fixture.read("SELECT count(*) FROM home_timeline WHERE account_id = ?", reader)
    fixture.close()

    server = ctx.server(data_dir)
    server.start()
    try:
        path = "/api/v1/timelines/home?limit=20"
        first = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
        page = first.json()
        log(f"home_read: {s.home_connections} connections for {s.home_seconds}s")
        load = Load(server.url, "GET", path, [token], "", s.home_connections, s.home_seconds)
        result, figures = _measured(server, ctx, "home_read", s.home_seconds,
                                    lambda: ctx.load(load))
        last = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    finally:
        server.stop()
    ids = [int(p["id"]) for p in page]
    rate = result["ok_rps"]
    p99 = result["latency_ms"]["p99"]
    return {
        "name": "home_read",
        "parameters": {**ctx.common(), "connections": s.home_connections,
                       "seconds": s.home_seconds, "following": s.home_following,
                       "posts": len(posts), "home_entries": entries,
                       "endpoint": "GET /api/v1/timelines/home?limit=20"},
        "throughput": {"value": rate, "unit": "req/s"},
        "latency_ms": _latency(result),
        "ceiling": {"trivial_json_c32_rps": _http_ceiling(ctx, "json_c32"),
                    "one_thread_hop_c32_rps": _http_ceiling(ctx, "hop_c32")},
        "ratio": {"vs_trivial_json": _ratio(rate, _http_ceiling(ctx, "json_c32")),
                  "vs_one_thread_hop": _ratio(rate, _http_ceiling(ctx, "hop_c32"))},
        "target": {"req_per_s": 2000, "p99_ms": 50, "met": rate >= 2000 and p99 < 50},
        "server": figures,
        # 200 with a full page before and after the load: a 206 (timeline being rebuilt)
        # or an empty page would mean the load measured something else.
        "verified": {"status": first.status_code, "status_after": last.status_code,
                     "page_size": len(page),
                     "full_page": len(page) == min(20, entries) and len(last.json()) == len(page),
                     "newest_first": ids == sorted(ids, reverse=True),
                     "non_2xx": result["errors"]["status"]},
    }


# -- 4. ordinary fan-out ---------------------------------------------------------------------


STALL_S = 5.0  # a fan-out that has not moved for this long with no job pending has stopped


def fanout(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    data_dir = ctx.data_dir("fanout")
    n = s.fanout_followers
    log(f"fanout: an author with {n} followers")
    fixture = Fixture(data_dir, ctx.synchronous)
    (author,) = fixture.accounts("author", 1)
    followers = fixture.accounts("reader", n)
    fixture.follow_edges((f, author) for f in followers)
    sample = random.Random(2).sample(followers, min(20, n))
    author_token, *sample_tokens = fixture.tokens([author, *sample])
    db_path = fixture.db_path
    fixture.close()

    server = ctx.server(data_dir)
    server.start()
    runs: list[dict[str, Any]] = []
    sample_ok = True
    try:
        db = read_only(db_path)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for r in range(s.fanout_repeats):
                # Poll the database (read-only connection, WAL) every 2 ms for the number of
                # home timelines holding the post: the author's own plus every follower's.
                began = time.perf_counter()
                posted = client.post("/api/v1/statuses", data={"status": f"Fan-out {r}"},
                                     headers={"Authorization": f"Bearer {author_token}"})
                accepted = time.perf_counter()
                status_id = int(posted.json()["id"])
                delivered, last_change = 0, accepted
                deadline = accepted + s.drain_timeout
                while time.perf_counter() < deadline:
                    now = scalar(db, "SELECT count(*) FROM home_timeline WHERE status_id = ?",
                                 status_id)
                    if now >= n + 1:
                        delivered = now
                        break
                    if now != delivered:
                        delivered, last_change = now, time.perf_counter()
                    elif (time.perf_counter() - last_change > STALL_S
                          and scalar(db, "SELECT count(*) FROM jobs WHERE dead = 0") == 0):
                        break  # nothing left to run and still short: report, do not hang
                    time.sleep(0.002)
                done = time.perf_counter()
                runs.append({"accept_ms": round((accepted - began) * 1000, 1),
                             "all_delivered_s": round(done - began, 3),
                             "delivered": delivered - 1,
                             "rows_per_s": round((delivered - 1) / max(done - accepted, 1e-6))})
                for token in sample_tokens:  # and the followers see it over HTTP
                    top = client.get("/api/v1/timelines/home", params={"limit": 1},
                                     headers={"Authorization": f"Bearer {token}"}).json()
                    sample_ok = sample_ok and bool(top) and int(top[0]["id"]) == status_id
                time.sleep(0.2)
        db.close()
    finally:
        server.stop()
    times = [r["all_delivered_s"] for r in runs]
    median = statistics.median(times)
    bulk = _sqlite_ceiling(ctx, "fanout_rows_per_s_2000_per_commit")
    floor = n / bulk if bulk else None
    return {
        "name": "fanout",
        "parameters": {**ctx.common(), "followers": n, "repeats": s.fanout_repeats,
                       "how": "POST /api/v1/statuses, then poll SELECT count(*) FROM "
                              "home_timeline WHERE status_id=? on a read-only connection "
                              "every 2 ms; plus a sample of 20 followers' home timelines over "
                              "HTTP"},
        "throughput": {"value": round(n / median), "unit": "timeline rows/s (median run)"},
        "latency_ms": {"p50": round(median * 1000, 1), "max": round(max(times) * 1000, 1)},
        "runs": runs,
        "ceiling": {"sqlite_fanout_rows_per_s": bulk,
                    "sqlite_floor_s": round(floor, 3) if floor else None},
        "ratio": {"rows_per_s_vs_raw_sqlite": _ratio(n / median, bulk)},
        "target": {"all_delivered_s": 2.0, "followers": 10_000, "met": median < 2.0
                   if n >= 10_000 else None},
        "verified": {"all_delivered": all(r["delivered"] == n for r in runs),
                     "sample_sees_post_over_http": sample_ok},
    }


# -- 5. posting ------------------------------------------------------------------------------


class JobWatcher:
    """Samples the outbox size every 100 ms in a thread, for the largest backlog."""

    def __init__(self, db_path: Path) -> None:
        self.db = read_only(db_path)
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        began = time.monotonic()
        while not self.stop.wait(0.1) and time.monotonic() - began < 3600:
            self.samples.append((time.monotonic() - began,
                                 scalar(self.db, "SELECT count(*) FROM jobs WHERE dead = 0")))

    def __enter__(self) -> JobWatcher:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self.db.close()

    @property
    def peak(self) -> int:
        return max((n for _, n in self.samples), default=0)


def posting(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    data_dir = ctx.data_dir("posting")
    n_authors, k, pool_size = s.posting_authors, s.posting_followers_each, s.posting_follower_pool
    log(f"posting: {n_authors} authors with {k} followers each (pool of {pool_size})")
    fixture = Fixture(data_dir, ctx.synchronous)
    authors = fixture.accounts("author", n_authors)
    pool = fixture.accounts("reader", pool_size)
    stride = max(1, pool_size // n_authors)
    fixture.follow_edges((pool[(a * stride + j) % pool_size], author)
                         for a, author in enumerate(authors) for j in range(min(k, pool_size)))
    tokens = fixture.tokens(authors)
    db_path = fixture.db_path
    fixture.close()

    server = ctx.server(data_dir)
    server.start()
    try:
        with JobWatcher(db_path) as watcher:
            log(f"posting: {s.posting_connections} connections for {s.posting_seconds}s")
            load = Load(server.url, "POST", "/api/v1/statuses", tokens,
                        "status=Bench+post+{n}+%23roost", s.posting_connections,
                        s.posting_seconds)
            result, figures = _measured(server, ctx, "posting", s.posting_seconds,
                                        lambda: ctx.load(load))
            backlog_at_end = watcher.samples[-1][1] if watcher.samples else None
            db = read_only(db_path)
            drained, drain_s = _wait_for_jobs(db, s.drain_timeout)
        posts = scalar(db, "SELECT count(*) FROM statuses")
        rows = scalar(db, "SELECT count(*) FROM home_timeline")
        latest_ok = True
        for author in authors[:3]:
            latest = scalar(db, "SELECT max(id) FROM statuses WHERE account_id = ?", author)
            got = scalar(db, "SELECT count(*) FROM home_timeline WHERE status_id = ?", latest)
            latest_ok = latest_ok and got == min(k, pool_size) + 1
        db.close()
    finally:
        server.stop()
    rate = result["ok_rps"]
    ceiling_bulk = _sqlite_ceiling(ctx, "fanout_rows_per_s_2000_per_commit")
    needed_rows_per_s = rate * k
    return {
        "name": "posting",
        "parameters": {**ctx.common(), "authors": n_authors, "followers_each": k,
                       "follower_pool": pool_size, "connections": s.posting_connections,
                       "seconds": s.posting_seconds, "endpoint": "POST /api/v1/statuses"},
        "throughput": {"value": rate, "unit": "posts/s accepted"},
        "latency_ms": _latency(result),
        "fanout": {"backlog_jobs_at_end_of_load": backlog_at_end,
                   "backlog_jobs_peak": watcher.peak,
                   "drained": drained, "drain_after_last_post_s": round(drain_s, 2),
                   "timeline_rows_needed_per_s": round(needed_rows_per_s)},
        "ceiling": {"trivial_json_c32_rps": _http_ceiling(ctx, "json_c32"),
                    "sqlite_fanout_rows_per_s": ceiling_bulk},
        "ratio": {"vs_trivial_json": _ratio(rate, _http_ceiling(ctx, "json_c32")),
                  "fanout_rows_needed_vs_raw_sqlite": _ratio(needed_rows_per_s, ceiling_bulk)},
        "target": {"posts_per_s": 500, "drain_s": 5,
                   "met": rate >= 500 and drained and drain_s <= 5},
        "server": figures,
        "verified": {"posts_stored": posts, "ok_responses": result["requests"]
                     - result["errors"]["status"], "non_2xx": result["errors"]["status"],
                     "home_timeline_rows": rows, "latest_posts_fully_delivered": latest_ok},
    }


WORKLOADS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "ceiling": ceiling,
    "follow_storm": follow_storm,
    "home_read": home_read,
    "fanout": fanout,
    "posting": posting,
}
