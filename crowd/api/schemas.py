"""Request bodies. The same models feed validation and the OpenAPI document."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

#: PostgreSQL text cannot hold NUL; saying so in the schema tells clients (and generated tests).
NO_NUL = r"^[^\x00]*$"

Label = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=NO_NUL)]


Name = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=NO_NUL)]
Overlap = Annotated[StrictInt, Field(ge=1, le=100)]
Lease = Annotated[StrictInt, Field(ge=5, le=7 * 24 * 3600)]
# Strict: a whole number is a number, but true/false or "0.5" is not.
Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
Count = Annotated[StrictInt, Field(ge=1, le=1_000_000)]
Method = Literal["ds", "onecoin", "mv", "hds", "auto"]


class ModelSettings(BaseModel):
    """What a project's model reads from each task's data (see docs/MODELS.md)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"input": "text", "field": "text"}}
    )

    # "text": the field holds a string; "features": it holds a list of numbers.
    input: Literal["text", "features"]
    field: Annotated[StrictStr, Field(min_length=1, max_length=200)]


Order = Literal["fifo", "uncertainty"]
RetrainEvery = Annotated[StrictInt, Field(ge=1, le=10_000_000)]
# Auto-labelling's target accuracy on gold; below one half it would mean "worse than a coin".
# How sure a quality rule must be that a worker is below its threshold to ban it: above one
# half (else it would ban workers more likely above), below 1 (certainty never comes).
QcConfidence = Annotated[float, Field(gt=0.5, lt=1.0, allow_inf_nan=False, strict=True)]
AutoLabelAccuracy = Annotated[float, Field(ge=0.5, le=1.0, allow_inf_nan=False, strict=True)]


#: The traps every reviewer answers at `review.onboarding_trap_rate` (when set).
ONBOARDING_TRAPS = 6


class ReviewSettings(BaseModel):
    """The review lane (docs/REVIEW.md): a task whose newest prediction's confidence is at
    least ``blind_below`` is shown to workers with the prediction as a proposal, and needs
    ``overlap`` answers (a correction opens more, up to ``max_overlap``); ``accept_at`` accepts
    predictions calibrated to reach that accuracy with no human answer, except an
    ``audit_rate`` share sent to blind labelling; ``trap_rate`` of review-lane fetches serve a
    gold task with a wrong proposal."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "overlap": 1,
                "max_overlap": 3,
                "blind_below": 0.5,
                "accept_at": None,
                "audit_rate": 0.05,
                "trap_rate": 0.05,
                "onboarding_trap_rate": None,
                "onboarding_traps": ONBOARDING_TRAPS,
            }
        },
    )

    overlap: Overlap = 1
    max_overlap: Overlap = 3
    blind_below: Share = 0.5
    accept_at: AutoLabelAccuracy | None = None
    audit_rate: Share = 0.05
    trap_rate: Share = 0.05
    # Until a worker has answered `onboarding_traps` traps in the project, its fetches draw a
    # trap at this rate instead (null: `trap_rate` throughout): enough traps to judge a
    # stamper within its first answers, without charging established reviewers for more.
    onboarding_trap_rate: Share | None = None
    onboarding_traps: Count = ONBOARDING_TRAPS

    @model_validator(mode="after")
    def _overlaps(self) -> ReviewSettings:
        if self.max_overlap < self.overlap:
            raise ValueError(
                f"review.max_overlap ({self.max_overlap}) must be at least review.overlap"
                f" ({self.overlap})"
            )
        return self


class ProjectSettings(BaseModel):
    """Settings shared by project creation and PATCH (every field optional in PATCH)."""

    model_config = ConfigDict(extra="forbid")

    # Dynamic overlap: `overlap` answers at least; a task whose confidence after a run is
    # below `confidence_target` gets one more slot, up to `max_overlap`. No target: fixed.
    max_overlap: Overlap | None = None
    confidence_target: (
        Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False, strict=True)] | None
    ) = None
    # Share of a worker's fetches that serve a gold (control) task, when the project has any.
    gold_rate: Share = 0.1
    # A worker's gold accuracy counts its last `gold_window` gold answers.
    gold_window: Count = 20
    # Quality rules (docs/QUALITY.md): ban a worker with at least `qc_min_answers` answers
    # when the probability that its accuracy is below `qc_min_accuracy` (the model's
    # estimate), or its gold accuracy (with at least `qc_min_gold_answers` gold answers)
    # below `qc_min_gold_accuracy`, is at least `qc_confidence` (shared among the rules on:
    # each needs 1 - (1 - qc_confidence) / rules). null: rule off.
    qc_min_answers: Count = 20
    qc_min_accuracy: Share | None = None
    qc_min_gold_accuracy: Share | None = None
    qc_min_gold_answers: Count = 5
    qc_confidence: QcConfidence = 0.95
    # Whether a banned worker's (stored) answers are left out of the aggregation.
    exclude_banned: StrictBool = True
    method: Method = "auto"
    # Models: a retrain follows every `retrain_every` newly complete tasks; `order:
    # "uncertainty"` hands out the tasks the model is least sure of first, except a
    # `random_share` of fetches; `auto_label_accuracy` closes tasks the model labels
    # confidently enough to reach that accuracy on gold. null model: none of it runs.
    model: ModelSettings | None = None
    retrain_every: RetrainEvery = 200
    order: Order = "fifo"
    random_share: Share = 0.1
    auto_label_accuracy: AutoLabelAccuracy | None = None
    # Predictions (docs/REVIEW.md): a review.corrections webhook event follows every
    # `corrections_every` new corrections of a model's predictions.
    corrections_every: Count = 100
    # The review lane (docs/REVIEW.md); null: off, every task is labelled blind.
    review: ReviewSettings | None = None
    # Ban a reviewer whose share of proposals checked rather than stamped (1 - its stamp
    # rate, judged on all its review answers, crowd.em.stamping) is below this with
    # probability `qc_confidence`; null: rule off.
    qc_min_trap_catch: Share | None = None


class ActiveSettings(BaseModel):
    """Active pairwise selection (docs/TYPES.md): after each run the service creates new
    comparisons of the project's items, those that most reduce uncertainty about the ranking,
    so that ``batch`` of its comparisons are open (up to ``batch`` per run), until it has
    created ``budget`` in all."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"budget": 5000, "batch": 100}}
    )

    budget: Annotated[
        StrictInt,
        Field(
            ge=1,
            le=10_000_000,
            description="comparisons (tasks) the service may create in all, each answered"
            " `overlap` times",
        ),
    ]
    batch: Annotated[
        StrictInt,
        Field(
            ge=1,
            le=10_000,
            description="most of the service's comparisons open (created, short of their"
            " answers) at once: each run tops them up to it",
        ),
    ] = 100


