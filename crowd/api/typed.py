"""What each project type accepts (docs/TYPES.md): the settings a type makes meaningless,
its tasks and gold, and its answers. Every refusal is a 422 naming the field and what to send.

A categorical project goes through none of this beyond one comparison: its paths are the ones
it always had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from crowd.api.schemas import AnswerIn, ProjectIn, TaskIn
from crowd.errors import Invalid
from crowd.store.projects import Project

CATEGORICAL = "categorical"

#: A pairwise project's labels: what ``assignments.label`` and ``tasks.gold`` index.
PAIRWISE = ("left", "right")
TIE = "tie"

#: Settings no typed project can use, and why (said in the 422).
_CATEGORICAL_ONLY = {
    "model": "models predict one label per task",
    "review": "the review lane shows a model's single-label proposal",
    "auto_label_accuracy": "auto-labelling needs a model",
    "qc_min_trap_catch": "traps need the review lane",
}


def _refuse(field: str, message: str) -> None:
    raise Invalid(f"{field}: {message}", code="meaningless_for_type")


def check_project(spec: ProjectIn) -> list[str]:
    """Refuse settings the project's type makes meaningless; return its labels (what
    ``projects.labels`` stores for the type: see migration 0016)."""
    kind = spec.type
    sent = spec.model_fields_set
    if kind != "numeric" and spec.scale is not None:
        _refuse("scale", f"only numeric projects have a scale; leave it out of a {kind} project")
    if kind != "pairwise" and "ties" in sent:
        _refuse("ties", f"only pairwise projects take ties; leave it out of a {kind} project")
    if kind != "pairwise" and spec.active is not None:
        _refuse(
            "active",
            f"only pairwise projects create their own comparisons; leave it out of a {kind}"
            " project",
        )
    if kind == CATEGORICAL:
        if spec.labels is None or len(spec.labels) < 2:
            raise Invalid(
                'labels: a categorical project needs 2 or more labels, e.g. ["pos", "neg"]'
            )
        return spec.labels
    for name, why in _CATEGORICAL_ONLY.items():
        if getattr(spec, name) is not None:
            _refuse(name, f"{why}, which a {kind} project has not; leave it out or null")
    if spec.order != "fifo":
        _refuse("order", f'"uncertainty" needs a model; send "fifo" for a {kind} project')
    if "method" in sent and spec.method != "auto":
        _refuse(
            "method",
            f'a {kind} project has one aggregation method of its own; send "auto" or leave it out',
        )
    if kind == "multilabel":
        if not spec.labels:
            raise Invalid(
                'labels: a multilabel project needs 1 or more labels, e.g. ["cat", "dog"]'
            )
        return spec.labels
    if spec.labels is not None:
        _refuse("labels", f"a {kind} project has no labels; leave labels out")
    if kind == "numeric":
        if spec.scale is None:
            raise Invalid(
                'scale: a numeric project needs one, e.g. {"min": 1, "max": 5, "step": 1}'
            )
        if spec.qc_min_accuracy is not None:
            _refuse(
                "qc_min_accuracy",
                "a numeric project estimates each worker's bias and noise, not an accuracy; use"
                " qc_min_gold_accuracy (answers within the gold tolerance) or leave it out",
            )
        return []
    return [*PAIRWISE, TIE] if spec.ties else list(PAIRWISE)


def check_patch(project: Project, changes: dict[str, Any]) -> None:
    """Refuse changes to a typed project that its type makes meaningless."""
    if project.type != "pairwise" and changes.get("active") is not None:
        _refuse("active", "only pairwise projects create their own comparisons; send null")
    if project.type == CATEGORICAL:
        return
    for name, why in _CATEGORICAL_ONLY.items():
        if changes.get(name) is not None:
            _refuse(name, f"{why}, which a {project.type} project has not; send null")
    if changes.get("order", "fifo") != "fifo":
        _refuse("order", f'"uncertainty" needs a model; send "fifo" for a {project.type} project')
    if changes.get("method", "auto") != "auto":
        _refuse("method", f'a {project.type} project has one aggregation method; send "auto"')
    if project.type == "numeric" and changes.get("qc_min_accuracy") is not None:
        _refuse("qc_min_accuracy", "a numeric project estimates no accuracy; send null")


def scale_of(project: Project) -> tuple[float, float, float | None]:
    assert project.scale is not None
    return project.scale["min"], project.scale["max"], project.scale.get("step")


def _check_value(project: Project, value: float, field: str) -> float:
    low, high, step = scale_of(project)
    if not low <= value <= high:
        raise Invalid(
            f"{field}: {value:g} is off the scale; send a number from {low:g} to {high:g}",
            code="off_scale",
        )
    if step is not None:
        k = (value - low) / step
        if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
            raise Invalid(
                f"{field}: {value:g} is off the step; send {low:g} plus a whole number of"
                f" steps of {step:g}, e.g. {low + math.floor(k) * step:g}",
                code="off_scale",
            )
    return value


def _label_set(project: Project, labels: list[str], field: str) -> list[int]:
    found = []
    for label in labels:
        index = project.label_index(label)
        if index is None:
            raise Invalid(
                f"{field}: {label!r} is not one of this project's labels {project.labels[:20]}",
                code="unknown_label",
            )
        found.append(index)
    if len(set(found)) != len(found):
        raise Invalid(f"{field}: labels must be distinct; send each label once")
    return sorted(found)


def _winner(project: Project, winner: str, field: str) -> int:
    index = project.label_index(winner)
    if index is None:
        raise Invalid(
            f'{field}: this project takes no ties; send "left" or "right"', code="ties_off"
        )
    return index


@dataclass(frozen=True)
class TypedTask:
    data: dict[str, Any]
    gold: int | None
    gold_value: float | None = None
    gold_set: list[int] | None = None


def task(project: Project, spec: TaskIn, where: str) -> TypedTask:
    """A posted task of a typed project: its stored data and gold (see migration 0016)."""
    if project.type != "pairwise" and (spec.left is not None or spec.right is not None):
        _refuse(f"{where}.left", "only pairwise tasks have left and right items; send data")
    if spec.prediction is not None:
        _refuse(f"{where}.prediction", f"a {project.type} project takes no model predictions")
    gold = spec.gold
    if project.type == "pairwise":
        if spec.left is None or spec.right is None:
            raise Invalid(
                f'{where}: a pairwise task needs "left" and "right" items, e.g. {{"left":'
                ' {"id": "i1", "data": {}}, "right": {"id": "i2", "data": {}}}'
            )
        if spec.left.id == spec.right.id:
            raise Invalid(f"{where}.right.id: an item cannot be compared with itself")
        if spec.data:
            _refuse(f"{where}.data", "a pairwise task's data go on its left and right items")
        data = {"left": spec.left.model_dump(), "right": spec.right.model_dump()}
        if gold is None:
            return TypedTask(data, None)
        if not isinstance(gold, str) or gold not in (*PAIRWISE, TIE):
            raise Invalid(f'{where}.gold: send the winner, "left", "right" (or "tie" with ties on)')
        return TypedTask(data, _winner(project, gold, f"{where}.gold"))
    if gold is None:
        return TypedTask(spec.data, None)
    if project.type == "multilabel":
        if not isinstance(gold, list):
            raise Invalid(f'{where}.gold: send the known label set, a list such as ["cat"] or []')
        return TypedTask(spec.data, 0, gold_set=_label_set(project, gold, f"{where}.gold"))
    if isinstance(gold, str | list | bool):
        raise Invalid(f"{where}.gold: send the known value, a number on the project's scale")
    return TypedTask(spec.data, 0, gold_value=_check_value(project, float(gold), f"{where}.gold"))


@dataclass(frozen=True)
class Answer:
    """An answer as stored: ``label`` (a label index; 0 for numeric and multilabel), and the
    numeric ``value`` or multilabel ``label_set``."""

    label: int
    value: float | None = None
    label_set: list[int] | None = None


_FIELD = {"categorical": "label", "multilabel": "labels", "numeric": "value", "pairwise": "winner"}
_EXAMPLE = {
    "categorical": '{"label": "pos"}',
    "multilabel": '{"labels": ["cat", "dog"]} (or [] for none)',
    "numeric": '{"value": 3}',
    "pairwise": '{"winner": "left"}',
}


def answer(project: Project, spec: AnswerIn) -> Answer:
    """The stored form of a worker's answer, or a 422 saying what this project takes."""
    field = _FIELD[project.type]
    for other in _FIELD.values():
        if other != field and getattr(spec, other) is not None:
            raise Invalid(
                f"{other}: this is a {project.type} project; send {_EXAMPLE[project.type]}",
                code="wrong_answer_type",
            )
    if getattr(spec, field) is None:
        raise Invalid(
            f"{field}: missing; this {project.type} project takes {_EXAMPLE[project.type]}",
            code="wrong_answer_type",
        )
    if project.type == "categorical":
        assert spec.label is not None
        index = project.label_index(spec.label)
        if index is None:
            raise Invalid(
                f"label: {spec.label!r} is not one of this project's labels {project.labels[:20]}",
                code="unknown_label",
            )
        return Answer(index)
    if project.type == "multilabel":
        assert spec.labels is not None
        return Answer(0, label_set=_label_set(project, spec.labels, "labels"))
    if project.type == "numeric":
        assert spec.value is not None
        return Answer(0, value=_check_value(project, float(spec.value), "value"))
    assert spec.winner is not None
    return Answer(_winner(project, spec.winner, "winner"))


def answer_json(
    project: Project, label: int, value: float | None, label_set: Any
) -> dict[str, Any]:
    """An answer as the API shows it: ``{"label"}``, ``{"labels"}``, ``{"value"}`` or
    ``{"winner"}``."""
    if project.type == "multilabel":
        return {"labels": [project.labels[i] for i in (label_set or [])]}
    if project.type == "numeric":
        return {"value": value}
    if project.type == "pairwise":
        return {"winner": project.labels[label]}
    return {"label": project.labels[label]}
