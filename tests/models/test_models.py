"""Models end to end: retrains run by a real RQ worker on real Redis and PostgreSQL, versions,
predictions, uncertainty ordering, auto-labelling and export."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
from flask.testing import FlaskClient

from crowd.store.db import Database
from tests.aggregation.test_live import drain, post_tasks
from tests.conftest import auth

FEATURES = {"input": "features", "field": "x"}


def _truth(x: float) -> str:
    return "pos" if x > 0 else "neg"


def _tasks(n: int, seed: int, prefix: str = "t", gold: bool = False) -> list[dict[str, Any]]:
    """Tasks whose label is the sign of their first feature (the second is noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (x, y) in enumerate(rng.uniform(-1, 1, size=(n, 2)).tolist()):
        task: dict[str, Any] = {"external_id": f"{prefix}{i}", "data": {"x": [x, y]}}
        if gold:
            task["gold"] = _truth(x)
        out.append(task)
    return out


def _answer(client: FlaskClient, worker: str, pid: int, n: int) -> list[str]:
    """The worker fetches and truthfully answers ``n`` tasks; returns their external ids."""
    seen = []
    for _ in range(n):
        r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
        assert r.status_code == 201, (r.status_code, r.json)
        task = r.json["task"]  # type: ignore[index]
        label = _truth(task["data"]["x"][0]) if "x" in task["data"] else "neg"
        a = client.post(
            f"/api/v1/assignments/{r.json['assignment_id']}/answer",  # type: ignore[index]
            json={"label": label},
            headers=auth(worker),
        )
        assert a.status_code == 201, a.json
        seen.append(task["external_id"])
    return seen


def _versions(client: FlaskClient, token: str, pid: int) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/projects/{pid}/models", headers=auth(token))
    assert r.status_code == 200, r.json
    return list(r.json["models"])  # type: ignore[index]


def _project(client: FlaskClient, make_project: Any, token: str, **fields: Any) -> int:
    spec = {"labels": ["neg", "pos"], "overlap": 1, "gold_rate": 0.0, "model": FEATURES}
    return int(make_project(token, **{**spec, **fields})["id"])


def test_a_retrain_follows_retrain_every_complete_tasks_and_predicts_every_task(
    client, requester, make_worker, make_project, settings
) -> None:
    pid = _project(client, make_project, requester, retrain_every=15)
    post_tasks(client, requester, pid, _tasks(40, seed=1))
    post_tasks(client, requester, pid, [{"external_id": "nofield", "data": {"y": 1}}])
    post_tasks(client, requester, pid, _tasks(30, seed=2, prefix="g", gold=True))
    worker = make_worker(requester)
    _answer(client, worker, pid, 10)
    drain(settings)
    assert _versions(client, requester, pid) == []  # 10 complete tasks: not yet due

    _answer(client, worker, pid, 10)
    drain(settings)
    (version,) = _versions(client, requester, pid)
    runs = client.get(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester)).json
    assert version["status"] == "succeeded", version["error"]
    assert version["trigger"] == "tasks" and version["error"] is None
    assert version["run_id"] == runs["aggregations"][0]["id"]  # type: ignore[index]
    assert version["trained_tasks"] + version["skipped_tasks"] == 20
    assert version["metrics"]["gold_tasks"] == 30
    assert version["metrics"]["gold_accuracy"] >= 0.8
    assert 0 < version["metrics"]["gold_log_loss"] < 0.69
    assert version["predicted_tasks"] == 70  # every task that has the field, gold included
    assert version["finished_at"] >= version["created_at"]

    results = client.get(f"/api/v1/projects/{pid}/results?limit=1000", headers=auth(requester))
    by_id = {r["external_id"]: r for r in results.json["results"]}  # type: ignore[index]
    assert by_id["nofield"]["model_label"] is None
    predicted = [r for k, r in by_id.items() if k != "nofield"]
    assert all(r["model_label"] in ("neg", "pos") for r in predicted)
    assert all(0.5 <= r["model_confidence"] <= 1 for r in predicted)
    assert all(r["label_source"] == "crowd" for r in by_id.values())
    truth = {t["external_id"]: _truth(t["data"]["x"][0]) for t in _tasks(40, seed=1)}
    right = sum(by_id[k]["model_label"] == label for k, label in truth.items())
    assert right >= 32


