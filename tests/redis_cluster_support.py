"""A real 3-node Redis Cluster on loopback ports, for the cluster variants of the Redis tests.

``redis_cluster_url`` starts three ``redis-server --cluster-enabled yes`` processes on free
ports in a temporary folder (no persistence), joins them with ``redis-cli --cluster create``
(three primaries, no replicas, the 16,384 slots split in three) and waits until every node says
``cluster_state:ok``. It is session-scoped: one cluster for the whole run, stopped at the end,
so its keys need no cleanup (tests keep apart with ``redis_prefix``-style random prefixes).
Without ``redis-server``/``redis-cli`` on the PATH the cluster tests are skipped, except with
``CI=true``, where they fail (as in ``tests/redis_support.py``).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import redis

from tests.services import stop_process, unusable

NODES = 3
START_SECONDS = 20.0


def _free_ports(count: int) -> list[int]:
    """Ports free now, and their cluster bus ports (port + 10000) too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _wait(check: str, until: float, probe: redis.Redis) -> None:
    while time.monotonic() < until:
        try:
            if check == "ping" and probe.ping():
                return
            if check == "ok" and probe.cluster("info").get("cluster_state") == "ok":
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"Redis Cluster node did not get to {check!r} in {START_SECONDS}s")


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<port>`` of one node of a fresh 3-node cluster (any node will do:
    the client discovers the others)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        unusable("redis-server and redis-cli are needed for the Redis Cluster tests")
    assert server is not None and cli is not None
    folder = tmp_path_factory.mktemp("redis-cluster")
    ports = _free_ports(NODES)
    with ExitStack() as stack:
        for port in ports:
            log = stack.enter_context((folder / f"node-{port}.log").open("wb"))
            process = subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                 "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--dir", str(folder)],
                stdout=log, stderr=subprocess.STDOUT)
            stack.callback(stop_process, process)
        probes = [redis.Redis(port=p, decode_responses=True) for p in ports]
        for probe in probes:
            stack.callback(probe.close)
        until = time.monotonic() + START_SECONDS
        for probe in probes:
            _wait("ping", until, probe)
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=START_SECONDS)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}"
                               f"{created.stderr}")
        for probe in probes:
            _wait("ok", until, probe)
        yield f"redis://127.0.0.1:{ports[0]}"


@pytest.fixture
def cluster_prefix() -> str:
    """A key and channel prefix for one test on the session's cluster."""
    return f"roost-test-{secrets.token_hex(6)}:"
