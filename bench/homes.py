"""Home timelines seen over HTTP, each with its account's token: how the harness watches
timelines that live in the server's own memory (``ROOST_HOME_TIMELINES=memory``, the embedded
default), which no other process can read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

PATH = "/api/v1/timelines/home"


class HttpHomes:
    def __init__(self, url: str, tokens: dict[int, str], connections: int = 16) -> None:
        self.url = url
        self.tokens = tokens
        self.connections = connections

    def warm(self, accounts: Sequence[int]) -> None:
        """One read of each account's home timeline: the server fills it from the database
        and from then on keeps it, as it does for anyone who reads theirs after a start."""
        asyncio.run(self._each(accounts, {"limit": "1"}))

    def holding(self, status_id: int, accounts: Sequence[int]) -> list[int]:
        """The accounts among ``accounts`` whose home timeline holds the status (a window of
        exactly that id: a page of at most one entry each)."""
        window = {"max_id": str(status_id + 1), "since_id": str(status_id - 1), "limit": "1"}
        pages = asyncio.run(self._each(accounts, window))
        return [a for a, page in zip(accounts, pages, strict=True)
                if page and int(page[0]["id"]) == status_id]

    async def _each(self, accounts: Sequence[int], params: dict[str, str]) -> list[list[dict]]:
        limits = httpx.Limits(max_connections=self.connections)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=60) as client:
            gate = asyncio.Semaphore(self.connections)

            async def read(account: int) -> list[dict]:
                async with gate:
                    response = await client.get(PATH, params=params, headers={
                        "Authorization": f"Bearer {self.tokens[account]}"})
                response.raise_for_status()
                page: list[dict] = response.json()
                return page

            return await asyncio.gather(*(read(a) for a in accounts))
