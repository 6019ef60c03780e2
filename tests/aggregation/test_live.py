"""Live aggregation end to end: answers over the API, runs by a real RQ worker on real Redis."""

from __future__ import annotations

import csv
import io
import itertools
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from crowd.background.scheduling import flush_all
from crowd.cli import main
from crowd.config import Settings
from crowd.store.db import Database
from tests.conftest import auth
from workers.bootstrap import make_worker


def drain(settings: Settings) -> None:
    """Run a real (forking) RQ worker in burst mode until the queue is empty (after the API's
    pending stale marks are made)."""
    flush_all()
    make_worker(settings).work(burst=True)


def post_tasks(client: FlaskClient, token: str, pid: int, tasks: list[dict[str, Any]]) -> None:
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(token))
    assert r.status_code == 201, r.json


def answer_next(client: FlaskClient, worker: str, pid: int, choose: Callable[[str], str]) -> str:
    """Fetch a task and answer it with ``choose(external_id)``; returns the external id."""
    r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
    assert r.status_code == 201, (r.status_code, r.json)
    external_id: str = r.json["task"]["external_id"]  # type: ignore[index]
    a = client.post(
        f"/api/v1/assignments/{r.json['assignment_id']}/answer",  # type: ignore[index]
        json={"label": choose(external_id)},
        headers=auth(worker),
    )
    assert a.status_code == 201, a.json
    return external_id


def good_and_bad_on_gold(
    client: FlaskClient, requester: str, make_worker: Callable[..., str], pid: int
) -> tuple[str, str]:
    """Post 10 gold tasks ("a") and 30 others to a project (labels a, b; gold_rate 1), and have
    worker "good" answer 8 tasks all "a" and worker "bad" answer its 8 gold tasks "b";
    returns their tokens."""
    post_tasks(
        client,
        requester,
        pid,
        [{"external_id": f"g{i}", "gold": "a"} for i in range(10)]
        + [{"external_id": f"t{i}"} for i in range(30)],
    )
    good, bad = make_worker(requester, "good"), make_worker(requester, "bad")
    for _ in range(8):
        answer_next(client, good, pid, lambda t: "a")
        answer_next(client, bad, pid, lambda t: "b" if t.startswith("g") else "a")
    return good, bad


def runs(client: FlaskClient, token: str, pid: int) -> list[dict[str, Any]]:
    flush_all()  # the API marks projects stale from a background thread
    r = client.get(f"/api/v1/projects/{pid}/aggregations?limit=1000", headers=auth(token))
    assert r.status_code == 200
    return list(reversed(r.json["aggregations"]))  # type: ignore[index]


def results(client: FlaskClient, token: str, pid: int, query: str = "") -> dict[str, Any]:
    r = client.get(f"/api/v1/projects/{pid}/results?limit=1000{query}", headers=auth(token))
    assert r.status_code == 200, r.json
    return {x["external_id"]: x for x in r.json["results"]}  # type: ignore[index]


def test_answers_queue_one_run_whose_results_and_worker_estimates_are_published(
    client, requester, make_worker, make_project, settings
) -> None:
    pid = make_project(requester, labels=["yes", "no"], overlap=3, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(10)])
    truth = {f"t{i}": "yes" if i % 3 else "no" for i in range(10)}
    workers = [make_worker(requester, f"w{i}") for i in range(3)]
    for i, worker in enumerate(workers):
        for _ in range(10):
            # w2 always says "yes"; the other two are right
            answer_next(client, worker, pid, lambda t, i=i: "yes" if i == 2 else truth[t])
    queued = runs(client, requester, pid)
    assert [r["status"] for r in queued] == ["queued"]  # 30 answers, one run

    drain(settings)

    (run,) = runs(client, requester, pid)
    assert run["status"] == "succeeded" and run["answers"] == 30 and run["tasks"] == 10
    assert run["iterations"] >= 1 and run["error"] is None
    # How long it took, to the millisecond (the dashboard's Seconds column shows it)
    took = datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
    assert 0 < run["seconds"] == round(took.total_seconds(), 3)
    got = results(client, requester, pid, "&posteriors=true")
    assert {t: r["label"] for t, r in got.items()} == truth
    assert all(r["run_id"] == run["id"] and r["aggregated_answers"] == 3 for r in got.values())
    assert all(abs(sum(r["posteriors"].values()) - 1) < 1e-4 for r in got.values())
    listed = client.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json
    assert listed["labels"] == ["yes", "no"]
    by_name = {w["name"]: w for w in listed["workers"]}
    assert by_name["w0"]["accuracy"] > by_name["w2"]["accuracy"]
    assert all(len(w["confusion"]) == 2 and len(w["confusion"][0]) == 2 for w in by_name.values())
    assert all(w["answers"] == 10 and w["status"] == "active" for w in by_name.values())


