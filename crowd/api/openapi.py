"""The OpenAPI 3.1 document for ``GET /openapi.json``.

Request schemas come from the pydantic models that validate them, so the two cannot drift;
``tests/api/test_openapi.py`` checks that every route is documented and vice versa.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel

from crowd import __version__
from crowd.api import body
from crowd.api.schemas import AnswerIn, BanIn, ProjectIn, ProjectPatch, TasksIn, WorkerIn

_MAX_ID = body.MAX_ID  # PostgreSQL bigint


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out.update(_json(schema))
    return out


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed request (not JSON, bad cursor or limit)",
        401: "Missing or unknown token",
        403: "Token of the wrong role, or not the holder",
        404: "No such resource among the caller's",
        409: "Conflicts with the current state",
        413: "Body too large",
        422: "Well-formed but invalid values",
        429: "Too many failed authentications from this address; retry after Retry-After seconds",
        503: "A backing service is unavailable; retry after Retry-After seconds",
    }
    return {str(c): _ok(text[c], _ref("Error")) for c in codes}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, **_json(_ref(model.__name__))}


_PAGE = [
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "maxLength": 40},
        "description": "next_cursor of the previous page; omit for the first page",
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
]


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    return {**param, "description": description} if description else param


def _id(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": _MAX_ID},
    }


def _page_of(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key, "next_cursor"],
        "properties": {
            key: {"type": "array", "items": item},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


def _results_page() -> dict[str, Any]:
    page = _page_of("results", {"anyOf": [_ref("Result"), _ref("TypedResult")]})
    page["properties"].update(
        {
            "type": {"type": "string", "description": "typed projects: the project's type"},
            "last_run_id": {"type": ["integer", "null"]},
            "chosen_method": {
                "type": ["string", "null"],
                "description": "the method run last_run_id fitted (for method auto, its choice)",
            },
            "choice_reason": {"type": ["string", "null"], "description": "and why"},
        }
    )
    return page


def _ranking_page() -> dict[str, Any]:
    page = _page_of("items", _ref("RankedItem"))
    page["properties"].update(
        {
            "total_items": {"type": "integer"},
            "components": {"type": "integer"},
            "position_bias": {
                "type": ["number", "null"],
                "description": "the left side's estimated advantage, a log-odds",
            },
            "last_run_id": {"type": ["integer", "null"]},
        }
    )
    return page


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Project": {
        "type": "object",
        "required": ["id", "name", "labels", "overlap", "lease_seconds", "owner_id", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}},
            "overlap": {"type": "integer"},
            "lease_seconds": {"type": "integer"},
            "max_overlap": {"type": "integer"},
            "confidence_target": {"type": ["number", "null"]},
            "gold_rate": {"type": "number"},
            "gold_window": {"type": "integer"},
            "qc_min_answers": {"type": "integer"},
            "qc_min_accuracy": {"type": ["number", "null"]},
            "qc_min_gold_accuracy": {"type": ["number", "null"]},
            "qc_min_gold_answers": {"type": "integer"},
            "qc_min_trap_catch": {
                "type": ["number", "null"],
                "description": "Ban a reviewer whose share of proposals checked rather than"
                " accepted unseen (1 - its stamp rate, judged on all of its review answers)"
                " is below this with probability qc_confidence; null: off (docs/REVIEW.md).",
            },
            "qc_confidence": {"type": "number"},
            "exclude_banned": {"type": "boolean"},
            "method": {"type": "string"},
            "last_run_id": {"type": ["integer", "null"]},
            "model": {
                "type": ["object", "null"],
                "properties": {
                    "input": {"type": "string", "enum": ["text", "features"]},
                    "field": {"type": "string"},
                },
            },
            "retrain_every": {"type": "integer"},
            "order": {"type": "string", "enum": ["fifo", "uncertainty"]},
            "random_share": {"type": "number"},
            "auto_label_accuracy": {"type": ["number", "null"]},
            "corrections_every": {"type": "integer"},
            "review": {
                "description": "The review lane (docs/REVIEW.md); null: off",
                "anyOf": [{"$ref": "#/components/schemas/ReviewSettings"}, {"type": "null"}],
            },
            "type": {
                "type": "string",
                "enum": ["categorical", "multilabel", "numeric", "pairwise"],
                "description": "what an answer is (docs/TYPES.md)",
            },
            "scale": {
                "description": "numeric projects: the scale answers lie on; else null",
                "anyOf": [{"$ref": "#/components/schemas/Scale"}, {"type": "null"}],
            },
            "ties": {"type": "boolean", "description": 'pairwise: whether "tie" is an answer'},
            "active": {
                "description": "pairwise: the service creates the next comparisons itself, up to"
                " the budget (docs/TYPES.md); null: off",
                "anyOf": [{"$ref": "#/components/schemas/ActiveSettings"}, {"type": "null"}],
            },
            "owner_id": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "counts": {
                "type": "object",
                "properties": {
                    k: {"type": "integer"}
                    for k in ("tasks", "gold_tasks", "answers", "tasks_complete", "reservations")
                },
            },
        },
    },
    "Assignment": {
        "type": "object",
        "required": ["assignment_id", "task", "expires_at", "lane"],
        "properties": {
            "assignment_id": {"type": "integer"},
            "task": {
                "type": "object",
                "required": ["id", "external_id", "data"],
                "properties": {
                    "id": {"type": "integer"},
                    "external_id": {"type": "string"},
                    "data": {"type": "object"},
                },
            },
            "expires_at": {"type": "string", "format": "date-time"},
            "lane": {
                "type": "string",
                "enum": ["review", "blind"],
                "description": "review: the task is shown with a model's proposal, which the "
                "worker confirms by answering the same label or corrects with another; blind: "
                "no proposal (docs/REVIEW.md)",
            },
            "proposal": {
                "type": "object",
                "required": ["label"],
                "properties": {"label": {"type": "string"}},
                "description": "the model's proposed label; only in the review lane",
            },
        },
    },
    "AnswerAck": {
        "type": "object",
        "required": ["assignment_id", "status"],
        "properties": {
            "assignment_id": {"type": "integer"},
            "label": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}},
            "value": {"type": "number"},
            "winner": {"type": "string", "enum": ["left", "right", "tie"]},
            "status": {"type": "string", "enum": ["created", "repeated", "skipped"]},
            "next": {
                "anyOf": [{"$ref": "#/components/schemas/Assignment"}, {"type": "null"}],
                "description": 'present when the request asked for "next": true',
            },
        },
    },
    "Result": {
        "type": "object",
        "required": ["task_id", "external_id", "label", "confidence", "answers", "status"],
        "properties": {
            "task_id": {"type": "integer"},
            "external_id": {"type": "string"},
            "label": {"type": ["string", "null"]},
            "confidence": {"type": ["number", "null"]},
            "run_id": {
                "type": ["integer", "null"],
                "description": "the run that last changed this row; null: no run yet (majority"
                " vote), or auto-labelled (label_source model)",
            },
            "answers": {"type": "integer", "description": "answers stored now"},
            "aggregated_answers": {"type": "integer", "description": "answers the run used"},
            "status": {"type": "string", "enum": ["pending", "complete"]},
            "posteriors": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "number"},
                "description": "with ?posteriors=true: each label's probability",
            },
            "label_source": {
                "type": "string",
                "enum": ["crowd", "model", "gold"],
                "description": "model: closed by auto-labelling, the label is the model's;"
                " gold: a gold task's known label (with ?include_gold=true)",
            },
            "gold": {
                "type": ["string", "null"],
                "description": "with ?include_gold=true: a gold task's known label (null on"
                " regular tasks); a gold task's row has it as label, confidence null",
            },
            "model_label": {
                "type": ["string", "null"],
                "description": "the latest model version's label (projects with a model)",
            },
            "model_confidence": {"type": ["number", "null"]},
            "prediction": _ref("Prediction"),
        },
    },
    "TypedResult": {
        "type": "object",
        "description": "A typed project's result (docs/TYPES.md): labels and probabilities"
        " (multilabel), value and a 90% interval (numeric), winner, probabilities, left and"
        " right (pairwise); all null until a run covers the task",
        "required": ["task_id", "external_id", "confidence", "answers", "status"],
        "properties": {
            "task_id": {"type": "integer"},
            "external_id": {"type": "string"},
            "labels": {"type": ["array", "null"], "items": {"type": "string"}},
            "probabilities": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "number"},
            },
            "value": {"type": ["number", "null"]},
            "interval": {"type": ["array", "null"], "items": {"type": "number"}},
            "winner": {"type": ["string", "null"]},
            "left": {"type": "string"},
            "right": {"type": "string"},
            "confidence": {"type": ["number", "null"]},
            "run_id": {"type": ["integer", "null"]},
            "answers": {"type": "integer"},
            "aggregated_answers": {"type": "integer"},
            "status": {"type": "string", "enum": ["pending", "complete"]},
            "gold": {"description": "with ?include_gold=true: a gold task's known answer"},
        },
    },
    "RankedItem": {
        "type": "object",
        "required": ["item", "score", "interval", "rank", "component", "comparisons"],
        "properties": {
            "item": {"type": "string"},
            "score": {"type": "number"},
            "interval": {"type": "array", "items": {"type": "number"}},
            "rank": {"type": "integer", "description": "1 = best, within its component"},
            "component": {
                "type": "integer",
                "description": "0 = the largest group of items connected by comparisons",
            },
            "comparisons": {"type": "integer"},
        },
    },
    "Run": {
        "type": "object",
        "required": ["id", "project_id", "status", "trigger", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "project_id": {"type": "integer"},
            "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
            "trigger": {
                "type": "string",
                "enum": ["answers", "api", "follow-up", "retry", "catch-up", "model"],
                "description": "model: asked for by a model version that set or changed auto"
                " labels, so since_run polling moves past them",
            },
            "method": {
                "type": "string",
                "description": "the project's method when the run was queued",
            },
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "seconds": {
                "type": ["number", "null"],
                "description": "finished_at - started_at, to the millisecond (null until the"
                " run ends): reading the snapshot, fitting and publishing",
            },
            "answers": {"type": ["integer", "null"]},
            "tasks": {"type": ["integer", "null"]},
            "workers": {"type": ["integer", "null"]},
            "iterations": {"type": ["integer", "null"]},
            "converged": {"type": ["boolean", "null"]},
            "objective": {"type": ["number", "null"]},
            "warm_start": {"type": ["boolean", "null"]},
            "error": {"type": ["string", "null"]},
            "chosen_method": {
                "type": ["string", "null"],
                "enum": ["mv", "ds", "onecoin", "hds", None],
                "description": "the method the run fitted: with method auto, the one it chose"
                " (null until the run succeeds)",
            },
            "choice_reason": {
                "type": ["string", "null"],
                "description": "why: for auto, the gold tasks compared and the sign test that"
                " decided; otherwise the project's method",
            },
            "voters": {
                "type": ["array", "null"],
                "description": "each requester model whose predictions voted in the fit, with"
                " what the run estimated of it; null without voting models (docs/REVIEW.md)",
                "items": {"$ref": "#/components/schemas/Voter"},
            },
            "load": {
                "type": ["string", "null"],
                "description": "how the run read the answers: 'incremental' (the worker's kept"
                " copy and the answers it lacked) or 'full: <why>' (read whole: no copy kept,"
                " answers changed, the scheduled reload, a damaged copy, database replaced);"
                " docs/SCALING.md",
            },
        },
    },
    "Voter": {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "predictions": {
                "type": "integer",
                "description": "predictions in the fit: on tasks people answered, and on gold",
            },
            "accuracy": {
                "type": "number",
                "description": "estimated probability that its prediction is right",
            },
            "confusion": {
                "type": "array",
                "description": "confusion[k][l]: probability it predicts label l on a task whose"
                " true label is k, in the project's label order",
                "items": {"type": "array", "items": {"type": "number"}},
            },
            "gold_predictions": {"type": "integer"},
            "gold_correct": {"type": "integer"},
        },
    },
    "ProjectWorker": {
        "type": "object",
        "required": ["id", "name", "answers", "status"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "answers": {"type": "integer"},
            "accuracy": {"type": ["number", "null"]},
            "confusion": {
                "type": ["array", "null"],
                "items": {"type": "array", "items": {"type": "number"}},
            },
            "gold_answers": {"type": "integer"},
            "gold_accuracy": {"type": ["number", "null"]},
            "estimates": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "number"},
                "description": "typed projects: the last run's estimates (bias and noise;"
                " sensitivity and specificity; reliability)",
            },
            "status": {"type": "string", "enum": ["active", "banned"]},
            "reason": {"type": ["string", "null"]},
            "banned_at": {"type": ["string", "null"], "format": "date-time"},
            "run_id": {"type": ["integer", "null"]},
            "rules": {
                "type": ["object", "null"],
                "description": "Per quality rule the project turns on (accuracy: the model's"
                " estimate; gold: recent gold answers; trap: the share of proposals the"
                " worker checks rather than stamps, 1 - stamp rate, from all of its review"
                " answers), the last run's evidence; null before"
                " a run judged the worker (docs/QUALITY.md).",
                "additionalProperties": {"$ref": "#/components/schemas/RuleEvidence"},
            },
            "ban_rule": {
                "type": ["string", "null"],
                "description": "The rule that banned the worker; null if banned by hand.",
            },
            "evidence_reversed": {
                "type": "boolean",
                "description": "The banning rule's evidence now says the worker is more"
                " likely above its threshold than below; the ban stays until lifted.",
            },
            "stamp_rate": {
                "type": ["number", "null"],
                "description": "The last run's estimate of how often the worker accepts"
                " whatever proposal the review lane shows; null without review answers"
                " (docs/REVIEW.md).",
            },
            "trap_answers": {
                "type": "integer",
                "description": "traps answered: gold tasks shown in the review lane with a"
                " wrong proposal (docs/REVIEW.md)",
            },
            "trap_catch_rate": {
                "type": ["number", "null"],
                "description": "share of traps whose wrong proposal the worker corrected"
                " (shown; the trap rule judges stamping on all review answers instead)",
            },
        },
    },
    "RuleEvidence": {
        "type": "object",
        "properties": {
            "threshold": {"type": "number"},
            "estimate": {"type": ["number", "null"], "description": "Posterior mean"},
            "low": {"type": ["number", "null"], "description": "95% interval, lower end"},
            "high": {"type": ["number", "null"], "description": "95% interval, upper end"},
            "p_below": {
                "type": ["number", "null"],
                "description": "Probability that the worker is below the threshold",
            },
            "more_answers": {
                "type": ["integer", "null"],
                "description": "Answers, at the worker's current pace, until the evidence"
                " decides (ban, or clear of the threshold) if it keeps its current rate; 0 if"
                " decided, null if it never would",
            },
        },
    },
    "Answer": {
        "type": "object",
        "required": ["id", "task_id", "external_id", "worker_id", "created_at"],
        "description": "the answer is label (categorical), labels (multilabel), value"
        " (numeric) or winner (pairwise)",
        "properties": {
            "id": {"type": "integer"},
            "task_id": {"type": "integer"},
            "external_id": {"type": "string"},
            "worker_id": {"type": "integer"},
            "label": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}},
            "value": {"type": "number"},
            "winner": {"type": "string", "enum": ["left", "right", "tie"]},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "ModelVersion": {
        "type": "object",
        "required": [
            "id",
            "status",
            "run_id",
            "trained_tasks",
            "skipped_tasks",
            "metrics",
            "error",
            "created_at",
            "finished_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "project_id": {"type": "integer"},
            "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
            "trigger": {
                "type": "string",
                "enum": ["tasks", "api", "retry"],
                "description": "retry: queued because the version before it lost its worker",
            },
            "run_id": {
                "type": ["integer", "null"],
                "description": "the aggregation run whose labels it trained on",
            },
            "trained_tasks": {"type": ["integer", "null"]},
            "skipped_tasks": {
                "type": ["integer", "null"],
                "description": "complete tasks without the model's data field",
            },
            "metrics": {
                "type": "object",
                "properties": {
                    "gold_accuracy": {"type": ["number", "null"]},
                    "gold_log_loss": {"type": ["number", "null"]},
                    "gold_tasks": {"type": ["integer", "null"]},
                },
            },
            "predicted_tasks": {"type": ["integer", "null"]},
            "auto_label_threshold": {"type": ["number", "null"]},
            "auto_labelled": {"type": ["integer", "null"]},
            "kind": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Worker": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "token": {"type": "string"},
        },
    },
}


def _paths() -> dict[str, Any]:
    requester: list[dict[str, list[str]]] = [{"bearer": []}]
    pid = _id("project_id")
    aid = _id("assignment_id")
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness of the API, PostgreSQL and Redis",
                "security": [],
                "responses": {"200": _ok("All up"), "503": _ok("A dependency is down")},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _ok("OpenAPI 3.1 document")},
            }
        },
        "/api/v1/workers": {
            "post": {
                "summary": "Create a worker identity and its token (requester)",
                "security": requester,
                "requestBody": _body(WorkerIn),
                "responses": {
                    "201": _ok("Created; the token is shown only now", _ref("Worker")),
                    **_errors(400, 401, 403, 413, 422, 503),
                },
            },
            "get": {
                "summary": "List the caller's workers",
                "security": requester,
                "parameters": _PAGE,
                "responses": {
                    "200": _ok("A page of workers", _page_of("workers", _ref("Worker"))),
                    **_errors(400, 401, 403, 503),
                },
            },
        },
        "/api/v1/projects": {
            "post": {
                "summary": "Create a project",
                "security": requester,
                "requestBody": _body(ProjectIn),
                "responses": {
                    "201": _ok("Created", _ref("Project")),
                    **_errors(400, 401, 403, 413, 422, 503),
                },
            },
            "get": {
                "summary": "List the caller's projects (all, for an admin)",
                "security": requester,
                "parameters": _PAGE,
                "responses": {
                    "200": _ok("A page of projects", _page_of("projects", _ref("Project"))),
                    **_errors(400, 401, 403, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}": {
            "get": {
                "summary": "A project with its progress counts",
                "security": requester,
                "parameters": [pid],
                "responses": {
                    "200": _ok("The project", _ref("Project")),
                    **_errors(401, 403, 404, 503),
                },
            },
            "patch": {
                "summary": "Change settings; fields left out keep their values, null turns a rule off",
                "security": requester,
                "parameters": [pid],
                "requestBody": _body(ProjectPatch),
                "responses": {
                    "200": _ok("The project", _ref("Project")),
                    **_errors(400, 401, 403, 404, 413, 422, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/tasks": {
            "post": {
                "summary": "Post a batch of up to 10,000 tasks; idempotent on external_id",
                "description": (
                    "A task whose external_id the project already has is not created again "
                    "(it counts as `existing`), so a retried batch is harmless. A task is "
                    "fixed once posted: an external_id sent again with other `data` or `gold` "
                    "is a 409 (`task_changed`) naming those external_ids, and nothing of the "
                    "batch is stored; post changed content under new external_ids."
                ),
                "security": requester,
                "parameters": [pid],
                "requestBody": _body(TasksIn),
                "responses": {
                    "201": _ok(
                        "Counts of created tasks and of tasks already posted with this content",
                        {
                            "type": "object",
                            "required": ["created", "existing"],
                            "properties": {
                                "created": {"type": "integer"},
                                "existing": {"type": "integer"},
                                "predictions": {
                                    "type": "object",
                                    "description": "when tasks carried a prediction: the "
                                    "new (task, model) pairs, and those already stored",
                                    "required": ["created", "existing"],
                                    "properties": {
                                        "created": {"type": "integer"},
                                        "existing": {"type": "integer"},
                                    },
                                },
                            },
                        },
                    ),
                    **_errors(400, 401, 403, 404, 413, 422, 503),
                    "409": _ok(
                        "Tasks already posted with other data or gold; the message names them",
                        _ref("Error"),
                    ),
                },
            },
        },
        "/api/v1/projects/{project_id}/assignments": {
            "post": {
                "summary": "Reserve the next task for the calling worker",
                "security": requester,
                "parameters": [pid],
                "responses": {
                    "201": _ok("Reserved until expires_at", _ref("Assignment")),
                    "204": _ok("No task is available for this worker now"),
                    **_errors(401, 403, 404, 503),
                },
            },
        },
        "/api/v1/assignments/{assignment_id}/answer": {
            "post": {
                "summary": "Answer a reserved task (worker holding it)",
                "security": requester,
                "parameters": [aid],
                "requestBody": _body(AnswerIn),
                "responses": {
                    "201": _ok("Stored", _ref("AnswerAck")),
                    "200": _ok("The same answer was already stored (a retry)", _ref("AnswerAck")),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            },
        },
        "/api/v1/assignments/{assignment_id}/skip": {
            "post": {
                "summary": "Give a reserved task back to others",
                "security": requester,
                "parameters": [aid],
                "responses": {
                    "200": _ok("Skipped", _ref("AnswerAck")),
                    **_errors(401, 403, 404, 409, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/results": {
            "get": {
                "summary": "Aggregated label per task, by task id (gold tasks only with "
                "?include_gold=true)",
                "security": requester,
                "parameters": [
                    pid,
                    *_PAGE,
                    _query(
                        "since_run",
                        {"type": "integer", "minimum": 0, "maximum": _MAX_ID},
                        "only results changed after run N (and tasks auto-labelled while run N "
                        "or a later one was the project's last)",
                    ),
                    _query("status", {"type": "string", "enum": ["complete", "pending"]}),
                    _query("posteriors", {"type": "boolean"}, "add each label's probability"),
                    _query(
                        "include_gold",
                        {"type": "boolean"},
                        "also list gold (control) tasks, left out by default: label and gold "
                        "are their known label, confidence null, status complete",
                    ),
                ],
                "responses": {
                    "200": _ok("A page of results", _results_page()),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/ranking": {
            "get": {
                "summary": "A pairwise project's items in ranking order (422 for other types)",
                "security": requester,
                "parameters": [pid, *_PAGE],
                "responses": {
                    "200": _ok("A page of the ranking", _ranking_page()),
                    **_errors(400, 401, 403, 404, 422, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/aggregations": {
            "get": {
                "summary": "The project's aggregation runs, newest first",
                "security": requester,
                "parameters": [pid, *_PAGE],
                "responses": {
                    "200": _ok("A page of runs", _page_of("aggregations", _ref("Run"))),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
            "post": {
                "summary": "Ask for a run over every answer stored so far",
                "security": requester,
                "parameters": [pid],
                "responses": {
                    "202": _ok(
                        "Queued (run), or a follow-up of the queued/running run (run: null)",
                        {
                            "type": "object",
                            "properties": {
                                "run": {"anyOf": [_ref("Run"), {"type": "null"}]},
                                "message": {"type": "string"},
                            },
                        },
                    ),
                    **_errors(401, 403, 404, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/aggregations/{run_id}": {
            "get": {
                "summary": "One aggregation run",
                "security": requester,
                "parameters": [pid, _id("run_id")],
                "responses": {"200": _ok("The run", _ref("Run")), **_errors(401, 403, 404, 503)},
            },
        },
        "/api/v1/projects/{project_id}/workers": {
            "get": {
                "summary": "Workers in the project: answers, estimates, gold accuracy, status",
                "security": requester,
                "parameters": [
                    pid,
                    *_PAGE,
                    _query("status", {"type": "string", "enum": ["active", "banned"]}),
                ],
                "responses": {
                    "200": _ok("A page of workers", _page_of("workers", _ref("ProjectWorker"))),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/workers/{worker_id}/ban": {
            "post": {
                "summary": "Ban a worker from the project; its reservations are released",
                "security": requester,
                "parameters": [pid, _id("worker_id")],
                "requestBody": {**_body(BanIn), "required": False},
                "responses": {
                    "200": _ok("Banned"),
                    **_errors(400, 401, 403, 404, 413, 422, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/workers/{worker_id}/unban": {
            "post": {
                "summary": "Lift a ban (idempotent)",
                "security": requester,
                "parameters": [pid, _id("worker_id")],
                "responses": {"200": _ok("Active"), **_errors(401, 403, 404, 503)},
            },
        },
        "/api/v1/projects/{project_id}/answers": {
            "get": {
                "summary": "Raw answers in the order they were stored",
                "security": requester,
                "parameters": [pid, *_PAGE],
                "responses": {
                    "200": _ok("A page of answers", _page_of("answers", _ref("Answer"))),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        **_model_paths(pid),
    }


def _model_paths(pid: dict[str, Any]) -> dict[str, Any]:
    """Model versions and export (docs/MODELS.md)."""
    requester: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "/api/v1/projects/{project_id}/models": {
            "get": {
                "summary": "The project's model versions, newest first, with metrics on gold",
                "security": requester,
                "parameters": [pid, *_PAGE],
                "responses": {
                    "200": _ok("A page of versions", _page_of("models", _ref("ModelVersion"))),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
            "post": {
                "summary": "Ask for a new model version now",
                "security": requester,
                "parameters": [pid],
                "responses": {
                    "202": _ok(
                        "Queued (model), or null when a version is already queued or running",
                        {
                            "type": "object",
                            "properties": {
                                "model": {"anyOf": [_ref("ModelVersion"), {"type": "null"}]},
                                "message": {"type": "string"},
                            },
                        },
                    ),
                    **_errors(401, 403, 404, 409, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/export": {
            "get": {
                "summary": "Every task with its label, confidence, answers and model fields",
                "security": requester,
                "parameters": [
                    pid,
                    _query("format", {"type": "string", "enum": ["jsonl", "csv"]}, "jsonl"),
                ],
                "responses": {
                    "200": {
                        "description": "Streamed, one task per line, by task id",
                        "content": {
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, 401, 403, 404, 503),
                    "429": _ok(
                        "Too many failed authentications from this address, or this server "
                        "process already streams CROWD_EXPORT_CONCURRENCY exports; retry after "
                        "Retry-After seconds",
                        _ref("Error"),
                    ),
                },
            },
        },
    }


# Issue 7 (UI): what the labelling page and the dashboard read beyond the endpoints above.
_SCHEMAS["WorkerProject"] = {
    "type": "object",
    "required": ["id", "name", "labels", "lease_seconds", "banned", "ban_reason", "has_tasks"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "labels": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string", "description": "what an answer is (docs/TYPES.md)"},
        "scale": {"type": ["object", "null"], "description": "numeric projects' scale"},
        "ties": {"type": "boolean"},
        "lease_seconds": {"type": "integer"},
        "banned": {"type": "boolean"},
        "ban_reason": {"type": ["string", "null"]},
        "has_tasks": {
            "type": "boolean",
            "description": "a task is waiting for this worker now (a fetch would get one);"
            " false when all are answered, reserved by others or seen by this worker, or"
            " when it is banned",
        },
    },
}
_SCHEMAS["ProjectStats"] = {
    "type": "object",
    "required": ["last_run_id", "confidence", "answers_per_task"],
    "properties": {
        "last_run_id": {"type": ["integer", "null"]},
        "confidence": {
            "type": "object",
            "required": ["tasks", "bins"],
            "properties": {
                "tasks": {
                    "type": "integer",
                    "description": "regular tasks with a published result",
                },
                "bins": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["from", "to", "tasks"],
                        "properties": {
                            "from": {"type": "number"},
                            "to": {"type": "number"},
                            "tasks": {"type": "integer"},
                        },
                    },
                },
            },
        },
        "answers_per_task": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["answers", "tasks"],
                "properties": {"answers": {"type": "integer"}, "tasks": {"type": "integer"}},
            },
        },
    },
}


def _ui_paths() -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "/api/v1/me/projects": {
            "get": {
                "summary": "Projects open to the calling worker, with its bans (worker)",
                "security": bearer,
                "parameters": _PAGE,
                "responses": {
                    "200": _ok("A page of projects", _page_of("projects", _ref("WorkerProject"))),
                    **_errors(400, 401, 403, 503),
                },
            },
        },
        "/api/v1/projects/{project_id}/stats": {
            "get": {
                "summary": "Confidence histogram and answers per task, computed in SQL",
                "security": bearer,
                "parameters": [
                    _id("project_id"),
                    _query(
                        "bins",
                        {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                        "equal-width confidence bins over [0, 1]",
                    ),
                ],
                "responses": {
                    "200": _ok("The distributions", _ref("ProjectStats")),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
    }


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
    "description": "One per logical request (e.g. a UUID), reused on its retries: a retry "
    "gets the stored response (header Idempotent-Replayed: true) instead of a second effect; "
    "the same key with another request is a 422. Kept 24 hours.",
}


def _with_auth_limit(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation that takes a token can answer 429 (crowd.api.ratelimit), and every
    POST takes an Idempotency-Key (crowd.api.idempotency): a malformed one is a 400, one
    reused for another request a 422."""
    for operations in paths.values():
        for method, operation in operations.items():
            if operation.get("security") != []:
                operation["responses"].setdefault("429", _errors(429)["429"])
            if method == "post":
                operation["parameters"] = [*operation.get("parameters", []), IDEMPOTENCY_KEY]
                for status in (400, 422):
                    operation["responses"].setdefault(str(status), _errors(status)[str(status)])
    return paths


@functools.cache
def document() -> dict[str, Any]:
    schemas = dict(_SCHEMAS)
    # Webhooks keep their part of the document in a module of their own.
    from crowd.api import openapi_predictions, openapi_webhooks

    schemas.update(openapi_webhooks.SCHEMAS)
    schemas.update(openapi_predictions.SCHEMAS)
    models = (
        ProjectIn,
        ProjectPatch,
        TasksIn,
        AnswerIn,
        WorkerIn,
        BanIn,
        *openapi_webhooks.MODELS,
        *openapi_predictions.MODELS,
    )
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crowd",
            "version": __version__,
            "description": "Crowdsourcing with redundant assignment and label aggregation. "
            "Strings in request bodies must not contain NUL (\\u0000) or unpaired UTF-16 "
            "surrogates, which cannot be stored (400).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _with_auth_limit(
            {
                **_paths(),
                **_ui_paths(),
                **openapi_webhooks.paths(),
                **openapi_predictions.paths(),
            }
        ),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
