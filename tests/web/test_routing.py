"""The indexed router picks the route Starlette's scan picks, faster."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Receive, Scope, Send

from roost.web.app import all_routes
from roost.web.routing import IndexedRouter, static_index


def _scope(path: str, method: str) -> dict[str, Any]:
    return {"type": "http", "path": path, "root_path": "", "method": method, "headers": [],
            "query_string": b""}


def _scanned(routes: list[BaseRoute], scope: dict[str, Any]) -> BaseRoute | None:
    """The route Starlette's scan hands a request to: the first full match."""
    return next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)


def test_every_indexed_path_resolves_as_the_scan_does() -> None:
    routes = all_routes()
    index = static_index(routes)
    assert "/api/v1/timelines/home" in index and "/api/v1/notifications" in index
    for path, route in index.items():
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            scope = _scope(path, method)
            if route.matches(scope)[0] is Match.FULL:  # else the router scans anyway
                assert _scanned(routes, scope) is route, (path, method)


async def _endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("not called")


def test_a_path_an_earlier_route_matches_is_not_indexed() -> None:
    """``/things/{name}`` first takes ``/things/new``; after a Mount nothing is indexed."""
    first = Route("/things/{name}", _endpoint)
    shadowed = Route("/things/new", _endpoint)
    free = Route("/other", _endpoint)
    after_mount = Route("/late", _endpoint)
    index = static_index([first, shadowed, free, Mount("/static", routes=[]), after_mount])
    assert index == {"/other": free}


def test_the_router_serves_indexed_and_scanned_paths() -> None:
    """Through a real ASGI call: an indexed path, a path with a parameter, a method the
    indexed route does not take (405 from the scan), and a miss (404)."""
    import asyncio

    from starlette.responses import PlainTextResponse

    def named(name: str) -> Any:
        async def endpoint(_request: Any) -> PlainTextResponse:
            return PlainTextResponse(name)
        return endpoint

    router = IndexedRouter([Route("/a/{x}", named("param")), Route("/b", named("static")),
                            Route("/c", named("post-only"), methods=["POST"])])

    async def call(path: str, method: str = "GET") -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await router(_scope(path, method), receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    async def main() -> list[tuple[int, bytes]]:
        return [await call("/b"), await call("/a/1"), await call("/c"),
                await call("/c", "POST"), await call("/nowhere")]

    results = asyncio.run(main())
    assert results[0] == (200, b"static") and results[1] == (200, b"param")
    assert results[2][0] == 405 and results[3] == (200, b"post-only")
    assert results[4][0] == 404
