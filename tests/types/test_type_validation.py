"""Project types over the API (docs/TYPES.md): each type's project, tasks, gold and answers,
and every 422 a request that does not fit its type gets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import auth

SCALE = {"min": 1, "max": 5, "step": 1}


def create(client: FlaskClient, token: str, **fields: Any) -> Any:
    return client.post("/api/v1/projects", json={"name": "p", **fields}, headers=auth(token))


def project(client: FlaskClient, token: str, **fields: Any) -> dict[str, Any]:
    r = create(client, token, **fields)
    assert r.status_code == 201, r.json
    out: dict[str, Any] = r.json  # type: ignore[assignment]
    return out


def post(client: FlaskClient, token: str, pid: int, tasks: list[dict[str, Any]]) -> Any:
    return client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(token))


def fetch(client: FlaskClient, worker: str, pid: int) -> dict[str, Any]:
    r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
    assert r.status_code == 201, (r.status_code, r.json)
    out: dict[str, Any] = r.json  # type: ignore[assignment]
    return out


def answer(client: FlaskClient, worker: str, assignment_id: int, body: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/assignments/{assignment_id}/answer", json=body, headers=auth(worker)
    )


def test_a_project_without_a_type_is_categorical_as_before(
    client: FlaskClient, requester: str
) -> None:
    p = project(client, requester, labels=["a", "b"])
    assert (p["type"], p["labels"], p["scale"], p["ties"]) == (
        "categorical",
        ["a", "b"],
        None,
        False,
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"labels": ["a"]}, "labels"),  # categorical needs two labels
        ({"labels": ["a", "b"], "scale": SCALE}, "scale"),
        ({"labels": ["a", "b"], "ties": True}, "ties"),
        ({"type": "multilabel"}, "labels"),
        ({"type": "multilabel", "labels": ["a", "b"], "scale": SCALE}, "scale"),
        (
            {"type": "multilabel", "labels": ["a", "b"], "model": {"input": "text", "field": "t"}},
            "model",
        ),
        ({"type": "multilabel", "labels": ["a", "b"], "method": "ds"}, "method"),
        ({"type": "numeric"}, "scale"),
        ({"type": "numeric", "scale": SCALE, "labels": ["a", "b"]}, "labels"),
        ({"type": "numeric", "scale": SCALE, "qc_min_accuracy": 0.7}, "qc_min_accuracy"),
        ({"type": "numeric", "scale": {"min": 5, "max": 1}}, "scale"),
        ({"type": "numeric", "scale": {"min": 0, "max": 1, "step": 0.3}}, "scale"),
        ({"type": "numeric", "scale": SCALE, "ties": True}, "ties"),
        ({"type": "pairwise", "labels": ["a", "b"]}, "labels"),
        ({"type": "pairwise", "review": {}}, "review"),
        ({"type": "pairwise", "order": "uncertainty"}, "order"),
        ({"type": "pairwise", "qc_min_trap_catch": 0.5}, "qc_min_trap_catch"),
        ({"type": "ordinal", "labels": ["a", "b"]}, "type"),
    ],
)
def test_a_setting_the_type_makes_meaningless_is_a_422_naming_it(
    client: FlaskClient, requester: str, fields: dict[str, Any], field: str
) -> None:
    r = create(client, requester, **fields)
    assert r.status_code == 422, r.json
    assert r.json["error"]["message"].startswith(field), r.json  # type: ignore[index]


def test_multilabel_tasks_gold_and_answers(
    client: FlaskClient, requester: str, make_worker: Callable[..., str]
) -> None:
    p = project(client, requester, type="multilabel", labels=["cat", "dog", "bird"], gold_rate=0)
    assert p["type"] == "multilabel"
    bad = post(client, requester, p["id"], [{"external_id": "g", "gold": "cat"}])
    assert bad.status_code == 422 and "tasks.0.gold" in bad.json["error"]["message"]
    bad = post(client, requester, p["id"], [{"external_id": "g", "gold": ["cow"]}])
    assert bad.status_code == 422 and "'cow'" in bad.json["error"]["message"]
    ok = post(client, requester, p["id"], [{"external_id": "g", "gold": ["dog", "cat"]},
                                           {"external_id": "t", "data": {"img": 1}}])  # fmt: skip
    assert ok.status_code == 201, ok.json
    # The same gold in another order is the same task; another set is a 409.
    again = post(client, requester, p["id"], [{"external_id": "g", "gold": ["cat", "dog"]}])
    assert again.status_code == 201 and again.json["existing"] == 1
    changed = post(client, requester, p["id"], [{"external_id": "g", "gold": ["cat"]}])
    assert changed.status_code == 409

    worker = make_worker(requester)
    a = fetch(client, worker, p["id"])
    assert a["task"]["external_id"] == "t"
    for body, code in [
        ({"label": "cat"}, "wrong_answer_type"),
        ({"labels": ["cow"]}, "unknown_label"),
        ({"value": 3}, "wrong_answer_type"),
    ]:
        r = answer(client, worker, a["assignment_id"], body)
        assert r.status_code == 422 and r.json["error"]["code"] == code, r.json
    dup = answer(client, worker, a["assignment_id"], {"labels": ["cat", "cat"]})
    assert dup.status_code == 422 and dup.json["error"]["message"].startswith("labels")
    r = answer(client, worker, a["assignment_id"], {"labels": ["dog", "cat"]})
    assert r.status_code == 201 and r.json["labels"] == ["dog", "cat"]
    again = answer(client, worker, a["assignment_id"], {"labels": ["cat", "dog"]})
    assert again.status_code == 200  # the same set: a retry
    other = answer(client, worker, a["assignment_id"], {"labels": []})
    assert other.status_code == 409


def test_numeric_answers_must_be_on_the_scale_and_step(
    client: FlaskClient, requester: str, make_worker: Callable[..., str]
) -> None:
    p = project(client, requester, type="numeric", scale=SCALE, gold_rate=0)
    assert (p["labels"], p["scale"]) == ([], {"min": 1, "max": 5, "step": 1})
    for gold in (9, 2.5, "3", ["3"]):
        r = post(client, requester, p["id"], [{"external_id": "g", "gold": gold}])
        assert r.status_code == 422 and "tasks.0.gold" in r.json["error"]["message"], r.json
    assert (
        post(
            client, requester, p["id"], [{"external_id": "t"}, {"external_id": "g", "gold": 4}]
        ).status_code
        == 201
    )
    worker = make_worker(requester)
    a = fetch(client, worker, p["id"])
    for body, code in [
        ({"value": 6}, "off_scale"),
        ({"value": 0.5}, "off_scale"),
        ({"value": 2.5}, "off_scale"),
        ({"label": "3"}, "wrong_answer_type"),
        ({"winner": "left"}, "wrong_answer_type"),
    ]:
        r = answer(client, worker, a["assignment_id"], body)
        assert r.status_code == 422 and r.json["error"]["code"] == code, (body, r.json)
        assert "send" in r.json["error"]["message"]
    r = answer(client, worker, a["assignment_id"], {"value": "3"})
    assert r.status_code == 422 and r.json["error"]["message"].startswith("value")
    r = answer(client, worker, a["assignment_id"], {"value": 3})
    assert r.status_code == 201 and r.json["value"] == 3


def test_pairwise_tasks_have_left_and_right_items_and_ties_only_when_on(
    client: FlaskClient, requester: str, make_worker: Callable[..., str]
) -> None:
    p = project(client, requester, type="pairwise", gold_rate=0)
    assert (p["labels"], p["ties"]) == (["left", "right"], False)
    pair = {"left": {"id": "i1", "data": {"text": "x"}}, "right": {"id": "i2"}}
    for task, where in [
        ({"external_id": "t"}, "tasks.0"),
        ({"external_id": "t", "left": {"id": "i1"}, "right": {"id": "i1"}}, "tasks.0.right.id"),
        ({"external_id": "t", **pair, "gold": "tie"}, "tasks.0.gold"),
        ({"external_id": "t", **pair, "data": {"x": 1}}, "tasks.0.data"),
    ]:
        r = post(client, requester, p["id"], [task])
        assert r.status_code == 422 and r.json["error"]["message"].startswith(where), r.json
    assert post(client, requester, p["id"], [{"external_id": "t", **pair}]).status_code == 201
    worker = make_worker(requester)
    a = fetch(client, worker, p["id"])
    assert a["task"]["data"] == {
        "left": {"id": "i1", "data": {"text": "x"}},
        "right": {"id": "i2", "data": {}},
    }
    r = answer(client, worker, a["assignment_id"], {"winner": "tie"})
    assert r.status_code == 422 and r.json["error"]["code"] == "ties_off"
    r = answer(client, worker, a["assignment_id"], {"winner": "up"})
    assert r.status_code == 422 and r.json["error"]["message"].startswith("winner")
    r = answer(client, worker, a["assignment_id"], {"winner": "right"})
    assert r.status_code == 201 and r.json["winner"] == "right"

    with_ties = project(client, requester, type="pairwise", ties=True, gold_rate=0)
    assert with_ties["labels"] == ["left", "right", "tie"]
    assert (
        post(
            client, requester, with_ties["id"], [{"external_id": "t", **pair, "gold": "tie"}]
        ).status_code
        == 201
    )


def test_a_categorical_project_refuses_typed_answers_and_tasks(
    client: FlaskClient, requester: str, make_worker: Callable[..., str]
) -> None:
    p = project(client, requester, labels=["a", "b"], gold_rate=0)
    r = post(client, requester, p["id"], [{"external_id": "t", "left": {"id": "x"}}])
    assert r.status_code == 422
    r = post(client, requester, p["id"], [{"external_id": "t", "gold": ["a"]}])
    assert r.status_code == 422
    post(client, requester, p["id"], [{"external_id": "t"}])
    worker = make_worker(requester)
    a = fetch(client, worker, p["id"])
    r = answer(client, worker, a["assignment_id"], {"value": 1})
    assert r.status_code == 422 and r.json["error"]["code"] == "wrong_answer_type"
    r = answer(client, worker, a["assignment_id"], {})
    assert r.status_code == 422
    r = answer(client, worker, a["assignment_id"], {"label": "a"})
    assert r.status_code == 201 and r.json == {
        "assignment_id": a["assignment_id"],
        "label": "a",
        "status": "created",
    }


def test_a_typed_project_refuses_a_patch_its_type_makes_meaningless(
    client: FlaskClient, requester: str
) -> None:
    p = project(client, requester, type="numeric", scale=SCALE)
    r = client.patch(
        f"/api/v1/projects/{p['id']}", json={"qc_min_accuracy": 0.8}, headers=auth(requester)
    )
    assert r.status_code == 422 and r.json["error"]["message"].startswith("qc_min_accuracy")
    r = client.patch(f"/api/v1/projects/{p['id']}", json={"method": "ds"}, headers=auth(requester))
    assert r.status_code == 422
