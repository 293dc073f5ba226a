"""Races and their progress in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update

from roost.domain.models import Page, Race, RaceEntry
from roost.storage.database import Tx
from roost.storage.schema import follow_events, race_entries, race_lead_changes, races
from roost.storage.sql.common import newest_first, paged

r = races.c
re_ = race_entries.c
lc = race_lead_changes.c
e = follow_events.c


class SqlRaceStore:
    def insert(self, tx: Tx, race: Race) -> None:
        tx.execute(races.insert().values(
            id=race.id, creator_id=race.creator_id, target=race.target,
            created_at=race.created_at, finished_at=race.finished_at, winner_id=race.winner_id,
            leader_id=race.leader_id, cursor_id=race.cursor_id, settled=race.settled))
        tx.execute(race_entries.insert(), [
            {"race_id": race.id, "account_id": x.account_id, "position": x.position,
             "followers": x.followers, "reached_at": x.reached_at,
             "milestone_follower_id": x.milestone_follower_id}
            for x in race.entries])
        self._add_lead_changes(tx, race.id, 0, race.lead_changes)

    def _add_lead_changes(self, tx: Tx, race_id: int, first_seq: int,
                          changes: Sequence[tuple[int, int]]) -> None:
        if changes:
            tx.execute(race_lead_changes.insert(), [
                {"race_id": race_id, "seq": first_seq + i, "at": at, "leader_id": leader}
                for i, (at, leader) in enumerate(changes)])

    def _load(self, tx: Tx, rows: Sequence[Any]) -> list[Race]:
        ids = [row.id for row in rows]
        if not ids:
            return []
        entries: dict[int, list[RaceEntry]] = {}
        for x in tx.execute(select(race_entries).where(re_.race_id.in_(ids))
                            .order_by(re_.race_id, re_.position)):
            entries.setdefault(x.race_id, []).append(RaceEntry(
                x.account_id, x.position, x.followers, x.reached_at, x.milestone_follower_id))
        changes: dict[int, list[tuple[int, int]]] = {}
        for c in tx.execute(select(race_lead_changes).where(lc.race_id.in_(ids))
                            .order_by(lc.race_id, lc.seq)):
            changes.setdefault(c.race_id, []).append((c.at, c.leader_id))
        return [Race(row.id, row.creator_id, row.target, row.created_at, row.cursor_id,
                     entries.get(row.id, []), changes.get(row.id, []), row.finished_at,
                     row.winner_id, row.leader_id, row.settled) for row in rows]

    def get(self, tx: Tx, race_id: int) -> Race | None:
        found = self._load(tx, tx.execute(select(races).where(r.id == race_id)).all())
        return found[0] if found else None

    def page(self, tx: Tx, page: Page) -> list[Race]:
        rows = newest_first(tx.execute(paged(select(races), r.id, page)).all(), page)
        return self._load(tx, rows)

    def unsettled_ids(self, tx: Tx, limit: int) -> list[int]:
        return list(tx.execute(select(r.id).where(r.settled.is_(False)).order_by(r.id)
                               .limit(limit)).scalars())

    def delete(self, tx: Tx, race_id: int) -> None:
        tx.execute(delete(race_lead_changes).where(lc.race_id == race_id))
        tx.execute(delete(race_entries).where(re_.race_id == race_id))
        tx.execute(delete(races).where(r.id == race_id))

    def events_after(self, tx: Tx, account_ids: Sequence[int], after_id: int, before_id: int,
                     limit: int) -> list[tuple[int, int, int, int, int]]:
        """(event id, target account, follower, delta, time) of the accounts' follow events
        after ``after_id`` and before ``before_id``, oldest first."""
        rows = tx.execute(
            select(e.id, e.target_account_id, e.account_id, e.delta, e.created_at)
            .where(e.target_account_id.in_(list(account_ids)), e.id > after_id,
                   e.id < before_id)
            .order_by(e.id).limit(limit))
        return [(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    def save_progress(self, tx: Tx, race: Race, new_lead_changes: int) -> None:
        tx.execute(update(races).where(r.id == race.id).values(
            cursor_id=race.cursor_id, leader_id=race.leader_id, winner_id=race.winner_id,
            finished_at=race.finished_at, settled=race.settled))
        for x in race.entries:
            tx.execute(update(race_entries).where(
                re_.race_id == race.id, re_.account_id == x.account_id).values(
                followers=x.followers, reached_at=x.reached_at,
                milestone_follower_id=x.milestone_follower_id))
        first = len(race.lead_changes) - new_lead_changes
        self._add_lead_changes(tx, race.id, first, race.lead_changes[first:])
