"""The predictions part of the OpenAPI document (merged in by :func:`crowd.api.openapi.document`)."""

from __future__ import annotations

from typing import Any

from crowd.api.openapi import _PAGE, _body, _errors, _id, _ok, _page_of, _query, _ref
from crowd.api.schemas import PredictionsIn

MODELS = (PredictionsIn,)

PREDICTION = {
    "type": ["object", "null"],
    "required": ["model", "label", "confidence"],
    "properties": {
        "model": {"type": "string"},
        "label": {"type": "string"},
        "confidence": {"type": "number"},
    },
    "description": "the newest prediction of the task by any model (builtin:<version id> for "
    "the built-in model); null: none",
}

_AUDITS = {
    "type": "object",
    "required": ["audited", "labelled", "agree", "precision", "interval"],
    "properties": {
        "audited": {
            "type": "integer",
            "description": "would-be-accepted tasks drawn (audit_rate) for blind labelling",
        },
        "labelled": {"type": "integer", "description": "audited tasks with a complete crowd label"},
        "agree": {"type": "integer", "description": "of those, labelled as the prediction"},
        "precision": {
            "type": ["number", "null"],
            "description": "agree / labelled: the audited precision of auto-accepts",
        },
        "interval": {
            "type": ["array", "null"],
            "items": {"type": "number"},
            "description": "95% Wilson interval of the precision",
        },
    },
}

_SHARE = {"type": ["number", "null"]}


def _accuracy(of: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["tasks", "correct", "accuracy"],
        "properties": {
            "tasks": {"type": "integer", "description": of},
            "correct": {"type": "integer", "description": "of those, the prediction is right"},
            "accuracy": {**_SHARE, "description": "correct / tasks; null: no such task"},
        },
    }


#: Each model's review-panel figures (docs/REVIEW.md#the-review-panel).
_PANEL: dict[str, Any] = {
    "reviewed": {
        "type": "integer",
        "description": "predictions people answered with their label proposed (review lane)",
    },
    "share_reviewed": {**_SHARE, "description": "reviewed / predictions"},
    "review_answers": {"type": "integer", "description": "answers given beside the proposal"},
    "confirmed": {"type": "integer", "description": "review answers that are the proposal"},
    "corrected": {"type": "integer", "description": "review answers that are another label"},
    "share_confirmed": {**_SHARE, "description": "confirmed / review_answers"},
    "share_corrected": {**_SHARE, "description": "corrected / review_answers"},
    "accuracy": {
        "type": "object",
        "required": ["gold", "reviewed"],
        "properties": {
            "gold": _accuracy("predictions on gold tasks"),
            "reviewed": _accuracy("reviewed predictions whose task has a complete crowd label"),
        },
    },
    "reliability": {
        "type": "array",
        "minItems": 10,
        "maxItems": 10,
        "description": "the reliability diagram: per confidence tenth, the predictions whose "
        "right answer people gave (gold, or a complete crowd label, blind or reviewed)",
        "items": {
            "type": "object",
            "required": ["from", "to", "tasks", "confidence", "accuracy"],
            "properties": {
                "from": {"type": "number"},
                "to": {"type": "number", "description": "exclusive, but 1.0 is in the last"},
                "tasks": {"type": "integer"},
                "confidence": {**_SHARE, "description": "mean confidence in the bucket"},
                "accuracy": {**_SHARE, "description": "share right in the bucket"},
            },
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Prediction": PREDICTION,
    "ReviewReport": {
        "type": "object",
        "required": ["review", "auto_accepted", "audits", "models"],
        "properties": {
            "review": {
                "anyOf": [{"$ref": "#/components/schemas/ReviewSettings"}, {"type": "null"}]
            },
            "auto_accepted": {"type": "integer", "description": "tasks closed by auto-accept"},
            "audits": _AUDITS,
            "models": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "model",
                        "predictions",
                        "auto_accepted",
                        "threshold",
                        "audits",
                        *_PANEL,
                    ],
                    "properties": {
                        "model": {"type": "string"},
                        "predictions": {"type": "integer"},
                        "auto_accepted": {"type": "integer"},
                        "threshold": {
                            "type": ["number", "null"],
                            "description": "the calibrated auto-accept threshold; null: not "
                            "enough gold and audit evidence yet, nothing is accepted",
                        },
                        "audits": _AUDITS,
                        **_PANEL,
                    },
                },
                "description": "per model; the review figures may lag up to 30 s on a big "
                "project (they are kept in Redis between polls)",
            },
        },
    },
    "PredictionsStored": {
        "type": "object",
        "required": ["model", "created", "existing"],
        "properties": {
            "model": {"type": "string"},
            "created": {"type": "integer", "description": "new (task, model) pairs"},
            "existing": {
                "type": "integer",
                "description": "pairs already stored with the same label (left as they were)",
            },
        },
    },
    "Correction": {
        "type": "object",
        "required": ["task_id", "external_id", "prediction", "label", "confidence"],
        "properties": {
            "task_id": {"type": "integer"},
            "external_id": {"type": "string"},
            "prediction": {
                "type": "object",
                "required": ["label", "confidence"],
                "properties": {"label": {"type": "string"}, "confidence": {"type": "number"}},
            },
            "label": {"type": "string", "description": "the task's current label"},
            "confidence": {
                "type": ["number", "null"],
                "description": "the current label's posterior; null for a gold task",
            },
            "label_source": {"type": "string", "enum": ["crowd", "gold"]},
        },
    },
}


def paths() -> dict[str, Any]:
    requester: list[dict[str, list[str]]] = [{"bearer": []}]
    pid = _id("project_id")
    corrections = _page_of("corrections", _ref("Correction"))
    corrections["required"] = ["model", *corrections["required"]]
    corrections["properties"]["model"] = {"type": "string"}
    return {
        "/api/v1/projects/{project_id}/predictions": {
            "post": {
                "summary": "Store up to 10,000 predictions of one model; idempotent per "
                "(task, model), a different label for a stored pair is a 409",
                "security": requester,
                "parameters": [pid],
                "requestBody": _body(PredictionsIn),
                "responses": {
                    "201": _ok("Stored", _ref("PredictionsStored")),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/review": {
            "get": {
                "summary": "The review lane: tasks auto-accepted, the audited precision of "
                "auto-accepts with its 95% interval, and per model its counts, threshold, "
                "shares reviewed, confirmed and corrected, accuracy on gold and reviewed tasks, "
                "and a 10-bucket reliability diagram",
                "security": requester,
                "parameters": [pid],
                "responses": {
                    "200": _ok("The review report", _ref("ReviewReport")),
                    **_errors(401, 403, 404, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/corrections": {
            "get": {
                "summary": "Tasks whose current label differs from a model's prediction, by "
                "task id",
                "security": requester,
                "parameters": [
                    pid,
                    {
                        **_query(
                            "model",
                            {"type": "string", "minLength": 1, "maxLength": 100},
                            "the model's name as its predictions were posted",
                        ),
                        "required": True,
                    },
                    *_PAGE,
                ],
                "responses": {
                    "200": _ok("A page of corrections", corrections),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
    }
