"""The OpenAPI document Roost publishes, built from its routes and their docstrings."""

from __future__ import annotations

import inspect
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from roost import __version__
from roost.web.responses import Json

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def document(routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith(("/api/", "/oauth/")):
            continue
        if route.path.endswith("/") and route.path != "/":
            continue  # trailing-slash aliases
        doc = inspect.getdoc(route.endpoint) or ""
        summary = doc.split("\n")[0] if doc else route.name.replace("_", " ")
        parts = route.path.split("/")
        tag = parts[3] if route.path.startswith("/api/v") and len(parts) > 3 else "oauth"
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            operation: dict[str, Any] = {
                "summary": summary,
                "operationId": f"{method.lower()}_{route.name}_{len(paths)}",
                "tags": [tag],
                "responses": {
                    "200": {"description": "Success"},
                    "4XX": {"description": "Error",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/Error"}}}},
                },
            }
            if parameters:
                operation["parameters"] = parameters
            if doc and "\n" in doc:
                operation["description"] = doc
            paths.setdefault(_PARAM.sub(r"{\1}", route.path), {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Roost API", "version": __version__,
                 "description": "The Mastodon client API as Roost implements it, and Roost's "
                                "own extensions under /api/v1/roost/."},
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "string"},
                           "error_description": {"type": "string"}},
        }}},
    }


async def openapi(request: Request) -> Response:
    """This document."""
    return Json(document(request.app.routes))


routes = [Route("/api/openapi.json", openapi)]
