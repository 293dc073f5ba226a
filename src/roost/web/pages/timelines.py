"""Home (or the landing page for visitors), the public timeline and hashtag pages."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.models import Page, StatusView
from roost.web.pages import races
from roost.web.pages.common import (
    STATUSES_PER_PAGE,
    me,
    page,
    pager,
    render,
    roost_of,
)
from roost.web.params import Params

FRAGMENT_LIMIT = 40


def status_page(params: Params) -> Page:
    """The page of statuses a timeline request asks for. ``since_id`` is for the live pages'
    own fetches of what is new (up to 40 at once)."""
    since = params.id("since_id")
    return Page(max_id=params.id("max_id"), min_id=params.id("min_id"), since_id=since,
                limit=FRAGMENT_LIMIT if since is not None else STATUSES_PER_PAGE)


def is_first_page(params: Params) -> bool:
    return not any(params.str(name) for name in ("max_id", "min_id", "since_id"))


def statuses_fragment(request: Request, statuses: list[StatusView]) -> Response:
    return render(request, "_statuses.html", {"statuses": statuses})


@page
async def home(request: Request, params: Params) -> Response:
    """Signed in: the compose box and the home timeline, live. Otherwise: the landing page."""
    roost = roost_of(request)
    viewer = me(request)
    if viewer is None:
        accounts, posts = await roost.accounts.instance_stats()
        latest = await roost.timelines.public(None, Page(limit=5))
        return render(request, "landing.html", {
            "title": roost.settings.title, "accounts": accounts, "posts": posts,
            "statuses": latest, "registrations_open": roost.settings.registrations_open})
    statuses = await roost.timelines.home(viewer.id, status_page(params))
    if params.bool("fragment"):
        return statuses_fragment(request, statuses)
    return render(request, "home.html", {
        "statuses": statuses, "nav": "home", "live": is_first_page(params),
        "pager": pager(request, [v.status.id for v in statuses], STATUSES_PER_PAGE),
        "idempotency_key": secrets.token_urlsafe(16)})


@page
async def public(request: Request, params: Params) -> Response:
    viewer = me(request)
    statuses = await roost_of(request).timelines.public(viewer.id if viewer else None,
                                                        status_page(params))
    if params.bool("fragment"):
        return statuses_fragment(request, statuses)
    return render(request, "timeline.html", {
        "statuses": statuses, "nav": "public", "heading": "Public timeline",
        "intro": "Public posts from everyone on this server, newest first.",
        "empty": "Nothing has been posted yet.",
        "pager": pager(request, [v.status.id for v in statuses], STATUSES_PER_PAGE)})


@page
async def tag(request: Request, params: Params) -> Response:
    name = str(request.path_params["name"]).lstrip("#")
    viewer = me(request)
    statuses = await roost_of(request).timelines.tag(name, viewer.id if viewer else None,
                                                     status_page(params))
    if params.bool("fragment"):
        return statuses_fragment(request, statuses)
    return render(request, "timeline.html", {
        "statuses": statuses, "heading": f"#{name}",
        "intro": f"Public posts tagged #{name}.", "empty": f"No posts are tagged #{name} yet.",
        "pager": pager(request, [v.status.id for v in statuses], STATUSES_PER_PAGE)})


routes = [
    Route("/", home, methods=["GET"]),
    Route("/public", public, methods=["GET"]),
    Route("/tags/{name}", tag, methods=["GET"]),
    *races.routes,
]
