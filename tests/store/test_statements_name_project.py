"""Every statement crowd sends about a per-project table names its project (issue 14).

On a database distributed by ``project_id`` (docs/SCALING.md, "Spreading projects over several
PostgreSQL nodes"), a statement that names a per-project row by its id alone goes to every
node, and ``SELECT ... FOR UPDATE`` is refused unless it goes to one. This test records what
PostgreSQL itself says it ran: every connection of an API app and of a real RQ worker (and
its work-horses) runs with ``log_statement = all`` and ``client_min_messages = log`` as session
settings, so the server sends each statement back as a LOG message, which psycopg2 hands to
the connection's ``notices``. (``pg_stat_statements`` would need a server restart to load.) A walk through the
service then runs: projects, tasks, fetches, answers, a skip, runs and a retrain by the
worker, results, export, models, predictions, stats, webhooks and their deliveries; then a
numeric project, a review-lane project and an active pairwise project through their runs."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from psycopg2.extensions import make_dsn, parse_dsn

import crowd.store.db
from crowd.config import ANY_ADDRESS, Settings
from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, post_tasks, results, runs
from tests.conftest import app_for, auth
from tests.types.test_typed_runs import answer_all
from tests.webhooks.conftest import serving
from tests.webhooks.test_delivery import add_hook, deliveries, work_until_sent

_LOGGED = re.compile(r"^LOG:  statement: (.*?)(?:\nDETAIL:  prepare: (.*))?\n?$", re.S)
# A table read, locked, changed or deleted from (an INSERT's target is named apart).
_READ = re.compile(r"\b(?:FROM|JOIN|UPDATE|USING)\s+(?:ONLY\s+)?([a-z_]+)\b", re.I)
_INSERT = re.compile(r"\bINSERT\s+INTO\s+([a-z_]+)\b", re.I)
# A condition on a project id: `x.project_id = ...`, `... = x.project_id`, `project_id IN`.
_ON_PROJECT = re.compile(r"project_id\s*(?:=|IN\b)|=\s*(?:\w+\.)?project_id\b", re.I)

#: Statements that read every project's rows by design, each with why (Citus runs them on
#: every node, as it may for a read; none of them locks or changes a row).
ACROSS_PROJECTS = {
    "SELECT id, project_id, status, created_at FROM aggregation_runs WHERE status IN": "the workers' sweep for runs nothing will finish (crowd.background.scheduling.reap)",
    "SELECT id, project_id, status, created_at FROM model_versions WHERE status IN": "the workers' sweep for versions nothing will finish (crowd.background.training.reap)",
    "SELECT id, project_id FROM webhook_deliveries WHERE status = 'pending' AND coalesce": "the workers' sweep for deliveries whose job was lost (webhooks.requeue_lost)",
    "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'": "this test's own wait for the deliveries (tests/webhooks/test_delivery.py)",
}

#: Statements that still name a per-project row by its id alone, each with why; docs/SCALING.md
#: lists them under what stands in the way. Shrink this, never grow it.
NOT_ROUTED = {
    "PREPARE crowd_lock AS SELECT": "POST /assignments/{id}/answer and .../skip name the"
    " assignment alone: the API does not know its project (crowd.store.assignments.lock)",
}


class _Recorder:
    """A ``notices`` that appends each message to a file (work-horses are forked: a list in a
    child would be lost)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, message: str) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps(message) + "\n")


def _per_project_tables(database: Database) -> set[str]:
    with database.transaction() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name = 'project_id'"
        )
        return {name for (name,) in cur.fetchall()}


