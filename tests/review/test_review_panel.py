"""The review panel's per-model figures in GET .../review (issue 12): predictions, the share
reviewed, confirmed and corrected, accuracy on gold and on reviewed tasks, and a reliability
diagram in 10 confidence buckets, for a small project whose answers are known."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from tests.aggregation.test_live import drain, post_tasks
from tests.conftest import auth
from tests.review.helpers import answer, fetch

#: external id: (gold label or None, predicted label, confidence, the worker's answer or None).
#: The worker answers every non-gold task once (overlap 1): r* in the review lane (4 confirm,
#: 2 correct), b* blind (confidence below blind_below), n* with no prediction.
SEED: dict[str, tuple[str | None, str | None, float | None, str | None]] = {
    "g0": ("pos", "pos", 0.95, None),
    "g1": ("pos", "pos", 0.92, None),
    "g2": ("neg", "neg", 0.97, None),
    "g3": ("neg", "pos", 0.85, None),
    "r0": (None, "pos", 0.75, "pos"),
    "r1": (None, "pos", 0.72, "pos"),
    "r2": (None, "neg", 0.78, "neg"),
    "r3": (None, "pos", 0.55, "pos"),
    "r4": (None, "pos", 0.76, "neg"),
    "r5": (None, "neg", 0.58, "pos"),
    "b0": (None, "neg", 0.35, "neg"),
    "b1": (None, "pos", 0.31, "neg"),
    "n0": (None, None, None, "pos"),
}
MODEL = "resnet@2026-12-01"


def seed_panel_project(
    client: FlaskClient, make_project: Any, make_worker: Any, token: str, settings: Any
) -> int:
    """The project of :data:`SEED`, answered and aggregated by a real RQ worker."""
    review = {"overlap": 1, "max_overlap": 1, "blind_below": 0.5, "trap_rate": 0.0}
    spec = {"labels": ["pos", "neg"], "overlap": 1, "gold_rate": 0.0, "review": review}
    pid = int(make_project(token, name="reviewed", **spec)["id"])
    post_tasks(
        client, token, pid,
        [{"external_id": x, **({"gold": g} if g else {})} for x, (g, *_rest) in SEED.items()],
    )  # fmt: skip
    predictions = [
        {"external_id": x, "label": p, "confidence": c}
        for x, (_g, p, c, _a) in SEED.items()
        if p is not None
    ]
    r = client.post(
        f"/api/v1/projects/{pid}/predictions",
        json={"model": MODEL, "predictions": predictions},
        headers=auth(token),
    )
    assert r.status_code == 201, r.json
    worker = make_worker(token, "reviewer")
    while (got := fetch(client, pid, worker)) is not None:
        x = got["task"]["external_id"]
        _g, predicted, _c, given = SEED[x]
        assert got["lane"] == ("review" if x.startswith("r") else "blind")
        assert got.get("proposal") == ({"label": predicted} if x.startswith("r") else None)
        assert given is not None
        answer(client, worker, got["assignment_id"], given)
    drain(settings)
    return pid


def crowd_labels(client: FlaskClient, token: str, pid: int) -> dict[str, str]:
    """Each task's published crowd label, read from GET .../results."""
    r = client.get(f"/api/v1/projects/{pid}/results?limit=1000", headers=auth(token))
    assert r.status_code == 200, r.json
    return {
        row["external_id"]: row["label"]
        for row in r.json["results"]
        if row.get("label_source") == "crowd" and row["status"] == "complete"
    }


def expected_panel(labels: dict[str, str]) -> dict[str, Any]:
    """The figures worked out from :data:`SEED` and the published labels."""
    reviewed = [x for x in SEED if x.startswith("r")]
    gold = [x for x, (g, *_r) in SEED.items() if g]
    buckets = [[0, 0.0, 0] for _ in range(10)]
    for x, (g, p, c, _a) in SEED.items():
        truth = g or labels.get(x)
        if p is None or c is None or truth is None:
            continue
        b = buckets[min(int(c * 10), 9)]
        b[0] += 1
        b[1] += c
        b[2] += int(p == truth)
    right_reviewed = sum(labels[x] == SEED[x][1] for x in reviewed if x in labels)
    return {
        "predictions": 12,
        "reviewed": 6,
        "share_reviewed": 0.5,
        "review_answers": 6,
        "confirmed": 4,
        "corrected": 2,
        "share_confirmed": round(4 / 6, 6),
        "share_corrected": round(2 / 6, 6),
        "gold": {"tasks": 4, "correct": 3, "accuracy": 0.75},
        "reviewed_accuracy": {
            "tasks": sum(x in labels for x in reviewed),
            "correct": right_reviewed,
        },
        "buckets": buckets,
        "gold_ids": gold,
    }


