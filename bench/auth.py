"""Authenticating a token not seen lately, in process: the read every first request of a client
pays (every follower's first home read in the celebrity workload, every follow of the follow
storm, whose followers each use their own token).

    .venv/bin/python -m bench.auth [--engine postgresql|sqlite] [--tokens N] [--rounds R]

Prints one JSON object: per round, the wall time and the event loop thread's CPU per
authentication (the read itself runs on a reader thread), with nothing remembered
(``ROOST_AUTH_CACHE_SECONDS=0``). To compare with another source tree, run it with
``PYTHONPATH=<that tree>/src:<that tree>`` in front.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.backends import Target, scratch_database
from bench.fixtures import Fixture


async def _authenticate_all(fixture: Fixture, tokens: list[str]) -> dict[str, float]:
    cpu, wall = time.thread_time(), time.perf_counter()
    for token in tokens:
        found = await fixture.roost.oauth.authenticate(token)
        assert found is not None and found.account is not None
    count = len(tokens)
    return {"wall_us": round((time.perf_counter() - wall) / count * 1e6, 1),
            "loop_cpu_us": round((time.thread_time() - cpu) / count * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--tokens", type=int, default=1000, help="tokens per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with scratch_database(args.engine, "roost-auth") as url:
        data_dir = Path(tempfile.mkdtemp(prefix="roost-auth-"))
        target = Target("auth", data_dir, "NORMAL",
                        database_url=url if args.engine == "postgresql" else None,
                        overrides={"ROOST_AUTH_CACHE_SECONDS": "0"})
        with Fixture(target) as fixture:
            count = args.tokens * args.rounds
            ids = fixture.accounts("reader", count)
            tokens = fixture.tokens(ids)
            # Every account with counter rows, as real ones have.
            fixture.follow_edges([(ids[i], ids[(i + 1) % count]) for i in range(count)])
            fixture.analyze()
            rounds = [asyncio.run(_authenticate_all(
                fixture, tokens[r * args.tokens:(r + 1) * args.tokens]))
                for r in range(args.rounds)]
    print(json.dumps({"name": "auth", "engine": args.engine, "tokens_per_round": args.tokens,
                      "rounds": rounds}))


if __name__ == "__main__":
    main()
