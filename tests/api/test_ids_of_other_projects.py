"""A run's or a webhook's id names it only within its project: asked for under another
project of the same requester, it is the same 404 as an id that does not exist (the store
looks rows up by id and project, as a database distributed by project needs)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import auth


def test_a_run_asked_for_under_another_project_is_a_404_naming_where_to_list_them(
    client: FlaskClient, requester: str, make_project
) -> None:
    mine, other = make_project(requester)["id"], make_project(requester)["id"]
    queued = client.post(f"/api/v1/projects/{mine}/aggregations", headers=auth(requester))
    assert queued.status_code == 202, queued.json
    run_id = queued.json["run"]["id"]  # type: ignore[index]

    found = client.get(f"/api/v1/projects/{mine}/aggregations/{run_id}", headers=auth(requester))
    assert found.status_code == 200 and found.json["id"] == run_id  # type: ignore[index]
    for pid, rid in ((other, run_id), (mine, run_id + 1000)):
        r = client.get(f"/api/v1/projects/{pid}/aggregations/{rid}", headers=auth(requester))
        assert r.status_code == 404
        assert r.json["error"]["message"] == (  # type: ignore[index]
            f"no run {rid} in project {pid}; GET /api/v1/projects/{pid}/aggregations lists them"
        )


def test_a_webhook_asked_for_under_another_project_is_a_404_naming_where_to_list_them(
    client: FlaskClient, requester: str, make_project
) -> None:
    mine, other = make_project(requester)["id"], make_project(requester)["id"]
    made = client.post(
        f"/api/v1/projects/{mine}/webhooks",
        json={"url": "https://e.com/hook"},
        headers=auth(requester),
    )
    assert made.status_code == 201, made.json
    hid = made.json["id"]  # type: ignore[index]

    listed = client.get(
        f"/api/v1/projects/{mine}/webhooks/{hid}/deliveries", headers=auth(requester)
    )
    assert listed.status_code == 200
    for pid, wid in ((other, hid), (mine, hid + 1000)):
        r = client.get(f"/api/v1/projects/{pid}/webhooks/{wid}/deliveries", headers=auth(requester))
        assert r.status_code == 404
        assert r.json["error"]["message"] == (  # type: ignore[index]
            f"no webhook {wid} in project {pid}; GET /api/v1/projects/{pid}/webhooks lists them"
        )
        gone = client.delete(f"/api/v1/projects/{pid}/webhooks/{wid}", headers=auth(requester))
        assert gone.status_code == 404
    assert (
        client.get(f"/api/v1/projects/{mine}/webhooks", headers=auth(requester)).json["webhooks"][
            0
        ]["id"]
        == hid
    )  # type: ignore[index]
