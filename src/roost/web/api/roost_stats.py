"""Roost's follower statistics under /api/v1/roost/: exact counts at any instant, series,
gains and losses, the Nth follower, milestones."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.clock import iso, now_ms
from roost.domain.errors import InvalidInput, NotFound
from roost.web import entities
from roost.web.auth import optional_user, roost_of
from roost.web.params import path_id, read_params
from roost.web.responses import Json
from roost.web.times import time_param

DAY_MS = 24 * 3600 * 1000


async def count_at(request: Request) -> Response:
    """The exact follower count of an account at an instant (``at``, default now)."""
    await optional_user(request)
    params = await read_params(request)
    now = now_ms()
    at = time_param(params, "at", now)
    if at > now:
        raise InvalidInput("at is in the future")
    account_id = path_id(request)
    count = await roost_of(request).stats.count_at(account_id, at)
    return Json({"account_id": str(account_id), "at": iso(at), "followers_count": count})


async def history(request: Request) -> Response:
    """Follower counts from ``start`` to ``end`` every ``step`` (minute, hour, day)."""
    await optional_user(request)
    params = await read_params(request)
    now = now_ms()
    end = min(time_param(params, "end", now), now)
    start = time_param(params, "start", end - DAY_MS)
    step = params.str("step") or "hour"
    series = await roost_of(request).stats.series(path_id(request), start, end, step)
    return Json([{"at": iso(at), "followers_count": count} for at, count in series])


async def stats(request: Request) -> Response:
    """Followers now, gained and lost over 15 minutes, an hour and a day, and velocity."""
    await optional_user(request)
    account_id = path_id(request)
    found = await roost_of(request).stats.stats(account_id)
    return Json({
        "account_id": str(account_id),
        "followers_count": found.followers,
        "gained": found.gained,
        "lost": found.lost,
        "velocity_per_hour": found.velocity_per_hour,
    })


async def nth(request: Request) -> Response:
    """Who was the account's Nth follower, and when they came."""
    await optional_user(request)
    text = request.path_params["n"]
    if not text.isdigit() or len(text) > 12:
        raise NotFound()
    n = int(text)
    account, at = await roost_of(request).stats.nth(path_id(request), n)
    return Json({"n": n, "account": entities.account(roost_of(request).site, account),
                 "followed_at": iso(at)})


async def milestones(request: Request) -> Response:
    """The milestones the account's follower count has reached, with who made each."""
    await optional_user(request)
    roost = roost_of(request)
    found = await roost.stats.milestones(path_id(request))
    return Json([
        {"count": m.count, "reached_at": iso(m.reached_at),
         "account": entities.account(roost.site, a) if a else None}
        for m, a in found
    ])


routes = [
    Route("/api/v1/roost/accounts/{id}/followers/count", count_at),
    Route("/api/v1/roost/accounts/{id}/followers/history", history),
    Route("/api/v1/roost/accounts/{id}/followers/stats", stats),
    Route("/api/v1/roost/accounts/{id}/followers/nth/{n}", nth),
    Route("/api/v1/roost/accounts/{id}/milestones", milestones),
]
