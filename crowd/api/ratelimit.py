"""Rate limiting of failed authentication, per client address, on Redis.

Only requests whose token is unknown count. A request whose token this process has
authenticated recently (the account cache in :mod:`crowd.api.auth`, 30 s) never reaches
Redis, so successful requests cost nothing while their token is cached. Any other token is checked here *before* it is looked up:
once an address has used up its allowance of failures, every uncached token from it, right or
wrong, gets 429 with ``Retry-After`` until the window has room again, so guessing cannot go on
at full speed. If Redis is unreachable the check is skipped (authentication itself never
depends on Redis).

The address is the TCP peer, or the client named in ``X-Forwarded-For`` when the app runs
behind ``CROWD_TRUSTED_PROXIES`` proxies (see :func:`trust_proxies`). The counting is the
moving window of the `limits` library (the core of flask-limiter), keyed per address.
"""

from __future__ import annotations

import logging
import math
import time

from flask import Flask
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.middleware.proxy_fix import ProxyFix

from crowd.errors import CrowdError

log = logging.getLogger(__name__)


class TooManyFailures(CrowdError):
    status, code = 429, "too_many_failed_authentications"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FailedAuthLimit:
    """At most ``limit`` (e.g. ``"30/minute"``) failed authentications per address."""

    def __init__(self, redis: Redis, limit: str) -> None:
        try:
            self.item: RateLimitItem = parse(limit)
        except ValueError:
            raise RuntimeError(
                f"CROWD_AUTH_FAILURE_LIMIT must look like '30/minute' or '100 per hour', "
                f"got {limit!r}"
            ) from None
        storage = RedisStorage(
            "redis://", connection_pool=redis.connection_pool, key_prefix="crowd:auth-failures"
        )
        self._window = MovingWindowRateLimiter(storage)

    def check(self, address: str) -> None:
        """Raise :class:`TooManyFailures` when ``address`` has no failures left right now."""
        try:
            if self._window.test(self.item, address):
                return
            reset = self._window.get_window_stats(self.item, address).reset_time
        except RedisError as exc:
            log.warning("auth rate limit not checked, Redis unavailable: %s", exc)
            return
        wait = max(1, math.ceil(reset - time.time()))
        raise TooManyFailures(
            f"too many failed authentications from {address} (at most {self.item}); "
            f"retry after {wait} s with a valid token",
            retry_after=wait,
        )

    def failed(self, address: str) -> None:
        """Count one failed authentication from ``address``."""
        try:
            self._window.hit(self.item, address)
        except RedisError as exc:
            log.warning("auth failure not counted, Redis unavailable: %s", exc)


def trust_proxies(app: Flask, count: int) -> None:
    """Take the client address from the last ``count`` entries of ``X-Forwarded-For`` (set
    by that many reverse proxies in front of the app). With 0, the header is ignored: a client
    could otherwise name any address it likes."""
    if count > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count)  # type: ignore[method-assign]
