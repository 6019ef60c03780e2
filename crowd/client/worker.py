"""The crowd worker's side: fetch a task, answer or skip it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crowd.client._http import ApiError, Client


@dataclass(frozen=True)
class Assignment:
    """A reserved task: answer or skip it before ``expires_at`` (ISO 8601). In the review lane
    (``lane == "review"``) ``proposal`` is the label a model proposes: answer it to confirm,
    another label to correct it; blind tasks have none (docs/REVIEW.md)."""

    id: int
    task_id: int
    external_id: str
    data: dict[str, Any]
    expires_at: str
    lane: str = "blind"
    proposal: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Assignment:
        task = obj["task"]
        return cls(
            int(obj["assignment_id"]),
            int(task["id"]),
            str(task["external_id"]),
            dict(task["data"]),
            str(obj["expires_at"]),
            str(obj.get("lane", "blind")),
            (obj.get("proposal") or {}).get("label"),
        )


@dataclass(frozen=True)
class Answered:
    """An accepted answer, stored once. ``created`` is False when the service already had
    this very answer from a call with another idempotency key; a retry of this call (its
    response lost) gets the first response back, so True. ``next`` is the following task
    when it was asked for, None when none is left for this worker.

    ``label`` is the answer of a categorical project (None for other types); ``answer`` is
    the answer as the service acknowledged it, for every type: ``{"label": ...}``,
    ``{"labels": [...]}``, ``{"value": ...}`` or ``{"winner": ...}``."""

    assignment_id: int
    label: str | None
    created: bool
    next: Assignment | None = None
    answer: dict[str, Any] = field(default_factory=dict)


#: The fields an answer may carry, one per project type (docs/TYPES.md).
ANSWER_FIELDS = ("label", "labels", "value", "winner")


class WorkerClient(Client):
    """Calls the API with a worker token: :meth:`fetch`, :meth:`answer`, :meth:`skip`.

    Retries and idempotency keys as in :class:`~crowd.client.RequesterClient`. A worker
    banned from the project gets :class:`~crowd.client.ApiError` with ``code == "banned"``
    on fetch.
    """

    def fetch(self, project_id: int) -> Assignment | None:
        """Reserve this worker's next task in the project; None when nothing is left for it
        now (more may come: a lease expiring, or dynamic overlap asking for more answers)."""
        out = self.http.json("POST", f"/api/v1/projects/{project_id}/assignments")
        return Assignment.from_json(out) if out else None

    def answer(
        self,
        assignment_id: int,
        label: str | None = None,
        *,
        labels: list[str] | None = None,
        value: float | None = None,
        winner: str | None = None,
        fetch_next: bool = False,
    ) -> Answered:
        """Answer a reserved task with the one field its project type takes: ``label``
        (categorical), ``labels`` (multilabel: any subset, the empty list included),
        ``value`` (numeric, on the project's scale) or ``winner`` (pairwise: ``"left"``,
        ``"right"``, or ``"tie"`` where the project allows ties). With ``fetch_next`` the same
        request reserves the next task (``Answered.next``). A different answer for an
        answered task raises ApiError 409; an answer the project does not take, 422."""
        given = {
            k: v
            for k, v in zip(ANSWER_FIELDS, (label, labels, value, winner), strict=True)
            if v is not None
        }
        if len(given) != 1:
            raise ValueError(
                f"answer: give exactly one of {', '.join(ANSWER_FIELDS)}; got"
                f" {', '.join(given) or 'none'}"
            )
        body: dict[str, Any] = dict(given)
        if fetch_next:
            body["next"] = True
        out = self.http.json("POST", f"/api/v1/assignments/{assignment_id}/answer", json=body)
        following = out.get("next")
        acknowledged = {k: out[k] for k in ANSWER_FIELDS if k in out}
        return Answered(
            int(out["assignment_id"]),
            str(out["label"]) if "label" in out else None,
            out["status"] == "created",
            Assignment.from_json(following) if following else None,
            acknowledged,
        )

    def skip(self, assignment_id: int) -> None:
        """Give the task back unanswered; this worker will not be offered it again.

        Skipping an assignment that is already skipped succeeds (a retried skip whose first
        response was lost ends where it should)."""
        try:
            self.http.call("POST", f"/api/v1/assignments/{assignment_id}/skip")
        except ApiError as exc:
            if exc.code != "already_skipped":
                raise
