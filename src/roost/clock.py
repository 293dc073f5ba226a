"""Wall-clock time in Roost's unit: integer milliseconds since 1970 (UTC)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache


def now_ms() -> int:
    return int(time.time() * 1000)


@lru_cache(maxsize=65536)  # every entity renders a few; the same ones, page after page
def iso(ms: int) -> str:
    """Mastodon's timestamp: ISO 8601 in UTC with milliseconds, e.g. 2026-11-26T02:13:00.000Z."""
    stamp = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{stamp}{ms % 1000:03d}Z"


@lru_cache(maxsize=65536)
def iso_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")
