"""Requesters register webhook URLs for their projects, list and delete them."""

from __future__ import annotations

from flask.testing import FlaskClient

from crowd.store import webhooks
from crowd.store.db import Database
from tests.conftest import auth


def hooks_url(pid: int) -> str:
    return f"/api/v1/projects/{pid}/webhooks"


def test_create_shows_the_secret_once_and_list_pages_without_it(
    client: FlaskClient, requester, make_project
) -> None:
    pid = make_project(requester)["id"]
    first = client.post(
        hooks_url(pid), json={"url": "https://example.com/a"}, headers=auth(requester)
    )
    assert first.status_code == 201, first.json
    created = first.json
    assert len(created["secret"]) >= 32
    assert created["events"] == [
        "aggregation.completed",
        "model.trained",
        "task.completed",
        "review.corrections",
    ]
    mine = client.post(
        hooks_url(pid),
        json={
            "url": "http://10.0.0.5:8080/hook?x=1",
            "events": ["task.completed"],
            "secret": "s" * 16,
        },
        headers=auth(requester),
    ).json
    assert mine["secret"] == "s" * 16 and mine["events"] == ["task.completed"]

    page = client.get(hooks_url(pid) + "?limit=1", headers=auth(requester)).json
    assert [h["id"] for h in page["webhooks"]] == [created["id"]]
    assert "secret" not in page["webhooks"][0]
    rest = client.get(
        hooks_url(pid) + f"?limit=1&cursor={page['next_cursor']}", headers=auth(requester)
    ).json
    assert [h["url"] for h in rest["webhooks"]] == ["http://10.0.0.5:8080/hook?x=1"]


def test_bad_urls_events_and_secrets_get_422_saying_what_to_send(
    client, requester, make_project
) -> None:
    pid = make_project(requester)["id"]

    def post(spec: dict) -> tuple[int, str]:
        r = client.post(hooks_url(pid), json=spec, headers=auth(requester))
        return r.status_code, r.json["error"]["message"]

    for url in (
        "ftp://example.com/x",
        "example.com/hook",
        "https://",
        "http://h:99999/",
        "http://a b/",
    ):
        status, message = post({"url": url})
        assert status == 422 and "http:// or https://" in message, (url, message)
    status, message = post({"url": "https://e.com", "events": ["task.done"]})
    assert status == 422 and "events" in message and "task.completed" in message
    status, message = post({"url": "https://e.com", "events": []})
    assert status == 422 and "events" in message
    status, message = post({"url": "https://e.com", "secret": "short"})
    assert status == 422 and "secret" in message and "16" in message


def test_only_the_owner_or_an_admin_manages_webhooks(
    client, requester, other_requester, admin, make_project, make_worker
) -> None:
    pid = make_project(requester)["id"]
    hid = client.post(hooks_url(pid), json={"url": "https://e.com"}, headers=auth(requester)).json[
        "id"
    ]
    for path in (hooks_url(pid), f"{hooks_url(pid)}/{hid}/deliveries"):
        assert client.get(path, headers=auth(other_requester)).status_code == 404
        assert client.get(path, headers=auth(make_worker(requester))).status_code == 403
    assert (
        client.delete(f"{hooks_url(pid)}/{hid}", headers=auth(other_requester)).status_code == 404
    )
    assert client.get(hooks_url(pid), headers=auth(requester)).json["webhooks"] != []
    assert [h["id"] for h in client.get(hooks_url(pid), headers=auth(admin)).json["webhooks"]] == [
        hid
    ]
    assert client.delete(f"{hooks_url(pid)}/{hid}", headers=auth(admin)).status_code == 204


def test_delete_removes_the_webhook_and_its_pending_deliveries(
    client, requester, make_project, database: Database
) -> None:
    pid = make_project(requester)["id"]
    hid = client.post(hooks_url(pid), json={"url": "https://e.com"}, headers=auth(requester)).json[
        "id"
    ]
    with database.transaction() as cur:
        (delivery,) = webhooks.emit(cur, pid, "model.trained", {"model": 1})
    listed = client.get(f"{hooks_url(pid)}/{hid}/deliveries", headers=auth(requester)).json
    (row,) = listed["deliveries"]
    assert row["id"] == delivery and row["status"] == "pending" and row["attempts"] == 0
    assert row["payload"] == {"model": 1} and listed["next_cursor"] is None

    assert client.delete(f"{hooks_url(pid)}/{hid}", headers=auth(requester)).status_code == 204
    assert client.delete(f"{hooks_url(pid)}/{hid}", headers=auth(requester)).status_code == 404
    gone = client.get(f"{hooks_url(pid)}/{hid}/deliveries", headers=auth(requester))
    assert gone.status_code == 404 and "webhooks lists them" in gone.json["error"]["message"]
    with database.transaction() as cur:
        assert webhooks.pending_target(cur, delivery) is None


def test_deliveries_filter_by_status_and_page_newest_first(
    client, requester, make_project, database: Database
) -> None:
    pid = make_project(requester)["id"]
    hook = client.post(
        hooks_url(pid),
        json={"url": "https://e.com", "events": ["model.trained"]},
        headers=auth(requester),
    ).json
    with database.transaction() as cur:
        ids = [webhooks.emit(cur, pid, "model.trained", {"n": n})[0] for n in range(3)]
        assert webhooks.emit(cur, pid, "task.completed", {"tasks": []}) == []  # not subscribed
        webhooks.record_attempt(cur, ids[0], ok=True, status_code=204, error=None, max_attempts=3)
    base = f"{hooks_url(pid)}/{hook['id']}/deliveries"
    page = client.get(base + "?limit=2", headers=auth(requester)).json
    assert [d["id"] for d in page["deliveries"]] == [ids[2], ids[1]]
    rest = client.get(base + f"?limit=2&cursor={page['next_cursor']}", headers=auth(requester)).json
    (done,) = rest["deliveries"]
    assert done["id"] == ids[0] and done["status"] == "succeeded" and done["attempts"] == 1
    assert done["last_status_code"] == 204 and done["finished_at"] is not None
    pending = client.get(base + "?status=pending", headers=auth(requester)).json["deliveries"]
    assert [d["id"] for d in pending] == [ids[2], ids[1]]
    bad = client.get(base + "?status=done", headers=auth(requester))
    assert bad.status_code == 400 and "pending, succeeded, failed" in bad.json["error"]["message"]


def test_a_project_has_at_most_20_webhooks(client, requester, make_project) -> None:
    pid = make_project(requester)["id"]
    for i in range(webhooks.MAX_PER_PROJECT):
        r = client.post(hooks_url(pid), json={"url": f"https://e.com/{i}"}, headers=auth(requester))
        assert r.status_code == 201
    r = client.post(hooks_url(pid), json={"url": "https://e.com/x"}, headers=auth(requester))
    assert r.status_code == 409 and "DELETE one" in r.json["error"]["message"]
