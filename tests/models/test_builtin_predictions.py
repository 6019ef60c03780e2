"""The built-in model's versions write the same predictions as any model, named
``builtin:<version id>``: results show them, the corrections listing reads them, and a project
keeps one built-in prediction per task however many versions it trains."""

from __future__ import annotations

from tests.aggregation.test_live import drain, post_tasks, results
from tests.conftest import auth
from tests.models.test_models import _answer, _project, _tasks, _versions


def test_each_version_predicts_as_builtin_and_replaces_the_previous_versions_predictions(
    client, requester, make_worker, make_project, settings, database
) -> None:
    """Two trained versions (each a forked RQ worker importing scikit-learn, about 20 s in
    all): the second must replace the first's predictions, so one version is not enough."""
    pid = _project(client, make_project, requester, retrain_every=1000)
    post_tasks(client, requester, pid, _tasks(30, seed=3))
    post_tasks(client, requester, pid, [{"external_id": "nofield", "data": {}}])
    worker = make_worker(requester)
    _answer(client, worker, pid, 20)
    drain(settings)
    # An external model's prediction, older than any version: the built-in one is newer.
    external = {
        "model": "ext",
        "predictions": [{"external_id": "t0", "label": "neg", "confidence": 1}],
    }
    r = client.post(f"/api/v1/projects/{pid}/predictions", json=external, headers=auth(requester))
    assert r.status_code == 201
    for _ in range(2):
        assert (
            client.post(f"/api/v1/projects/{pid}/models", headers=auth(requester)).status_code
            == 202
        )
        drain(settings)
    newest, older = _versions(client, requester, pid)
    assert newest["status"] == older["status"] == "succeeded"

    shown = results(client, requester, pid)
    name = f"builtin:{newest['id']}"
    for external_id, row in shown.items():
        if external_id == "nofield":  # the model cannot read it: no prediction of its own
            assert row["prediction"] is None
            continue
        assert row["prediction"]["model"] == name
        assert row["prediction"]["label"] == row["model_label"]
        assert row["prediction"]["confidence"] == row["model_confidence"]
    with database.transaction() as cur:
        cur.execute("SELECT model, count(*) FROM predictions GROUP BY model ORDER BY model")
        assert cur.fetchall() == [(name, 30), ("ext", 1)]

    corrections = client.get(
        f"/api/v1/projects/{pid}/corrections?model={name}", headers=auth(requester)
    ).json["corrections"]
    disagree = {
        e
        for e, row in shown.items()
        if row["prediction"] and row["label"] not in (None, row["prediction"]["label"])
    }
    assert {c["external_id"] for c in corrections} == disagree
    # A client may not post under the built-in model's names.
    spoof = {"model": name, "predictions": [{"external_id": "t1", "label": "neg", "confidence": 1}]}
    r = client.post(f"/api/v1/projects/{pid}/predictions", json=spoof, headers=auth(requester))
    assert r.status_code == 422 and r.json["error"]["message"].startswith("model:")
