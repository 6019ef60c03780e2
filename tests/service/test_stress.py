"""200 concurrent workers over real HTTP against gunicorn, with skips, abandoned reservations
and late answers on a short lease; then the service's promises checked in PostgreSQL and
through the API (benchmarks/stress.py at a small size; the full size is a benchmark)."""

from __future__ import annotations

import sys
from pathlib import Path

from crowd.config import Settings
from tests.service.servers import CROWD, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import stress


def test_200_workers_skipping_and_abandoning_keep_every_invariant(
    settings: Settings, clean: None, tmp_path: Path
) -> None:
    """Slow (about 60 s): 200 workers answer, skip and abandon 600 tasks over real HTTP for up
    to a minute, as long as leases take to expire and be handed out again."""
    assert settings.database_url and settings.redis_url
    cfg = stress.Config(
        tasks=600, workers=200, lease=5, skip=0.1, abandon=0.05, late=0.01, max_seconds=60
    )
    services = stress.start_services(
        CROWD, settings.database_url, settings.redis_url, free_port(), tmp_path
    )
    try:
        pid, tokens = stress.setup(services.base, services.requester, cfg)
        out = stress.drive(services.base, pid, tokens, cfg, settings.database_url)
        checks = stress.invariants(
            services.base, services.requester, settings.database_url, pid, out, catch_up=30
        )
    finally:
        services.stop()
    report = stress.report(cfg, out, checks)
    assert all(ok for _, _, ok in checks), report
    assert len(out.acked) == cfg.tasks * cfg.overlap, report
