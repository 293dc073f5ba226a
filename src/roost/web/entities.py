"""Domain records as Mastodon's JSON entities (field names and types as Mastodon documents)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from roost import MASTODON_API_VERSION, __version__
from roost.clock import iso, iso_date
from roost.domain import content
from roost.domain.models import (
    Account,
    App,
    NotificationView,
    Relationship,
    StatusView,
    Tag,
)
from roost.domain.oauth import IssuedToken
from roost.domain.posts import MAX_PINS
from roost.domain.races import RaceView
from roost.domain.site import Site
from roost.settings import Settings

JsonObject = dict[str, Any]


def _midnight(ms: int) -> str:
    return iso_date(ms) + "T00:00:00.000Z"


# Rendering an entity is a fifth of a timeline read's CPU, and the same few authors and
# recent posts appear on every page: both are kept rendered. An account's rendering is keyed
# by every value it shows (a changed count or profile is a new key, never a stale entry); a
# status's by its id and edit time, since all it shows but its counts and the viewer's marks
# is fixed when it is posted. Full memos are emptied rather than kept in order: an entry is
# cheap to render again and a hit must stay cheaper than any bookkeeping.
MEMO_SIZE = 4096  # entries per memo: ~16 MB for both when full (measured, posts of 280 characters)
_accounts: dict[tuple[Any, ...], JsonObject] = {}
_statuses: dict[tuple[str, int, int | None], JsonObject] = {}


def account(site: Site, a: Account) -> JsonObject:
    return dict(_account(site, a))


def _account(site: Site, a: Account) -> JsonObject:
    """The memoised rendering: shared, never to be changed by a caller."""
    # (The site by its URL and domain: hashing the dataclass itself costs more than the rest.)
    key = (site.base_url, site.domain, a.id, a.username, a.display_name, a.note, a.locked,
           a.bot, a.discoverable,
           a.created_at, a.last_status_at, a.followers_count, a.following_count,
           a.statuses_count, *a.fields)
    out = _accounts.get(key)
    if out is None:
        if len(_accounts) >= MEMO_SIZE:
            _accounts.clear()
        out = _accounts[key] = _render_account(site, a)
    return out


def _render_account(site: Site, a: Account) -> JsonObject:
    avatar = f"{site.base_url}/avatars/original/missing.png"
    header = f"{site.base_url}/headers/original/missing.png"
    return {
        "id": str(a.id),
        "username": a.username,
        "acct": a.username,
        "display_name": a.display_name,
        "locked": a.locked,
        "bot": a.bot,
        "discoverable": a.discoverable,
        "indexable": a.discoverable,
        "group": False,
        "hide_collections": False,
        "noindex": False,
        "created_at": _midnight(a.created_at),
        "note": _note_html(site, a.note),
        "url": site.profile_url(a.username),
        "uri": site.account_uri(a.username),
        "avatar": avatar,
        "avatar_static": avatar,
        "header": header,
        "header_static": header,
        "followers_count": a.followers_count,
        "following_count": a.following_count,
        "statuses_count": a.statuses_count,
        "last_status_at": iso_date(a.last_status_at) if a.last_status_at else None,
        "emojis": [],
        "roles": [],
        "fields": [
            {"name": f.name, "value": _field_html(f.value), "verified_at": None}
            for f in a.fields
        ],
    }


# Rendering a bio or a field parses and sanitises it; the same few accounts appear on every
# page, so each distinct text is rendered once (the results depend on nothing else).
@lru_cache(maxsize=8192)
def _note_html(site: Site, note: str) -> str:
    if not note.strip():
        return ""
    return content.render(note, profile_url=site.profile_url, tag_url=site.tag_url,
                          local_domain=site.domain)


@lru_cache(maxsize=8192)
def _field_html(value: str) -> str:
    return content.render_field_value(value)


def credential_account(site: Site, a: Account, follow_requests_count: int = 0) -> JsonObject:
    return {
        **account(site, a),
        "source": {
            "privacy": "public",
            "sensitive": False,
            "language": a.locale,
            "note": a.note,
            "fields": [{"name": f.name, "value": f.value, "verified_at": None} for f in a.fields],
            "follow_requests_count": follow_requests_count,
            "discoverable": a.discoverable,
            "indexable": a.discoverable,
            "hide_collections": False,
        },
        "role": {"id": "3" if a.is_admin else "-99", "name": "Admin" if a.is_admin else "",
                 "permissions": "1" if a.is_admin else "0", "color": "", "highlighted": a.is_admin},
    }


def tag(site: Site, t: Tag) -> JsonObject:
    return {"name": t.name, "url": site.tag_url(t.name)}


def full_tag(site: Site, t: Tag, following: bool = False) -> JsonObject:
    return {"id": str(t.id), "name": t.name, "url": site.tag_url(t.name), "history": [],
            "following": following}


def status(site: Site, v: StatusView, *, with_source: bool = False) -> JsonObject:
    s = v.status
    marks = v.reblog or v  # a boost shows the viewer's marks on the boosted post
    out: JsonObject = {
        **_status_fixed(site, v),
        "replies_count": s.replies_count,
        "reblogs_count": s.reblogs_count,
        "favourites_count": s.favourites_count,
        "favourited": marks.favourited,
        "reblogged": marks.reblogged,
        "bookmarked": marks.bookmarked,
        "reblog": status(site, v.reblog) if v.reblog else None,
        "account": _account(site, v.account),
    }
    if v.pinned is not None:  # (only on the viewer's own posts, as in Mastodon)
        out["pinned"] = v.pinned
    if with_source:
        out["text"] = s.text
    return out


def _status_fixed(site: Site, v: StatusView) -> JsonObject:
    """What a status shows that is fixed when it is posted (memoised: shared, never to be
    changed by a caller)."""
    s = v.status
    key = (site.base_url, s.id, s.edited_at)
    out = _statuses.get(key)
    if out is None:
        if len(_statuses) >= MEMO_SIZE:
            _statuses.clear()
        out = _statuses[key] = {
            "id": str(s.id),
            "created_at": iso(s.created_at),
            "in_reply_to_id": str(s.in_reply_to_id) if s.in_reply_to_id else None,
            "in_reply_to_account_id": (str(s.in_reply_to_account_id)
                                       if s.in_reply_to_account_id else None),
            "sensitive": s.sensitive,
            "spoiler_text": s.spoiler_text,
            "visibility": s.visibility.value,
            "language": s.language,
            "uri": site.status_uri(v.account.username, s.id),
            "url": site.status_url(v.account.username, s.id),
            "edited_at": iso(s.edited_at) if s.edited_at else None,
            "muted": False,
            "content": s.content,
            "filtered": [],
            "application": None,
            "media_attachments": [],
            "mentions": [
                {"id": str(m.id), "username": m.username, "url": site.profile_url(m.username),
                 "acct": m.username}
                for m in v.mentions
            ],
            "tags": [tag(site, t) for t in v.tags],
            "emojis": [],
            "card": None,
            "poll": None,
        }
    return out


def notification(site: Site, n: NotificationView) -> JsonObject:
    out: JsonObject = {
        "id": str(n.notification.id),
        "type": n.notification.type,
        "group_key": f"ungrouped-{n.notification.id}",
        "created_at": iso(n.notification.created_at),
        "account": account(site, n.account),
        "status": status(site, n.status) if n.status else None,
    }
    if n.notification.type == "roost.milestone":
        out["milestone"] = {"count": n.notification.detail}
    return out


def relationship(r: Relationship) -> JsonObject:
    return {
        "id": str(r.id),
        "following": r.following,
        "showing_reblogs": r.showing_reblogs,
        "notifying": r.notifying,
        "languages": None,
        "followed_by": r.followed_by,
        "blocking": False,
        "blocked_by": False,
        "muting": False,
        "muting_notifications": False,
        "requested": r.requested,
        "requested_by": r.requested_by,
        "domain_blocking": False,
        "endorsed": False,
        "note": "",
    }


def application(app: App, *, with_secret: bool) -> JsonObject:
    out: JsonObject = {
        "id": str(app.id),
        "name": app.name,
        "website": app.website,
        "scopes": app.scopes,
        "redirect_uri": "\n".join(app.redirect_uris),
        "redirect_uris": app.redirect_uris,
        "vapid_key": "",
    }
    if with_secret:
        out["client_id"] = app.client_id
        out["client_secret"] = app.client_secret
        out["client_secret_expires_at"] = 0
    return out


def token(t: IssuedToken) -> JsonObject:
    out: JsonObject = {
        "access_token": t.access_token,
        "token_type": "Bearer",
        "scope": " ".join(t.scopes),
        "created_at": t.created_at // 1000,
    }
    if t.refresh_token:
        out["refresh_token"] = t.refresh_token
    return out


def race(site: Site, view: RaceView) -> JsonObject:
    r = view.race
    return {
        "id": str(r.id),
        "target": r.target,
        "created_at": iso(r.created_at),
        "finished_at": iso(r.finished_at) if r.finished_at else None,
        "winner_id": str(r.winner_id) if r.winner_id else None,
        "standings": [{
            "account": account(site, s.account),
            "followers_count": s.followers,
            "velocity_per_hour": s.velocity_per_hour,
            "projected_at": iso(s.projected_at) if s.projected_at else None,
            "reached_at": iso(s.reached_at) if s.reached_at else None,
            "milestone_follower": (account(site, s.milestone_follower)
                                   if s.milestone_follower else None),
        } for s in view.standings],
        "lead_changes": [{"at": iso(at), "leader_id": str(leader)}
                         for at, leader in r.lead_changes],
    }


def version_string() -> str:
    return f"{MASTODON_API_VERSION} (compatible; Roost {__version__})"


def _limits(settings: Settings) -> JsonObject:
    return {
        "urls": {"streaming": settings.base_url().replace("http", "ws", 1)},
        "accounts": {"max_featured_tags": 0, "max_pinned_statuses": MAX_PINS,
                     "max_display_name_length": 30, "max_note_length": 500,
                     "max_profile_fields": 4, "profile_field_name_limit": 255,
                     "profile_field_value_limit": 255},
        "statuses": {"max_characters": settings.max_post_chars, "max_media_attachments": 0,
                     "characters_reserved_per_url": content.URL_LENGTH},
        "media_attachments": {"supported_mime_types": [], "image_size_limit": 0,
                              "image_matrix_limit": 0, "video_size_limit": 0,
                              "video_frame_rate_limit": 0, "video_matrix_limit": 0,
                              "description_limit": 0},
        "polls": {"max_options": 0, "max_characters_per_option": 0, "min_expiration": 300,
                  "max_expiration": 2629746},
        "translation": {"enabled": False},
    }


def instance_v2(settings: Settings, active_users: int) -> JsonObject:
    base = settings.base_url()
    return {
        "domain": settings.domain,
        "title": settings.title,
        "version": version_string(),
        "source_url": "https://roost.invalid/source",
        "description": "A Roost server: microblogging that keeps up when one account gains a "
                       "million followers.",
        "usage": {"users": {"active_month": active_users}},
        "thumbnail": {"url": f"{base}/headers/original/missing.png", "blurhash": None,
                      "versions": {}},
        "icon": [],
        "languages": ["en"],
        "configuration": _limits(settings),
        "registrations": {"enabled": settings.registrations_open, "approval_required": False,
                          "message": None, "url": None},
        "api_versions": {"mastodon": 2},
        "contact": {"email": settings.contact_email, "account": None},
        "rules": [],
    }


def instance_v1(settings: Settings, users: int, statuses: int) -> JsonObject:
    return {
        "uri": settings.domain,
        "title": settings.title,
        "short_description": "A Roost server.",
        "description": "A Roost server: microblogging that keeps up when one account gains a "
                       "million followers.",
        "email": settings.contact_email,
        "version": version_string(),
        "urls": {"streaming_api": settings.base_url().replace("http", "ws", 1)},
        "stats": {"user_count": users, "status_count": statuses, "domain_count": 1},
        "thumbnail": None,
        "languages": ["en"],
        "registrations": settings.registrations_open,
        "approval_required": False,
        "invites_enabled": False,
        "configuration": _limits(settings),
        "contact_account": None,
        "rules": [],
    }
