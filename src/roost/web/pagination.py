"""The one paginator: Mastodon's max_id / since_id / min_id / limit, and Link headers."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from starlette.requests import Request

from roost.domain.models import Page
from roost.web.params import Params

STATUSES = (20, 40)
ACCOUNTS = (40, 80)
NOTIFICATIONS = (40, 80)


def page_from(params: Params, limits: tuple[int, int]) -> Page:
    default, maximum = limits
    limit = params.int("limit")
    limit = default if limit is None else limit
    return Page(
        max_id=params.id("max_id"),
        since_id=params.id("since_id"),
        min_id=params.id("min_id"),
        limit=max(1, min(limit, maximum)),
    )


def link_header(request: Request, cursor_ids: Sequence[int]) -> dict[str, str]:
    """``Link`` to the next (older) and previous (newer) pages, given the page's cursor ids
    newest first; none when the page is empty."""
    if not cursor_ids:
        return {}
    url = request.url
    base = f"{url.scheme}://{url.netloc}{url.path}?"
    kept = [(k, v) for k, v in request.query_params.multi_items()
            if k not in ("max_id", "since_id", "min_id")]

    def with_cursor(name: str, value: int) -> str:
        return base + urlencode([*kept, (name, str(value))])

    nxt = with_cursor("max_id", min(cursor_ids))
    prev = with_cursor("min_id", max(cursor_ids))
    return {"Link": f'<{nxt}>; rel="next", <{prev}>; rel="prev"'}
