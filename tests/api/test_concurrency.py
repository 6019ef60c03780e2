"""Many workers at once, over real HTTP and real PostgreSQL connections.

32 threads act as workers on 500 tasks at overlap 3, half of them answering with "next" (one
request per answer). They skip and abandon reservations at random (a short lease makes the
abandoned ones come back) and retry answers. Afterwards the
database must show: no task over its overlap, no worker twice on a task, and every
acknowledged answer stored exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import requests

from crowd.store.db import Database

N_TASKS, OVERLAP, N_WORKERS = 500, 3, 32
LABELS = ["a", "b", "c"]


def test_concurrent_workers_never_break_overlap_or_lose_answers(
    live_url: str, requester: str, database: Database
) -> None:
    """Slow (10-15 s on 2 cores): many threads race for the same tasks over real HTTP, and
    leases of 5 s must expire for the hand-out-again path to be exercised."""
    api = f"{live_url}/api/v1"
    hdr = {"Authorization": f"Bearer {requester}"}
    project = requests.post(
        f"{api}/projects",
        json={"name": "race", "labels": LABELS, "overlap": OVERLAP, "lease_seconds": 5},
        headers=hdr,
        timeout=30,
    ).json()
    pid = project["id"]
    tasks = [{"external_id": f"t{i}"} for i in range(N_TASKS)]
    assert (
        requests.post(
            f"{api}/projects/{pid}/tasks", json={"tasks": tasks}, headers=hdr, timeout=30
        ).status_code
        == 201
    )
    tokens = [
        requests.post(f"{api}/workers", json={"name": f"w{i}"}, headers=hdr, timeout=30).json()[
            "token"
        ]
        for i in range(N_WORKERS)
    ]

    acknowledged: list[tuple[int, str]] = []  # (assignment_id, label) for every 201
    repeats: list[int] = []
    late: list[int] = []  # answers refused because the lease had run out: never stored
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 150

    def complete() -> bool:
        counts = requests.get(f"{api}/projects/{pid}", headers=hdr, timeout=30).json()["counts"]
        return bool(counts["tasks_complete"] == N_TASKS)

    def work(index: int, token: str) -> None:
        """Odd workers use answer-with-next (one request per answer), even ones fetch each time."""
        rng = random.Random(index)
        use_next = index % 2 == 1
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        pending: dict | None = None  # a reservation handed back by answer-with-next
        try:
            while time.monotonic() < deadline:
                if pending is None:
                    r = session.post(f"{api}/projects/{pid}/assignments", timeout=30)
                    if r.status_code == 204:
                        if complete():
                            return
                        time.sleep(0.3)  # abandoned reservations are still running out
                        continue
                    if r.status_code != 201:
                        errors.append(f"fetch {r.status_code} {r.text[:200]}")
                        return
                    pending = r.json()
                aid = pending["assignment_id"]
                expires_at = datetime.fromisoformat(pending["expires_at"])
                pending = None
                roll = rng.random()
                if roll < 0.04:
                    continue  # abandon: the lease runs out and the task comes back
                if roll < 0.12:
                    s = session.post(f"{api}/assignments/{aid}/skip", timeout=30)
                    if s.status_code != 200:
                        errors.append(f"skip {s.status_code} {s.text[:200]}")
                    continue
                body = {"label": rng.choice(LABELS), "next": use_next}
                a = session.post(f"{api}/assignments/{aid}/answer", json=body, timeout=30)
                if a.status_code == 409 and a.json()["error"]["code"] == "expired":
                    # A loaded machine can stall a thread past the 5 s lease. Refusing the
                    # answer is then right, but only if the lease really had run out.
                    if datetime.now(UTC) < expires_at:
                        errors.append(f"answer refused as expired before {expires_at}")
                    with lock:
                        late.append(aid)
                    continue
                if a.status_code != 201:
                    errors.append(f"answer {a.status_code} {a.text[:200]}")
                    continue
                with lock:
                    acknowledged.append((aid, body["label"]))
                if roll > 0.9:  # a client retry after a lost response
                    again = session.post(f"{api}/assignments/{aid}/answer", json=body, timeout=30)
                    with lock:
                        repeats.append(again.status_code)
                    a = again
                if use_next:
                    pending = a.json()["next"]
        finally:
            session.close()

    threads = [threading.Thread(target=work, args=(i, t)) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert repeats and set(repeats) == {200}
    with database.transaction() as cur:
        cur.execute(
            "SELECT a.id, a.task_id, a.worker_id, a.label FROM assignments a"
            " WHERE a.project_id = %s AND a.status = 'answered'",
            (pid,),
        )
        stored = cur.fetchall()
        cur.execute(
            "SELECT max(taken), max(answers), count(*) FILTER (WHERE answers = target)"
            " FROM tasks WHERE project_id = %s",
            (pid,),
        )
        max_taken, max_answers, complete_tasks = cur.fetchone()
    per_task = Counter(task for _, task, _, _ in stored)
    pairs = Counter((task, worker) for _, task, worker, _ in stored)
    assert max(per_task.values()) <= OVERLAP and max_answers <= OVERLAP and max_taken <= OVERLAP
    assert max(pairs.values()) == 1
    assert complete_tasks == N_TASKS and len(per_task) == N_TASKS
    assert not set(late) & {aid for aid, _, _, _ in stored}
    stored_acks = sorted((aid, LABELS[label]) for aid, _, _, label in stored)
    assert stored_acks == sorted(acknowledged)  # each acknowledged answer exactly once, none extra
