"""The HTTP layer both clients share: bearer token, JSON, retries with backoff, idempotency keys.

One *logical call* (``Transport.call``) may take several HTTP attempts. It retries on
connection errors and timeouts, and on 429, 502, 503 and 504 responses, waiting
``Retry-After`` when the response says how long (seconds or an HTTP date), otherwise an
exponential backoff with full jitter. Every attempt of one POST carries the same
``Idempotency-Key`` (a uuid4 made once per call), so a server that remembers keys runs the
call once however many attempts reach it.
"""

from __future__ import annotations

import email.utils
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

import requests

#: Responses worth another attempt: rate limited, or a gateway / the service briefly down.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class ClientError(Exception):
    """Base class of everything :mod:`crowd.client` raises."""


class ApiError(ClientError):
    """The API refused the call: a 4xx, or a 5xx that outlasted the retries.

    ``status`` is the HTTP status; ``code`` and ``message`` come from the API's
    ``{"error": {"code", "message"}}`` body (the message says what to send instead).
    """

    def __init__(self, status: int, code: str, message: str, *, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path


class ConnectionFailed(ClientError):
    """No response from the service, after every retry (refused, reset, timed out)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call gets and how long to wait between them.

    Attempt ``n`` (from 0) that failed waits ``Retry-After`` when the response gave one
    (capped at ``max_delay``), otherwise a uniform random time in
    ``[0, min(max_delay, base_delay * 2**n)]``.
    """

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2.0**attempt))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass
class Transport:
    """A ``requests.Session`` bound to one service and one token.

    ``base_url`` is the service root (``http://127.0.0.1:8000``); paths are under it
    (``/api/v1/...``). ``sleep`` is how the retries wait (replaceable, e.g. to log).
    """

    base_url: str
    token: str
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.session.headers["Accept"] = "application/json"

    def close(self) -> None:
        self.session.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """Send one logical call; return its 2xx response or raise.

        Raises :class:`ApiError` on a 4xx (other than 429), or when the retries run out on a
        retryable status; :class:`ConnectionFailed` when they run out without any response.
        """
        headers = {}
        if method not in ("GET", "HEAD"):
            headers["Idempotency-Key"] = str(uuid.uuid4())  # the same for every attempt
        url = f"{self.base_url}{path}"
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                response = self.session.request(
                    method, url, json=json, params=clean, headers=headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise ConnectionFailed(
                        f"{method} {path}: no response from {self.base_url} after "
                        f"{self.retry.attempts} attempts: {exc}"
                    ) from exc
                self.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                response.close()
                self.sleep(self.retry.delay(attempt, wait))
                continue
            if response.status_code >= 400:
                raise _api_error(response, method, path)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """:meth:`call`, returning the decoded JSON body (None for an empty one, e.g. 204)."""
        response = self.call(method, path, json=json, params=params)
        return response.json() if response.content else None


def _api_error(response: requests.Response, method: str, path: str) -> ApiError:
    code, message = "http_error", response.text[:500] or response.reason
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        pass
    return ApiError(response.status_code, code, message, method=method, path=path)


class Client:
    """What both clients share: a :class:`Transport` (``http``) and closing it, also as a
    context manager."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.http = Transport(base_url, token, timeout=timeout, retry=retry or RetryPolicy())

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
