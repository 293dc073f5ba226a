"""The ceiling app: what the HTTP stack and SQLite allow on this machine, without Roost.

Served by uvicorn with exactly the arguments `roost serve` passes (see roost/cli.py):

- ``GET /json``: a trivial Starlette JSON endpoint — the most requests/s any endpoint can do;
- ``GET /hop``: the same after one round trip to a worker thread (``anyio.to_thread``), the
  price every Roost database call pays before any SQL;
- ``GET /cpu``: a 25 KB answer after 1.2 ms of CPU on the event loop's thread, the shape of an
  embedded home read whose reads run inline: how the event loop shares a saturated process
  among its connections (``python -m bench.event_loops``);
- ``POST /follow/{target}``: a bare follow in raw ``sqlite3`` behind a single writer thread
  that commits whatever is queued as one transaction, one savepoint per follow, with the
  server's pragmas: insert the edge if new, bump the count, append the history event, answer
  the exact count. The follower is the integer in the bearer token (no auth lookup). This is
  the design brief's "bare follow endpoint": Roost's follow storm measured against it shows
  what the domain layer, SQLAlchemy and authentication cost on top of group commit.

Run: ``python -m bench.ceiling_app --port P --db FILE --synchronous FULL [--loop asyncio]``.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import sqlite3
import threading
import time
from typing import Any

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SCHEMA = """
CREATE TABLE IF NOT EXISTS follows (account_id INTEGER NOT NULL, target_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (account_id, target_id));
CREATE TABLE IF NOT EXISTS counts (account_id INTEGER PRIMARY KEY, followers INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (target_id INTEGER NOT NULL, id INTEGER NOT NULL,
    account_id INTEGER NOT NULL, delta INTEGER NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (target_id, id));
"""


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    """A connection with the pragmas Roost's database runner sets (storage/database.py)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


class BareWriter:
    """One writer thread; each batch is one transaction with one savepoint per follow."""

    def __init__(self, path: str, synchronous: str, batch_max: int = 256) -> None:
        self.conn = connect(path, synchronous)
        self.conn.executescript(SCHEMA)
        self.batch_max = batch_max
        self.queue: queue.SimpleQueue[tuple[int, int, asyncio.Future[int],
                                            asyncio.AbstractEventLoop]] = queue.SimpleQueue()
        self.seq = 0
        threading.Thread(target=self.loop, name="bare-writer", daemon=True).start()

    def follow(self, cur: sqlite3.Cursor, follower: int, target: int) -> int:
        now = int(time.time() * 1000)
        cur.execute("INSERT OR IGNORE INTO follows VALUES (?, ?, ?)", (follower, target, now))
        if cur.rowcount == 1:
            cur.execute("INSERT INTO counts VALUES (?, 1) ON CONFLICT(account_id) "
                        "DO UPDATE SET followers = followers + 1", (target,))
            self.seq += 1
            cur.execute("INSERT INTO events VALUES (?, ?, ?, 1, ?)",
                        (target, self.seq, follower, now))
        row = cur.execute("SELECT followers FROM counts WHERE account_id = ?",
                          (target,)).fetchone()
        return int(row[0]) if row else 0

    def loop(self) -> None:
        cur = self.conn.cursor()
        while True:
            batch = [self.queue.get()]
            while len(batch) < self.batch_max:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            results: list[int | BaseException] = []
            cur.execute("BEGIN IMMEDIATE")
            for follower, target, _, _ in batch:
                cur.execute("SAVEPOINT op")
                try:
                    results.append(self.follow(cur, follower, target))
                    cur.execute("RELEASE op")
                except sqlite3.Error as exc:
                    cur.execute("ROLLBACK TO op")
                    cur.execute("RELEASE op")
                    results.append(exc)
            cur.execute("COMMIT")
            for (_, _, future, loop), result in zip(batch, results, strict=True):
                loop.call_soon_threadsafe(_settle, future, result)

    async def submit(self, follower: int, target: int) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self.queue.put((follower, target, future, loop))
        return await future


def _settle(future: asyncio.Future[int], result: int | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


CPU_SECONDS = 0.0012
CPU_BODY = b'{"page":"' + b"x" * 25_000 + b'"}'


def _busy(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def create_app(db_path: str, synchronous: str) -> Starlette:
    writer = BareWriter(db_path, synchronous)

    async def trivial(_request: Request) -> Response:
        return JSONResponse({"hello": "world"})

    async def hop(_request: Request) -> Response:
        await anyio.to_thread.run_sync(_noop)
        return JSONResponse({"hello": "world"})

    async def cpu(_request: Request) -> Response:
        _busy(CPU_SECONDS)
        return Response(CPU_BODY, media_type="application/json")

    async def follow(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        follower = int(header[7:]) if header[:7].lower() == "bearer " else 0
        target = int(request.path_params["target"])
        count = await writer.submit(follower, target)
        return JSONResponse({"id": str(target), "following": True, "followers_count": count})

    return Starlette(routes=[
        Route("/json", trivial),
        Route("/hop", hop),
        Route("/cpu", cpu),
        Route("/follow/{target}", follow, methods=["POST"]),
    ])


def _noop() -> Any:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"],
                        help="the event loop (default asyncio, as ROOST_EVENT_LOOP's)")
    args = parser.parse_args()
    app = create_app(args.db, args.synchronous)
    # The same call as `roost serve` (roost/cli.py), with the log level the bench gives it.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning",
                proxy_headers=True, server_header=False, timeout_keep_alive=75, loop=args.loop)


if __name__ == "__main__":
    main()
