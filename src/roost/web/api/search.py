"""Search (v2): accounts and hashtags. Statuses are not searchable on Roost yet."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.errors import InvalidInput
from roost.web import entities
from roost.web.auth import optional_user, roost_of
from roost.web.params import read_params
from roost.web.responses import Json


async def search(request: Request) -> Response:
    """Accounts and hashtags matching ``q``; ``type`` narrows to one kind."""
    roost = roost_of(request)
    await optional_user(request, "read:search")
    params = await read_params(request)
    query = (params.str("q") or "").strip()
    if not query:
        raise InvalidInput("Missing q parameter")
    kind = params.str("type")
    if kind not in (None, "", "accounts", "hashtags", "statuses"):
        raise InvalidInput("type must be accounts, hashtags or statuses")
    limit = max(1, min(params.int("limit", 20) or 20, 40))
    offset = max(0, params.int("offset", 0) or 0)
    accounts = []
    hashtags = []
    if kind in (None, "", "accounts") and not query.startswith("#"):
        accounts = await roost.accounts.search(query, limit, offset)
    if kind in (None, "", "hashtags") and not query.startswith("@"):
        hashtags = await roost.posts.search_tags(query, limit, offset)
    return Json({
        "accounts": [entities.account(roost.site, a) for a in accounts],
        "statuses": [],
        "hashtags": [entities.full_tag(roost.site, t) for t in hashtags],
    })


routes = [Route("/api/v2/search", search)]
