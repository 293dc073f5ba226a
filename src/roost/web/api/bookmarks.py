"""Bookmarks and favourites lists, read markers, preferences and custom emoji."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.clock import iso
from roost.domain.errors import InvalidInput
from roost.domain.models import Page, StatusView
from roost.domain.posts import PostService
from roost.web import entities
from roost.web.auth import require_user, roost_of
from roost.web.pagination import STATUSES, link_header, page_from
from roost.web.params import parse_id, path_id, read_params
from roost.web.responses import Json


async def bookmark(request: Request) -> Response:
    roost = roost_of(request)
    viewer = await require_user(request, "write:bookmarks")
    return Json(entities.status(roost.site, await roost.posts.bookmark(viewer.id,
                                                                        path_id(request))))


async def unbookmark(request: Request) -> Response:
    roost = roost_of(request)
    viewer = await require_user(request, "write:bookmarks")
    return Json(entities.status(roost.site, await roost.posts.unbookmark(viewer.id,
                                                                          path_id(request))))


async def list_bookmarks(request: Request) -> Response:
    """The viewer's bookmarks, most recently bookmarked first."""
    return await _marked_page(request, "read:bookmarks", PostService.bookmarks)


async def list_favourites(request: Request) -> Response:
    """The viewer's favourites, most recently favourited first."""
    return await _marked_page(request, "read:favourites", PostService.favourites)


MarkedPage = Callable[[PostService, int, Page], Awaitable[list[tuple[int, StatusView]]]]


async def _marked_page(request: Request, scope: str, read: MarkedPage) -> Response:
    """A page of the viewer's bookmarked or favourited statuses, paged (``Link``) by the
    bookmark's or favourite's own id, as in Mastodon."""
    roost = roost_of(request)
    viewer = await require_user(request, scope)
    params = await read_params(request)
    rows = await read(roost.posts, viewer.id, page_from(params, STATUSES))
    return Json([entities.status(roost.site, v) for _, v in rows],
                headers=link_header(request, [i for i, _ in rows]))


async def get_markers(request: Request) -> Response:
    """Where the viewer stopped reading home and notifications."""
    roost = roost_of(request)
    viewer = await require_user(request, "read:statuses")
    params = await read_params(request)
    found = await roost.markers.get(viewer.id, [str(t) for t in params.list("timeline")])
    return Json({m.timeline: {"last_read_id": str(m.last_read_id), "version": m.version,
                              "updated_at": iso(m.updated_at)} for m in found})


async def save_markers(request: Request) -> Response:
    """Save reading positions: ``home[last_read_id]``, ``notifications[last_read_id]``."""
    roost = roost_of(request)
    viewer = await require_user(request, "write:statuses")
    params = await read_params(request)
    positions = {}
    for timeline in ("home", "notifications"):
        value = params.hash(timeline).get("last_read_id")
        if value is not None:
            parsed = parse_id(str(value))
            if parsed is None:
                raise InvalidInput("last_read_id must be a numeric id")
            positions[timeline] = parsed
    saved = await roost.markers.save(viewer.id, positions)
    return Json({m.timeline: {"last_read_id": str(m.last_read_id), "version": m.version,
                              "updated_at": iso(m.updated_at)} for m in saved})


async def preferences(request: Request) -> Response:
    """The viewer's posting and reading preferences."""
    viewer = await require_user(request, "read:accounts")
    return Json({
        "posting:default:visibility": "public",
        "posting:default:sensitive": False,
        "posting:default:language": viewer.locale or None,
        "reading:expand:media": "default",
        "reading:expand:spoilers": False,
    })


async def custom_emojis(request: Request) -> Response:
    """Custom emoji of this server: Roost has no custom emoji, so the list is empty."""
    return Json([])


routes = [
    Route("/api/v1/statuses/{id}/bookmark", bookmark, methods=["POST"]),
    Route("/api/v1/statuses/{id}/unbookmark", unbookmark, methods=["POST"]),
    Route("/api/v1/bookmarks", list_bookmarks),
    Route("/api/v1/favourites", list_favourites),
    Route("/api/v1/markers", get_markers, methods=["GET"]),
    Route("/api/v1/markers", save_markers, methods=["POST"]),
    Route("/api/v1/preferences", preferences),
    Route("/api/v1/custom_emojis", custom_emojis),
]
