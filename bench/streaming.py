"""Streaming fan-out: one post from an account with N followers who are all connected to the
streaming API; time until every one of them has it (issue 4's benchmark).

    .venv/bin/python -m bench.streaming [--clients 1000] [--mode pulled|pushed]

``pulled``: the author is above the pull threshold, so the post reaches the followers'
streams through their subscription to the author's channel (one publish). ``pushed``: an
ordinary author, whose fan-out job delivers to each follower's home timeline and stream.
Prints one JSON object with the latency from sending the post to each client's receipt
(p50, p99, max), how long the post request itself took, and how many clients received it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

from bench.harness import free_port, log


async def _client(url: str, token: str, ready: asyncio.Event, counter: list[int],
                  arrived: dict[str, list[float]], wanted: asyncio.Future[str],
                  total: int) -> None:
    async with websockets.connect(f"{url}?access_token={token}&stream=user",
                                  open_timeout=60, max_queue=None) as ws:
        counter[0] += 1
        if counter[0] == total:
            ready.set()
        async for raw in ws:
            if not raw:
                continue
            message = json.loads(raw)
            if message.get("event") != "update":
                continue
            status_id = json.loads(message["payload"])["id"]
            arrived.setdefault(status_id, []).append(time.perf_counter())
            target = await wanted
            if status_id == target:
                return


async def run(clients: int, mode: str, work: Path) -> dict[str, object]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ROOST_DATA_DIR": str(work), "ROOST_PORT": str(port),
           "ROOST_LOG_LEVEL": "warning", "ROOST_SQLITE_SYNCHRONOUS": "NORMAL",
           "ROOST_FANOUT_PULL_ABOVE": str(clients // 2 if mode == "pulled" else clients * 10),
           "ROOST_FANOUT_PUSH_BELOW": str(clients // 4 if mode == "pulled" else clients * 9)}
    roost = [sys.executable, "-m", "roost"]
    subprocess.run([*roost, "create-user", "admin", "--email", "admin@example.com",
                    "--password", "long enough pw", "--admin"], env=env, check=True,
                   capture_output=True)
    token = subprocess.run([*roost, "token", "create", "admin", "--scopes",
                            "read write follow admin:write"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([*roost, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for _ in range(200):
                try:
                    if (await http.get("/api/v1/instance")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            admin = {"Authorization": f"Bearer {token}"}
            author = (await http.post("/api/v1/roost/admin/accounts", headers=admin,
                                      json={"usernames": ["author"]})).json()[0]
            fans: list[dict[str, str]] = []
            while len(fans) < clients:
                fans += (await http.post("/api/v1/roost/admin/accounts", headers=admin, json={
                    "prefix": "fan", "count": min(500, clients - len(fans))})).json()
            gate = asyncio.Semaphore(32)

            async def follow(fan: dict[str, str]) -> None:
                async with gate:
                    response = await http.post(f"/api/v1/accounts/{author['id']}/follow",
                                               headers={"Authorization":
                                                        f"Bearer {fan['access_token']}"})
                    response.raise_for_status()

            await asyncio.gather(*(follow(f) for f in fans))
            log(f"{clients} followers; opening {clients} streaming connections")
            ready = asyncio.Event()
            counter = [0]
            arrived: dict[str, list[float]] = {}
            wanted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            url = f"ws://127.0.0.1:{port}/api/v1/streaming"
            tasks = [asyncio.create_task(_client(url, f["access_token"], ready, counter,
                                                 arrived, wanted, clients)) for f in fans]
            await asyncio.wait_for(ready.wait(), 120)
            await asyncio.sleep(1.0)  # let every subscription settle
            posted_at = time.perf_counter()
            response = await http.post("/api/v1/statuses", headers={
                "Authorization": f"Bearer {author['access_token']}"},
                data={"status": "to everyone at once"})
            acknowledged = time.perf_counter()
            status_id = response.json()["id"]
            wanted.set_result(status_id)
            _, pending = await asyncio.wait(tasks, timeout=60)
            for task in pending:
                task.cancel()
            # From sending the post: the stream often beats the HTTP response itself.
            received = sorted(t - posted_at for t in arrived.get(status_id, []))
    finally:
        server.terminate()
        server.wait(10)

    def pct(q: float) -> float | None:
        return round(received[min(len(received) - 1, int(q * len(received)))] * 1000, 1) \
            if received else None

    return {"workload": "streaming_fanout", "mode": mode, "clients": clients,
            "received": len(received), "post_request_ms": round((acknowledged - posted_at)
                                                                  * 1000, 1),
            "since_post_sent_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--mode", choices=["pulled", "pushed"], default="pulled")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="roost-stream-") as work:
        print(json.dumps(asyncio.run(run(args.clients, args.mode, Path(work)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
