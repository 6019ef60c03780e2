"""GET /api/v1/me/projects: the projects a worker may work on, as its labelling page lists them."""

from __future__ import annotations

from crowd.store import accounts
from crowd.store.accounts import Role
from tests.conftest import auth


def test_a_worker_sees_its_requesters_projects_and_which_it_is_banned_from(
    client, requester, other_requester, make_project, make_worker
) -> None:
    first = make_project(requester, name="first", labels=["x", "y"], lease_seconds=120)["id"]
    second = make_project(requester, name="second")["id"]
    make_project(other_requester, name="not for this worker")
    worker = make_worker(requester, "w")
    worker_id = client.get("/api/v1/workers", headers=auth(requester)).json["workers"][0]["id"]
    client.post(f"/api/v1/projects/{second}/workers/{worker_id}/ban",
                json={"reason": "too fast"}, headers=auth(requester))  # fmt: skip

    r = client.get("/api/v1/me/projects", headers=auth(worker))

    assert r.status_code == 200
    assert r.json == {
        "projects": [
            {"id": first, "name": "first", "labels": ["x", "y"], "lease_seconds": 120,
             "banned": False, "ban_reason": None, "has_tasks": False},
            {"id": second, "name": "second", "labels": ["a", "b", "c"], "lease_seconds": 600,
             "banned": True, "ban_reason": "too fast", "has_tasks": False},
        ],
        "next_cursor": None,
    }  # fmt: skip


def test_the_list_pages_with_a_cursor(client, requester, make_project, make_worker) -> None:
    ids = [make_project(requester, name=f"p{i}")["id"] for i in range(3)]
    worker = make_worker(requester)
    page = client.get("/api/v1/me/projects?limit=2", headers=auth(worker)).json
    assert [p["id"] for p in page["projects"]] == ids[:2]
    rest = client.get(
        f"/api/v1/me/projects?limit=2&cursor={page['next_cursor']}", headers=auth(worker)
    ).json
    assert [p["id"] for p in rest["projects"]] == ids[2:] and rest["next_cursor"] is None


def test_a_worker_an_admin_created_sees_every_project(
    client, admin, requester, other_requester, make_project, make_worker
) -> None:
    ids = [make_project(requester)["id"], make_project(other_requester)["id"]]
    worker = make_worker(admin)
    listed = client.get("/api/v1/me/projects", headers=auth(worker)).json["projects"]
    assert [p["id"] for p in listed] == ids


def test_only_worker_tokens_have_a_project_list_of_their_own(client, requester, database) -> None:
    r = client.get("/api/v1/me/projects", headers=auth(requester))
    assert r.status_code == 403 and "worker" in r.json["error"]["message"]
    assert client.get("/api/v1/me/projects").status_code == 401
    with database.transaction() as cur:
        orphan = accounts.create(cur, Role.WORKER, "made by hand")[1]
    r = client.get("/api/v1/me/projects", headers=auth(orphan))
    assert r.status_code == 200 and r.json["projects"] == []


def test_has_tasks_says_whether_a_fetch_would_find_this_worker_a_task(
    client, requester, make_project, make_worker, database
) -> None:
    pid = make_project(requester, overlap=1, gold_rate=0)["id"]
    alice, bob = make_worker(requester, "alice"), make_worker(requester, "bob")

    def has_tasks(worker: str) -> bool:
        listed = client.get("/api/v1/me/projects", headers=auth(worker)).json["projects"]
        return bool(listed[0]["has_tasks"])

    def fetch(worker: str) -> int:
        r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
        return int(r.json["assignment_id"])

    assert not has_tasks(alice)  # no tasks yet
    tasks = [{"external_id": "t1"}, {"external_id": "t2"}, {"external_id": "g", "gold": "a"}]
    client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    assert has_tasks(alice) and has_tasks(bob)

    # Alice skips t1 (never shown to her again) and holds t2: nothing left for her; bob
    # still has t1. (The gold task alone does not count: it is only mixed in.)
    client.post(f"/api/v1/assignments/{fetch(alice)}/skip", headers=auth(alice))
    held = fetch(alice)
    assert not has_tasks(alice) and has_tasks(bob)
    client.post(f"/api/v1/assignments/{fetch(bob)}/answer", json={"label": "a"}, headers=auth(bob))
    assert not has_tasks(bob)  # t1 answered, t2 held by alice

    # Alice's reservation runs out: a fetch would reclaim its slot, so bob has t2 again.
    with database.transaction() as cur:
        cur.execute("UPDATE assignments SET expires_at = now() - interval '1 s' WHERE id = %s",
                    (held,))  # fmt: skip
    assert has_tasks(bob) and not has_tasks(alice)
    client.post(f"/api/v1/assignments/{fetch(bob)}/answer", json={"label": "b"}, headers=auth(bob))
    assert not has_tasks(bob)
