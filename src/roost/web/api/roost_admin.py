"""Admin tools under /api/v1/roost/admin: bulk accounts for demos, replays and load tests."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.errors import Forbidden
from roost.domain.oauth import OAuthError, parse_scopes
from roost.web.auth import require_user, roost_of
from roost.web.params import read_params
from roost.web.responses import Json, error


async def create_accounts(request: Request) -> Response:
    """Create accounts with access tokens and no password: ``usernames`` (exactly those), or
    ``count`` accounts named ``<prefix>N``.

    Only for administrators, with a token carrying ``admin:write:accounts``.
    """
    roost = roost_of(request)
    admin = await require_user(request, "admin:write:accounts")
    if not admin.is_admin:
        raise Forbidden("This action is not allowed")
    params = await read_params(request)
    try:
        scopes = parse_scopes(params.str("scopes"), "read write follow")
    except OAuthError:
        return error("scopes must be known OAuth scopes", 422)
    if any(s.startswith("admin") for s in scopes):
        raise Forbidden("Bulk accounts cannot get admin scopes")
    usernames = [str(u) for u in params.list("usernames")]
    if usernames:
        accounts = await roost.accounts.create_named(usernames)
    else:
        accounts = await roost.accounts.create_many(params.str("prefix") or "",
                                                    params.int("count", 0) or 0)
    tokens = await roost.oauth.tokens_for_many([a.id for a in accounts], scopes)
    return Json([{"id": str(a.id), "username": a.username, "access_token": t.access_token}
                 for a, t in zip(accounts, tokens, strict=True)])


routes = [Route("/api/v1/roost/admin/accounts", create_accounts, methods=["POST"])]
