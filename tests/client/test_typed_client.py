"""crowd.client on projects of other types (docs/TYPES.md), over real HTTP: creating them,
answering with ``labels``, ``value`` and ``winner``, and reading a pairwise ranking."""

from __future__ import annotations

import pytest

from crowd.client import ApiError, RequesterClient, RetryPolicy, WorkerClient
from crowd.config import Settings
from tests.aggregation.test_live import drain

FAST = RetryPolicy(attempts=4, base_delay=0.05, max_delay=1.0)
ORDER = ["A", "B", "C", "D"]  # best first


def test_a_pairwise_project_end_to_end_through_the_client(
    live_url: str, requester: str, settings: Settings
) -> None:
    with RequesterClient(live_url, requester, retry=FAST) as req:
        pid = req.create_project("prefs", type="pairwise", overlap=2, gold_rate=0)["id"]
        tasks = [
            {"external_id": f"{a}{b}", "left": {"id": a}, "right": {"id": b, "data": {"x": 1}}}
            for i, a in enumerate(ORDER)
            for b in ORDER[i + 1 :]
        ]
        assert req.post_tasks(pid, tasks).created == 6
        for name in ("w0", "w1"):
            with WorkerClient(live_url, req.create_worker(name).token, retry=FAST) as w:
                got = w.fetch(pid)
                while got is not None:
                    left, right = got.data["left"]["id"], got.data["right"]["id"]
                    better = "left" if ORDER.index(left) < ORDER.index(right) else "right"
                    answered = w.answer(got.id, winner=better, fetch_next=True)
                    assert answered.created and answered.answer == {"winner": better}
                    assert answered.label is None
                    got = answered.next
        drain(settings)
        ranked = list(req.ranking(pid, page_size=3))  # two pages
        assert [row["item"] for row in ranked] == ORDER
        assert [row["rank"] for row in ranked] == [1, 2, 3, 4]
        assert all(row["comparisons"] == 6 for row in ranked)  # 3 pairs x 2 workers

        categorical = req.create_project("cats", ["cat", "dog"])["id"]
        with pytest.raises(ApiError) as refused:
            list(req.ranking(categorical))
        assert refused.value.status == 422 and refused.value.code == "not_pairwise"


def test_numeric_and_multilabel_answers_and_a_wrong_field(live_url: str, requester: str) -> None:
    with RequesterClient(live_url, requester, retry=FAST) as req:
        rating = req.create_project(
            "age", type="numeric", scale={"min": 1, "max": 5, "step": 1}, gold_rate=0
        )["id"]
        tags = req.create_project("tags", ["cat", "dog"], type="multilabel", gold_rate=0)["id"]
        for pid in (rating, tags):
            req.post_tasks(pid, [{"external_id": "t0", "data": {}}])
        with WorkerClient(live_url, req.create_worker("w").token, retry=FAST) as w:
            task = w.fetch(rating)
            assert task is not None
            with pytest.raises(ValueError, match="exactly one of label, labels, value, winner"):
                w.answer(task.id, "3", value=3)
            with pytest.raises(ApiError) as off_step:
                w.answer(task.id, value=2.5)
            assert off_step.value.status == 422 and "step" in off_step.value.message
            assert w.answer(task.id, value=3).answer == {"value": 3}

            task = w.fetch(tags)
            assert task is not None
            empty = w.answer(task.id, labels=[])  # the empty set is an answer too
            assert empty.created and empty.answer == {"labels": []}
        (row,) = req.answers(tags)
        assert row["labels"] == []
