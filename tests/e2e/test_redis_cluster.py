"""A real `roost serve` and a separate `roost worker` on PostgreSQL and a 3-node Redis Cluster
(``ROOST_REDIS_CLUSTER=true``): a post reaches a follower's home timeline over HTTP and their
user stream over a WebSocket, through the cluster's timelines and sharded pub/sub."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.cluster import RedisCluster

from tests.e2e.conftest import (
    Account,
    Server,
    app_token,
    async_client,
    register,
    server_with_worker,
)
from tests.e2e.test_streaming import wait_until, websocket
from tests.pg_support import fresh_database


@pytest.fixture
def cluster_server(tmp_path: Path, redis_cluster_url: str,
                   cluster_prefix: str) -> Iterator[Server]:
    with fresh_database("roost_cluster") as database_url:
        yield from server_with_worker(tmp_path, {
            "ROOST_DATABASE_URL": database_url, "ROOST_REDIS_URL": redis_cluster_url,
            "ROOST_REDIS_CLUSTER": "true", "ROOST_REDIS_PREFIX": cluster_prefix})


def test_a_post_reaches_a_follower_over_http_and_websocket(
        cluster_server: Server, redis_cluster_url: str, cluster_prefix: str) -> None:
    async def sign_up() -> list[Account]:
        async with async_client(cluster_server) as client:
            token = await app_token(client)
            return [await register(client, token, name) for name in ("alice", "bob")]

    alice, bob = asyncio.run(sign_up())
    with httpx.Client(base_url=cluster_server.url, timeout=30) as http:
        assert http.post(f"/api/v1/accounts/{alice.id}/follow",
                         headers=bob.headers).status_code == 200
        with websocket(cluster_server, f"access_token={bob.token}&stream=user") as sock:
            posted = http.post("/api/v1/statuses", headers=alice.headers,
                               data={"status": "hello from the cluster"})
            assert posted.status_code == 200, posted.text
            status_id = posted.json()["id"]
            sock.wait_update(["user"], status_id)  # fan-out by the worker, streamed via SPUBLISH

            def in_home() -> bool:
                home = http.get("/api/v1/timelines/home", headers=bob.headers)
                return status_id in [s["id"] for s in home.json()]

            wait_until(in_home, "the post in bob's home timeline")
    cluster = RedisCluster.from_url(redis_cluster_url)
    try:
        assert cluster.exists(f"{cluster_prefix}home:{{{bob.id}}}") == 1
    finally:
        cluster.close()
