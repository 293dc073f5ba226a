"""Accounts and their sharded counters in SQL."""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, or_, select, update

from roost.domain.models import Account, ProfileField
from roost.storage.database import Tx
from roost.storage.schema import account_counters, accounts, follows, statuses
from roost.storage.sql.memo import RowMemo
from roost.storage.sql.raw import Raw


def _account(row: Any, counts: tuple[int, int, int] | None) -> Account:
    followers, following, statuses_count = counts or (0, 0, 0)
    return Account(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        note=row.note,
        fields=([ProfileField(f["name"], f["value"]) for f in json.loads(row.fields)]
                if row.fields != "[]" else []),
        locked=bool(row.locked),
        bot=bool(row.bot),
        discoverable=bool(row.discoverable),
        created_at=row.created_at,
        last_status_at=row.last_status_at,
        followers_count=followers,
        following_count=following,
        statuses_count=statuses_count,
        email=row.email,
        locale=row.locale,
        is_admin=bool(row.is_admin),
        pulled=bool(row.pulled),
        last_active_at=row.last_active_at,
        home_rebuilding=bool(row.home_rebuilding),
    )


# (Not the password hash, nor the two columns that exist for lookups and the pulled-author
# index: a home page loads ~20 accounts, and each column read costs ~100 ns a row on SQLite.)
_COLUMNS = [c for c in accounts.c
            if c.name not in ("password_hash", "username_lower", "has_unpushed")]

# The statements on every request's path (authentication loads the account, hydration loads
# authors, a follow bumps two counters) run on the driver's cursor (``raw.py``): through
# SQLAlchemy's execution machinery they cost several times the lookup itself (BENCHMARKS.md).
_AccountRow = namedtuple("_AccountRow", [c.name for c in _COLUMNS])  # type: ignore[misc]
_N_COLUMNS = len(_COLUMNS)


def account_select(alias: str, counters: str, *, summed: bool = False) -> str:
    """The select list of an account (``alias``, a row of ``accounts``) with its counter sums
    (``counters``, a subquery's followers, following, statuses; ``summed``: the rows of
    ``account_counters`` themselves, grouped by account), for ``account_from``: for
    statements of other stores that load an account along with what they read."""
    counts = [f"{counters}.{name}" for name in ("followers", "following", "statuses")]
    return ", ".join([*(f"{alias}.{c.name}" for c in _COLUMNS),
                      *(f"SUM({count})" if summed else count for count in counts)])


def counter_sums(accounts_wanted: str) -> str:
    """A subquery of the counter sums (account_id, followers, following, statuses) of the
    accounts whose ``account_id`` matches ``accounts_wanted`` (an SQL condition), to join
    with an account row for ``account_select``."""
    return ("(SELECT account_id, SUM(followers) AS followers, SUM(following) AS following,"
            f" SUM(statuses) AS statuses FROM account_counters WHERE {accounts_wanted}"
            " GROUP BY account_id)")


def _build_account(row: Sequence[Any]) -> Account:
    counts = row[_N_COLUMNS:]
    return _account(_AccountRow._make(row[:_N_COLUMNS]),
                    (int(counts[0]), int(counts[1]), int(counts[2])) if counts[0] is not None
                    else None)


account_from = RowMemo(_build_account, lists=("fields",))
"""The account from the values ``account_select`` lists (``memo.py``)."""


# The accounts with their counter sums in one statement: one round trip on PostgreSQL. (Also
# run by other stores in one round trip with their own statements: ``FollowStore.follow_open``.)
BY_IDS = Raw(
    f"SELECT {account_select('a', 't')} FROM accounts a"
    f" LEFT JOIN {counter_sums('account_id IN ids(:ids)')} t ON t.account_id = a.id"
    " WHERE a.id IN ids(:ids)", lists=["ids"])
# SQLite materialises the grouped subquery and builds an automatic index on it at every call:
# there a plain join grouped by account is quicker (5-7% for a page's 28 accounts), where on
# PostgreSQL it is slower (BENCHMARKS.md).
_BY_IDS_SQLITE = Raw(
    f"SELECT {account_select('a', 'c', summed=True)}"
    " FROM accounts a LEFT JOIN account_counters c ON c.account_id = a.id"
    " WHERE a.id IN ids(:ids) GROUP BY a.id", lists=["ids"])
