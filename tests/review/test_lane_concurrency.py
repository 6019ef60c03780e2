"""The review lane under concurrency, over real HTTP: workers race for review-lane tasks while
predictions re-route tasks and corrections open slots. No task goes past its lane's cap, no
worker answers a task twice, and a task's answers all come from one lane."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

import requests

from crowd.store.db import Database

N_TASKS, N_WORKERS, MAX_OVERLAP = 150, 12, 3


def test_racing_reviewers_and_rerouting_predictions_keep_the_lane_invariants(
    live_url: str, requester: str, database: Database
) -> None:
    api = f"{live_url}/api/v1"
    hdr = {"Authorization": f"Bearer {requester}"}
    review = {"overlap": 1, "max_overlap": MAX_OVERLAP, "blind_below": 0.5, "trap_rate": 0.0}
    pid = requests.post(
        f"{api}/projects",
        json={"name": "race", "labels": ["a", "b"], "overlap": 2, "gold_rate": 0.0,
              "review": review},
        headers=hdr, timeout=30,
    ).json()["id"]  # fmt: skip
    tasks = [{"external_id": f"t{i}"} for i in range(N_TASKS)]
    r = requests.post(f"{api}/projects/{pid}/tasks", json={"tasks": tasks}, headers=hdr, timeout=30)
    assert r.status_code == 201
    tokens = [
        requests.post(f"{api}/workers", json={"name": f"w{i}"}, headers=hdr, timeout=30).json()[
            "token"
        ]
        for i in range(N_WORKERS)
    ]
    errors: list[str] = []
    deadline = time.monotonic() + 60

    def predict() -> None:
        """Predictions arrive in waves while workers fetch: each wave re-routes the tasks
        nobody has touched yet (confident ones to review, the rest stay blind)."""
        rng = random.Random(0)
        for wave in range(6):
            preds = [
                {"external_id": f"t{i}", "label": rng.choice("ab"), "confidence": rng.random()}
                for i in range(N_TASKS)
            ]
            r = requests.post(
                f"{api}/projects/{pid}/predictions",
                json={"model": f"m{wave}", "predictions": preds},
                headers=hdr,
                timeout=30,
            )
            if r.status_code != 201:
                errors.append(f"predictions {r.status_code} {r.text[:200]}")
            time.sleep(0.2)

    def work(index: int, token: str) -> None:
        rng = random.Random(index)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        idle = 0
        while time.monotonic() < deadline and idle < 5:
            r = session.post(f"{api}/projects/{pid}/assignments", timeout=30)
            if r.status_code == 204:
                idle += 1
                time.sleep(0.2)
                continue
            if r.status_code != 201:
                errors.append(f"fetch {r.status_code} {r.text[:200]}")
                return
            got = r.json()
            if (got["lane"] == "review") != ("proposal" in got):
                errors.append(f"lane and proposal disagree: {got}")
            # Reviewers correct half the proposals, which opens more review slots.
            label = rng.choice("ab")
            a = session.post(
                f"{api}/assignments/{got['assignment_id']}/answer",
                json={"label": label},
                timeout=30,
            )
            if a.status_code != 201:
                errors.append(f"answer {a.status_code} {a.text[:200]}")

    threads = [threading.Thread(target=predict)]
    threads += [threading.Thread(target=work, args=(i, t)) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]

    with database.transaction() as cur:
        cur.execute(
            "SELECT t.external_id, t.target, t.taken, t.answers, a.worker_id, a.proposal"
            " FROM tasks t JOIN assignments a ON a.task_id = t.id"
            " WHERE t.project_id = %s AND a.status = 'answered'",
            (pid,),
        )
        rows = cur.fetchall()
    workers: dict[str, list[int]] = defaultdict(list)
    lanes: dict[str, set[bool]] = defaultdict(set)
    for external_id, target, taken, answers, worker_id, proposal in rows:
        assert taken <= target and answers <= target
        workers[external_id].append(worker_id)
        lanes[external_id].add(proposal is not None)
    assert len(rows) > N_TASKS  # the race really ran
    for external_id, who in workers.items():
        assert len(who) == len(set(who)), external_id  # distinct workers
        assert len(lanes[external_id]) == 1, external_id  # one lane per task
        review_lane = lanes[external_id] == {True}
        assert len(who) <= (MAX_OVERLAP if review_lane else 2), external_id
    assert any(lanes[x] == {True} for x in lanes) and any(lanes[x] == {False} for x in lanes)
