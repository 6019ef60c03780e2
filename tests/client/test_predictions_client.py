"""crowd.client's predictions and corrections calls against the real service over HTTP."""

from __future__ import annotations

import pytest

from crowd.client import ApiError, RequesterClient, RetryPolicy, WorkerClient
from crowd.config import Settings
from tests.aggregation.test_live import drain

FAST = RetryPolicy(attempts=6, base_delay=0.05, max_delay=2.0)


def test_a_requester_posts_predictions_in_chunks_and_reads_the_corrections(
    live_url: str, requester: str, settings: Settings
) -> None:
    with RequesterClient(live_url, requester, retry=FAST) as req:
        pid = req.create_project("p", ["cat", "dog"], overlap=1, gold_rate=0.0)["id"]
        req.post_tasks(pid, [{"external_id": f"t{i}", "data": {"n": i}} for i in range(7)])
        guesses = [{"external_id": f"t{i}", "label": "cat", "confidence": 0.9} for i in range(7)]
        posted = req.post_predictions(pid, "m@1", guesses, chunk_size=3)
        assert (posted.created, posted.existing) == (7, 0)
        again = req.post_predictions(pid, "m@1", guesses, chunk_size=3)
        assert (again.created, again.existing) == (0, 7)
        with pytest.raises(ApiError) as refused:
            req.post_predictions(pid, "m@1", [{**guesses[0], "label": "dog"}])
        assert refused.value.status == 409 and refused.value.code == "prediction_conflict"

        worker = req.create_worker("w")
        with WorkerClient(live_url, worker.token, retry=FAST) as w:
            got = w.fetch(pid)
            while got is not None:
                got = w.answer(got.id, "cat" if got.data["n"] % 2 else "dog", fetch_next=True).next
        drain(settings)
        corrected = list(req.corrections(pid, "m@1", page_size=2))
        assert [c["external_id"] for c in corrected] == ["t0", "t2", "t4", "t6"]
        assert all(c["label"] == "dog" and c["prediction"]["label"] == "cat" for c in corrected)
