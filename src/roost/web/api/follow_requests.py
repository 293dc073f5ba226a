"""Follow requests to a locked account: list, authorize, reject."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.web import entities
from roost.web.auth import require_user, roost_of
from roost.web.pagination import ACCOUNTS, link_header, page_from
from roost.web.params import path_id, read_params
from roost.web.responses import Json


async def list_requests(request: Request) -> Response:
    """Accounts asking to follow the viewer, newest request first."""
    roost = roost_of(request)
    viewer = await require_user(request, "read:follows")
    params = await read_params(request)
    rows = await roost.follows.requests(viewer.id, page_from(params, ACCOUNTS))
    return Json([entities.account(roost.site, a) for _, a in rows],
                headers=link_header(request, [i for i, _ in rows]))


async def authorize(request: Request) -> Response:
    """Accept a follow request."""
    viewer = await require_user(request, "write:follows")
    relationship = await roost_of(request).follows.authorize_request(viewer.id, path_id(request))
    return Json(entities.relationship(relationship))


async def reject(request: Request) -> Response:
    """Reject a follow request."""
    viewer = await require_user(request, "write:follows")
    relationship = await roost_of(request).follows.reject_request(viewer.id, path_id(request))
    return Json(entities.relationship(relationship))


routes = [
    Route("/api/v1/follow_requests", list_requests),
    Route("/api/v1/follow_requests/{id}/authorize", authorize, methods=["POST"]),
    Route("/api/v1/follow_requests/{id}/reject", reject, methods=["POST"]),
]