_TOTALS = Raw("SELECT account_id, SUM(followers), SUM(following), SUM(statuses)"
              " FROM account_counters WHERE account_id IN ids(:ids) GROUP BY account_id",
              lists=["ids"])
# A transaction-scoped advisory lock keyed by the account id (in memory; no row is written).
_HOLD = Raw("SELECT pg_advisory_xact_lock(:account_id)")
_COUNTER_ADD = Raw(
    "INSERT INTO account_counters (account_id, shard, followers, following, statuses)"
    " VALUES (:account_id, :shard, :followers, :following, :statuses)"
    " ON CONFLICT (account_id, shard) DO UPDATE SET"
    " followers = account_counters.followers + excluded.followers,"
    " following = account_counters.following + excluded.following,"
    " statuses = account_counters.statuses + excluded.statuses")


_UPDATES: dict[tuple[str, ...], Raw] = {}
_UPDATABLE = frozenset(c.name for c in accounts.c) - {"id"}


def _update_of(columns: tuple[str, ...]) -> Raw:
    """``UPDATE accounts SET <columns> WHERE id = :account_id``, built once per set of columns
    (every post updates ``last_status_at``; every hour's first request ``last_active_at``).
    Raw, and sent ahead (``Raw.send``): on PostgreSQL's writer a post's update goes out with
    its next statement instead of costing a round trip of its own."""
    stmt = _UPDATES.get(columns)
    if stmt is None:
        unknown = set(columns) - _UPDATABLE
        if unknown:
            raise ValueError(f"not account columns: {sorted(unknown)}")
        stmt = _UPDATES[columns] = Raw(
            "UPDATE accounts SET " + ", ".join(f"{name} = :{name}" for name in columns)
            + " WHERE id = :account_id")
    return stmt


