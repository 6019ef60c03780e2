"""A small threaded load of simulated workers over real HTTP, logging every acknowledged answer,
and the checks that compare that log with PostgreSQL."""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import requests

LABELS = ["a", "b"]


def setup_project(
    base: str, requester: str, n_tasks: int, n_workers: int, **fields: Any
) -> tuple[int, list[str]]:
    """A project with ``n_tasks`` tasks and ``n_workers`` workers; (project id, worker tokens)."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {requester}"
    spec = {"name": "faults", "labels": LABELS, "overlap": 3, "gold_rate": 0.0, **fields}
    r = s.post(f"{base}/api/v1/projects", json=spec, timeout=30)
    assert r.status_code == 201, r.text
    pid = int(r.json()["id"])
    tasks = [{"external_id": f"t{i}"} for i in range(n_tasks)]
    r = s.post(f"{base}/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, timeout=60)
    assert r.status_code == 201, r.text
    tokens = []
    for i in range(n_workers):
        r = s.post(f"{base}/api/v1/workers", json={"name": f"w{i}"}, timeout=30)
        assert r.status_code == 201, r.text
        tokens.append(str(r.json()["token"]))
    return pid, tokens


@dataclass
class Load:
    """Threads, one per worker token, each fetching and answering (answer + next) until
    :meth:`stop`. A 503 or a refused connection is retried, after a short pause, with the
    same request; every 200/201 answer is logged in ``acked``."""

    base: str
    pid: int
    tokens: list[str]
    acked: dict[int, str] = field(default_factory=dict)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    missing_retry_after: int = 0
    connection_errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for token in self.tokens:
            t = threading.Thread(target=self._run, args=(token,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        assert not any(t.is_alive() for t in self._threads), "a load thread hung"

    def answered_since(self, count: int) -> int:
        with self._lock:
            return len(self.acked) - count

    def _post(self, s: requests.Session, path: str, body: dict[str, Any] | None) -> Any:
        try:
            r = s.post(self.base + path, json=body, timeout=30)
        except requests.ConnectionError:
            with self._lock:
                self.connection_errors += 1
            return None
        with self._lock:
            self.statuses[r.status_code] += 1
            if r.status_code == 503 and "Retry-After" not in r.headers:
                self.missing_retry_after += 1
        return r

    def _run(self, token: str) -> None:
        rng = random.Random(token)
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        held: int | None = None
        while not self._stop.is_set():
            if held is None:
                r = self._post(s, f"/api/v1/projects/{self.pid}/assignments", None)
                if r is not None and r.status_code == 201:
                    held = int(r.json()["assignment_id"])
                elif r is None or r.status_code in (204, 503):
                    time.sleep(0.2)
                continue
            label = LABELS[held % 2] if rng.random() < 0.8 else LABELS[rng.randrange(2)]
            r = self._post(s, f"/api/v1/assignments/{held}/answer", {"label": label, "next": True})
            if r is None or r.status_code == 503:
                time.sleep(0.2)  # the same request again: a retry, never a second answer
                continue
            if r.status_code in (200, 201):
                with self._lock:
                    assert self.acked.setdefault(held, label) == label
                nxt = r.json()["next"]
                held = int(nxt["assignment_id"]) if nxt else None
            else:  # 409: expired while the server was away; fetch another
                held = None
        s.close()


def check_stored(database_url: str, pid: int, acked: dict[int, str]) -> int:
    """Every acknowledged answer is stored, once, with its label; the per-task counters agree
    with the rows. Returns the number of stored answers."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, label FROM assignments WHERE project_id = %s AND status = 'answered'",
                (pid,),
            )
            stored = {aid: LABELS[label] for aid, label in cur.fetchall()}
            cur.execute(
                """
                SELECT count(*) FROM tasks t LEFT JOIN (
                    SELECT task_id, count(*) FILTER (WHERE status = 'answered') AS answered,
                           count(*) FILTER (WHERE status IN ('answered', 'reserved')) AS held
                    FROM assignments GROUP BY task_id) a ON a.task_id = t.id
                WHERE t.project_id = %s AND (t.answers <> coalesce(a.answered, 0)
                      OR t.taken <> coalesce(a.held, 0) OR t.taken > t.target)
                """,
                (pid,),
            )
            (drift,) = cur.fetchone()
    finally:
        conn.close()
    lost = {aid: label for aid, label in acked.items() if stored.get(aid) != label}
    assert not lost, f"acknowledged answers missing or changed in PostgreSQL: {lost}"
    assert drift == 0, f"{drift} tasks whose counters disagree with their assignment rows"
    return len(stored)
