"""Routing at fetch (issue 12): a task whose newest prediction is confident enough is served in
the review lane with the prediction as a proposal; the others are labelled blind, and never
carry a proposal anywhere."""

from __future__ import annotations

from typing import Any

from crowd.store.db import Database
from tests.aggregation.test_live import drain
from tests.conftest import auth
from tests.review.helpers import answer, fetch, fetch_all, review_project

CONFIDENCES = {"none": None, "low": 0.3, "edge": 0.5, "high": 0.8, "sure": 0.99}


def _proposals(database: Database, pid: int) -> dict[str, int | None]:
    with database.transaction() as cur:
        cur.execute(
            "SELECT t.external_id, a.proposal FROM assignments a JOIN tasks t ON t.id = a.task_id"
            " WHERE a.project_id = %s",
            (pid,),
        )
        return dict(cur.fetchall())


def test_each_task_goes_to_its_lane_at_the_threshold_and_only_review_carries_a_proposal(
    client, requester, make_project, make_worker, database
) -> None:
    review = {"overlap": 1, "max_overlap": 3, "blind_below": 0.5, "trap_rate": 0.0}
    pid = review_project(client, make_project, requester, CONFIDENCES, review=review)
    got = fetch_all(client, pid, make_worker(requester, "a"))
    assert set(got) == set(CONFIDENCES)
    lanes = {x: g["lane"] for x, g in got.items()}
    assert lanes == {
        "none": "blind",
        "low": "blind",
        "edge": "review",
        "high": "review",
        "sure": "review",
    }
    for g in got.values():
        if g["lane"] == "review":
            assert g["proposal"] == {"label": "pos"}
        else:
            assert "proposal" not in g and "pos" not in str(g)
    # What each worker was shown is stored with the assignment: NULL for blind.
    assert _proposals(database, pid) == {
        "none": None,
        "low": None,
        "edge": 0,
        "high": 0,
        "sure": 0,
    }


def test_blind_below_moves_the_threshold_and_a_project_without_review_is_all_blind(
    client, requester, make_project, make_worker
) -> None:
    for blind_below, review_lane in ((0.9, {"sure"}), (0.0, {"low", "edge", "high", "sure"})):
        review = {"blind_below": blind_below, "trap_rate": 0.0}
        pid = review_project(client, make_project, requester, CONFIDENCES, review=review)
        got = fetch_all(client, pid, make_worker(requester, f"w{blind_below}"))
        assert {x for x, g in got.items() if g["lane"] == "review"} == review_lane
    pid = review_project(client, make_project, requester, CONFIDENCES, review=None)
    got = fetch_all(client, pid, make_worker(requester, "off"))
    assert all(g["lane"] == "blind" and "proposal" not in g for g in got.values())


def test_review_tasks_take_review_overlap_answers_and_blind_ones_the_projects(
    client, requester, make_project, make_worker
) -> None:
    review = {"overlap": 1, "max_overlap": 2, "blind_below": 0.5, "trap_rate": 0.0}
    pid = review_project(
        client, make_project, requester, {"a": 0.9, "b": 0.9, "blind": None}, review=review
    )
    assert set(fetch_all(client, pid, make_worker(requester, "w1"))) == {"a", "b", "blind"}
    # Live reservations count against a task's slots: one for review, two (overlap) blind.
    assert set(fetch_all(client, pid, make_worker(requester, "w2"))) == {"blind"}
    assert fetch_all(client, pid, make_worker(requester, "w3")) == {}


def test_a_correction_opens_a_review_slot_and_a_confirmation_does_not(
    client, requester, make_project, make_worker
) -> None:
    review = {"overlap": 1, "max_overlap": 2, "blind_below": 0.5, "trap_rate": 0.0}
    pid = review_project(
        client, make_project, requester, {"confirmed": 0.9, "corrected": 0.9}, review=review
    )
    w1 = make_worker(requester, "w1")
    held = fetch_all(client, pid, w1)
    answer(client, w1, held["confirmed"]["assignment_id"], "pos")
    answer(client, w1, held["corrected"]["assignment_id"], "neg")
    # One review answer each; only the corrected task opened a second (review) slot.
    w2 = make_worker(requester, "w2")
    second = fetch_all(client, pid, w2)
    assert set(second) == {"corrected"}
    assert second["corrected"]["lane"] == "review"
    assert second["corrected"]["proposal"] == {"label": "pos"}
    # Corrected again: max_overlap 2 is the cap, so no third slot.
    answer(client, w2, second["corrected"]["assignment_id"], "neg")
    assert fetch_all(client, pid, make_worker(requester, "w3")) == {}


