"""Python client for the crowd API.

:class:`RequesterClient` creates projects, posts task batches in chunks and reads results
(page by page, or streamed with ``since_run``); :class:`WorkerClient` fetches, answers and
skips tasks. Both retry connection errors, 429, 502, 503 and 504 with backoff (honouring
``Retry-After``), send one ``Idempotency-Key`` per logical call across its retries, and raise
:class:`ApiError` (HTTP status, the API's error ``code`` and ``message``) when the API says
no. docs/CLIENT.md has examples.
"""

from __future__ import annotations

from crowd.client._http import ApiError, ClientError, ConnectionFailed, RetryPolicy
from crowd.client.requester import Posted, RequesterClient, ResultsPage, ResultsPass, Worker
from crowd.client.worker import Answered, Assignment, WorkerClient

__all__ = [
    "Answered",
    "ApiError",
    "Assignment",
    "ClientError",
    "ConnectionFailed",
    "Posted",
    "RequesterClient",
    "ResultsPage",
    "ResultsPass",
    "RetryPolicy",
    "Worker",
    "WorkerClient",
]
