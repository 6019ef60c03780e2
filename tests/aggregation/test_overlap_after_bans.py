"""Dynamic overlap keeps asking when a ban takes answers out of the aggregation.

Found by `crowd demo`: answers of a banned worker still fill their tasks' slots, but the run
leaves them out, so a task could have every slot answered yet too few counted answers, and
never get another slot.
"""

from __future__ import annotations

from flask.testing import FlaskClient

from crowd.config import Settings
from tests.aggregation.test_live import answer_next, drain, post_tasks, results
from tests.conftest import auth


def test_tasks_whose_answers_came_from_a_banned_worker_get_new_slots(
    client: FlaskClient, requester: str, make_worker, make_project, settings: Settings
) -> None:
    pid = make_project(
        requester, labels=["yes", "no"], overlap=2, max_overlap=4, confidence_target=0.9,
        gold_rate=0.0,
    )["id"]  # fmt: skip
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(3)])
    spammer, honest, late = (make_worker(requester, n) for n in ("spammer", "honest", "late"))
    for _ in range(3):
        answer_next(client, spammer, pid, lambda _t: "no")
        answer_next(client, honest, pid, lambda _t: "yes")
    assert client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(late)).status_code == 204

    spammer_id = client.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json[
        "workers"
    ][0]["id"]  # type: ignore[index]
    banned = client.post(
        f"/api/v1/projects/{pid}/workers/{spammer_id}/ban", json={}, headers=auth(requester)
    )
    assert banned.status_code == 200
    drain(settings)  # the run counts one answer per task: below overlap 2

    got = results(client, requester, pid)
    assert all(r["aggregated_answers"] == 1 and r["status"] == "pending" for r in got.values())
    for _ in range(3):  # every task has a slot again, for a worker who has not answered it
        answer_next(client, late, pid, lambda _t: "yes")
    drain(settings)
    got = results(client, requester, pid)
    assert all(r["aggregated_answers"] == 2 and r["label"] == "yes" for r in got.values())
