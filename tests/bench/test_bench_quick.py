"""The benchmark suite runs end to end in its smallest configuration: `python -m bench` starts
the ceiling app and a real `roost serve` (and, in production, `roost worker` on PostgreSQL and
Redis), drives them over HTTP, and prints one JSON object per workload whose correctness checks
hold. Speed is not checked here (see BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import redis

from tests.services import unusable

REPO = Path(__file__).resolve().parents[2]


def run_bench(*args: str) -> dict[str, dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {r["name"]: r for r in results}


def test_quick_bench_follow_storm_and_fanout(tmp_path: Path) -> None:
    results = run_bench("ceiling", "follow_storm", "fanout", "--quick", "--seconds", "1",
                        "--tmp", str(tmp_path))
    assert set(results) == {"ceiling", "follow_storm", "fanout"}
    for result in results.values():
        assert {"name", "parameters", "throughput", "latency_ms", "ceiling", "ratio"} <= set(result)
        assert result.get("ok", True), result.get("verified")
        assert result["throughput"]["value"] > 0 and result["throughput"]["unit"]
        assert result["parameters"]["load_generator"] in ("wrk", "httpx")
        assert "p50" in result["latency_ms"]

    http = results["ceiling"]["ceiling"]["http"]
    assert {"json_c32", "json_c64", "hop_c32", "bare_follow_c64"} <= set(http)
    assert all(v["rps"] > 0 and v["errors"] == 0 for v in http.values())
    sqlite = results["ceiling"]["ceiling"]["sqlite"]
    assert set(sqlite) == {"FULL", "NORMAL"}
    assert all(v["commits_per_s"] > 0 for v in sqlite.values())

    storm = results["follow_storm"]
    verified = storm["verified"]
    assert verified["non_2xx"] == 0
    assert verified["followers_count"] == verified["edges"] > 0
    assert verified["followers_count_equals_edges"] and verified["edges_match_responses"]
    assert verified["roost_check_clean"], verified["roost_check_output"]
    assert verified["backfill_jobs_drained"]
    assert storm["ratio"]["vs_trivial_json"] is not None
    assert {"p50", "p99"} <= set(storm["latency_ms"])

    fanout = results["fanout"]
    assert fanout["verified"] == {"all_delivered": True, "sample_sees_post_over_http": True}
    assert all(run["delivered"] == fanout["parameters"]["followers"] for run in fanout["runs"])

    assert not list(tmp_path.iterdir()), "the temporary data should be removed"


def test_quick_bench_production(tmp_path: Path, redis_url: str) -> None:
    """(Without Redis or PostgreSQL this skips, and fails under CI: the ``redis_url`` fixture
    and the check below.)"""
    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2).close()
    except psycopg.Error as exc:
        unusable(f"PostgreSQL at 127.0.0.1:5432 is not usable: {exc}")
    results = run_bench("--backend", "production", "ceiling", "follow_storm", "fanout",
                        "celebrity", "--quick", "--seconds", "1", "--tmp", str(tmp_path))
    assert set(results) == {"ceiling", "follow_storm", "fanout", "celebrity"}
    for result in results.values():
        assert result["parameters"]["backend"] == "production"
        assert result.get("ok", True), result.get("verified")
    ceiling = results["ceiling"]["ceiling"]
    assert ceiling["postgresql"]["commits_per_s"] > 0
    assert ceiling["postgresql"]["fanout_rows_per_s_2000_per_commit"] > 0
    assert ceiling["redis"]["zadd_per_s_redis_py_pipeline"] > 0
    assert ceiling["redis"]["entries_per_s_fanout_script_2000_keys"] > 0

    storm = results["follow_storm"]
    assert storm["verified"]["followers_count_equals_edges"]
    assert storm["verified"]["roost_check_clean"], storm["verified"]["roost_check_output"]
    assert storm["server"]["worker1_cpu_percent"] is not None

    fanout = results["fanout"]  # checked in the Redis home timelines
    assert fanout["verified"] == {"all_delivered": True, "sample_sees_post_over_http": True}
    assert "redis_fanout_script_entries_per_s" in fanout["ceiling"]

    celebrity = results["celebrity"]
    assert celebrity["verified"]["every_follower_saw_it"]
    assert celebrity["verified"]["merged_at_read_not_pushed"]
    assert celebrity["latency_ms"]["max"] > 0

    # the databases are dropped and the keys deleted
    run_id = storm["parameters"]["run_id"]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s",
                            (f"roost_bench_{run_id}%",)).fetchone()
    assert left == (0,)
    client = redis.Redis(host="127.0.0.1", port=6379)
    assert not list(client.scan_iter(match=f"roostbench:{run_id}:*", count=1000))
    client.close()
    assert not list(tmp_path.iterdir()), "the temporary data should be removed"


def test_auth_bench_runs() -> None:
    """`python -m bench.auth` (in process, here on SQLite) authenticates every token it made."""
    done = subprocess.run([sys.executable, "-m", "bench.auth", "--engine", "sqlite",
                           "--tokens", "20", "--rounds", "2"], cwd=REPO, capture_output=True,
                          text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["name"] == "auth" and len(result["rounds"]) == 2
    assert all(r["wall_us"] > 0 for r in result["rounds"])


def test_fill_bench_runs() -> None:
    """`python -m bench.fill` (here on SQLite, small): each reader's fill is a full timeline,
    or every post when there are fewer."""
    done = subprocess.run([sys.executable, "-m", "bench.fill", "--following", "3", "30",
                           "--posts", "10", "--repeat", "2"], cwd=REPO, capture_output=True,
                          text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["workload"] == "home_fill"
    assert {k: v["entries"] for k, v in result["fills"].items()} == {"3": 30, "30": 300}
    assert all(v["p50_ms"] > 0 for v in result["fills"].values())


def test_endpoints_bench_runs() -> None:
    """`python -m bench.endpoints` (embedded, a small community): every endpoint it times
    answered (any non-2xx fails the run) and was timed."""
    done = subprocess.run([sys.executable, "-m", "bench.endpoints", "--accounts", "300",
                           "--celebrity-followers", "200", "--repeat", "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["workload"] == "endpoints" and result["as"]["following"] >= 1
    assert len(result["endpoints"]) >= 35
    assert all(f["p50_ms"] > 0 for f in result["endpoints"].values())
