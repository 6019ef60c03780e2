"""The project's `review` setting (issue 12): null is off, values are checked field by field."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.conftest import auth

DEFAULTS = {
    "overlap": 1,
    "max_overlap": 3,
    "blind_below": 0.5,
    "accept_at": None,
    "audit_rate": 0.05,
    "trap_rate": 0.05,
    "onboarding_trap_rate": None,
    "onboarding_traps": 6,
}


def _create(client: FlaskClient, token: str, **fields: Any) -> Any:
    return client.post(
        "/api/v1/projects",
        json={"name": "r", "labels": ["pos", "neg"], **fields},
        headers=auth(token),
    )


def test_review_is_off_by_default_and_takes_its_defaults_when_given(client, requester) -> None:
    assert _create(client, requester).json["review"] is None
    r = _create(client, requester, review={})
    assert r.status_code == 201, r.json
    assert r.json["review"] == DEFAULTS
    r = _create(client, requester, review={"overlap": 2, "accept_at": 0.97})
    assert r.json["review"] == {**DEFAULTS, "overlap": 2, "accept_at": 0.97}


def test_patch_turns_review_on_changes_it_and_turns_it_off(client, requester) -> None:
    pid = _create(client, requester).json["id"]
    url = f"/api/v1/projects/{pid}"
    r = client.patch(url, json={"review": {"blind_below": 0.7}}, headers=auth(requester))
    assert r.status_code == 200, r.json
    assert r.json["review"] == {**DEFAULTS, "blind_below": 0.7}
    assert client.get(url, headers=auth(requester)).json["review"]["blind_below"] == 0.7
    # Another setting leaves review alone; null turns it off.
    client.patch(url, json={"overlap": 2}, headers=auth(requester))
    assert client.get(url, headers=auth(requester)).json["review"]["blind_below"] == 0.7
    r = client.patch(url, json={"review": None}, headers=auth(requester))
    assert r.status_code == 200 and r.json["review"] is None


def test_each_bad_review_value_is_a_422_naming_the_field(client, requester) -> None:
    pid = _create(client, requester).json["id"]
    bad = [
        ({"overlap": 0}, "review.overlap"),
        ({"max_overlap": 101}, "review.max_overlap"),
        ({"overlap": 3, "max_overlap": 2}, "review.max_overlap"),
        ({"blind_below": 1.5}, "review.blind_below"),
        ({"blind_below": "high"}, "review.blind_below"),
        ({"accept_at": 0.3}, "review.accept_at"),
        ({"audit_rate": -0.1}, "review.audit_rate"),
        ({"trap_rate": True}, "review.trap_rate"),
        ({"stamp": 1}, "review.stamp"),
    ]
    for value, field in bad:
        for r in (
            _create(client, requester, review=value),
            client.patch(
                f"/api/v1/projects/{pid}", json={"review": value}, headers=auth(requester)
            ),
        ):
            assert r.status_code == 422, (value, r.json)
            assert field in r.json["error"]["message"], (value, r.json)
    r = _create(client, requester, review=[1])
    assert r.status_code == 422 and "review" in r.json["error"]["message"]
    assert client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["review"] is None
