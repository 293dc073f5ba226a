"""Turns committed domain events into streaming messages on pub/sub channels.

Channels: ``timeline:<account>`` (home updates), ``notifications:<account>``,
``author:<account>`` (posts of pulled authors, which reach followers' streams through their
subscription rather than one message per follower), ``public``, ``public:local``,
``hashtag:<tag>``, ``hashtag:local:<tag>``, ``roost:followers:<account>``, and
``roost:pulled`` (authors that have just become pulled), ``roost:homes`` (the home
timeline store lost its timelines and every account was marked inactive), ``roost:tokens``
(revoked tokens, for the web processes, never for a stream), ``access_token:<token>``, on
which a token's revocation sends ``kill``: every stream opened with that token ends, as in
Mastodon, and ``web_session:<hash>``, the same for the streams a web session's pages opened.

A ``roost.resubscribe`` message (on ``timeline:<account>`` or ``roost:pulled``) is never sent
to clients: it tells live home streams to re-check which pulled authors they listen to; nor
is ``roost.revive`` (on ``roost:homes``), which tells them their account is active all the
same (``AccountService.revive``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from roost.clock import iso
from roost.domain.events import (
    DeliveredHome,
    FollowersChanged,
    HomesMarked,
    MilestoneReached,
    NotificationCreated,
    PulledFollowChanged,
    RaceUpdated,
    RemovedHome,
    SessionsEnded,
    StatusDeleted,
    StatusPosted,
    TokenRevoked,
)
from roost.domain.models import NotificationView, StatusView, Visibility
from roost.runtime import Roost
from roost.storage.database import Tx
from roost.storage.pubsub import Overflowed, PubSub
from roost.web import entities

log = logging.getLogger(__name__)

_INTERESTING = (StatusPosted, DeliveredHome, RemovedHome, StatusDeleted, NotificationCreated,
                FollowersChanged, MilestoneReached, RaceUpdated, PulledFollowChanged,
                TokenRevoked, SessionsEnded, HomesMarked)
RESUBSCRIBE = "roost.resubscribe"
PULLED_CHANNEL = "roost:pulled"
REVIVE = "roost.revive"
HOMES_CHANNEL = "roost:homes"
# Revoked tokens' ids, for every web process to forget them (``forget_revoked_tokens``);
# never a stream's channel.
TOKENS_CHANNEL = "roost:tokens"
# The event that ends the streams opened with a token when it is revoked (never sent to them).
KILL = "kill"


def token_channel(token_id: int) -> str:
    """The channel on which the streams opened with this token hear of its revocation."""
    return f"access_token:{token_id}"


def session_channel(session_hash: str) -> str:
    """The channel on which the streams a web session opened hear that it ended."""
    return f"web_session:{session_hash}"


def message(event: str, payload: Any) -> str:
    """A channel message: Mastodon's ``{"event", "payload"}`` with the payload as JSON text
    (a bare string for ``delete``)."""
    text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return orjson.dumps({"event": event, "payload": text}).decode()


def broadcast_channels(author_id: int, visibility: Visibility, reblog: bool, pushed: bool,
                       tags: Sequence[str]) -> list[str]:
    """The shared channels a status goes to besides home timelines: its pulled author's
    followers, and, for a public original (not a reblog, as in Mastodon), the public and
    hashtag streams."""
    channels = []
    if not pushed and visibility != Visibility.DIRECT:
        channels.append(f"author:{author_id}")
    if visibility == Visibility.PUBLIC and not reblog:
        channels += ["public", "public:local"]
        for tag in tags:
            name = tag.lower()
            channels += [f"hashtag:{name}", f"hashtag:local:{name}"]
    return channels


class Publisher:
    def __init__(self, roost: Roost, pubsub: PubSub) -> None:
        self.roost = roost
        self.pubsub = pubsub
        self._queue: asyncio.Queue[list[object]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    def on_commit(self, events: list[object]) -> None:
        """Database after-commit hook (writer thread): hand events to the event loop."""
        wanted: list[object] = [e for e in events if isinstance(e, _INTERESTING)]
        if wanted and self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, wanted)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            events = await self._queue.get()
            try:
                await self.publish(events)
            except Exception:
                log.exception("publishing %d events failed", len(events))

    async def publish(self, events: list[object]) -> None:
        events = await self._heard(events)
        status_ids = {e.status_id for e in events if isinstance(e, (StatusPosted, DeliveredHome))}
        notification_keys = [(e.account_id, e.notification_id) for e in events
                             if isinstance(e, NotificationCreated)]
        statuses, notifications = await self.roost.db.read(
            lambda tx: self._load(tx, list(status_ids), notification_keys))
        site = self.roost.site
        for event in events:
            if isinstance(event, StatusPosted) and event.status_id in statuses:
                view = statuses[event.status_id]
                update = message("update", entities.status(site, view))
                for account_id in event.home_ids:
                    await self.pubsub.publish(f"timeline:{account_id}", update)
                for channel in self._broadcast_channels(view):
                    await self.pubsub.publish(channel, update)
            elif isinstance(event, DeliveredHome) and event.status_id in statuses:
                update = message("update", entities.status(site, statuses[event.status_id]))
                for account_id in event.account_ids:
                    await self.pubsub.publish(f"timeline:{account_id}", update)
            elif isinstance(event, StatusDeleted):
                # the streams that heard of the status, and only those (as Mastodon)
                gone = message("delete", str(event.status_id))
                for channel in (*broadcast_channels(event.author_id, event.visibility,
                                                    event.reblog, event.pushed, event.tags),
                                *(f"timeline:{a}" for a in event.account_ids)):
                    await self.pubsub.publish(channel, gone)
            elif isinstance(event, RemovedHome):
                gone = message("delete", str(event.status_id))
                for account_id in event.account_ids:
                    await self.pubsub.publish(f"timeline:{account_id}", gone)
            elif isinstance(event, NotificationCreated):
                found = notifications.get((event.account_id, event.notification_id))
                if found is not None:
                    await self.pubsub.publish(
                        f"notifications:{event.account_id}",
                        message("notification", entities.notification(site, found)))
            elif isinstance(event, FollowersChanged):
                await self.pubsub.publish(f"roost:followers:{event.account_id}", message(
                    "roost.followers", {"account_id": str(event.account_id),
                                        "followers_count": event.followers_count,
                                        "at": iso(event.at)}))
            elif isinstance(event, RaceUpdated):
                await self._publish_race(event.race_id)
            elif isinstance(event, PulledFollowChanged):
                channel = (PULLED_CHANNEL if event.follower_id is None
                           else f"timeline:{event.follower_id}")
                await self.pubsub.publish(channel, message(RESUBSCRIBE, str(event.author_id)))
            elif isinstance(event, HomesMarked):
                await self.pubsub.publish(HOMES_CHANNEL, message(REVIVE, ""))
            elif isinstance(event, TokenRevoked):
                await self.pubsub.publish(TOKENS_CHANNEL, str(event.token_id))
                await self.pubsub.publish(token_channel(event.token_id), message(KILL, ""))
            elif isinstance(event, SessionsEnded):
                for ended in event.session_hashes:
                    await self.pubsub.publish(session_channel(ended), message(KILL, ""))
            elif isinstance(event, MilestoneReached):
                await self.pubsub.publish(f"roost:followers:{event.account_id}", message(
                    "roost.milestone", {"account_id": str(event.account_id),
                                        "count": event.count,
                                        "follower_id": str(event.follower_id),
                                        "reached_at": iso(event.at)}))

    async def _heard(self, events: list[object]) -> list[object]:
        """``events`` without the deliveries and notifications no stream listens to: a
        fan-out step's thousands of recipients are mostly offline, and a follow storm's
        notifications go to an account that may not be streaming, so loading and rendering
        them (a database read per notification) is work for no one."""
        deliveries = {id(e): [f"timeline:{a}" for a in e.account_ids]
                      for e in events if isinstance(e, DeliveredHome)}
        personal = [name for names in deliveries.values() for name in names]
        personal += [f"notifications:{e.account_id}" for e in events
                     if isinstance(e, NotificationCreated)]
        if not personal:
            return events
        heard = await self.pubsub.listened(personal)
        kept: list[object] = []
        for event in events:
            if isinstance(event, DeliveredHome):
                if not heard:  # (the usual case: no one streaming among thousands)
                    continue
                listening = tuple(a for a, name in zip(event.account_ids, deliveries[id(event)],
                                                       strict=True) if name in heard)
                if listening:
                    kept.append(DeliveredHome(event.status_id, listening))
            elif isinstance(event, NotificationCreated):
                if f"notifications:{event.account_id}" in heard:
                    kept.append(event)
            else:
                kept.append(event)
        return kept

    async def _publish_race(self, race_id: int) -> None:
        view = await self.roost.races.current(race_id)
        if view is not None:
            await self.pubsub.publish(f"roost:race:{race_id}",
                                      message("roost.race", entities.race(self.roost.site, view)))

    def _broadcast_channels(self, view: StatusView) -> list[str]:
        status = view.status
        return broadcast_channels(status.account_id, status.visibility,
                                  status.reblog_of_id is not None, status.pushed,
                                  [tag.name for tag in view.tags])

    def _load(self, tx: Tx, status_ids: list[int], notification_keys: list[tuple[int, int]]
              ) -> tuple[dict[int, StatusView], dict[tuple[int, int], NotificationView]]:
        statuses = {v.status.id: v for v in self.roost.posts.views(tx, status_ids, None,
                                                                   check_visibility=False)}
        notifications: dict[tuple[int, int], NotificationView] = {}
        for account_id, notification_id in notification_keys:
            found = self.roost.stores.notifications.get(tx, account_id, notification_id)
            if found is not None:
                for view in self.roost.notifications.views(tx, [found], account_id):
                    notifications[(account_id, notification_id)] = view
        return statuses, notifications


async def forget_revoked_tokens(roost: Roost, pubsub: PubSub) -> None:
    """Run for the life of a web process: forget each token revoked through any process at
    once, rather than when this process's memory of it runs out (``RecentTokens``). A
    listener that fell behind forgets every token it remembers."""
    while True:
        subscription = pubsub.subscription()
        try:
            await subscription.add([TOKENS_CHANNEL])
            while True:
                _channel, token_id = await subscription.get()
                if token_id.isdecimal():
                    roost.oauth.recent.forget(int(token_id))
        except Overflowed:
            roost.oauth.recent.clear()
        except Exception:  # (the pub/sub is down: remember nothing until it is back)
            log.warning("listening for revoked tokens failed; again in 1 s", exc_info=True)
            roost.oauth.recent.clear()
            await asyncio.sleep(1)
        finally:
            await subscription.close()