ProjectType = Literal["categorical", "multilabel", "numeric", "pairwise"]
#: A finite JSON number (a whole number is one too; true/false or "3" are not).
Number = Annotated[float, Field(allow_inf_nan=False, strict=True, ge=-1e12, le=1e12)]


class Scale(BaseModel):
    """A numeric project's scale: answers lie in ``[min, max]``, on ``min + k * step`` when
    ``step`` is set."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"min": 1, "max": 5, "step": 1}}
    )

    min: Number
    max: Number
    step: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True, le=1e12)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if not self.max > self.min:
            raise ValueError(f"scale.max ({self.max:g}) must be above scale.min ({self.min:g})")
        if self.step is not None:
            steps = (self.max - self.min) / self.step
            if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
                raise ValueError(
                    f"scale.step ({self.step:g}) must divide max - min ({self.max - self.min:g})"
                    " into whole steps"
                )
            if steps > 1_000_000:
                raise ValueError("scale: at most 1,000,000 steps; send a larger step or none")
        return self


class ProjectIn(ProjectSettings):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "sentiment",
                "labels": ["pos", "neg"],
                "overlap": 3,
                "max_overlap": 7,
                "confidence_target": 0.95,
                "lease_seconds": 600,
            }
        },
    )

    name: Name
    # Required for categorical and multilabel projects; numeric and pairwise projects have
    # none (see docs/TYPES.md), so it may be left out, but never sent as null.
    labels: Annotated[
        list[Label], Field(min_length=2, max_length=1000, json_schema_extra={"uniqueItems": True})
    ] = Field(default_factory=lambda: None)  # type: ignore[arg-type]
    overlap: Overlap = 3
    lease_seconds: Lease = 600
    # What an answer is (docs/TYPES.md); categorical is one label of ``labels``.
    type: ProjectType = "categorical"
    # numeric only: the scale answers lie on.
    scale: Scale | None = None
    # pairwise only: whether "tie" is an answer.
    ties: StrictBool = False
    # pairwise only: the service creates comparisons itself (null: off).
    active: ActiveSettings | None = None

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str] | None) -> list[str] | None:
        if labels is None:
            return None
        dupes = sorted(label for label, n in Counter(labels).items() if n > 1)
        if dupes:
            raise ValueError(f"labels must be distinct; repeated: {', '.join(dupes[:5])}")
        if any(not x.strip() for x in labels):
            raise ValueError("labels must be non-empty strings (not only spaces)")
        return labels

    @model_validator(mode="after")
    def _overlaps(self) -> ProjectIn:
        if self.max_overlap is not None and self.max_overlap < self.overlap:
            raise ValueError(
                f"max_overlap ({self.max_overlap}) must be at least overlap ({self.overlap})"
            )
        return self


class ProjectPatch(BaseModel):
    """Changes to a project's settings; fields left out keep their values."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"confidence_target": 0.9, "qc_min_accuracy": 0.6}},
    )

    name: Name | None = None
    overlap: Overlap | None = None
    lease_seconds: Lease | None = None
    max_overlap: Overlap | None = None
    confidence_target: (
        Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False, strict=True)] | None
    ) = None
    gold_rate: Share | None = None
    gold_window: Count | None = None
    qc_min_answers: Count | None = None
    qc_min_accuracy: Share | None = None
    qc_min_gold_accuracy: Share | None = None
    qc_min_gold_answers: Count | None = None
    qc_confidence: QcConfidence | None = None
    exclude_banned: StrictBool | None = None
    method: Method | None = None
    model: ModelSettings | None = None
    retrain_every: RetrainEvery | None = None
    order: Order | None = None
    random_share: Share | None = None
    auto_label_accuracy: AutoLabelAccuracy | None = None
    corrections_every: Count | None = None
    review: ReviewSettings | None = None
    qc_min_trap_catch: Share | None = None
    active: ActiveSettings | None = None


