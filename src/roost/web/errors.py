"""Every error leaves as Mastodon's ``{"error": "..."}`` with a 4xx status, never a bare 500;
a storage outage is a 503 (retry), and only a bug a 500."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from roost.domain.accounts import ValidationFailed
from roost.domain.errors import DomainError
from roost.domain.oauth import OAuthError
from roost.storage.unavailable import OUTAGE_TYPES, is_outage
from roost.web.responses import Json, error

log = logging.getLogger(__name__)

_HTTP_MESSAGES = {404: "Record not found", 405: "Method not allowed"}


async def domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if isinstance(exc, ValidationFailed):
        return error(exc.message, exc.status, details=exc.details)
    return error(exc.message, exc.status)


async def oauth_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return Json({"error": exc.error, "error_description": exc.description},
                status_code=exc.status)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = _HTTP_MESSAGES.get(exc.status_code, exc.detail)
    return error(message, exc.status_code, )


async def outage_error(request: Request, exc: Exception) -> Response:
    """503 for a database or Redis that cannot be reached (nothing was written: the
    operation's transaction did not commit); any other database error is a bug, a 500."""
    if not is_outage(exc):
        raise exc
    log.warning("storage unavailable on %s %s: %s", request.method, request.url.path, exc)
    response = error("The service is unavailable for a moment; try again shortly", 503)
    response.headers["Retry-After"] = "5"
    return response


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error("Internal server error", 500)


HANDLERS = {
    DomainError: domain_error,
    OAuthError: oauth_error,
    HTTPException: http_error,
    # (a handler of its own, not Exception's: Starlette re-raises what reaches that one after
    # answering, and uvicorn then drops the client's kept-alive connection)
    **{kind: outage_error for kind in OUTAGE_TYPES},
    Exception: unexpected_error,
}