def test_post_queues_a_version_once_and_needs_model_settings(
    client, requester, make_worker, make_project, settings
) -> None:
    bare = make_project(requester, labels=["neg", "pos"])["id"]
    r = client.post(f"/api/v1/projects/{bare}/models", headers=auth(requester))
    assert r.status_code == 409 and "PATCH" in r.json["error"]["message"]  # type: ignore[index]

    pid = _project(client, make_project, requester, retrain_every=1000)
    post_tasks(client, requester, pid, _tasks(20, seed=3))
    _answer(client, make_worker(requester), pid, 12)
    drain(settings)
    first = client.post(f"/api/v1/projects/{pid}/models", headers=auth(requester))
    assert first.status_code == 202 and first.json["model"]["status"] == "queued"  # type: ignore[index]
    again = client.post(f"/api/v1/projects/{pid}/models", headers=auth(requester))
    assert again.status_code == 202 and again.json["model"] is None  # type: ignore[index]
    drain(settings)
    (version,) = _versions(client, requester, pid)
    assert version["status"] == "succeeded" and version["trigger"] == "api"
    assert version["metrics"] == {"gold_accuracy": None, "gold_log_loss": None, "gold_tasks": 0}
    page = client.get(f"/api/v1/projects/{pid}/models?limit=0", headers=auth(requester))
    assert page.status_code == 400


def test_a_failed_training_is_recorded_with_its_error_and_aggregation_goes_on(
    client, requester, make_worker, make_project, settings
) -> None:
    pid = _project(client, make_project, requester, retrain_every=5)
    post_tasks(client, requester, pid, _tasks(20, seed=4))
    # every answer says "neg": a classifier cannot be trained on one label
    worker = make_worker(requester)
    for _ in range(6):
        r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
        client.post(
            f"/api/v1/assignments/{r.json['assignment_id']}/answer",  # type: ignore[index]
            json={"label": "neg"},
            headers=auth(worker),
        )
    drain(settings)
    (version,) = _versions(client, requester, pid)
    assert version["status"] == "failed" and "at least two labels" in version["error"]
    runs = client.get(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester)).json
    assert [r["status"] for r in runs["aggregations"]] == ["succeeded"]  # type: ignore[index]


def test_uncertainty_order_hands_out_the_least_sure_tasks_first(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    pid = _project(client, make_project, requester, retrain_every=20, overlap=3)
    post_tasks(client, requester, pid, _tasks(80, seed=5))
    workers = [make_worker(requester, f"w{i}") for i in range(3)]
    for worker in workers:
        _answer(client, worker, pid, 20)
    drain(settings)
    assert _versions(client, requester, pid)[0]["status"] == "succeeded"
    r = client.patch(
        f"/api/v1/projects/{pid}",
        json={"order": "uncertainty", "random_share": 0.0},
        headers=auth(requester),
    )
    assert r.status_code == 200 and r.json["order"] == "uncertainty"  # type: ignore[index]

    with database.transaction() as cur:
        cur.execute(
            "SELECT external_id, model_margin FROM tasks WHERE project_id = %s AND answers = 0",
            (pid,),
        )
        margin = dict(cur.fetchall())
    fetched = _answer(client, make_worker(requester, "w3"), pid, 10)
    assert [margin[t] for t in fetched] == sorted(margin.values())[:10]

    # the random share still serves every open task, whatever the draws
    client.patch(f"/api/v1/projects/{pid}", json={"random_share": 1.0}, headers=auth(requester))
    late = make_worker(requester, "w4")
    served = _answer(client, late, pid, 60)
    assert len(set(served)) == 60
    assert client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(late)).status_code == 204


