"""Requesters register webhook URLs for their projects, list and delete them."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_network

from flask.testing import FlaskClient

from crowd.config import ANY_ADDRESS, Settings
from crowd.store import webhooks
from crowd.store.db import Database
from tests.conftest import app_for, auth

#: A host in every private range, IPv6 and IPv4-mapped forms included, and names resolving
#: to one: each is refused by default.
PRIVATE_HOSTS = (
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.5",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.10",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.251",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "[::1]",
    "[::]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[fe80::1]",
    "[ff02::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:10.0.0.5]",
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "localhost",
    "127.1",
    "2130706433",  # 127.0.0.1 as one number
    "0x7f.1",
)


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
            "url": "http://93.184.215.14:8080/hook?x=1",
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
    assert [h["url"] for h in rest["webhooks"]] == ["http://93.184.215.14:8080/hook?x=1"]


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
        assert webhooks.pending_target(cur, pid, delivery) is None


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
        webhooks.record_attempt(
            cur, pid, ids[0], ok=True, status_code=204, error=None, max_attempts=3
        )
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


def test_webhooks_to_private_addresses_are_refused_by_default_with_the_setting_named(
    client, requester, make_project, database: Database
) -> None:
    pid = make_project(requester)["id"]
    for host in PRIVATE_HOSTS:
        r = client.post(
            hooks_url(pid), json={"url": f"http://{host}:8080/hook"}, headers=auth(requester)
        )
        assert r.status_code == 422, (host, r.json)
        error = r.json["error"]
        assert error["code"] == "private_address", host
        assert "CROWD_WEBHOOK_ALLOW_PRIVATE=1" in error["message"], error
        assert "only to public addresses" in error["message"]
    metadata = client.post(
        hooks_url(pid), json={"url": "http://169.254.169.254/latest"}, headers=auth(requester)
    ).json["error"]["message"]
    assert metadata.startswith("url: 169.254.169.254 is a link-local address;")
    named = client.post(
        hooks_url(pid), json={"url": "https://localhost/hook"}, headers=auth(requester)
    ).json["error"]["message"]
    assert named.startswith("url: localhost resolves to 127.0.0.1, a loopback address;")
    for public in ("http://93.184.215.14/hook", "https://[2606:4700::1111]/hook"):
        r = client.post(hooks_url(pid), json={"url": public}, headers=auth(requester))
        assert r.status_code == 201, (public, r.json)
    with database.transaction() as cur:
        assert [h.url for h in webhooks.page(cur, pid, 0, 100)] == [
            "http://93.184.215.14/hook",
            "https://[2606:4700::1111]/hook",
        ]


def test_the_allow_setting_lets_private_receivers_register(
    requester, make_project, settings: Settings
) -> None:
    pid = make_project(requester)["id"]
    some = replace(settings, webhook_allow_private=(ip_network("10.0.0.0/8"),))
    every = replace(settings, webhook_allow_private=ANY_ADDRESS)
    for allowing, accepted, refused in (
        (some, ["http://10.0.0.5/h", "http://[::ffff:10.1.2.3]/h"], ["http://192.168.0.1/h"]),
        (every, [f"http://{host}:8080/hook" for host in PRIVATE_HOSTS], []),
    ):
        with app_for(allowing) as app, app.test_client() as private_client:
            for url in accepted:
                r = private_client.post(hooks_url(pid), json={"url": url}, headers=auth(requester))
                assert r.status_code == 201, (url, r.json)
                private_client.delete(f"{hooks_url(pid)}/{r.json['id']}", headers=auth(requester))
            for url in refused:
                r = private_client.post(hooks_url(pid), json={"url": url}, headers=auth(requester))
                assert r.status_code == 422 and "192.168.0.1" in r.json["error"]["message"]
