"""Static assets and the default avatar and header images."""

from __future__ import annotations

import struct
import zlib
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles


@cache
def solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A one-colour PNG, made here so Roost ships no binary images."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


async def missing_avatar(_request: Request) -> Response:
    return Response(solid_png(120, 120, (155, 166, 178)), media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400"})


async def missing_header(_request: Request) -> Response:
    return Response(solid_png(300, 100, (201, 209, 217)), media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400"})


routes = [
    Route("/avatars/original/missing.png", missing_avatar),
    Route("/headers/original/missing.png", missing_header),
    Mount("/static", StaticFiles(directory=str(Path(__file__).parent.parent / "static")),
          name="static"),
]
