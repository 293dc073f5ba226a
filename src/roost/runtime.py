"""Wires one Roost: settings → database and stores → domain services → background work."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal
from dataclasses import dataclass
from functools import partial

from roost.domain.accounts import AccountService
from roost.domain.fanout import Fanout
from roost.domain.follows import FollowService
from roost.domain.jobs import JobRunner
from roost.domain.markers import MarkerService
from roost.domain.notifications import NotificationService
from roost.domain.oauth import OAuthService
from roost.domain.posts import PostService
from roost.domain.races import RaceService
from roost.domain.site import Site
from roost.domain.stats import MilestoneRule, StatsService, parse_milestones
from roost.domain.timelines import TimelineService
from roost.ids import use_node
from roost.settings import Settings
from roost.storage import migrate
from roost.storage.database import Database, Tx
from roost.storage.nodes import claim_id_node
from roost.storage.queue import queue_for
from roost.storage.stores import close_stores, stores_for

log = logging.getLogger(__name__)

MAINTENANCE_SECONDS = 60.0
HOME_STORE_CHECK_SECONDS = 2.0  # how soon a Redis that came back empty is noticed (a read)
ROLLUP_SECONDS = 10.0
RACE_REFRESH_SECONDS = 1.0
RACE_SETTLE_MS = 2_000  # a write batch commits well within this on PostgreSQL


def dump_stacks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` writes every thread's stack to the process's stderr, without
    stopping it: what a stuck server or worker is doing, on a machine with no profiler."""
    if not hasattr(signal, "SIGUSR1"):  # (Windows)
        return
    # (ValueError: stderr is no file, as when the command runs inside a test's runner)
    with contextlib.suppress(ValueError):
        faulthandler.register(signal.SIGUSR1, all_threads=True)

@dataclass
class Discrepancy:
    kind: str  # "account" or "status"
    id: int
    counter: str
    stored: int
    actual: int


