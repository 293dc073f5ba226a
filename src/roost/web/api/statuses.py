"""Statuses: post (with Idempotency-Key), read, delete, thread, favourites and reblogs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.errors import InvalidInput
from roost.domain.models import Account, Visibility
from roost.domain.posts import NewPost
from roost.web import entities
from roost.web.auth import optional_user, require_user, roost_of
from roost.web.pagination import ACCOUNTS, link_header, page_from
from roost.web.params import Params, path_id, read_params
from roost.web.responses import Json


def _visibility(params: Params, default: Visibility = Visibility.PUBLIC) -> Visibility:
    value = params.str("visibility")
    if not value:
        return default
    try:
        return Visibility(value)
    except ValueError:
        raise InvalidInput("Validation failed: Visibility is not included in the list") from None


async def create(request: Request) -> Response:
    """Publish a status. A repeated Idempotency-Key returns the first status."""
    roost = roost_of(request)
    author = await require_user(request, "write:statuses")
    params = await read_params(request)
    if params.list("media_ids") or params.hash("poll"):
        raise InvalidInput("Roost does not support media attachments or polls yet")
    if params.str("scheduled_at"):
        raise InvalidInput("Roost does not support scheduled posts yet")
    language = params.str("language") or None
    if language is not None and (len(language) > 16 or not language.replace("-", "").isalnum()):
        raise InvalidInput("Validation failed: Language is not a valid language code")
    post = NewPost(
        text=params.str("status") or "",
        visibility=_visibility(params),
        spoiler_text=params.str("spoiler_text") or "",
        sensitive=bool(params.bool("sensitive", False)),
        language=language,
        in_reply_to_id=params.id("in_reply_to_id"),
    )
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > 200:
        raise InvalidInput("Idempotency-Key is too long")
    view = await roost.posts.create(author.id, post, idempotency_key=key or None)
    return Json(entities.status(roost.site, view))


async def get_status(request: Request) -> Response:
    """A status, if the viewer may see it."""
    roost = roost_of(request)
    viewer = await optional_user(request, "read:statuses")
    view = await roost.posts.get(path_id(request), viewer.id if viewer else None)
    return Json(entities.status(roost.site, view))


async def delete(request: Request) -> Response:
    """Delete one's own status; answers with it and its source text, for redrafting."""
    roost = roost_of(request)
    author = await require_user(request, "write:statuses")
    view = await roost.posts.delete(author.id, path_id(request))
    return Json(entities.status(roost.site, view, with_source=True))


async def context(request: Request) -> Response:
    """The thread around a status: ancestors and descendants."""
    roost = roost_of(request)
    viewer = await optional_user(request, "read:statuses")
    ancestors, descendants = await roost.posts.context(path_id(request),
                                                       viewer.id if viewer else None)
    return Json({
        "ancestors": [entities.status(roost.site, v) for v in ancestors],
        "descendants": [entities.status(roost.site, v) for v in descendants],
    })


async def favourite(request: Request) -> Response:
    roost = roost_of(request)
    viewer = await require_user(request, "write:favourites")
    return Json(entities.status(roost.site, await roost.posts.favourite(viewer.id,
                                                                         path_id(request))))


async def pin(request: Request) -> Response:
    """Pin one's own post to one's profile."""
    roost = roost_of(request)
    viewer = await require_user(request, "write:accounts")
    return Json(entities.status(roost.site, await roost.posts.pin(viewer.id, path_id(request))))


async def unpin(request: Request) -> Response:
    roost = roost_of(request)
    viewer = await require_user(request, "write:accounts")
    return Json(entities.status(roost.site, await roost.posts.unpin(viewer.id,
                                                                    path_id(request))))


async def unfavourite(request: Request) -> Response:
    roost = roost_of(request)
    viewer = await require_user(request, "write:favourites")
    return Json(entities.status(roost.site, await roost.posts.unfavourite(viewer.id,
                                                                           path_id(request))))


async def reblog(request: Request) -> Response:
    roost = roost_of(request)
    viewer = await require_user(request, "write:statuses")
    params = await read_params(request)
    view = await roost.posts.reblog(viewer.id, path_id(request), _visibility(params))
    return Json(entities.status(roost.site, view))


async def unreblog(request: Request) -> Response:
    roost = roost_of(request)
    viewer = await require_user(request, "write:statuses")
    return Json(entities.status(roost.site, await roost.posts.unreblog(viewer.id,
                                                                        path_id(request))))


def _accounts(request: Request, rows: list[tuple[int, Account]]) -> Response:
    site = roost_of(request).site
    return Json([entities.account(site, a) for _, a in rows],
                headers=link_header(request, [i for i, _ in rows]))


async def favourited_by(request: Request) -> Response:
    viewer = await optional_user(request, "read:accounts")
    params = await read_params(request)
    rows = await roost_of(request).posts.favourited_by(
        path_id(request), viewer.id if viewer else None, page_from(params, ACCOUNTS))
    return _accounts(request, rows)


async def reblogged_by(request: Request) -> Response:
    viewer = await optional_user(request, "read:accounts")
    params = await read_params(request)
    rows = await roost_of(request).posts.reblogged_by(
        path_id(request), viewer.id if viewer else None, page_from(params, ACCOUNTS))
    return _accounts(request, rows)


routes = [
    Route("/api/v1/statuses", create, methods=["POST"]),
    Route("/api/v1/statuses/{id}", get_status, methods=["GET"]),
    Route("/api/v1/statuses/{id}", delete, methods=["DELETE"]),
    Route("/api/v1/statuses/{id}/context", context),
    Route("/api/v1/statuses/{id}/favourite", favourite, methods=["POST"]),
    Route("/api/v1/statuses/{id}/unfavourite", unfavourite, methods=["POST"]),
    Route("/api/v1/statuses/{id}/reblog", reblog, methods=["POST"]),
    Route("/api/v1/statuses/{id}/unreblog", unreblog, methods=["POST"]),
    Route("/api/v1/statuses/{id}/pin", pin, methods=["POST"]),
    Route("/api/v1/statuses/{id}/unpin", unpin, methods=["POST"]),
    Route("/api/v1/statuses/{id}/favourited_by", favourited_by),
    Route("/api/v1/statuses/{id}/reblogged_by", reblogged_by),
]
