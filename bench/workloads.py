"""The workloads. Each returns one JSON-able dict:

    name, parameters, throughput {value, unit}, latency_ms {p50, p90, p99, ...},
    ceiling {...figures from this run...}, ratio {...}, target, and what it verified.

Every workload gets a fresh target from the backend (a SQLite data dir, or a PostgreSQL
database and a Redis key prefix), sets its data up before the server starts
(bench/fixtures.py), starts `roost serve` (and, in production, the `roost worker` processes)
and sends the measured load over HTTP with bearer tokens.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench.backends import Backend, Delivery, Deployment, Probe, Target
from bench.ceilings import postgresql_ceiling, redis_ceiling, sqlite_ceiling
from bench.fixtures import Fixture
from bench.harness import (
    Load,
    Profiler,
    ceiling_server,
    cpu_of,
    load_average,
    log,
    pids_named,
    process_cpu_seconds,
    run_load,
    thread_report,
    thread_times,
)
from bench.homes import HttpHomes
from bench.rawhttp import Connection
from roost.domain.models import TimelineEntry
from roost.storage.database import Tx
from roost.storage.memory.timelines import MemoryHomeTimelineStore


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
    home_celebrities: int = 3
    fanout_followers: int = 10_000
    fanout_repeats: int = 3
    posting_authors: int = 50
    posting_followers_each: int = 500
    posting_follower_pool: int = 5_000
    posting_seconds: float = 30.0
    posting_connections: int = 50
    celebrity_followers: int = 1_000_000
    celebrity_sample: int = 1_000
    celebrity_connections: int = 64
    memory_accounts: int = 20_000
    memory_edges: int = 200_000
    memory_timelines: int = 1_000
    memory_entries_each: int = 800
    seed_accounts: int = 220_000  # about 1,020,000 follow edges with the celebrity
    seed_celebrity: int = 220_000
    drain_timeout: float = 600.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(http_seconds=2, sqlite_seconds=0.5, storm_seconds=3, home_seconds=3,
                   home_following=100, home_authors_posting=30, fanout_followers=1_000,
                   fanout_repeats=2, posting_authors=8, posting_followers_each=50,
                   posting_follower_pool=200, posting_seconds=3, posting_connections=16,
                   celebrity_followers=2_000, celebrity_sample=50, celebrity_connections=16,
                   memory_accounts=1_000, memory_edges=5_000, memory_timelines=50,
                   memory_entries_each=200, seed_accounts=2_000, seed_celebrity=1_000,
                   drain_timeout=20)

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
    backend: Backend
    src: Path | None = None  # serve the roost package from this folder instead
    ceiling: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.backend.name == "production"

    def load(self, load: Load) -> dict[str, Any]:
        return run_load(load, self.work_dir, self.generator, self.wrk_threads)

    def common(self) -> dict[str, Any]:
        out = {**self.backend.describe(), "load_generator": self.generator,
               "wrk_threads": self.wrk_threads if self.generator == "wrk" else None}
        if not self.production:
            out["sqlite_synchronous"] = self.synchronous
        if self.src is not None:
            out["server_src"] = str(self.src)
        return out

    def target(self, name: str, **settings: str) -> Target:
        return self.backend.target(name, **settings)

    def deploy(self, target: Target) -> Deployment:
        return self.backend.deploy(target)


def _ratio(value: float, ceiling: float | None) -> float | None:
    return round(value / ceiling, 3) if ceiling else None


def _measured(deployment: Deployment, ctx: Context, name: str, seconds: float,
              run: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``run`` (the load) while recording the CPU use of the server per thread, of the
    workers, and of PostgreSQL and Redis (all their processes, whoever they serve) and, if
    asked, py-spy profiles of the Roost processes; returns (load result, figures)."""
    pids = deployment.pids
    web = deployment.web_pids
    store_names = ("postgres", "redis-server") if ctx.production else ()
    cpu_before = {role: process_cpu_seconds(pid) for role, pid in pids.items()}
    stores_before = cpu_of(pids_named(*store_names))
    threads_before = [thread_times(pid) for pid in web]
    loadavg_before = load_average()
    ctx.profiler.start(name, pids, seconds)
    began = time.monotonic()
    result = run()
    elapsed = time.monotonic() - began
    threads_after = [thread_times(pid) for pid in web]
    cpu_after = {role: process_cpu_seconds(pid) for role, pid in pids.items()}
    stores_after = cpu_of(pids_named(*store_names))
    ctx.profiler.wait()
    figures: dict[str, Any] = {"loadavg_before": loadavg_before, "loadavg_after": load_average()}
    for role in pids:
        before, after = cpu_before[role], cpu_after[role]
        if before is not None and after is not None:
            key = f"{role}_cpu_percent"
            figures[key] = round(100 * (after - before) / elapsed, 1)
    if store_names:  # connections opened during the window count from zero
        used = sum(cpu - stores_before.get(pid, 0.0) for pid, cpu in stores_after.items())
        figures["postgres_and_redis_cpu_percent"] = round(100 * used / elapsed, 1)
    for n, pid in enumerate(web):
        key = "threads" if len(web) == 1 else f"threads_server{n + 1}"
        figures[key] = thread_report(pid, threads_before[n], threads_after[n], elapsed)
    return result, figures