class SqlAccountStore:
    def __init__(self, counters: SqlCounterStore) -> None:
        self._counters = counters

    def insert(self, tx: Tx, account: Account, password_hash: str | None) -> None:
        tx.execute(accounts.insert().values(
            id=account.id,
            username=account.username,
            username_lower=account.username.lower(),
            display_name=account.display_name,
            note=account.note,
            fields=json.dumps([f.__dict__ for f in account.fields]),
            locked=account.locked,
            bot=account.bot,
            discoverable=account.discoverable,
            email=account.email,
            password_hash=password_hash,
            is_admin=account.is_admin,
            locale=account.locale,
            pulled=False,
            has_unpushed=False,
            created_at=account.created_at,
            last_status_at=None,
            last_active_at=account.last_active_at,
            home_rebuilding=False,
        ))

    def _load(self, tx: Tx, rows: Sequence[Any]) -> list[Account]:
        counts = self._counters.totals(tx, [r.id for r in rows])
        return [_account(r, counts.get(r.id)) for r in rows]

    def by_ids(self, tx: Tx, ids: Iterable[int]) -> dict[int, Account]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        found = {}
        by_ids = _BY_IDS_SQLITE if tx.dialect.name == "sqlite" else BY_IDS
        for row in by_ids.all(tx, {"ids": wanted}):
            found[row[0]] = account_from(row)
        return found

    def by_username(self, tx: Tx, username: str) -> Account | None:
        rows = tx.execute(
            select(*_COLUMNS).where(accounts.c.username_lower == username.lower())
        ).all()
        loaded = self._load(tx, rows)
        return loaded[0] if loaded else None

    def by_email(self, tx: Tx, email: str) -> Account | None:
        rows = tx.execute(
            select(*_COLUMNS).where(func.lower(accounts.c.email) == email.lower())
        ).all()
        loaded = self._load(tx, rows)
        return loaded[0] if loaded else None

    def count(self, tx: Tx) -> int:
        return int(tx.execute(select(func.count()).select_from(accounts)).scalar() or 0)

    def password_hash(self, tx: Tx, account_id: int) -> str | None:
        value: str | None = tx.execute(
            select(accounts.c.password_hash).where(accounts.c.id == account_id)
        ).scalar()
        return value

    def update(self, tx: Tx, account_id: int, changes: dict[str, object]) -> None:
        values = dict(changes)
        if "fields" in values:
            values["fields"] = json.dumps([f.__dict__ for f in values["fields"]])  # type: ignore[attr-defined]
        _update_of(tuple(sorted(values))).send(tx, {**values, "account_id": account_id})

    def mark_inactive(self, tx: Tx, after_id: int, limit: int, at: int) -> int | None:
        batch = list(tx.execute(select(accounts.c.id).where(accounts.c.id > after_id)
                                .order_by(accounts.c.id).limit(limit)).scalars())
        if not batch:
            return None
        tx.execute(update(accounts).where(accounts.c.id >= batch[0], accounts.c.id <= batch[-1],
                                          accounts.c.last_active_at > at)
                   .values(last_active_at=at))
        return int(batch[-1])

    def search(self, tx: Tx, query: str, limit: int, offset: int) -> list[Account]:
        needle = query.lower().lstrip("@").split("@")[0]
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        followers = (
            select(func.coalesce(func.sum(account_counters.c.followers), 0))
            .where(account_counters.c.account_id == accounts.c.id)
            .scalar_subquery()
        )
        rows = tx.execute(
            select(*_COLUMNS)
            .where(or_(
                accounts.c.username_lower.like(escaped + "%", escape="\\"),
                func.lower(accounts.c.display_name).like("%" + escaped + "%", escape="\\"),
            ))
            .order_by((accounts.c.username_lower == needle).desc(), followers.desc(), accounts.c.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return self._load(tx, rows)


class SqlCounterStore:
    def hold(self, tx: Tx, account_id: int) -> None:
        """Take the account's counter lock until ``tx`` ends, so that transactions changing
        its counters commit one after another, each reading the count it made: other
        processes' writers on PostgreSQL wait for it. SQLite has one writer: nothing to do."""
        if tx.dialect.name == "postgresql":
            _HOLD.send(tx, {"account_id": account_id})

    def add(self, tx: Tx, account_id: int, shard: int, *, followers: int = 0,
            following: int = 0, statuses: int = 0) -> None:
        _COUNTER_ADD.send(tx, {"account_id": account_id, "shard": shard, "followers": followers,
                              "following": following, "statuses": statuses})

    def totals(self, tx: Tx, ids: Iterable[int]) -> dict[int, tuple[int, int, int]]:
        wanted = list(ids)
        if not wanted:
            return {}
        return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in _TOTALS.all(tx, {"ids": wanted})}

    def total_statuses(self, tx: Tx) -> int:
        return int(tx.execute(select(func.sum(account_counters.c.statuses))).scalar() or 0)

    def _recounted(self, tx: Tx) -> list[tuple[int, str, int, int]]:
        """(account id, counter, stored, actual) for every counter that differs from its rows."""
        c = account_counters.c
        stored = {
            r[0]: (int(r[1]), int(r[2]), int(r[3]))
            for r in tx.execute(
                select(c.account_id, func.sum(c.followers), func.sum(c.following),
                       func.sum(c.statuses)).group_by(c.account_id)
            )
        }
        actual: dict[int, list[int]] = {}
        for target, n in tx.execute(
            select(follows.c.target_account_id, func.count()).group_by(follows.c.target_account_id)
        ):
            actual.setdefault(target, [0, 0, 0])[0] = n
        for follower, n in tx.execute(
            select(follows.c.account_id, func.count()).group_by(follows.c.account_id)
        ):
            actual.setdefault(follower, [0, 0, 0])[1] = n
        for author, n in tx.execute(
            select(statuses.c.account_id, func.count()).group_by(statuses.c.account_id)
        ):
            actual.setdefault(author, [0, 0, 0])[2] = n
        out = []
        for account_id in sorted(set(stored) | set(actual)):
            have = stored.get(account_id, (0, 0, 0))
            want = actual.get(account_id, [0, 0, 0])
            for i, name in enumerate(("followers", "following", "statuses")):
                if have[i] != want[i]:
                    out.append((account_id, name, have[i], want[i]))
        return out

    def discrepancies(self, tx: Tx) -> list[tuple[int, str, int, int]]:
        return self._recounted(tx)

    def repair(self, tx: Tx) -> int:
        wrong = self._recounted(tx)
        for account_id, name, have, want in wrong:
            self.add(tx, account_id, 0, **{name: want - have})
        return len(wrong)
