"""The set of stores one Roost process uses, chosen by configuration."""

from __future__ import annotations

from dataclasses import dataclass, fields

from roost.settings import Settings
from roost.storage.memory.timelines import MemoryHomeTimelineStore
from roost.storage.protocols import (
    AccountStore,
    BookmarkStore,
    CounterStore,
    FavouriteStore,
    FollowerHistoryStore,
    FollowRequestStore,
    FollowStore,
    HomeTimelineStore,
    JobStore,
    MarkerStore,
    NotificationStore,
    OAuthStore,
    PinStore,
    RaceStore,
    StateStore,
    StatusStore,
    TagStore,
)
from roost.storage.sql.accounts import SqlAccountStore, SqlCounterStore
from roost.storage.sql.bookmarks import SqlBookmarkStore, SqlMarkerStore
from roost.storage.sql.favourites import SqlFavouriteStore
from roost.storage.sql.follows import SqlFollowRequestStore, SqlFollowStore
from roost.storage.sql.history import SqlFollowerHistoryStore
from roost.storage.sql.jobs import SqlJobStore
from roost.storage.sql.notifications import SqlNotificationStore
from roost.storage.sql.oauth import SqlOAuthStore
from roost.storage.sql.pins import SqlPinStore
from roost.storage.sql.races import SqlRaceStore
from roost.storage.sql.state import SqlStateStore
from roost.storage.sql.statuses import SqlStatusStore
from roost.storage.sql.tags import SqlTagStore
from roost.storage.sql.timelines import SqlHomeTimelineStore


@dataclass
class Stores:
    accounts: AccountStore
    counters: CounterStore
    follows: FollowStore
    follow_requests: FollowRequestStore
    history: FollowerHistoryStore
    races: RaceStore
    statuses: StatusStore
    favourites: FavouriteStore
    bookmarks: BookmarkStore
    pins: PinStore
    markers: MarkerStore
    tags: TagStore
    notifications: NotificationStore
    oauth: OAuthStore
    home: HomeTimelineStore
    jobs: JobStore
    state: StateStore


def sql_stores() -> Stores:
    """Every store in the relational database: the embedded configuration."""
    counters = SqlCounterStore()
    return Stores(
        accounts=SqlAccountStore(counters),
        counters=counters,
        follows=SqlFollowStore(),
        follow_requests=SqlFollowRequestStore(),
        history=SqlFollowerHistoryStore(),
        races=SqlRaceStore(),
        statuses=SqlStatusStore(),
        favourites=SqlFavouriteStore(),
        bookmarks=SqlBookmarkStore(),
        pins=SqlPinStore(),
        markers=SqlMarkerStore(),
        tags=SqlTagStore(),
        notifications=SqlNotificationStore(),
        oauth=SqlOAuthStore(),
        home=SqlHomeTimelineStore(),
        jobs=SqlJobStore(),
        state=SqlStateStore(),
    )


def stores_for(settings: Settings, *, serving: bool = False) -> Stores:
    """The stores ``settings`` ask for: everything in the database, or the home timelines
    in Redis, on one server or a Redis Cluster (``ROOST_REDIS_CLUSTER``; redis-py is imported
    only then), or in this process's memory where it is the one that serves them
    (``serving``; another process, a command-line tool, leaves them alone in the database)."""
    stores = sql_stores()
    where = settings.resolved_home_timelines()
    if where == "redis":
        from roost.storage.redis.timelines import RedisHomeTimelineStore

        stores.home = RedisHomeTimelineStore.from_url(
            settings.redis_url or "", cap=settings.home_timeline_size,
            prefix=settings.redis_prefix, cluster=settings.redis_cluster)
    elif where == "memory" and serving:
        stores.home = MemoryHomeTimelineStore(
            cap=settings.home_timeline_size, forget_after=settings.inactive_days * 86_400)
    return stores


def close_stores(stores: Stores) -> None:
    """Release what the stores hold besides the database (their Redis connections)."""
    for field in fields(stores):
        close = getattr(getattr(stores, field.name), "close", None)
        if callable(close):
            close()
