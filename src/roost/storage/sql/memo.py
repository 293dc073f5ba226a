"""Objects built from rows, kept by the rows' values.

Every timeline page loads the same few authors and recent posts again: building an ``Account``
or a ``Status`` from its row was about an eighth of a home read's CPU (28 accounts: 42 us of
Python on top of the statement, on either engine; BENCHMARKS.md). A row read again with the
very same values gives a copy of the object built the first time instead, at a third of the
cost. The key is the whole row, counts included, so a changed row is simply a
new key: nothing is ever stale, and nothing needs telling when a row changes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Rows kept per kind of object; the whole memo is dropped when it is full (rows that keep being
# read come back at once). Accounts and posts of a few hundred bytes each: a few MB per memo.
KEPT_ROWS = 4096


class RowMemo(Generic[T]):
    """``build(row)``, or a copy of what it built for an equal row before. A copy, so that a
    caller changing its object (``AccountService.touch`` does) changes no one else's: shallow,
    but for the attributes named in ``lists``, which are copied too."""

    def __init__(self, build: Callable[[Sequence[Any]], T], *, lists: tuple[str, ...] = (),
                 kept: int = KEPT_ROWS) -> None:
        self._build = build
        self._lists = lists
        self._kept: dict[Hashable, T] = {}
        self._limit = kept

    def __call__(self, row: Sequence[Any]) -> T:
        key = tuple(row)  # (rows are tuples already; a tuple of them is the same object)
        built = self._kept.get(key)
        if built is None:
            built = self._build(row)
            if len(self._kept) >= self._limit:
                self._kept.clear()
            self._kept[key] = built
        clone: T = object.__new__(type(built))  # (copy.copy costs as much as building)
        values = clone.__dict__
        values.update(built.__dict__)
        for name in self._lists:
            values[name] = list(values[name])
        return clone
