"""Aggregation that knows who saw what, end to end: requester models vote, review answers
are their own evidence. Real PostgreSQL, Redis and an RQ worker.

Review answers are written the way the review lane records them (an answered assignment with
the proposal shown), straight into the table: the lane itself is not what is tested here.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from flask.testing import FlaskClient

from crowd.config import Settings
from crowd.store.db import Database
from tests.aggregation.test_live import drain, post_tasks, results, runs
from tests.conftest import auth

pytestmark = pytest.mark.usefixtures("clean")


def _ids(database: Database, pid: int, names: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """``({external_id: task id}, {worker name: worker id})``."""
    with database.transaction() as cur:
        cur.execute("SELECT external_id, id FROM tasks WHERE project_id = %s", (pid,))
        tasks = dict(cur.fetchall())
        cur.execute("SELECT name, id FROM accounts WHERE name = ANY (%s)", (names,))
        workers = dict(cur.fetchall())
    return tasks, workers


def _answer(
    database: Database,
    pid: int,
    answers: list[tuple[int, int, int, int | None]],
) -> None:
    """Store answered assignments ``(task id, worker id, label, proposal or None)``, and the
    tasks' answer counts, as answering through the API would."""
    with database.transaction() as cur:
        for task_id, worker_id, label, proposal in answers:
            cur.execute(
                "INSERT INTO assignments (project_id, task_id, worker_id, status, label,"
                " expires_at, answered_at, proposal)"
                " VALUES (%s, %s, %s, 'answered', %s, now(), now(), %s)",
                (pid, task_id, worker_id, label, proposal),
            )
            cur.execute(
                "UPDATE tasks SET answers = answers + 1, taken = taken + 1,"
                " target = greatest(target, taken + 1) WHERE id = %s",
                (task_id,),
            )


def _run(client: FlaskClient, token: str, pid: int, settings: Settings) -> dict[str, Any]:
    r = client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(token))
    assert r.status_code == 202, r.json
    drain(settings)
    last = runs(client, token, pid)[-1]
    assert last["status"] == "succeeded", last
    return last


def _predict(client: FlaskClient, token: str, pid: int, model: str, labels: dict[str, str]) -> None:
    r = client.post(
        f"/api/v1/projects/{pid}/predictions",
        json={
            "model": model,
            "predictions": [
                {"external_id": t, "label": label, "confidence": 0.9} for t, label in labels.items()
            ],
        },
        headers=auth(token),
    )
    assert r.status_code == 201, r.json


def _log_odds(result: dict[str, Any]) -> float:
    p = min(result["confidence"], 1 - 1e-9)
    return math.log(p / (1 - p))


def _workers(client: FlaskClient, token: str, pid: int) -> dict[str, dict[str, Any]]:
    r = client.get(f"/api/v1/projects/{pid}/workers?limit=1000", headers=auth(token))
    assert r.status_code == 200, r.json
    return {w["name"]: w for w in r.json["workers"]}  # type: ignore[index]


def test_a_model_wrong_on_one_class_is_outvoted_there_and_gold_anchors_its_matrix(
    client, requester, make_worker, make_project, settings, database
) -> None:
    """One person per task and a model that says "a" on every task: where they disagree the
    model's own confusion matrix, learnt on gold it predicted, says its "a" means nothing."""
    pid = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=0.0, method="ds")["id"]
    truth = {f"t{i}": "ab"[i % 2] for i in range(20)}
    gold = {f"g{i}": "ab"[i % 2] for i in range(10)}
    post_tasks(client, requester, pid, [{"external_id": t} for t in truth])
    post_tasks(client, requester, pid, [{"external_id": g, "gold": y} for g, y in gold.items()])
    for name in ("w0", "w1"):
        make_worker(requester, name)
    tasks, workers = _ids(database, pid, ["w0", "w1"])
    # One answer per task, always right: on the "b" tasks it is one against the model.
    answers = [
        (tasks[t], workers["w0" if i < 10 else "w1"], "ab".index(y), None)
        for i, (t, y) in enumerate(truth.items())
    ]
    _answer(database, pid, answers)
    _predict(client, requester, pid, "always-a", dict.fromkeys([*truth, *gold], "a"))

    run = _run(client, requester, pid, settings)

    got = results(client, requester, pid)
    assert {t: r["label"] for t, r in got.items()} == truth  # outvoted on every "b" task
    (voter,) = run["voters"]
    assert voter["model"] == "always-a" and voter["predictions"] == 30
    assert voter["gold_predictions"] == 10 and voter["gold_correct"] == 5
    confusion_b = voter["confusion"][1]  # true "b": it says "a"
    assert confusion_b[0] > 0.99 and voter["confusion"][0][0] > 0.99
    assert 0.4 < voter["accuracy"] < 0.6
    # The model is not a worker anywhere people see workers.
    assert run["workers"] == 2 and set(_workers(client, requester, pid)) == {"w0", "w1"}


