"""Posting task batches: idempotent on external_id, validated before anything is stored."""

from __future__ import annotations

from dataclasses import replace

from flask.testing import FlaskClient

from crowd.api import create_app
from tests.conftest import auth


def _post(client: FlaskClient, token: str, pid: int, tasks: list[dict]) -> tuple[int, dict]:
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(token))
    return r.status_code, r.json or {}


def _task_count(client, token, pid) -> int:
    return client.get(f"/api/v1/projects/{pid}", headers=auth(token)).json["counts"]["tasks"]


def test_posting_the_same_batch_twice_creates_nothing_twice(
    client, requester, make_project
) -> None:
    pid = make_project(requester)["id"]
    batch = [{"external_id": f"t{i}", "data": {"text": f"item {i}"}} for i in range(50)]
    assert _post(client, requester, pid, batch) == (201, {"created": 50, "existing": 0})
    assert _post(client, requester, pid, batch) == (201, {"created": 0, "existing": 50})
    more = [*batch[40:], {"external_id": "new"}]
    assert _post(client, requester, pid, more) == (201, {"created": 1, "existing": 10})
    assert _task_count(client, requester, pid) == 51


def test_re_posting_a_task_with_other_data_or_gold_is_a_409_that_stores_nothing(
    client, requester, make_project, make_worker
) -> None:
    pid = make_project(requester, gold_rate=0)["id"]
    first = [
        {"external_id": "empty"},
        {"external_id": "same", "data": {"text": "kept", "n": 1}},
        {"external_id": "control", "data": {"text": "g"}, "gold": "a"},
    ]
    assert _post(client, requester, pid, first) == (201, {"created": 3, "existing": 0})
    # Identical content (key order and 1 vs 1.0 do not matter) is a harmless retry.
    retry = [{"external_id": "same", "data": {"n": 1.0, "text": "kept"}}, *first[::2]]
    assert _post(client, requester, pid, retry) == (201, {"created": 0, "existing": 3})

    changed = [
        {"external_id": "new"},
        {"external_id": "empty", "data": {"text": "filled in later"}},
        {"external_id": "same", "data": {"text": "kept", "n": 1}},
        {"external_id": "control", "data": {"text": "g"}, "gold": "b"},
    ]
    status, body = _post(client, requester, pid, changed)
    assert status == 409 and body["error"]["code"] == "task_changed"
    message = body["error"]["message"]
    assert "'empty'" in message and "'control'" in message and "'same'" not in message
    assert "new external_ids" in message
    assert _task_count(client, requester, pid) == 2  # not gold: "empty", "same"; no "new"
    worker = make_worker(requester)
    task = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json["task"]
    assert task["external_id"] == "empty" and task["data"] == {}


def test_a_409_names_twenty_changed_tasks_and_counts_the_rest(
    client, requester, make_project
) -> None:
    pid = make_project(requester)["id"]
    batch = [{"external_id": f"t{i:02}", "data": {"v": 0}} for i in range(25)]
    assert _post(client, requester, pid, batch)[0] == 201
    status, body = _post(client, requester, pid, [{**t, "data": {"v": 1}} for t in batch])
    assert status == 409
    assert "'t19'" in body["error"]["message"] and "'t20'" not in body["error"]["message"]
    assert "and 5 more" in body["error"]["message"]


def test_a_batch_of_10000_is_accepted_and_10001_is_refused(client, requester, make_project) -> None:
    pid = make_project(requester)["id"]
    batch = [{"external_id": str(i)} for i in range(10_001)]
    status, body = _post(client, requester, pid, batch)
    assert status == 422 and "at most 10000" in body["error"]["message"]
    assert _post(client, requester, pid, batch[:10_000]) == (
        201,
        {"created": 10_000, "existing": 0},
    )


def test_invalid_gold_rejects_the_whole_batch(client, requester, make_project) -> None:
    pid = make_project(requester)["id"]
    status, body = _post(
        client,
        requester,
        pid,
        [{"external_id": "ok", "gold": "a"}, {"external_id": "x", "gold": "zebra"}],
    )
    assert status == 422
    assert "tasks.1.gold" in body["error"]["message"] and "zebra" in body["error"]["message"]
    assert _task_count(client, requester, pid) == 0


def test_duplicate_external_ids_within_a_batch_are_refused(client, requester, make_project) -> None:
    pid = make_project(requester)["id"]
    status, body = _post(client, requester, pid, [{"external_id": "a"}, {"external_id": "a"}])
    assert status == 422 and "appears twice" in body["error"]["message"]


def test_strings_postgres_cannot_store_are_a_client_error(client, requester, make_project) -> None:
    pid = make_project(requester)["id"]
    for raw in [
        '{"tasks":[{"external_id":"a\\u0000b"}]}',
        '{"tasks":[{"external_id":"\\ud800"}]}',
        '{"tasks":[{"external_id":"a","data":{"x":NaN}}]}',
        '{"tasks":[{"external_id":"a","data":{"x":' + "[" * 900 + "1" + "]" * 900 + "}}]}",
    ]:
        r = client.post(
            f"/api/v1/projects/{pid}/tasks",
            data=raw,
            headers={**auth(requester), "Content-Type": "application/json"},
        )
        assert r.status_code == 400, raw
        assert r.json["error"]["code"] == "bad_request"
    assert _task_count(client, requester, pid) == 0


def test_another_requester_cannot_post_into_my_project(
    client, requester, other_requester, make_project
) -> None:
    pid = make_project(requester)["id"]
    assert _post(client, other_requester, pid, [{"external_id": "a"}])[0] == 404


def test_oversized_body_is_413_with_json_error(app, settings, requester, make_project) -> None:
    small = create_app(replace(settings, max_body_bytes=1000))
    small_client = small.test_client()
    pid = make_project(requester)["id"]
    batch = [{"external_id": f"t{i}", "data": {"text": "x" * 100}} for i in range(20)]
    r = small_client.post(
        f"/api/v1/projects/{pid}/tasks", json={"tasks": batch}, headers=auth(requester)
    )
    assert r.status_code == 413
    assert "1000 bytes" in r.json["error"]["message"]
