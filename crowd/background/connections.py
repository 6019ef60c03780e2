"""The servers and settings that background jobs in this process use: the bottom layer.

RQ calls a job with ids only, so a job finds its PostgreSQL and Redis here. The worker
bootstrap calls :func:`configure` once per process; a job run without it (an RQ worker
started by hand, or a test) reads the environment (:meth:`crowd.config.Settings.from_env`).
"""

from __future__ import annotations

from redis import Redis

from crowd.config import Settings
from crowd.store.db import Database

_settings: Settings | None = None
_services: tuple[Database, Redis] | None = None


def configure(settings: Settings) -> None:
    """Use these servers and settings (webhook retry intervals, allowed private addresses)
    for the jobs this process runs."""
    global _settings, _services
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("jobs need CROWD_DATABASE_URL and CROWD_REDIS_URL")
    _settings = settings
    _services = (
        Database(settings.database_url, max_connections=2),
        Redis.from_url(settings.redis_url),
    )


def settings() -> Settings:
    """The settings given to :func:`configure`, else the environment's."""
    return _settings if _settings is not None else Settings.from_env()


def services() -> tuple[Database, Redis]:
    """This process's PostgreSQL pool and Redis client (from the environment if
    :func:`configure` was never called)."""
    if _services is None:
        configure(Settings.from_env())
    assert _services is not None
    return _services
