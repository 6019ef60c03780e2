"""The webhook part of the OpenAPI document (merged in by :func:`crowd.api.openapi.document`)."""

from __future__ import annotations

from typing import Any

from crowd.api.openapi import _PAGE, _body, _errors, _id, _ok, _page_of, _query, _ref
from crowd.api.schemas import WebhookIn
from crowd.store.webhooks import EVENTS, DeliveryStatus

MODELS = (WebhookIn,)

_WEBHOOK_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "project_id": {"type": "integer"},
    "url": {"type": "string"},
    "events": {"type": "array", "items": {"type": "string", "enum": list(EVENTS)}},
    "created_at": {"type": "string", "format": "date-time"},
}

SCHEMAS: dict[str, Any] = {
    "Webhook": {
        "type": "object",
        "required": list(_WEBHOOK_PROPERTIES),
        "properties": _WEBHOOK_PROPERTIES,
    },
    "WebhookCreated": {
        "type": "object",
        "required": [*_WEBHOOK_PROPERTIES, "secret"],
        "properties": {
            **_WEBHOOK_PROPERTIES,
            "secret": {
                "type": "string",
                "description": "HMAC-SHA256 key of X-Crowd-Signature; shown only in this response",
            },
        },
    },
    "WebhookDelivery": {
        "type": "object",
        "required": ["id", "webhook_id", "event", "status", "attempts", "created_at", "payload"],
        "properties": {
            "id": {"type": "integer", "description": "also sent as X-Crowd-Delivery"},
            "webhook_id": {"type": "integer"},
            "event": {"type": "string", "enum": list(EVENTS)},
            "status": {"type": "string", "enum": [s.value for s in DeliveryStatus]},
            "attempts": {"type": "integer"},
            "last_status_code": {
                "type": ["integer", "null"],
                "description": "HTTP status of the last attempt; null: no response",
            },
            "last_error": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "last_attempt_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "payload": {"type": "object", "description": "the data field of the body sent"},
        },
    },
}


def paths() -> dict[str, Any]:
    requester: list[dict[str, list[str]]] = [{"bearer": []}]
    pid, hid = _id("project_id"), _id("webhook_id")
    return {
        "/api/v1/projects/{project_id}/webhooks": {
            "post": {
                "summary": "Register a URL for the project's events; deliveries are signed",
                "description": (
                    "The URL must be on a public address: a host that is, or resolves to, a "
                    "private, loopback or link-local address (127.0.0.1, 10.x, 169.254.169.254, "
                    "::1, ...) is a 422 with code private_address, unless the server's "
                    "CROWD_WEBHOOK_ALLOW_PRIVATE allows it. Deliveries check the resolved "
                    "address again and fail, unsent, when it is not allowed."
                ),
                "security": requester,
                "parameters": [pid],
                "requestBody": _body(WebhookIn),
                "responses": {
                    "201": _ok("Created; the secret is shown only now", _ref("WebhookCreated")),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            },
            "get": {
                "summary": "The project's webhooks, by id",
                "security": requester,
                "parameters": [pid, *_PAGE],
                "responses": {
                    "200": _ok("A page of webhooks", _page_of("webhooks", _ref("Webhook"))),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/webhooks/{webhook_id}": {
            "delete": {
                "summary": "Delete a webhook and its deliveries (pending ones are not sent)",
                "security": requester,
                "parameters": [pid, hid],
                "responses": {"204": _ok("Deleted"), **_errors(401, 403, 404, 503)},
            },
        },
        "/api/v1/projects/{project_id}/webhooks/{webhook_id}/deliveries": {
            "get": {
                "summary": "The webhook's deliveries, newest first: status, attempts, last error",
                "security": requester,
                "parameters": [
                    pid,
                    hid,
                    *_PAGE,
                    _query("status", {"type": "string", "enum": [s.value for s in DeliveryStatus]}),
                ],
                "responses": {
                    "200": _ok(
                        "A page of deliveries", _page_of("deliveries", _ref("WebhookDelivery"))
                    ),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
    }
