"""Where Redis keys live: one server, or the primaries of a Redis Cluster.

The home timeline store runs Lua scripts over many keys at once (one fan-out batch is one
script over up to ``ROOST_FANOUT_BATCH_SIZE`` timelines). On one server that is one EVALSHA
with every key in KEYS. In a cluster the keys declared in KEYS must share one slot (Redis
answers CROSSSLOT otherwise), and the timelines of different accounts are spread over all
slots on purpose (each carries its account id as hash tag). Splitting a batch by slot would
cost one script call per follower, as the followers of one batch nearly all hash to different
slots. So ``ClusterScript`` groups the keys by the node that owns their slot and sends each
node one call of a variant of the script flagged ``allow-cross-slot-keys`` (Redis 7): such a
script may touch keys of any slots that node owns. It declares one key (the node's first,
so that a stale slot map gets MOVED) and passes every key in ARGV; a prelude puts them back
in ``KEYS`` so that the script's body is the same text on both paths. The calls go to the
nodes one after the other: a batch is one round trip per node. ``SingleServer`` keeps the
one-server path as it was (redis-py's ``Script``), so nothing there pays for the cluster.

Both also give the plain client of each primary (``primaries``), for the rare commands that
have to visit every key (``SCAN`` in ``enforce_cap``): on a cluster each node scans only its
own keys.

Retrying is safe because every write the store makes is idempotent: a call that failed
half-way (a slot moved, a node restarted) is sent again in full after the slot map is
refreshed. A slot in the middle of a migration can fail twice (a key already moved); the
error then reaches the caller, whose job is retried later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, NoScriptError, TryAgainError

ScriptArg = bytes | str | int

# Errors after which a cluster call refreshes its slot map and is sent once more.
RETRY_AFTER = (MovedError, AskError, TryAgainError, redis.ConnectionError, redis.TimeoutError)


def stale_map(error: redis.RedisError) -> bool:
    """Whether ``error`` says the slot map we routed by is out of date: a redirection, a
    node gone, or a cross-slot script that met a key its node no longer owns."""
    return isinstance(error, RETRY_AFTER) or "non local key" in str(error)


class MultiKeyScript(Protocol):
    """A Lua script run over ``keys`` (of any slots) with ``args``."""

    def __call__(self, *, keys: Sequence[str], args: Sequence[ScriptArg]) -> object: ...


ScriptCall = tuple[MultiKeyScript, Sequence[str], Sequence[ScriptArg]]
"""One call of a script made by ``Topology.script``: the script, its keys, its arguments."""


class Topology(Protocol):
    def script(self, text: str) -> MultiKeyScript: ...
    def primaries(self) -> list[redis.Redis]: ...

    def run_all(self, calls: Sequence[ScriptCall]) -> None:
        """Make ``calls`` in order (the writes one database batch queued)."""


def node_url(url: str, host: str, port: int) -> str:
    """``url`` pointed at ``host:port``, keeping its scheme, credentials and options (how a
    client of one cluster node is made from the cluster's URL)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    address = f"[{host}]" if ":" in host else host
    netloc = f"{credentials}@{address}:{port}" if credentials else f"{address}:{port}"
    return urlunsplit((parts.scheme, netloc, "", parts.query, ""))


class SingleServer:
    """One Redis server: a script is one EVALSHA over all its keys."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def script(self, text: str) -> MultiKeyScript:
        return cast(MultiKeyScript, self.client.register_script(text))

    def primaries(self) -> list[redis.Redis]:
        return [self.client]

    def run_all(self, calls: Sequence[ScriptCall]) -> None:
        """One pipeline of EVALSHA: one round trip. A server that lost its scripts (restarted,
        SCRIPT FLUSH) answers NOSCRIPT: they are loaded and the whole pipeline is sent again,
        which is safe as every call is idempotent."""
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for script, keys, args in calls:
                pipe.evalsha(cast(Script, script).sha, len(keys), *keys, *args)
            try:
                pipe.execute()
                return
            except NoScriptError:
                if attempt == 2:
                    raise
                for script in {cast(Script, c[0]) for c in calls}:
                    self.client.script_load(script.script)


class Cluster:
    """A Redis Cluster: scripts split by slot, one pipeline per node (``ClusterScript``)."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client

    def script(self, text: str) -> ClusterScript:
        return ClusterScript(self.client, text)

    def primaries(self) -> list[redis.Redis]:
        nodes = self.client.get_primaries()  # type: ignore[no-untyped-call]
        return [self.client.get_redis_connection(node) for node in nodes]

    def run_all(self, calls: Sequence[ScriptCall]) -> None:
        """One call after the other (each is one round trip per node it touches)."""
        for script, keys, args in calls:
            script(keys=keys, args=args)


# Turns the cluster call's ARGV (n, the n arguments, the keys) back into KEYS and ARGV.
_CLUSTER_PRELUDE = """#!lua flags=allow-cross-slot-keys
local n = tonumber(ARGV[1])
local keys, argv = {}, {}
for i = 2, n + 1 do argv[i - 1] = ARGV[i] end
for i = n + 2, #ARGV do keys[i - n - 1] = ARGV[i] end
local KEYS, ARGV = keys, argv
"""


class ClusterScript:
    """One Lua script run over keys of any slots: one call per node that owns some of them
    (see the module docstring). The script is loaded on a node the first time that node
    answers NOSCRIPT."""

    def __init__(self, client: RedisCluster, text: str) -> None:
        self.client = client
        self.text = _CLUSTER_PRELUDE + text
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()

    def __call__(self, *, keys: Sequence[str], args: Sequence[ScriptArg]) -> int:
        """Runs the script; returns the sum of what its calls returned."""
        try:
            return self._run(keys, args)
        except redis.RedisError as error:
            if not stale_map(error):
                raise
            self.client.nodes_manager.initialize()
            return self._run(keys, args)

    def by_node(self, keys: Sequence[str]) -> dict[str, tuple[redis.Redis, list[str]]]:
        """``keys`` grouped by the node that owns their slot (with a client of that node)."""
        manager = self.client.nodes_manager
        slots: dict[int, list[str]] = {}
        for key in keys:
            slots.setdefault(key_slot(key.encode()), []).append(key)
        nodes: dict[str, tuple[redis.Redis, list[str]]] = {}
        for slot, group in slots.items():
            node = manager.get_node_from_slot(slot)
            if node.name not in nodes:
                nodes[node.name] = (self.client.get_redis_connection(node), [])
            nodes[node.name][1].extend(group)
        return nodes

    def _run(self, keys: Sequence[str], args: Sequence[ScriptArg]) -> int:
        total = 0
        for client, node_keys in self.by_node(keys).values():
            try:
                total += self._send(client, node_keys, args)
            except NoScriptError:
                client.script_load(self.text)
                total += self._send(client, node_keys, args)
        return total

    def _send(self, client: redis.Redis, keys: list[str], args: Sequence[ScriptArg]) -> int:
        reply = client.evalsha(self.sha, 1, keys[0], len(args), *args, *keys)
        return int(cast(int, reply))
