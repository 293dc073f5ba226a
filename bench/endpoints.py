"""Every endpoint's latency on a seeded community: statements whose plans do not scale show here.

    .venv/bin/python -m bench.endpoints [--backend embedded|production] [--accounts 100000]
                                        [--celebrity-followers 100000] [--repeat 5]

The workloads of ``python -m bench`` each exercise one hot path; a statement that is fast on a
test's few rows and walks a whole table on a real community can hide anywhere else (a LATERAL
join that PostgreSQL needed and SQLite did not, BENCHMARKS.md). This seeds a community
(`roost seed`: ``--accounts`` power-law accounts, 3 posts each, and one celebrity, ``star``,
with ``--celebrity-followers``), starts `roost serve` (and a worker in production), has a few
seeded accounts post, reply, favourite, reblog, bookmark and follow over the API, then times
each endpoint ``--repeat`` times, one request at a time, as the account that follows the most
of those sampled. Prints one JSON object: each endpoint's median and worst milliseconds, the
trivial endpoint's (`/api/v1/instance`) beside them, and the endpoints slower than
``--slow-ms``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.backends import make_backend
from bench.fixtures import Fixture
from bench.harness import log

TAG = "roostscale"


class Client:
    """One account's bearer token against the server, failing loudly on any non-2xx."""

    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 timeout=120)

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json() if "json" in response.headers.get("content-type", "") else None

    def post(self, path: str, **data: Any) -> Any:
        response = self.http.post(path, data=data)
        response.raise_for_status()
        return response.json()


def _tokens(target: Any, usernames: list[str]) -> dict[str, str]:
    """A token for each of these seeded accounts (made in one process, not one each)."""
    with Fixture(target) as fixture:
        roost = fixture.roost
        ids = [roost.db.read_sync(lambda tx, n=name: roost.stores.accounts.by_username(tx, n)).id
               for name in usernames]
        return dict(zip(usernames, fixture.tokens(ids), strict=True))


