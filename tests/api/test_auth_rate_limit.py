"""Repeated failed authentication from one address is slowed to a limit (429 with
Retry-After); successful requests are never counted; X-Forwarded-For counts only behind
configured proxies."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from crowd.api import create_app
from crowd.api.auth import forget_account
from crowd.config import Settings
from tests.conftest import auth


@pytest.fixture()
def make_client(app: Flask, settings: Settings) -> Callable[..., FlaskClient]:
    """Test clients of apps with changed settings. They share the session app's connection
    pool: on a PostgreSQL shared with other suites, new connections may not be had."""

    def make(**changes: Any) -> FlaskClient:
        changed = create_app(replace(settings, **changes))
        changed.extensions["crowd.db"] = app.extensions["crowd.db"]
        return changed.test_client()

    return make


def _get(client: FlaskClient, token: str, address: str = "198.51.100.7", **headers: str) -> Any:
    return client.get(
        "/api/v1/projects",
        headers={**auth(token), **headers},
        environ_base={"REMOTE_ADDR": address},
    )


def test_after_the_allowed_failures_an_address_gets_429_with_retry_after(
    make_client, clean, requester
) -> None:
    client = make_client(auth_failure_limit="5/minute")
    for i in range(5):
        assert _get(client, f"crowd_guess{i}").status_code == 401
    blocked = _get(client, "crowd_guess-again")
    assert blocked.status_code == 429
    assert blocked.json["error"]["code"] == "too_many_failed_authentications"
    assert "retry after" in blocked.json["error"]["message"]
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    # A token this address has not used recently is not even looked up: a right guess
    # would get no further than a wrong one.
    forget_account(requester)
    assert _get(client, requester).status_code == 429
    # Other addresses are not affected.
    assert _get(client, "crowd_guess", address="203.0.113.9").status_code == 401
    assert _get(client, requester, address="203.0.113.9").status_code == 200


def test_a_caller_already_authenticated_keeps_working_while_its_address_is_blocked(
    make_client, clean, requester
) -> None:
    client = make_client(auth_failure_limit="3/minute")
    assert _get(client, requester).status_code == 200
    for i in range(4):
        _get(client, f"crowd_guess{i}")
    assert _get(client, "crowd_guess").status_code == 429
    assert _get(client, requester).status_code == 200


def test_successful_requests_are_never_counted(make_client, settings, clean, requester) -> None:
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    client = make_client(auth_failure_limit="3/minute")
    for _ in range(20):
        forget_account(requester)  # every request takes the slow path: looked up, not cached
        assert _get(client, requester).status_code == 200
    assert redis.keys("crowd:auth-failures*") == []
    assert _get(client, "crowd_wrong").status_code == 401
    assert redis.keys("crowd:auth-failures*") != []


def test_the_window_moves_on(make_client, clean) -> None:
    client = make_client(auth_failure_limit="2/second")
    for _ in range(2):
        assert _get(client, "crowd_bad").status_code == 401
    assert _get(client, "crowd_bad").status_code == 429
    time.sleep(1.1)
    assert _get(client, "crowd_bad").status_code == 401


def test_x_forwarded_for_is_ignored_unless_proxies_are_configured(make_client, clean) -> None:
    direct = make_client(auth_failure_limit="3/minute")
    for i in range(4):
        # A client cannot dodge the limit by naming a new address each time.
        _get(direct, "crowd_bad", **{"X-Forwarded-For": f"192.0.2.{i}"})
    assert _get(direct, "crowd_bad", **{"X-Forwarded-For": "192.0.2.99"}).status_code == 429


def test_behind_a_configured_proxy_the_forwarded_client_address_counts(make_client, clean) -> None:
    proxied = make_client(auth_failure_limit="3/minute", trusted_proxies=1)
    proxy = "10.0.0.2"
    for _ in range(3):
        _get(proxied, "crowd_bad", address=proxy, **{"X-Forwarded-For": "192.0.2.1"})
    blocked = _get(proxied, "crowd_bad", address=proxy, **{"X-Forwarded-For": "192.0.2.1"})
    assert blocked.status_code == 429 and "192.0.2.1" in blocked.json["error"]["message"]
    # Another client behind the same proxy is not blocked; only the last hop is trusted, so
    # an entry the client prepended itself does not count.
    other = _get(proxied, "crowd_bad", address=proxy, **{"X-Forwarded-For": "1.2.3.4, 192.0.2.2"})
    assert other.status_code == 401


def test_a_malformed_limit_setting_fails_at_start_with_the_setting_named(settings) -> None:
    with pytest.raises(RuntimeError, match="CROWD_AUTH_FAILURE_LIMIT"):
        create_app(replace(settings, auth_failure_limit="lots"))
