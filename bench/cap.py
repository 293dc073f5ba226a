"""The home timeline cap's sweep: how long it holds the single writer at once.

    .venv/bin/python -m bench.cap [--accounts 5000] [--entries 600] [--engine sqlite|postgresql]

Every minute the embedded server trims every home timeline longer than
``ROOST_HOME_TIMELINE_SIZE`` (``Roost.maintain``). Loads ``--accounts`` timelines of
``--entries`` entries each (a tenth of them over the cap), then times the sweep as one
transaction (``enforce_cap``) and as the steps the server now runs, each its own
transaction (``cap_step``): the longest step is how long other writes wait behind it. Prints
one JSON object; the ceiling beside it is one empty write transaction on the same engine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from functools import partial
from typing import Any

from bench.backends import migrated_database
from roost.storage.bulk import BulkLoader
from roost.storage.database import Database, Tx
from roost.storage.schema import home_timeline
from roost.storage.stores import sql_stores

KEEP = 800


class Undo(Exception):
    pass


def load(db: Database, accounts: int, entries: int) -> int:
    def rows() -> Any:
        for account in range(1, accounts + 1):
            over = KEEP + 50 if account % 10 == 0 else entries  # a tenth over the cap
            for n in range(over):
                yield account, 1_000_000 + n, n % 97 + 1, None

    return BulkLoader(db).insert(home_timeline, ["account_id", "status_id", "author_id",
                                                 "reblog_of_id"], rows)


def _timed_write(db: Database, fn: Any) -> tuple[Any, float]:
    began = time.perf_counter()
    result = db.write_sync(fn)
    return result, time.perf_counter() - began


def measure(db: Database, accounts: int, entries: int) -> dict[str, Any]:
    store = sql_stores().home
    total = load(db, accounts, entries)
    # The whole sweep in one transaction, rolled back so that the steps find the same work.

    def whole(tx: Tx) -> None:
        store.enforce_cap(tx, KEEP)
        raise Undo  # (the writer rolls the operation back)

    began = time.perf_counter()
    with contextlib.suppress(Undo):
        db.write_sync(whole)
    one_transaction = time.perf_counter() - began
    steps: list[float] = []
    trimmed = 0
    after: int | None = 0
    while after is not None:
        (more, after), seconds = _timed_write(db, partial(store.cap_step, keep=KEEP,
                                                          after=after))
        trimmed += more
        steps.append(seconds)
    _, empty = _timed_write(db, lambda tx: None)
    return {"entries": total, "timelines_trimmed": trimmed,
            "one_transaction_s": round(one_transaction, 3),
            "steps": len(steps), "longest_step_s": round(max(steps), 3),
            "all_steps_s": round(sum(steps), 3),
            "ceiling_empty_write_s": round(empty, 5)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--entries", type=int, default=600)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args(argv)
    with migrated_database(args.engine, "roost-cap") as db:
        print(json.dumps({"workload": "home_cap_sweep", "engine": args.engine,
                          "keep": KEEP, **measure(db, args.accounts, args.entries)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
