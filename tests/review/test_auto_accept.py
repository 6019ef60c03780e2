"""Auto-accept and audits (issue 12): predictions calibrated to reach ``accept_at`` are accepted
with no human answer; ``audit_rate`` of would-be-accepted tasks go to blind labelling, and
GET .../review reports the audited precision."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask.testing import FlaskClient

from tests.aggregation.test_live import drain, post_tasks, results
from tests.conftest import auth
from tests.review.helpers import answer, fetch_all

LABELS = ["pos", "neg"]


def _overconfident(rng: np.random.Generator, n: int, prefix: str) -> tuple[list[Any], dict]:
    """``n`` tasks with a hidden true label and an overconfident model's prediction: it says
    confidence c (uniform in 0.8-1) and is right with probability c - 0.1."""
    truth = rng.integers(0, 2, n)
    conf = rng.uniform(0.8, 1.0, n)
    right = rng.random(n) < conf - 0.1
    predicted = np.where(right, truth, 1 - truth)
    preds = [
        {"external_id": f"{prefix}{i}", "label": LABELS[predicted[i]], "confidence": float(conf[i])}
        for i in range(n)
    ]
    return preds, {f"{prefix}{i}": LABELS[truth[i]] for i in range(n)}


def _predict(client: FlaskClient, token: str, pid: int, preds: list[Any]) -> None:
    r = client.post(
        f"/api/v1/projects/{pid}/predictions",
        json={"model": "llm", "predictions": preds},
        headers=auth(token),
    )
    assert r.status_code == 201, r.json


def _review(client: FlaskClient, token: str, pid: int) -> Any:
    r = client.get(f"/api/v1/projects/{pid}/review", headers=auth(token))
    assert r.status_code == 200, r.json
    return r.json


def test_auto_accept_calibrated_on_gold_meets_its_accuracy_on_held_out_tasks(
    client, requester, make_project
) -> None:
    rng = np.random.default_rng(7)
    accept_at = 0.85
    review = {"accept_at": accept_at, "audit_rate": 0.0, "trap_rate": 0.0}
    pid = make_project(requester, labels=LABELS, overlap=3, gold_rate=0.0, review=review)["id"]
    gold_preds, gold_truth = _overconfident(rng, 2500, "g")
    held_preds, held_truth = _overconfident(rng, 3000, "t")
    post_tasks(
        client, requester, pid, [{"external_id": x, "gold": y} for x, y in gold_truth.items()]
    )
    post_tasks(client, requester, pid, [{"external_id": x} for x in held_truth])
    _predict(client, requester, pid, gold_preds + held_preds)

    shown = results(client, requester, pid, "&limit=1000")
    accepted: dict[str, str] = {}
    cursor = ""
    while True:
        r = client.get(
            f"/api/v1/projects/{pid}/results?limit=1000{cursor}", headers=auth(requester)
        ).json
        for row in r["results"]:
            if row["label_source"] == "model":
                assert row["status"] == "complete" and row["answers"] == 0
                accepted[row["external_id"]] = row["label"]
        if r["next_cursor"] is None:
            break
        cursor = f"&cursor={r['next_cursor']}"
    assert shown  # every row carries label_source with a review setting
    report = _review(client, requester, pid)
    threshold = report["models"][0]["threshold"]
    assert threshold is not None and threshold > accept_at  # overconfidence costs margin
    assert report["auto_accepted"] == len(accepted) > 200
    accuracy = np.mean([accepted[x] == held_truth[x] for x in accepted])
    assert accuracy >= accept_at, (accuracy, threshold, len(accepted))
    # Accepting at the raw confidence instead would have missed the target.
    raw = [p for p in held_preds if p["confidence"] >= accept_at]
    assert np.mean([p["label"] == held_truth[p["external_id"]] for p in raw]) < accept_at


def test_without_enough_evidence_nothing_is_accepted_and_audits_sample_at_audit_rate(
    client, requester, make_project, make_worker
) -> None:
    review = {"accept_at": 0.9, "audit_rate": 0.2, "trap_rate": 0.0, "blind_below": 0.5}
    pid = make_project(requester, labels=LABELS, overlap=1, gold_rate=0.0, review=review)["id"]
    n = 1000
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(n)])
    _predict(
        client,
        requester,
        pid,
        [{"external_id": f"t{i}", "label": "pos", "confidence": 0.95} for i in range(n)],
    )
    report = _review(client, requester, pid)
    assert report["auto_accepted"] == 0  # no gold, no audit labelled yet: no threshold
    audited = report["audits"]["audited"]
    # Binomial(1000, 0.2): sd 12.6; 4.5 sd either side.
    assert 143 <= audited <= 257, audited
    assert report["models"][0]["audits"]["audited"] == audited
    got = fetch_all(client, pid, make_worker(requester))
    blind = [g for g in got.values() if g["lane"] == "blind"]
    assert len(blind) == audited  # audited tasks are labelled blind: no proposal shown
    assert all("proposal" not in g for g in blind)


def test_audited_precision_is_reported_with_its_interval(
    client, requester, make_project, make_worker, settings
) -> None:
    review = {"accept_at": 0.9, "audit_rate": 1.0, "trap_rate": 0.0}
    pid = make_project(requester, labels=LABELS, overlap=1, gold_rate=0.0, review=review)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(40)])
    _predict(
        client,
        requester,
        pid,
        [{"external_id": f"t{i}", "label": "pos", "confidence": 0.95} for i in range(40)],
    )
    worker = make_worker(requester)
    for x, g in fetch_all(client, pid, worker).items():
        assert g["lane"] == "blind"
        answer(client, worker, g["assignment_id"], "neg" if int(x[1:]) < 10 else "pos")
    drain(settings)
    audits = _review(client, requester, pid)["audits"]
    assert audits["audited"] == 40 and audits["labelled"] == 40 and audits["agree"] == 30
    assert audits["precision"] == 0.75
    low, high = audits["interval"]
    assert 0.58 < low < 0.62 and 0.85 < high < 0.89  # Wilson 95% for 30 of 40