def test_patching_review_reroutes_unanswered_tasks_and_null_makes_them_blind(
    client, requester, make_project, make_worker
) -> None:
    pid = review_project(client, make_project, requester, CONFIDENCES, review=None)
    url = f"/api/v1/projects/{pid}"
    r = client.patch(url, json={"review": {"blind_below": 0.6}}, headers=auth(requester))
    assert r.status_code == 200, r.json
    got = fetch_all(client, pid, make_worker(requester, "a"))
    assert {x for x, g in got.items() if g["lane"] == "review"} == {"high", "sure"}
    # Turned off: tasks still open in the review lane are blind, with the project's overlap.
    client.patch(url, json={"review": None}, headers=auth(requester))
    got = fetch_all(client, pid, make_worker(requester, "b"))
    assert set(got) == set(CONFIDENCES)
    assert all(g["lane"] == "blind" and "proposal" not in g for g in got.values())


def test_inline_predictions_route_new_tasks_and_answer_next_keeps_the_lanes_apart(
    client, requester, make_project, make_worker
) -> None:
    review = {"overlap": 1, "blind_below": 0.5, "trap_rate": 0.0}
    pid = review_project(client, make_project, requester, {}, review=review)
    tasks: list[dict[str, Any]] = [
        {"external_id": "a", "prediction": {"model": "m", "label": "neg", "confidence": 0.7}},
        {"external_id": "b", "prediction": {"model": "m", "label": "neg", "confidence": 0.2}},
    ]
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    assert r.status_code == 201, r.json
    worker = make_worker(requester)
    first = fetch(client, pid, worker)
    assert first is not None and first["task"]["external_id"] == "a"
    assert first["lane"] == "review" and first["proposal"] == {"label": "neg"}
    r = client.post(
        f"/api/v1/assignments/{first['assignment_id']}/answer",
        json={"label": "neg", "next": True},
        headers=auth(worker),
    )
    following = r.json["next"]
    assert following["task"]["external_id"] == "b"
    assert following["lane"] == "blind" and "proposal" not in following


def test_low_confidence_after_a_run_opens_review_slots_up_to_review_max_overlap(
    client, requester, make_project, make_worker, settings
) -> None:
    review = {"overlap": 1, "max_overlap": 2, "blind_below": 0.5, "trap_rate": 0.0}
    pid = review_project(
        client, make_project, requester, {"t": 0.9}, review=review,
        overlap=1, max_overlap=5, confidence_target=0.999,
    )  # fmt: skip
    w1 = make_worker(requester, "w1")
    held = fetch_all(client, pid, w1)
    answer(client, w1, held["t"]["assignment_id"], "pos")  # a confirmation: no new slot
    assert fetch_all(client, pid, make_worker(requester, "w2")) == {}
    drain(settings)  # one answer is far from 0.999: the run opens a slot, in the review lane
    w3 = make_worker(requester, "w3")
    again = fetch_all(client, pid, w3)
    assert again["t"]["lane"] == "review"
    answer(client, w3, again["t"]["assignment_id"], "pos")
    drain(settings)  # still below the target, but review.max_overlap (2) caps it
    assert fetch_all(client, pid, make_worker(requester, "w4")) == {}
    r = client.get(f"/api/v1/projects/{pid}/results", headers=auth(requester))
    assert r.json["results"][0]["status"] == "complete"


def test_progress_counts_a_review_task_answered_up_to_its_cap_as_complete(
    client, requester, make_project, make_worker, settings
) -> None:
    review = {"overlap": 1, "max_overlap": 1, "blind_below": 0.5, "trap_rate": 0.0}
    pid = review_project(
        client, make_project, requester, {"t": 0.9}, review=review,
        overlap=1, max_overlap=5, confidence_target=0.999,
    )  # fmt: skip
    w1 = make_worker(requester, "w1")
    answer(client, w1, fetch_all(client, pid, w1)["t"]["assignment_id"], "pos")
    drain(settings)
    counts = client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["counts"]
    assert counts["tasks_complete"] == 1
