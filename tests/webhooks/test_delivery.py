"""Webhook deliveries end to end: a real RQ worker (with RQ's scheduler, for the retries) POSTs
signed bodies to a real HTTP receiver in this process, on 127.0.0.1. Private addresses such as
that one are refused by default (tests/webhooks/test_private_addresses.py): these tests allow
them, as CROWD_WEBHOOK_ALLOW_PRIVATE=1 does."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import time
from typing import Any

from flask.testing import FlaskClient
from redis import Redis

from crowd.background import webhooks
from crowd.background.scheduling import flush_all
from crowd.config import Settings
from crowd.store import webhooks as store
from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, post_tasks, runs
from tests.conftest import auth
from tests.service.test_commands import CROWD, _env
from workers.bootstrap import make_worker

SECRET = "a-receiver-shared-secret"


def work_until_sent(settings: Settings, database: Database, timeout: float = 30.0) -> None:
    """Run real burst workers, with RQ's scheduler (it queues retries once their interval is
    over), until no delivery is pending."""
    flush_all()
    deadline = time.monotonic() + timeout
    while True:
        worker = make_worker(settings)
        try:
            worker.work(burst=True, with_scheduler=True)
        finally:
            worker.connection.close()  # a worker is cyclic garbage: close its socket now
        with database.transaction() as cur:
            cur.execute("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
            if cur.fetchone()[0] == 0:
                return
        assert time.monotonic() < deadline, "deliveries still pending"
        time.sleep(0.5)


def add_hook(client: FlaskClient, token: str, pid: int, url: str, **spec: Any) -> dict[str, Any]:
    r = client.post(
        f"/api/v1/projects/{pid}/webhooks",
        json={"url": url, "secret": SECRET, **spec},
        headers=auth(token),
    )
    assert r.status_code == 201, r.json
    hook: dict[str, Any] = r.json  # type: ignore[assignment]
    return hook


def deliveries(client: FlaskClient, token: str, pid: int, hid: int) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/projects/{pid}/webhooks/{hid}/deliveries", headers=auth(token))
    assert r.status_code == 200, r.json
    return list(reversed(r.json["deliveries"]))  # type: ignore[index]


def test_run_events_are_signed_and_a_500_is_retried_until_the_receiver_takes_them(
    client, requester, make_worker, make_project, database, fast_retries, receiver
) -> None:
    pid = make_project(requester, labels=["yes", "no"], overlap=1, gold_rate=0.0)["id"]
    hook = add_hook(client, requester, pid, receiver.url)
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(2)])
    worker = make_worker(requester)
    for _ in range(2):
        answer_next(client, worker, pid, lambda t: "no")

    work_until_sent(fast_retries, database)

    (run,) = runs(client, requester, pid)
    assert run["status"] == "succeeded"
    # Each delivery: a 500 first, then the retry RQ scheduled a second later gets 200.
    assert len(receiver.requests) == 4
    for headers, body in receiver.requests:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Crowd-Signature"] == f"sha256={expected}"
        sent = json.loads(body)
        assert headers["X-Crowd-Event"] == sent["event"]
        assert headers["X-Crowd-Delivery"] == str(sent["delivery_id"])
        assert headers["X-Crowd-Timestamp"] == str(sent["timestamp"])
        assert abs(sent["timestamp"] - time.time()) < 60 and sent["project_id"] == pid
    (completed, _retry) = receiver.by_event("task.completed")
    assert sorted(t["external_id"] for t in completed["data"]["tasks"]) == ["t0", "t1"]
    assert {t["label"] for t in completed["data"]["tasks"]} == {"no"}
    assert completed["data"]["run_id"] == run["id"]
    (summary, _retry) = receiver.by_event("aggregation.completed")
    assert summary["data"]["id"] == run["id"] and summary["data"]["status"] == "succeeded"
    assert summary["data"]["results_changed"] == 2

    sent = deliveries(client, requester, pid, hook["id"])
    assert [d["event"] for d in sent] == ["task.completed", "aggregation.completed"]
    for d in sent:
        assert d["status"] == "succeeded" and d["attempts"] == 2
        assert d["last_status_code"] == 200 and d["last_error"] is None
        assert d["finished_at"] >= d["created_at"]


def test_task_completed_reports_each_task_once_when_its_last_answer_is_aggregated(
    client, requester, make_worker, make_project, database, fast_retries, receiver
) -> None:
    receiver.failures = 0
    pid = make_project(requester, labels=["yes", "no"], overlap=2, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(3)])
    first, second = make_worker(requester, "w1"), make_worker(requester, "w2")
    for worker in (first, second):
        assert answer_next(client, worker, pid, lambda t: "yes") == "t0"
    work_until_sent(fast_retries, database)
    # t0 was complete before the webhook existed: it is not reported.
    add_hook(client, requester, pid, receiver.url, events=["task.completed"])
    for _ in range(2):
        answer_next(client, first, pid, lambda t: "yes")
    work_until_sent(fast_retries, database)
    assert receiver.requests == []  # one answer of two: nothing complete yet

    assert answer_next(client, second, pid, lambda t: "yes") == "t1"
    work_until_sent(fast_retries, database)
    (one,) = receiver.by_event("task.completed")
    assert [t["external_id"] for t in one["data"]["tasks"]] == ["t1"]

    assert answer_next(client, second, pid, lambda t: "yes") == "t2"
    assert client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    work_until_sent(fast_retries, database)
    assert {r["status"] for r in runs(client, requester, pid)} == {"succeeded"}
    reported = [
        (t["external_id"], t["label"])
        for b in receiver.by_event("task.completed")
        for t in b["data"]["tasks"]
    ]
    assert reported == [("t1", "yes"), ("t2", "yes")]  # once each, however many runs follow


def test_a_receiver_that_keeps_failing_leaves_failed_deliveries_and_aggregation_unharmed(
    client, requester, make_worker, make_project, database, fast_retries, receiver
) -> None:
    receiver.failures = None  # always 500
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    pid = make_project(requester, labels=["yes", "no"], overlap=1, gold_rate=0.0)["id"]
    failing = add_hook(client, requester, pid, receiver.url, events=["aggregation.completed"])
    down = add_hook(client, requester, pid, closed, events=["aggregation.completed"])
    post_tasks(client, requester, pid, [{"external_id": "t0"}])
    answer_next(client, make_worker(requester), pid, lambda t: "yes")

    work_until_sent(fast_retries, database)

    (run,) = runs(client, requester, pid)
    assert run["status"] == "succeeded"
    r = client.get(f"/api/v1/projects/{pid}/results", headers=auth(requester)).json
    assert [x["label"] for x in r["results"]] == ["yes"]
    (d,) = deliveries(client, requester, pid, failing["id"])
    assert d["status"] == "failed" and d["attempts"] == 2 and d["last_status_code"] == 500
    assert "HTTP 500" in d["last_error"]
    (d,) = deliveries(client, requester, pid, down["id"])
    assert d["status"] == "failed" and d["attempts"] == 2 and d["last_status_code"] is None
    assert "ConnectionError" in d["last_error"]


def test_a_delivery_recorded_while_its_job_could_not_be_queued_is_sent_later(
    client, requester, make_project, database, fast_retries, receiver
) -> None:
    receiver.failures = 0
    pid = make_project(requester)["id"]
    hook = add_hook(client, requester, pid, receiver.url, events=["model.trained"])
    # What the model job does, with Redis down after its commit: the row, but no job.
    with database.transaction() as cur:
        (delivery,) = store.emit(cur, pid, "model.trained", {"model_id": 7})
    redis = Redis.from_url(fast_retries.redis_url or "")
    assert webhooks.requeue_lost(database, redis, idle_seconds=3600) == []  # not idle yet

    assert webhooks.requeue_lost(database, redis, idle_seconds=0) == [delivery]
    assert webhooks.requeue_lost(database, redis, idle_seconds=0) == []  # its job is queued
    work_until_sent(fast_retries, database)

    (body,) = receiver.by_event("model.trained")
    assert body["delivery_id"] == delivery and body["data"] == {"model_id": 7}
    (d,) = deliveries(client, requester, pid, hook["id"])
    assert d["status"] == "succeeded" and d["attempts"] == 1
    assert webhooks.requeue_lost(database, redis, idle_seconds=0) == []


def test_crowd_worker_sends_deliveries_from_their_queue(
    client, requester, make_project, database, settings, receiver
) -> None:
    receiver.failures = 0
    pid = make_project(requester)["id"]
    add_hook(client, requester, pid, receiver.url, events=["model.trained"])
    with database.transaction() as cur:
        ids = store.emit(cur, pid, "model.trained", {"model_id": 1})
    webhooks.enqueue(Redis.from_url(settings.redis_url or ""), pid, ids)

    done = subprocess.run(
        [CROWD, "worker", "--burst"],
        env=_env(
            CROWD_DATABASE_URL=settings.database_url or "",
            CROWD_REDIS_URL=settings.redis_url,
            CROWD_WEBHOOK_ALLOW_PRIVATE="1",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    (body,) = receiver.by_event("model.trained")
    assert body["delivery_id"] == ids[0] and body["data"] == {"model_id": 1}


def test_a_trained_model_version_is_announced_with_its_metrics(
    client, requester, make_worker, make_project, database, fast_retries, receiver
) -> None:
    from tests.models.test_models import FEATURES, _answer, _tasks, _versions

    receiver.failures = 0
    spec = {"labels": ["neg", "pos"], "overlap": 1, "gold_rate": 0.0, "model": FEATURES}
    pid = make_project(requester, **spec, retrain_every=1000)["id"]
    hook = add_hook(client, requester, pid, receiver.url, events=["model.trained"])
    post_tasks(client, requester, pid, _tasks(20, seed=3))
    post_tasks(client, requester, pid, _tasks(25, seed=4, prefix="g", gold=True))
    _answer(client, make_worker(requester), pid, 12)
    work_until_sent(fast_retries, database)
    assert receiver.requests == []  # runs alone do not announce models
    r = client.post(f"/api/v1/projects/{pid}/models", headers=auth(requester))
    assert r.status_code == 202, r.json

    work_until_sent(fast_retries, database)

    (version,) = _versions(client, requester, pid)
    (sent,) = receiver.by_event("model.trained")
    assert sent["data"]["id"] == version["id"] and sent["data"]["status"] == "succeeded"
    assert sent["data"]["metrics"] == version["metrics"]
    assert sent["data"]["metrics"]["gold_tasks"] == 25
    (delivery,) = deliveries(client, requester, pid, hook["id"])
    assert delivery["event"] == "model.trained" and delivery["status"] == "succeeded"
