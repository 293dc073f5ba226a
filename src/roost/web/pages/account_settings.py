"""Settings: the profile (display name, bio, website link, fields, locked) and the password."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.accounts import MAX_FIELDS, ProfileChanges
from roost.domain.errors import DomainError, RateLimited
from roost.domain.models import Account, ProfileField
from roost.web.pages.common import page, redirect, render, require_me, roost_of
from roost.web.pages.session import end_other_sessions, flash
from roost.web.params import Params
from roost.web.ratelimit import sign_in

WEBSITE = "Website"
_WEBSITE_NAMES = {"website", "web site", "homepage", "home page", "site", "web", "blog"}
_LINK = re.compile(r"^https?://[^\s<>\"'`]+$", re.IGNORECASE)


def _split_fields(fields: list[ProfileField]) -> tuple[str, list[ProfileField]]:
    """The website link (the first field named like one whose value is a link) and the rest."""
    for index, field in enumerate(fields):
        if field.name.strip().lower() in _WEBSITE_NAMES and _LINK.match(field.value.strip()):
            return field.value.strip(), fields[:index] + fields[index + 1:]
    return "", list(fields)


def _profile_form(account: Account) -> dict[str, Any]:
    website, others = _split_fields(account.fields)
    return {"display_name": account.display_name, "note": account.note, "website": website,
            "fields": _padded(others), "locked": account.locked}


def _padded(fields: list[ProfileField]) -> list[ProfileField]:
    return fields + [ProfileField("", "")] * max(0, MAX_FIELDS - 1 - len(fields))


def _profile_page(request: Request, form: dict[str, Any], error: str = "",
                  status: int = 200) -> Response:
    return render(request, "settings_profile.html", {
        "form": form, "error": error, "tab": "profile", "nav": "settings",
        "max_fields": MAX_FIELDS}, status=status)


@page
async def settings_home(request: Request, params: Params) -> Response:
    require_me(request)
    return redirect("/settings/profile")


@page
async def profile_page(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    return _profile_page(request, _profile_form(viewer))


@page
async def profile_submit(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    records = params.records("fields_attributes") or []
    others = [ProfileField(str(r.get("name") or "").strip(), str(r.get("value") or "").strip())
              for r in records[:20]]
    others = [f for f in others if f.name or f.value]
    website = (params.str("website") or "").strip()
    display_name = params.str("display_name") or ""
    note = (params.str("note") or "").replace("\r\n", "\n")
    locked = bool(params.bool("locked", False))
    form = {"display_name": display_name, "note": note, "website": website,
            "fields": _padded(others), "locked": locked}
    if website and not _LINK.match(website):
        return _profile_page(request, form, "The website must be a link starting with "
                             "https:// (or http://).", 422)
    fields = ([ProfileField(WEBSITE, website)] if website else []) + others
    changes = ProfileChanges(display_name=display_name, note=note, fields=fields,
                             locked=locked)
    try:
        await roost_of(request).accounts.update_profile(viewer.id, changes)
    except DomainError as exc:
        return _profile_page(request, form, exc.message.removeprefix("Validation failed: "),
                             exc.status)
    flash(request, "Your profile is saved.")
    return redirect("/settings/profile")


def _password_page(request: Request, error: str = "", status: int = 200) -> Response:
    return render(request, "settings_password.html", {
        "error": error, "tab": "password", "nav": "settings"}, status=status)


@page
async def password_page(request: Request, params: Params) -> Response:
    require_me(request)
    return _password_page(request)


@page
async def password_submit(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    new = params.str("new_password") or ""
    if new != (params.str("new_password_confirmation") or ""):
        return _password_page(request, "The two new passwords are not the same.", 422)
    try:
        checked = await sign_in(request, viewer.username, params.str("current_password") or "")
    except RateLimited:
        return _password_page(request, "Too many failed attempts. Wait a few minutes and try "
                              "again.", 429)
    if checked is None or checked.id != viewer.id:
        return _password_page(request, "Your current password is not right.", 422)
    try:
        await roost_of(request).accounts.change_password(viewer.id, new)
    except DomainError as exc:
        return _password_page(request, exc.message.removeprefix("Validation failed: "),
                              exc.status)
    await end_other_sessions(request, viewer)  # (as Mastodon: other browsers sign in again)
    flash(request, "Your password is changed.")
    return redirect("/settings/password")


routes = [
    Route("/settings", settings_home, methods=["GET"]),
    Route("/settings/profile", profile_page, methods=["GET"]),
    Route("/settings/profile", profile_submit, methods=["POST"]),
    Route("/settings/password", password_page, methods=["GET"]),
    Route("/settings/password", password_submit, methods=["POST"]),
]
