"""Telling a storage outage (a database or Redis that cannot be reached) from a bug.

The web layer answers an outage with 503 and Mastodon's ``{"error": ...}``, so clients retry,
and keeps 500 for what is really unexpected. Redis is imported only if it is installed.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError


def _redis_outages() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
    except ImportError:  # (embedded installs need no redis-py)
        return ()
    return ConnectionError, TimeoutError, BusyLoadingError


_REDIS_OUTAGES = _redis_outages()
# PostgreSQL's "connection exception" class, and the server shutting down or starting up.
_PG_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03")
# The exception types an outage comes as (``is_outage`` tells which of them is one).
OUTAGE_TYPES: tuple[type[BaseException], ...] = (DBAPIError, *_REDIS_OUTAGES)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says a storage server could not be reached or is not serving yet.
    Not SQLite's errors: its ``OperationalError`` also means "no such table" and the like,
    and a file has no server to lose."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        if not type(orig).__module__.startswith("psycopg"):
            return False
        state = getattr(orig, "sqlstate", None)
        if state is None:  # (refused before any server answered: no SQLSTATE)
            return type(orig).__name__ == "OperationalError"
        return str(state).startswith(_PG_OUTAGE_STATES)
    return isinstance(exc, _REDIS_OUTAGES)
