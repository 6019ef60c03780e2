"""crowd.client against the real service over HTTP (live_url), through a gateway that can
refuse, drop or throttle requests the way a real network and load balancer do."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from crowd.client import (
    ApiError,
    ConnectionFailed,
    RequesterClient,
    RetryPolicy,
    WorkerClient,
)
from crowd.config import Settings
from crowd.store.db import Database
from tests.aggregation.test_live import drain
from tests.client.gateway import Gateway, serving

FAST = RetryPolicy(attempts=6, base_delay=0.05, max_delay=2.0)


def _answers_stored(database: Database, assignment_id: int) -> int:
    with database.transaction() as cur:
        cur.execute(
            "SELECT count(*) FROM assignments WHERE id = %s AND status = 'answered'",
            (assignment_id,),
        )
        (n,) = cur.fetchone()
    return int(n)


def test_requester_posts_in_chunks_workers_answer_and_results_come_page_by_page(
    live_url: str, requester: str
) -> None:
    with RequesterClient(live_url, requester, retry=FAST) as req:
        project = req.create_project("cats", ["cat", "dog"], overlap=2, gold_rate=0.0)
        pid = project["id"]
        assert project["overlap"] == 2 and project["labels"] == ["cat", "dog"]
        tasks = [{"external_id": f"t{i}", "data": {"n": i}} for i in range(25)]
        posted = req.post_tasks(pid, tasks, chunk_size=10)
        assert (posted.created, posted.existing) == (25, 0)
        again = req.post_tasks(pid, tasks, chunk_size=10)  # a re-post creates nothing twice
        assert (again.created, again.existing) == (0, 25)

        for i in range(2):
            worker = req.create_worker(f"w{i}")
            with WorkerClient(live_url, worker.token, retry=FAST) as w:
                got = w.fetch(pid)
                while got is not None:
                    label = "cat" if got.data["n"] % 2 else "dog"
                    answered = w.answer(got.id, label, fetch_next=True)
                    assert answered.created and answered.label == label
                    got = answered.next
                assert w.fetch(pid) is None  # every task has its two answers

        rows = list(req.results(pid, page_size=7))
        assert [r["external_id"] for r in rows] == [f"t{i}" for i in range(25)]
        assert all(r["answers"] == 2 and r["status"] == "complete" for r in rows)
        assert all(r["label"] == ("cat" if int(r["external_id"][1:]) % 2 else "dog") for r in rows)
        assert len(list(req.answers(pid, page_size=10))) == 50
        assert req.project(pid)["counts"]["answers"] == 50
        assert [p["id"] for p in req.projects(page_size=1)] == [pid]
        assert req.update_project(pid, confidence_target=0.9)["confidence_target"] == 0.9


def test_worker_fetches_answers_and_skips_and_refusals_carry_the_api_code(
    live_url: str, requester: str
) -> None:
    with RequesterClient(live_url, requester, retry=FAST) as req:
        pid = req.create_project("p", ["a", "b"], overlap=1, gold_rate=0.0)["id"]
        req.post_tasks(pid, [{"external_id": "x"}, {"external_id": "y"}])
        w = WorkerClient(live_url, req.create_worker("w").token, retry=FAST)
        first = w.fetch(pid)
        assert first is not None and first.external_id == "x"
        w.skip(first.id)
        w.skip(first.id)  # skipping again ends in the same state: no error
        second = w.fetch(pid)
        assert second is not None and second.external_id == "y"
        with pytest.raises(ApiError) as unknown:
            w.answer(second.id, "c")
        assert unknown.value.status == 422 and unknown.value.code == "unknown_label"
        assert "one of this project's labels" in unknown.value.message
        assert w.answer(second.id, "a").created
        assert not w.answer(second.id, "a").created  # the same answer again: stored once
        with pytest.raises(ApiError) as changed:
            w.answer(second.id, "b")
        assert (changed.value.status, changed.value.code) == (409, "different_answer")
        with pytest.raises(ApiError) as answered:
            w.skip(second.id)
        assert answered.value.code == "already_answered"
        assert w.fetch(pid) is None
        with pytest.raises(ApiError) as denied:
            WorkerClient(live_url, "crowd_not-a-token", retry=FAST).fetch(pid)
        assert denied.value.status == 401
        with pytest.raises(ApiError) as missing:
            req.project(pid + 1000)
        assert missing.value.status == 404


def test_poll_and_stream_return_only_rows_changed_since_the_last_run(
    live_url: str, requester: str, settings: Settings
) -> None:
    req = RequesterClient(live_url, requester, retry=FAST)
    pid = req.create_project("p", ["a", "b"], overlap=1, gold_rate=0.0)["id"]
    req.post_tasks(pid, [{"external_id": f"t{i}"} for i in range(3)])
    w = WorkerClient(live_url, req.create_worker("w").token, retry=FAST)

    def answer_one(label: str) -> None:
        got = w.fetch(pid)
        assert got is not None
        w.answer(got.id, label)

    answer_one("a")
    answer_one("b")
    drain(settings)
    first = req.poll_results(pid)
    assert first.last_run_id is not None
    assert [(r["external_id"], r["label"]) for r in first.results if r["run_id"]] == [
        ("t0", "a"),
        ("t1", "b"),
    ]
    assert req.poll_results(pid, first.last_run_id).results == []
    pages = list(req.result_pages(pid, page_size=2))
    assert [len(p.results) for p in pages] == [2, 1] and pages[-1].next_cursor is None
    assert {p.last_run_id for p in pages} == {first.last_run_id}

    answer_one("b")
    drain(settings)
    stream = req.stream_results(pid, since_run=first.last_run_id, interval=0.1)
    changed = next(stream)
    assert "t2" in [r["external_id"] for r in changed.results]
    assert all(r["run_id"] > first.last_run_id for r in changed.results)
    assert next(stream).results == []  # nothing new since
    assert [run["status"] for run in req.runs(pid)] == ["succeeded", "succeeded"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_call_retries_until_the_service_accepts_connections(
    live_url: str, requester: str
) -> None:
    port = _free_port()  # nothing listens here yet: connections are refused
    gateway = Gateway(live_url)
    up = threading.Event()

    def start_later() -> None:
        time.sleep(0.5)
        with serving(gateway, port):
            up.set()
            time.sleep(5)

    threading.Thread(target=start_later, daemon=True).start()
    req = RequesterClient(f"http://127.0.0.1:{port}", requester, retry=RetryPolicy(10, 0.2, 0.5))
    began = time.monotonic()
    project = req.create_project("late", ["a", "b"])
    assert up.is_set() and time.monotonic() - began >= 0.4
    assert [s.path for s in gateway.seen] == ["/api/v1/projects"]  # created once
    assert [p["name"] for p in req.projects()] == ["late"] and project["name"] == "late"


def test_a_lost_response_is_retried_with_the_same_key_and_the_answer_stored_once(
    live_url: str, requester: str, database: Database
) -> None:
    req = RequesterClient(live_url, requester, retry=FAST)
    pid = req.create_project("p", ["a", "b"], overlap=1, gold_rate=0.0)["id"]
    req.post_tasks(pid, [{"external_id": "x"}, {"external_id": "y"}])
    token = req.create_worker("w").token
    with serving(Gateway(live_url)) as gateway:
        w = WorkerClient(gateway.url, token, retry=FAST)
        got = w.fetch(pid)
        assert got is not None
        gateway.next_faults("drop")  # the service stores the answer; its response is lost
        answered = w.answer(got.id, "b", fetch_next=True)
        # The retry carries the same key: the service replays the lost 201, next task included.
        assert answered.label == "b" and answered.created
        assert answered.next is not None and answered.next.external_id == "y"
        gateway.next_faults("reset")  # closed before it reached the service
        assert w.answer(answered.next.id, "a").created
    assert _answers_stored(database, got.id) == 1
    assert [a["label"] for a in req.answers(pid)] == ["b", "a"]
    posts = [s for s in gateway.seen if s.method == "POST"]
    keys = [s.idempotency_key for s in posts]
    assert [s.fault for s in posts] == [None, "drop", None, "reset", None]
    assert keys[1] == keys[2] and keys[3] == keys[4]  # one key per logical call...
    assert len({keys[0], keys[1], keys[3]}) == 3  # ...and a new one for the next call
    assert all(s.idempotency_key is None for s in gateway.seen if s.method == "GET")


def test_throttled_and_unavailable_responses_are_retried_honouring_retry_after(
    live_url: str, requester: str
) -> None:
    with serving(Gateway(live_url)) as gateway:
        req = RequesterClient(gateway.url, requester, retry=FAST)
        gateway.next_faults((503, "1"), (429, None), (502, None), (504, None))
        began = time.monotonic()
        project = req.create_project("p", ["a", "b"])
        assert time.monotonic() - began >= 1.0  # waited the Retry-After second
        assert len(gateway.seen) == 5 and len({s.idempotency_key for s in gateway.seen}) == 1
        assert req.project(project["id"])["name"] == "p"

        patient = RequesterClient(gateway.url, requester, retry=RetryPolicy(2, 0.01, 0.1))
        gateway.next_faults((503, "0"), (503, "0"))
        with pytest.raises(ApiError) as gave_up:
            patient.project(project["id"])
        assert gave_up.value.status == 503 and gave_up.value.code == "unavailable"
    gone = RequesterClient(gateway.url, requester, retry=RetryPolicy(2, 0.01, 0.1))
    with pytest.raises(ConnectionFailed):
        gone.project(project["id"])
