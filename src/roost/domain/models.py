"""The records the domain works with; plain dataclasses, shared by services and stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Visibility(StrEnum):
    PUBLIC = "public"
    UNLISTED = "unlisted"
    PRIVATE = "private"
    DIRECT = "direct"


@dataclass(frozen=True)
class ProfileField:
    name: str
    value: str


@dataclass
class Account:
    id: int
    username: str
    display_name: str
    note: str
    fields: list[ProfileField]
    locked: bool
    bot: bool
    discoverable: bool
    created_at: int
    last_status_at: int | None
    followers_count: int = 0
    following_count: int = 0
    statuses_count: int = 0
    email: str | None = None
    locale: str = "en"
    is_admin: bool = False
    pulled: bool = False
    last_active_at: int = 0
    home_rebuilding: bool = False


@dataclass
class Tag:
    id: int
    name: str


@dataclass
class Status:
    id: int
    account_id: int
    text: str
    content: str
    spoiler_text: str
    sensitive: bool
    visibility: Visibility
    language: str | None
    in_reply_to_id: int | None
    in_reply_to_account_id: int | None
    reblog_of_id: int | None
    pushed: bool
    replies_count: int
    reblogs_count: int
    favourites_count: int
    created_at: int
    edited_at: int | None = None


@dataclass
class StatusView:
    """A status with everything needed to show it to one viewer, loaded in bulk."""

    status: Status
    account: Account
    mentions: list[Account] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    reblog: StatusView | None = None
    favourited: bool = False
    reblogged: bool = False
    bookmarked: bool = False
    pinned: bool | None = None  # (only for the viewer's own pinnable statuses)


@dataclass
class RelationshipFacts:
    """What the follow graph says about a viewer and some accounts (``FollowStore.relations``):
    whom the viewer follows (with show_reblogs, notify), who follows the viewer, and the
    follow requests each way."""

    following: dict[int, tuple[bool, bool]]
    followed_by: set[int]
    requested: set[int]
    requested_by: set[int]


class FanoutQuery(NamedTuple):
    """Which followers a fan-out step reaches (``FollowStore.fanout_targets``)."""

    author_id: int
    after: int
    limit: int
    reply_to_account_id: int | None
    is_reblog: bool
    active_since: int = 0


@dataclass
class FollowAttempt:
    """A follow of an open account in one go (``FollowStore.follow_open``): the account
    (None: there is none), the relationship facts from before the follow, and whether the
    edge was made (False: the account is locked, or the edge was already there)."""

    target: Account | None
    facts: RelationshipFacts
    followed: bool


@dataclass
class StatusMarks:
    """What a viewer did to some statuses (``StatusStore.viewer_marks``): the ids they
    favourited, reblogged, bookmarked and pinned."""

    favourited: set[int]
    reblogged: set[int]
    bookmarked: set[int]
    pinned: set[int] = field(default_factory=set)


@dataclass
class Relationship:
    id: int
    following: bool = False
    followed_by: bool = False
    showing_reblogs: bool = False
    notifying: bool = False
    requested: bool = False
    requested_by: bool = False


@dataclass
class Notification:
    id: int
    account_id: int
    type: str
    from_account_id: int
    status_id: int | None
    created_at: int
    detail: int | None = None


@dataclass
class NotificationView:
    notification: Notification
    account: Account
    status: StatusView | None


@dataclass
class App:
    id: int
    name: str
    website: str | None
    redirect_uris: list[str]
    scopes: list[str]
    client_id: str
    client_secret: str
    created_at: int


@dataclass
class Token:
    id: int
    app_id: int | None
    account_id: int | None
    scopes: list[str]
    created_at: int


@dataclass
class AuthCode:
    app_id: int
    account_id: int
    redirect_uri: str
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: int


@dataclass(frozen=True)
class Snapshot:
    """An account's follower history at one instant."""

    followers: int
    gained: int
    lost: int


@dataclass(frozen=True)
class Milestone:
    account_id: int
    count: int
    reached_at: int
    follower_id: int


@dataclass
class RaceEntry:
    account_id: int
    position: int
    followers: int
    reached_at: int | None = None
    milestone_follower_id: int | None = None


@dataclass
class Race:
    id: int
    creator_id: int
    target: int
    created_at: int
    cursor_id: int
    entries: list[RaceEntry]
    lead_changes: list[tuple[int, int]]  # (time, leader id)
    finished_at: int | None = None
    winner_id: int | None = None
    leader_id: int | None = None
    settled: bool = False


@dataclass
class Marker:
    timeline: str
    last_read_id: int
    version: int
    updated_at: int


@dataclass
class Job:
    id: int
    kind: str
    payload: dict[str, object]
    attempts: int
    receipt: str | None = None
    """The broker's handle on this delivery (a Redis Stream message id), to acknowledge it
    by; None for a job taken straight from the outbox."""


@dataclass(frozen=True)
class TimelineEntry:
    status_id: int
    author_id: int
    reblog_of_id: int | None = None


@dataclass(frozen=True)
class Page:
    """Mastodon's pagination window: ids strictly between since/min and max; newest first,
    except that ``min_id`` asks for the entries just above it (oldest first, then reversed)."""

    max_id: int | None = None
    since_id: int | None = None
    min_id: int | None = None
    limit: int = 20
