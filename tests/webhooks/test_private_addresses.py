"""Webhooks are not sent to private addresses (server-side request forgery), end to end: a
real RQ worker tries real receivers listening on loopback addresses, and addresses nothing
here listens on. The suite's settings refuse private addresses, as crowd does by default.

The webhooks are written to the store directly: the API refuses to register these URLs
(tests/api/test_webhooks.py), and these are the webhooks registered before the setting was
turned off, or while their name resolved to a public address."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from ipaddress import ip_network
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from crowd.background import connections, webhooks
from crowd.config import ANY_ADDRESS, Settings
from crowd.store import webhooks as store
from crowd.store.db import Database
from tests.conftest import app_for
from tests.webhooks.conftest import serving
from tests.webhooks.test_delivery import deliveries, work_until_sent

#: Hosts in every private range, each refused (nothing is listening on most of them: the
#: delivery must fail before any connection is tried).
PRIVATE_HOSTS = (
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # a cloud's metadata service
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "[::]",
    "[fc00::1]",
    "[fe80::1]",
    "[::ffff:169.254.169.254]",  # IPv4-mapped IPv6
    "[::ffff:10.0.0.1]",
    "127.1",  # 127.0.0.1, spelled as the resolver still reads it
)


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """The default: no private address allowed (the other webhook tests allow them all)."""
    return replace(settings, webhook_allow_private=())


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    with app_for(settings) as app:
        yield app


def _hooks(database: Database, pid: int, urls: list[str]) -> dict[str, int]:
    with database.transaction() as cur:
        return {
            url: store.create(cur, pid, url, ["model.trained"], "a-receiver-shared-secret").id
            for url in urls
        }


def _announce(database: Database, settings: Settings, pid: int) -> None:
    """A ``model.trained`` event, queued for every hook, as the model job records it (the
    jobs' retries follow ``settings``)."""
    connections.configure(settings)
    with database.transaction() as cur:
        ids = store.emit(cur, pid, "model.trained", {"model_id": 1})
    with Redis.from_url(settings.redis_url or "") as redis:
        webhooks.enqueue(redis, pid, ids)


def _one_delivery(client: FlaskClient, token: str, pid: int, hid: int) -> dict[str, Any]:
    (delivery,) = deliveries(client, token, pid, hid)
    return delivery


def test_by_default_no_delivery_reaches_a_private_address_and_each_fails_at_once_saying_why(
    client, requester, make_project, database, settings: Settings
) -> None:
    pid = make_project(requester)["id"]
    retries = replace(settings, webhook_retry_intervals=(1, 1, 1))
    with serving("127.0.0.1", failures=0) as v4, serving("::1", failures=0) as v6:
        port = urlsplit(v4.url).port
        urls = [
            v4.url,
            v6.url,
            f"http://localhost:{port}",  # a name resolving to a loopback address
            *(f"http://{host}:{port}/hook" for host in PRIVATE_HOSTS),
        ]
        hooks = _hooks(database, pid, urls)
        _announce(database, retries, pid)

        work_until_sent(retries, database)

        assert v4.requests == [] and v6.requests == []
    for url, hid in hooks.items():
        delivery = _one_delivery(client, requester, pid, hid)
        # Failed for good at the first attempt: waiting for a retry would not change the answer.
        assert delivery["status"] == "failed" and delivery["attempts"] == 1, url
        assert delivery["last_status_code"] is None
        error = delivery["last_error"]
        assert error.startswith("not sent: ") and "CROWD_WEBHOOK_ALLOW_PRIVATE" in error, error
    reason = {
        url: _one_delivery(client, requester, pid, hid)["last_error"] for url, hid in hooks.items()
    }
    assert "::1 is a loopback address" in reason[v6.url]
    assert (
        "localhost resolves to 127.0.0.1, a loopback address" in reason[f"http://localhost:{port}"]
    )
    assert (
        "169.254.169.254 is a link-local address" in reason[f"http://169.254.169.254:{port}/hook"]
    )
    assert "100.64.0.1 is a carrier-grade NAT address" in reason[f"http://100.64.0.1:{port}/hook"]
    assert (
        "(169.254.169.254) in IPv6 form" in reason[f"http://[::ffff:169.254.169.254]:{port}/hook"]
    )


def test_allowed_addresses_are_those_a_name_resolves_to_and_nothing_else(
    client, requester, make_project, database, settings: Settings
) -> None:
    allow_one = replace(settings, webhook_allow_private=(ip_network("127.0.0.1/32"),))
    pid = make_project(requester)["id"]
    with serving("127.0.0.1", failures=0) as v4, serving("::1", failures=0) as v6:
        port = urlsplit(v4.url).port
        by_name, v6_hook = f"http://localhost:{port}/hook", v6.url
        hooks = _hooks(database, pid, [by_name, v6_hook])
        _announce(database, allow_one, pid)

        work_until_sent(allow_one, database)

        (sent,) = v4.requests
        assert sent[0]["Host"] == f"localhost:{port}"  # the name is kept for the receiver
        assert v6.requests == []
    assert _one_delivery(client, requester, pid, hooks[by_name])["status"] == "succeeded"
    refused = _one_delivery(client, requester, pid, hooks[v6_hook])
    assert refused["status"] == "failed" and "::1 is a loopback address" in refused["last_error"]


def test_a_redirect_from_an_allowed_receiver_to_a_private_address_is_not_followed(
    client, requester, make_project, database, settings: Settings
) -> None:
    allow_one = replace(
        settings, webhook_allow_private=(ip_network("127.0.0.1/32"),), webhook_retry_intervals=(1,)
    )
    pid = make_project(requester)["id"]
    with serving("127.0.0.1") as allowed, serving("::1", failures=0) as private:
        allowed.redirect_to = private.url
        hooks = _hooks(database, pid, [allowed.url])
        _announce(database, allow_one, pid)

        work_until_sent(allow_one, database)

        assert len(allowed.requests) == 2  # the attempt and its retry, both redirected
        assert private.requests == []
    delivery = _one_delivery(client, requester, pid, hooks[allowed.url])
    assert delivery["status"] == "failed" and delivery["last_status_code"] == 307
    assert f"a redirect to {private.url}" in delivery["last_error"]
    assert "follows no redirects" in delivery["last_error"]


def test_the_allow_setting_takes_1_or_addresses_and_says_what_to_write_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for raw, allowed in (
        ("", ()),
        ("0", ()),
        ("1", ANY_ADDRESS),
        (" 10.0.0.5, 192.168.0.0/16 ", (ip_network("10.0.0.5/32"), ip_network("192.168.0.0/16"))),
        ("fd00::/8", (ip_network("fd00::/8"),)),
    ):
        monkeypatch.setenv("CROWD_WEBHOOK_ALLOW_PRIVATE", raw)
        assert Settings.from_env().webhook_allow_private == allowed, raw
    monkeypatch.setenv("CROWD_WEBHOOK_ALLOW_PRIVATE", "yes please")
    with pytest.raises(SystemExit, match=r"CROWD_WEBHOOK_ALLOW_PRIVATE must be 1 .* 10\.0\.0\.5"):
        Settings.from_env()
