"""What every server-rendered page shares: the page decorator (CSRF check, who is signed in,
errors as HTML), rendering with the layout's context, paging links, and template filters."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from roost.clock import iso
from roost.domain import content
from roost.domain.errors import DomainError, Unauthorized
from roost.domain.models import Account, Status
from roost.domain.site import Site
from roost.runtime import Roost
from roost.web.pages.session import CSRF_FIELD, check_csrf, csrf_token, signed_in, take_flash
from roost.web.params import Params, read_params
from roost.web.templating import templates

PageHandler = Callable[[Request, Params], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]

STATUSES_PER_PAGE = 20
ACCOUNTS_PER_PAGE = 40
NOTIFICATIONS_PER_PAGE = 30


class SignInRequired(Exception):
    """The page is for signed-in people: send this one to the sign-in page."""


def roost_of(request: Request) -> Roost:
    roost: Roost = request.app.state.roost
    return roost


def me(request: Request) -> Account | None:
    """Who is signed in (set by :func:`page` before the handler runs)."""
    account: Account | None = request.state.me
    return account


def require_me(request: Request) -> Account:
    account = me(request)
    if account is None:
        raise SignInRequired()
    return account


def is_fetch(request: Request) -> bool:
    """A request made by the page's own JavaScript, which wants a fragment, not a page."""
    return request.headers.get("x-requested-with") == "fetch"


def safe_back(value: str | None, default: str = "/") -> str:
    """A local path to return to after a form (never another site: no ``//host``, no scheme,
    no backslashes, no control characters)."""
    if (not value or not value.startswith("/") or value.startswith("//") or "\\" in value
            or len(value) > 2000 or any(ord(c) < 32 for c in value)):
        return default
    return value


def here(request: Request) -> str:
    """This page's path and query, for forms to come back to (without fragment mode)."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "fragment"]
    return request.url.path + (f"?{urlencode(kept)}" if kept else "")


def _back_of(params: Params) -> str:
    try:
        return safe_back(params.str("back"))
    except DomainError:
        return "/"


def redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303)


def render(request: Request, name: str, context: dict[str, Any] | None = None,
           status: int = 200, headers: dict[str, str] | None = None) -> Response:
    roost = roost_of(request)
    full = {
        "me": getattr(request.state, "me", None),
        "csrf_token": csrf_token(request),
        "flash": take_flash(request),
        "site": roost.site,
        "max_chars": roost.site.max_post_chars,
        "back": here(request),
        "nav": "",
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, full, status_code=status, headers=headers)


def error_page(request: Request, message: str, status: int) -> Response:
    if is_fetch(request):
        return Response(message, status_code=status, media_type="text/plain")
    titles = {401: "Sign in needed", 403: "Not allowed", 404: "Not found",
              429: "Slow down"}
    return render(request, "error.html", {"message": message,
                                          "heading": titles.get(status, "Something is not right")},
                  status=status)


def page(handler: PageHandler) -> Endpoint:
    """Wrap a page handler: read its parameters, refuse state-changing requests without the
    session's CSRF token (403), find who is signed in, send the signed-out to sign in where
    needed, and show domain errors as HTML pages with their status."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        params = Params({})
        try:
            params = await read_params(request)
            if request.method not in ("GET", "HEAD"):
                check_csrf(request, params.str(CSRF_FIELD))
            await signed_in(request)
            return await handler(request, params)
        except SignInRequired:
            if is_fetch(request):
                return Response("Sign in first", status_code=401, media_type="text/plain")
            target = here(request) if request.method == "GET" else _back_of(params)
            return redirect("/auth/sign_in?" + urlencode({"next": target}))
        except Unauthorized as exc:
            return error_page(request, exc.message, 401)
        except DomainError as exc:
            return error_page(request, exc.message, exc.status)

    return endpoint


# -- paging ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pager:
    older: str | None
    newer: str | None


def pager(request: Request, cursor_ids: Sequence[int], limit: int) -> Pager:
    """"Older" and "newer" links around a page whose cursor ids are given (newest first):
    older when the page was full, newer when this is not the first page."""
    kept = [(k, v) for k, v in request.query_params.multi_items()
            if k not in ("max_id", "min_id", "since_id", "fragment")]
    paged = "max_id" in request.query_params or "min_id" in request.query_params

    def link(name: str | None, value: int = 0) -> str:
        query = [*kept, (name, str(value))] if name else kept
        return request.url.path + (f"?{urlencode(query)}" if query else "")

    older = link("max_id", min(cursor_ids)) if len(cursor_ids) >= limit else None
    newer = None
    if paged:
        newer = link("min_id", max(cursor_ids)) if cursor_ids else link(None)
    return Pager(older, newer)


# -- template filters ------------------------------------------------------------------------


def display_name(account: Account) -> str:
    return account.display_name.strip() or account.username


def status_html(status: Status) -> Markup:
    """A post's HTML, sanitised again on the way out (it was made safe when posted)."""
    return Markup(content.sanitize(status.content))


def note_html(note: str, site: Site) -> Markup:
    if not note.strip():
        return Markup("")
    return Markup(content.render(note, profile_url=site.profile_url, tag_url=site.tag_url,
                                 local_domain=site.domain))


def field_html(value: str) -> Markup:
    return Markup(content.render_field_value(value))


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%-d %b %Y, %H:%M UTC")


def count_characters(text: str) -> int:
    return content.count_characters(text)


templates.env.filters.update({
    "name": display_name, "status_html": status_html, "note_html": note_html,
    "field_html": field_html, "when": when, "iso": iso, "chars": count_characters,
})
