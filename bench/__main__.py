"""Benchmarks of Roost's hot paths, over HTTP against a real `roost serve`, on either backend.

    .venv/bin/python -m bench [workload ...] [--backend embedded|production] [--workers N]
                              [--quick] [--seconds S] [--profile DIR [--profile-gil]]

Workloads: ceiling, follow_storm, home_read, fanout, posting, celebrity, memory, seed
(default: all, in that order). The ceiling is always measured first, in the same run, so every
figure can be set against what this machine allows right now; each workload prints one JSON
object on stdout (progress goes to stderr). See BENCHMARKS.md for the figures and what limits
them.

``--backend production`` runs every workload on a fresh PostgreSQL database (127.0.0.1:5432,
user postgres) and a unique Redis key prefix (127.0.0.1:6379), with `roost serve`
(ROOST_EMBEDDED_WORKER=false) and ``--workers`` `roost worker` processes; the databases are
dropped and the keys deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.backends import make_backend
from bench.harness import Profiler, have_wrk, load_average, log, temp_root
from bench.workloads import WORKLOADS, Context, Sizes


def verified_ok(result: dict[str, Any]) -> bool:
    """Whether every check a workload made held (booleans true, error counts zero)."""
    for key, value in result.get("verified", {}).items():
        if isinstance(value, bool) and not value:
            return False
        if key == "non_2xx" and value:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", metavar="workload",
                        help=f"one of {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--backend", choices=["embedded", "production"], default="embedded",
                        help="embedded: SQLite, one process; production: PostgreSQL + Redis + "
                             "roost worker processes")
    parser.add_argument("--workers", type=int, default=None,
                        help="roost worker processes in production (default 1)")
    parser.add_argument("--web-processes", type=int, default=1,
                        help="web processes of `roost serve` in production "
                             "(ROOST_WEB_PROCESSES, default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and short runs (the whole suite in under a minute)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of every load phase (overrides the size set)")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL",
                        help="ROOST_SQLITE_SYNCHRONOUS for the server (default FULL, Roost's)")
    parser.add_argument("--generator", choices=["auto", "wrk", "httpx"], default="auto",
                        help="load generator: wrk if installed, else asyncio+httpx")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="py-spy record the server during each measured phase into DIR")
    parser.add_argument("--profile-gil", action="store_true",
                        help="with --profile: sample only the thread holding the GIL, so the "
                             "profile shows where Python spends CPU rather than where it waits")
    parser.add_argument("--src", default=None, metavar="DIR",
                        help="serve the roost package from DIR (a copy of src/ to compare "
                             "against); setup and ceilings are unchanged")
    parser.add_argument("--tmp", default=None, help="parent folder for the temporary data")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary data (and the production databases and keys)")
    args = parser.parse_args(argv)
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(WORKLOADS)}")

    sizes = Sizes.quick() if args.quick else Sizes()
    if args.seconds is not None:
        sizes = sizes.with_seconds(args.seconds)
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if have_wrk() else "httpx"
    work_dir = temp_root(args.tmp)
    src = Path(args.src).resolve() if args.src else None
    if args.web_processes > 1 and args.backend != "production":
        parser.error("--web-processes needs --backend production")
    backend = make_backend(args.backend, work_dir, args.synchronous, args.workers, src,
                           args.keep, args.web_processes)
    ctx = Context(work_dir=work_dir, sizes=sizes, generator=generator,
                  wrk_threads=args.wrk_threads, synchronous=args.synchronous,
                  profiler=Profiler(Path(args.profile) if args.profile else None,
                                    gil_only=args.profile_gil),
                  backend=backend, src=src)
    wanted = args.workloads or list(WORKLOADS)
    began = time.monotonic()
    log(f"{args.backend} backend; load average {load_average()}")
    failed: list[str] = []
    try:
        # The ceiling is measured in every run: ratios only mean something on the same load.
        ceiling = WORKLOADS["ceiling"](ctx)
        ceiling["ok"] = verified_ok(ceiling)
        if "ceiling" in wanted:
            print(json.dumps(ceiling), flush=True)
        for name in wanted:
            if name == "ceiling":
                continue
            result = WORKLOADS[name](ctx)
            result["ok"] = verified_ok(result)
            if not result["ok"]:
                failed.append(name)
                log(f"{name}: a correctness check failed, the figures do not count: "
                    f"{result.get('verified')}")
            print(json.dumps(result), flush=True)
    finally:
        backend.cleanup()
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            log(f"data kept in {work_dir}")
    log(f"done in {time.monotonic() - began:.1f}s; load average {load_average()}"
        + (f"; checks FAILED in {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
