"""Every error leaves as Mastodon's ``{"error": "..."}`` with a 4xx status, never a bare 500."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from roost.domain.accounts import ValidationFailed
from roost.domain.errors import DomainError
from roost.domain.oauth import OAuthError
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


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error("Internal server error", 500)


HANDLERS = {
    DomainError: domain_error,
    OAuthError: oauth_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
