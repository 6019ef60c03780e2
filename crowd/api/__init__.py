"""The HTTP API: ``create_app`` and one blueprint per resource under ``/api/v1``."""

from __future__ import annotations

from typing import Any

from flask import Flask
from redis import Redis
from werkzeug.routing import IntegerConverter

from crowd.background.scheduling import StaleMarks
from crowd.config import Settings
from crowd.store.db import Database


def _at_most(limit: int) -> str:
    """A regex matching exactly the decimal numbers 0..``limit`` (leading zeros allowed)."""
    digits = str(limit)
    longest = [f"0*[0-9]{{1,{len(digits) - 1}}}", f"0*{digits}"]
    for i, d in enumerate(digits):
        if d != "0":
            rest = len(digits) - i - 1
            longest.append(f"0*{digits[:i]}[0-{int(d) - 1}][0-9]{{{rest}}}")
    return "(?:" + "|".join(longest) + ")"


class _Int64Converter(IntegerConverter):
    """``<int:...>`` path parts that fit PostgreSQL's bigint; larger ones are a plain 404.

    The bound is in the regex, not only in ``max``: a number that matched the regex but failed
    ``max`` would make werkzeug answer 405 on a path with rules for other methods.
    """

    regex = _at_most(2**63 - 1)

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def create_app(settings: Settings | None = None) -> Flask:
    """Application factory (gunicorn: ``crowd.api:create_app()``).

    Reads :class:`~crowd.config.Settings` from the environment unless given. Both URLs must be
    set by then: ``crowd serve`` starts embedded servers and sets them when they are not.
    """
    settings = settings or Settings.from_env()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError(
            "CROWD_DATABASE_URL and CROWD_REDIS_URL must be set; `crowd serve` sets them "
            "(starting embedded servers) when they are not"
        )
    app = Flask(__name__)
    app.url_map.converters["int"] = _Int64Converter
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["crowd.settings"] = settings
    app.extensions["crowd.db"] = Database(settings.database_url, max_connections=settings.pool_size)
    app.extensions["crowd.redis"] = Redis.from_url(
        settings.redis_url, socket_timeout=5, socket_connect_timeout=5
    )
    app.extensions["crowd.stale"] = StaleMarks(
        app.extensions["crowd.db"], app.extensions["crowd.redis"]
    )

    from crowd import web
    from crowd.api import (
        aggregations,
        assignments,
        errors,
        export,
        health,
        me,
        models,
        predictions,
        projects,
        quality,
        ratelimit,
        results,
        review,
        stats,
        tasks,
        webhooks,
        workers,
    )

    errors.init_app(app)
    for module in (
        health,
        projects,
        tasks,
        assignments,
        results,
        aggregations,
        quality,
        workers,
        webhooks,
        stats,
        me,
        models,
        predictions,
        review,
        export,
        web,
    ):
        app.register_blueprint(module.bp)

    app.extensions["crowd.auth_failures"] = ratelimit.FailedAuthLimit(
        app.extensions["crowd.redis"], settings.auth_failure_limit
    )
    ratelimit.trust_proxies(app, settings.trusted_proxies)
    return app
