"""Webhooks: register URLs for a project's events, list and delete them, see deliveries."""

from __future__ import annotations

import secrets

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from crowd import egress
from crowd.api import auth, body, deps, idempotency
from crowd.api.projects import MANAGERS
from crowd.api.schemas import WebhookIn
from crowd.errors import Conflict, Invalid, NotFound
from crowd.store import webhooks
from crowd.store.db import Cursor
from crowd.store.webhooks import DeliveryStatus, Event, Webhook

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/projects")


def _webhook(cur: Cursor, project_id: int, webhook_id: int) -> Webhook:
    hook = webhooks.get(cur, project_id, webhook_id)
    if hook is None:
        raise NotFound(
            f"no webhook {webhook_id} in project {project_id}; "
            f"GET /api/v1/projects/{project_id}/webhooks lists them"
        )
    return hook


@bp.post("/<int:project_id>/webhooks")
@auth.require(*MANAGERS)
@idempotency.idempotent()
def create(project_id: int) -> ResponseReturnValue:
    """Register a URL; the response carries the signing secret, shown only this once.

    ``task.completed`` reports tasks that complete after the project's first webhook for it:
    the tasks complete by then are marked as reported, in the same transaction. A private
    address, or a name resolving to one, is a 422 unless ``CROWD_WEBHOOK_ALLOW_PRIVATE``
    allows it.
    """
    project = auth.project_for_requester(project_id)
    spec = body.json_body(WebhookIn)
    refused = egress.refusal(spec.url, deps.settings().webhook_allow_private)
    if refused:
        raise Invalid(refused, code="private_address")
    secret = spec.secret or secrets.token_urlsafe(32)
    with idempotency.transaction() as cur:
        if webhooks.lock_and_count(cur, project.id) >= webhooks.MAX_PER_PROJECT:
            raise Conflict(
                f"a project has at most {webhooks.MAX_PER_PROJECT} webhooks; DELETE one "
                f"(GET /api/v1/projects/{project_id}/webhooks lists them) first"
            )
        if Event.TASK_COMPLETED in spec.events and not webhooks.listens(
            cur, project.id, Event.TASK_COMPLETED
        ):
            webhooks.baseline_completed(cur, project.id)
        hook = webhooks.create(cur, project.id, spec.url, list(spec.events), secret)
        # The secret is kept with the key's response: it is stored beside the URL anyway.
        out = {**hook.to_json(), "secret": secret}
        idempotency.record(cur, 201, out)
    return jsonify(out), 201


@bp.get("/<int:project_id>/webhooks")
@auth.require(*MANAGERS)
def list_webhooks(project_id: int) -> ResponseReturnValue:
    """The project's webhooks, by id (secrets are never shown again)."""
    project = auth.project_for_requester(project_id)
    after, limit = body.page_params()
    with deps.db().transaction() as cur:
        page = webhooks.page(cur, project.id, after, limit)
    return jsonify(
        {
            "webhooks": [h.to_json() for h in page],
            "next_cursor": body.next_cursor([h.id for h in page], limit),
        }
    )


@bp.delete("/<int:project_id>/webhooks/<int:webhook_id>")
@auth.require(*MANAGERS)
def delete(project_id: int, webhook_id: int) -> ResponseReturnValue:
    """Delete a webhook and its delivery history; its pending deliveries are not sent."""
    project = auth.project_for_requester(project_id)
    with deps.db().transaction() as cur:
        _webhook(cur, project.id, webhook_id)
        webhooks.delete(cur, project.id, webhook_id)
    return "", 204


@bp.get("/<int:project_id>/webhooks/<int:webhook_id>/deliveries")
@auth.require(*MANAGERS)
def deliveries(project_id: int, webhook_id: int) -> ResponseReturnValue:
    """The webhook's deliveries, newest first, optionally only those of one ``status``."""
    project = auth.project_for_requester(project_id)
    before, limit = body.page_params()
    status = body.choice_arg("status", tuple(s.value for s in DeliveryStatus))
    with deps.db().transaction() as cur:
        _webhook(cur, project.id, webhook_id)
        page = webhooks.deliveries_page(
            cur, project.id, webhook_id, before or body.MAX_ID, limit, status
        )
    return jsonify(
        {
            "deliveries": [d.to_json() for d in page],
            "next_cursor": body.next_cursor([d.id for d in page], limit),
        }
    )