class Roost:
    """One running instance: the services the web layer and the CLI call."""

    def __init__(self, settings: Settings, *, serving: bool = False) -> None:
        """``serving``: this is the process that serves the API (`roost serve`), which may
        then keep the home timelines in its memory (``ROOST_HOME_TIMELINES``)."""
        self.settings = settings
        self.db = Database(settings.resolved_database_url(),
                           sqlite_synchronous=settings.sqlite_synchronous,
                           write_batch_max=settings.write_batch_max,
                           read_threads=settings.read_threads,
                           sqlite_inline_reads=settings.sqlite_inline_reads)
        self.stores = stores_for(settings, serving=serving)
        self.site = Site(settings.domain, settings.base_url(), settings.max_post_chars)
        shards = settings.counter_shards
        inactive_ms = int(settings.inactive_days * 86_400_000)
        self.fanout = Fanout(self.stores, batch=settings.fanout_batch_size,
                             inactive_ms=inactive_ms)
        self.posts = PostService(self.db, self.stores, self.site, shards, self.fanout)
        self.milestones = MilestoneRule(parse_milestones(settings.milestones),
                                        settings.milestone_every)
        self.follows = FollowService(self.db, self.stores, counter_shards=shards,
                                     pull_above=settings.fanout_pull_above,
                                     push_below=settings.fanout_push_below,
                                     milestones=self.milestones)
        self.stats = StatsService(self.db, self.stores,
                                  max_points=settings.history_max_points)
        # (SQLite serialises writers, so ids commit in order; PostgreSQL's may not: see races)
        self.races = RaceService(self.db, self.stores, self.stats,
                                 settle_ms=0 if self.db.is_sqlite else RACE_SETTLE_MS)
        self.accounts = AccountService(self.db, self.stores,
                                       on_unlock=self.follows.accept_all_requests,
                                       inactive_ms=inactive_ms,
                                       password_hashing=settings.password_hashing)
        self.timelines = TimelineService(self.db, self.stores, self.posts,
                                         home_size=settings.home_timeline_size,
                                         inactive_ms=inactive_ms)
        self.notifications = NotificationService(self.db, self.stores, self.posts.views)
        self.oauth = OAuthService(self.db, self.stores,
                                  auth_cache_seconds=settings.auth_cache_seconds)
        self.markers = MarkerService(self.db, self.stores)
        self.jobs = JobRunner(self.db, queue_for(settings, self.db, self.stores.jobs), {
            "fanout": self.fanout.step,
            "unfanout": self.fanout.unpush,
            "backfill": self.timelines.backfill,
            "forget_author": self.timelines.forget_author,
            "rebuild_home": self.timelines.rebuild_home,
            "homes_lost": self.timelines.homes_lost,
        }, batch_handlers={"fanout": self.fanout.steps})

    def migrate(self) -> None:
        migrate.upgrade(self.db)

    def start(self) -> None:
        """Migrate the schema, start the writer and, on a new database, record the home
        timeline store's mark (``TimelineService.claim_home_epoch``); calling it again does
        nothing."""
        if self.db.started:
            return
        self.migrate()
        self.db.start()
        use_node(claim_id_node(self.db))
        epoch = self.db.write_sync(self.timelines.claim_home_epoch)
        if epoch is not None:
            self.db.write_sync(lambda tx: self.stores.home.set_epoch(tx, epoch))

    def close(self) -> None:
        self.jobs.queue.close()
        self.db.close()
        close_stores(self.stores)

    async def run_background(self, job_poll_seconds: float = 1.0) -> None:
        """Background work: jobs as they are enqueued, history rollups, races, timeline caps,
        the home timeline store's health.

        Jobs committed in this process wake the job runner (or the relay to Redis) at once;
        ``job_poll_seconds`` is how soon the outbox is checked for jobs committed by other
        processes (a separate `roost worker` polls often, since every job it runs was
        enqueued elsewhere; stream messages wake a waiting consumer themselves)."""
        await asyncio.gather(self.jobs.run_forever(job_poll_seconds), self._maintain_forever(),
                             self._check_home_store_forever(), self._roll_up_forever(),
                             self._refresh_races_forever())

    async def maintain(self) -> None:
        """Periodic housekeeping: cap every home timeline at ``home_timeline_size`` entries,
        and sweep the web sessions unused for longer than their cookies last."""
        keep = self.settings.home_timeline_size
        after: int | None = 0
        while after is not None:  # one write per step: other writes go in between
            _, after = await self.db.write(partial(self.stores.home.cap_step, keep=keep,
                                                   after=after))
        await self.db.write(lambda tx: self.oauth.sweep_sessions(
            tx, self.settings.session_days * 86_400_000))

    async def _check_home_store_forever(self) -> None:
        """Notice a home timeline store that lost its timelines (and recover them): at once,
        since a worker restarted with Redis may find them lost, then every few seconds."""
        while True:
            try:
                await self.timelines.check_home_store()
            except Exception as exc:  # (Redis or the database down: the next check retries)
                log.warning("checking the home timeline store failed: %s", exc)
            await asyncio.sleep(HOME_STORE_CHECK_SECONDS)

    async def _maintain_forever(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            try:
                await self.maintain()
            except Exception:
                log.exception("timeline maintenance failed")

    async def _roll_up_forever(self) -> None:
        while True:
            try:
                await self.stats.roll_up()
            except Exception:
                log.exception("follower history rollup failed")
            await asyncio.sleep(ROLLUP_SECONDS)

    async def _refresh_races_forever(self) -> None:
        while True:
            try:
                await self.races.refresh_unsettled()
            except Exception:
                log.exception("race refresh failed")
            await asyncio.sleep(RACE_REFRESH_SECONDS)

    def check(self, repair: bool = False) -> list[Discrepancy]:
        """Recount every counter from its rows; with ``repair``, also fix the stored ones."""

        def recount(tx: Tx) -> list[Discrepancy]:
            found = [Discrepancy("account", *d) for d in self.stores.counters.discrepancies(tx)]
            found += [Discrepancy("status", *d) for d in self.stores.statuses.discrepancies(tx)]
            if repair:
                self.stores.counters.repair(tx)
                self.stores.statuses.repair(tx)
            return found

        return self.db.write_sync(recount) if repair else self.db.read_sync(recount)
