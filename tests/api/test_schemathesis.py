"""Generated hostile input: schemathesis against ``/openapi.json``.

Every operation, called with the token of each kind of caller, on cases generated from the
document (valid and invalid ones) and sent over real HTTP: no response may be a 5xx, and every
response must match what the document says (status code, content type, headers, body
schema); schema-valid requests must not be refused for their shape, invalid ones must be.
Path ids are those of real objects for about half of the valid cases, so generated bodies get
past the ownership checks to the code behind them.

Cases are derandomized, so CI runs the same ones every time; ``EXAMPLES`` per operation and
caller gives about 1,000 in all.
"""

from __future__ import annotations

import collections
import threading
import zlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from redis import Redis
from schemathesis.core.parameters import ParameterLocation
from werkzeug.serving import make_server

from crowd.api import create_app
from crowd.api.body import encode_cursor
from crowd.api.openapi import document
from crowd.config import Settings
from crowd.store import accounts
from crowd.store.accounts import Role
from crowd.store.db import Database
from tests.conftest import auth

EXAMPLES = 4
CALLERS = ("admin", "requester", "other_requester", "worker", "other_worker")
#: Cases sent per operation (printed at the end of the module: see the fixture below).
sent: collections.Counter[str] = collections.Counter()


def _schema(coverage: bool) -> Any:
    loaded = schemathesis.openapi.from_dict(document())
    # Refusals a schema cannot express: a label not in the project's (422), a worker's own
    # state (409).
    loaded.config.checks.positive_data_acceptance.expected_statuses = [
        "2xx", "401", "403", "404", "409", "422",
    ]  # fmt: skip
    # Strings with NUL or unpaired surrogates are refused with a 400 on purpose (PostgreSQL
    # cannot store them); tests/api/test_hostile_input.py covers that.
    for generation in (loaded.config.generation, loaded.config.phases.coverage.generation):
        generation.update(allow_x00=False, codec="utf-8")
    if not coverage:
        loaded.config.phases.coverage.enabled = False
    return loaded


# The coverage phase (boundary values, every unexpected method on every path) hardly depends
# on the caller: it runs for one; the others get the explicit examples and random cases.
schema = _schema(coverage=True)
schema_without_coverage = _schema(coverage=False)


def _token(database: Database, role: Role, name: str) -> str:
    with database.transaction() as cur:
        return accounts.create(cur, role, name)[1]


@pytest.fixture(scope="module")
def served(
    app: Flask, database: Database, settings: Settings
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The app over real HTTP, with tokens of each kind of caller and ids of real objects.

    Its failed-authentication limit is out of reach: the generated cases with broken tokens
    would otherwise use it up (tests/api/test_auth_rate_limit.py tests it)."""
    assert settings.redis_url
    Redis.from_url(settings.redis_url).flushdb()  # this session's Redis database
    session_app = app
    app = create_app(replace(settings, auth_failure_limit="1000000/minute"))
    app.extensions["crowd.db"] = session_app.extensions["crowd.db"]  # no new connections
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = app.test_client()
    tokens = {
        "admin": _token(database, Role.ADMIN, "root"),
        "requester": _token(database, Role.REQUESTER, "owner"),
        "other_requester": _token(database, Role.REQUESTER, "other"),
    }

    def post(path: str, token: str, body: Any = None) -> Any:
        r = client.post(path, json=body, headers=auth(token))
        assert r.status_code in (200, 201, 202), (path, r.json)
        return r.json

    worker = post("/api/v1/workers", tokens["requester"], {"name": "w"})
    tokens["worker"] = worker["token"]
    tokens["other_worker"] = post("/api/v1/workers", tokens["other_requester"], {"name": "o"})[
        "token"
    ]
    pid = post(
        "/api/v1/projects", tokens["requester"], {"name": "p", "labels": ["a", "b"], "overlap": 2}
    )["id"]
    post(
        f"/api/v1/projects/{pid}/tasks",
        tokens["requester"],
        {"tasks": [{"external_id": f"t{i}", "data": {"i": i}} for i in range(200)]},
    )
    aid = post(f"/api/v1/projects/{pid}/assignments", worker["token"])["assignment_id"]
    nxt = post(f"/api/v1/assignments/{aid}/answer", worker["token"], {"label": "a", "next": True})
    run = post(f"/api/v1/projects/{pid}/aggregations", tokens["requester"])["run"]["id"]
    hook = post(
        f"/api/v1/projects/{pid}/webhooks", tokens["requester"], {"url": "https://x.test/h"}
    )
    ids = {
        "webhook_id": hook["id"],
        "project_id": pid,
        "assignment_id": nxt["next"]["assignment_id"],
        "run_id": run,
        "worker_id": worker["id"],
    }
    yield f"http://127.0.0.1:{server.server_port}", {"tokens": tokens, "ids": ids}
    server.shutdown()
    thread.join(timeout=10)
    print(f"\nschemathesis: {sum(sent.values())} cases over {len(sent)} operations")


_SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)


@schema.parametrize()
@_SETTINGS
def test_generated_requests_from_the_owner_get_documented_responses_and_no_5xx(
    case: Any, served: tuple[str, dict[str, Any]]
) -> None:
    _call(case, "requester", served)


@pytest.mark.parametrize("caller", [c for c in CALLERS if c != "requester"])
@schema_without_coverage.parametrize()
@_SETTINGS
def test_generated_requests_from_other_callers_get_documented_responses_and_no_5xx(
    case: Any, caller: str, served: tuple[str, dict[str, Any]]
) -> None:
    _call(case, caller, served)


def _call(case: Any, caller: str, served: tuple[str, dict[str, Any]]) -> None:
    base_url, world = served

    def negative(location: ParameterLocation) -> bool:
        return case.meta is not None and bool(case.meta.is_negative_at(location))

    # A case that breaks the Authorization header on purpose keeps it broken.
    headers = {} if negative(ParameterLocation.HEADER) else auth(world["tokens"][caller])
    path = case.path_parameters
    if path and not negative(ParameterLocation.PATH) and _real_ids(path):
        for name in path:
            path[name] = world["ids"][name]
    if case.query and "cursor" in case.query and not negative(ParameterLocation.QUERY):
        # A valid cursor is one the API made; any other is a 400 (tested in negative cases).
        case.query["cursor"] = encode_cursor(zlib.crc32(str(case.query["cursor"]).encode()))
    sent[f"{case.method} {case.operation.path}"] += 1
    case.call_and_validate(base_url=base_url, headers=headers, timeout=30)


def _real_ids(params: dict[str, Any]) -> bool:
    """About half of the cases: a choice made from the case itself, so shrinking is stable."""
    return zlib.crc32(repr(sorted(params.items())).encode()) % 2 == 0
