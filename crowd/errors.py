"""Errors a client can act on. The API turns each into ``{"error": {"code", "message"}}``."""

from __future__ import annotations


class CrowdError(Exception):
    """Base class: an HTTP status, a stable machine code and a message saying what to send."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(CrowdError):
    status, code = 400, "bad_request"


class Unauthorized(CrowdError):
    status, code = 401, "unauthorized"


class Forbidden(CrowdError):
    status, code = 403, "forbidden"


class NotFound(CrowdError):
    status, code = 404, "not_found"


class Conflict(CrowdError):
    status, code = 409, "conflict"


class Invalid(CrowdError):
    status, code = 422, "invalid"


class Unavailable(CrowdError):
    status, code = 503, "unavailable"
