"""Races: the list with the form that starts one, a race's live page, and deleting one."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.clock import now_ms
from roost.domain.errors import DomainError, InvalidInput, NotFound
from roost.domain.models import Page
from roost.domain.races import DEFAULT_TARGET
from roost.web.pages.common import me, page, redirect, render, require_me, roost_of
from roost.web.params import Params

RACES_PER_PAGE = 20
HOUR_MS = 3_600_000


def _race_id(request: Request) -> int:
    text = str(request.path_params["race_id"])
    if not text.isdigit() or len(text) > 19 or int(text) >= 2**63:
        raise NotFound()
    return int(text)


def _usernames(text: str) -> list[str]:
    return [name.lstrip("@") for name in re.split(r"[\s,]+", text) if name.lstrip("@")]


async def _list(request: Request, form: dict[str, str] | None = None, error: str = "",
                status: int = 200) -> Response:
    views = await roost_of(request).races.page(Page(limit=RACES_PER_PAGE))
    return render(request, "races.html", {
        "nav": "races", "races": views, "error": error, "default_target": DEFAULT_TARGET,
        "form": form or {"accounts": "", "target": str(DEFAULT_TARGET)}}, status=status)


@page
async def races(request: Request, params: Params) -> Response:
    """Races, newest first, and (signed in) the form that starts one."""
    return await _list(request)


@page
async def create(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    roost = roost_of(request)
    names = params.str("accounts") or ""
    target_text = (params.str("target") or "").replace(",", "").replace("_", "").strip()
    form = {"accounts": names, "target": params.str("target") or ""}
    try:
        target = int(target_text) if target_text else None
        if target_text and not target_text.isdigit():
            raise ValueError
    except ValueError:
        return await _list(request, form, "The target must be a whole number of followers.",
                           422)
    usernames = _usernames(names)
    if len(usernames) < 2:
        return await _list(request, form, "Name at least two accounts.", 422)
    ids = []
    try:
        for name in usernames:
            try:
                ids.append((await roost.accounts.lookup(name, roost.site.domain)).id)
            except NotFound:
                raise InvalidInput(f"There is no account @{name}.") from None
        view = await roost.races.create(viewer.id, ids, target)
    except DomainError as exc:
        return await _list(request, form, exc.message, 422)
    return redirect(f"/races/{view.race.id}")


@page
async def race(request: Request, params: Params) -> Response:
    """Standings, lead changes, the winner, and the live chart."""
    view = await roost_of(request).races.get(_race_id(request))
    now = now_ms()
    names = {s.account.id: s.account.username for s in view.standings}
    leader = view.standings[0].followers if view.standings else 0
    age = now - view.race.created_at
    viewer = me(request)
    return render(request, "race.html", {
        "nav": "races", "view": view, "race": view.race, "names": names, "leader": leader,
        "step": "minute" if age <= 6 * HOUR_MS else "hour",
        "can_delete": viewer is not None and viewer.id == view.race.creator_id})


@page
async def delete(request: Request, params: Params) -> Response:
    viewer = require_me(request)
    await roost_of(request).races.delete(_race_id(request), viewer.id)
    return redirect("/races")


routes = [
    Route("/races", races, methods=["GET"]),
    Route("/races", create, methods=["POST"]),
    Route("/races/{race_id}", race, methods=["GET"]),
    Route("/races/{race_id}/delete", delete, methods=["POST"]),
]
