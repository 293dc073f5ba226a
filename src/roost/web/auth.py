"""Bearer-token authentication and scope checks, with Mastodon's error answers."""

from __future__ import annotations

from starlette.requests import Request

from roost.domain.errors import DomainError, Forbidden, InvalidInput, Unauthorized
from roost.domain.models import Account
from roost.domain.oauth import Authenticated, grants
from roost.runtime import Roost

INVALID_TOKEN = "The access token is invalid"


def roost_of(request: Request) -> Roost:
    roost: Roost = request.app.state.roost
    return roost


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.query_params.get("access_token") or None


async def authenticated(request: Request) -> Authenticated | None:
    """Who the request's token speaks for (None without a token); 401 for a bad token."""
    if "auth" in request.state._state:
        cached: Authenticated | None = request.state.auth
        return cached
    token = bearer(request)
    auth = await roost_of(request).oauth.authenticate(token) if token else None
    if token and auth is None:
        raise Unauthorized(INVALID_TOKEN)
    if auth is not None and auth.account is not None:
        await roost_of(request).accounts.touch(auth.account)
    request.state.auth = auth
    return auth


def _check_scope(auth: Authenticated, scope: str) -> None:
    if not grants(auth.token.scopes, scope):
        raise Forbidden("This action is outside the authorized scopes")


async def require_user(request: Request, scope: str) -> Account:
    """The signed-in account; the token must carry ``scope``."""
    auth = await authenticated(request)
    if auth is None:
        raise Unauthorized(INVALID_TOKEN)
    _check_scope(auth, scope)
    if auth.account is None:
        raise InvalidInput("This method requires an authenticated user")
    return auth.account


async def require_token(request: Request, scope: str) -> Authenticated:
    """Any valid token (app or user) carrying ``scope``."""
    auth = await authenticated(request)
    if auth is None:
        raise Unauthorized(INVALID_TOKEN)
    _check_scope(auth, scope)
    return auth


async def optional_user(request: Request, scope: str = "read") -> Account | None:
    """The signed-in account if a user token is given (public endpoints)."""
    try:
        auth = await authenticated(request)
    except DomainError:
        raise
    if auth is None or auth.account is None:
        return None
    _check_scope(auth, scope)
    return auth.account
