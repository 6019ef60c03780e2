"""Per-app services the views use: settings, the database, Redis."""

from __future__ import annotations

from typing import cast

from flask import current_app
from redis import Redis

from crowd.api.ratelimit import FailedAuthLimit
from crowd.background.scheduling import StaleMarks
from crowd.config import Settings
from crowd.store.db import Database


def settings() -> Settings:
    return cast(Settings, current_app.extensions["crowd.settings"])


def db() -> Database:
    return cast(Database, current_app.extensions["crowd.db"])


def redis() -> Redis:
    return cast(Redis, current_app.extensions["crowd.redis"])


def stale_marks() -> StaleMarks:
    return cast(StaleMarks, current_app.extensions["crowd.stale"])


def auth_failures() -> FailedAuthLimit:
    return cast(FailedAuthLimit, current_app.extensions["crowd.auth_failures"])
