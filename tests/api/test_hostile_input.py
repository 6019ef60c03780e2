"""Hostile input on every endpoint that takes it: each gets a 4xx JSON error that says what to
send instead, never a 5xx, and the stored data is left exactly as it was."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from crowd.api import create_app
from crowd.store.db import Database
from tests.conftest import auth

SQL = ["'; DROP TABLE tasks; --", "x' OR '1'='1", '"; DELETE FROM accounts; --', "%s", "%(x)s",
       "\\", "$1", "E'\\\\x00'", "/* */", "`", ";"]  # fmt: skip


@pytest.fixture()
def world(client: FlaskClient, requester: str, make_project: Any, make_worker: Any) -> Any:
    """A project with tasks, a worker holding an assignment, and the paths that take input."""
    pid = make_project(requester, labels=["a", "b"], overlap=2, gold_rate=0.0)["id"]
    tasks = {"tasks": [{"external_id": f"t{i}", "data": {"i": i}} for i in range(5)]}
    assert (
        client.post(
            f"/api/v1/projects/{pid}/tasks", json=tasks, headers=auth(requester)
        ).status_code
        == 201
    )
    worker = make_worker(requester)
    aid = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json[
        "assignment_id"
    ]
    wid = client.get("/api/v1/workers", headers=auth(requester)).json["workers"][0]["id"]
    bodies = [  # (method, path, token) of every endpoint that reads a JSON body
        ("POST", "/api/v1/projects", requester),
        ("PATCH", f"/api/v1/projects/{pid}", requester),
        ("POST", f"/api/v1/projects/{pid}/tasks", requester),
        ("POST", "/api/v1/workers", requester),
        ("POST", f"/api/v1/assignments/{aid}/answer", worker),
        ("POST", f"/api/v1/projects/{pid}/workers/{wid}/ban", requester),
    ]
    pages = [  # every endpoint that lists with cursor and limit
        "/api/v1/projects",
        "/api/v1/workers",
        f"/api/v1/projects/{pid}/results",
        f"/api/v1/projects/{pid}/answers",
        f"/api/v1/projects/{pid}/aggregations",
        f"/api/v1/projects/{pid}/workers",
    ]
    return {"pid": pid, "aid": aid, "wid": wid, "requester": requester, "worker": worker,
            "bodies": bodies, "pages": pages}  # fmt: skip


def _snapshot(database: Database) -> list[Any]:
    """Everything stored, to check that refused requests changed nothing."""
    out = []
    with database.transaction() as cur:
        for table, order in (("accounts", "id"), ("projects", "id"), ("tasks", "id"),
                             ("assignments", "id"), ("project_workers", "worker_id")):  # fmt: skip
            cur.execute(f"SELECT to_jsonb(t)::text FROM {table} t ORDER BY {order}")
            out.append([row[0] for row in cur.fetchall()])
    return out


def _refused(response: Any, status: int, *hints: str) -> None:
    assert response.status_code == status, (response.status_code, response.json)
    message = response.json["error"]["message"]
    for hint in hints:
        assert hint in message, message


def _send(client: FlaskClient, method: str, path: str, token: str, data: bytes) -> Any:
    headers = {**auth(token), "Content-Type": "application/json"}
    return client.open(path, method=method, data=data, headers=headers)


def test_bodies_over_the_size_limit_are_413_everywhere(
    app, settings, world, database: Database
) -> None:
    small = create_app(replace(settings, max_body_bytes=2000))
    small.extensions["crowd.db"] = app.extensions["crowd.db"]  # no new connections
    before = _snapshot(database)
    big = json.dumps({"name": "x" * 5000, "labels": ["a", "b"]}).encode()
    for method, path, token in world["bodies"]:
        _refused(_send(small.test_client(), method, path, token, big), 413, "at most 2000")
    assert _snapshot(database) == before


def test_deeply_nested_json_is_400_not_a_crash(client, world, database: Database) -> None:
    before = _snapshot(database)
    just_too_deep = '{"tasks": [{"external_id": "n", "data": ' + '{"a": ' * 63 + "1" + "}" * 63
    for method, path, token in world["bodies"]:
        for data in (
            "[" * 200_000 + "]" * 200_000,  # deeper than Python's recursion limit
            '{"x": ' * 100_000 + "1" + "}" * 100_000,
            just_too_deep + "}]}",
        ):
            r = _send(client, method, path, token, data.encode())
            _refused(r, 400, "nested")
    assert _snapshot(database) == before


def test_invalid_utf8_and_unstorable_strings_are_400(client, world, database: Database) -> None:
    before = _snapshot(database)
    for method, path, token in world["bodies"]:
        for data in (b'{"name": "\xff\xfe"}', b'{"label": "\xc3"}', b'{"name": "\xed\xa0\x80"}',
                     b'{"name": "a\\u0000b"}', b'{"reason": "\\udc00"}'):  # fmt: skip
            r = _send(client, method, path, token, data)
            assert r.status_code == 400, (path, data, r.json)
            assert "JSON" in r.json["error"]["message"]
    assert _snapshot(database) == before


def test_a_label_list_at_the_limit_works_and_one_more_is_refused(
    client, requester, make_worker
) -> None:
    labels = [f"{i:04d}" + "x" * 196 for i in range(1000)]  # 1000 labels of 200 characters
    r = client.post(
        "/api/v1/projects", json={"name": "big", "labels": labels, "overlap": 1, "gold_rate": 0},
        headers=auth(requester),
    )  # fmt: skip
    assert r.status_code == 201 and r.json["labels"] == labels
    pid = r.json["id"]
    assert client.post(
        f"/api/v1/projects/{pid}/tasks", json={"tasks": [{"external_id": "g", "gold": labels[-1]}, {"external_id": "t"}]},
        headers=auth(requester),
    ).status_code == 201  # fmt: skip
    worker = make_worker(requester)
    aid = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json[
        "assignment_id"
    ]
    r = client.post(
        f"/api/v1/assignments/{aid}/answer", json={"label": labels[-1]}, headers=auth(worker)
    )
    assert r.status_code == 201 and r.json["label"] == labels[-1]

    for bad, hint in (
        ([*labels, "one more"], "at most 1000"),
        (["a", "x" * 201], "at most 200"),
        (["a", "a"], "distinct"),
        (["a"], "at least 2"),
    ):
        r = client.post(
            "/api/v1/projects", json={"name": "b", "labels": bad}, headers=auth(requester)
        )
        _refused(r, 422, hint)


def test_sql_metacharacters_in_every_string_field_are_stored_as_they_were_sent(
    client, requester, make_worker, database: Database
) -> None:
    for i, text in enumerate(SQL):
        labels = [text, f"{text} 2"]
        project = client.post(
            "/api/v1/projects", json={"name": text, "labels": labels, "overlap": 1,
                                      "gold_rate": 0.0}, headers=auth(requester),
        ).json  # fmt: skip
        pid = project["id"]
        assert project["name"] == text and project["labels"] == labels
        tasks = {"tasks": [{"external_id": text, "data": {text: text}, "gold": text},
                           {"external_id": f"{text}-plain", "data": {"q": [text]}}]}  # fmt: skip
        assert (
            client.post(
                f"/api/v1/projects/{pid}/tasks", json=tasks, headers=auth(requester)
            ).status_code
            == 201
        )
        worker_name = f"{text} {i}"
        made = client.post("/api/v1/workers", json={"name": worker_name}, headers=auth(requester))
        assert made.json["name"] == worker_name
        worker = made.json["token"]
        fetched = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json
        assert fetched["task"]["external_id"] in (text, f"{text}-plain")
        aid = fetched["assignment_id"]
        answered = client.post(
            f"/api/v1/assignments/{aid}/answer", json={"label": text}, headers=auth(worker)
        )
        assert answered.status_code == 201 and answered.json["label"] == text
        ban = client.post(
            f"/api/v1/projects/{pid}/workers/{made.json['id']}/ban", json={"reason": text},
            headers=auth(requester),
        )  # fmt: skip
        assert ban.json["reason"] == text
        listed = client.get(
            f"/api/v1/projects/{pid}/workers?status=banned", headers=auth(requester)
        )
        assert [(w["name"], w["reason"]) for w in listed.json["workers"]] == [(worker_name, text)]
        answers = client.get(f"/api/v1/projects/{pid}/answers", headers=auth(requester)).json
        assert [a["label"] for a in answers["answers"]] == [text]
        for param in ("cursor", "status", "since_run", "limit", "posteriors"):
            r = client.get(
                f"/api/v1/projects/{pid}/results", query_string={param: text},
                headers=auth(requester),
            )  # fmt: skip
            _refused(r, 400, param)
    with database.transaction() as cur:
        cur.execute("SELECT count(*) FROM projects")
        assert cur.fetchone() == (len(SQL),)
        cur.execute("SELECT data FROM tasks WHERE external_id = %s", (SQL[0],))
        assert cur.fetchone() == ({SQL[0]: SQL[0]},)


@pytest.mark.parametrize(
    "limit", ["0", "-1", "1001", "10" + "0" * 40, "1e3", "1.5", " 5", "²", "٣", "0x10", "null"]
)
def test_bad_limits_are_400_naming_the_range(client, world, limit: str) -> None:
    for path in world["pages"]:
        r = client.get(path, query_string={"limit": limit}, headers=auth(world["requester"]))
        _refused(r, 400, "limit must be a whole number from 1 to 1000")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    ["!!!", "%00", "x" * 10_000, _b64("v1:-1"), _b64("v1:"), _b64("v2:5"), _b64("v1:²"),
     _b64("v1:" + "9" * 30), _b64("v1:9223372036854775808"), "djE6MQ=====", "\u00e9"],
)  # fmt: skip
def test_malformed_cursors_are_400_saying_to_pass_next_cursor(client, world, cursor: str) -> None:
    for path in world["pages"]:
        r = client.get(path, query_string={"cursor": cursor}, headers=auth(world["requester"]))
        _refused(r, 400, "pass next_cursor from the previous page")


def test_the_largest_valid_cursor_and_since_run_are_accepted(client, world) -> None:
    big = str(2**63 - 1)
    for path in world["pages"]:
        r = client.get(
            path, query_string={"cursor": _b64(f"v1:{big}")}, headers=auth(world["requester"])
        )
        assert r.status_code == 200, (path, r.json)
    results = f"/api/v1/projects/{world['pid']}/results"
    for value, status in ((big, 200), (str(2**63), 400), ("²", 400), ("-1", 400)):
        r = client.get(results, query_string={"since_run": value}, headers=auth(world["requester"]))
        assert r.status_code == status, (value, r.json)


@pytest.mark.parametrize("huge", [str(2**63), "9" * 19, "9" * 40, "0" * 30 + "1" * 20])
def test_ids_beyond_bigint_are_404_on_every_path_and_method(client, app, world, huge: str) -> None:
    tokens = {"requester": world["requester"], "worker": world["worker"]}
    for rule in app.url_map.iter_rules():
        if "<int:" not in rule.rule:
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<int:{name}>", huge)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for token in tokens.values():
                r = client.open(path, method=method, json={}, headers=auth(token))
                assert r.status_code == 404, (method, path, r.status_code)
                assert r.json["error"]["code"] == "not_found"
