"""Races under /api/v1/roost/races: create, list, watch, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from roost.domain.errors import InvalidInput
from roost.web import entities
from roost.web.auth import optional_user, require_user, roost_of
from roost.web.pagination import link_header, page_from
from roost.web.params import path_id, read_params
from roost.web.responses import Json

RACES = (20, 40)


async def create(request: Request) -> Response:
    """Start a race between accounts (``account_ids``) toward ``target`` followers."""
    roost = roost_of(request)
    viewer = await require_user(request, "write")
    params = await read_params(request)
    target = params.int("target")
    if target is not None and target < 1:
        raise InvalidInput("target must be a positive follower count")
    view = await roost.races.create(viewer.id, params.ids("account_ids"), target)
    return Json(entities.race(roost.site, view))


async def list_races(request: Request) -> Response:
    """Races, newest first."""
    roost = roost_of(request)
    await optional_user(request)
    params = await read_params(request)
    views = await roost.races.page(page_from(params, RACES))
    return Json([entities.race(roost.site, v) for v in views],
                headers=link_header(request, [v.race.id for v in views]))


async def get_race(request: Request) -> Response:
    """A race: standings, lead changes, velocities, projections, crossings."""
    roost = roost_of(request)
    await optional_user(request)
    return Json(entities.race(roost.site, await roost.races.get(path_id(request))))


async def delete_race(request: Request) -> Response:
    """Delete a race (its creator only)."""
    viewer = await require_user(request, "write")
    await roost_of(request).races.delete(path_id(request), viewer.id)
    return Json({})


routes = [
    Route("/api/v1/roost/races", create, methods=["POST"]),
    Route("/api/v1/roost/races", list_races, methods=["GET"]),
    Route("/api/v1/roost/races/{id}", get_race, methods=["GET"]),
    Route("/api/v1/roost/races/{id}", delete_race, methods=["DELETE"]),
]
