"""Settings, read once from the environment.

Every setting has an environment variable; `crowd serve --help` and the README's configuration
table list the same names. Unset URLs mean "start embedded servers under CROWD_DATA_DIR".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

#: Networks of addresses, e.g. those webhooks may reach although private.
Networks = tuple[IPv4Network | IPv6Network, ...]
#: Every address, IPv4 and IPv6: what ``CROWD_WEBHOOK_ALLOW_PRIVATE=1`` allows.
ANY_ADDRESS: Networks = (ip_network("0.0.0.0/0"), ip_network("::/0"))


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"crowd: error: {name} must be an integer, got {raw!r}") from None


def _intervals(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        values = (-1,)
    if any(v < 1 for v in values):
        raise SystemExit(
            f"crowd: error: {name} must be comma-separated whole seconds, e.g. 10,60,300; "
            f"got {raw!r}"
        )
    return values


def _networks(name: str) -> Networks:
    """Unset, empty or 0: none; 1: every address; else comma-separated addresses/networks."""
    raw = (os.environ.get(name) or "").strip()
    if raw.lower() in ("", "0", "false", "no"):
        return ()
    if raw.lower() in ("1", "true", "yes"):
        return ANY_ADDRESS
    try:
        return tuple(ip_network(part.strip(), strict=False) for part in raw.split(","))
    except ValueError:
        raise SystemExit(
            f"crowd: error: {name} must be 1 (every address), 0, or comma-separated addresses "
            f"or networks, e.g. 10.0.0.5,192.168.0.0/16; got {raw!r}"
        ) from None


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of the API, the workers and the CLI."""

    database_url: str | None
    redis_url: str | None
    data_dir: Path
    pool_size: int
    max_body_bytes: int
    max_batch_tasks: int
    page_limit_default: int
    page_limit_max: int
    #: Seconds before each retry of a failed webhook delivery (attempts: one more than these).
    webhook_retry_intervals: tuple[int, ...] = (10, 60, 300, 1800, 7200)
    #: Private addresses webhooks may be registered at and delivered to (none: public only).
    webhook_allow_private: Networks = ()
    # Failed authentications allowed per client address (limits syntax, e.g. "30/minute").
    auth_failure_limit: str = "30/minute"
    # Reverse proxies in front of the API whose X-Forwarded-For entries are trusted (0: none).
    trusted_proxies: int = 0
    #: Exports one API process streams at once; more get 429 (each holds a database connection
    #: and a snapshot while its client downloads).
    export_concurrency: int = 2
    #: Seconds an export may wait on a client that reads nothing before PostgreSQL ends its
    #: transaction (idle_in_transaction_session_timeout) and the download is cut short.
    export_idle_timeout: int = 60
    #: Where a worker keeps projects' answers between aggregation runs, so a run reads only
    #: the new ones (crowd/store/answer_state.py); each worker host needs its own or a shared
    #: local disk. None: no copy is kept, every run reads all of a project's answers.
    state_dir: Path | None = None
    #: Seconds after which a kept copy is read whole again from PostgreSQL.
    full_reload_seconds: int = 3600
    #: A worker polls a queue with jobs waiting first once it has taken this many jobs from
    #: other queues meanwhile (workers/fair.py); 0: RQ's fixed priority order. While small
    #: projects keep their queue busy, a large project's run waits this many of a worker's
    #: jobs for its turn (docs/SCALING.md, "Fair scheduling", has the measured waits).
    fair_skips: int = 4
    #: Run small projects' runs in a forked work-horse, like every other job (RQ's default),
    #: instead of in the worker's own process (workers/bootstrap.py, ``execute_job``).
    fork_small_runs: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("CROWD_DATABASE_URL") or None,
            redis_url=os.environ.get("CROWD_REDIS_URL") or None,
            data_dir=Path(os.environ.get("CROWD_DATA_DIR") or ".crowd"),
            pool_size=_int("CROWD_DB_POOL_SIZE", 8),
            max_body_bytes=_int("CROWD_MAX_BODY_BYTES", 32 * 1024 * 1024),
            max_batch_tasks=_int("CROWD_MAX_BATCH_TASKS", 10_000),
            page_limit_default=100,
            page_limit_max=1000,
            webhook_retry_intervals=_intervals(
                "CROWD_WEBHOOK_RETRY_INTERVALS", (10, 60, 300, 1800, 7200)
            ),
            webhook_allow_private=_networks("CROWD_WEBHOOK_ALLOW_PRIVATE"),
            auth_failure_limit=os.environ.get("CROWD_AUTH_FAILURE_LIMIT") or "30/minute",
            trusted_proxies=_int("CROWD_TRUSTED_PROXIES", 0),
            export_concurrency=_int("CROWD_EXPORT_CONCURRENCY", 2),
            export_idle_timeout=_int("CROWD_EXPORT_IDLE_TIMEOUT", 60),
            state_dir=_state_dir(),
            full_reload_seconds=_int("CROWD_FULL_RELOAD_SECONDS", 3600),
            fair_skips=_fair_skips(),
            fork_small_runs=_flag("CROWD_FORK_SMALL_RUNS"),
        )


def _flag(name: str) -> bool:
    """A yes/no setting: 1, true or yes (any case) is yes; unset, empty, 0, false or no is no."""
    raw = (os.environ.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SystemExit(f"crowd: error: {name} must be 1 or 0, got {raw!r}")


def _fair_skips() -> int:
    """``CROWD_FAIR_SKIPS``: a whole number, 0 (RQ's fixed queue order) or more."""
    value = _int("CROWD_FAIR_SKIPS", 4)
    if value < 0:
        raise SystemExit(
            f"crowd: error: CROWD_FAIR_SKIPS must be 0 (fixed queue order) or more, got {value}"
        )
    return value


def _state_dir() -> Path | None:
    """``CROWD_STATE_DIR``; ``off`` keeps no copy; unset: ``crowd/answers`` in the user's cache
    directory (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    raw = (os.environ.get("CROWD_STATE_DIR") or "").strip()
    if raw.lower() == "off":
        return None
    if raw:
        return Path(raw)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "crowd" / "answers"


#: How long RQ keeps a finished job (seconds), and a failed one (for a look at its traceback).
JOB_KEEP = {"result_ttl": 600, "failure_ttl": 7 * 24 * 3600}

# RQ queues the workers listen on, in priority order. An idle worker takes the first job of the
# first queue that has one, so a small project's run never waits behind a large project's runs
# in a queue: runs of projects with fewer than LARGE_PROJECT_ANSWERS answers, then runs of
# larger ones (each project has at most one run queued or running, so a large project keeps
# at most one worker busy), then model training. A later queue is not starved: once it has
# waited Settings.fair_skips of a worker's turns, that worker polls it first (workers/fair.py).
RUN_QUEUE = "crowd"
LARGE_RUN_QUEUE = "crowd-large"
MODEL_QUEUE = "crowd-models"
QUEUES = (RUN_QUEUE, LARGE_RUN_QUEUE, MODEL_QUEUE)
#: A project with at least this many stored answers is large: its runs go to LARGE_RUN_QUEUE.
LARGE_PROJECT_ANSWERS = 100_000


def run_queue(answers: int) -> str:
    """The queue of a run of a project with ``answers`` stored answers."""
    return LARGE_RUN_QUEUE if answers >= LARGE_PROJECT_ANSWERS else RUN_QUEUE


# Webhook deliveries have a queue of their own, listened to after QUEUES: a slow receiver
# then delays an aggregation run by one attempt's timeout at most.
WEBHOOK_QUEUE = "crowd-webhooks"
