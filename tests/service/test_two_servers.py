"""Two API servers and three aggregation workers on one PostgreSQL and one Redis, as a
horizontally scaled deployment runs: they share the load and no promise breaks (issue 14)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import psycopg2
from redis import Redis
from rq.job import Job

from crowd.background.scheduling import job_id
from crowd.config import Settings
from tests.service.load import Load, check_stored, setup_project
from tests.service.servers import CROWD, free_port, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _service import spawn_healthy, start_services

PROJECTS, TASKS, WORKERS, OVERLAP = 4, 30, 6, 3


def _runs(database_url: str, pid: int) -> list[tuple[int, str, float, float, int]]:
    """``(id, status, started, finished, answers_total)`` of the project's runs, by start."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, status, extract(epoch FROM started_at), extract(epoch FROM"
                " finished_at), answers_total FROM aggregation_runs WHERE project_id = %s"
                " ORDER BY started_at NULLS LAST, id",
                (pid,),
            )
            return list(cur.fetchall())
    finally:
        conn.close()


def test_two_servers_and_three_workers_share_the_load_and_keep_every_promise(
    settings: Settings, clean: None, tmp_path: Path
) -> None:
    """Slow (20-40 s): two `crowd serve` and three `crowd worker` processes start, and 24
    simulated workers answer 4 projects through both servers until every task is full."""
    assert settings.database_url and settings.redis_url
    services = start_services(
        CROWD, settings.database_url, settings.redis_url, free_port(), tmp_path, workers=3
    )
    other_port = free_port()
    other = f"http://127.0.0.1:{other_port}"
    second = spawn_healthy(
        [CROWD, "serve", "--no-worker", "--port", str(other_port)],
        services.env, tmp_path / "serve2.log", other,
    )  # fmt: skip
    loads: list[tuple[int, Load]] = []
    try:
        for _ in range(PROJECTS):
            pid, tokens = setup_project(
                services.base, services.requester, TASKS, WORKERS, overlap=OVERLAP
            )
            half = WORKERS // 2  # each project's workers split over the two servers
            loads += [
                (pid, Load(services.base, pid, tokens[:half]).start()),
                (pid, Load(other, pid, tokens[half:]).start()),
            ]
        wanted = PROJECTS * TASKS * OVERLAP
        wait_for(lambda: sum(len(load.acked) for _, load in loads) >= wanted, 90,
                 "every task to get its answers")  # fmt: skip
        for _, load in loads:
            load.stop()

        for pid in {pid for pid, _ in loads}:
            # Every acknowledged answer stored once, counters agree, no task past its overlap
            acked = {
                aid: label for p, load in loads if p == pid for aid, label in load.acked.items()
            }
            assert check_stored(settings.database_url, pid, acked) == TASKS * OVERLAP

            # The runs catch up with every answer, one at a time per project
            def caught_up(pid: int = pid) -> bool:
                done = _runs(settings.database_url, pid)
                return (
                    bool(done)
                    and all(r[1] in ("succeeded", "failed") for r in done)
                    and any(r[1] == "succeeded" and r[4] == TASKS * OVERLAP for r in done)
                )

            wait_for(caught_up, 60, f"project {pid}'s runs to read every answer")
            done = _runs(settings.database_url, pid)
            assert all(r[1] == "succeeded" for r in done), done
            for earlier, later in itertools.pairwise(done):
                assert earlier[3] <= later[2], f"two runs of project {pid} overlapped: {done}"

        # ... and the runs were spread over the workers
        redis = Redis.from_url(settings.redis_url)
        ran_by = {
            Job.fetch(job_id(run[0]), connection=redis).worker_name
            for pid in {pid for pid, _ in loads}
            for run in _runs(settings.database_url, pid)
        }
        assert len(ran_by) >= 2, ran_by
        served = [load.statuses[201] + load.statuses[200] for _, load in loads]
        assert all(n > 0 for n in served), served  # both servers took answers
    finally:
        for _, load in loads:
            load.stop()  # again after a success: a no-op
        second.stop()
        services.stop()
