"""The quality rules' evidence over the API: intervals, probabilities, answers still needed, and
bans whose evidence reverses (flagged, never lifted by themselves)."""

from __future__ import annotations

from tests.aggregation.test_live import drain, good_and_bad_on_gold
from tests.conftest import auth

FIELDS = {"threshold", "estimate", "low", "high", "p_below", "more_answers"}


def test_workers_endpoint_shows_each_rules_evidence_and_flags_a_reversed_ban(
    client, requester, make_worker, make_project, settings
) -> None:
    """Two aggregation runs by a real forking RQ worker (about 5 s each on a loaded machine):
    one bans, the next reverses the evidence."""
    pid = make_project(
        requester,
        labels=["a", "b"],
        overlap=3,
        gold_rate=1.0,  # every fetch serves gold while there is some
        qc_min_answers=4,
        qc_min_accuracy=0.3,
        qc_min_gold_accuracy=0.6,
        qc_min_gold_answers=2,
    )["id"]
    assert (
        client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["qc_confidence"] == 0.95
    )
    _good, bad = good_and_bad_on_gold(client, requester, make_worker, pid)
    drain(settings)

    listed = client.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json
    by_name = {w["name"]: w for w in listed["workers"]}
    for worker in by_name.values():
        assert set(worker["rules"]) == {"accuracy", "gold"}
        for found in worker["rules"].values():
            assert set(found) == FIELDS
            assert found["low"] <= found["estimate"] <= found["high"]
    # 0 of 8 gold right, two workers (the fallback prior Beta(1, 1)): Beta(1, 9) below 0.6
    # with probability 1 - 0.4^9.
    gold = by_name["bad"]["rules"]["gold"]
    assert abs(gold["p_below"] - (1 - 0.4**9)) < 1e-5 and gold["threshold"] == 0.6
    assert gold["more_answers"] == 0  # decided
    assert by_name["bad"]["status"] == "banned" and by_name["bad"]["ban_rule"] == "gold"
    assert "probability" in by_name["bad"]["reason"]
    assert by_name["bad"]["evidence_reversed"] is False
    # 8 of 8 right: Beta(9, 1) below 0.6 with probability 0.6^9
    assert abs(by_name["good"]["rules"]["gold"]["p_below"] - 0.6**9) < 1e-5
    assert by_name["good"]["status"] == "active" and by_name["good"]["ban_rule"] is None

    # The requester lowers the bar: under it the banned worker's evidence points the other
    # way (Beta(1, 9) below 0.05: 1 - 0.95^9 = 0.37). The ban is flagged, not lifted.
    r = client.patch(
        f"/api/v1/projects/{pid}", json={"qc_min_gold_accuracy": 0.05}, headers=auth(requester)
    )
    assert r.status_code == 200
    client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    drain(settings)
    (entry,) = client.get(
        f"/api/v1/projects/{pid}/workers?status=banned", headers=auth(requester)
    ).json["workers"]
    assert entry["name"] == "bad" and entry["evidence_reversed"] is True
    assert abs(entry["rules"]["gold"]["p_below"] - (1 - 0.95**9)) < 1e-5
    assert client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(bad)).status_code == 403

    # Unbanning clears the flag; the rules judge the worker again after qc_min_answers more.
    client.post(f"/api/v1/projects/{pid}/workers/{entry['id']}/unban", headers=auth(requester))
    (entry,) = [
        w
        for w in client.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json[
            "workers"
        ]
        if w["name"] == "bad"
    ]
    assert entry["status"] == "active" and entry["evidence_reversed"] is False
    assert entry["ban_rule"] is None


def test_qc_confidence_is_a_setting_between_one_half_and_one(
    client, requester, make_project
) -> None:
    pid = make_project(requester, labels=["a", "b"], qc_confidence=0.99)["id"]
    url = f"/api/v1/projects/{pid}"
    assert client.get(url, headers=auth(requester)).json["qc_confidence"] == 0.99
    for bad in (0.5, 1.0, 0.2, "0.9", None):
        r = client.patch(url, json={"qc_confidence": bad}, headers=auth(requester))
        assert r.status_code == 422, r.json
        assert "qc_confidence" in r.json["error"]["message"]
    r = client.post(
        "/api/v1/projects",
        json={"name": "x", "labels": ["a", "b"], "qc_confidence": 1.5},
        headers=auth(requester),
    )
    assert r.status_code == 422 and "qc_confidence" in r.json["error"]["message"]
    r = client.patch(url, json={"qc_confidence": 0.9}, headers=auth(requester))
    assert r.status_code == 200 and r.json["qc_confidence"] == 0.9
