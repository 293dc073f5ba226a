"""Time-ordered 64-bit ids, like Mastodon's: milliseconds since 1970 in the high bits.

Layout: ``ms << 16 | node << 10 | sequence``. Sorting ids sorts by creation time, and the
id of any instant is ``ms << 16``, which is how time ranges are turned into id ranges. The
node keeps processes apart: every process that starts on a database claims the next of 64
nodes from it (``roost.storage.nodes.claim_id_node``), so up to 64 processes of one
deployment that run at once never make the same id. Before that (and for tools that never
claim one) the node comes from the process id.
"""

from __future__ import annotations

import os
import threading
import time

_NODE_BITS = 6
_SEQ_BITS = 10
_SEQ_MASK = (1 << _SEQ_BITS) - 1


class IdGenerator:
    """Thread-safe and monotonic within a process; ``node`` keeps processes apart."""

    def __init__(self, node: int | None = None) -> None:
        self._node = (node if node is not None else os.getpid()) & ((1 << _NODE_BITS) - 1)
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0

    def use_node(self, node: int) -> None:
        """Make ids with ``node`` (modulo 64) from now on, still larger than any made."""
        with self._lock:
            self._node = node & ((1 << _NODE_BITS) - 1)
            if self._last_ms:  # the old node may have been the larger: move to the next ms
                self._last_ms += 1
                self._seq = -1

    def next_id(self, at_ms: int | None = None) -> int:
        with self._lock:
            now = at_ms if at_ms is not None else int(time.time() * 1000)
            if now <= self._last_ms:
                now = self._last_ms
                self._seq += 1
                if self._seq > _SEQ_MASK:  # more than 1024 ids in one ms: borrow the next ms
                    now += 1
                    self._seq = 0
            else:
                self._seq = 0
            self._last_ms = now
            return (now << 16) | (self._node << _SEQ_BITS) | self._seq


def id_at_ms(ms: int) -> int:
    """The smallest id that can be created at millisecond ``ms``."""
    return ms << 16


def ms_of_id(snowflake: int) -> int:
    return snowflake >> 16


_MIX = 0x9E3779B97F4A7C15  # 2**64 / the golden ratio: Fibonacci hashing


def bucket_of(snowflake: int, buckets: int) -> int:
    """A bucket in ``range(buckets)`` that spreads ids evenly. Not ``snowflake % buckets``:
    ids made in a millisecond of their own (nearly all of them, outside bursts) share their
    low bits, so the remainder would put them all in one bucket."""
    return (((snowflake * _MIX) & 0xFFFFFFFFFFFFFFFF) >> 32) % buckets


_generator = IdGenerator()
new_id = _generator.next_id
use_node = _generator.use_node
