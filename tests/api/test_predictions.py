"""Predictions from any model: the POST, inline predictions in a task batch, what results and
export show, and the corrections listing (issue 12)."""

from __future__ import annotations

import csv
import io
import json
import threading
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, drain, post_tasks, results
from tests.conftest import auth


def _post(client: FlaskClient, token: str, pid: int, body: Any) -> Any:
    return client.post(f"/api/v1/projects/{pid}/predictions", json=body, headers=auth(token))


def _stored(database: Database) -> list[tuple[Any, ...]]:
    """Every stored prediction: ``(external_id, model, label, confidence, probabilities)``."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT t.external_id, p.model, p.label, p.confidence, p.probabilities"
            " FROM predictions p JOIN tasks t ON t.id = p.task_id ORDER BY p.id"
        )
        return list(cur.fetchall())


def _project(client: FlaskClient, make_project: Any, token: str, n: int = 4, **fields: Any) -> int:
    spec = {"labels": ["pos", "neg", "neu"], "overlap": 1, "gold_rate": 0.0, **fields}
    pid = int(make_project(token, **spec)["id"])
    post_tasks(client, token, pid, [{"external_id": f"r{i}"} for i in range(n)])
    return pid


def test_predictions_name_tasks_either_way_and_give_confidence_or_probabilities(
    client, requester, make_project, database
) -> None:
    pid = _project(client, make_project, requester)
    r1_id = results(client, requester, pid)["r1"]["task_id"]
    r = _post(
        client,
        requester,
        pid,
        {
            "model": "resnet@2026-12-01",
            "predictions": [
                {"external_id": "r0", "label": "pos", "confidence": 0.93},
                {"task_id": r1_id, "probabilities": {"neg": 0.7, "pos": 0.2, "neu": 0.1}},
                # A label with probabilities: its confidence is its probability; labels left
                # out count as 0.
                {"external_id": "r2", "label": "neu", "probabilities": {"pos": 0.6, "neu": 0.4}},
            ],
        },
    )
    assert r.status_code == 201, r.json
    assert r.json == {"model": "resnet@2026-12-01", "created": 3, "existing": 0}
    stored = {row[0]: row[1:] for row in _stored(database)}
    assert stored["r0"] == ("resnet@2026-12-01", 0, pytest.approx(0.93), None)
    assert stored["r1"][1:3] == (1, pytest.approx(0.7))  # the argmax of the probabilities
    assert stored["r1"][3] == pytest.approx([0.2, 0.7, 0.1])  # in the project's label order
    assert stored["r2"][1:] == (2, pytest.approx(0.4), pytest.approx([0.6, 0.0, 0.4]))

    shown = results(client, requester, pid)
    assert shown["r0"]["prediction"] == {
        "model": "resnet@2026-12-01",
        "label": "pos",
        "confidence": 0.93,
    }
    assert shown["r1"]["prediction"]["label"] == "neg"
    assert shown["r3"]["prediction"] is None


def test_a_repeat_changes_nothing_and_another_label_is_a_409_that_stores_nothing(
    client, requester, make_project, database
) -> None:
    pid = _project(client, make_project, requester)
    first = {
        "model": "m",
        "predictions": [{"external_id": "r0", "label": "pos", "confidence": 0.9}],
    }
    assert _post(client, requester, pid, first).status_code == 201
    # The same label again, with another confidence: nothing changes.
    again = {
        "model": "m",
        "predictions": [{"external_id": "r0", "label": "pos", "confidence": 0.5}],
    }
    r = _post(client, requester, pid, again)
    assert r.status_code == 201 and r.json == {"model": "m", "created": 0, "existing": 1}
    assert [row[3] for row in _stored(database)] == [pytest.approx(0.9)]

    # Another label for the pair is a 409, and the request's new prediction is not kept.
    clash = {
        "model": "m",
        "predictions": [
            {"external_id": "r1", "label": "neg", "confidence": 0.8},
            {"external_id": "r0", "label": "neg", "confidence": 0.8},
        ],
    }
    r = _post(client, requester, pid, clash)
    assert r.status_code == 409 and r.json["error"]["code"] == "prediction_conflict"
    message = r.json["error"]["message"]
    assert message.startswith("predictions.1.label:") and "'pos'" in message
    assert "new name" in message
    assert [row[0] for row in _stored(database)] == ["r0"]
    # Another model may say something else of the same task.
    other = {"model": "m2", "predictions": [{"external_id": "r0", "label": "neg", "confidence": 1}]}
    assert _post(client, requester, pid, other).status_code == 201


def _one(**item: Any) -> dict[str, Any]:
    return {"model": "m", "predictions": [{"external_id": "r0", "label": "pos", **item}]}


BAD = {
    "unknown label": (_one(label="maybe", confidence=0.5), "predictions.0.label"),
    "unknown external_id": (_one(external_id="nope", confidence=0.5), "predictions.0.external_id"),
    "unknown task_id": (
        {"model": "m", "predictions": [{"task_id": 999999999, "label": "pos", "confidence": 0.5}]},
        "predictions.0.task_id",
    ),
    "confidence above 1": (_one(confidence=1.01), "predictions.0.confidence"),
    "confidence below 0": (_one(confidence=-0.1), "predictions.0.confidence"),
    "confidence not a number": (_one(confidence="0.5"), "predictions.0.confidence"),
    "probabilities summing to 0.9": (
        _one(probabilities={"pos": 0.5, "neg": 0.4}),
        "predictions.0.probabilities",
    ),
    "probabilities off by 2e-6": (
        _one(probabilities={"pos": 0.500002, "neg": 0.5}),
        "predictions.0.probabilities",
    ),
    "a probability of an unknown label": (
        _one(probabilities={"pos": 0.5, "maybe": 0.5}),
        "predictions.0.probabilities",
    ),
    "a probability above 1": (
        _one(probabilities={"pos": 1.5, "neg": -0.5}),
        "predictions.0.probabilities",
    ),
    "both confidence and probabilities": (
        _one(confidence=0.5, probabilities={"pos": 1.0}),
        "predictions.0: send confidence or probabilities",
    ),
    "neither confidence nor probabilities": (_one(), "predictions.0.confidence"),
    "no label with a confidence": (
        {"model": "m", "predictions": [{"external_id": "r0", "confidence": 0.5}]},
        "predictions.0.label",
    ),
    "no task": (
        {"model": "m", "predictions": [{"label": "pos", "confidence": 0.5}]},
        "predictions.0: name the task",
    ),
    "both task names": (_one(task_id=1, confidence=0.5), "predictions.0: name the task"),
    "the same task twice": (
        {
            "model": "m",
            "predictions": [
                {"external_id": "r0", "label": "pos", "confidence": 0.5},
                {"external_id": "r0", "label": "pos", "confidence": 0.5},
            ],
        },
        "predictions.1: the same task as predictions.0",
    ),
    "an empty model name": ({**_one(confidence=0.5), "model": ""}, "model"),
    "a blank model name": ({**_one(confidence=0.5), "model": "   "}, "model"),
    "a model name over 100 characters": ({**_one(confidence=0.5), "model": "m" * 101}, "model"),
    "the built-in model's name": ({**_one(confidence=0.5), "model": "builtin:7"}, "model"),
    "no predictions": ({"model": "m", "predictions": []}, "predictions"),
    "over 10,000 predictions": (
        {
            "model": "m",
            "predictions": [
                {"external_id": f"r{i}", "label": "pos", "confidence": 0.5} for i in range(10_001)
            ],
        },
        "predictions: List should have at most 10000 items",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_each_bad_value_is_a_422_naming_its_field_and_nothing_is_stored(
    client, requester, make_project, database, case
) -> None:
    pid = _project(client, make_project, requester)
    spec, field = BAD[case]
    good = {"external_id": "r3", "label": "neu", "confidence": 0.6}
    # Beside a good prediction, except where the case is an empty list.
    body = {**spec, "predictions": [*spec["predictions"], good]} if spec["predictions"] else spec
    r = _post(client, requester, pid, body)
    assert r.status_code == 422, (r.status_code, r.json)
    assert r.json["error"]["message"].startswith(field), r.json
    assert _stored(database) == []  # not even the good prediction beside it


def test_one_422_lists_several_bad_values(client, requester, make_project) -> None:
    pid = _project(client, make_project, requester)
    body = {
        "model": "m",
        "predictions": [
            {"external_id": "r0", "label": "maybe", "confidence": 0.5},
            {"external_id": "r1", "probabilities": {"pos": 0.2}},
            {"external_id": "missing", "label": "pos", "confidence": 0.5},
        ],
    }
    message = _post(client, requester, pid, body).json["error"]["message"]
    assert "predictions.0.label" in message and "predictions.1.probabilities" in message


def test_a_task_batch_carries_each_tasks_prediction_inline(
    client, requester, make_project, database
) -> None:
    pid = int(make_project(requester, labels=["pos", "neg"], overlap=1)["id"])
    batch = {
        "tasks": [
            {
                "external_id": "a",
                "data": {"text": "great"},
                "prediction": {"model": "llm", "label": "pos", "confidence": 0.8},
            },
            {"external_id": "b", "prediction": {"model": "llm", "probabilities": {"neg": 1.0}}},
            {"external_id": "c"},
        ]
    }
    url = f"/api/v1/projects/{pid}/tasks"
    r = client.post(url, json=batch, headers=auth(requester))
    assert r.status_code == 201, r.json
    assert r.json == {"created": 3, "existing": 0, "predictions": {"created": 2, "existing": 0}}
    # The same batch again (a retry) creates nothing.
    r = client.post(url, json=batch, headers=auth(requester))
    assert r.json == {"created": 0, "existing": 3, "predictions": {"created": 0, "existing": 2}}
    assert [(row[0], row[1], row[2]) for row in _stored(database)] == [
        ("a", "llm", 0),
        ("b", "llm", 1),
    ]
    assert results(client, requester, pid)["b"]["prediction"] == {
        "model": "llm",
        "label": "neg",
        "confidence": 1.0,
    }

    # A bad inline prediction is a 422 naming it; another label for a stored pair a 409.
    # Either way not even the batch's new task is stored.
    bad = {"tasks": [{"external_id": "d"}, {**batch["tasks"][0], "prediction": {"model": "llm"}}]}
    r = client.post(url, json=bad, headers=auth(requester))
    assert r.status_code == 422
    assert r.json["error"]["message"].startswith("tasks.1.prediction.confidence")
    clash = {
        "tasks": [
            {"external_id": "d"},
            {**batch["tasks"][0], "prediction": {"model": "llm", "label": "neg", "confidence": 1}},
        ]
    }
    r = client.post(url, json=clash, headers=auth(requester))
    assert r.status_code == 409
    assert r.json["error"]["message"].startswith("tasks.1.prediction.label")
    with database.transaction() as cur:
        cur.execute("SELECT count(*) FROM tasks WHERE external_id = 'd'")
        assert cur.fetchone() == (0,)


def test_results_and_export_show_the_newest_prediction_and_whether_people_corrected_it(
    client, requester, make_project, make_worker, settings
) -> None:
    pid = _project(client, make_project, requester)
    for model, label in (("old", "neg"), ("new", "pos")):
        body = {
            "model": model,
            "predictions": [
                {"external_id": f"r{i}", "label": label, "confidence": 0.7} for i in range(2)
            ],
        }
        assert _post(client, requester, pid, body).status_code == 201
    worker = make_worker(requester)
    truth = {"r0": "pos", "r1": "neg", "r2": "neu", "r3": "neu"}
    for _ in range(3):
        answer_next(client, worker, pid, truth.__getitem__)
    drain(settings)

    shown = results(client, requester, pid)
    assert shown["r0"]["prediction"]["model"] == "new"  # the newest, not the first
    r = client.get(f"/api/v1/projects/{pid}/export", headers=auth(requester))
    rows = {
        row["external_id"]: row for row in map(json.loads, r.get_data(as_text=True).splitlines())
    }
    answered = {e for e in truth if shown[e]["answers"]}
    for external_id, row in rows.items():
        if external_id in ("r0", "r1"):
            assert row["prediction_model"] == "new" and row["prediction_label"] == "pos"
            assert row["prediction_confidence"] == 0.7
        else:
            assert row["prediction_label"] is None
        if external_id in ("r0", "r1") and external_id in answered:
            assert row["corrected"] == (truth[external_id] != "pos")
        else:  # no label or no prediction: nothing to compare
            assert row["corrected"] is None
    table = list(
        csv.DictReader(
            io.StringIO(
                client.get(
                    f"/api/v1/projects/{pid}/export?format=csv", headers=auth(requester)
                ).get_data(as_text=True)
            )
        )
    )
    assert {"prediction_label", "corrected"} <= set(table[0])


def test_corrections_list_where_the_label_differs_from_one_models_prediction(
    client, requester, make_project, make_worker, settings
) -> None:
    pid = _project(client, make_project, requester, n=6)
    post_tasks(client, requester, pid, [{"external_id": "g", "gold": "neu"}])
    truth = {f"r{i}": ("pos", "neg", "neu")[i % 3] for i in range(6)}
    body = {
        "model": "m",
        "predictions": [
            *({"external_id": e, "label": "pos", "confidence": 0.6} for e in truth),
            {"external_id": "g", "label": "pos", "confidence": 0.9},
        ],
    }
    assert _post(client, requester, pid, body).status_code == 201
    other = {"model": "x", "predictions": [{"external_id": "r1", "label": "neg", "confidence": 1}]}
    assert _post(client, requester, pid, other).status_code == 201
    worker = make_worker(requester)
    for _ in range(6):
        answer_next(client, worker, pid, lambda e: truth.get(e, "neu"))
    drain(settings)

    def page(query: str) -> Any:
        r = client.get(f"/api/v1/projects/{pid}/corrections?{query}", headers=auth(requester))
        assert r.status_code == 200, r.json
        return r.json

    walked, cursor = [], ""
    while True:
        got = page(f"model=m&limit=2&cursor={cursor}")
        assert got["model"] == "m"
        walked += got["corrections"]
        cursor = got["next_cursor"]
        if cursor is None:
            break
    wrong = sorted(e for e, label in truth.items() if label != "pos")
    by_id = {c["external_id"]: c for c in walked}
    assert sorted(by_id) == sorted([*wrong, "g"])
    assert [c["task_id"] for c in walked] == sorted(c["task_id"] for c in walked)
    r1 = by_id["r1"]
    assert r1["prediction"] == {"label": "pos", "confidence": 0.6}
    assert r1["label"] == "neg" and r1["label_source"] == "crowd" and 0 < r1["confidence"] <= 1
    assert by_id["g"] == {**by_id["g"], "label": "neu", "confidence": None, "label_source": "gold"}
    assert page("model=x")["corrections"] == []  # model x was right
    assert page("model=nobody")["corrections"] == []
    r = client.get(f"/api/v1/projects/{pid}/corrections", headers=auth(requester))
    assert r.status_code == 400 and "?model=" in r.json["error"]["message"]


def test_a_retried_prediction_post_replays_its_first_response(
    client, requester, make_project, database
) -> None:
    pid = _project(client, make_project, requester)
    headers = {**auth(requester), "Idempotency-Key": "pred-1"}
    body = {"model": "m", "predictions": [{"external_id": "r0", "label": "pos", "confidence": 1}]}
    url = f"/api/v1/projects/{pid}/predictions"
    first = client.post(url, json=body, headers=headers)
    again = client.post(url, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json == first.json == {"model": "m", "created": 1, "existing": 0}
    assert len(_stored(database)) == 1


def test_corrections_every_is_a_project_setting_of_at_least_one(
    client, requester, make_project
) -> None:
    project = make_project(requester)
    assert project["corrections_every"] == 100
    url = f"/api/v1/projects/{project['id']}"
    r = client.patch(url, json={"corrections_every": 5}, headers=auth(requester))
    assert r.status_code == 200 and r.json["corrections_every"] == 5
    for bad in (0, None, "10"):
        r = client.patch(url, json={"corrections_every": bad}, headers=auth(requester))
        assert r.status_code == 422 and "corrections_every" in r.json["error"]["message"]


def test_concurrent_posts_of_one_pair_store_one_label_and_the_other_gets_409(
    live_url, requester, make_project, database
) -> None:
    pid = int(make_project(requester, labels=["pos", "neg"], overlap=1)["id"])
    tasks = [{"external_id": f"r{i}"} for i in range(500)]
    r = requests.post(
        f"{live_url}/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester)
    )
    assert r.status_code == 201
    start = threading.Barrier(4)
    codes: list[int] = []

    def post(label: str, reverse: bool) -> None:
        items = [
            {"external_id": t["external_id"], "label": label, "confidence": 0.9} for t in tasks
        ]
        body = {"model": "m", "predictions": items[::-1] if reverse else items}
        start.wait()
        codes.append(
            requests.post(
                f"{live_url}/api/v1/projects/{pid}/predictions",
                json=body,
                headers=auth(requester),
                timeout=60,
            ).status_code
        )

    threads = [
        threading.Thread(target=post, args=(label, reverse))
        for label in ("pos", "neg")
        for reverse in (False, True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Whichever label came first holds every pair; the other label's requests are refused
    # whole, and the first label's second request finds its pairs stored.
    assert sorted(codes) == [201, 201, 409, 409]
    labels = {row[2] for row in _stored(database)}
    assert len(_stored(database)) == 500 and len(labels) == 1