def test_auto_labels_close_confident_tasks_and_meet_the_target_on_held_out_gold(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    pid = _project(client, make_project, requester, retrain_every=40, auto_label_accuracy=0.9)
    regular = _tasks(300, seed=6)
    post_tasks(client, requester, pid, regular)
    post_tasks(client, requester, pid, _tasks(120, seed=7, prefix="g", gold=True))
    _answer(client, make_worker(requester), pid, 40)
    drain(settings)
    (version,) = _versions(client, requester, pid)
    assert version["status"] == "succeeded", version["error"]
    assert version["auto_label_threshold"] is not None and version["auto_labelled"] > 50

    results = client.get(f"/api/v1/projects/{pid}/results?limit=1000", headers=auth(requester))
    auto = [r for r in results.json["results"] if r["label_source"] == "model"]  # type: ignore[index]
    assert len(auto) == version["auto_labelled"]
    assert all(r["status"] == "complete" and r["answers"] == 0 for r in auto)
    assert all(r["confidence"] >= version["auto_label_threshold"] - 1e-6 for r in auto)
    # held-out: these tasks were neither trained on nor calibrated on
    truth = {t["external_id"]: _truth(t["data"]["x"][0]) for t in regular}
    assert np.mean([r["label"] == truth[r["external_id"]] for r in auto]) >= 0.9
    # closed tasks are not handed out any more
    auto_ids = {r["external_id"] for r in auto}
    served = _answer(client, make_worker(requester, "late"), pid, 300 - 40 - len(auto))
    assert not auto_ids & set(served)


def test_export_streams_every_task_with_labels_and_model_fields(
    client, requester, make_worker, make_project, settings
) -> None:
    pid = _project(client, make_project, requester, retrain_every=10)
    post_tasks(client, requester, pid, _tasks(25, seed=8))
    post_tasks(client, requester, pid, _tasks(5, seed=9, prefix="g", gold=True))
    worker = make_worker(requester)
    answered = set(_answer(client, worker, pid, 12))
    drain(settings)
    (unaggregated,) = _answer(client, worker, pid, 1)  # answered, and no run has covered it yet

    r = client.get(f"/api/v1/projects/{pid}/export", headers=auth(requester))
    assert r.status_code == 200 and r.mimetype == "application/x-ndjson"
    rows = [json.loads(line) for line in r.get_data(as_text=True).splitlines()]
    assert [row["task_id"] for row in rows] == sorted(row["task_id"] for row in rows)
    assert len(rows) == 30
    by_id = {row["external_id"]: row for row in rows}
    for external_id, row in by_id.items():
        assert row["model_label"] in ("neg", "pos") and 0.5 <= row["model_confidence"] <= 1
        if external_id in answered:
            assert row["label_source"] == "crowd" and row["answers"] == 1
            assert row["status"] == "complete" and row["label"] in ("neg", "pos")
        elif external_id.startswith("g"):  # gold: its known answer is its label
            assert row["label_source"] == "gold" and row["label"] == row["gold"]
            assert row["gold"] in ("neg", "pos") and row["status"] == "complete"
            assert row["confidence"] is None
        else:  # no label yet: says so, rather than a complete task with a null label
            assert row["label"] is None and row["label_source"] is None
            assert row["confidence"] is None and row["status"] == "pending"
            assert row["answers"] == (1 if external_id == unaggregated else 0)
    assert by_id["t0"]["gold"] is None

    r = client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=auth(requester))
    assert r.status_code == 200 and r.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["external_id"] for row in table] == [row["external_id"] for row in rows]
    assert {row["label"] for row in table if row["external_id"] in answered} <= {"neg", "pos"}

    assert (
        client.get(f"/api/v1/projects/{pid}/export?format=xml", headers=auth(requester)).status_code
        == 400
    )
    worker = make_worker(requester, "nosy")
    assert client.get(f"/api/v1/projects/{pid}/export", headers=auth(worker)).status_code == 403


def test_model_settings_are_validated_and_null_turns_the_model_off(
    client, requester, make_project
) -> None:
    bad = client.post(
        "/api/v1/projects",
        json={"name": "p", "labels": ["a", "b"], "model": {"input": "image", "field": "x"}},
        headers=auth(requester),
    )
    assert bad.status_code == 422 and "model.input" in bad.json["error"]["message"]  # type: ignore[index]
    pid = _project(client, make_project, requester)
    for body in ({"order": "random"}, {"random_share": 1.5}, {"retrain_every": 0}):
        r = client.patch(f"/api/v1/projects/{pid}", json=body, headers=auth(requester))
        assert r.status_code == 422, body
    r = client.patch(f"/api/v1/projects/{pid}", json={"model": None}, headers=auth(requester))
    assert r.status_code == 200 and r.json["model"] is None  # type: ignore[index]
    r = client.patch(
        f"/api/v1/projects/{pid}",
        json={"model": {"input": "text", "field": "body"}, "auto_label_accuracy": 0.95},
        headers=auth(requester),
    )
    assert r.json["model"] == {"input": "text", "field": "body"}  # type: ignore[index]
    assert r.json["auto_label_accuracy"] == 0.95  # type: ignore[index]
