"""Hashtags in SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, delete, select

from roost.domain.models import Tag
from roost.ids import new_id
from roost.storage.database import Tx
from roost.storage.schema import status_tags, tags
from roost.storage.sql.raw import Raw

# Every timeline read asks this: on the driver's cursor (raw.py).
_OF_STATUSES = Raw(
    "SELECT status_tags.status_id, tags.id, tags.name FROM status_tags"
    " JOIN tags ON tags.id = status_tags.tag_id WHERE status_tags.status_id IN ids(:ids)"
    " ORDER BY status_tags.status_id, tags.id", lists=["ids"])


# Posting with hashtags runs these: raw, and the inserts sent ahead (Raw.send), so a post
# with one new or known tag costs one round trip for its tags on PostgreSQL, not three
# SQLAlchemy statements (BENCHMARKS.md, posting profile).
_ENSURE = Raw("INSERT INTO tags (id, name, name_lower, created_at)"
              " VALUES (:id, :name, :name_lower, :created_at) ON CONFLICT (name_lower) DO NOTHING")
_BY_NAME = Raw("SELECT id, name FROM tags WHERE name_lower = :name_lower")
_LINK = Raw("INSERT INTO status_tags (tag_id, status_id) VALUES (:tag_id, :status_id)"
            " ON CONFLICT DO NOTHING")


class SqlTagStore:
    def ensure(self, tx: Tx, names: Sequence[str], at: int) -> list[Tag]:
        found: dict[str, Tag] = {}
        for name in names:  # (a post has a few: one statement each, in the order given)
            lower = name.lower()
            if lower in found:
                continue
            _ENSURE.send(tx, {"id": new_id(), "name": name, "name_lower": lower,
                              "created_at": at})
            row = _BY_NAME.first(tx, {"name_lower": lower})
            assert row is not None  # inserted just now, or by someone before
            found[lower] = Tag(row[0], row[1])
        return [found[n.lower()] for n in names]

    def by_name(self, tx: Tx, name: str) -> Tag | None:
        row = tx.execute(select(tags).where(tags.c.name_lower == name.lower())).first()
        return Tag(row.id, row.name) if row else None

    def link(self, tx: Tx, status_id: int, tag_ids: Iterable[int]) -> None:
        for tag_id in sorted(set(tag_ids)):
            _LINK.send(tx, {"tag_id": tag_id, "status_id": status_id})

    def unlink(self, tx: Tx, status_id: int) -> None:
        tx.execute(delete(status_tags).where(status_tags.c.status_id == status_id))

    def of_statuses(self, tx: Tx, ids: Sequence[int]) -> dict[int, list[Tag]]:
        if not ids:
            return {}
        out: dict[int, list[Tag]] = {}
        for status_id, tag_id, name in _OF_STATUSES.all(tx, {"ids": ids}):
            out.setdefault(status_id, []).append(Tag(tag_id, name))
        return out

    def search(self, tx: Tx, prefix: str, limit: int, offset: int) -> list[Tag]:
        needle = prefix.lower().lstrip("#")
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        order: ColumnElement[str] = tags.c.name_lower
        if tx.dialect.name == "postgresql":
            order = order.collate("C")  # code point order, as SQLite's, whatever the locale
        rows = tx.execute(
            select(tags).where(tags.c.name_lower.like(escaped + "%", escape="\\"))
            .order_by(order).limit(limit).offset(offset)
        )
        return [Tag(r.id, r.name) for r in rows]
