"""Fan-out: pushing statuses into their author's followers' home timelines (the push half of
hybrid fan-out; pulled authors' posts are merged at read time, ``TimelineService``), and
taking deleted ones out again.

A push runs in steps of ``batch`` followers, each step resumable from the last follow id it
reached: as background jobs recorded with the post (the outbox), or, where home timelines live
in the server's memory and fill on read, in the post's own transaction when the followers are
fewer than one step. A job there would protect nothing: if the process dies the timelines go
with it and are filled from the database, post included; it would only cost an enqueue, a
claim and a finish per post, and a backlog (BENCHMARKS.md).
"""

from __future__ import annotations

from roost.clock import now_ms
from roost.domain.events import DeliveredHome, RemovedHome
from roost.domain.models import FanoutQuery, Status, TimelineEntry, Visibility
from roost.storage.database import Tx, emit
from roost.storage.stores import Stores


def fanout_job(status: Status) -> dict[str, object]:
    """The first step's payload of a status's fan-out job."""
    return {"status_id": status.id, "author_id": status.account_id, "after": 0}


class Fanout:
    def __init__(self, stores: Stores, *, batch: int, inactive_ms: int) -> None:
        self.stores = stores
        self.batch = batch
        self.inactive_ms = inactive_ms

    def at_once(self, tx: Tx, status: Status, followers: int) -> bool:
        """Push ``status`` to all its author's ``followers`` now, in this transaction, if the
        home timelines fill on read and they are fewer than one step; False: it needs a job."""
        if not self.stores.home.fills_on_read or followers >= self.batch:
            return False  # (a full step might not be the last: a job knows to look further)
        self.steps(tx, [fanout_job(status)], {status.id: status})
        return True

    def step(self, tx: Tx, payload: dict[str, object]) -> dict[str, object] | None:
        """The next step of one fan-out job (``steps``)."""
        return self.steps(tx, [payload])[0]

    def steps(self, tx: Tx, payloads: list[dict[str, object]],
              known: dict[int, Status] | None = None) -> list[dict[str, object] | None]:
        """The next step of several fan-outs at once (a worker takes a burst of posts' jobs
        together): their statuses in one statement, their followers in one round trip.
        Each one's progress: the next step's payload, or None when done."""
        wanted = [int(p["status_id"]) for p in payloads]  # type: ignore[call-overload]
        statuses = known if known is not None else self.stores.statuses.by_ids(tx, wanted)
        reblogged = {s.reblog_of_id for s in statuses.values() if s.reblog_of_id is not None}
        originals = self.stores.statuses.by_ids(tx, reblogged) if reblogged else {}
        # (A store that fills timelines on read holds only those read since it started, and
        # skips the others itself: the followers' activity need not be looked up.)
        active_since = 0 if self.stores.home.fills_on_read else now_ms() - self.inactive_ms
        live = [(i, statuses[status_id]) for i, status_id in enumerate(wanted)
                if status_id in statuses]  # (the others were deleted before delivery)
        found = self.stores.follows.fanout_targets_many(tx, [FanoutQuery(
            status.account_id, int(payloads[i]["after"]),  # type: ignore[call-overload]
            self.batch, status.in_reply_to_account_id, status.reblog_of_id is not None,
            active_since) for i, status in live]) if live else []
        progress: list[dict[str, object] | None] = [None] * len(payloads)
        for (i, status), targets in zip(live, found, strict=True):
            original = originals.get(status.reblog_of_id) if status.reblog_of_id else None
            if original is not None and original.visibility == Visibility.PRIVATE:
                targets = []  # only the author may reblog a private post; it stays with them
            entry = TimelineEntry(status.id, status.account_id, status.reblog_of_id)
            recipients = tuple(account_id for _, account_id in targets)
            self.stores.home.add(tx, recipients, entry)
            if recipients:
                emit(tx, DeliveredHome(status.id, recipients))
            if len(targets) == self.batch:
                progress[i] = {**payloads[i], "after": targets[-1][0]}
        return progress

    def unpush(self, tx: Tx, payload: dict[str, object]) -> dict[str, object] | None:
        """The next step of taking a deleted status out of its author's followers' home
        timelines; the next step's payload, or None when done."""
        status_id = int(payload["status_id"])  # type: ignore[call-overload]
        author_id = int(payload["author_id"])  # type: ignore[call-overload]
        after = int(payload["after"])  # type: ignore[call-overload]
        targets = self.stores.follows.fanout_targets(tx, author_id, after, self.batch, None,
                                                     False)
        recipients = tuple(account_id for _, account_id in targets)
        self.stores.home.remove(tx, recipients, status_id)
        if recipients:
            emit(tx, RemovedHome(status_id, recipients))
        if len(targets) < self.batch:
            return None
        return {**payload, "after": targets[-1][0]}
