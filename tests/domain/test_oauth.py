"""The per-process memory of recently authenticated tokens."""

from __future__ import annotations

import time

from roost.domain.models import Token
from roost.domain.oauth import Authenticated, RecentTokens


def _auth(token_id: int) -> Authenticated:
    return Authenticated(Token(token_id, None, 1, ["read"], 0), None, None)


def test_remembers_until_the_time_to_live_passes() -> None:
    recent = RecentTokens(ttl=0.05)
    recent.put("a", _auth(1))
    assert recent.get("a") == _auth(1)
    assert recent.get("b") is None
    time.sleep(0.06)
    assert recent.get("a") is None


def test_forgets_a_revoked_token_and_keeps_the_others() -> None:
    recent = RecentTokens(ttl=60)
    recent.put("a", _auth(1))
    recent.put("b", _auth(2))
    recent.forget(1)
    assert recent.get("a") is None
    assert recent.get("b") == _auth(2)


def test_keeps_at_most_limit_tokens_dropping_the_oldest() -> None:
    recent = RecentTokens(ttl=60, limit=2)
    for i, digest in enumerate("abc"):
        recent.put(digest, _auth(i))
    assert recent.get("a") is None
    assert recent.get("b") is not None and recent.get("c") is not None


def test_a_zero_time_to_live_remembers_nothing() -> None:
    recent = RecentTokens(ttl=0)
    recent.put("a", _auth(1))
    assert recent.get("a") is None
