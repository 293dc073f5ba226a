"""Sign up, sign in and log out in the browser."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.accounts import ValidationFailed
from roost.domain.errors import RateLimited
from roost.web.pages.common import me, page, redirect, render, roost_of, safe_back
from roost.web.pages.session import end_session, flash, start_session
from roost.web.params import Params
from roost.web.ratelimit import client_key, sign_in

_FAILED = "Wrong username, e-mail or password."
_THROTTLED = "Too many failed attempts. Wait a few minutes and try again."


def _next(params: Params) -> str:
    target = safe_back(params.str("next"))
    return "/" if target.startswith("/auth/") else target


@page
async def sign_in_page(request: Request, params: Params) -> Response:
    """The sign-in form (straight on to ``next`` when already signed in)."""
    if me(request) is not None:
        return redirect(_next(params))
    return render(request, "sign_in.html", {
        "next": _next(params), "login": "", "error": "", "nav": "sign_in",
        "registrations_open": roost_of(request).settings.registrations_open})


@page
async def sign_in_submit(request: Request, params: Params) -> Response:
    login = params.str("login") or ""
    context = {"next": _next(params), "login": login, "nav": "sign_in",
               "registrations_open": roost_of(request).settings.registrations_open}
    try:
        account = await sign_in(request, login, params.str("password") or "")
    except RateLimited:
        return render(request, "sign_in.html", {**context, "error": _THROTTLED}, status=429)
    if account is None:
        return render(request, "sign_in.html", {**context, "error": _FAILED}, status=401)
    await start_session(request, account)
    return redirect(_next(params))


def _sign_up_form(request: Request, form: dict[str, object], errors: dict[str, str],
                  error: str = "", status: int = 200) -> Response:
    return render(request, "sign_up.html", {
        "form": form, "errors": errors, "error": error, "nav": "sign_up",
        "registrations_open": roost_of(request).settings.registrations_open}, status=status)


@page
async def sign_up_page(request: Request, params: Params) -> Response:
    if me(request) is not None:
        return redirect("/")
    status = 200 if roost_of(request).settings.registrations_open else 403
    return _sign_up_form(request, {"username": "", "email": "", "agreement": False}, {},
                         status=status)


@page
async def sign_up_submit(request: Request, params: Params) -> Response:
    roost = roost_of(request)
    form: dict[str, object] = {"username": (params.str("username") or "").strip(),
                               "email": (params.str("email") or "").strip(),
                               "agreement": bool(params.bool("agreement", False))}
    if not roost.settings.registrations_open:
        return _sign_up_form(request, form, {}, status=403)
    password = params.str("password") or ""
    if password != (params.str("password_confirmation") or ""):
        return _sign_up_form(request, form, {"password_confirmation": "The two passwords "
                                             "are not the same."}, status=422)
    try:
        await request.app.state.signups.take(client_key(request))
    except RateLimited:
        return _sign_up_form(request, form, {}, "Too many sign-ups from your network. "
                             "Try again later.", status=429)
    try:
        account = await roost.accounts.register(
            str(form["username"]), str(form["email"]), password,
            agreement=bool(form["agreement"]))
    except ValidationFailed as failed:
        errors = {field: "; ".join(e["description"] for e in found)
                  for field, found in failed.details.items()}
        return _sign_up_form(request, form, errors, status=422)
    await start_session(request, account)
    flash(request, f"Welcome to Roost, @{account.username}!")
    return redirect("/")


@page
async def sign_out_page(request: Request, params: Params) -> Response:
    return render(request, "sign_out.html")


@page
async def sign_out_submit(request: Request, params: Params) -> Response:
    await end_session(request)
    return redirect("/")


routes = [
    Route("/auth/sign_in", sign_in_page, methods=["GET"]),
    Route("/auth/sign_in", sign_in_submit, methods=["POST"]),
    Route("/auth/sign_up", sign_up_page, methods=["GET"]),
    Route("/auth/sign_up", sign_up_submit, methods=["POST"]),
    Route("/auth/sign_out", sign_out_page, methods=["GET"]),
    Route("/auth/sign_out", sign_out_submit, methods=["POST"]),
]