def _latency(result: dict[str, Any]) -> dict[str, float]:
    lat = result["latency_ms"]
    return {k: lat[k] for k in ("p50", "p90", "p99", "p999", "max", "mean")}


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))],
                     1)

    return {"p50": at(50), "p90": at(90), "p99": at(99), "max": round(ordered[-1], 1),
            "mean": round(statistics.fmean(ordered), 1)}


# -- 1. ceiling ------------------------------------------------------------------------------


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
    if ctx.production:
        target = ctx.target("ceiling")
        assert target.database_url and target.redis_url
        log("ceiling: raw PostgreSQL and Redis")
        ctx.ceiling["postgresql"] = postgresql_ceiling(target.database_url, s.sqlite_seconds)
        ctx.ceiling["redis"] = redis_ceiling(target.redis_url, target.redis_prefix,
                                             s.sqlite_seconds)
    return {
        "name": "ceiling",
        "parameters": {**ctx.common(), "http_seconds": s.http_seconds,
                       "store_seconds": s.sqlite_seconds},
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


def _store_ceiling(ctx: Context, key: str) -> float | None:
    """A raw store figure of this run: PostgreSQL's in production, SQLite's embedded."""
    figures = (ctx.ceiling.get("postgresql", {}) if ctx.production
               else ctx.ceiling.get("sqlite", {}).get(ctx.synchronous, {}))
    value = figures.get(key)
    return float(value) if isinstance(value, (int, float)) and value else None


def _fanout_ceiling(ctx: Context) -> tuple[str, float | None]:
    """Where fan-out writes and how fast that store takes entries, raw: Redis through the
    timeline store's Lua script (production), SQLite's 2,000-row commits (embedded)."""
    if ctx.production:
        value = ctx.ceiling.get("redis", {}).get("entries_per_s_fanout_script_2000_keys")
        return "redis_fanout_script_entries_per_s", float(value) if value else None
    return "sqlite_fanout_rows_per_s", _store_ceiling(ctx, "fanout_rows_per_s_2000_per_commit")


def _store_ceilings(ctx: Context) -> dict[str, Any]:
    if ctx.production:
        pg = ctx.ceiling.get("postgresql", {})
        return {"postgresql_commits_per_s": pg.get("commits_per_s"),
                "postgresql_rows_per_s_64_per_commit": pg.get("rows_per_s_64_per_commit")}
    return {"sqlite_commits_per_s": _store_ceiling(ctx, "commits_per_s"),
            "sqlite_rows_per_s_64_per_commit": _store_ceiling(ctx, "rows_per_s_64_per_commit")}


def _wait_for_jobs(probe: Probe, timeout: float) -> tuple[bool, float]:
    """Poll the job store until nothing is pending (or ``timeout``); (emptied, seconds)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if probe.pending_jobs() == 0:
            return True, time.monotonic() - began
        time.sleep(0.02)
    return False, time.monotonic() - began


# -- 2. follow storm -------------------------------------------------------------------------


def follow_storm(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    target = ctx.target("follow_storm")
    pool = max(1_000, int(s.storm_seconds * s.storm_pool_per_second))
    log(f"follow_storm: preparing 1 target and {pool} followers with tokens")
    with Fixture(target) as fixture:
        (followed,) = fixture.accounts("target", 1)
        followers = fixture.accounts("fan", pool)
        tokens = fixture.tokens(followers)
        (viewer_token,) = fixture.tokens([followed])
    random.Random(1).shuffle(tokens)

    with ctx.deploy(target) as deployment, Probe(target) as probe:
        log(f"follow_storm: {s.storm_connections} connections for {s.storm_seconds}s")
        load = Load(deployment.url, "POST", f"/api/v1/accounts/{followed}/follow", tokens, "",
                    s.storm_connections, s.storm_seconds)
        result, figures = _measured(deployment, ctx, "follow_storm", s.storm_seconds,
                                    lambda: ctx.load(load))
        # wrk stops with up to one follow in flight per connection, which the server still
        # commits: wait until the edges stop changing, then the count over HTTP and the rows.
        edges_sql = "SELECT count(*) FROM follows WHERE target_account_id = :t"
        edges, stable_since = -1, time.monotonic()
        deadline = stable_since + 30
        while time.monotonic() - stable_since < 0.5 and time.monotonic() < deadline:
            now = probe.scalar(edges_sql, t=followed)
            if now != edges:
                edges, stable_since = now, time.monotonic()
            time.sleep(0.05)
        shown = httpx.get(f"{deployment.url}/api/v1/accounts/{followed}",
                          headers={"Authorization": f"Bearer {viewer_token}"}, timeout=30)
        followers_count = int(shown.json()["followers_count"])
        edges = probe.scalar(edges_sql, t=followed)
        events = probe.scalar("SELECT coalesce(sum(delta), 0) FROM follow_events "
                              "WHERE target_account_id = :t", t=followed)
        drained, drain_s = _wait_for_jobs(probe, s.drain_timeout)  # the backfill jobs
    check = ctx.backend.cli(target, "check")
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
    commits = "postgresql_commits_per_s" if ctx.production else "sqlite_commits_per_s"
    return {
        "name": "follow_storm",
        "parameters": {**ctx.common(), "connections": s.storm_connections,
                       "seconds": s.storm_seconds, "follower_pool": pool,
                       "endpoint": "POST /api/v1/accounts/:id/follow"},
        "throughput": {"value": rate, "unit": "follows/s"},
        "latency_ms": _latency(result),
        "ceiling": {"trivial_json_c64_rps": _http_ceiling(ctx, "json_c64"),
                    "bare_follow_c64_rps": _http_ceiling(ctx, "bare_follow_c64"),
                    **_store_ceilings(ctx)},
        "ratio": {"vs_trivial_json": _ratio(rate, _http_ceiling(ctx, "json_c64")),
                  "vs_bare_follow": _ratio(rate, _http_ceiling(ctx, "bare_follow_c64")),
                  "vs_store_commits": _ratio(rate, _store_ceilings(ctx)[commits])},
        "target": {"follows_per_s": 2000, "met": rate >= 2000},
        "server": figures,
        "verified": verified,
    }


# -- 3. home timeline read -------------------------------------------------------------------


def home_read(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    target = ctx.target("home_read")
    n_celebrities = min(s.home_celebrities, s.home_following)
    log(f"home_read: a reader following {s.home_following} accounts ({n_celebrities} of them "
        f"celebrities, pulled at read time), {s.home_authors_posting} ordinary ones with 1-5 "
        "posts")
    with Fixture(target) as fixture:
        (reader,) = fixture.accounts("reader", 1)
        celebrities = fixture.accounts("celebrity", n_celebrities, pulled=True)
        authors = fixture.accounts("author", s.home_following - n_celebrities)
        fixture.follow_edges((reader, a) for a in [*celebrities, *authors])
        posts: list[tuple[int, str]] = []
        for round_ in range(5):  # interleaved so the newest posts come from many authors
            for i, author in enumerate(authors[:s.home_authors_posting]):
                if i % 5 >= round_:
                    mention = f" @author{(i + 1) % len(authors)}" if i % 3 == 0 else ""
                    tag = " #roostbench" if i % 4 == 0 else ""
                    posts.append((author, f"Post {round_} from author {i}{mention}{tag}, "
                                          "with a little text to render."))
            posts.extend((c, f"Celebrity post {round_} from {j}, merged at read time.")
                         for j, c in enumerate(celebrities))
        fixture.post(posts)
        (token,) = fixture.tokens([reader])
        entries = len(fixture.home_page(reader, 10_000))

    with ctx.deploy(target) as deployment:
        path = "/api/v1/timelines/home?limit=20"
        first = httpx.get(deployment.url + path, headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
        page = first.json()
        log(f"home_read: {s.home_connections} connections for {s.home_seconds}s")
        load = Load(deployment.url, "GET", path, [token], "", s.home_connections,
                    s.home_seconds)
        result, figures = _measured(deployment, ctx, "home_read", s.home_seconds,
                                    lambda: ctx.load(load))
        last = httpx.get(deployment.url + path, headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    ids = [int(p["id"]) for p in page]
    from_celebrities = sum(1 for p in page if int(p["account"]["id"]) in celebrities)
    rate = result["ok_rps"]
    p99 = result["latency_ms"]["p99"]
    return {
        "name": "home_read",
        "parameters": {**ctx.common(), "connections": s.home_connections,
                       "seconds": s.home_seconds, "following": s.home_following,
                       "celebrities_followed": n_celebrities, "posts": len(posts),
                       "pushed_home_entries": entries,
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
                     "page_size": len(page), "page_entries_from_celebrities": from_celebrities,
                     "full_page": len(page) == 20 and len(last.json()) == len(page),
                     "celebrities_merged": from_celebrities > 0 or n_celebrities == 0,
                     "newest_first": ids == sorted(ids, reverse=True),
                     "non_2xx": result["errors"]["status"]},
    }


# -- 4. ordinary fan-out ---------------------------------------------------------------------


STALL_S = 5.0  # a fan-out that has not moved for this long with no job pending has stopped


def _await_delivery(delivery: Delivery, probe: Probe, timeout: float,
                    interval: float = 0.002) -> float:
    """Poll until every timeline holds the status (or it stalls, or ``timeout``); returns
    the perf_counter time it was seen complete."""
    deadline = time.perf_counter() + timeout
    seen, last_change = -1, time.perf_counter()
    while time.perf_counter() < deadline:
        now = delivery.poll()
        if now >= delivery.total:
            break
        if now != seen:
            seen, last_change = now, time.perf_counter()
        elif time.perf_counter() - last_change > STALL_S and probe.pending_jobs() == 0:
            break  # nothing left to run and still short: report, do not hang
        time.sleep(interval)
    return delivery.complete_at or time.perf_counter()


def _warm(probe: Probe, deployment: Deployment, tokens: dict[int, str]) -> None:
    """Timelines in the server's memory: every follower reads its home once first, so the
    server holds their timelines and fan-out writes to them, as for followers who read since
    the server started (one who has not gets the posts when its timeline is filled)."""
    homes = HttpHomes(deployment.url, tokens)
    began = time.perf_counter()
    homes.warm(list(tokens))
    log(f"  {len(tokens):,} home timelines read once in {time.perf_counter() - began:.1f}s")
    probe.use(homes)


def fanout(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    target = ctx.target("fanout")
    n = s.fanout_followers
    log(f"fanout: an author with {n} followers")
    with Fixture(target) as fixture:
        (author,) = fixture.accounts("author", 1)
        followers = fixture.accounts("reader", n)
        fixture.follow_edges((f, author) for f in followers)
        sample = random.Random(2).sample(followers, min(20, n))
        author_token, *sample_tokens = fixture.tokens([author, *sample])
        follower_tokens = dict(zip(followers, fixture.tokens(followers), strict=True))

    runs: list[dict[str, Any]] = []
    sample_ok = True
    with ctx.deploy(target) as deployment, Probe(target) as probe, \
            httpx.Client(base_url=deployment.url, timeout=60) as client:
        if probe.in_memory:
            _warm(probe, deployment, follower_tokens)
        for r in range(s.fanout_repeats):
            # Poll the timelines every 2 ms (a count in SQL; in Redis a sample of the
            # timelines still missing the post, then all of them, by ZSCORE in one script).
            began = time.perf_counter()
            posted = client.post("/api/v1/statuses", data={"status": f"Fan-out {r}"},
                                 headers={"Authorization": f"Bearer {author_token}"})
            accepted = time.perf_counter()
            status_id = int(posted.json()["id"])
            delivery = Delivery(probe, status_id, author, followers)
            done = _await_delivery(delivery, probe, s.drain_timeout)
            runs.append({"accept_ms": round((accepted - began) * 1000, 1),
                         "all_delivered_s": round(done - began, 3),
                         "delivered": delivery.delivered,
                         "rows_per_s": round(delivery.delivered / max(done - accepted, 1e-6))})
            for token in sample_tokens:  # and the followers see it over HTTP
                top = client.get("/api/v1/timelines/home", params={"limit": 1},
                                 headers={"Authorization": f"Bearer {token}"}).json()
                sample_ok = sample_ok and bool(top) and int(top[0]["id"]) == status_id
            time.sleep(0.2)
    times = [r["all_delivered_s"] for r in runs]
    median = statistics.median(times)
    key, bulk = _fanout_ceiling(ctx)
    floor = n / bulk if bulk else None
    return {
        "name": "fanout",
        "parameters": {**ctx.common(), "followers": n, "repeats": s.fanout_repeats,
                       "how": "POST /api/v1/statuses, then poll the home timelines every 2 ms "
                              "(SQL: count of home_timeline rows of the status; Redis: ZSCORE "
                              "of the member in the timelines still missing it; in the "
                              "server's memory: until no job is pending, then every "
                              "follower's home over HTTP) until all hold it; plus 20 "
                              "followers' home timelines over HTTP",
                       "timelines_in_server_memory": probe.in_memory},
        "throughput": {"value": round(n / median), "unit": "timeline entries/s (median run)"},
        "latency_ms": {"p50": round(median * 1000, 1), "max": round(max(times) * 1000, 1)},
        "runs": runs,
        "ceiling": {key: bulk, "floor_s": round(floor, 3) if floor else None},
        "ratio": {"entries_per_s_vs_raw_store": _ratio(n / median, bulk)},
        "target": {"all_delivered_s": 2.0, "followers": 10_000, "met": median < 2.0
                   if n >= 10_000 else None},
        "verified": {"all_delivered": all(r["delivered"] == n for r in runs),
                     "sample_sees_post_over_http": sample_ok},
    }


# -- 5. posting ------------------------------------------------------------------------------


class JobWatcher:
    """Samples the job backlog every 100 ms in a thread, for the largest backlog."""

    def __init__(self, target: Target) -> None:
        self.probe = Probe(target)
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        began = time.monotonic()
        while not self.stop.wait(0.1) and time.monotonic() - began < 3600:
            self.samples.append((time.monotonic() - began, self.probe.pending_jobs()))

    def __enter__(self) -> JobWatcher:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self.probe.close()

    @property
    def peak(self) -> int:
        return max((n for _, n in self.samples), default=0)


def posting(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    target = ctx.target("posting")
    n_authors, k, pool_size = s.posting_authors, s.posting_followers_each, s.posting_follower_pool
    k = min(k, pool_size)
    log(f"posting: {n_authors} authors with {k} followers each (pool of {pool_size})")
    with Fixture(target) as fixture:
        authors = fixture.accounts("author", n_authors)
        pool = fixture.accounts("reader", pool_size)
        stride = max(1, pool_size // n_authors)
        followers_of = {author: [pool[(a * stride + j) % pool_size] for j in range(k)]
                        for a, author in enumerate(authors)}
        fixture.follow_edges((f, author) for author, fans in followers_of.items()
                             for f in fans)
        tokens = fixture.tokens(authors)
        reader_tokens = dict(zip(pool, fixture.tokens(pool), strict=True))

    with ctx.deploy(target) as deployment, Probe(target) as probe:
        if probe.in_memory:
            _warm(probe, deployment, reader_tokens)
        with JobWatcher(target) as watcher:
            log(f"posting: {s.posting_connections} connections for {s.posting_seconds}s")
            load = Load(deployment.url, "POST", "/api/v1/statuses", tokens,
                        "status=Bench+post+{n}+%23roost", s.posting_connections,
                        s.posting_seconds)
            result, figures = _measured(deployment, ctx, "posting", s.posting_seconds,
                                        lambda: ctx.load(load))
            backlog_at_end = watcher.samples[-1][1] if watcher.samples else None
            drained, drain_s = _wait_for_jobs(probe, s.drain_timeout)
        posts = probe.scalar("SELECT count(*) FROM statuses")
        entries = probe.home_entries([*authors, *pool])
        latest_ok = True
        for author in authors[:3]:
            latest = probe.scalar("SELECT max(id) FROM statuses WHERE account_id = :a",
                                  a=author)
            got = probe.holding(latest, author, followers_of[author])
            latest_ok = latest_ok and len(got) == k
    rate = result["ok_rps"]
    key, ceiling_bulk = _fanout_ceiling(ctx)
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
                   "timeline_entries_needed_per_s": round(needed_rows_per_s)},
        "ceiling": {"trivial_json_c32_rps": _http_ceiling(ctx, "json_c32"), key: ceiling_bulk,
                    **_store_ceilings(ctx)},
        "ratio": {"vs_trivial_json": _ratio(rate, _http_ceiling(ctx, "json_c32")),
                  "fanout_entries_needed_vs_raw_store": _ratio(needed_rows_per_s,
                                                               ceiling_bulk)},
        "target": {"posts_per_s": 500, "drain_s": 5,
                   "met": rate >= 500 and drained and drain_s <= 5},
        "server": figures,
        "verified": {"posts_stored": posts, "ok_responses": result["requests"]
                     - result["errors"]["status"], "non_2xx": result["errors"]["status"],
                     "home_timeline_entries": entries,
                     "latest_posts_fully_delivered": latest_ok, "drained": drained},
    }


# -- 6. celebrity post -----------------------------------------------------------------------


async def _celebrity_race(url: str, author_token: str, tokens: list[str], marker: str,
                          connections: int, timeout: float) -> dict[str, Any]:
    """Every sampled follower reads its home timeline (limit 20) over and over, through
    ``connections`` kept-alive HTTP connections taking followers from one queue, from the
    moment the post is sent until a page holds it. The post goes through a connection of its
    own. The client is bench/rawhttp.py: httpx took a whole core here."""
    path = "/api/v1/timelines/home?limit=20"
    needle = marker.encode()
    pool = [Connection(url) for _ in range(connections)]
    statuses: list[int] = []

    async def drain(queue: asyncio.Queue[int], on_read: Callable[[int, bool, float], bool],
                    deadline: float) -> None:
        """Each connection takes the next follower, reads; ``on_read`` says whether the
        follower goes back to the end of the queue."""

        async def run(conn: Connection) -> None:
            while time.perf_counter() < deadline:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                sent = time.perf_counter()
                status, body = await conn.get(path, tokens[i])
                statuses.append(status)
                if on_read(i, status == 200 and needle in body, sent):
                    queue.put_nowait(i)

        await asyncio.gather(*(run(c) for c in pool))

    def queue_of_all() -> asyncio.Queue[int]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(tokens)):
            queue.put_nowait(i)
        return queue

    warm_had: list[int] = []

    def on_warm_read(i: int, has: bool, _sent: float) -> bool:
        if has:
            warm_had.append(i)
        return False  # once each

    began = time.perf_counter()  # each follower once before the post (connections, caches)
    await drain(queue_of_all(), on_warm_read, began + timeout)
    warm_s = time.perf_counter() - began
    warm_statuses, statuses = statuses, []

    seen: dict[int, float] = {}
    stale_after_accept = 0
    accepted_at: float | None = None

    async def post() -> httpx.Response:
        nonlocal accepted_at
        async with httpx.AsyncClient(base_url=url, timeout=60) as poster:
            response = await poster.post(
                "/api/v1/statuses", data={"status": f"Celebrity post {marker}"},
                headers={"Authorization": f"Bearer {author_token}"})
        accepted_at = time.perf_counter()
        return response

    def on_read(i: int, has: bool, sent: float) -> bool:
        nonlocal stale_after_accept
        if has:
            seen[i] = time.perf_counter() - t0
            return False
        if accepted_at is not None and sent > accepted_at:
            stale_after_accept += 1  # asked after the post was accepted, and not in it
        return True

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    posting = asyncio.create_task(post())
    await drain(queue_of_all(), on_read, t0 + timeout)
    posted = await posting
    elapsed = time.perf_counter() - t0
    client_cpu = time.process_time() - cpu0
    for conn in pool:
        await conn.close()
    return {"seen_s": [seen.get(i) for i in range(len(tokens))],
            "post_status": posted.status_code,
            "accept_ms": round(((accepted_at or t0) - t0) * 1000, 1),
            "status_id": int(posted.json().get("id", 0)) if posted.status_code == 200 else 0,
            "reads": len(statuses), "reads_per_s": round(len(statuses) / elapsed, 1),
            "client_cpu_percent": round(100 * client_cpu / elapsed, 1),
            "non_200_reads": sum(1 for s in statuses if s != 200),
            "warm_reads_per_s": round(len(tokens) / warm_s, 1),
            "warm_non_200": sum(1 for s in warm_statuses if s != 200),
            "warm_already_had_it": len(warm_had),
            "stale_reads_after_accept": stale_after_accept}


def celebrity(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    n = s.celebrity_followers
    # The author is above the pull threshold: its posts are merged into home timelines at
    # read time. Small (--quick) runs lower the threshold to match.
    settings = ({} if n >= 50_000 else
                {"ROOST_FANOUT_PULL_ABOVE": str(n), "ROOST_FANOUT_PUSH_BELOW": str(n // 2)})
    target = ctx.target("celebrity", **settings)
    log(f"celebrity: bulk-loading an author with {n:,} followers (setup, not measured)")
    setup = {}
    began = time.monotonic()
    with Fixture(target) as fixture:
        (author,) = fixture.accounts("celebrity", 1, pulled=True)
        followers = fixture.accounts("fan", n)
        setup["accounts_s"] = round(time.monotonic() - began, 1)
        stage = time.monotonic()
        fixture.follow_edges((f, author) for f in followers)
        setup["follows_s"] = round(time.monotonic() - stage, 1)
        fixture.post([(author, f"Earlier celebrity post {i}") for i in range(3)])
        sample = random.Random(3).sample(followers, min(s.celebrity_sample, n))
        author_token, *tokens = fixture.tokens([author, *sample])
        stage = time.monotonic()
    setup["history_rollup_s"] = round(time.monotonic() - stage, 1)
    setup["total_s"] = round(time.monotonic() - began, 1)
    log(f"celebrity: setup took {setup['total_s']}s ({setup})")

    marker = f"celeb{random.getrandbits(48):012x}"
    with ctx.deploy(target) as deployment, Probe(target) as probe:
        log(f"celebrity: posting, then {len(tokens)} followers read their home timelines "
            f"over {s.celebrity_connections} connections until the post shows")
        race, figures = _measured(deployment, ctx, "celebrity", 10, lambda: asyncio.run(
            _celebrity_race(deployment.url, author_token, tokens, marker,
                            s.celebrity_connections, timeout=120)))
        pushed = probe.scalar("SELECT count(*) FROM statuses WHERE id = :s AND pushed = :t",
                              s=race["status_id"], t=True)
        pending = probe.pending_jobs()
    seen = [t for t in race.pop("seen_s") if t is not None]
    ms = [t * 1000 for t in seen]
    within = sum(1 for t in seen if t <= 1.0)
    home_rate = race["reads_per_s"]
    return {
        "name": "celebrity",
        "parameters": {**ctx.common(), "followers": n, "sample": len(tokens),
                       "connections": s.celebrity_connections, "setup_s": setup,
                       "how": "the sampled followers read GET /api/v1/timelines/home?limit=20 "
                              "over and over from the moment the post is sent; a follower's "
                              "time is when the first page holding the post arrived"},
        "throughput": {"value": race["reads_per_s"],
                       "unit": "home reads/s while waiting for the post"},
        "latency_ms": _percentiles(ms),
        "within_1s": within,
        "race": race,
        "ceiling": {"trivial_json_c64_rps": _http_ceiling(ctx, "json_c64"),
                    "first_reads_per_s_before_post": race["warm_reads_per_s"],
                    "floor_s_to_read_sample_once_at_race_rate":
                        round(len(tokens) / home_rate, 3) if home_rate else None},
        "ratio": {"reads_vs_trivial_json": _ratio(race["reads_per_s"],
                                                  _http_ceiling(ctx, "json_c64"))},
        "target": {"every_sampled_follower_within_s": 1.0,
                   "met": within == len(tokens) and len(tokens) > 0},
        "server": figures,
        "verified": {"every_follower_saw_it": len(seen) == len(tokens),
                     "post_accepted": race["post_status"] == 200,
                     "no_stale_read_after_accept": race["stale_reads_after_accept"] == 0,
                     "merged_at_read_not_pushed": pushed == 0,
                     "no_fanout_job_left": pending == 0,
                     "not_seen_before_post": race["warm_already_had_it"] == 0,
                     "non_2xx": race["non_200_reads"] + race["warm_non_200"]},
    }


# -- 7. memory -------------------------------------------------------------------------------


def _relation_bytes(probe: Probe, tables: list[str]) -> dict[str, int]:
    """Bytes of each table with its indexes: dbstat pages on SQLite, pg_total_relation_size
    (heap, indexes, TOAST, free-space and visibility maps) on PostgreSQL."""
    if probe.roost.db.is_sqlite:
        out = dict.fromkeys(tables, 0)
        rows = probe.roost.db.read_sync(lambda tx: list(tx.execute(text(
            "SELECT m.tbl_name, sum(d.pgsize) FROM dbstat d JOIN sqlite_master m "
            "ON m.name = d.name GROUP BY m.tbl_name"))))
        out.update({str(t): int(b) for t, b in rows if t in out})
        return out
    return {t: probe.scalar("SELECT pg_total_relation_size(:t)", t=t) for t in tables}


def _redis_bytes(probe: Probe, accounts: list[int]) -> dict[str, int]:
    """MEMORY USAGE (exact, SAMPLES 0) summed over the accounts' timeline keys, and the
    server's used_memory."""
    assert probe.redis is not None
    key_of = probe.home.key  # type: ignore[attr-defined]
    total = 0
    pipe = probe.redis.pipeline(transaction=False)
    for start in range(0, len(accounts), 2_000):
        for account in accounts[start:start + 2_000]:
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "MEMORY USAGE", key_of(account), "SAMPLES", "0")
        total += sum(int(b or 0) for b in pipe.execute())
    return {"memory_usage_sum": total,
            "used_memory": int(probe.redis.info("memory")["used_memory"])}


