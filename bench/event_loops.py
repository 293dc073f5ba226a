"""The event loop under saturation: asyncio against uvloop, without Roost.

    .venv/bin/python -m bench.event_loops [--seconds 8] [--rounds 2]

The ceiling app (bench/ceiling_app.py) under each loop, 32 connections of wrk: ``GET /cpu``
(1.2 ms of CPU on the event loop and a 25 KB answer: an embedded home read whose reads run
inline) and ``GET /json`` (the trivial endpoint). Prints one JSON object: per loop and
endpoint, each round's requests/s and latency percentiles. Why Roost serves on asyncio
(ROOST_EVENT_LOOP): see BENCHMARKS.md, "bounded reads on the event loop".
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import Load, ceiling_server, have_wrk, log, run_load

LOOPS = ("asyncio", "uvloop")
PATHS = ("/cpu", "/json")


def measure(work: Path, loop: str, seconds: float) -> dict[str, dict[str, Any]]:
    server = ceiling_server(work, "NORMAL", loop)
    server.start()
    try:
        out = {}
        for path in PATHS:
            result = run_load(Load(server.url, "GET", path, (), "", 32, seconds), work, "wrk")
            lat = result["latency_ms"]
            out[path] = {"rps": result["ok_rps"],
                         **{k: lat[k] for k in ("p50", "p90", "p99", "max")}}
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not have_wrk():
        raise SystemExit("wrk is needed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="roost-loops-"))
    rounds: dict[str, list[dict[str, dict[str, Any]]]] = {loop: [] for loop in LOOPS}
    try:
        for n in range(args.rounds):  # interleaved, so both loops see the same machine
            for loop in LOOPS:
                log(f"event_loops: round {n + 1}, {loop}")
                rounds[loop].append(measure(work, loop, args.seconds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"name": "event_loops", "connections": 32, "seconds": args.seconds,
                      "rounds": rounds}))


if __name__ == "__main__":
    main()