def test_answers_during_runs_cause_one_follow_up_each_time_and_none_is_lost(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=4, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(60)])
    workers = [make_worker(requester, f"w{i}") for i in range(4)]
    answer_next(client, workers[0], pid, lambda t: "a")
    errors: list[BaseException] = []

    def keep_answering(worker: str) -> None:
        try:
            for _ in range(40):
                answer_next(client, worker, pid, lambda t: "a" if hash(t) % 4 else "b")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=keep_answering, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        drain(settings)  # RQ workers need the main thread; each burst runs what is queued
    for t in threads:
        t.join()
    assert not errors
    drain(settings)  # a follow-up queued after the last burst worker left

    history = runs(client, requester, pid)
    assert all(r["status"] == "succeeded" for r in history), [r["error"] for r in history]
    # serial: each run was queued only after the previous one had finished (no pile-up)
    for before, after in itertools.pairwise(history):
        assert after["created_at"] >= before["finished_at"]
    # no lost update: the last run saw every stored answer
    with database.transaction() as cur:
        cur.execute("SELECT sum(answers) FROM tasks WHERE project_id = %s", (pid,))
        (stored,) = cur.fetchone()
    assert stored == 161 and history[-1]["answers"] == stored
    assert all(
        r["aggregated_answers"] == r["answers"] for r in results(client, requester, pid).values()
    )
    # and nothing is left queued for this project
    assert client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester)).json["run"]


def test_a_requested_run_is_queued_once_and_warm_starts_from_the_previous_one(
    client, requester, make_worker, make_project, settings, monkeypatch
) -> None:
    # Projects this small start every run cold (crowd.background.aggregation.COLD_FIT_ANSWERS); lower the bar so
    # this one behaves like a large project (the forked RQ worker inherits the setting).
    monkeypatch.setattr("crowd.background.aggregation.COLD_FIT_ANSWERS", 0)
    pid = make_project(requester, labels=["a", "b"], overlap=2, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(20)])
    workers = [make_worker(requester, f"w{i}") for i in range(2)]
    for w in workers:
        for _ in range(10):
            answer_next(client, w, pid, lambda t: "a")
    drain(settings)
    first = client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    assert first.status_code == 202 and first.json["run"]["status"] == "queued"
    again = client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    assert again.status_code == 202 and again.json["run"] is None  # coalesced
    drain(settings)
    polled = client.get(
        f"/api/v1/projects/{pid}/aggregations/{first.json['run']['id']}", headers=auth(requester)
    )
    assert polled.status_code == 200 and polled.json["status"] == "succeeded"
    history = runs(client, requester, pid)
    # the second request is served by the queued run, which reads every answer when it starts
    assert [r["trigger"] for r in history] == ["answers", "api"]
    assert [r["warm_start"] for r in history] == [False, True]
    assert history[1]["iterations"] <= history[0]["iterations"]


def test_a_run_requested_before_any_answer_succeeds_with_nothing_to_publish(
    client, requester, make_project, settings
) -> None:
    """A requester may ask for a run as soon as the tasks are in (docker compose's scale check
    does): it must succeed, not fail in the fit over no answers."""
    pid = make_project(requester, labels=["x", "y"], overlap=1)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(5)])
    asked = client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    assert asked.status_code == 202, asked.json
    drain(settings)
    run_id = asked.json["run"]["id"]
    polled = client.get(f"/api/v1/projects/{pid}/aggregations/{run_id}", headers=auth(requester))
    assert polled.status_code == 200 and polled.json["status"] == "succeeded", polled.json
    results = client.get(f"/api/v1/projects/{pid}/results", headers=auth(requester))
    assert results.status_code == 200, results.json
    assert [r["label"] for r in results.json["results"]] == [None] * 5  # nothing decided yet


