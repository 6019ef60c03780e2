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
