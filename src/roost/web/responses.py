"""JSON responses encoded with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(message: str, status: int, **extra: Any) -> Json:
    """Mastodon's error shape: ``{"error": "..."}`` plus optional detail fields."""
    return Json({"error": message, **extra}, status_code=status)