@pytest.mark.parametrize("large", [False, True], ids=["small project", "large project"])
def test_a_warm_start_from_a_first_run_on_one_answer_is_never_published(
    client, requester, make_worker, make_project, settings, monkeypatch, large
) -> None:
    """A first run on one answer sees one class, and a warm start from it alone would keep
    that class for every task. Below crowd.background.aggregation.COLD_FIT_ANSWERS the run also fits cold and
    publishes the better fit; above it, a run on more than twice the answers of the newest
    cold fit starts cold."""
    if large:
        monkeypatch.setattr("crowd.background.aggregation.COLD_FIT_ANSWERS", 0)
    pid = make_project(requester, labels=["a", "b"], overlap=3, gold_rate=0.0)["id"]
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(20)])
    truth = {f"t{i}": "ab"[i % 2] for i in range(20)}
    workers = [make_worker(requester, f"w{i}") for i in range(3)]
    answer_next(client, workers[0], pid, truth.__getitem__)
    drain(settings)
    for i, worker in enumerate(workers):
        for _ in range(19 if i == 0 else 20):
            answer_next(client, worker, pid, truth.__getitem__)
    drain(settings)
    first, second = runs(client, requester, pid)
    assert first["answers"] == 1 and not first["warm_start"]
    assert second["answers"] == 60 and not second["warm_start"]  # the cold fit was published
    assert {t: r["label"] for t, r in results(client, requester, pid).items()} == truth


def test_gold_tasks_are_mixed_in_at_the_gold_rate_and_any_number_may_answer_them(
    client, requester, make_worker, make_project, settings
) -> None:
    pid = make_project(requester, labels=["a", "b"], overlap=1, gold_rate=0.25)["id"]
    post_tasks(
        client,
        requester,
        pid,
        [{"external_id": f"g{i}", "gold": "a"} for i in range(60)]
        + [{"external_id": f"t{i}"} for i in range(400)],
    )
    worker = make_worker(requester, "busy")
    served = [answer_next(client, worker, pid, lambda t: "a") for _ in range(240)]
    gold = sum(t.startswith("g") for t in served)
    # Binomial(240, 0.25): mean 60, sd 6.7; this band fails by chance about once in 10^5 runs
    assert 32 <= gold <= 88, gold
    # every worker gets gold tasks, beyond the project's overlap of 1
    others = [make_worker(requester, f"o{i}") for i in range(4)]
    project = client.patch(
        f"/api/v1/projects/{pid}", json={"gold_rate": 1.0}, headers=auth(requester)
    )
    assert project.status_code == 200 and project.json["gold_rate"] == 1.0
    firsts = [answer_next(client, w, pid, lambda t: "a") for w in others]
    assert all(t.startswith("g") for t in firsts)
    assert len(set(firsts)) <= len(firsts)
    drain(settings)
    got = results(client, requester, pid)
    assert not any(t.startswith("g") for t in got)  # gold tasks are not results
    stats = {
        w["name"]: w
        for w in client.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json[
            "workers"
        ]
    }
    assert stats["busy"]["gold_answers"] == min(gold, 20) and stats["busy"]["gold_accuracy"] == 1.0


def test_a_run_says_which_method_auto_chose_and_why_as_crowd_aggregate_does(
    client, requester, make_worker, make_project, settings, tmp_path
) -> None:
    project = make_project(requester, labels=["a", "b"], overlap=3, gold_rate=1.0)
    assert project["method"] == "auto"  # the default for new projects
    pid = project["id"]
    gold = {f"g{i}": "ab"[i % 2] for i in range(6)}
    truth = {**gold, **{f"t{i}": "ab"[i % 3 == 0] for i in range(24)}}
    post_tasks(
        client,
        requester,
        pid,
        [{"external_id": t, "gold": g} for t, g in gold.items()]
        + [{"external_id": f"t{i}"} for i in range(24)],
    )
    given = []
    for name, wrong_every in (("w0", 99), ("w1", 4), ("w2", 2)):
        worker = make_worker(requester, name)
        for n in range(30):

            def say(t: str, n: int = n, every: int = wrong_every) -> str:
                return truth[t] if n % every else "ba"["ab".index(truth[t])]

            task = answer_next(client, worker, pid, say)
            given.append((task, name, say(task)))
    drain(settings)

    (run,) = runs(client, requester, pid)
    polled = client.get(f"/api/v1/projects/{pid}/aggregations/{run['id']}", headers=auth(requester))
    assert polled.json == run and run["method"] == "auto" and run["chosen_method"] == "hds"
    assert run["choice_reason"].startswith("the default: on 6 gold tasks no method was right")
    page = client.get(f"/api/v1/projects/{pid}/results", headers=auth(requester)).json
    assert (page["last_run_id"], page["chosen_method"], page["choice_reason"]) == (
        run["id"], "hds", run["choice_reason"],
    )  # fmt: skip

    answers_csv = tmp_path / "answers.csv"
    answers_csv.write_text("task,worker,label\n" + "".join(f"{t},{w},{x}\n" for t, w, x in given))
    gold_csv = tmp_path / "gold.csv"
    gold_csv.write_text("task,label\n" + "".join(f"{t},{g}\n" for t, g in gold.items()))
    offline = CliRunner().invoke(main, ["aggregate", str(answers_csv), "--gold", str(gold_csv)])
    assert offline.exit_code == 0, offline.output
    assert offline.stderr == f"crowd: auto chose hds: {run['choice_reason']}\n"
    labels = {r["task"]: r["label"] for r in csv.DictReader(io.StringIO(offline.stdout))}
    published = results(client, requester, pid)
    assert {t: r["label"] for t, r in published.items()} == {t: labels[t] for t in published}


