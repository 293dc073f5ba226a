"""What happened, as told to live listeners (streaming) once the change has committed.

Services record these with ``emit(tx, event)`` inside their transaction; the database hands
them over only after the commit, so a listener never hears of a change that rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.domain.models import Visibility


@dataclass(frozen=True)
class StatusPosted:
    """A new status (or reblog), already in the home timelines of ``home_ids``."""

    status_id: int
    author_id: int
    home_ids: tuple[int, ...]


@dataclass(frozen=True)
class DeliveredHome:
    """A fan-out step put a status into these accounts' home timelines."""

    status_id: int
    account_ids: tuple[int, ...]


@dataclass(frozen=True)
class RemovedHome:
    """A clean-up step took a deleted status out of these accounts' home timelines."""

    status_id: int
    account_ids: tuple[int, ...]


@dataclass(frozen=True)
class StatusDeleted:
    status_id: int
    author_id: int
    account_ids: tuple[int, ...]  # home timelines it is known to leave now
    # What decided where the status was broadcast, so that its delete follows it there.
    visibility: Visibility = Visibility.PUBLIC
    reblog: bool = False
    pushed: bool = True
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotificationCreated:
    account_id: int
    notification_id: int


@dataclass(frozen=True)
class PulledFollowChanged:
    """Live home streams must re-check which pulled authors they listen to: the follower's,
    after a follow or unfollow of a pulled author; with ``follower_id`` None, every follower's,
    as the author has just become pulled."""

    author_id: int
    follower_id: int | None


@dataclass(frozen=True)
class FollowersChanged:
    account_id: int
    followers_count: int
    at: int


@dataclass(frozen=True)
class RaceUpdated:
    race_id: int


@dataclass(frozen=True)
class MilestoneReached:
    account_id: int
    count: int
    follower_id: int
    at: int


@dataclass(frozen=True)
class TokenRevoked:
    """An access token stopped being valid: every web process forgets it at once, not only
    the one that revoked it (``RecentTokens``)."""

    token_id: int


@dataclass(frozen=True)
class SessionsEnded:
    """Web sessions ended (signed out, or ended by a password change): the streams their
    pages opened end too. Sessions are named by the hash of their secret."""

    session_hashes: tuple[str, ...]


@dataclass(frozen=True)
class HomesMarked:
    """After the home timeline store lost its timelines, every account has been marked as
    back from inactivity (``TimelineService.homes_lost``): live home streams revive theirs."""
