"""Password hashing (ROOST_PASSWORD_HASHING): strong by default, fast for tests, and a sign-in
under the strong setting brings a fast hash up to the strong parameters."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from argon2 import extract_parameters, profiles

from roost.domain.accounts import FAST_HASHING
from roost.runtime import Roost
from roost.settings import Settings

PASSWORD = "correct horse battery"


def _roost(data_dir: Path, hashing: str) -> Roost:
    roost = Roost(Settings(data_dir=data_dir, sqlite_synchronous="NORMAL",
                           password_hashing=hashing))  # type: ignore[arg-type]
    roost.start()
    return roost


def _stored_parameters(roost: Roost, account_id: int) -> object:
    stored = roost.db.read_sync(lambda tx: roost.stores.accounts.password_hash(tx, account_id))
    assert stored is not None
    return extract_parameters(stored)


def test_passwords_are_hashed_strongly_unless_told_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOST_PASSWORD_HASHING", raising=False)  # (the suite sets fast)
    assert Settings().password_hashing == "strong"


def test_a_fast_hash_is_made_strong_at_the_next_sign_in(tmp_path: Path) -> None:
    fast = _roost(tmp_path, "fast")
    account = anyio.run(lambda: fast.accounts.register("ann", "ann@example.com", PASSWORD,
                                                        agreement=True))
    assert _stored_parameters(fast, account.id) == FAST_HASHING
    fast.close()

    strong = _roost(tmp_path, "strong")
    try:
        assert anyio.run(strong.accounts.authenticate, "ann", "wrong password") is None
        assert _stored_parameters(strong, account.id) == FAST_HASHING  # not on a failure
        signed_in = anyio.run(strong.accounts.authenticate, "ann", PASSWORD)
        assert signed_in is not None and signed_in.id == account.id
        assert _stored_parameters(strong, account.id) == profiles.RFC_9106_LOW_MEMORY
        assert anyio.run(strong.accounts.authenticate, "ann@example.com", PASSWORD) is not None
    finally:
        strong.close()


def test_a_fast_setting_signs_strong_hashes_in_and_leaves_them_strong(tmp_path: Path) -> None:
    strong = _roost(tmp_path, "strong")
    account = anyio.run(lambda: strong.accounts.register("bo", "bo@example.com", PASSWORD,
                                                          agreement=True))
    strong.close()
    fast = _roost(tmp_path, "fast")
    try:
        assert anyio.run(fast.accounts.authenticate, "bo", PASSWORD) is not None
        assert _stored_parameters(fast, account.id) == profiles.RFC_9106_LOW_MEMORY
    finally:
        fast.close()
