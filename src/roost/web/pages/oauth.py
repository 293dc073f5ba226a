"""The OAuth authorise page: where apps send people to sign in and grant access. Signed in
in this browser, it asks only "Authorise" or "Deny"; otherwise it has the sign-in form."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from roost.domain.errors import RateLimited
from roost.domain.models import App
from roost.domain.oauth import OOB, OAuthError, parse_scopes, within
from roost.web.auth import roost_of
from roost.web.pages.common import me, page, render
from roost.web.pages.session import content_security_policy, form_target
from roost.web.params import Params
from roost.web.ratelimit import sign_in

_FORWARDED = ("client_id", "redirect_uri", "scope", "state", "response_type", "code_challenge",
              "code_challenge_method")


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _redirect(uri: str, **query: str | None) -> Response:
    clean = {k: v for k, v in query.items() if v is not None}
    separator = "&" if "?" in uri else "?"
    return RedirectResponse(f"{uri}{separator}{urlencode(clean)}", status_code=302)


async def _request_of(request: Request, params: Params) -> tuple[App, str, list[str]]:
    """The app, redirect URI and scopes of an authorisation request, checked."""
    app = await roost_of(request).oauth.app_by_client_id(params.str("client_id") or "")
    if app is None:
        raise _Refused("This application is not known to this server (client_id).")
    redirect_uri = params.str("redirect_uri") or app.redirect_uris[0]
    if redirect_uri not in app.redirect_uris:
        raise _Refused("The redirect URI is not one this application registered.")
    try:
        scopes = parse_scopes(params.str("scope"))
    except OAuthError:
        scopes = []
    return app, redirect_uri, scopes


def _error_page(request: Request, message: str) -> Response:
    return render(request, "error.html", {"message": message}, status=400)


def _policy(request: Request, redirect_uri: str) -> dict[str, str]:
    """The page's CSP lets its form lead on to the app's redirect URI (browsers apply
    form-action to the redirect that follows a form)."""
    target = form_target(redirect_uri) if redirect_uri != OOB else None
    policy = content_security_policy(roost_of(request).settings.base_url(),
                                     (target,) if target else ())
    return {"Content-Security-Policy": policy}


def _check(params: Params, redirect_uri: str, app: App, scopes: list[str]) -> Response | None:
    """Errors the client should hear about through its redirect URI (RFC 6749 4.1.2.1)."""
    state = params.str("state")
    if params.str("response_type") != "code":
        return _redirect(redirect_uri, error="unsupported_response_type", state=state)
    if not scopes or not within(scopes, app.scopes):
        return _redirect(redirect_uri, error="invalid_scope", state=state)
    method = params.str("code_challenge_method")
    challenge = params.str("code_challenge")
    if challenge and ((method or "S256") not in ("S256", "plain") or len(challenge) > 128):
        return _redirect(redirect_uri, error="invalid_request", state=state,
                         error_description="code_challenge must be an S256 challenge")
    return None


def _form(request: Request, params: Params, app: App, scopes: list[str], redirect_uri: str,
          error: str = "", status: int = 200) -> Response:
    hidden = {k: params.str(k) for k in _FORWARDED if params.str(k) is not None}
    return render(request, "authorize.html", {
        "app": app, "scopes": scopes, "hidden": hidden, "error": error,
        "login": params.str("login") or "", "account": me(request),
    }, status=status, headers=_policy(request, redirect_uri))


@page
async def authorize_page(request: Request, params: Params) -> Response:
    """Show the authorise form (with the sign-in fields unless signed in here)."""
    try:
        app, redirect_uri, scopes = await _request_of(request, params)
    except _Refused as refused:
        return _error_page(request, refused.message)
    problem = _check(params, redirect_uri, app, scopes)
    return problem or _form(request, params, app, scopes, redirect_uri)


@page
async def authorize(request: Request, params: Params) -> Response:
    """Sign in (or use this browser's session), then send the authorisation code to the app
    (or show it, out of band). Like every form, it needs the session's CSRF token."""
    roost = roost_of(request)
    try:
        app, redirect_uri, scopes = await _request_of(request, params)
    except _Refused as refused:
        return _error_page(request, refused.message)
    problem = _check(params, redirect_uri, app, scopes)
    if problem:
        return problem
    state = params.str("state")
    if params.str("decision") == "deny":
        return _redirect(redirect_uri, error="access_denied", state=state)
    account = me(request)
    if params.str("login") or account is None:
        try:
            account = await sign_in(request, params.str("login") or "",
                                    params.str("password") or "")
        except RateLimited:
            return _form(request, params, app, scopes, redirect_uri,
                         "Too many failed attempts. Wait a few minutes and try again.", 429)
    if account is None:
        return _form(request, params, app, scopes, redirect_uri,
                     "Wrong username, e-mail or password.", 401)
    code = await roost.oauth.issue_code(app, account.id, redirect_uri, scopes,
                                        params.str("code_challenge"),
                                        params.str("code_challenge_method") or "S256")
    if redirect_uri == OOB:
        return render(request, "code.html", {"app": app, "code": code})
    return _redirect(redirect_uri, code=code, state=state)


routes = [
    Route("/oauth/authorize", authorize_page, methods=["GET"]),
    Route("/oauth/authorize", authorize, methods=["POST"]),
]
