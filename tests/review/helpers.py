"""Shared steps of the review-lane tests: a project with tasks and predictions, and fetching."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.aggregation.test_live import post_tasks
from tests.conftest import auth


def review_project(
    client: FlaskClient,
    make_project: Any,
    token: str,
    confidences: dict[str, float | None],
    *,
    review: dict[str, Any] | None,
    model: str = "m1",
    **fields: Any,
) -> int:
    """A project whose tasks are the keys of ``confidences``, each predicted ``pos`` with its
    confidence (None: no prediction)."""
    spec = {"labels": ["pos", "neg"], "overlap": 2, "gold_rate": 0.0, "review": review, **fields}
    pid = int(make_project(token, **spec)["id"])
    if confidences:
        post_tasks(client, token, pid, [{"external_id": x} for x in confidences])
    predicted = [
        {"external_id": x, "label": "pos", "confidence": c}
        for x, c in confidences.items()
        if c is not None
    ]
    if predicted:
        r = client.post(
            f"/api/v1/projects/{pid}/predictions",
            json={"model": model, "predictions": predicted},
            headers=auth(token),
        )
        assert r.status_code == 201, r.json
    return pid


def fetch(client: FlaskClient, pid: int, worker: str) -> dict[str, Any] | None:
    r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
    assert r.status_code in (201, 204), r.json
    return r.json if r.status_code == 201 else None


def answer(client: FlaskClient, worker: str, assignment_id: int, label: str) -> None:
    r = client.post(
        f"/api/v1/assignments/{assignment_id}/answer", json={"label": label}, headers=auth(worker)
    )
    assert r.status_code == 201, r.json


def fetch_all(client: FlaskClient, pid: int, worker: str) -> dict[str, dict[str, Any]]:
    """Every task the worker is handed until none is left, by external id (held, unanswered)."""
    out = {}
    while (got := fetch(client, pid, worker)) is not None:
        out[got["task"]["external_id"]] = got
    return out
