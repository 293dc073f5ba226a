"""A post's page with its thread; posting, replying, and the post actions (favourite, boost,
delete) as plain forms that the page's JavaScript may also send in place."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.errors import DomainError, InvalidInput, NotFound
from roost.domain.models import StatusView, Visibility
from roost.domain.posts import NewPost
from roost.web.pages.common import (
    is_fetch,
    me,
    page,
    redirect,
    render,
    require_me,
    roost_of,
    safe_back,
)
from roost.web.params import Params, parse_id


def _status_id(request: Request) -> int:
    found = parse_id(str(request.path_params["status_id"]))
    if found is None:
        raise NotFound()
    return found


def _excerpt(view: StatusView) -> str:
    shown = view.reblog or view
    text = " ".join((shown.status.spoiler_text or shown.status.text).split())
    return text if len(text) <= 60 else text[:59] + "…"


@page
async def status(request: Request, params: Params) -> Response:
    """One post with its thread: the posts it replies to above, the replies below."""
    roost = roost_of(request)
    viewer = me(request)
    viewer_id = viewer.id if viewer else None
    view = await roost.posts.get(_status_id(request), viewer_id)
    if view.reblog is not None:  # a boost has no page of its own: show the original
        original = view.reblog
        return redirect(f"/@{original.account.username}/{original.status.id}")
    if view.account.username.lower() != str(request.path_params["username"]).lower():
        return redirect(f"/@{view.account.username}/{view.status.id}")
    ancestors, descendants = await roost.posts.context(view.status.id, viewer_id)
    mentions = [view.account, *view.mentions]
    reply_to = list(dict.fromkeys(f"@{a.username}" for a in mentions
                                  if viewer is None or a.id != viewer.id))
    visibility = view.status.visibility.value
    return render(request, "status.html", {
        "view": view, "ancestors": ancestors, "descendants": descendants,
        "excerpt": _excerpt(view), "reply_text": " ".join(reply_to) + " " if reply_to else "",
        "reply_visibility": visibility, "idempotency_key": secrets.token_urlsafe(16)})


@page
async def status_by_id(request: Request, params: Params) -> Response:
    """``/statuses/:id``: to the post's own page."""
    viewer = me(request)
    view = await roost_of(request).posts.get(_status_id(request), viewer.id if viewer else None)
    shown = view.reblog or view
    return redirect(f"/@{shown.account.username}/{shown.status.id}")


def _visibility(value: str | None) -> Visibility:
    try:
        return Visibility(value or "public")
    except ValueError:
        raise InvalidInput("Choose who can see the post.") from None


@page
async def compose(request: Request, params: Params) -> Response:
    """Post (or reply); on a mistake, the form again with the draft and what is wrong."""
    viewer = require_me(request)
    # Browsers send a textarea's line breaks as CR LF; the counter (and Mastodon) count one.
    text = (params.str("status") or "").replace("\r\n", "\n")
    spoiler = (params.str("spoiler_text") or "").replace("\r\n", "\n")
    in_reply_to = params.id("in_reply_to_id")
    back = safe_back(params.str("back"))
    key = (params.str("idempotency_key") or "")[:100]
    try:
        post = NewPost(text=text, visibility=_visibility(params.str("visibility")),
                       spoiler_text=spoiler, in_reply_to_id=in_reply_to)
        await roost_of(request).posts.create(viewer.id, post,
                                             idempotency_key=f"web:{key}" if key else None)
    except DomainError as exc:
        if isinstance(exc, NotFound):
            exc = InvalidInput("The post you are replying to is gone.")
        return render(request, "compose.html", {
            "text": text, "spoiler": spoiler, "in_reply_to": in_reply_to, "error": exc.message,
            "visibility": params.str("visibility") or "public", "back": back,
            "idempotency_key": key or secrets.token_urlsafe(16)}, status=exc.status)
    return redirect(back)


Action = Callable[[int, int], Awaitable[object]]


def _action(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def act(request: Request, params: Params) -> Response:
        viewer = require_me(request)
        roost = roost_of(request)
        target = _status_id(request)
        actions: dict[str, Action] = {
            "favourite": roost.posts.favourite, "unfavourite": roost.posts.unfavourite,
            "reblog": roost.posts.reblog, "unreblog": roost.posts.unreblog,
            "delete": roost.posts.delete,
        }
        await actions[name](viewer.id, target)
        back = safe_back(params.str("back"))
        if name == "delete" and back.rstrip("/").endswith(f"/{target}"):
            back = "/"  # the page of the post just deleted
        if not is_fetch(request):
            return redirect(back)
        if name == "delete":
            return Response(b"", media_type="text/html")
        # In place: the timeline entry again (the boost the action came from, or the post).
        entry = params.id("entry") or target
        try:
            view = await roost.posts.get(entry, viewer.id)
        except NotFound:  # an unboosted boost is gone: show the post itself
            view = await roost.posts.get(target, viewer.id)
        return render(request, "_status.html", {"view": view, "back": back})

    act.__name__ = name
    act.__doc__ = f"{name.capitalize()} a post, then back to where the form was."
    return page(act)


routes = [
    Route("/@{username}/{status_id}", status, methods=["GET"]),
    Route("/statuses/{status_id}", status_by_id, methods=["GET"]),
    Route("/statuses", compose, methods=["POST"]),
    *(Route(f"/statuses/{{status_id}}/{name}", _action(name), methods=["POST"])
      for name in ("favourite", "unfavourite", "reblog", "unreblog", "delete")),
]
