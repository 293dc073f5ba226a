"""Apps and OAuth 2: registration, tokens, revocation. The authorise page is in web.pages."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.models import App
from roost.domain.oauth import OAuthError, parse_scopes, within
from roost.web import entities
from roost.web.auth import require_token, roost_of
from roost.web.params import Params, read_params
from roost.web.ratelimit import sign_in
from roost.web.responses import Json


async def create_app(request: Request) -> Response:
    """Register a client application."""
    params = await read_params(request)
    uris = params.list("redirect_uris") or []
    if len(uris) == 1 and isinstance(uris[0], str):
        uris = uris[0].split()
    app = await roost_of(request).oauth.create_app(
        params.str("client_name") or "", [str(u) for u in uris], params.str("scopes"),
        params.str("website"),
    )
    return Json(entities.application(app, with_secret=True))


async def verify_app(request: Request) -> Response:
    """The app the token belongs to."""
    auth = await require_token(request, "read")
    if auth.app is None:
        return Json({"name": "Personal access token", "website": None, "scopes": auth.token.scopes,
                     "redirect_uri": "", "redirect_uris": [], "vapid_key": "", "id": "0"})
    return Json(entities.application(auth.app, with_secret=False))


async def _client(request: Request, params: Params) -> App:
    client_id, client_secret = params.str("client_id"), params.str("client_secret")
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip()).decode()
            client_id, _, client_secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            pass
    return await roost_of(request).oauth.client(client_id, client_secret)


async def token(request: Request) -> Response:
    """Obtain a token: authorization_code, client_credentials, refresh_token, password."""
    roost = roost_of(request)
    params = await read_params(request)
    grant = params.str("grant_type")
    if grant not in ("authorization_code", "client_credentials", "refresh_token", "password"):
        raise OAuthError("unsupported_grant_type",
                         "The authorization grant type is not supported by the authorization "
                         "server.")
    if grant == "password" and not roost.settings.allow_password_grant:
        raise OAuthError("unsupported_grant_type", "The password grant is disabled on this "
                         "server (ROOST_ALLOW_PASSWORD_GRANT).")
    app = await _client(request, params)
    oauth = roost.oauth
    if grant == "authorization_code":
        code = params.str("code")
        if not code:
            raise OAuthError("invalid_request", "The code parameter is missing.")
        issued = await oauth.exchange_code(app, code, params.str("redirect_uri"),
                                           params.str("code_verifier"))
    elif grant == "refresh_token":
        refresh = params.str("refresh_token")
        if not refresh:
            raise OAuthError("invalid_request", "The refresh_token parameter is missing.")
        issued = await oauth.refresh(app, refresh, params.str("scope"))
    else:
        scopes = parse_scopes(params.str("scope"))
        if not within(scopes, app.scopes):
            raise OAuthError("invalid_scope", "The requested scope is invalid, unknown, or "
                             "malformed.")
        account_id = None
        if grant == "password":
            account = await sign_in(request, params.str("username") or "",
                                    params.str("password") or "")
            if account is None:
                raise OAuthError("invalid_grant", "The provided authorization grant is invalid, "
                                 "expired, revoked, does not match the redirection URI used in "
                                 "the authorization request, or was issued to another client.")
            account_id = account.id
        issued = await oauth.token_for(app.id, account_id, scopes,
                                       refreshable=grant == "password")
    return Json(entities.token(issued))


async def revoke(request: Request) -> Response:
    """Revoke a token (RFC 7009)."""
    params = await read_params(request)
    app = await _client(request, params)
    value = params.str("token")
    if not value:
        raise OAuthError("invalid_request", "The token parameter is missing.")
    await roost_of(request).oauth.revoke(app, value)
    return Json({})


routes = [
    Route("/api/v1/apps", create_app, methods=["POST"]),
    Route("/api/v1/apps/verify_credentials", verify_app),
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
]
