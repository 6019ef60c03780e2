"""Bad input gets a JSON 4xx saying what to send; never a 500 or a traceback."""

from __future__ import annotations

from tests.conftest import auth


def test_missing_and_unknown_tokens_are_401(client) -> None:
    r = client.get("/api/v1/projects")
    assert r.status_code == 401 and "Authorization: Bearer" in r.json["error"]["message"]
    r = client.get("/api/v1/projects", headers=auth("crowd_nope"))
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"


def test_tokens_are_stored_hashed(client, requester, database) -> None:
    with database.transaction() as cur:
        cur.execute("SELECT token_hash FROM accounts")
        stored = [bytes(row[0]) for row in cur.fetchall()]
    assert stored and all(requester.encode() not in h for h in stored)
    assert all(len(h) == 32 for h in stored)


def test_unparseable_bodies_are_400(client, requester) -> None:
    headers = {**auth(requester), "Content-Type": "application/json"}
    for data in (b"", b"{", b"\xff\xfe{}", b"[1, 2]", b'"text"', b"[" * 100_000 + b"]" * 100_000):
        r = client.post("/api/v1/projects", data=data, headers=headers)
        assert r.status_code == 400, data[:10]
        assert "JSON" in r.json["error"]["message"] or "nested" in r.json["error"]["message"]


def test_unknown_routes_and_methods_are_json(client, requester) -> None:
    r = client.get("/api/v1/nope", headers=auth(requester))
    assert r.status_code == 404 and "openapi.json" in r.json["error"]["message"]
    r = client.delete("/api/v1/projects", headers=auth(requester))
    assert r.status_code == 405 and r.json["error"]["code"] == "method_not_allowed"


def test_sql_metacharacters_are_data(client, requester, make_project) -> None:
    name = "x'); DROP TABLE tasks; --"
    project = make_project(requester, name=name, labels=["'", '"', "%s", "\\"])
    pid = project["id"]
    tasks = [{"external_id": "1' OR '1'='1", "data": {"q": "%(x)s ; DELETE"}, "gold": "%s"}]
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    assert r.status_code == 201
    got = client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json
    assert (
        got["name"] == name
        and got["labels"] == ["'", '"', "%s", "\\"]
        and got["counts"]["gold_tasks"] == 1
    )


def test_healthz_reports_both_dependencies(client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_ids_beyond_bigint_are_404_not_500(client, requester, make_worker) -> None:
    worker = make_worker(requester)
    huge = "99999999999999999999"
    for method, path, token in [
        ("get", f"/api/v1/projects/{huge}", requester),
        ("post", f"/api/v1/projects/{huge}/assignments", worker),
        ("post", f"/api/v1/assignments/{huge}/skip", worker),
        ("post", f"/api/v1/assignments/{huge}/answer", worker),
    ]:
        r = getattr(client, method)(path, headers=auth(token), json={"label": "a"})
        assert r.status_code == 404, path
        assert r.json["error"]["code"] == "not_found"
