"""The rate-limit counters (``RateWindows``): every test runs in-process, on one Redis server
and on a 3-node Redis Cluster (see ``tests/redis_support.py``,
``tests/redis_cluster_support.py``); then how the Redis store behaves when Redis is down."""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from roost.settings import Settings
from roost.storage.ratelimits import LocalRateWindows, RateWindows, rate_windows_for
from roost.storage.redis.ratelimits import MAX_KEY_CHARS, RedisRateWindows

MakeWindows = Callable[..., RateWindows]
WINDOW = 0.2  # seconds: short windows for the expiry tests


@pytest.fixture(params=["local", "redis", "redis-cluster"])
def make_windows(request: pytest.FixtureRequest) -> Iterator[MakeWindows]:
    """``make_windows(seconds, name=..., shard=...)``: counters of one implementation. Counters
    with the same name and ``shard`` share their counts (like two processes with the same
    ``ROOST_REDIS_PREFIX``); another ``shard`` is another prefix (in-process: another store)."""
    made: list[RateWindows] = []
    local: dict[tuple[str, str, float], LocalRateWindows] = {}
    if request.param == "redis":
        url, cluster = request.getfixturevalue("redis_url"), False
        base = request.getfixturevalue("redis_prefix")
    elif request.param == "redis-cluster":
        url, cluster = request.getfixturevalue("redis_cluster_url"), True
        base = request.getfixturevalue("cluster_prefix")

    def make(seconds: float = 60.0, *, name: str = "signups", shard: str = "a") -> RateWindows:
        if request.param == "local":
            return local.setdefault((name, shard, seconds), LocalRateWindows(seconds))
        windows = RedisRateWindows.from_url(url, name=name, seconds=seconds,
                                            prefix=f"{base}{shard}:", cluster=cluster)
        made.append(windows)
        return windows

    yield make
    for windows in made:
        windows.close()


def test_hits_are_counted_per_key(make_windows: MakeWindows) -> None:
    windows = make_windows()
    assert windows.count("203.0.113.7") == 0
    assert [windows.hit("203.0.113.7") for _ in range(3)] == [1, 2, 3]
    assert windows.count("203.0.113.7") == 3
    assert windows.hit("2001:db8::1|alice") == 1  # keys are independent
    assert windows.count("2001:db8::1|alice") == 1
    assert windows.count("203.0.113.7") == 3
    assert windows.count("2001:db8::1|bob") == 0


def test_keys_with_braces_and_long_keys(make_windows: MakeWindows) -> None:
    windows = make_windows()
    odd = ["{x}", "a}b{c", "", "é|ünï", "x" * (MAX_KEY_CHARS + 1), "x" * (MAX_KEY_CHARS + 2)]
    for n, key in enumerate(odd, start=1):
        for _ in range(n):
            windows.hit(key)
    assert [windows.count(key) for key in odd] == [1, 2, 3, 4, 5, 6]


def test_the_count_starts_again_after_the_window(make_windows: MakeWindows) -> None:
    windows = make_windows(WINDOW)
    windows.hit("k")
    time.sleep(WINDOW / 2)
    assert windows.hit("k") == 2  # a later hit does not extend the window
    time.sleep(WINDOW / 2 + 0.05)
    assert windows.count("k") == 0
    assert windows.hit("k") == 1
    assert windows.count("k") == 1


def test_stores_of_one_prefix_share_counts(make_windows: MakeWindows) -> None:
    """Two processes: the same name and prefix count together; another name or prefix does
    not see them."""
    first, second = make_windows(), make_windows()
    first.hit("k")
    assert second.hit("k") == 2
    assert first.count("k") == 2
    assert make_windows(shard="b").count("k") == 0
    assert make_windows(name="failed_logins").count("k") == 0
    make_windows(shard="b").hit("k")
    assert first.count("k") == 2


def test_local_windows_forget_stale_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("roost.storage.ratelimits.PRUNE_ABOVE", 10)
    windows = LocalRateWindows(WINDOW)
    for n in range(10):
        windows.hit(f"old{n}")
    time.sleep(WINDOW + 0.05)
    windows.hit("new")  # the 11th key: the stale ones go
    assert set(windows._hits) == {"new"}
    assert windows.count("new") == 1


def test_the_factory_picks_redis_when_configured(redis_url: str, redis_prefix: str) -> None:
    assert isinstance(rate_windows_for(Settings(), "signups", 3600), LocalRateWindows)
    windows = rate_windows_for(Settings(redis_url=redis_url, redis_prefix=redis_prefix),
                               "signups", 3600)
    try:
        assert isinstance(windows, RedisRateWindows)
        windows.hit("203.0.113.7")
        assert windows.client.exists(f"{redis_prefix}ratelimit:signups:{{203.0.113.7}}")
        assert 0 < windows.client.pttl(f"{redis_prefix}ratelimit:signups:{{203.0.113.7}}"
                                       ) <= 3_600_000
    finally:
        windows.close()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_redis_down_counts_in_process_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    windows = RedisRateWindows.from_url(f"redis://127.0.0.1:{_unused_port()}/0",
                                        name="signups", seconds=60,
                                        prefix=f"down-{secrets.token_hex(4)}:")
    try:
        with caplog.at_level(logging.WARNING, logger="roost.storage.redis.ratelimits"):
            assert windows.count("k") == 0
            assert [windows.hit("k") for _ in range(3)] == [1, 2, 3]
            assert windows.count("k") == 3
        warnings = [r for r in caplog.records if "Redis failed" in r.getMessage()]
        assert len(warnings) == 1  # then it waits PAUSE_SECONDS before trying Redis again
    finally:
        windows.close()


def test_redis_is_tried_again_after_the_pause(redis_url: str, redis_prefix: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    windows = RedisRateWindows.from_url(redis_url, name="signups", seconds=60,
                                        prefix=redis_prefix)
    windows.pause_seconds = WINDOW

    def unreachable(**_: object) -> int:
        raise redis.ConnectionError("Connection refused")

    try:
        with monkeypatch.context() as patch:  # Redis goes away for one call
            patch.setattr(windows, "_hit", unreachable)
            assert windows.hit("k") == 1  # counted in-process
        assert windows.hit("k") == 2  # Redis is back, but the pause is not over: in-process
        time.sleep(WINDOW + 0.05)
        assert windows.hit("k") == 1  # on Redis again, which missed the outage's hits
        assert windows.count("k") == 1
    finally:
        windows.close()