def test_the_review_report_gives_each_models_review_figures_and_reliability(
    client, requester, make_project, make_worker, settings
) -> None:
    pid = seed_panel_project(client, make_project, make_worker, requester, settings)
    labels = crowd_labels(client, requester, pid)
    assert set(labels) == {x for x, (g, *_r) in SEED.items() if g is None}  # all published
    want = expected_panel(labels)

    r = client.get(f"/api/v1/projects/{pid}/review", headers=auth(requester))
    assert r.status_code == 200, r.json
    document = client.get("/openapi.json").json
    report = {"$ref": "#/components/schemas/ReviewReport", "components": document["components"]}
    Draft202012Validator(report).validate(r.json)  # as the OpenAPI document says
    (model,) = r.json["models"]
    assert model["model"] == MODEL
    for key in ("predictions", "reviewed", "share_reviewed", "review_answers", "confirmed",
                "corrected", "share_confirmed", "share_corrected"):  # fmt: skip
        assert model[key] == want[key], key
    assert model["accuracy"]["gold"] == want["gold"]
    got = model["accuracy"]["reviewed"]
    assert (got["tasks"], got["correct"]) == (6, want["reviewed_accuracy"]["correct"])
    assert got["accuracy"] == round(want["reviewed_accuracy"]["correct"] / 6, 6)

    buckets = model["reliability"]
    assert [(b["from"], b["to"]) for b in buckets] == [
        (round(i / 10, 6), round((i + 1) / 10, 6)) for i in range(10)
    ]
    for b, (n, conf, ok) in zip(buckets, want["buckets"], strict=True):
        assert b["tasks"] == n
        if n == 0:
            assert b["confidence"] is None and b["accuracy"] is None
        else:
            assert abs(b["confidence"] - conf / n) < 1e-5
            assert b["accuracy"] == round(ok / n, 6)
    # 12 predictions, all with a known answer: 4 gold, 8 labelled by people.
    assert sum(b["tasks"] for b in buckets) == 12


def test_a_project_without_predictions_has_no_model_rows_and_corrections_are_per_model(
    client, requester, make_project, make_worker, settings
) -> None:
    pid = make_project(requester, labels=["pos", "neg"], overlap=1, gold_rate=0.0)["id"]
    r = client.get(f"/api/v1/projects/{pid}/review", headers=auth(requester))
    assert r.status_code == 200 and r.json["models"] == []

    # Two models on one task: the review answers count for the model whose label was shown.
    review = {"overlap": 1, "max_overlap": 1, "blind_below": 0.5, "trap_rate": 0.0}
    pid = make_project(requester, labels=["pos", "neg"], overlap=1, gold_rate=0.0,
                       review=review)["id"]  # fmt: skip
    post_tasks(client, requester, pid, [{"external_id": "t"}])
    for name, label in (("old", "neg"), ("new", "pos")):
        r = client.post(
            f"/api/v1/projects/{pid}/predictions",
            json={"model": name, "predictions": [
                {"external_id": "t", "label": label, "confidence": 0.9}]},
            headers=auth(requester),
        )  # fmt: skip
        assert r.status_code == 201, r.json
    r = client.get(f"/api/v1/projects/{pid}/review", headers=auth(requester))
    assert {m["model"]: m["reviewed"] for m in r.json["models"]} == {"old": 0, "new": 0}
    worker = make_worker(requester, "w")
    got = fetch(client, pid, worker)
    assert got is not None and got["proposal"] == {"label": "pos"}  # the newest model's
    answer(client, worker, got["assignment_id"], "neg")
    drain(settings)  # a new run: the figures kept from before it are not served
    r = client.get(f"/api/v1/projects/{pid}/review", headers=auth(requester))
    by_name = {m["model"]: m for m in r.json["models"]}
    assert by_name["new"]["reviewed"] == 1 and by_name["new"]["corrected"] == 1
    assert by_name["new"]["share_corrected"] == 1.0
    assert by_name["old"]["reviewed"] == 0 and by_name["old"]["share_confirmed"] is None
    assert by_name["old"]["share_reviewed"] == 0.0
