"""Active pairwise selection end to end (docs/TYPES.md, issue 16): the setting's validation,
and comparisons the service creates after runs of a real RQ worker on real Redis and
PostgreSQL, within the budget, never twice for a retried run."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
from flask.testing import FlaskClient

from crowd.config import Settings
from crowd.store.db import Database
from tests.aggregation.test_live import drain, runs
from tests.conftest import auth
from tests.types.test_type_validation import create, post, project
from tests.types.test_typed_runs import answer_all

SCALE = {"min": 1, "max": 5}
ORDER = ["A", "B", "C", "D", "E", "F"]  # best first


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"labels": ["a", "b"]}, "meaningless_for_type"),
        ({"type": "multilabel", "labels": ["a", "b"]}, "meaningless_for_type"),
        ({"type": "numeric", "scale": SCALE}, "meaningless_for_type"),
    ],
)
def test_active_on_another_type_is_a_422_naming_it(
    client: FlaskClient, requester: str, fields: dict[str, Any], code: str
) -> None:
    r = create(client, requester, active={"budget": 10, "batch": 2}, **fields)
    assert r.status_code == 422 and r.json["error"]["code"] == code, r.json  # type: ignore[index]
    assert r.json["error"]["message"].startswith("active: only pairwise")  # type: ignore[index]


@pytest.mark.parametrize(
    "active",
    [
        True,
        {"batch": 5},
        {"budget": 0},
        {"budget": 10, "batch": 0},
        {"budget": "10"},
        {"budget": 10.5},
        {"budget": 10, "batch": 3, "rounds": 2},
    ],
)
def test_bad_active_values_are_a_422_naming_the_field(
    client: FlaskClient, requester: str, active: Any
) -> None:
    r = create(client, requester, type="pairwise", active=active)
    assert r.status_code == 422, r.json
    assert "active" in r.json["error"]["message"], r.json  # type: ignore[index]


def test_active_is_shown_and_changed_by_patch_on_pairwise_projects_only(
    client: FlaskClient, requester: str
) -> None:
    p = project(client, requester, type="pairwise", active={"budget": 10})
    assert p["active"] == {"budget": 10, "batch": 100}
    assert project(client, requester, type="pairwise")["active"] is None
    url = f"/api/v1/projects/{p['id']}"
    r = client.patch(url, json={"active": {"budget": 20, "batch": 4}}, headers=auth(requester))
    assert r.status_code == 200 and r.json["active"] == {"budget": 20, "batch": 4}  # type: ignore[index]
    r = client.patch(url, json={"active": None}, headers=auth(requester))
    assert r.status_code == 200 and r.json["active"] is None  # type: ignore[index]
    numeric = project(client, requester, type="numeric", scale=SCALE)
    r = client.patch(
        f"/api/v1/projects/{numeric['id']}", json={"active": {"budget": 5}}, headers=auth(requester)
    )
    assert r.status_code == 422 and r.json["error"]["message"].startswith("active")  # type: ignore[index]


def _better(task: dict[str, Any]) -> dict[str, Any]:
    left, right = task["data"]["left"]["id"], task["data"]["right"]["id"]
    return {"winner": "left" if ORDER.index(left) < ORDER.index(right) else "right"}


def _seed(client: FlaskClient, requester: str, pid: int) -> None:
    """A chain A-B, B-C, ... E-F: every item once or twice, the graph connected."""
    tasks = [
        {
            "external_id": f"{a}{b}",
            "left": {"id": a, "data": {"name": a.lower()}},
            "right": {"id": b, "data": {"name": b.lower()}},
        }
        for a, b in pairwise(ORDER)
    ]
    assert post(client, requester, pid, tasks).status_code == 201


def _tasks(database: Database, pid: int) -> list[tuple[str, str, str, int | None]]:
    """``(external_id, left, right, active_run)`` of the project's tasks, by id."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT external_id, data -> 'left' ->> 'id', data -> 'right' ->> 'id', active_run"
            " FROM tasks WHERE project_id = %s ORDER BY id",
            (pid,),
        )
        return list(cur.fetchall())


def _created(client: FlaskClient, requester: str, pid: int) -> list[dict[str, Any]]:
    """The service's comparisons, as the results page lists them."""
    r = client.get(f"/api/v1/projects/{pid}/results?limit=1000", headers=auth(requester))
    assert r.status_code == 200
    return [t for t in r.json["results"] if t["external_id"].startswith("active-")]  # type: ignore[index]


