"""Incremental polling (``GET .../results?since_run=N``) returns a task once the model
auto-labels it, and again when a later version changes its label, as it returns a task whose
aggregated result a run changed."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from crowd.store.db import Database
from tests.aggregation.test_live import drain, post_tasks, runs
from tests.conftest import auth
from tests.models.test_models import _answer, _project, _tasks, _versions


def _poll(
    client: FlaskClient, token: str, pid: int, since_run: int | None
) -> tuple[dict[str, dict[str, Any]], int]:
    """One pass (a single page here): the rows by external id, and the next cursor."""
    query = "" if since_run is None else f"&since_run={since_run}"
    r = client.get(f"/api/v1/projects/{pid}/results?limit=1000{query}", headers=auth(token))
    assert r.status_code == 200, r.json
    assert r.json["next_cursor"] is None  # type: ignore[index]
    rows = {x["external_id"]: x for x in r.json["results"]}  # type: ignore[index]
    return rows, int(r.json["last_run_id"])  # type: ignore[index]


def _by_model(rows: dict[str, dict[str, Any]]) -> set[str]:
    return {k for k, r in rows.items() if r["label_source"] == "model"}


def test_since_run_polling_returns_auto_labelled_tasks_and_their_later_changes(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    pid = _project(client, make_project, requester, retrain_every=40, auto_label_accuracy=0.9)
    post_tasks(client, requester, pid, _tasks(300, seed=6))
    post_tasks(client, requester, pid, _tasks(120, seed=7, prefix="g", gold=True))
    worker = make_worker(requester)
    _answer(client, worker, pid, 39)
    drain(settings)
    assert _versions(client, requester, pid) == []
    _, cursor = _poll(client, requester, pid, None)  # a poller's full pass

    (last,) = _answer(client, worker, pid, 1)  # the 40th complete task: a retrain is due
    drain(settings)
    (version,) = _versions(client, requester, pid)
    assert version["status"] == "succeeded" and version["auto_labelled"] > 50
    everything, _ = _poll(client, requester, pid, None)
    auto = _by_model(everything)
    assert len(auto) == version["auto_labelled"]

    # The poller's next pass has the task the run changed and every auto-labelled task.
    changed, cursor = _poll(client, requester, pid, cursor)
    assert _by_model(changed) == auto and last in changed
    assert all(
        changed[k]["status"] == "complete" and changed[k]["label"] in ("neg", "pos")
        and changed[k]["run_id"] is None
        for k in auto
    )  # fmt: skip
    # The version asked for a run (trigger "model") after labelling; once it has published,
    # the cursor is past the labels, so the pass after that does not repeat them.
    *_, labelled_after, moved_on = runs(client, requester, pid)
    assert moved_on["trigger"] == "model" and moved_on["status"] == "succeeded"
    assert cursor == moved_on["id"]
    again, _ = _poll(client, requester, pid, cursor)
    assert again == {}
    # A poller that read the cursor of the run the labels came after, just before they were
    # written, still gets them: they may come in two passes, never in none.
    assert _by_model(_poll(client, requester, pid, labelled_after["id"])[0]) == auto

    # A later version that changes one auto label returns that task, and only it, once.
    flipped = sorted(auto)[0]
    with database.transaction() as cur:  # as if the version before had predicted the other label
        cur.execute(
            "UPDATE tasks SET model_label = 1 - model_label"
            " WHERE project_id = %s AND external_id = %s",
            (pid, flipped),
        )
    assert client.post(f"/api/v1/projects/{pid}/models", headers=auth(requester)).status_code == 202
    drain(settings)
    newest = _versions(client, requester, pid)[0]
    assert newest["status"] == "succeeded" and newest["auto_labelled"] == 0
    changed, cursor = _poll(client, requester, pid, cursor)
    assert set(changed) == {flipped}
    assert changed[flipped]["label"] == everything[flipped]["label"]  # the model's label again
    assert _poll(client, requester, pid, cursor)[0] == {}
