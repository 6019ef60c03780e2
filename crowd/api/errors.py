"""Every error leaves as JSON ``{"error": {"code", "message"}}``; nothing leaks a traceback."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from crowd.errors import CrowdError

log = logging.getLogger("crowd.api")

_HTTP_HINTS = {
    404: "no such endpoint; see GET /openapi.json for the API",
    405: "method not allowed on this path; see GET /openapi.json for the allowed methods",
    413: "request body too large; send at most {limit} bytes (post tasks in batches of at most "
    "10,000)",
}


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = "2"
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(CrowdError)
    def _crowd(exc: CrowdError) -> Response:
        response = error_response(exc.status, exc.code, exc.message)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        hint = _HTTP_HINTS.get(status, exc.description or exc.name)
        message = hint.format(limit=app.config.get("MAX_CONTENT_LENGTH"))
        code = exc.name.lower().replace(" ", "_")
        response = error_response(status, code, message)
        if status == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal", "internal error; the server log has the details")