# --- Predictions (docs/REVIEW.md) ---------------------------------------------------------

ExternalId = Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=NO_NUL)]
ModelName = Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=NO_NUL)]
#: Most predictions in one POST .../predictions.
MAX_PREDICTIONS = 10_000


class PredictionValue(BaseModel):
    """What a model says of one task: a ``label`` with its probability (``confidence``), or
    ``probabilities`` of the labels (summing to 1 ± 1e-6; ``label`` is then their argmax when
    left out). Which labels exist, and the sum, are checked by the view."""

    model_config = ConfigDict(extra="forbid")

    label: Label | None = None
    confidence: Share | None = None
    probabilities: Annotated[dict[str, Share], Field(min_length=1, max_length=1000)] | None = None


class PredictionIn(PredictionValue):
    """A prediction for one task, named by ``external_id`` or ``task_id``."""

    external_id: ExternalId | None = None
    task_id: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)] | None = None


class PredictionsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "model": "resnet@2026-12-01",
                "predictions": [{"external_id": "r1", "label": "pos", "confidence": 0.93}],
            }
        },
    )

    model: ModelName
    predictions: Annotated[list[PredictionIn], Field(min_length=1, max_length=MAX_PREDICTIONS)]


class InlinePrediction(PredictionValue):
    """A task's prediction sent with the task itself."""

    model: ModelName


ItemId = Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=NO_NUL)]


class PairItem(BaseModel):
    """One side of a pairwise task: the requester's item id and what to show of it."""

    model_config = ConfigDict(extra="forbid")

    id: ItemId
    data: dict[str, Any] = Field(default_factory=dict)


class TaskIn(BaseModel):
    """A task. ``gold`` is the known answer: a label (categorical), a list of labels
    (multilabel), a number (numeric) or ``left``/``right``/``tie`` (pairwise). Pairwise tasks
    have ``left`` and ``right`` items instead of ``data``."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId
    data: dict[str, Any] = Field(default_factory=dict)
    gold: Label | Annotated[list[Label], Field(max_length=1000)] | Number | None = None
    prediction: InlinePrediction | None = None
    left: PairItem | None = None
    right: PairItem | None = None


class TasksIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"tasks": [{"external_id": "t1", "data": {"text": "great"}, "gold": "pos"}]}
        },
    )

    # The upper bound is CROWD_MAX_BATCH_TASKS, checked in the view.
    tasks: Annotated[list[TaskIn], Field(min_length=1)]


Winner = Literal["left", "right", "tie"]


class AnswerIn(BaseModel):
    """One field, by the project's type: ``label`` (categorical), ``labels`` (multilabel, any
    subset, the empty one included), ``value`` (numeric) or ``winner`` (pairwise)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"label": "pos"}})

    label: Label | None = None
    labels: Annotated[list[Label], Field(max_length=1000)] | None = None
    value: Number | None = None
    winner: Winner | None = None
    # Also reserve the worker's next task, returned as "next": one request per answer.
    next: StrictBool = False


class WorkerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"name": "alice"}})

    name: Name


class BanIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"reason": "copied answers"}}
    )

    reason: StrictStr = Field(
        default="banned by the requester", min_length=1, max_length=500, pattern=NO_NUL
    )


# --- Webhooks -----------------------------------------------------------------------------

WebhookEvent = Literal[
    "aggregation.completed", "model.trained", "task.completed", "review.corrections"
]


class WebhookIn(BaseModel):
    """A URL to POST a project's events to, signed with ``secret`` (generated when left out)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "url": "https://example.com/hooks/crowd",
                "events": ["aggregation.completed", "task.completed"],
            }
        },
    )

    url: Annotated[StrictStr, Field(min_length=1, max_length=2000)]
    # Every event when left out.
    events: Annotated[list[WebhookEvent], Field(min_length=1, max_length=4)] = Field(
        default_factory=lambda: list(get_args(WebhookEvent))
    )
    # The HMAC-SHA256 key; a random one is generated (and shown once) when left out.
    secret: Annotated[StrictStr, Field(min_length=16, max_length=200)] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        bad = "url must be an http:// or https:// URL with a host, e.g. https://example.com/hooks"
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError(bad) from None
        if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in url):
            raise ValueError(bad)
        return url

    @field_validator("events")
    @classmethod
    def _distinct_events(cls, events: list[str]) -> list[str]:
        if len(set(events)) != len(events):
            raise ValueError("events must be distinct")
        return events
