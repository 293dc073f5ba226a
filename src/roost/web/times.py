"""ISO 8601 times in query parameters."""

from __future__ import annotations

from datetime import UTC, datetime

from roost.domain.errors import InvalidInput
from roost.web.params import Params


def time_param(params: Params, name: str, default_ms: int) -> int:
    """An ISO 8601 instant (``2009-04-17T02:13:00-04:00``; without an offset, UTC) as ms."""
    text = params.str(name)
    if text is None or not text.strip():
        return default_ms
    try:
        parsed = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 time, e.g. 2009-04-17T02:13:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    ms = int(parsed.timestamp() * 1000)
    if ms < 0:
        raise InvalidInput(f"{name} is before 1970")
    return ms