def _memory_store_bytes(probe: Probe, owners: list[int],
                        entries: list[TimelineEntry]) -> float:
    """Bytes per entry of the in-memory home timeline store (the embedded server's), built
    here in the harness with the same timelines: Python's allocations while it fills them."""
    store = MemoryHomeTimelineStore(cap=len(entries))
    newest_first = entries[::-1]

    def fill(tx: Tx) -> None:
        for owner in owners:
            store.missing(tx, owner)
            store.fill(tx, owner, newest_first)

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        probe.roost.db.read_sync(fill)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert store.held() == (len(owners), len(owners) * len(entries))
    return round(grown / (len(owners) * len(entries)), 1)


def memory(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    target = ctx.target("memory")
    rng = random.Random(6)
    graph_tables = ["follows", "follow_events", "account_counters"]
    out: dict[str, Any] = {}
    with Fixture(target) as fixture, Probe(target) as probe:
        log(f"memory: {s.memory_edges:,} follow edges among {s.memory_accounts:,} accounts")
        people = fixture.accounts("user", s.memory_accounts)
        before = _relation_bytes(probe, graph_tables)
        pairs: set[tuple[int, int]] = set()
        while len(pairs) < s.memory_edges:
            a, b = rng.sample(people, 2)
            pairs.add((a, b))
        fixture.follow_edges(sorted(pairs, key=lambda _: rng.random()))
        after = _relation_bytes(probe, graph_tables)
        edge = {t: round((after[t] - before[t]) / s.memory_edges, 1) for t in graph_tables}
        out["follow_edge"] = {
            "edges": s.memory_edges, "accounts": s.memory_accounts,
            "bytes_per_edge_follows_with_indexes": edge["follows"],
            "bytes_per_edge_follow_events_history": edge["follow_events"],
            "bytes_per_edge_account_counters": edge["account_counters"],
            "table_bytes": after}

        timelines, length = s.memory_timelines, s.memory_entries_each
        entries = timelines * length
        readers = fixture.accounts("reader", timelines)
        authors = people[:50]
        statuses = fixture.ids(length)  # in time order, each fanned out to every reader
        log(f"memory: {entries:,} home timeline entries ({timelines:,} timelines of {length})")
        before = _relation_bytes(probe, ["home_timeline"])
        fixture.home_entries((r, st, authors[i % 50]) for i, st in enumerate(statuses)
                             for r in readers)
        after = _relation_bytes(probe, ["home_timeline"])
        sql_key = "postgresql" if ctx.production else "sqlite"
        out[f"home_entry_{sql_key}"] = {
            "entries": entries, "timelines": timelines, "entries_each": length,
            "bytes_per_entry_with_indexes": round(
                (after["home_timeline"] - before["home_timeline"]) / entries, 1),
            "used_by_this_backend": not ctx.production and not probe.in_memory}
        if probe.in_memory:
            out["home_entry_memory"] = {
                "entries": entries, "timelines": timelines, "entries_each": length,
                "bytes_per_entry_tracemalloc": _memory_store_bytes(
                    probe, readers, [TimelineEntry(st, authors[i % 50])
                                     for i, st in enumerate(statuses)]),
                "used_by_this_backend": True}
        if ctx.production:
            for label, count, each in (("full", timelines, length),
                                       ("short", timelines, min(100, length))):
                owners = fixture.accounts(f"redis{label}", count)
                log(f"memory: {count * each:,} Redis timeline entries ({label}: {count:,} "
                    f"timelines of {each})")
                start = _redis_bytes(probe, owners)
                for owner in owners:
                    fixture.timeline_entries(owner, [(st, authors[i % 50]) for i, st in
                                                     enumerate(statuses[:each])])
                end = _redis_bytes(probe, owners)
                stored = probe.home_entries(owners[:10])
                out[f"home_entry_redis_{label}"] = {
                    "entries": count * each, "timelines": count, "entries_each": each,
                    "bytes_per_entry_memory_usage": round(end["memory_usage_sum"]
                                                          / (count * each), 1),
                    "bytes_per_entry_used_memory_delta": round(
                        (end["used_memory"] - start["used_memory"]) / (count * each), 1),
                    "stored_as_expected": stored == 10 * each,
                    "used_by_this_backend": True}
    headline = (out.get("home_entry_redis_full", {}).get("bytes_per_entry_memory_usage")
                if ctx.production else
                out["home_entry_memory"]["bytes_per_entry_tracemalloc"]
                if "home_entry_memory" in out else
                out["home_entry_sqlite"]["bytes_per_entry_with_indexes"])
    return {
        "name": "memory",
        "parameters": {**ctx.common(), "accounts": s.memory_accounts, "edges": s.memory_edges,
                       "timelines": s.memory_timelines,
                       "entries_each": s.memory_entries_each},
        "throughput": {"value": headline, "unit": "bytes per home timeline entry"},
        "latency_ms": {},
        "memory": out,
        "ceiling": {},
        "ratio": {},
        "verified": {"redis_entries_stored": all(v.get("stored_as_expected", True)
                                                 for v in out.values())},
    }


# -- 8. seed ---------------------------------------------------------------------------------


SEEDED = re.compile(r"Seeded ([\d,]+) accounts, ([\d,]+) follows and ([\d,]+) posts in "
                    r"([\d.]+)s")


def seed(ctx: Context) -> dict[str, Any]:
    """`roost seed` on a fresh target, sized for about a million follow edges; then
    `roost check`. Timed from outside (process start and schema creation included)."""
    s = ctx.sizes
    target = ctx.target("seed")
    args = ["seed", "--accounts", str(s.seed_accounts), "--celebrity",
            f"star={s.seed_celebrity}", "--posts", "1", "--days", "7"]
    log(f"seed: roost {' '.join(args)}")
    began = time.perf_counter()
    done = ctx.backend.cli(target, *args, timeout=3600)
    wall = time.perf_counter() - began
    match = SEEDED.search(done.stdout)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"roost seed failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    follows_n = int(match.group(2).replace(",", ""))
    log(f"seed: {follows_n:,} follows in {wall:.1f}s; roost check")
    began = time.perf_counter()
    check = ctx.backend.cli(target, "check", timeout=3600)
    check_s = time.perf_counter() - began
    return {
        "name": "seed",
        "parameters": {**ctx.common(), "command": "roost " + " ".join(args)},
        "throughput": {"value": round(follows_n / wall), "unit": "follow edges/s (wall)"},
        "latency_ms": {},
        "seeded": {"accounts": int(match.group(1).replace(",", "")), "follows": follows_n,
                   "posts": int(match.group(3).replace(",", "")),
                   "reported_s": float(match.group(4)), "wall_s": round(wall, 1),
                   "stages": [line for line in done.stdout.splitlines()
                              if line.split(":")[0] in ("graph", "accounts", "follows",
                                                        "history", "posts", "statistics")],
                   "roost_check_s": round(check_s, 1)},
        "ceiling": {"postgresql_copy_rows_per_s": _store_ceiling(ctx, "copy_rows_per_s")}
        if ctx.production else {},
        "ratio": {},
        "target": {"edges": 1_000_000, "seconds": 60,
                   "met": follows_n >= 1_000_000 and wall < 60 if follows_n >= 1_000_000
                   else None},
        "verified": {"roost_check_clean": check.returncode == 0,
                     "roost_check_output": check.stdout.strip()[-300:]},
    }


WORKLOADS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "ceiling": ceiling,
    "follow_storm": follow_storm,
    "home_read": home_read,
    "fanout": fanout,
    "posting": posting,
    "celebrity": celebrity,
    "memory": memory,
    "seed": seed,
}
