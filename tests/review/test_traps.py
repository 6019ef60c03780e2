"""Traps (issue 12): a share of review-lane fetches serve a gold task with a wrong proposal; a
worker's traps answered and caught show in GET .../workers, and `qc_min_trap_catch` bans a
worker who accepts wrong proposals."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.aggregation.test_live import drain, post_tasks
from tests.conftest import auth
from tests.review.helpers import answer, fetch, review_project


def _workers(client: FlaskClient, token: str, pid: int) -> dict[str, Any]:
    r = client.get(f"/api/v1/projects/{pid}/workers", headers=auth(token))
    assert r.status_code == 200, r.json
    return {w["name"]: w for w in r.json["workers"]}


def test_a_trap_is_a_gold_task_with_a_wrong_proposal_and_workers_show_the_catch_rate(
    client, requester, make_project, make_worker
) -> None:
    labels = ["pos", "neg", "neu"]
    review = {"trap_rate": 1.0, "blind_below": 0.5}
    pid = make_project(requester, labels=labels, overlap=1, gold_rate=0.0, review=review)["id"]
    gold = {f"g{i}": labels[i % 3] for i in range(9)}
    post_tasks(client, requester, pid, [{"external_id": x, "gold": y} for x, y in gold.items()])
    # Traps are mixed into regular work: served while a regular task is left for the worker.
    post_tasks(client, requester, pid, [{"external_id": "t"}])
    stamper, checker = make_worker(requester, "stamper"), make_worker(requester, "checker")
    for worker in (stamper, checker):
        for i in range(6):
            got = fetch(client, pid, worker)
            assert got is not None
            x = got["task"]["external_id"]
            assert got["lane"] == "review"
            shown = got["proposal"]["label"]
            assert shown in labels and shown != gold[x]  # always a wrong proposal
            # The stamper accepts all; the checker corrects all but the last one.
            accept = worker == stamper or i == 5
            answer(client, worker, got["assignment_id"], shown if accept else gold[x])
    shown = _workers(client, requester, pid)
    assert shown["stamper"]["trap_answers"] == 6
    assert shown["stamper"]["trap_catch_rate"] == 0.0
    assert shown["checker"]["trap_answers"] == 6
    assert shown["checker"]["trap_catch_rate"] == round(5 / 6, 6)


def test_without_review_or_gold_no_fetch_is_a_trap(
    client, requester, make_project, make_worker
) -> None:
    pid = make_project(requester, labels=["pos", "neg"], overlap=1, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"g{i}", "gold": "pos"} for i in range(3)])
    post_tasks(client, requester, pid, [{"external_id": "t"}])
    got = fetch(client, pid, make_worker(requester))
    assert got is not None and got["task"]["external_id"] == "t" and got["lane"] == "blind"
    review = {"trap_rate": 1.0}
    pid = review_project(client, make_project, requester, {"t": 0.9}, review=review)
    got = fetch(client, pid, make_worker(requester))
    assert got is not None and got["task"]["external_id"] == "t"  # no gold: no trap


def test_qc_min_trap_catch_bans_a_stamper_and_keeps_an_honest_reviewer(
    client, requester, make_project, make_worker, settings
) -> None:
    """The rule judges stamping from every review answer (crowd.em.stamping): a worker who
    gives the opposite label confirms every trap's wrong proposal, as the stamper does, but
    corrects the right proposals, so it is not banned as a stamper."""
    review = {"overlap": 2, "max_overlap": 2, "blind_below": 0.5, "trap_rate": 0.5}
    pid = review_project(
        client, make_project, requester, {f"t{i}": 0.9 for i in range(40)}, review=review,
        qc_min_trap_catch=0.5, qc_min_answers=10, qc_confidence=0.95,
    )  # fmt: skip
    gold = {f"g{i}": "neg" if i % 2 else "pos" for i in range(40)}
    post_tasks(client, requester, pid, [{"external_id": x, "gold": y} for x, y in gold.items()])
    stamper, honest = make_worker(requester, "stamper"), make_worker(requester, "honest")
    opposite = make_worker(requester, "opposite")
    flip = {"pos": "neg", "neg": "pos"}
    for _ in range(30):
        for worker in (stamper, honest, opposite):
            got = fetch(client, pid, worker)
            assert got is not None
            x = got["task"]["external_id"]
            truth = gold.get(x, "pos")  # the model's proposal for regular tasks is right
            shown = got["proposal"]["label"]
            said = {stamper: shown, honest: truth, opposite: flip[truth]}[worker]
            answer(client, worker, got["assignment_id"], said)
    drain(settings)
    shown = _workers(client, requester, pid)
    # On traps alone the opposite-label worker is a stamper: it catches none of them.
    assert shown["opposite"]["trap_answers"] >= 5 and shown["opposite"]["trap_catch_rate"] == 0
    assert shown["opposite"]["status"] == "active" and shown["opposite"]["ban_rule"] is None
    assert shown["opposite"]["rules"]["trap"]["p_below"] < 0.5
    assert shown["honest"]["rules"]["trap"]["p_below"] < 0.5
    assert shown["stamper"]["trap_answers"] >= 5 and shown["stamper"]["trap_catch_rate"] == 0
    assert shown["stamper"]["status"] == "banned"
    assert shown["stamper"]["ban_rule"] == "trap"
    assert "checked rather than accepted unseen" in shown["stamper"]["reason"]
    assert shown["stamper"]["rules"]["trap"]["p_below"] >= 0.95
    # The estimate is the share of proposals checked rather than stamped (1 - stamp rate).
    assert shown["stamper"]["rules"]["trap"]["estimate"] < 0.2
    assert shown["honest"]["status"] == "active"
    assert shown["honest"]["trap_catch_rate"] == 1.0
    r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(stamper))
    assert r.status_code == 403 and r.json["error"]["code"] == "banned"


def test_a_reviewer_is_served_onboarding_traps_until_it_has_answered_enough(
    client, requester, make_project, make_worker
) -> None:
    review = {"trap_rate": 0.0, "onboarding_trap_rate": 1.0, "onboarding_traps": 3}
    pid = review_project(
        client, make_project, requester, {f"t{i}": 0.9 for i in range(4)}, review=review
    )
    gold = {f"g{i}": "neg" if i % 2 else "pos" for i in range(8)}
    post_tasks(client, requester, pid, [{"external_id": x, "gold": y} for x, y in gold.items()])
    for name in ("first", "second"):  # counted per worker
        worker = make_worker(requester, name)
        served = []
        for _ in range(4):
            got = fetch(client, pid, worker)
            assert got is not None and got["lane"] == "review"
            served.append(got["task"]["external_id"])
            answer(client, worker, got["assignment_id"], got["proposal"]["label"])
        # Its first three answers are traps; with three traps answered, trap_rate (0) holds.
        assert [x in gold for x in served] == [True, True, True, False]
        assert _workers(client, requester, pid)[name]["trap_answers"] == 3


def test_onboarding_settings_are_checked(client, requester, make_project) -> None:
    pid = make_project(requester, labels=["pos", "neg"])["id"]
    for bad, field in (
        ({"onboarding_trap_rate": 1.5}, "review.onboarding_trap_rate"),
        ({"onboarding_traps": 0}, "review.onboarding_traps"),
    ):
        r = client.patch(f"/api/v1/projects/{pid}", json={"review": bad}, headers=auth(requester))
        assert r.status_code == 422 and field in r.json["error"]["message"], r.json
