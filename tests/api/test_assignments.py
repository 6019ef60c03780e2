"""The worker loop: fetch, answer, skip, retries, expiry, and overlap."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from crowd.store.db import Database
from tests.conftest import auth


def _setup(
    client: FlaskClient, requester: str, make_project: Any, n: int = 3, **settings: Any
) -> int:
    pid: int = make_project(requester, **settings)["id"]
    tasks = [{"external_id": f"t{i}", "data": {"i": i}} for i in range(n)]
    assert (
        client.post(
            f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester)
        ).status_code
        == 201
    )
    return pid


def _fetch(client: FlaskClient, pid: int, worker: str) -> Any:
    return client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))


def _answer(client: FlaskClient, aid: int, worker: str, label: str) -> Any:
    return client.post(
        f"/api/v1/assignments/{aid}/answer", json={"label": label}, headers=auth(worker)
    )


def test_fetch_returns_a_reservation_with_the_task(
    client, requester, make_project, make_worker
) -> None:
    pid = _setup(client, requester, make_project)
    r = _fetch(client, pid, make_worker(requester))
    assert r.status_code == 201
    body = r.json
    # Without a review setting every task is blind: no proposal (docs/REVIEW.md).
    assert set(body) == {"assignment_id", "task", "expires_at", "lane"}
    assert body["lane"] == "blind"
    assert body["task"]["external_id"] == "t0" and body["task"]["data"] == {"i": 0}


def test_answer_retry_is_not_a_second_answer(client, requester, make_project, make_worker) -> None:
    pid = _setup(client, requester, make_project)
    worker = make_worker(requester)
    aid = _fetch(client, pid, worker).json["assignment_id"]
    assert _answer(client, aid, worker, "b").status_code == 201
    again = _answer(client, aid, worker, "b")
    assert again.status_code == 200 and again.json["status"] == "repeated"
    different = _answer(client, aid, worker, "c")
    assert different.status_code == 409 and different.json["error"]["code"] == "different_answer"
    counts = client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["counts"]
    assert counts["answers"] == 1


def test_label_outside_the_project_is_422_listing_the_labels(
    client, requester, make_project, make_worker
) -> None:
    pid = _setup(client, requester, make_project)
    worker = make_worker(requester)
    aid = _fetch(client, pid, worker).json["assignment_id"]
    r = _answer(client, aid, worker, "zebra")
    assert r.status_code == 422
    assert "zebra" in r.json["error"]["message"] and "'a', 'b', 'c'" in r.json["error"]["message"]
    assert _answer(client, aid, worker, "a").status_code == 201  # the reservation is still usable


def test_only_the_holder_may_answer_or_skip(client, requester, make_project, make_worker) -> None:
    pid = _setup(client, requester, make_project)
    alice, bob = make_worker(requester, "alice"), make_worker(requester, "bob")
    aid = _fetch(client, pid, alice).json["assignment_id"]
    assert _answer(client, aid, bob, "a").status_code == 403
    assert client.post(f"/api/v1/assignments/{aid}/skip", headers=auth(bob)).status_code == 403
    assert _answer(client, aid + 1000, alice, "a").status_code == 404


def test_a_worker_never_gets_a_task_twice_and_gets_204_when_done(
    client, requester, make_project, make_worker
) -> None:
    pid = _setup(client, requester, make_project, n=3)
    worker = make_worker(requester)
    seen = []
    while (r := _fetch(client, pid, worker)).status_code == 201:
        seen.append(r.json["task"]["external_id"])
        _answer(client, r.json["assignment_id"], worker, "a")
    assert r.status_code == 204 and r.data == b""
    assert sorted(seen) == ["t0", "t1", "t2"]


def test_a_task_gets_at_most_overlap_workers_counting_live_reservations(
    client, requester, make_project, make_worker
) -> None:
    pid = _setup(client, requester, make_project, n=1, overlap=2)
    first, second, third = (make_worker(requester, n) for n in "xyz")
    assert _fetch(client, pid, first).status_code == 201  # held, not answered
    assert _fetch(client, pid, second).status_code == 201
    assert _fetch(client, pid, third).status_code == 204


def test_partly_answered_tasks_come_first_then_creation_order(
    client, requester, make_project, make_worker
) -> None:
    pid = _setup(client, requester, make_project, n=3, overlap=2)
    w1, w2, w3 = (make_worker(requester, n) for n in "abc")
    # w1 answers t0 and then t1; w2 is then offered t0 (it has answers), then t1, then t2.
    for _ in range(2):
        got = _fetch(client, pid, w1).json
        _answer(client, got["assignment_id"], w1, "a")
    order = []
    while (r := _fetch(client, pid, w2)).status_code == 201:
        order.append(r.json["task"]["external_id"])
        _answer(client, r.json["assignment_id"], w2, "a")
    assert order == ["t0", "t1", "t2"]
    assert _fetch(client, pid, w3).json["task"]["external_id"] == "t2"


def test_skip_gives_the_task_to_others_but_not_back(
    client, requester, make_project, make_worker
) -> None:
    pid = _setup(client, requester, make_project, n=1, overlap=1)
    alice, bob = make_worker(requester, "alice"), make_worker(requester, "bob")
    aid = _fetch(client, pid, alice).json["assignment_id"]
    assert _fetch(client, pid, bob).status_code == 204
    skipped = client.post(f"/api/v1/assignments/{aid}/skip", headers=auth(alice))
    assert skipped.status_code == 200
    assert (
        client.post(f"/api/v1/assignments/{aid}/skip", headers=auth(alice)).status_code == 200
    )  # retry
    assert _answer(client, aid, alice, "a").status_code == 409
    assert _fetch(client, pid, alice).status_code == 204
    assert _fetch(client, pid, bob).status_code == 201


def test_an_expired_reservation_is_refused_and_handed_out_again(
    client, requester, make_project, make_worker, database: Database
) -> None:
    pid = _setup(client, requester, make_project, n=1, overlap=1)
    alice, bob = make_worker(requester, "alice"), make_worker(requester, "bob")
    aid = _fetch(client, pid, alice).json["assignment_id"]
    assert _fetch(client, pid, bob).status_code == 204
    with database.transaction() as cur:  # let the lease run out
        cur.execute(
            "UPDATE assignments SET expires_at = now() - interval '1 second' WHERE id = %s", (aid,)
        )
    late = _answer(client, aid, alice, "a")
    assert late.status_code == 409 and late.json["error"]["code"] == "expired"
    got = _fetch(client, pid, bob)
    assert got.status_code == 201
    assert _answer(client, got.json["assignment_id"], bob, "b").status_code == 201


def test_expired_reservations_are_reclaimed_without_their_holder(
    client, requester, make_project, make_worker, database: Database
) -> None:
    pid = _setup(client, requester, make_project, n=1, overlap=1)
    alice, bob = make_worker(requester, "alice"), make_worker(requester, "bob")
    _fetch(client, pid, alice)  # alice walks away
    with database.transaction() as cur:
        cur.execute("UPDATE assignments SET expires_at = now() - interval '1 second'")
    assert _fetch(client, pid, bob).status_code == 201


def test_roles_are_enforced(client, requester, other_requester, make_project, make_worker) -> None:
    pid = _setup(client, requester, make_project)
    worker = make_worker(requester)
    outsider = make_worker(other_requester)
    assert _fetch(client, pid, requester).status_code == 403
    assert _fetch(client, pid, outsider).status_code == 404
    for path in (
        f"/api/v1/projects/{pid}/results",
        f"/api/v1/projects/{pid}/answers",
        "/api/v1/projects",
    ):
        r = client.get(path, headers=auth(worker))
        assert r.status_code == 403 and "worker token" in r.json["error"]["message"]
    assert (
        client.post("/api/v1/workers", json={"name": "x"}, headers=auth(worker)).status_code == 403
    )


def test_answer_with_next_reserves_the_following_task_in_one_request(
    client, requester, make_project, make_worker
) -> None:
    pid = _setup(client, requester, make_project, n=2)
    worker = make_worker(requester)
    first = _fetch(client, pid, worker).json
    r = client.post(
        f"/api/v1/assignments/{first['assignment_id']}/answer",
        json={"label": "a", "next": True},
        headers=auth(worker),
    )
    assert r.status_code == 201
    following = r.json["next"]
    assert following["task"]["external_id"] == "t1"
    r = client.post(
        f"/api/v1/assignments/{following['assignment_id']}/answer",
        json={"label": "b", "next": True},
        headers=auth(worker),
    )
    assert r.status_code == 201 and r.json["next"] is None
    plain = _answer(client, first["assignment_id"], worker, "a")
    assert plain.status_code == 200 and "next" not in plain.json
    counts = client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["counts"]
    assert counts["answers"] == 2 and counts["reservations"] == 0


def test_a_retried_answer_with_next_returns_the_same_next_task(
    client, requester, make_project, make_worker
) -> None:
    pid = _setup(client, requester, make_project, n=3)
    worker = make_worker(requester)
    first = _fetch(client, pid, worker).json
    body = {"label": "a", "next": True}
    url = f"/api/v1/assignments/{first['assignment_id']}/answer"
    original = client.post(url, json=body, headers=auth(worker))
    retry = client.post(url, json=body, headers=auth(worker))  # the first response was lost
    assert original.status_code == 201 and retry.status_code == 200
    assert retry.json["next"] == original.json["next"]
    counts = client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["counts"]
    assert counts["reservations"] == 1


def test_no_gold_is_served_once_no_regular_task_is_left_so_done_stays_done(
    client, requester, make_project, make_worker
) -> None:
    # Gold is mixed into regular work. Once "next" is null (no regular task left for this
    # worker) every later fetch is a 204, even with unseen gold and a gold draw that always
    # says gold: before, the draw could hand out a gold task after the null.
    pid = _setup(client, requester, make_project, n=2, gold_rate=0.0)
    gold = [{"external_id": f"g{i}", "data": {}, "gold": "a"} for i in range(2)]
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": gold}, headers=auth(requester))
    assert r.status_code == 201
    worker = make_worker(requester)
    current = _fetch(client, pid, worker).json
    served = []
    while current is not None:
        served.append(current["task"]["external_id"])
        r = client.post(
            f"/api/v1/assignments/{current['assignment_id']}/answer",
            json={"label": "a", "next": True},
            headers=auth(worker),
        )
        assert r.status_code == 201
        current = r.json["next"]
    assert served == ["t0", "t1"]
    r = client.patch(f"/api/v1/projects/{pid}", json={"gold_rate": 1.0}, headers=auth(requester))
    assert r.status_code == 200
    for _ in range(5):
        assert _fetch(client, pid, worker).status_code == 204
    # while regular work is left, the same draw serves gold first
    other = make_worker(requester, "other")
    assert _fetch(client, pid, other).json["task"]["external_id"].startswith("g")
