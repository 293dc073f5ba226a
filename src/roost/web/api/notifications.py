"""Notifications: list, get, dismiss, clear."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.errors import InvalidInput
from roost.domain.notifications import TYPES
from roost.web import entities
from roost.web.auth import require_user, roost_of
from roost.web.pagination import NOTIFICATIONS, link_header, page_from
from roost.web.params import path_id, read_params
from roost.web.responses import Json


async def list_notifications(request: Request) -> Response:
    """The viewer's notifications, newest first, filtered by type or account."""
    roost = roost_of(request)
    viewer = await require_user(request, "read:notifications")
    params = await read_params(request)
    types = [str(t) for t in params.list("types")]
    exclude = [str(t) for t in params.list("exclude_types")]
    unknown = [t for t in [*types, *exclude] if t not in TYPES]
    if unknown:
        raise InvalidInput(f"Unknown notification type: {unknown[0]}")
    views = await roost.notifications.page(viewer.id, page_from(params, NOTIFICATIONS),
                                           types or None, exclude, params.id("account_id"))
    return Json([entities.notification(roost.site, n) for n in views],
                headers=link_header(request, [n.notification.id for n in views]))


async def get_notification(request: Request) -> Response:
    roost = roost_of(request)
    viewer = await require_user(request, "read:notifications")
    view = await roost.notifications.get(viewer.id, path_id(request))
    return Json(entities.notification(roost.site, view))


async def dismiss(request: Request) -> Response:
    viewer = await require_user(request, "write:notifications")
    await roost_of(request).notifications.dismiss(viewer.id, path_id(request))
    return Json({})


async def clear(request: Request) -> Response:
    viewer = await require_user(request, "write:notifications")
    await roost_of(request).notifications.clear(viewer.id)
    return Json({})


routes = [
    Route("/api/v1/notifications", list_notifications),
    Route("/api/v1/notifications/clear", clear, methods=["POST"]),
    Route("/api/v1/notifications/{id}", get_notification),
    Route("/api/v1/notifications/{id}/dismiss", dismiss, methods=["POST"]),
]
