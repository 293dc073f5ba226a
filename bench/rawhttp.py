"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for the celebrity workload.

There 1,000 followers poll their home timelines until the post shows, and each follower's
time depends on how fast the client gets through them: httpx spent a whole core on it (the
server was at 13%), so the client became the measurement. This client does only what that
needs: GET with a bearer token on a kept-alive connection, a response framed by
Content-Length (what Starlette sends), and the body as bytes. It is several times cheaper.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class Connection:
    """One kept-alive connection to ``url``'s host; ``get`` one request at a time."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer

    async def get(self, path: str, token: str) -> tuple[int, bytes]:
        """(status, body) of ``GET path`` with ``Authorization: Bearer token``."""
        reader, writer = await self._open()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = None
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:
            raise RuntimeError(f"no Content-Length in the response to GET {path}")
        body = await reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None
