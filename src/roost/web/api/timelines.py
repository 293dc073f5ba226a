"""Timelines: home, public (local) and hashtag."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.models import StatusView
from roost.web import entities
from roost.web.auth import optional_user, require_user, roost_of
from roost.web.pagination import STATUSES, link_header, page_from
from roost.web.params import read_params
from roost.web.responses import Json


def _page(request: Request, views: list[StatusView]) -> Response:
    site = roost_of(request).site
    return Json([entities.status(site, v) for v in views],
                headers=link_header(request, [v.status.id for v in views]))


async def home(request: Request) -> Response:
    """Posts of the accounts the viewer follows, and their own."""
    viewer = await require_user(request, "read:statuses")
    params = await read_params(request)
    views = await roost_of(request).timelines.home(viewer.id, page_from(params, STATUSES))
    response = _page(request, views)
    if viewer.home_rebuilding:
        response.status_code = 206  # as Mastodon: the timeline is being regenerated
    return response


async def public(request: Request) -> Response:
    """Public posts of this server (it has no others: ``local`` changes nothing, ``remote``
    and ``only_media`` find nothing)."""
    viewer = await optional_user(request, "read:statuses")
    params = await read_params(request)
    page = page_from(params, STATUSES)
    if params.bool("remote", False) or params.bool("only_media", False):
        return _page(request, [])
    views = await roost_of(request).timelines.public(viewer.id if viewer else None, page)
    return _page(request, views)


async def tag(request: Request) -> Response:
    """Public posts with a hashtag."""
    viewer = await optional_user(request, "read:statuses")
    params = await read_params(request)
    page = page_from(params, STATUSES)
    if params.bool("remote", False) or params.bool("only_media", False):
        return _page(request, [])
    views = await roost_of(request).timelines.tag(request.path_params["hashtag"],
                                                  viewer.id if viewer else None, page)
    return _page(request, views)


routes = [
    Route("/api/v1/timelines/home", home),
    Route("/api/v1/timelines/public", public),
    Route("/api/v1/timelines/tag/{hashtag}", tag),
]
