"""Idempotency-Key: a retry whose first response was lost gets that response, not a second
effect, on every POST that creates something."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from crowd.store import idempotency
from crowd.store.db import Database
from tests.conftest import auth


def _keyed(token: str, key: str) -> dict[str, str]:
    return {**auth(token), "Idempotency-Key": key}


def _count(database: Database, sql: str, *params: Any) -> int:
    with database.transaction() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
        assert row is not None
        return int(row[0])


def _project_with_tasks(
    client: FlaskClient, requester: str, make_project: Any, n: int = 3, overlap: int = 2
) -> int:
    pid: int = make_project(requester, labels=["a", "b"], overlap=overlap, gold_rate=0.0)["id"]
    tasks = [{"external_id": f"t{i}"} for i in range(n)]
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    assert r.status_code == 201
    return pid


def _twice(client: FlaskClient, path: str, headers: dict[str, str], **kw: Any) -> tuple[Any, Any]:
    """The request, then its retry with the same key (the first response counts as lost)."""
    first = client.post(path, headers=headers, **kw)
    again = client.post(path, headers=headers, **kw)
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers.get("Idempotent-Replayed") == "true", again.json
    assert again.status_code == first.status_code
    return first, again


def test_a_retried_project_creation_returns_the_first_project_and_makes_no_second(
    client, requester, database
) -> None:
    spec = {"name": "p", "labels": ["a", "b"]}
    first, again = _twice(client, "/api/v1/projects", _keyed(requester, "k1"), json=spec)
    assert first.status_code == 201 and again.json == first.json
    assert _count(database, "SELECT count(*) FROM projects") == 1
    # A new key is a new request.
    assert (
        client.post("/api/v1/projects", json=spec, headers=_keyed(requester, "k2")).json["id"]
        != first.json["id"]
    )


def test_a_retried_task_batch_reports_what_the_first_attempt_created(
    client, requester, make_project, database
) -> None:
    pid = make_project(requester)["id"]
    tasks = {"tasks": [{"external_id": "x"}, {"external_id": "y"}]}
    first, again = _twice(
        client, f"/api/v1/projects/{pid}/tasks", _keyed(requester, "batch-1"), json=tasks
    )
    assert first.json == again.json == {"created": 2, "existing": 0}
    assert _count(database, "SELECT count(*) FROM tasks") == 2


def test_a_retried_worker_creation_gives_the_same_worker_a_new_token(
    client, requester, database
) -> None:
    first, again = _twice(
        client, "/api/v1/workers", _keyed(requester, "w-1"), json={"name": "alice"}
    )
    assert again.json["id"] == first.json["id"] and again.json["name"] == "alice"
    assert _count(database, "SELECT count(*) FROM accounts WHERE role = 'worker'") == 1
    # Tokens are stored only as hashes: the replay issues a new one, which replaces the first.
    assert again.json["token"] != first.json["token"]
    with database.transaction() as cur:
        cur.execute("SELECT count(*) FROM idempotency_keys WHERE response LIKE '%%crowd_%%'")
        assert cur.fetchone() == (0,)
    pid = client.post(
        "/api/v1/projects", json={"name": "p", "labels": ["a", "b"]}, headers=auth(requester)
    ).json["id"]
    fetch = f"/api/v1/projects/{pid}/assignments"
    assert client.post(fetch, headers=auth(again.json["token"])).status_code == 204
    assert client.post(fetch, headers=auth(first.json["token"])).status_code == 401


def test_a_retried_fetch_returns_the_same_reservation(
    client, requester, make_project, make_worker, database
) -> None:
    pid = _project_with_tasks(client, requester, make_project)
    worker = make_worker(requester)
    first, again = _twice(client, f"/api/v1/projects/{pid}/assignments", _keyed(worker, "f-1"))
    assert first.status_code == 201 and again.json == first.json
    assert _count(database, "SELECT count(*) FROM assignments") == 1
    assert _count(database, "SELECT sum(taken) FROM tasks") == 1


def test_a_retried_answer_returns_the_first_acknowledgement_and_its_next_task(
    client, requester, make_project, make_worker, database
) -> None:
    pid = _project_with_tasks(client, requester, make_project)
    worker = make_worker(requester)
    aid = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json[
        "assignment_id"
    ]
    first, again = _twice(
        client,
        f"/api/v1/assignments/{aid}/answer",
        _keyed(worker, "a-1"),
        json={"label": "a", "next": True},
    )
    assert first.status_code == 201 and again.json == first.json
    assert first.json["status"] == "created" and first.json["next"] is not None
    assert _count(database, "SELECT count(*) FROM assignments WHERE status = 'answered'") == 1
    assert _count(database, "SELECT count(*) FROM assignments WHERE status = 'reserved'") == 1


def test_the_next_task_reserved_after_a_sweep_is_part_of_the_stored_response(
    client, requester, make_project, make_worker, database
) -> None:
    """When the answer's own transaction finds no next task, the one the sweep frees is
    reserved in a second transaction, which updates the stored response."""
    pid = _project_with_tasks(client, requester, make_project, n=2, overlap=1)
    w1, w2 = make_worker(requester, "w1"), make_worker(requester, "w2")
    fetch = f"/api/v1/projects/{pid}/assignments"
    aid = client.post(fetch, headers=auth(w1)).json["assignment_id"]
    held = client.post(fetch, headers=auth(w2)).json
    with database.transaction() as cur:  # w2's reservation of the other task has run out
        cur.execute(
            "UPDATE assignments SET expires_at = now() - interval '1 s' WHERE id = %s",
            (held["assignment_id"],),
        )
    first, again = _twice(
        client,
        f"/api/v1/assignments/{aid}/answer",
        _keyed(w1, "a-2"),
        json={"label": "b", "next": True},
    )
    assert first.json["next"]["task"]["id"] == held["task"]["id"]
    assert again.json == first.json


def test_retried_skip_ban_unban_and_aggregation_replay_their_first_response(
    client, requester, make_project, make_worker, database
) -> None:
    pid = _project_with_tasks(client, requester, make_project)
    worker = make_worker(requester)
    aid = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json[
        "assignment_id"
    ]
    first, _ = _twice(client, f"/api/v1/assignments/{aid}/skip", _keyed(worker, "s"))
    assert first.json == {"assignment_id": aid, "status": "skipped"}

    wid = _count(database, "SELECT id FROM accounts WHERE role = 'worker'")
    base = f"/api/v1/projects/{pid}/workers/{wid}"
    first, _ = _twice(client, f"{base}/ban", _keyed(requester, "b"), json={"reason": "spam"})
    assert first.json["status"] == "banned"
    first, _ = _twice(client, f"{base}/unban", _keyed(requester, "u"))
    assert first.json["status"] == "active"

    first, again = _twice(client, f"/api/v1/projects/{pid}/aggregations", _keyed(requester, "g"))
    assert first.status_code == 202 and first.json["run"] is not None
    assert again.json == first.json
    assert _count(database, "SELECT count(*) FROM aggregation_runs") == 1


def test_the_same_key_for_a_different_request_is_refused_and_changes_nothing(
    client, requester, database
) -> None:
    headers = _keyed(requester, "reused")
    assert (
        client.post("/api/v1/projects", json={"name": "p", "labels": ["a", "b"]}, headers=headers)
    ).status_code == 201
    other_body = client.post(
        "/api/v1/projects", json={"name": "q", "labels": ["a", "b"]}, headers=headers
    )
    other_path = client.post("/api/v1/workers", json={"name": "w"}, headers=headers)
    for r in (other_body, other_path):
        assert r.status_code == 422
        assert r.json["error"]["code"] == "idempotency_key_reused"
        assert "send a new key" in r.json["error"]["message"]
    assert _count(database, "SELECT count(*) FROM projects") == 1
    assert _count(database, "SELECT count(*) FROM accounts WHERE role = 'worker'") == 0


def test_keys_belong_to_the_account_that_sent_them(
    client, requester, other_requester, database
) -> None:
    spec = {"name": "p", "labels": ["a", "b"]}
    mine = client.post("/api/v1/projects", json=spec, headers=_keyed(requester, "same"))
    theirs = client.post("/api/v1/projects", json=spec, headers=_keyed(other_requester, "same"))
    assert mine.status_code == theirs.status_code == 201
    assert mine.json["id"] != theirs.json["id"]
    assert "Idempotent-Replayed" not in theirs.headers


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "ünïcode"])
def test_a_malformed_key_is_a_400_saying_what_to_send(client, requester, key) -> None:
    r = client.post(
        "/api/v1/projects",
        json={"name": "p", "labels": ["a", "b"]},
        headers={**auth(requester), "Idempotency-Key": key.encode().decode("latin-1")},
    )
    assert r.status_code == 400
    assert "Idempotency-Key must be 1 to 255 visible ASCII" in r.json["error"]["message"]


def test_a_request_that_failed_stores_nothing_so_the_fixed_retry_goes_through(
    client, requester, make_project, make_worker
) -> None:
    pid = _project_with_tasks(client, requester, make_project)
    worker = make_worker(requester)
    aid = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json[
        "assignment_id"
    ]
    path, headers = f"/api/v1/assignments/{aid}/answer", _keyed(worker, "fix")
    assert client.post(path, json={"label": "zzz"}, headers=headers).status_code == 422
    assert client.post(path, json={"label": "a"}, headers=headers).status_code == 201


def test_keys_expire_after_a_day_and_the_sweep_deletes_them(client, requester, database) -> None:
    spec = {"name": "p", "labels": ["a", "b"]}
    headers = _keyed(requester, "old")
    first = client.post("/api/v1/projects", json=spec, headers=headers).json
    with database.transaction() as cur:
        cur.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    later = client.post("/api/v1/projects", json=spec, headers=headers)
    assert later.status_code == 201 and later.json["id"] != first["id"]
    assert "Idempotent-Replayed" not in later.headers
    with database.transaction() as cur:
        cur.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        assert idempotency.purge_expired(cur) == 1
    assert _count(database, "SELECT count(*) FROM idempotency_keys") == 0


def test_concurrent_attempts_with_one_key_make_one_project_and_get_one_response(
    live_url, requester, database
) -> None:
    spec = {"name": "p", "labels": ["a", "b"]}
    headers = _keyed(requester, "race")
    start = threading.Barrier(8)
    responses: list[requests.Response] = []

    def attempt() -> None:
        start.wait()
        responses.append(
            requests.post(f"{live_url}/api/v1/projects", json=spec, headers=headers, timeout=30)
        )

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert _count(database, "SELECT count(*) FROM projects") == 1


def test_every_post_honours_the_key_and_the_document_says_so(app, client) -> None:
    document = client.get("/openapi.json").json
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()):
            continue
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "crowd_idempotent", False), f"POST {rule.rule} ignores the key"
        path = rule.rule.replace("<int:", "{").replace(">", "}")
        params = document["paths"][path]["post"]["parameters"]
        assert any(p["name"] == "Idempotency-Key" for p in params), path


def test_a_retried_webhook_registration_returns_the_first_webhook_and_its_secret(
    client, requester, make_project, database
) -> None:
    pid = make_project(requester)["id"]
    spec = {"url": "https://example.com/hook", "events": ["task.completed"]}
    first, again = _twice(
        client, f"/api/v1/projects/{pid}/webhooks", _keyed(requester, "hook-1"), json=spec
    )
    assert first.status_code == 201 and again.json == first.json
    assert first.json["secret"]  # the retry still shows the one secret that signs
    assert _count(database, "SELECT count(*) FROM webhooks") == 1


def test_a_retried_model_request_replays_the_queued_version_and_queues_no_second(
    client, requester, make_project, database
) -> None:
    model = {"input": "features", "field": "x"}
    pid = make_project(requester, labels=["a", "b"], model=model)["id"]
    first, again = _twice(client, f"/api/v1/projects/{pid}/models", _keyed(requester, "model-1"))
    assert first.status_code == 202 and again.json == first.json
    assert first.json["model"]["status"] == "queued"
    assert _count(database, "SELECT count(*) FROM model_versions") == 1


def test_a_retry_that_would_now_fail_still_gets_the_first_response(
    client, requester, make_project, make_worker, database
) -> None:
    """The key is looked up after the effect: a retried fetch that would find nothing left,
    and a retried answer whose assignment is answered, replay the first response."""
    pid = _project_with_tasks(client, requester, make_project, n=1, overlap=1)
    worker = make_worker(requester)
    fetch = f"/api/v1/projects/{pid}/assignments"
    first, again = _twice(client, fetch, _keyed(worker, "only-task"))
    assert first.status_code == 201 and again.json == first.json
    assert client.post(fetch, headers=auth(worker)).status_code == 204  # nothing left
    path = f"/api/v1/assignments/{first.json['assignment_id']}/answer"
    answered, replayed = _twice(client, path, _keyed(worker, "ans"), json={"label": "a"})
    assert answered.status_code == 201 and replayed.json == answered.json
    # The same key with another label is the key reused, not an answer changed (409).
    other = client.post(path, json={"label": "b"}, headers=_keyed(worker, "ans"))
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_key_reused"
    assert _count(database, "SELECT count(*) FROM assignments") == 1
    assert _count(database, "SELECT answers FROM tasks") == 1
