"""Who may do what: every route of the app against every kind of caller.

The table has one row per (method, route) of ``app.url_map``; a route without a row fails
:func:`test_the_table_covers_every_route`, so a new endpoint cannot ship without saying who
may call it. Callers: an admin, the requester who owns the project, another requester, a
worker of the owner (who holds the assignment), a worker of the other requester, no token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from crowd.background.scheduling import flush_all
from crowd.store import accounts
from crowd.store.accounts import Role
from crowd.store.db import Database
from tests.conftest import auth

ROLES = ("admin", "requester", "other_requester", "worker", "other_worker", "anonymous")


@dataclass(frozen=True)
class Row:
    method: str
    rule: str  # as in app.url_map
    body: dict[str, Any] | None
    # status per role, in ROLES order
    expect: tuple[int, int, int, int, int, int]
    query: str = ""  # a query string the route needs


# What each kind of caller gets. Managers' endpoints: admins and the owner succeed, another
# requester gets 404 (a project that is not theirs does not exist for them), workers 403.
def _manage(ok: int) -> tuple[int, int, int, int, int, int]:
    return (ok, ok, 404, 403, 403, 401)


def _any_manager(ok: int) -> tuple[int, int, int, int, int, int]:
    return (ok, ok, ok, 403, 403, 401)


P = "/api/v1/projects/<int:project_id>"
A = "/api/v1/assignments/<int:assignment_id>"
TABLE = [
    Row("GET", "/healthz", None, (200, 200, 200, 200, 200, 200)),
    Row("GET", "/openapi.json", None, (200, 200, 200, 200, 200, 200)),
    Row("POST", "/api/v1/workers", {"name": "new"}, _any_manager(201)),
    Row("GET", "/api/v1/workers", None, _any_manager(200)),
    Row("POST", "/api/v1/projects", {"name": "n", "labels": ["a", "b"]}, _any_manager(201)),
    Row("GET", "/api/v1/projects", None, _any_manager(200)),
    Row("GET", P, None, _manage(200)),
    Row("PATCH", P, {"gold_rate": 0.2}, _manage(200)),
    Row("POST", f"{P}/tasks", {"tasks": [{"external_id": "new"}]}, _manage(201)),
    # Only workers fetch; the other requester's worker cannot see this project.
    Row("POST", f"{P}/assignments", None, (403, 403, 403, 201, 404, 401)),
    # Only the worker holding the assignment answers or skips it.
    Row("POST", f"{A}/answer", {"label": "a"}, (403, 403, 403, 201, 403, 401)),
    Row("POST", f"{A}/skip", None, (403, 403, 403, 200, 403, 401)),
    Row("GET", f"{P}/results", None, _manage(200)),
    # The fixture project is categorical: a ranking is a pairwise project's (docs/TYPES.md).
    Row("GET", f"{P}/ranking", None, _manage(422)),
    Row("GET", f"{P}/answers", None, _manage(200)),
    Row("GET", f"{P}/aggregations", None, _manage(200)),
    Row("POST", f"{P}/aggregations", None, _manage(202)),
    Row("GET", f"{P}/aggregations/<int:run_id>", None, _manage(200)),
    Row("GET", f"{P}/workers", None, _manage(200)),
    Row("POST", f"{P}/workers/<int:worker_id>/ban", {"reason": "x"}, _manage(200)),
    Row("POST", f"{P}/workers/<int:worker_id>/unban", None, _manage(200)),
    Row("GET", f"{P}/stats", None, _manage(200)),
    Row("GET", f"{P}/export", None, _manage(200)),
    Row("GET", f"{P}/models", None, _manage(200)),
    # The project declares no model: a manager is let in and told to PATCH one first.
    Row("POST", f"{P}/models", None, _manage(409)),
    Row(
        "POST",
        f"{P}/predictions",
        {"model": "m", "predictions": [{"external_id": "t0", "label": "a", "confidence": 0.9}]},
        _manage(201),
    ),
    Row("GET", f"{P}/corrections", None, _manage(200), query="?model=m"),
    Row("GET", f"{P}/review", None, _manage(200)),
    Row("GET", f"{P}/webhooks", None, _manage(200)),
    Row("POST", f"{P}/webhooks", {"url": "https://example.com/hook"}, _manage(201)),
    # The admin, tried first, deletes the webhook: the owner then finds it gone.
    Row("DELETE", f"{P}/webhooks/<int:webhook_id>", None, (204, 404, 404, 403, 403, 401)),
    Row("GET", f"{P}/webhooks/<int:webhook_id>/deliveries", None, _manage(200)),
    # The worker's own project list: workers only; the other worker sees its own (none).
    Row("GET", "/api/v1/me/projects", None, (403, 403, 403, 200, 200, 401)),
    # Browser pages are public HTML: they sign in from the page, with the API's tokens.
    Row("GET", "/", None, (200,) * 6),
    Row("GET", "/label", None, (200,) * 6),
    Row("GET", "/dashboard", None, (200,) * 6),
    Row("GET", "/dashboard/projects/<int:project_id>", None, (200,) * 6),
]

#: Static files (the pages' scripts and styles) are public and take a file path, not ids.
STATIC = ("static", "web.static")


@dataclass
class World:
    tokens: dict[str, str]
    ids: dict[str, int]


def _token(database: Database, role: Role, name: str) -> str:
    with database.transaction() as cur:
        return accounts.create(cur, role, name)[1]


@pytest.fixture()
def world(client: FlaskClient, database: Database) -> World:
    """A project of `requester` with tasks and an answered task, an assignment held by
    `worker`, a queued aggregation run, and the other requester with a worker of its own."""
    admin = _token(database, Role.ADMIN, "root")
    requester = _token(database, Role.REQUESTER, "owner")
    other = _token(database, Role.REQUESTER, "other")

    def post(path: str, token: str, body: Any = None) -> Any:
        r = client.post(path, json=body, headers=auth(token))
        assert r.status_code in (200, 201, 202), (path, r.json)
        return r.json

    worker = post("/api/v1/workers", requester, {"name": "w"})
    other_worker = post("/api/v1/workers", other, {"name": "ow"})
    pid = post("/api/v1/projects", requester, {"name": "p", "labels": ["a", "b"], "overlap": 1})[
        "id"
    ]
    post(f"/api/v1/projects/{pid}/tasks", requester, {"tasks": [{"external_id": f"t{i}"} for i in range(4)]})  # fmt: skip
    done = post(f"/api/v1/projects/{pid}/assignments", worker["token"])["assignment_id"]
    post(f"/api/v1/assignments/{done}/answer", worker["token"], {"label": "b"})
    held = post(f"/api/v1/projects/{pid}/assignments", worker["token"])["assignment_id"]
    # The answer queues a run (from the stale-mark thread); the request joins it or queues one.
    flush_all()
    post(f"/api/v1/projects/{pid}/aggregations", requester)
    runs = client.get(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    run = runs.json["aggregations"][0]["id"]  # type: ignore[index]
    hook = post(f"/api/v1/projects/{pid}/webhooks", requester, {"url": "https://example.com/h"})
    return World(
        tokens={
            "admin": admin,
            "requester": requester,
            "other_requester": other,
            "worker": worker["token"],
            "other_worker": other_worker["token"],
        },
        ids={
            "project_id": pid,
            "assignment_id": held,
            "run_id": run,
            "worker_id": worker["id"],
            "webhook_id": hook["id"],
        },
    )


def _path(rule: str, ids: dict[str, int]) -> str:
    for name, value in ids.items():
        rule = rule.replace(f"<int:{name}>", str(value))
    assert "<" not in rule, rule
    return rule


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.method} {r.rule}")
def test_each_caller_gets_what_the_table_says(client: FlaskClient, world: World, row: Row) -> None:
    """Refused callers change nothing, so one world serves every caller of a row: callers are
    tried in ROLES order and the (one) allowed worker call comes after the refusals."""
    got = {}
    for role in ROLES:
        headers = auth(world.tokens[role]) if role in world.tokens else {}
        response = client.open(
            _path(row.rule, world.ids) + row.query,
            method=row.method,
            json=row.body,
            headers=headers,
        )
        got[role] = response.status_code
        if response.status_code >= 400:
            assert response.json["error"]["message"], (role, response.json)
    assert got == dict(zip(ROLES, row.expect, strict=True))


def test_the_table_covers_every_route(app: Flask) -> None:
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in STATIC
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    table = {(row.method, row.rule) for row in TABLE}
    assert routes - table == set(), "routes without a row in TABLE: say who may call them"
    assert table - routes == set(), "rows for routes the app does not have"


def test_lists_show_a_requester_only_its_own_and_an_admin_everything(
    client: FlaskClient, world: World
) -> None:
    def ids(role: str, path: str, key: str) -> set[int]:
        page = client.get(path, headers=auth(world.tokens[role])).json[key]
        return {item["id"] for item in page}

    pid, wid = world.ids["project_id"], world.ids["worker_id"]
    assert ids("requester", "/api/v1/projects", "projects") == {pid}
    assert ids("other_requester", "/api/v1/projects", "projects") == set()
    assert pid in ids("admin", "/api/v1/projects", "projects")
    assert ids("requester", "/api/v1/workers", "workers") == {wid}
    assert wid not in ids("other_requester", "/api/v1/workers", "workers")
    assert wid in ids("admin", "/api/v1/workers", "workers")


def test_another_workers_assignment_is_refused_and_left_as_it_was(
    client: FlaskClient, world: World, database: Database
) -> None:
    aid = world.ids["assignment_id"]
    for action, body in (("answer", {"label": "a"}), ("skip", None)):
        r = client.post(
            f"/api/v1/assignments/{aid}/{action}",
            json=body,
            headers=auth(world.tokens["other_worker"]),
        )
        assert r.status_code == 403 and r.json["error"]["code"] == "not_yours"
    with database.transaction() as cur:
        cur.execute("SELECT status, label FROM assignments WHERE id = %s", (aid,))
        assert cur.fetchone() == ("reserved", None)


def test_tokens_are_stored_only_as_sha256_hashes(world: World, database: Database) -> None:
    with database.transaction() as cur:
        cur.execute("SELECT token_hash, to_jsonb(a)::text FROM accounts a")
        rows = cur.fetchall()
    stored = {bytes(digest) for digest, _ in rows}
    everything = " ".join(text for _, text in rows)
    for token in world.tokens.values():
        assert hashlib.sha256(token.encode()).digest() in stored
        assert token not in everything
        assert token.removeprefix("crowd_") not in everything