def test_a_reliable_model_raises_confidence(
    client, requester, make_worker, make_project, settings, database
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=2, gold_rate=0.0, method="ds")["id"]
    truth = {f"t{i}": "ab"[i % 2] for i in range(30)}
    gold = {f"g{i}": "ab"[i % 2] for i in range(10)}
    post_tasks(client, requester, pid, [{"external_id": t} for t in truth])
    post_tasks(client, requester, pid, [{"external_id": g, "gold": y} for g, y in gold.items()])
    names = ["w0", "w1", "w2"]
    for name in names:
        make_worker(requester, name)
    tasks, workers = _ids(database, pid, names)
    answers = []
    for i, (t, y) in enumerate(truth.items()):
        for j in range(2):
            name = names[(i + j) % 3]
            wrong = i % 6 == j  # each task's answerers err now and then, never both at once
            label = "ab".index(y) ^ int(wrong)
            answers.append((tasks[t], workers[name], label, None))
    _answer(database, pid, answers)
    _run(client, requester, pid, settings)
    before = results(client, requester, pid)

    _predict(client, requester, pid, "reliable", {**truth, **gold})
    run = _run(client, requester, pid, settings)

    after = results(client, requester, pid)
    assert {t: r["label"] for t, r in after.items()} == truth
    assert run["voters"][0]["accuracy"] > 0.95
    # Every task is at least as sure, and the split votes (one wrong answer) much surer.
    assert all(after[t]["confidence"] >= before[t]["confidence"] - 1e-6 for t in truth)
    split = [t for i, t in enumerate(truth) if i % 6 < 2]
    assert all(after[t]["confidence"] > 0.9 > before[t]["confidence"] for t in split)


def test_stampers_confirmations_do_not_lift_confidence_the_way_independent_answers_do(
    client, requester, make_worker, make_project, settings, database
) -> None:
    """Three stampers confirm every proposal, wrong ones included; three honest reviewers
    correct the wrong ones. Then on tasks with one blind answer "a": the stampers'
    confirmations of "a" add little, and their confirmations of "b" do not outvote it."""
    pid = make_project(requester, labels=["a", "b"], overlap=3, gold_rate=0.0, method="ds")["id"]
    truth = {f"t{i}": "ab"[i % 2] for i in range(30)}
    probes = {"wrong": "a", "stamped": "a", "reviewed": "a", "alone": "a"}
    post_tasks(client, requester, pid, [{"external_id": t} for t in [*truth, *probes]])
    blind, stampers, honest = ["h0", "h1", "h2"], ["s0", "s1", "s2"], ["r0", "r1", "r2"]
    for name in blind + stampers + honest:
        make_worker(requester, name)
    tasks, workers = _ids(database, pid, blind + stampers + honest)
    answers: list[tuple[int, int, int, int | None]] = []
    for i, (t, y) in enumerate(truth.items()):
        right = "ab".index(y)
        proposal = right ^ int(i % 4 == 3)  # the model is wrong on a quarter of the tasks
        for j, name in enumerate(blind):
            answers.append((tasks[t], workers[name], right ^ int(i % 5 == j), None))
        answers += [(tasks[t], workers[name], proposal, proposal) for name in stampers]
        answers += [(tasks[t], workers[name], right, proposal) for name in honest]
    h0 = workers["h0"]
    answers += [(tasks[p], h0, 0, None) for p in probes]
    answers += [(tasks["wrong"], workers[name], 1, 1) for name in stampers]
    answers += [(tasks["stamped"], workers[name], 0, 0) for name in stampers]
    answers += [(tasks["reviewed"], workers[name], 0, 0) for name in honest]
    _answer(database, pid, answers)

    _run(client, requester, pid, settings)

    got = results(client, requester, pid)
    assert {t: got[t]["label"] for t in truth} == truth
    assert got["wrong"]["label"] == "a"  # three stamps of "b" do not outvote one "a"
    # Evidence added to the lone answer, in log-odds: three stamps add a fraction of what three
    # honest confirmations add.
    lift = {p: _log_odds(got[p]) - _log_odds(got["alone"]) for p in ("stamped", "reviewed")}
    assert lift["reviewed"] > 3 and 0 < lift["stamped"] < lift["reviewed"] / 4
    listed = _workers(client, requester, pid)
    assert all(listed[s]["stamp_rate"] > 0.5 for s in stampers)
    assert all(listed[r]["stamp_rate"] < 0.2 for r in honest)
    assert all(listed[b]["stamp_rate"] is None for b in blind)

    # The same answers counted as blind votes (plain Dawid-Skene): the stamps now win.
    with database.transaction() as cur:
        cur.execute("UPDATE assignments SET proposal = NULL WHERE project_id = %s", (pid,))
    _run(client, requester, pid, settings)
    plain = results(client, requester, pid)
    assert plain["wrong"]["label"] == "b"
    assert _log_odds(plain["stamped"]) - _log_odds(plain["alone"]) > 3 * lift["stamped"]
