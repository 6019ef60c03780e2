"""The requester's side: projects, task batches, predictions, worker accounts, results."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from crowd.client._http import Client

#: Tasks per POST when posting a batch (the service accepts up to CROWD_MAX_BATCH_TASKS,
#: 10,000 by default).
CHUNK = 5000


@dataclass(frozen=True)
class Worker:
    """A worker account. ``token`` is shown only once, when the account is created."""

    id: int
    name: str
    token: str


@dataclass(frozen=True)
class Posted:
    """What :meth:`RequesterClient.post_tasks` did: tasks new to the project, and tasks it
    already had (same ``external_id``; a re-posted batch creates nothing twice)."""

    created: int
    existing: int


@dataclass(frozen=True)
class ResultsPage:
    """One page of ``GET /results``: its rows, the project's ``last_run_id`` read in the same
    snapshot, and the cursor of the next page (None on the last)."""

    results: list[dict[str, Any]]
    last_run_id: int | None
    next_cursor: str | None


@dataclass(frozen=True)
class ResultsPass:
    """One pass over the results: every row changed after ``since_run`` (all of them when it
    was None), and the ``last_run_id`` to pass as ``since_run`` next time."""

    results: list[dict[str, Any]]
    since_run: int | None
    last_run_id: int | None


class RequesterClient(Client):
    """Calls the API with a requester (or admin) token.

    Every call retries on connection errors, 429, 502, 503 and 504 (honouring
    ``Retry-After``), and every POST carries one ``Idempotency-Key`` across its retries; a
    4xx raises :class:`~crowd.client.ApiError` with the API's code and message. Rows come
    back as the API's JSON objects (see ``GET /openapi.json``).

    >>> client = RequesterClient("http://127.0.0.1:8000", token)  # doctest: +SKIP
    """

    # -- projects --------------------------------------------------------------------------

    def create_project(
        self, name: str, labels: Iterable[str] | None = None, **settings: Any
    ) -> dict[str, Any]:
        """Create a project; ``settings`` are any of the API's project settings (``type``,
        ``overlap``, ``max_overlap``, ``confidence_target``, ``qc_min_accuracy``, ``method``,
        ...). Numeric and pairwise projects have no labels: leave ``labels`` out (a numeric
        one takes ``scale={"min": 1, "max": 5, "step": 1}``)."""
        spec = {"name": name, **settings}
        if labels is not None:
            spec["labels"] = list(labels)
        project: dict[str, Any] = self.http.json("POST", "/api/v1/projects", json=spec)
        return project

    def project(self, project_id: int) -> dict[str, Any]:
        """The project with its progress ``counts`` (tasks, answers, tasks_complete, ...)."""
        project: dict[str, Any] = self.http.json("GET", f"/api/v1/projects/{project_id}")
        return project

    def update_project(self, project_id: int, **changes: Any) -> dict[str, Any]:
        """Change settings (only those given; None turns an optional rule off)."""
        project: dict[str, Any] = self.http.json(
            "PATCH", f"/api/v1/projects/{project_id}", json=changes
        )
        return project

    def projects(self, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every project this token can see, by id (pages fetched as needed)."""
        return self._pages("/api/v1/projects", "projects", {}, page_size)

    # -- tasks -----------------------------------------------------------------------------

    def post_tasks(
        self, project_id: int, tasks: Iterable[Mapping[str, Any]], *, chunk_size: int = CHUNK
    ) -> Posted:
        """Post tasks (``{"external_id", "data"?, "gold"?, "prediction"?}``) in requests of
        ``chunk_size``.

        Each chunk is one call with its own idempotency key; the service also keys tasks on
        ``external_id``, so posting the same tasks again creates nothing twice.
        """
        return self._post_chunks(f"/api/v1/projects/{project_id}/tasks", "tasks", tasks, chunk_size)

    def post_predictions(
        self,
        project_id: int,
        model: str,
        predictions: Iterable[Mapping[str, Any]],
        *,
        chunk_size: int = CHUNK,
    ) -> Posted:
        """Post one model's predictions (``{"external_id" or "task_id", "label", "confidence"}``
        or ``{..., "probabilities": {label: p}}``) in requests of ``chunk_size``.

        Idempotent per (task, model): predictions already stored with the same label count as
        ``existing``; one stored with another label raises an ``ApiError`` (409) and stores
        nothing of its chunk (earlier chunks stay stored).
        """
        return self._post_chunks(
            f"/api/v1/projects/{project_id}/predictions",
            "predictions",
            predictions,
            chunk_size,
            {"model": model},
        )

    def corrections(
        self, project_id: int, model: str, *, page_size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every task whose current label differs from ``model``'s prediction: external_id,
        prediction (label, confidence), label, confidence, label_source."""
        return self._pages(
            f"/api/v1/projects/{project_id}/corrections", "corrections", {"model": model}, page_size
        )

    # -- workers ---------------------------------------------------------------------------

    def create_worker(self, name: str) -> Worker:
        """A new worker account; keep its ``token`` (it is not shown again)."""
        out = self.http.json("POST", "/api/v1/workers", json={"name": name})
        return Worker(int(out["id"]), str(out["name"]), str(out["token"]))

    def project_workers(
        self, project_id: int, *, status: str | None = None, page_size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Workers with answers in the project: answers, accuracy estimate, confusion, gold
        accuracy, ``status`` (``active`` | ``banned``) and ``reason``."""
        return self._pages(
            f"/api/v1/projects/{project_id}/workers", "workers", {"status": status}, page_size
        )

    def ban(self, project_id: int, worker_id: int, reason: str | None = None) -> None:
        """Ban a worker from the project; its live reservations are released."""
        self.http.call(
            "POST",
            f"/api/v1/projects/{project_id}/workers/{worker_id}/ban",
            json={"reason": reason} if reason else {},
        )

    def unban(self, project_id: int, worker_id: int) -> None:
        self.http.call("POST", f"/api/v1/projects/{project_id}/workers/{worker_id}/unban")

    # -- results ---------------------------------------------------------------------------

    def results(
        self,
        project_id: int,
        *,
        since_run: int | None = None,
        status: str | None = None,
        posteriors: bool = False,
        page_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Result rows by task id, page after page: label, confidence, answers, status,
        run_id. ``since_run`` keeps only rows changed after that run."""
        return self._pages(
            f"/api/v1/projects/{project_id}/results",
            "results",
            _result_params(since_run, status, posteriors),
            page_size,
        )

    def result_pages(
        self,
        project_id: int,
        *,
        since_run: int | None = None,
        status: str | None = None,
        posteriors: bool = False,
        page_size: int = 1000,
    ) -> Iterator[ResultsPage]:
        """The pages of one pass over the results, each as it arrives (for callers that
        act on a page before the next is read)."""
        path = f"/api/v1/projects/{project_id}/results"
        params = {**_result_params(since_run, status, posteriors), "limit": page_size}
        while True:
            page = self.http.json("GET", path, params=params)
            yield ResultsPage(page["results"], page["last_run_id"], page["next_cursor"])
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    def poll_results(
        self,
        project_id: int,
        since_run: int | None = None,
        *,
        status: str | None = None,
        posteriors: bool = False,
        page_size: int = 1000,
    ) -> ResultsPass:
        """Read every page of the rows changed after ``since_run`` once.

        The returned ``last_run_id`` comes from the first page, read in the same snapshot as
        that page's rows; passing it as the next ``since_run`` misses no run.
        """
        rows: list[dict[str, Any]] = []
        last_run_id: int | None = None
        for i, page in enumerate(
            self.result_pages(
                project_id,
                since_run=since_run,
                status=status,
                posteriors=posteriors,
                page_size=page_size,
            )
        ):
            if i == 0:
                last_run_id = page.last_run_id
            rows.extend(page.results)
        return ResultsPass(rows, since_run, last_run_id)

    def stream_results(
        self,
        project_id: int,
        *,
        since_run: int | None = None,
        interval: float = 1.0,
        status: str | None = None,
        posteriors: bool = False,
    ) -> Iterator[ResultsPass]:
        """Poll for changed rows every ``interval`` seconds, forever: yields one
        :class:`ResultsPass` per poll (its ``results`` may be empty), each starting where the
        previous one ended. Stop by leaving the loop."""
        while True:
            started = time.monotonic()
            batch = self.poll_results(project_id, since_run, status=status, posteriors=posteriors)
            yield batch
            if batch.last_run_id is not None:
                since_run = batch.last_run_id
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    def ranking(self, project_id: int, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """A pairwise project's items in ranking order, from its newest run: item, score,
        90% interval, rank, component and comparisons (``GET .../ranking``). Other types get
        ApiError 422 ``not_pairwise``."""
        return self._pages(f"/api/v1/projects/{project_id}/ranking", "items", {}, page_size)

    def answers(self, project_id: int, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every stored answer: id, task_id, external_id, worker_id, label, created_at."""
        return self._pages(f"/api/v1/projects/{project_id}/answers", "answers", {}, page_size)

    # -- aggregation runs ------------------------------------------------------------------

    def request_run(self, project_id: int) -> dict[str, Any] | None:
        """Ask for an aggregation run: the queued run, or None when one is already queued or
        running (one more run then follows it, covering every answer so far)."""
        out = self.http.json("POST", f"/api/v1/projects/{project_id}/aggregations")
        run: dict[str, Any] | None = out["run"]
        return run

    def runs(self, project_id: int, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """The project's aggregation runs, newest first."""
        return self._pages(
            f"/api/v1/projects/{project_id}/aggregations", "aggregations", {}, page_size
        )

    # --------------------------------------------------------------------------------------

    def _post_chunks(
        self,
        path: str,
        key: str,
        items: Iterable[Mapping[str, Any]],
        chunk_size: int,
        fields: Mapping[str, Any] | None = None,
    ) -> Posted:
        """POST ``{**fields, key: chunk}`` per ``chunk_size`` items; adds up the counts."""
        created = existing = 0
        chunk: list[Mapping[str, Any]] = []

        def send() -> None:
            nonlocal created, existing
            out = self.http.json("POST", path, json={**(fields or {}), key: chunk})
            created += int(out["created"])
            existing += int(out["existing"])

        for item in items:
            chunk.append(item)
            if len(chunk) == chunk_size:
                send()
                chunk = []
        if chunk:
            send()
        return Posted(created, existing)

    def _pages(
        self, path: str, key: str, params: Mapping[str, Any], page_size: int
    ) -> Iterator[dict[str, Any]]:
        query = {**params, "limit": page_size}
        while True:
            page = self.http.json("GET", path, params=query)
            yield from page[key]
            if not page["next_cursor"]:
                return
            query["cursor"] = page["next_cursor"]


def _result_params(since_run: int | None, status: str | None, posteriors: bool) -> dict[str, Any]:
    return {
        "since_run": since_run,
        "status": status,
        "posteriors": "true" if posteriors else None,
    }
