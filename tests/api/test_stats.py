"""GET /api/v1/projects/{id}/stats: the dashboard's confidence histogram and answers per task."""

from __future__ import annotations

from tests.aggregation.test_live import answer_next, drain, post_tasks
from tests.conftest import auth


def test_histogram_counts_published_results_and_answers_per_task_counts_regular_tasks(
    client, requester, make_project, make_worker, settings
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=2, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(5)])
    post_tasks(client, requester, pid, [{"external_id": "g", "gold": "a"}])
    workers = [make_worker(requester, f"w{i}") for i in range(2)]
    for _ in range(3):
        answer_next(client, workers[0], pid, lambda t: "a")
    answer_next(client, workers[1], pid, lambda t: "b")

    before = client.get(f"/api/v1/projects/{pid}/stats", headers=auth(requester)).json
    assert before["last_run_id"] is None
    assert before["confidence"]["tasks"] == 0 and len(before["confidence"]["bins"]) == 10
    assert before["answers_per_task"] == [
        {"answers": 0, "tasks": 2},
        {"answers": 1, "tasks": 2},
        {"answers": 2, "tasks": 1},
    ]

    drain(settings)
    after = client.get(f"/api/v1/projects/{pid}/stats?bins=4", headers=auth(requester)).json
    run_id = client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["last_run_id"]
    results = client.get(f"/api/v1/projects/{pid}/results", headers=auth(requester)).json
    expected = [0] * 4
    for result in results["results"]:
        if result["run_id"] is not None:
            expected[min(int(result["confidence"] * 4), 3)] += 1
    assert after["last_run_id"] == run_id is not None
    assert [b["tasks"] for b in after["confidence"]["bins"]] == expected
    assert after["confidence"]["tasks"] == sum(expected) == 3
    assert [(b["from"], b["to"]) for b in after["confidence"]["bins"]] == [
        (0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)
    ]  # fmt: skip


def test_bins_out_of_range_get_a_400_saying_what_to_send(client, requester, make_project) -> None:
    pid = make_project(requester)["id"]
    for bad in ("0", "101", "x", "-1"):
        r = client.get(f"/api/v1/projects/{pid}/stats?bins={bad}", headers=auth(requester))
        assert r.status_code == 400
        assert "bins must be a whole number from 1 to 100" in r.json["error"]["message"]


def test_another_requesters_project_is_not_found(
    client, requester, other_requester, make_project, make_worker
) -> None:
    pid = make_project(requester)["id"]
    assert (
        client.get(f"/api/v1/projects/{pid}/stats", headers=auth(other_requester)).status_code
        == 404
    )
    worker = make_worker(requester)
    assert client.get(f"/api/v1/projects/{pid}/stats", headers=auth(worker)).status_code == 403