def _statements(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        match = _LOGGED.match(json.loads(line))
        if match:
            out.append(match.group(2) or match.group(1))  # an EXECUTE: the PREPAREd text
    return out


def test_every_statement_on_a_per_project_table_names_its_project(
    client, requester, make_worker, make_project, database, settings, tmp_path, monkeypatch
) -> None:
    recorder = _Recorder(tmp_path / "notices.jsonl")

    class Recording(crowd.store.db._Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.notices = recorder

    monkeypatch.setattr(crowd.store.db, "_Connection", Recording)
    assert settings.database_url
    logged = replace(
        settings,
        database_url=make_dsn(
            **parse_dsn(settings.database_url),
            options="-c log_statement=all -c client_min_messages=log",
        ),
        webhook_allow_private=ANY_ADDRESS,
        webhook_retry_intervals=(1,),
    )
    tables = _per_project_tables(database)
    assert {"tasks", "assignments", "aggregation_runs", "model_versions", "webhooks"} <= tables

    with app_for(logged) as app, serving() as receiver:
        api: FlaskClient = app.test_client()
        _walk_through(api, client, requester, make_worker, make_project, logged, receiver.url)
        _typed_and_review(api, requester, make_worker, logged)
        work_until_sent(logged, Database(logged.database_url or "", max_connections=1))
        assert receiver.requests

    statements = _statements(recorder.path)
    touching = [s for s in statements if _unrouted(s, tables) is not None]
    # The walk-through reached the worker's statements (runs, training, deliveries) as well
    # as the API's.
    for done_by_worker in (
        "UPDATE aggregation_runs SET status = 'running'",
        "UPDATE model_versions SET status = 'running'",
        "UPDATE webhook_deliveries SET",
    ):
        assert any(done_by_worker in " ".join(s.split()) for s in statements), done_by_worker
    assert len(touching) > 100
    unrouted = [f"{why}:\n{s}" for s in touching if (why := _unrouted(s, tables))]
    assert unrouted == [], "\n\n".join(unrouted)


def _unrouted(statement: str, tables: set[str]) -> str | None:
    """None for a statement that touches no per-project table; "" for one that names the
    project of every per-project table it reads or changes (as many conditions on a
    project_id as such tables) and of every row it inserts; else why it does not."""
    reads = [t for t in _READ.findall(statement) if t.lower() in tables]
    inserts = [t for t in _INSERT.findall(statement) if t.lower() in tables]
    if not reads and not inserts:
        return None
    flat = " ".join(statement.split())
    if any(flat.startswith(prefix) for prefix in (*ACROSS_PROJECTS, *NOT_ROUTED)):
        return ""
    if inserts and "project_id" not in statement.lower():
        return f"inserts into {inserts} without a project_id"
    conditions = len(_ON_PROJECT.findall(statement))
    if conditions < len(reads):
        return f"reads {reads} with {conditions} condition(s) on a project_id"
    return ""


def _walk_through(
    api: FlaskClient,
    client: FlaskClient,
    requester: str,
    make_worker: Any,
    make_project: Any,
    settings: Settings,
    hook_url: str,
) -> None:
    """Two projects through the logged app; the fixtures' client only makes tokens."""
    worker = make_worker(requester, "w1")
    second = make_worker(requester, "w2")
    spec = {
        "name": "routed",
        "labels": ["neg", "pos"],
        "overlap": 2,
        "gold_rate": 0.0,
        "model": {"input": "features", "field": "x"},
        "retrain_every": 4,
        "confidence_target": 0.9,
        "max_overlap": 3,
    }
    r = api.post("/api/v1/projects", json=spec, headers=auth(requester))
    assert r.status_code == 201, r.json
    pid = int(r.json["id"])  # type: ignore[index]
    other = api.post("/api/v1/projects", json={**spec, "name": "other"}, headers=auth(requester))
    other_pid = int(other.json["id"])  # type: ignore[index]
    add_hook(api, requester, pid, hook_url)
    tasks = [{"external_id": f"t{i}", "data": {"x": [i - 3.5, 0.1]}} for i in range(8)]
    post_tasks(api, requester, pid, tasks)
    post_tasks(api, requester, pid, [{"external_id": "g0", "data": {"x": [1, 0]}, "gold": "pos"}])
    post_tasks(api, requester, other_pid, tasks[:2])

    fetched = api.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
    assert fetched.status_code == 201, fetched.json
    skipped = api.post(
        f"/api/v1/assignments/{fetched.json['assignment_id']}/skip",  # type: ignore[index]
        headers=auth(worker),
    )
    assert skipped.status_code in (200, 204), skipped.json
    for token in (worker, second):
        for _ in range(4):
            answer_next(api, token, pid, lambda t: "pos" if int(t[1:] or 9) > 3 else "neg")
    answer_next(api, worker, other_pid, lambda t: "pos")

    work_until_sent(settings, Database(settings.database_url or "", max_connections=1))
    assert api.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    work_until_sent(settings, Database(settings.database_url or "", max_connections=1))
    assert {r["status"] for r in runs(api, requester, pid)} == {"succeeded"}
    run_id = runs(api, requester, pid)[-1]["id"]

    assert results(api, requester, pid)
    for path in (
        f"/{pid}",
        f"/{pid}/aggregations/{run_id}",
        f"/{pid}/answers",
        f"/{pid}/corrections?model=m@1",
        f"/{pid}/export",
        f"/{pid}/export?format=jsonl",
        f"/{pid}/models",
        f"/{pid}/review",
        f"/{pid}/stats",
        f"/{pid}/webhooks",
        f"/{pid}/workers",
    ):
        got = api.get(f"/api/v1/projects{path}", headers=auth(requester))
        assert got.status_code in (200, 409), (path, got.status_code, got.json)
    # Another project's run is not found through this one.
    assert (
        api.get(
            f"/api/v1/projects/{other_pid}/aggregations/{run_id}", headers=auth(requester)
        ).status_code
        == 404
    )
    r = api.post(
        f"/api/v1/projects/{pid}/predictions",
        json={
            "model": "m@1",
            "predictions": [{"external_id": "t0", "label": "neg", "confidence": 0.9}],
        },
        headers=auth(requester),
    )
    assert r.status_code == 201, r.json
    assert api.post(f"/api/v1/projects/{pid}/models", headers=auth(requester)).status_code < 500
    work_until_sent(settings, Database(settings.database_url or "", max_connections=1))
    hooks = api.get(f"/api/v1/projects/{pid}/webhooks", headers=auth(requester)).json
    hid = hooks["webhooks"][0]["id"]  # type: ignore[index]
    assert deliveries(api, requester, pid, hid)
    assert (
        api.patch(
            f"/api/v1/projects/{pid}", json={"overlap": 3}, headers=auth(requester)
        ).status_code
        == 200
    )
    assert api.delete(f"/api/v1/projects/{pid}/webhooks/{hid}", headers=auth(requester))
    listed = api.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json
    wid = listed["workers"][0]["id"]  # type: ignore[index]
    for action in ("ban", "unban"):
        done = api.post(f"/api/v1/projects/{pid}/workers/{wid}/{action}", headers=auth(requester))
        assert done.status_code == 200, done.json


def _typed_and_review(
    api: FlaskClient, requester: str, make_worker: Any, settings: Settings
) -> None:
    """A numeric project with dynamic overlap, a project with the review lane on, and an
    active pairwise project (its runs create comparisons; the second warm-starts), through
    their runs."""
    create = {
        "name": "numeric",
        "type": "numeric",
        "scale": {"min": 1, "max": 5, "step": 1},
        "overlap": 2,
        "max_overlap": 3,
        "confidence_target": 0.99,
        "gold_rate": 0,
    }
    numeric = api.post("/api/v1/projects", json=create, headers=auth(requester)).json
    nid = int(numeric["id"])  # type: ignore[index]
    post_tasks(api, requester, nid, [{"external_id": "calm"}, {"external_id": "split"}])
    values = {"calm": (3, 3), "split": (1, 5)}
    for i in range(2):
        worker = make_worker(requester, f"n{i}")
        answer_all(api, worker, nid, lambda t, i=i: {"value": values[t["external_id"]][i]})

    review = {"overlap": 1, "max_overlap": 3, "blind_below": 0.5, "trap_rate": 0.0}
    spec = {"name": "review", "labels": ["pos", "neg"], "overlap": 2, "gold_rate": 0.0}
    created = api.post("/api/v1/projects", json={**spec, "review": review}, headers=auth(requester))
    rid = int(created.json["id"])  # type: ignore[index]
    post_tasks(api, requester, rid, [{"external_id": f"r{i}"} for i in range(4)])
    predicted = [{"external_id": f"r{i}", "label": "pos", "confidence": 0.9} for i in range(4)]
    r = api.post(
        f"/api/v1/projects/{rid}/predictions",
        json={"model": "m1", "predictions": predicted},
        headers=auth(requester),
    )
    assert r.status_code == 201, r.json
    reviewer = make_worker(requester, "reviewer")
    answer_all(api, reviewer, rid, lambda t: {"label": "neg"})
    work_until_sent(settings, Database(settings.database_url or "", max_connections=1))

    spec = {"name": "ranked", "type": "pairwise", "overlap": 1, "gold_rate": 0}
    created = api.post(
        "/api/v1/projects",
        json={**spec, "active": {"budget": 4, "batch": 2}},
        headers=auth(requester),
    )
    assert created.status_code == 201, created.json
    pid_ranked = int(created.json["id"])  # type: ignore[index]
    chain = ["A", "B", "C", "D"]
    comparisons = [
        {"external_id": f"{a}{b}", "left": {"id": a, "data": {}}, "right": {"id": b, "data": {}}}
        for a, b in pairwise(chain)
    ]
    post_tasks(api, requester, pid_ranked, comparisons)
    judge = make_worker(requester, "judge")
    for _ in range(2):  # the first run creates comparisons, the second answers them
        answer_all(api, judge, pid_ranked, lambda t: {"winner": "left"})
        work_until_sent(settings, Database(settings.database_url or "", max_connections=1))
    ranking = api.get(f"/api/v1/projects/{pid_ranked}/ranking", headers=auth(requester))
    assert ranking.status_code == 200 and len(ranking.json["items"]) == 4, ranking.json
    assert len(runs(api, requester, pid_ranked)) >= 2
    made = [e for e in results(api, requester, pid_ranked) if e.startswith("active-")]
    assert made, "the active runs created no comparison"
    for pid in (nid, rid, pid_ranked):
        assert {r["status"] for r in runs(api, requester, pid)} == {"succeeded"}
        assert results(api, requester, pid)
        exported = api.get(f"/api/v1/projects/{pid}/export", headers=auth(requester))
        assert exported.status_code == 200
    assert api.get(f"/api/v1/projects/{rid}/review", headers=auth(requester)).status_code == 200
