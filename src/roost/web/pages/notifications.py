"""Notifications (live), and accepting or rejecting follow requests from them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.models import Page
from roost.web.pages.common import (
    NOTIFICATIONS_PER_PAGE,
    page,
    pager,
    redirect,
    render,
    require_me,
    roost_of,
    safe_back,
)
from roost.web.params import Params, path_id

FRAGMENT_LIMIT = 40


@page
async def notifications(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    since = params.id("since_id")
    window = Page(max_id=params.id("max_id"), min_id=params.id("min_id"), since_id=since,
                  limit=FRAGMENT_LIMIT if since is not None else NOTIFICATIONS_PER_PAGE)
    found = await roost_of(request).notifications.page(viewer.id, window, None, [], None)
    if params.bool("fragment"):
        return render(request, "_notifications.html", {"notifications": found,
                                                       "back": "/notifications"})
    first = not any(params.str(n) for n in ("max_id", "min_id", "since_id"))
    return render(request, "notifications.html", {
        "notifications": found, "nav": "notifications", "live": first,
        "pager": pager(request, [n.notification.id for n in found], NOTIFICATIONS_PER_PAGE)})


@page
async def authorize_request(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    await roost_of(request).follows.authorize_request(viewer.id, path_id(request))
    return redirect(safe_back(params.str("back"), "/notifications"))


@page
async def reject_request(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    await roost_of(request).follows.reject_request(viewer.id, path_id(request))
    return redirect(safe_back(params.str("back"), "/notifications"))


routes = [
    Route("/notifications", notifications, methods=["GET"]),
    Route("/follow_requests/{id}/authorize", authorize_request, methods=["POST"]),
    Route("/follow_requests/{id}/reject", reject_request, methods=["POST"]),
]
