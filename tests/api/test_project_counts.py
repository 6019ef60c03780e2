"""GET /projects/{id} counts come from counters kept in the transactions that change tasks
(migration 0009), not from counting the project's tasks; they must equal the count."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import requests

from crowd.store import projects
from crowd.store.db import Database
from crowd.store.projects import COMPLETE
from tests.conftest import auth

LABELS = ["a", "b", "c"]


def _counted(database: Database, project_id: int) -> dict[str, int]:
    """The counts the slow way: every task of the project, as before the counters."""
    with database.transaction() as cur:
        cur.execute(
            f"""
            SELECT count(*) FILTER (WHERE t.gold IS NULL),
                   count(*) FILTER (WHERE t.gold IS NOT NULL), coalesce(sum(t.answers), 0),
                   count(*) FILTER (WHERE t.gold IS NULL AND {COMPLETE}),
                   coalesce(sum(t.taken - t.answers), 0)
            FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.project_id = %s
            """,
            (project_id,),
        )
        row = cur.fetchone()
    assert row is not None
    names = ("tasks", "gold_tasks", "answers", "tasks_complete", "reservations")
    return dict(zip(names, map(int, row), strict=True))


def test_counts_equal_a_count_after_a_concurrent_burst_of_answers_retries_and_bans(
    live_url: str, requester: str, database: Database
) -> None:
    api = f"{live_url}/api/v1"
    hdr = auth(requester)
    spec = {"name": "burst", "labels": LABELS, "overlap": 2, "lease_seconds": 30,
            "confidence_target": 0.9, "max_overlap": 4, "gold_rate": 0.2}  # fmt: skip
    pid = requests.post(f"{api}/projects", json=spec, headers=hdr, timeout=30).json()["id"]
    tasks: list[dict[str, Any]] = [{"external_id": f"t{i}"} for i in range(150)]
    tasks += [{"external_id": f"g{i}", "gold": "a"} for i in range(10)]
    r = requests.post(f"{api}/projects/{pid}/tasks", json={"tasks": tasks}, headers=hdr, timeout=30)
    assert r.status_code == 201
    workers = [
        requests.post(f"{api}/workers", json={"name": f"w{i}"}, headers=hdr, timeout=30).json()
        for i in range(8)
    ]
    deadline = time.monotonic() + 8
    errors: list[str] = []

    def work(index: int, token: str) -> None:
        rng = random.Random(index)
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        while time.monotonic() < deadline:
            r = s.post(f"{api}/projects/{pid}/assignments", timeout=30)
            if r.status_code in (204, 403):  # nothing left, or banned right now
                time.sleep(0.05)
                continue
            aid = r.json()["assignment_id"]
            if rng.random() < 0.1:
                s.post(f"{api}/assignments/{aid}/skip", timeout=30)
                continue
            body = {"label": rng.choice(LABELS)}
            key = {"Idempotency-Key": f"{index}-{aid}"} if rng.random() < 0.5 else {}
            for _ in range(2 if rng.random() < 0.3 else 1):  # a retry after a lost response
                a = s.post(f"{api}/assignments/{aid}/answer", json=body, headers=key, timeout=30)
                if a.status_code not in (200, 201, 409):  # 409: released by a ban meanwhile
                    errors.append(f"answer {a.status_code} {a.text[:200]}")

    def requester_meddles() -> None:
        """Bans and unbans, overlap raised, the confidence rule turned off and on."""
        rng = random.Random(99)
        s = requests.Session()
        s.headers.update(hdr)
        step = 0
        while time.monotonic() < deadline:
            worker = rng.choice(workers)["id"]
            s.post(f"{api}/projects/{pid}/workers/{worker}/ban", json={"reason": "x"}, timeout=30)
            time.sleep(0.1)
            s.post(f"{api}/projects/{pid}/workers/{worker}/unban", timeout=30)
            step += 1
            changes: dict[str, Any] = (
                {"overlap": 3} if step == 3 else {"confidence_target": None if step % 2 else 0.9}
            )
            r = s.patch(f"{api}/projects/{pid}", json=changes, timeout=30)
            if r.status_code != 200:
                errors.append(f"patch {r.status_code} {r.text[:200]}")

    def runs_publish() -> None:
        """What a run's dynamic-overlap decisions do: close some tasks, give others a slot."""
        rng = random.Random(7)
        while time.monotonic() < deadline:
            with database.transaction() as cur:
                cur.execute(
                    "UPDATE tasks SET done = NOT done WHERE project_id = %s AND gold IS NULL"
                    " AND id %% 17 = %s",
                    (pid, rng.randrange(17)),
                )
                cur.execute(
                    "UPDATE tasks SET target = least(target + 1, 4) WHERE project_id = %s"
                    " AND gold IS NULL AND answers >= target AND id %% 13 = %s",
                    (pid, rng.randrange(13)),
                )
            time.sleep(0.2)

    threads = [threading.Thread(target=work, args=(i, w["token"])) for i, w in enumerate(workers)]
    threads += [threading.Thread(target=requester_meddles), threading.Thread(target=runs_publish)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    shown = requests.get(f"{api}/projects/{pid}", headers=hdr, timeout=30).json()["counts"]
    counted = _counted(database, pid)
    assert shown == counted
    assert counted["answers"] > 50 and counted["tasks"] == 150 and counted["gold_tasks"] == 10
    # The settings the completion count depends on change with no recount: both ways agree.
    for changes in ({"confidence_target": None}, {"confidence_target": 0.9, "max_overlap": 3}):
        assert requests.patch(f"{api}/projects/{pid}", json=changes, headers=hdr).ok
        shown = requests.get(f"{api}/projects/{pid}", headers=hdr, timeout=30).json()["counts"]
        assert shown == _counted(database, pid)


def test_reading_the_counts_touches_no_task_row(client, requester, make_project, database) -> None:
    pid = make_project(requester)["id"]
    tasks = {"tasks": [{"external_id": f"t{i}"} for i in range(100)]}
    r = client.post(f"/api/v1/projects/{pid}/tasks", json=tasks, headers=auth(requester))
    assert r.status_code == 201
    stats = (
        "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
        " WHERE relname = 'tasks'"
    )
    with database.transaction() as cur:
        cur.execute(stats)
        before = cur.fetchone()
        counts = projects.counts(cur, pid)
        cur.execute(stats)
        assert cur.fetchone() == before  # no scan of tasks, by index or otherwise
    assert counts["tasks"] == 100 and counts["tasks_complete"] == 0


def test_counts_follow_deleted_tasks_and_a_deleted_project_leaves_no_counter(
    client, requester, make_project, database
) -> None:
    pid = make_project(requester)["id"]
    tasks = {"tasks": [{"external_id": f"t{i}"} for i in range(10)] + [
        {"external_id": "g", "gold": "a"}]}  # fmt: skip
    r = client.post(f"/api/v1/projects/{pid}/tasks", json=tasks, headers=auth(requester))
    assert r.status_code == 201
    with database.transaction() as cur:
        cur.execute(
            "DELETE FROM tasks WHERE project_id = %s AND external_id IN ('t1', 'g')", (pid,)
        )
        assert projects.counts(cur, pid)["tasks"] == 9
    assert (
        _counted(database, pid)
        == client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["counts"]
    )
    with database.transaction() as cur:
        cur.execute("DELETE FROM projects WHERE id = %s", (pid,))
        cur.execute("SELECT count(*) FROM project_counts WHERE project_id = %s", (pid,))
        assert cur.fetchone() == (0,)
