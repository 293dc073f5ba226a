"""Fallback load generator (asyncio + httpx) for machines without wrk; same contract as
bench/lua/bench.lua: one bearer token per request, round-robin, and one JSON line at the end.

It is far slower than wrk (Python on the client side takes CPU from the server on a small
machine), so its figures are lower bounds; results say which generator produced them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from pathlib import Path

import httpx


def percentile(sorted_values: list[int], p: float) -> int:
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict[str, object]:
    tokens = [t for t in Path(args.tokens).read_text().splitlines() if t]
    counter = itertools.count()
    latencies: list[int] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    limits = httpx.Limits(max_connections=args.connections,
                          max_keepalive_connections=args.connections)
    start = time.perf_counter()
    deadline = start + args.seconds
    wrapped = 0
    received = 0

    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal wrapped, received
            while time.perf_counter() < deadline:
                n = next(counter)
                if n >= len(tokens):
                    wrapped += 1
                token = tokens[n % len(tokens)]
                headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
                content = None
                if args.body:
                    content = args.body.replace("{n}", str(n)).encode()
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                began = time.perf_counter()
                try:
                    response = await client.request(args.method, args.url, headers=headers,
                                                    content=content)
                    await response.aread()
                except httpx.TimeoutException:
                    errors["timeout"] += 1
                    continue
                except httpx.HTTPError:
                    errors["read"] += 1
                    continue
                latencies.append(int((time.perf_counter() - began) * 1e6))
                received += len(response.content)
                if response.status_code > 399:
                    errors["status"] += 1

        await asyncio.gather(*(worker() for _ in range(args.connections)))
    duration = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies), "duration_us": int(duration * 1e6), "bytes": received,
        "wrapped": wrapped, "errors": errors,
        "latency_us": {
            "min": latencies[0] if latencies else 0,
            "mean": sum(latencies) / len(latencies) if latencies else 0.0,
            "max": latencies[-1] if latencies else 0,
            "p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99), "p999": percentile(latencies, 99.9),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--body", default="")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