def test_runs_create_comparisons_up_to_the_budget_and_batch(
    client: FlaskClient,
    requester: str,
    make_worker: Callable[..., str],
    settings: Settings,
    database: Database,
) -> None:
    p = project(client, requester, type="pairwise", overlap=1, gold_rate=0,
                active={"budget": 7, "batch": 3})  # fmt: skip
    pid = p["id"]
    _seed(client, requester, pid)
    worker = make_worker(requester)
    answer_all(client, worker, pid, _better)
    drain(settings)

    (first,) = runs(client, requester, pid)
    assert first["status"] == "succeeded", first
    made = [t for t in _tasks(database, pid) if t[3] is not None]
    assert len(made) == 3 and {t[3] for t in made} == {first["id"]}
    assert [t[0] for t in made] == [f"active-{first['id']}-{k}" for k in (1, 2, 3)]
    pairs = [frozenset(t[1:3]) for t in made]
    assert len(set(pairs)) == 3 and all(len(x) == 2 and x <= set(ORDER) for x in pairs)

    # A worker sees them as any pairwise task, each item with its data from the seed.
    r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
    assert r.status_code == 201
    shown = r.json["task"]  # type: ignore[index]
    assert shown["external_id"].startswith("active-")
    for side in ("left", "right"):
        item = shown["data"][side]
        assert item["data"] == {"name": item["id"].lower()}
    client.post(
        f"/api/v1/assignments/{r.json['assignment_id']}/answer",  # type: ignore[index]
        json=_better(shown),
        headers=auth(worker),
    )
    # A run with 2 of the 3 still open only tops them up to the batch: 1 more.
    drain(settings)
    assert len([t for t in _tasks(database, pid) if t[3] is not None]) == 4

    # Answering everything each time: 3 open again (budget 7: 4 + 3), then nothing.
    answer_all(client, worker, pid, _better)
    drain(settings)
    assert len([t for t in _tasks(database, pid) if t[3] is not None]) == 7
    answer_all(client, worker, pid, _better)
    drain(settings)
    active = [t for t in _tasks(database, pid) if t[3] is not None]
    assert len(active) == 7 and len(_tasks(database, pid)) == 5 + 7
    assert all(r["status"] == "succeeded" for r in runs(client, requester, pid))
    assert len(_created(client, requester, pid)) == 7
    assert all(t["run_id"] is not None for t in _created(client, requester, pid))
    # The ranking has every item, in one component, with the comparisons counted.
    ranking = client.get(f"/api/v1/projects/{pid}/ranking", headers=auth(requester)).json
    assert sorted(i["item"] for i in ranking["items"]) == ORDER  # type: ignore[index]
    assert ranking["components"] == 1  # type: ignore[index]
    assert sum(i["comparisons"] for i in ranking["items"]) == 2 * (5 + 7)  # type: ignore[index]

    # A higher budget lets the next run go on.
    r = client.patch(f"/api/v1/projects/{pid}", json={"active": {"budget": 9, "batch": 3}},
                     headers=auth(requester))  # fmt: skip
    assert r.status_code == 200
    again = client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    assert again.status_code == 202
    drain(settings)
    assert len([t for t in _tasks(database, pid) if t[3] is not None]) == 9


def test_a_run_that_fails_after_selecting_creates_nothing_and_its_retry_creates_once(
    client: FlaskClient,
    requester: str,
    make_worker: Callable[..., str],
    settings: Settings,
    database: Database,
) -> None:
    p = project(client, requester, type="pairwise", overlap=1, gold_rate=0,
                active={"budget": 50, "batch": 4})  # fmt: skip
    pid = p["id"]
    _seed(client, requester, pid)
    answer_all(client, make_worker(requester), pid, _better)
    # A real fault in the run's publish transaction, after its comparisons were inserted:
    # PostgreSQL refuses the budget counter's update for this project.
    with database.transaction() as cur:
        cur.execute(
            f"""
            CREATE FUNCTION refuse_active_{pid}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'injected fault'; END $$;
            CREATE TRIGGER refuse_active_{pid} BEFORE UPDATE OF active_created ON projects
                FOR EACH ROW WHEN (NEW.id = {pid}) EXECUTE FUNCTION refuse_active_{pid}();
            """
        )
    try:
        drain(settings)
    finally:
        with database.transaction() as cur:
            cur.execute(f"DROP TRIGGER refuse_active_{pid} ON projects")
            cur.execute(f"DROP FUNCTION refuse_active_{pid}()")
    (failed,) = runs(client, requester, pid)
    assert failed["status"] == "failed" and "injected fault" in failed["error"]
    assert [t for t in _tasks(database, pid) if t[3] is not None] == []
    assert (
        client.get(f"/api/v1/projects/{pid}/results", headers=auth(requester)).json[  # type: ignore[index]
            "last_run_id"
        ]
        is None
    )

    # The retry creates the batch once; a further run with all of it open creates nothing.
    for _ in range(2):
        r = client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
        assert r.status_code == 202, r.json
        drain(settings)
    history = runs(client, requester, pid)
    assert [r["status"] for r in history] == ["failed", "succeeded", "succeeded"]
    made = [t for t in _tasks(database, pid) if t[3] is not None]
    assert len(made) == 4 and {t[3] for t in made} == {history[1]["id"]}
    with database.transaction() as cur:
        cur.execute("SELECT active_created FROM projects WHERE id = %s", (pid,))
        assert cur.fetchone() == (4,)
