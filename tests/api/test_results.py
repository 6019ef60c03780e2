"""Requesters read majority-vote results and raw answers, page by page."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import auth


def _answer_all(client: FlaskClient, pid: int, worker: str, labels: dict[str, str]) -> None:
    while (
        r := client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
    ).status_code == 201:
        label = labels[r.json["task"]["external_id"]]
        client.post(
            f"/api/v1/assignments/{r.json['assignment_id']}/answer",
            json={"label": label},
            headers=auth(worker),
        )


def test_results_are_majority_vote_with_vote_share_and_lowest_label_on_ties(
    client, requester, make_project, make_worker
) -> None:
    pid = make_project(requester, labels=["pos", "neg", "neu"], overlap=3)["id"]
    tasks = [{"external_id": e} for e in ("clear", "tie", "empty")]
    client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    votes = [("neg", "neu"), ("neg", "pos"), ("pos", "neg")]
    for i, (clear, tie) in enumerate(votes):
        worker = make_worker(requester, f"w{i}")
        r1 = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json
        r2 = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json
        by_task = {r1["task"]["external_id"]: r1, r2["task"]["external_id"]: r2}
        for ext, label in (("clear", clear), ("tie", tie)):
            client.post(
                f"/api/v1/assignments/{by_task[ext]['assignment_id']}/answer",
                json={"label": label},
                headers=auth(worker),
            )
    results = {
        r["external_id"]: r
        for r in client.get(f"/api/v1/projects/{pid}/results", headers=auth(requester)).json[
            "results"
        ]
    }
    assert results["clear"]["label"] == "neg"
    assert results["clear"]["confidence"] == round(2 / 3, 6)
    assert results["clear"]["answers"] == 3 and results["clear"]["status"] == "complete"
    # one vote each: the tie goes to the label listed first in the project
    assert results["tie"]["label"] == "pos" and results["tie"]["confidence"] == round(1 / 3, 6)
    assert results["empty"] == {
        "task_id": results["empty"]["task_id"],
        "external_id": "empty",
        "label": None,
        "confidence": None,
        "run_id": None,
        "answers": 0,
        "aggregated_answers": 0,
        "status": "pending",
        "prediction": None,
    }


def test_results_and_answers_paginate_over_everything(
    client, requester, make_project, make_worker
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=2)["id"]
    tasks = [{"external_id": f"t{i:02d}"} for i in range(25)]
    client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    truth = {t["external_id"]: "a" if i % 3 else "b" for i, t in enumerate(tasks)}
    workers = [make_worker(requester, n) for n in ("x", "y")]
    for worker in workers:
        _answer_all(client, pid, worker, truth)

    def walk(kind: str) -> list[dict]:
        items, cursor = [], ""
        while True:
            page = client.get(
                f"/api/v1/projects/{pid}/{kind}?limit=7&cursor={cursor}", headers=auth(requester)
            ).json
            items += page[kind]
            if page["next_cursor"] is None:
                return items
            cursor = page["next_cursor"]

    results = walk("results")
    assert [r["external_id"] for r in results] == sorted(truth)
    assert all(r["label"] == truth[r["external_id"]] and r["confidence"] == 1.0 for r in results)
    answers = walk("answers")
    assert len(answers) == 50
    assert len({a["id"] for a in answers}) == 50
    assert all(a["label"] == truth[a["external_id"]] for a in answers)
    assert {a["worker_id"] for a in answers} == {
        w["id"] for w in client.get("/api/v1/workers", headers=auth(requester)).json["workers"]
    }


def test_bad_paging_parameters_are_400_saying_what_to_send(client, requester, make_project) -> None:
    pid = make_project(requester)["id"]
    for query in (
        "limit=0",
        "limit=1001",
        "limit=99999999999999999999",
        "limit=-1",
        "limit=abc",
        "cursor=garbage",
        "cursor=%00",
        "cursor=djE6LTE",
    ):
        r = client.get(f"/api/v1/projects/{pid}/results?{query}", headers=auth(requester))
        assert r.status_code == 400, query
        message = r.json["error"]["message"]
        assert ("limit must be" in message) or ("next_cursor" in message), query


def test_gold_tasks_are_left_out_unless_include_gold_lists_them_with_their_known_label(
    client, requester, make_project, make_worker
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=1.0)["id"]
    tasks = [{"external_id": "r1"}, {"external_id": "g1", "gold": "b"}]
    client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    _answer_all(client, pid, make_worker(requester), {"r1": "a", "g1": "a"})

    def results(query: str) -> dict[str, dict]:
        page = client.get(f"/api/v1/projects/{pid}/results{query}", headers=auth(requester)).json
        return {r["external_id"]: r for r in page["results"]}

    assert list(results("")) == ["r1"] and "gold" not in results("")["r1"]
    both = results("?include_gold=true")
    assert both["r1"]["gold"] is None and both["r1"]["label"] == "a"
    # The known label, not the worker's wrong answer; nothing estimated, so no confidence.
    assert both["g1"] | {"task_id": 0} == {
        "task_id": 0,
        "external_id": "g1",
        "gold": "b",
        "label": "b",
        "confidence": None,
        "run_id": None,
        "answers": 1,
        "aggregated_answers": 0,
        "status": "complete",
        "prediction": None,
    }
    assert list(results("?include_gold=true&status=complete")) == ["r1", "g1"]
    assert list(results("?include_gold=true&status=pending")) == []
    bad = client.get(f"/api/v1/projects/{pid}/results?include_gold=yes", headers=auth(requester))
    assert (
        bad.status_code == 400
        and "include_gold must be true or false" in bad.json["error"]["message"]
    )
