"""Request bodies. The same models feed validation and the OpenAPI document."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
)

Label = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class ProjectIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "sentiment",
                "labels": ["pos", "neg"],
                "overlap": 3,
                "lease_seconds": 600,
            }
        },
    )

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    labels: Annotated[list[Label], Field(min_length=2, max_length=1000)]
    overlap: Annotated[StrictInt, Field(ge=1, le=100)] = 3
    lease_seconds: Annotated[StrictInt, Field(ge=5, le=7 * 24 * 3600)] = 600

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        dupes = sorted(label for label, n in Counter(labels).items() if n > 1)
        if dupes:
            raise ValueError(f"labels must be distinct; repeated: {', '.join(dupes[:5])}")
        if any(not x.strip() for x in labels):
            raise ValueError("labels must be non-empty strings (not only spaces)")
        return labels


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    data: dict[str, Any] = Field(default_factory=dict)
    gold: Label | None = None


class TasksIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"tasks": [{"external_id": "t1", "data": {"text": "great"}, "gold": "pos"}]}
        },
    )

    # The upper bound is CROWD_MAX_BATCH_TASKS, checked in the view.
    tasks: Annotated[list[TaskIn], Field(min_length=1)]


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"label": "pos"}})

    label: Label
    # Also reserve the worker's next task, returned as "next": one request per answer.
    next: StrictBool = False


class WorkerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"name": "alice"}})

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
