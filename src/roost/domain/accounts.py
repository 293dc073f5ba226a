"""Accounts: registration, sign-in, profiles, lookup and search."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import anyio.to_thread
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from roost.clock import now_ms
from roost.domain.errors import InvalidInput, NotFound
from roost.domain.models import Account, ProfileField
from roost.ids import new_id
from roost.storage.database import Database, Tx
from roost.storage.stores import Stores

# Matched whole (fullmatch): "$" would also let a trailing newline through, and "bob\n" pass
# for a second "bob".
USERNAME = re.compile(r"[a-zA-Z0-9_]{1,30}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_FIELDS = 4
MAX_FIELD_NAME = 255
MAX_FIELD_VALUE = 255
MAX_DISPLAY_NAME = 30
MAX_NOTE = 500
TOUCH_EVERY_MS = 3_600_000

# ROOST_PASSWORD_HASHING=fast: one pass over 1 MiB (~2 ms), with full-length salt and hash
# (argon2-cffi's CHEAPEST profile keeps a 4-byte hash: a wrong password would match one time
# in 2**32).
FAST_HASHING = replace(profiles.RFC_9106_LOW_MEMORY, time_cost=1, memory_cost=1024,
                       parallelism=1)


def password_hasher(strength: Literal["strong", "fast"]) -> PasswordHasher:
    """argon2id for ``ROOST_PASSWORD_HASHING``: ``strong`` (RFC 9106's low-memory profile,
    argon2-cffi's default) or ``fast`` (tests and demo data only)."""
    return PasswordHasher.from_parameters(FAST_HASHING if strength == "fast"
                                          else profiles.RFC_9106_LOW_MEMORY)


class ValidationFailed(InvalidInput):
    """Mastodon's registration error: a message plus per-field details."""

    def __init__(self, details: dict[str, list[dict[str, str]]]) -> None:
        parts = [f"{k.capitalize()} {e['description']}"
                 for k, errs in details.items() for e in errs]
        super().__init__("Validation failed: " + ", ".join(parts))
        self.details = details


@dataclass
class ProfileChanges:
    display_name: str | None = None
    note: str | None = None
    fields: list[ProfileField] | None = None
    locked: bool | None = None
    bot: bool | None = None
    discoverable: bool | None = None


class AccountService:
    def __init__(self, db: Database, stores: Stores,
                 on_unlock: Callable[[Tx, int], None] | None = None,
                 inactive_ms: int = 30 * 86_400_000,
                 password_hashing: Literal["strong", "fast"] = "strong") -> None:
        self.db = db
        self.stores = stores
        self.hasher = password_hasher(password_hashing)
        # Sign-ins bring older hashes up to the strong parameters, never down to fast ones.
        self.rehash_on_sign_in = password_hashing == "strong"
        self.on_unlock = on_unlock
        """Called in the same transaction when a locked account unlocks (accepts requests)."""
        self.inactive_ms = inactive_ms

    async def touch(self, account: Account) -> None:
        """Note that ``account`` is active (at most one write an hour). An account back after
        being inactive gets its home timeline rebuilt, since fan-out skipped it meanwhile;
        ``account.home_rebuilding`` tells the caller. (A store that fills timelines on read
        has no stale ones: fan-out writes every timeline it holds.)"""
        now = now_ms()
        if now - account.last_active_at < TOUCH_EVERY_MS:
            return
        returning = (account.last_active_at < now - self.inactive_ms
                     and not self.stores.home.fills_on_read)

        def apply(tx: Tx) -> None:
            changes: dict[str, object] = {"last_active_at": now}
            if returning:
                changes["home_rebuilding"] = True
                self._enqueue_rebuild(tx, account.id)
            self.stores.accounts.update(tx, account.id, changes)

        await self.db.write(apply)
        account.last_active_at = now
        account.home_rebuilding = account.home_rebuilding or returning

    async def revive(self, account: Account) -> None:
        """Note that ``account``, whose stream is open, is active although it was marked
        inactive behind its back (every account is, when the home timeline store loses its
        timelines): its home timeline is rebuilt now, not at its next request. Once however
        many of its streams ask."""
        now = now_ms()

        def apply(tx: Tx) -> bool:
            current = self.stores.accounts.by_ids(tx, [account.id]).get(account.id)
            if current is None or current.last_active_at >= now - self.inactive_ms:
                return False  # gone, or already back
            self._enqueue_rebuild(tx, account.id)
            self.stores.accounts.update(tx, account.id,
                                        {"last_active_at": now, "home_rebuilding": True})
            return True

        rebuilding = await self.db.write(apply)
        account.last_active_at = now
        account.home_rebuilding = account.home_rebuilding or rebuilding

    def _enqueue_rebuild(self, tx: Tx, account_id: int) -> None:
        self.stores.jobs.enqueue(tx, "rebuild_home", {"account_id": account_id, "after": 0},
                                 run_after=0)

    async def register(self, username: str, email: str, password: str, *, agreement: bool,
                       locale: str = "en", is_admin: bool = False) -> Account:
        details: dict[str, list[dict[str, str]]] = {}
        if not USERNAME.fullmatch(username or ""):
            details["username"] = [{"error": "ERR_INVALID",
                                    "description": "must contain only letters, numbers and "
                                    "underscores, up to 30 characters"}]
        if not EMAIL.fullmatch(email or "") or len(email) > 320:
            details["email"] = [{"error": "ERR_INVALID", "description": "is invalid"}]
        if len(password or "") < 8 or len(password) > 72:
            details["password"] = [{"error": "ERR_INVALID",
                                    "description": "must be between 8 and 72 characters"}]
        if not agreement:
            details["agreement"] = [{"error": "ERR_ACCEPTED", "description": "must be accepted"}]
        if locale and (len(locale) > 16 or not locale.replace("-", "").replace("_", "").isalnum()):
            details["locale"] = [{"error": "ERR_INVALID", "description": "is not a language"}]
        if details:
            raise ValidationFailed(details)
        password_hash = await anyio.to_thread.run_sync(self.hasher.hash, password)
        account = Account(
            id=new_id(), username=username, display_name="", note="", fields=[], locked=False,
            bot=False, discoverable=True, created_at=now_ms(), last_status_at=None, email=email,
            locale=locale or "en", is_admin=is_admin, last_active_at=now_ms(),
        )

        def insert(tx: Tx) -> Account:
            taken: dict[str, list[dict[str, str]]] = {}
            if self.stores.accounts.by_username(tx, username) is not None:
                taken["username"] = [{"error": "ERR_TAKEN", "description": "is already taken"}]
            if self.stores.accounts.by_email(tx, email) is not None:
                taken["email"] = [{"error": "ERR_TAKEN", "description": "is already taken"}]
            if taken:
                raise ValidationFailed(taken)
            self.stores.accounts.insert(tx, account, password_hash)
            return account

        return await self.db.write(insert)

    async def create_many(self, prefix: str, count: int) -> list[Account]:
        """Accounts ``<prefix>1``, ``<prefix>2``, ... (skipping taken names) with no password:
        they act through tokens only. For demos, replays and load tests."""
        if not USERNAME.fullmatch(prefix + "0") or len(prefix) > 20:
            raise InvalidInput("prefix must be letters, digits or underscores (up to 20)")
        if not 1 <= count <= 1000:
            raise InvalidInput("count must be between 1 and 1000")

        def apply(tx: Tx) -> list[Account]:
            made: list[Account] = []
            number = 0
            while len(made) < count:
                number += 1
                username = f"{prefix}{number}"
                if len(username) > 30:
                    raise InvalidInput("No free usernames left with that prefix")
                if self.stores.accounts.by_username(tx, username) is not None:
                    continue
                made.append(self._insert_token_only(tx, username))
            return made

        return await self.db.write(apply)

    def _insert_token_only(self, tx: Tx, username: str) -> Account:
        """A new account without a password: it acts through access tokens only."""
        now = now_ms()
        account = Account(id=new_id(), username=username, display_name="", note="", fields=[],
                          locked=False, bot=False, discoverable=True, created_at=now,
                          last_status_at=None, last_active_at=now)
        self.stores.accounts.insert(tx, account, None)
        return account

    async def create_named(self, usernames: list[str]) -> list[Account]:
        """Accounts with exactly these usernames and no password (all or none)."""
        if not 1 <= len(usernames) <= 100 or not all(USERNAME.fullmatch(u) for u in usernames):
            raise InvalidInput("usernames must be 1 to 100 valid usernames")

        def apply(tx: Tx) -> list[Account]:
            taken = [u for u in usernames if self.stores.accounts.by_username(tx, u)]
            if taken:
                raise InvalidInput(f"Username already taken: {', '.join(taken)}")
            made = []
            for username in usernames:
                made.append(self._insert_token_only(tx, username))
            return made

        return await self.db.write(apply)

    async def authenticate(self, login: str, password: str) -> Account | None:
        """The account for a username or e-mail and password, or None."""

        def find(tx: Tx) -> tuple[Account | None, str | None]:
            found = (self.stores.accounts.by_email(tx, login) if "@" in login
                     else self.stores.accounts.by_username(tx, login))
            return found, (self.stores.accounts.password_hash(tx, found.id) if found else None)

        account, password_hash = await self.db.read(find)
        if account is None or not password_hash:
            await anyio.to_thread.run_sync(self.hasher.hash, password)  # same time either way
            return None
        try:
            await anyio.to_thread.run_sync(self.hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if self.rehash_on_sign_in and self.hasher.check_needs_rehash(password_hash):
            # Made under other parameters (ROOST_PASSWORD_HASHING changed, or argon2's
            # recommendation did): this is the one moment the password is known.
            await self._upgrade_hash(account.id, password_hash, password)
        return account

    async def _upgrade_hash(self, account_id: int, old_hash: str, password: str) -> None:
        new_hash = await anyio.to_thread.run_sync(self.hasher.hash, password)

        def apply(tx: Tx) -> None:
            # Unless the password changed meanwhile: its new hash must stay.
            if self.stores.accounts.password_hash(tx, account_id) == old_hash:
                self.stores.accounts.update(tx, account_id, {"password_hash": new_hash})

        await self.db.write(apply)

    async def change_password(self, account_id: int, password: str) -> None:
        if len(password) < 8 or len(password) > 72:
            raise InvalidInput("Validation failed: Password must be between 8 and 72 characters")
        password_hash = await anyio.to_thread.run_sync(self.hasher.hash, password)
        await self.db.write(
            lambda tx: self.stores.accounts.update(tx, account_id, {"password_hash": password_hash})
        )

    async def get(self, account_id: int) -> Account:
        found = await self.db.read(lambda tx: self.stores.accounts.by_ids(tx, [account_id]),
                                   bounded=True)
        if account_id not in found:
            raise NotFound()
        return found[account_id]

    async def get_many(self, ids: list[int]) -> dict[int, Account]:
        return await self.db.read(lambda tx: self.stores.accounts.by_ids(tx, ids))

    async def lookup(self, acct: str, local_domain: str) -> Account:
        username, _, domain = acct.lstrip("@").partition("@")
        elsewhere = bool(domain) and domain.lower() != local_domain.lower()
        if elsewhere or not USERNAME.fullmatch(username):
            raise NotFound()  # (a name no account can have never reaches the database)
        found = await self.db.read(lambda tx: self.stores.accounts.by_username(tx, username),
                                   bounded=True)
        if found is None:
            raise NotFound()
        return found

    async def search(self, query: str, limit: int, offset: int) -> list[Account]:
        query = query.strip()
        if not query:
            return []
        return await self.db.read(lambda tx: self.stores.accounts.search(tx, query, limit, offset),
                                  scan=True)

    async def update_profile(self, account_id: int, changes: ProfileChanges) -> Account:
        values: dict[str, object] = {}
        if changes.display_name is not None:
            if len(changes.display_name) > MAX_DISPLAY_NAME:
                raise InvalidInput(f"Validation failed: Display name is too long "
                                   f"(maximum is {MAX_DISPLAY_NAME} characters)")
            values["display_name"] = changes.display_name
        if changes.note is not None:
            if len(changes.note) > MAX_NOTE:
                raise InvalidInput(f"Validation failed: Note is too long "
                                   f"(maximum is {MAX_NOTE} characters)")
            values["note"] = changes.note
        if changes.fields is not None:
            fields = [f for f in changes.fields if f.name.strip() or f.value.strip()]
            if len(fields) > MAX_FIELDS:
                raise InvalidInput(f"Validation failed: Fields is too long "
                                   f"(maximum is {MAX_FIELDS} fields)")
            for f in fields:
                if len(f.name) > MAX_FIELD_NAME or len(f.value) > MAX_FIELD_VALUE:
                    raise InvalidInput("Validation failed: Fields name or value is too long "
                                       f"(maximum is {MAX_FIELD_VALUE} characters)")
            values["fields"] = fields
        for flag in ("locked", "bot", "discoverable"):
            value = getattr(changes, flag)
            if value is not None:
                values[flag] = value

        def apply(tx: Tx) -> Account:
            before = self.stores.accounts.by_ids(tx, [account_id])[account_id]
            if values:
                self.stores.accounts.update(tx, account_id, values)
            if before.locked and values.get("locked") is False and self.on_unlock:
                self.on_unlock(tx, account_id)
            return self.stores.accounts.by_ids(tx, [account_id])[account_id]

        return await self.db.write(apply)

    async def instance_stats(self) -> tuple[int, int]:
        """(accounts, statuses) on this instance, exact. Counted over whole tables (18 ms for
        100,000 accounts on PostgreSQL, `python -m bench.endpoints`), so in the lane for
        scans: the quick reads do not queue behind it."""
        return await self.db.read(lambda tx: (self.stores.accounts.count(tx),
                                              self.stores.counters.total_statuses(tx)),
                                  snapshot=False, scan=True)
