"""Start an RQ worker for crowd's queues, with the numeric stack imported once up front.

Importing numpy/scipy and ``crowd.em`` before forking work-horses means each job starts
without paying for those imports again.
"""

from __future__ import annotations

import importlib

from redis import Redis
from rq import Queue, Worker

from crowd.config import QUEUES, Settings


def preload() -> None:
    for name in ("numpy", "scipy.special", "crowd.em"):
        importlib.import_module(name)


def run(settings: Settings, *, burst: bool = False) -> None:
    if not settings.redis_url:
        raise SystemExit("crowd: error: set CROWD_REDIS_URL (or run `crowd serve` first)")
    preload()
    connection = Redis.from_url(settings.redis_url)
    queues = [Queue(name, connection=connection) for name in QUEUES]
    Worker(queues, connection=connection).work(burst=burst, with_scheduler=True)
