"""Starlette's router, with the routes whose path has no parameters found by a dict lookup.

Starlette tries each route in order, a regular expression each: the home timeline is the
47th route, 44-64 us of the event loop's CPU against 2-3 us for the lookup (3-4% of an
embedded home read; BENCHMARKS.md). A path is indexed only when no route before its own
could match it, so the lookup picks the route the scan would have picked; anything else (a
path with parameters, a method the route does not take, a miss) goes to the scan as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send


def static_index(routes: Sequence[BaseRoute]) -> dict[str, Route]:
    """Each parameterless HTTP route by its path, where no earlier route matches that path."""
    index: dict[str, Route] = {}
    earlier: list[Route | WebSocketRoute] = []
    for route in routes:
        if not isinstance(route, Route | WebSocketRoute):
            break  # (a Mount or Host may match anything after it: index nothing further)
        path = route.path
        if (isinstance(route, Route) and not route.param_convertors and path not in index
                and not any(e.path_regex.match(path) for e in earlier)):
            index[path] = route
        earlier.append(route)
    return index


class IndexedRouter(Router):
    """A Starlette ``Router`` that looks parameterless paths up first (``static_index``)."""

    def __init__(self, routes: Sequence[BaseRoute], **options: Any) -> None:
        super().__init__(routes=list(routes), **options)
        self.static = static_index(self.routes)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.static.get(get_route_path(scope))
            if route is not None:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await super().app(scope, receive, send)