def _timed(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    call()  # (a first call warms caches and prepared statements)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def activity(me: Client, star: Client, others: list[Client]) -> dict[str, Any]:
    """Posts, replies, favourites, reblogs, bookmarks and follows over the API; the ids the
    timed requests then ask about."""
    star_post = star.post("/api/v1/statuses", status=f"Hello, followers #{TAG}")
    mine = me.post("/api/v1/statuses", status=f"@star a question #{TAG}",
                   in_reply_to_id=star_post["id"])
    for n, other in enumerate(others):
        other.post("/api/v1/statuses", status=f"Reply {n} #{TAG}", in_reply_to_id=mine["id"])
        other.post(f"/api/v1/statuses/{star_post['id']}/favourite")
        other.post(f"/api/v1/statuses/{star_post['id']}/reblog")
    me.post(f"/api/v1/statuses/{star_post['id']}/bookmark")
    me.post(f"/api/v1/statuses/{star_post['id']}/favourite")
    return {"star_post": star_post["id"], "mine": mine["id"]}


def endpoints(me: Client, star_id: str, me_id: str, ids: dict[str, Any], old_status: str,
              nth: int) -> dict[str, Callable[[], Any]]:
    account = f"/api/v1/accounts/{star_id}"
    status = f"/api/v1/statuses/{ids['star_post']}"
    roost = f"/api/v1/roost/accounts/{star_id}/followers"
    return {
        "instance (trivial)": lambda: me.get("/api/v1/instance"),
        "home": lambda: me.get("/api/v1/timelines/home"),
        "home, max_id deep": lambda: me.get("/api/v1/timelines/home", max_id=old_status),
        "public": lambda: me.get("/api/v1/timelines/public"),
        "public, local, max_id deep": lambda: me.get("/api/v1/timelines/public", local="true",
                                                     max_id=old_status),
        "tag": lambda: me.get(f"/api/v1/timelines/tag/{TAG}"),
        "account": lambda: me.get(account),
        "account statuses": lambda: me.get(f"{account}/statuses"),
        "account statuses, exclude_replies": lambda: me.get(f"{account}/statuses",
                                                            exclude_replies="true"),
        "account followers": lambda: me.get(f"{account}/followers", limit=40),
        "account following (me)": lambda: me.get(f"/api/v1/accounts/{me_id}/following",
                                                 limit=80),
        "lookup": lambda: me.get("/api/v1/accounts/lookup", acct="star"),
        "relationships": lambda: me.get("/api/v1/accounts/relationships",
                                        **{"id[]": [star_id, me_id]}),
        "familiar_followers": lambda: me.get("/api/v1/accounts/familiar_followers",
                                             **{"id[]": star_id}),
        "accounts search": lambda: me.get("/api/v1/accounts/search", q="user12"),
        "v2 search, accounts": lambda: me.get("/api/v2/search", q="user12", type="accounts"),
        "v2 search, hashtags": lambda: me.get("/api/v2/search", q=TAG, type="hashtags"),
        "verify_credentials": lambda: me.get("/api/v1/accounts/verify_credentials"),
        "status": lambda: me.get(status),
        "status context": lambda: me.get(f"{status}/context"),
        "favourited_by": lambda: me.get(f"{status}/favourited_by"),
        "reblogged_by": lambda: me.get(f"{status}/reblogged_by"),
        "notifications": lambda: me.get("/api/v1/notifications"),
        "favourites": lambda: me.get("/api/v1/favourites"),
        "bookmarks": lambda: me.get("/api/v1/bookmarks"),
        "follow_requests": lambda: me.get("/api/v1/follow_requests"),
        "markers": lambda: me.get("/api/v1/markers", **{"timeline[]": "home"}),
        "followers count (roost)": lambda: me.get(f"{roost}/count"),
        "followers history (roost)": lambda: me.get(f"{roost}/history"),
        "nth follower (roost)": lambda: me.get(f"{roost}/nth/{nth}"),
        "followers stats (roost)": lambda: me.get(f"{roost}/stats"),
        "milestones (roost)": lambda: me.get(f"/api/v1/roost/accounts/{star_id}/milestones"),
        "profile page": lambda: me.get("/@star"),
        "followers page": lambda: me.get("/@star/followers"),
        "stats page": lambda: me.get("/@star/stats"),
        "public page": lambda: me.get("/public"),
        "tag page": lambda: me.get(f"/tags/{TAG}"),
        "follow + unfollow star": lambda: (me.post(f"{account}/follow"),
                                           me.post(f"{account}/unfollow")),
        "post + delete": lambda: me.http.delete(
            f"/api/v1/statuses/{me.post('/api/v1/statuses', status='scratch')['id']}"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoints", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["embedded", "production"], default="embedded")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--celebrity-followers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slow-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="roost-endpoints-") as work:
        backend = make_backend(args.backend, Path(work), "NORMAL", None, None, False)
        try:
            target = backend.target("endpoints")
            seed = ["seed", "--accounts", str(args.accounts), "--celebrity",
                    f"star={args.celebrity_followers}", "--posts", "3"]
            log(f"endpoints: roost {' '.join(seed)}")
            done = backend.cli(target, *seed, timeout=3600)
            if done.returncode != 0:
                raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
            sampled = [f"user{n}" for n in range(1, 41)]
            tokens = _tokens(target, ["star", *sampled])
            with backend.deploy(target) as deployment:
                clients = {name: Client(deployment.url, token) for name, token in tokens.items()}
                following = {name: clients[name].get("/api/v1/accounts/verify_credentials")
                             for name in sampled}
                heaviest = max(sampled, key=lambda n: following[n]["following_count"])
                me, star = clients[heaviest], clients["star"]
                star_id = me.get("/api/v1/accounts/lookup", acct="star")["id"]
                me.post(f"/api/v1/accounts/{star_id}/follow")
                ids = activity(me, star, [clients[n] for n in sampled[:10] if n != heaviest])
                oldest = me.get("/api/v1/timelines/public", limit=40)[-1]["id"]
                time.sleep(1)  # (the fan-outs of the activity)
                log(f"endpoints: timing {args.repeat} requests each as {heaviest} "
                    f"(following {following[heaviest]['following_count']})")
                figures = {name: _timed(call, args.repeat) for name, call in endpoints(
                    me, star_id, following[heaviest]["id"], ids, oldest,
                    max(1, args.celebrity_followers // 2)).items()}
        finally:
            backend.cleanup()
    slow = sorted((name for name, f in figures.items() if f["p50_ms"] > args.slow_ms),
                  key=lambda name: -figures[name]["p50_ms"])
    print(json.dumps({"workload": "endpoints", "backend": args.backend,
                      "accounts": args.accounts, "celebrity_followers": args.celebrity_followers,
                      "as": {"account": heaviest,
                             "following": following[heaviest]["following_count"]},
                      "endpoints": figures, "slow": slow}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
