"""Domain errors; the web layer maps each to Mastodon's ``{"error": ...}`` with its status."""

from __future__ import annotations


class DomainError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """The request was well formed but its values are not acceptable (Mastodon: 422)."""

    status = 422


class BadRequest(DomainError):
    status = 400


class NotFound(DomainError):
    status = 404

    def __init__(self, message: str = "Record not found") -> None:
        super().__init__(message)


class Forbidden(DomainError):
    status = 403


class Unauthorized(DomainError):
    status = 401


class Conflict(DomainError):
    status = 409


class RateLimited(DomainError):
    status = 429
