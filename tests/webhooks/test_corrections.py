"""Corrections go back to the model's owner: ``task.completed`` carries each task's newest
prediction, and ``review.corrections`` fires after every ``corrections_every`` corrections
(real RQ worker, real HTTP receiver on 127.0.0.1)."""

from __future__ import annotations

from tests.aggregation.test_live import answer_next, post_tasks
from tests.conftest import auth
from tests.webhooks.test_delivery import add_hook, work_until_sent


def _predicted(ids: list[str]) -> list[dict[str, object]]:
    prediction = {"model": "m", "label": "yes", "confidence": 0.8}
    return [{"external_id": e, "prediction": prediction} for e in ids]


def test_review_corrections_fires_after_every_corrections_every_new_corrections(
    client, requester, make_worker, make_project, database, fast_retries, receiver
) -> None:
    """Two rounds of answers, each aggregated and delivered by real burst workers: the first
    stays under corrections_every, the second crosses it."""
    receiver.failures = 0
    spec = {"labels": ["yes", "no"], "overlap": 1, "gold_rate": 0.0, "corrections_every": 3}
    pid = make_project(requester, **spec)["id"]
    add_hook(client, requester, pid, receiver.url, events=["task.completed", "review.corrections"])
    post_tasks(client, requester, pid, _predicted([f"t{i}" for i in range(5)]))
    post_tasks(client, requester, pid, [{"external_id": "plain"}])
    worker = make_worker(requester)
    wrong = {"t0", "t1", "t5", "t6"}

    def choose(external_id: str) -> str:
        return "no" if external_id in wrong else "yes"

    for _ in range(6):
        answer_next(client, worker, pid, choose)
    work_until_sent(fast_retries, database)
    assert receiver.by_event("review.corrections") == []  # two corrections of three
    tasks = {
        t["external_id"]: t for b in receiver.by_event("task.completed") for t in b["data"]["tasks"]
    }
    assert tasks["t0"]["label"] == "no"
    assert tasks["t0"]["prediction"] == {"model": "m", "label": "yes", "confidence": 0.8}
    assert tasks["plain"]["prediction"] is None

    post_tasks(client, requester, pid, _predicted(["t5", "t6", "t7"]))
    for _ in range(3):
        answer_next(client, worker, pid, choose)
    assert client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    work_until_sent(fast_retries, database)
    (event,) = receiver.by_event("review.corrections")
    data = event["data"]
    assert data["corrections"] == 4 and data["total_corrections"] == 4  # each counted once
    assert data["corrections_every"] == 3 and data["models"] == {"m": 4}
    corrections = client.get(
        f"/api/v1/projects/{pid}/corrections?model=m", headers=auth(requester)
    ).json["corrections"]
    assert sorted(c["external_id"] for c in corrections) == sorted(wrong)