def test_quality_rules_ban_a_worker_release_its_reservation_and_unban_reissues(
    client, requester, make_worker, make_project, settings, database: Database
) -> None:
    pid = make_project(
        requester,
        labels=["a", "b"],
        overlap=3,
        gold_rate=1.0,  # every fetch serves gold while there is some: 8 gold answers each
        qc_min_answers=4,
        qc_min_gold_accuracy=0.6,
        qc_min_gold_answers=2,
    )["id"]
    _good, bad = good_and_bad_on_gold(client, requester, make_worker, pid)
    held = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(bad))
    assert held.status_code == 201
    drain(settings)

    refused = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(bad))
    assert refused.status_code == 403 and refused.json["error"]["code"] == "banned"
    assert "gold" in refused.json["error"]["message"]
    late = client.post(
        f"/api/v1/assignments/{held.json['assignment_id']}/answer",
        json={"label": "a"},
        headers=auth(bad),
    )
    assert late.status_code == 409  # the reservation was released with the ban
    with database.transaction() as cur:
        cur.execute("SELECT max(taken - answers) FROM tasks WHERE project_id = %s", (pid,))
        assert cur.fetchone()[0] == 0
    banned = client.get(f"/api/v1/projects/{pid}/workers?status=banned", headers=auth(requester))
    (entry,) = banned.json["workers"]
    assert entry["name"] == "bad" and entry["gold_accuracy"] == 0.0 and entry["reason"]
    # the banned worker's answers stay stored, and the next run leaves them out
    answers = client.get(f"/api/v1/projects/{pid}/answers?limit=1000", headers=auth(requester))
    assert sum(a["worker_id"] == entry["id"] for a in answers.json["answers"]) == 8
    client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    drain(settings)
    assert runs(client, requester, pid)[-1]["answers"] == 8

    lifted = client.post(
        f"/api/v1/projects/{pid}/workers/{entry['id']}/unban", headers=auth(requester)
    )
    assert lifted.status_code == 200
    assert client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(bad)).status_code == 201


def test_dynamic_overlap_closes_confident_tasks_and_extends_uncertain_ones(
    client, requester, make_worker, make_project, settings
) -> None:
    pid = make_project(
        requester,
        labels=["a", "b"],
        overlap=2,
        max_overlap=4,
        confidence_target=0.9,
        method="mv",  # confidence = vote share, so the decisions are plain to check
        gold_rate=0.0,
    )["id"]
    post_tasks(client, requester, pid, [{"external_id": "agree"}, {"external_id": "split"}])
    w = [make_worker(requester, f"w{i}") for i in range(6)]
    answer_next(client, w[0], pid, lambda t: "a")
    answer_next(client, w[0], pid, lambda t: "a")
    answer_next(client, w[1], pid, lambda t: "a" if t == "agree" else "b")
    answer_next(client, w[1], pid, lambda t: "a" if t == "agree" else "b")
    assert client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(w[2])).status_code == 204
    drain(settings)

    got = results(client, requester, pid)
    assert got["agree"]["status"] == "complete" and got["agree"]["confidence"] == 1.0
    assert got["split"]["status"] == "pending"
    # the confident task is closed; the split one got a third slot
    assert answer_next(client, w[2], pid, lambda t: "a") == "split"
    assert client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(w[3])).status_code == 204
    drain(settings)
    assert answer_next(client, w[3], pid, lambda t: "a") == "split"  # 2/3 < 0.9: a fourth
    drain(settings)
    got = results(client, requester, pid)
    assert got["split"]["answers"] == 4 and got["split"]["label"] == "a"
    assert got["split"]["status"] == "complete"  # max_overlap reached
    assert client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(w[4])).status_code == 204
    counts = client.get(f"/api/v1/projects/{pid}", headers=auth(requester)).json["counts"]
    assert counts["tasks_complete"] == 2 and counts["answers"] == 6
    pending = results(client, requester, pid, "&status=pending")
    assert pending == {}
