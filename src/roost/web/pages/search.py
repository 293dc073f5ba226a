"""Search for people and hashtags."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.models import Account, Tag
from roost.web.pages.common import page, render, roost_of
from roost.web.params import Params

RESULTS = 20


@page
async def search(request: Request, params: Params) -> Response:
    """``q``: people by username or display name (``@name`` too), hashtags (``#tag`` too)."""
    roost = roost_of(request)
    query = (params.str("q") or "").strip()[:200]
    accounts: list[Account] = []
    tags: list[Tag] = []
    if query.lstrip("@#") and not query.startswith("#"):
        accounts = await roost.accounts.search(query, RESULTS, 0)
    if query.lstrip("@#") and not query.startswith("@"):
        tags = await roost.posts.search_tags(query, RESULTS, 0)
    return render(request, "search.html", {"q": query, "accounts": accounts, "tags": tags,
                                           "nav": "search"})


routes = [Route("/search", search, methods=["GET"])]
