"""Profiles ``/@username``, their followers and following, and the follow button."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.clock import now_ms
from roost.domain.errors import InvalidInput
from roost.domain.models import Account, Page, Relationship
from roost.web.pages.common import (
    ACCOUNTS_PER_PAGE,
    STATUSES_PER_PAGE,
    me,
    page,
    pager,
    redirect,
    render,
    require_me,
    roost_of,
    safe_back,
)
from roost.web.pages.timelines import is_first_page, status_page, statuses_fragment
from roost.web.params import Params
from roost.web.times import time_param


async def account_named(request: Request) -> Account:
    roost = roost_of(request)
    return await roost.accounts.lookup(str(request.path_params["username"]), roost.site.domain)


async def relationship_with(request: Request, account: Account) -> Relationship | None:
    viewer = me(request)
    if viewer is None or viewer.id == account.id:
        return None
    found = await roost_of(request).follows.relationships(viewer.id, [account.id])
    return found[0] if found else None


@page
async def profile(request: Request, params: Params) -> Response:
    """Display name, handle, bio, fields (the website link), counts, follow button, pinned
    posts (on the first page), posts."""
    roost = roost_of(request)
    account = await account_named(request)
    viewer = me(request)
    viewer_id = viewer.id if viewer else None
    statuses = await roost.timelines.account(account.id, viewer_id, status_page(params))
    if params.bool("fragment"):
        return statuses_fragment(request, statuses)
    pinned = (await roost.posts.pinned(account.id, viewer_id)
              if is_first_page(params) else [])
    return render(request, "profile.html", {
        "account": account, "relationship": await relationship_with(request, account),
        "statuses": statuses, "pinned": pinned,
        "nav": "profile" if viewer and viewer.id == account.id else "",
        "pager": pager(request, [v.status.id for v in statuses], STATUSES_PER_PAGE)})


@page
async def account_stats(request: Request, params: Params) -> Response:
    """The follower count at a chosen instant, gains and losses, velocity, milestones."""
    roost = roost_of(request)
    account = await account_named(request)
    now = now_ms()
    at_text = (params.str("at") or "").strip()
    at_count: int | None = None
    at_ms: int | None = None
    error = ""
    status = 200
    if at_text:
        try:
            at_ms = time_param(params, "at", now)
            if at_ms > now:
                raise InvalidInput("That time is in the future.")
            at_count = await roost.stats.count_at(account.id, at_ms)
        except InvalidInput as exc:
            error, status, at_ms = exc.message, 422, None
    return render(request, "account_stats.html", {
        "account": account, "relationship": await relationship_with(request, account),
        "stats": await roost.stats.stats(account.id),
        "milestones": await roost.stats.milestones(account.id),
        "at_text": at_text, "at_ms": at_ms, "at_count": at_count, "error": error,
        "windows": [("15m", "15 minutes"), ("1h", "Hour"), ("1d", "Day")]}, status=status)


def _account_page(params: Params) -> Page:
    return Page(max_id=params.id("max_id"), min_id=params.id("min_id"), limit=ACCOUNTS_PER_PAGE)


async def _account_list(request: Request, params: Params, followers: bool) -> Response:
    roost = roost_of(request)
    account = await account_named(request)
    listing = roost.follows.followers if followers else roost.follows.following
    rows = await listing(account.id, _account_page(params))
    name = f"@{account.username}"
    return render(request, "accounts.html", {
        "account": account, "relationship": await relationship_with(request, account),
        "accounts": [a for _, a in rows],
        "heading": f"Followers of {name}" if followers else f"Followed by {name}",
        "empty": f"{name} has no followers yet." if followers
        else f"{name} does not follow anyone yet.",
        "pager": pager(request, [cursor for cursor, _ in rows], ACCOUNTS_PER_PAGE)})


@page
async def followers(request: Request, params: Params) -> Response:
    return await _account_list(request, params, followers=True)


@page
async def following(request: Request, params: Params) -> Response:
    return await _account_list(request, params, followers=False)


@page
async def follow(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    account = await account_named(request)
    await roost_of(request).follows.follow(viewer.id, account.id)
    return redirect(safe_back(params.str("back"), f"/@{account.username}"))


@page
async def unfollow(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    account = await account_named(request)
    await roost_of(request).follows.unfollow(viewer.id, account.id)
    return redirect(safe_back(params.str("back"), f"/@{account.username}"))


routes = [
    Route("/@{username}", profile, methods=["GET"]),
    Route("/@{username}/stats", account_stats, methods=["GET"]),
    Route("/@{username}/followers", followers, methods=["GET"]),
    Route("/@{username}/following", following, methods=["GET"]),
    Route("/@{username}/follow", follow, methods=["POST"]),
    Route("/@{username}/unfollow", unfollow, methods=["POST"]),
]
