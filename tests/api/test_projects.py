"""Requesters create projects, list their own, and read progress counts."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import auth


def test_create_project_returns_settings_with_defaults(client: FlaskClient, requester: str) -> None:
    response = client.post(
        "/api/v1/projects", json={"name": "cats", "labels": ["cat", "dog"]}, headers=auth(requester)
    )
    assert response.status_code == 201
    body = response.json
    assert body is not None
    assert isinstance(body["id"], int)
    assert body["labels"] == ["cat", "dog"]
    assert body["overlap"] == 3
    assert body["lease_seconds"] == 600


def test_project_counts_track_tasks_and_answers(
    client, requester, make_project, make_worker
) -> None:
    project = make_project(requester, overlap=1)
    pid = project["id"]
    tasks = [{"external_id": f"t{i}"} for i in range(3)]
    client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    worker = make_worker(requester)
    got = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json
    client.post(
        f"/api/v1/assignments/{got['assignment_id']}/answer",
        json={"label": "a"},
        headers=auth(worker),
    )
    client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
    counts = client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["counts"]
    assert counts == {
        "tasks": 3,
        "gold_tasks": 0,
        "answers": 1,
        "tasks_complete": 1,
        "reservations": 1,
    }


def test_labels_must_be_2_to_1000_distinct_non_empty_strings(client, requester) -> None:
    def post(labels: object) -> tuple[int, str]:
        r = client.post(
            "/api/v1/projects", json={"name": "p", "labels": labels}, headers=auth(requester)
        )
        return r.status_code, (r.json or {}).get("error", {}).get("message", "")

    status, message = post(["only"])
    assert status == 422 and "labels" in message and "at least 2" in message
    status, message = post(["a", "b", "a"])
    assert status == 422 and "distinct" in message and "a" in message
    status, message = post(["a", ""])
    assert status == 422 and "labels" in message
    status, message = post(["a", "  "])
    assert status == 422 and "non-empty" in message
    assert post([f"l{i}" for i in range(1001)])[0] == 422
    assert post([f"l{i}" for i in range(1000)])[0] == 201
    assert post(["a", 1])[0] == 422


def test_bad_project_settings_are_422_naming_the_field(client, requester) -> None:
    for field, value in [("overlap", 0), ("overlap", "3"), ("lease_seconds", -1), ("name", "")]:
        spec = {"name": "p", "labels": ["a", "b"], field: value}
        r = client.post("/api/v1/projects", json=spec, headers=auth(requester))
        assert r.status_code == 422, (field, value)
        assert r.json["error"]["message"].startswith(field)
    r = client.post(
        "/api/v1/projects",
        json={"name": "p", "labels": ["a", "b"], "overlpa": 2},
        headers=auth(requester),
    )
    assert r.status_code == 422
    assert "overlpa" in r.json["error"]["message"] and "unknown field" in r.json["error"]["message"]


def test_requesters_see_only_their_projects_and_admins_see_all(
    client, requester, other_requester, admin, make_project
) -> None:
    mine = make_project(requester)
    theirs = make_project(other_requester)
    listed = client.get("/api/v1/projects", headers=auth(requester)).json["projects"]
    assert [p["id"] for p in listed] == [mine["id"]]
    assert (
        client.get(f"/api/v1/projects/{theirs['id']}", headers=auth(requester)).status_code == 404
    )
    all_ids = [
        p["id"] for p in client.get("/api/v1/projects", headers=auth(admin)).json["projects"]
    ]
    assert all_ids == [mine["id"], theirs["id"]]
    assert client.get(f"/api/v1/projects/{theirs['id']}", headers=auth(admin)).status_code == 200


def test_project_list_paginates_with_an_opaque_cursor(client, requester, make_project) -> None:
    ids = [make_project(requester, name=f"p{i}")["id"] for i in range(5)]
    seen: list[int] = []
    url = "/api/v1/projects?limit=2"
    while url:
        page = client.get(url, headers=auth(requester)).json
        seen += [p["id"] for p in page["projects"]]
        url = (
            f"/api/v1/projects?limit=2&cursor={page['next_cursor']}" if page["next_cursor"] else ""
        )
    assert seen == ids


def test_patch_changes_only_the_fields_sent_and_raising_overlap_reopens_tasks(
    client, requester, make_project, make_worker
) -> None:
    pid = make_project(requester, overlap=1, gold_rate=0.0)["id"]
    client.post(
        f"/api/v1/projects/{pid}/tasks",
        json={"tasks": [{"external_id": "t"}]},
        headers=auth(requester),
    )
    first, second = make_worker(requester, "a"), make_worker(requester, "b")
    got = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(first)).json
    client.post(
        f"/api/v1/assignments/{got['assignment_id']}/answer",
        json={"label": "a"},
        headers=auth(first),
    )
    assert (
        client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(second)).status_code == 204
    )

    r = client.patch(
        f"/api/v1/projects/{pid}",
        json={"overlap": 2, "confidence_target": 0.9, "max_overlap": 4},
        headers=auth(requester),
    )
    assert r.status_code == 200
    assert (r.json["overlap"], r.json["max_overlap"], r.json["confidence_target"]) == (2, 4, 0.9)
    assert r.json["name"] == "p" and r.json["lease_seconds"] == 600  # untouched
    assert (
        client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(second)).status_code == 201
    )
    off = client.patch(
        f"/api/v1/projects/{pid}", json={"confidence_target": None}, headers=auth(requester)
    )
    assert off.status_code == 200 and off.json["confidence_target"] is None


def test_patch_refuses_what_it_cannot_apply(
    client, requester, other_requester, make_project
) -> None:
    pid = make_project(requester, overlap=3)["id"]
    for body, field in [
        ({"overlap": None}, "overlap"),
        ({"max_overlap": 2}, "max_overlap"),
        ({"gold_rate": 1.5}, "gold_rate"),
        ({"method": "magic"}, "method"),
        ({"labels": ["x", "y"]}, "labels"),
    ]:
        r = client.patch(f"/api/v1/projects/{pid}", json=body, headers=auth(requester))
        assert r.status_code == 422, (body, r.json)
        assert field in r.json["error"]["message"]
    r = client.patch(f"/api/v1/projects/{pid}", json={"overlap": 5}, headers=auth(other_requester))
    assert r.status_code == 404
