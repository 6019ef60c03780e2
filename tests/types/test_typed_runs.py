"""Typed projects end to end (docs/TYPES.md): tasks and answers over the API, runs by a real
RQ worker on real Redis and PostgreSQL, then results, since_run polling, worker estimates,
gold, ranking, export and the task.completed webhook's payload."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from crowd.config import Settings
from crowd.em.typed import Z90, fit_typed
from crowd.store import projects, typed
from crowd.store.db import Database
from tests.aggregation.test_live import drain, runs
from tests.conftest import auth
from tests.em.test_pairwise import WARM_TOL_SD
from tests.types.test_type_validation import answer, post, project


def answer_all(
    client: FlaskClient, worker: str, pid: int, choose: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[str]:
    """Fetch and answer until nothing is left for ``worker``; ``choose(task)`` gives the body.
    Returns the external ids answered, in order."""
    seen = []
    while True:
        r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
        if r.status_code == 204:
            return seen
        assert r.status_code == 201, r.json
        task = r.json["task"]  # type: ignore[index]
        a = answer(client, worker, r.json["assignment_id"], choose(task))  # type: ignore[index]
        assert a.status_code == 201, a.json
        seen.append(task["external_id"])


def results(client: FlaskClient, token: str, pid: int, query: str = "") -> dict[str, Any]:
    r = client.get(f"/api/v1/projects/{pid}/results?limit=1000{query}", headers=auth(token))
    assert r.status_code == 200, r.json
    out: dict[str, Any] = r.json  # type: ignore[assignment]
    return out


def by_id(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["external_id"]: r for r in page["results"]}


def export(client: FlaskClient, token: str, pid: int, fmt: str) -> str:
    r = client.get(f"/api/v1/projects/{pid}/export?format={fmt}", headers=auth(token))
    assert r.status_code == 200
    return r.get_data(as_text=True)


def hook(client: FlaskClient, token: str, pid: int) -> None:
    r = client.post(
        f"/api/v1/projects/{pid}/webhooks",
        json={"url": "https://hooks.example.com/crowd", "events": ["task.completed"]},
        headers=auth(token),
    )
    assert r.status_code == 201, r.json


def completed_payloads(database: Database, pid: int) -> dict[str, dict[str, Any]]:
    """The task.completed events recorded for ``pid`` (the outbox the deliveries send)."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT payload FROM webhook_deliveries WHERE project_id = %s"
            " AND event = 'task.completed' ORDER BY id",
            (pid,),
        )
        return {t["external_id"]: t for (p,) in cur.fetchall() for t in p["tasks"]}


MULTILABEL_TRUTH = {"t0": ["cat"], "t1": ["cat", "dog"], "t2": [], "t3": ["bird"]}


def test_multilabel_end_to_end(
    client: FlaskClient,
    requester: str,
    make_worker: Callable[..., str],
    settings: Settings,
    database: Database,
) -> None:
    p = project(client, requester, type="multilabel", labels=["cat", "dog", "bird"], gold_rate=1.0)
    pid = p["id"]
    hook(client, requester, pid)
    tasks = [{"external_id": t, "data": {"img": t}} for t in MULTILABEL_TRUTH]
    assert (
        post(client, requester, pid, [*tasks, {"external_id": "g", "gold": ["dog"]}]).status_code
        == 201
    )
    workers = {name: make_worker(requester, name) for name in ("w0", "w1", "w2")}

    def honest(task: dict[str, Any]) -> dict[str, Any]:
        return {
            "labels": ["dog"]
            if task["external_id"] == "g"
            else MULTILABEL_TRUTH[task["external_id"]]
        }

    answer_all(client, workers["w0"], pid, honest)
    answer_all(client, workers["w1"], pid, honest)
    # w2 ticks "bird" on every task, gold included.
    answer_all(
        client,
        workers["w2"],
        pid,
        lambda t: {
            "labels": [*honest(t)["labels"], "bird"]
            if "bird" not in honest(t)["labels"]
            else ["bird"]
        },
    )
    drain(settings)

    (run,) = runs(client, requester, pid)
    assert run["status"] == "succeeded", run
    assert run["chosen_method"] == "multilabel-ds" and run["tasks"] == 4
    page = results(client, requester, pid, "&include_gold=true")
    assert page["type"] == "multilabel" and page["last_run_id"] == run["id"]
    got = by_id(page)
    for t, truth in MULTILABEL_TRUTH.items():
        assert sorted(got[t]["labels"]) == sorted(truth), (t, got[t])
        assert set(got[t]["probabilities"]) == {"cat", "dog", "bird"}
        assert got[t]["run_id"] == run["id"] and got[t]["status"] == "complete"
        assert 0.5 <= got[t]["confidence"] <= 1
        chosen = {label for label, prob in got[t]["probabilities"].items() if prob > 0.5}
        assert chosen == set(truth)
    assert got["g"]["gold"] == ["dog"] and got["g"]["labels"] is None

    listed = client.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json
    est = {w["name"]: w for w in listed["workers"]}  # type: ignore[index]
    assert est["w0"]["gold_answers"] == 1 and est["w0"]["gold_accuracy"] == 1
    assert est["w2"]["gold_answers"] == 1 and est["w2"]["gold_accuracy"] == 0
    assert est["w2"]["estimates"]["specificity"] < est["w0"]["estimates"]["specificity"]

    answers = client.get(f"/api/v1/projects/{pid}/answers?limit=1000", headers=auth(requester)).json
    assert {"labels"} <= set(answers["answers"][0]) and "label" not in answers["answers"][0]  # type: ignore[index]

    lines = [json.loads(x) for x in export(client, requester, pid, "jsonl").splitlines()]
    assert [x["external_id"] for x in lines] == ["t0", "t1", "t2", "t3", "g"]
    assert lines[1]["labels"] == ["cat", "dog"] and lines[4]["gold"] == ["dog"]
    rows = list(csv.DictReader(io.StringIO(export(client, requester, pid, "csv"))))
    assert list(rows[0]) == [
        "task_id", "external_id", "gold", "labels", "probabilities", "confidence",
        "answers", "status", "run_id",
    ]  # fmt: skip
    assert rows[1]["labels"] == "cat|dog" and rows[4]["gold"] == "dog"

    sent = completed_payloads(database, pid)
    assert set(sent) == set(MULTILABEL_TRUTH)
    assert sent["t1"]["labels"] == ["cat", "dog"] and "probabilities" in sent["t1"]


def test_numeric_end_to_end_with_since_run_and_dynamic_overlap(
    client: FlaskClient,
    requester: str,
    make_worker: Callable[..., str],
    settings: Settings,
    database: Database,
) -> None:
    scale = {"min": 1, "max": 5, "step": 1}
    p = project(
        client, requester, type="numeric", scale=scale, overlap=2, max_overlap=3,
        confidence_target=0.99, gold_rate=0,
    )  # fmt: skip
    pid = p["id"]
    hook(client, requester, pid)
    assert (
        post(
            client, requester, pid, [{"external_id": "calm"}, {"external_id": "split"}]
        ).status_code
        == 201
    )
    w0, w1 = make_worker(requester, "w0"), make_worker(requester, "w1")
    values = {("w0", "calm"): 3, ("w1", "calm"): 3, ("w0", "split"): 1, ("w1", "split"): 5}
    answer_all(client, w0, pid, lambda t: {"value": values["w0", t["external_id"]]})
    answer_all(client, w1, pid, lambda t: {"value": values["w1", t["external_id"]]})
    drain(settings)

    (run,) = runs(client, requester, pid)
    assert run["status"] == "succeeded" and run["chosen_method"] == "numeric-em"
    got = by_id(results(client, requester, pid))
    calm, split = got["calm"], got["split"]
    assert abs(calm["value"] - 3) < 0.2
    assert calm["interval"][0] <= calm["value"] <= calm["interval"][1]
    assert 1 <= split["interval"][0] < split["interval"][1] <= 5
    # The split task's interval is the wider one, so its confidence is lower ...
    assert split["interval"][1] - split["interval"][0] > calm["interval"][1] - calm["interval"][0]
    assert split["confidence"] < calm["confidence"]
    # ... and below the target it gets one more answer, up to max_overlap.
    w2 = make_worker(requester, "w2")
    assert "split" in answer_all(client, w2, pid, lambda t: {"value": 2})
    drain(settings)
    second = runs(client, requester, pid)[-1]
    assert second["status"] == "succeeded" and second["id"] != run["id"]
    changed = by_id(results(client, requester, pid, f"&since_run={run['id']}"))
    assert "split" in changed and changed["split"]["run_id"] == second["id"]
    assert changed["split"]["answers"] == 3

    listed = client.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json
    assert all(set(w["estimates"]) == {"bias", "noise"} for w in listed["workers"])  # type: ignore[index]
    rows = list(csv.DictReader(io.StringIO(export(client, requester, pid, "csv"))))
    assert list(rows[0])[:7] == [
        "task_id",
        "external_id",
        "gold",
        "value",
        "low",
        "high",
        "confidence",
    ]
    now = by_id(results(client, requester, pid))
    assert float(rows[0]["value"]) == now["calm"]["value"]
    assert [float(rows[0]["low"]), float(rows[0]["high"])] == now["calm"]["interval"]
    sent = completed_payloads(database, pid)
    assert "interval" in sent["split"] and "value" in sent["split"]


ORDER = ["A", "B", "C", "D"]  # best first


def test_pairwise_end_to_end_with_ranking_pages_and_components(
    client: FlaskClient,
    requester: str,
    make_worker: Callable[..., str],
    settings: Settings,
) -> None:
    p = project(client, requester, type="pairwise", overlap=3, gold_rate=0)
    pid = p["id"]
    pairs = [(a, b) for i, a in enumerate(ORDER) for b in ORDER[i + 1 :]] + [("E", "F")]
    tasks = []
    for n, (a, b) in enumerate(pairs):
        left, right = (a, b) if n % 2 else (b, a)  # the better item on either side
        tasks.append(
            {
                "external_id": f"{left}{right}",
                "left": {"id": left, "data": {"t": left}},
                "right": {"id": right},
            }
        )
    assert post(client, requester, pid, tasks).status_code == 201

    def better(task: dict[str, Any]) -> dict[str, Any]:
        left, right = task["data"]["left"]["id"], task["data"]["right"]["id"]
        rank = {x: i for i, x in enumerate([*ORDER, "E", "F"])}
        return {"winner": "left" if rank[left] < rank[right] else "right"}

    for name in ("w0", "w1", "w2"):
        answer_all(client, make_worker(requester, name), pid, better)
    drain(settings)

    (run,) = runs(client, requester, pid)
    assert run["status"] == "succeeded" and run["chosen_method"] == "crowd-bt"
    first = client.get(f"/api/v1/projects/{pid}/ranking?limit=3", headers=auth(requester)).json
    assert first["total_items"] == 6 and first["components"] == 2  # type: ignore[index]
    assert first["last_run_id"] == run["id"] and isinstance(first["position_bias"], float)  # type: ignore[index]
    rest = client.get(
        f"/api/v1/projects/{pid}/ranking?limit=3&cursor={first['next_cursor']}",  # type: ignore[index]
        headers=auth(requester),
    ).json
    items = first["items"] + rest["items"]  # type: ignore[index]
    assert [i["item"] for i in items] == ["A", "B", "C", "D", "E", "F"]
    assert [(i["rank"], i["component"]) for i in items] == [
        (1, 0),
        (2, 0),
        (3, 0),
        (4, 0),
        (1, 1),
        (2, 1),
    ]
    assert [i["comparisons"] for i in items] == [9, 9, 9, 9, 3, 3]
    assert all(i["interval"][0] < i["score"] < i["interval"][1] for i in items)
    got = by_id(results(client, requester, pid))
    assert got["BA"]["winner"] == "right" and got["BA"]["left"] == "B"
    assert got["BA"]["probabilities"]["right"] > 0.5
    listed = client.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json
    assert all(w["estimates"]["reliability"] > 0.5 for w in listed["workers"])  # type: ignore[index]
    lines = [json.loads(x) for x in export(client, requester, pid, "jsonl").splitlines()]
    assert {x["external_id"]: (x["left"], x["right"], x["winner"]) for x in lines}["BA"] == (
        "B",
        "A",
        "right",
    )

    categorical = project(client, requester, labels=["a", "b"])
    r = client.get(f"/api/v1/projects/{categorical['id']}/ranking", headers=auth(requester))
    assert r.status_code == 422 and r.json["error"]["code"] == "not_pairwise"


def test_a_worker_wrong_on_pairwise_gold_is_banned_by_the_gold_rule(
    client: FlaskClient,
    requester: str,
    make_worker: Callable[..., str],
    settings: Settings,
) -> None:
    p = project(
        client, requester, type="pairwise", gold_rate=1.0, qc_min_gold_accuracy=0.8,
        qc_min_gold_answers=5, qc_min_answers=5, overlap=2,
    )  # fmt: skip
    pid = p["id"]
    gold = [
        {"external_id": f"g{i}", "left": {"id": f"a{i}"}, "right": {"id": f"b{i}"}, "gold": "left"}
        for i in range(8)
    ]
    tasks = [
        {"external_id": f"t{i}", "left": {"id": f"a{i}"}, "right": {"id": f"b{i}"}}
        for i in range(8)
    ]
    assert post(client, requester, pid, gold + tasks).status_code == 201
    good, bad = make_worker(requester, "good"), make_worker(requester, "bad")
    answer_all(client, good, pid, lambda t: {"winner": "left"})
    answer_all(client, bad, pid, lambda t: {"winner": "right"})
    drain(settings)

    listed = client.get(f"/api/v1/projects/{pid}/workers", headers=auth(requester)).json
    by_name = {w["name"]: w for w in listed["workers"]}  # type: ignore[index]
    assert by_name["good"]["status"] == "active" and by_name["good"]["gold_accuracy"] == 1
    assert by_name["bad"]["status"] == "banned" and by_name["bad"]["gold_accuracy"] == 0
    assert "gold" in by_name["bad"]["reason"]
    # Gold tasks are held at their known winner: they have no result row of their own.
    page = results(client, requester, pid, "&include_gold=true")
    assert by_id(page)["g0"]["gold"] == "left" and by_id(page)["g0"]["winner"] is None


def test_multilabel_with_more_labels_than_a_bit_mask_holds(
    client: FlaskClient, requester: str, make_worker: Callable[..., str], settings: Settings
) -> None:
    names = [f"l{i}" for i in range(70)]  # read as (answer, label) rows past 62 labels
    pid = project(client, requester, type="multilabel", labels=names, gold_rate=0, overlap=2)["id"]
    assert (
        post(client, requester, pid, [{"external_id": "t"}, {"external_id": "u"}]).status_code
        == 201
    )
    for name in ("a", "b"):
        answer_all(
            client, make_worker(requester, name), pid,
            lambda t: {"labels": ["l65", "l0"] if t["external_id"] == "t" else []},
        )  # fmt: skip
    drain(settings)
    got = by_id(results(client, requester, pid))
    assert got["t"]["labels"] == ["l0", "l65"] and got["u"]["labels"] == []


def test_a_pairwise_run_warm_starts_from_the_previous_one_and_publishes_the_cold_fits_ranking(
    client: FlaskClient,
    requester: str,
    make_worker: Callable[..., str],
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second run starts L-BFGS from the first run's published scores, bias and
    reliabilities (recorded as ``warm_start``), and publishes what a cold fit of the same
    answers gives, within the optimiser's tolerance (tests/em/test_pairwise.py's
    WARM_TOL_SD posterior sds). COLD_FIT_ANSWERS is lowered so that this small project's
    run fits warm only, as a large project's does."""
    monkeypatch.setattr("crowd.background.aggregation.COLD_FIT_ANSWERS", 0)
    p = project(client, requester, type="pairwise", overlap=2, gold_rate=0)
    pid = p["id"]
    rng = np.random.default_rng(7)
    n_items = 25
    pairs = [rng.choice(n_items, 2, replace=False) for _ in range(120)]
    tasks = [
        {"external_id": f"c{k}", "left": {"id": f"i{a:02d}"}, "right": {"id": f"i{b:02d}"}}
        for k, (a, b) in enumerate(pairs)
    ]

    def judge(wrong: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
        # i00 is the best item, i24 the worst; a judge errs with probability ``wrong``.
        def choose(task: dict[str, Any]) -> dict[str, Any]:
            left_better = task["data"]["left"]["id"] < task["data"]["right"]["id"]
            right_answer = "left" if left_better else "right"
            other = "right" if left_better else "left"
            return {"winner": other if rng.random() < wrong else right_answer}

        return choose

    w0, w1, w2 = (make_worker(requester, f"w{i}") for i in range(3))
    assert post(client, requester, pid, tasks[:80]).status_code == 201
    answer_all(client, w0, pid, judge(0.1))
    answer_all(client, w1, pid, judge(0.3))
    drain(settings)
    assert post(client, requester, pid, tasks[80:]).status_code == 201
    answer_all(client, w1, pid, judge(0.3))
    answer_all(client, w2, pid, judge(0.2))
    drain(settings)

    first, second = runs(client, requester, pid)
    assert (first["status"], first["warm_start"]) == ("succeeded", False)
    assert (second["status"], second["warm_start"]) == ("succeeded", True)
    assert second["answers"] == 240

    with database.transaction() as cur:
        loaded = projects.get(cur, pid)
    assert loaded is not None
    with database.transaction() as cur:
        answers, *_ = typed.load(cur, loaded)
    cold = fit_typed("pairwise", answers, n_labels=2, scale=None, gold_window=20).items
    assert cold is not None
    r = client.get(f"/api/v1/projects/{pid}/ranking?limit=100", headers=auth(requester))
    published = {i["item"]: i for i in r.json["items"]}  # type: ignore[index]
    assert sorted(published) == sorted(cold.names.tolist())
    sd = (cold.high - cold.low) / (2 * Z90)
    for name, score, std in zip(cold.names.tolist(), cold.scores, sd, strict=True):
        assert abs(published[name]["score"] - score) <= WARM_TOL_SD * std + 1e-6
    # Ranks agree but between items whose cold scores are within the tolerance.
    cold_score = dict(zip(cold.names.tolist(), cold.scores.tolist(), strict=True))
    order = sorted(published, key=lambda name: published[name]["rank"])
    rises = np.diff([cold_score[name] for name in order])
    assert rises.max() <= 2 * WARM_TOL_SD * sd.max() + 1e-6


def test_a_small_pairwise_project_publishes_the_better_of_warm_and_cold(
    client: FlaskClient,
    requester: str,
    make_worker: Callable[..., str],
    settings: Settings,
    database: Database,
) -> None:
    """Below COLD_FIT_ANSWERS a pairwise run fits warm and cold, as a categorical run does,
    and publishes the warm fit only when its objective is the higher, so it is never worse
    than a cold fit of its answers. Multilabel and numeric runs fit cold every run."""
    p = project(client, requester, type="pairwise", overlap=2, gold_rate=0)
    pid = p["id"]
    rng = np.random.default_rng(11)
    pairs = [rng.choice(12, 2, replace=False) for _ in range(45)]
    tasks = [
        {"external_id": f"c{k}", "left": {"id": f"i{a:02d}"}, "right": {"id": f"i{b:02d}"}}
        for k, (a, b) in enumerate(pairs)
    ]

    def judge(task: dict[str, Any]) -> dict[str, Any]:
        left_better = task["data"]["left"]["id"] < task["data"]["right"]["id"]
        faithful = rng.random() < 0.8
        return {"winner": "left" if left_better == faithful else "right"}

    w0, w1, w2 = (make_worker(requester, f"w{i}") for i in range(3))
    assert post(client, requester, pid, tasks[:15]).status_code == 201
    answer_all(client, w0, pid, judge)
    answer_all(client, w1, pid, judge)
    drain(settings)
    assert post(client, requester, pid, tasks[15:]).status_code == 201
    answer_all(client, w1, pid, judge)
    answer_all(client, w2, pid, judge)
    drain(settings)

    with database.transaction() as cur:
        loaded = projects.get(cur, pid)
    assert loaded is not None
    with database.transaction() as cur:
        answers, *_ = typed.load(cur, loaded)
    cold = fit_typed("pairwise", answers, n_labels=2, scale=None, gold_window=20)
    first, second = runs(client, requester, pid)
    assert first["warm_start"] is False and second["answers"] == 90
    assert cold.objective is not None and cold.items is not None
    assert second["objective"] >= cold.objective - 1e-12
    if not second["warm_start"]:  # the cold fit won: it is what was published
        r = client.get(f"/api/v1/projects/{pid}/ranking?limit=100", headers=auth(requester))
        published = {i["item"]: i["score"] for i in r.json["items"]}  # type: ignore[index]
        for name, score in zip(cold.items.names.tolist(), cold.items.scores, strict=True):
            assert published[name] == pytest.approx(score, abs=1e-6)

    for kind, extra in (
        ("multilabel", {"labels": ["a", "b"]}),
        ("numeric", {"scale": {"min": 0, "max": 10}}),
    ):
        other = project(client, requester, type=kind, overlap=1, gold_rate=0, **extra)
        assert post(client, requester, other["id"], [{"external_id": "x"}]).status_code == 201
        body = {"labels": ["a"]} if kind == "multilabel" else {"value": 3}
        answer_all(client, w0, other["id"], lambda _task, body=body: body)
        drain(settings)
        assert post(client, requester, other["id"], [{"external_id": "y"}]).status_code == 201
        answer_all(client, w1, other["id"], lambda _task, body=body: body)
        drain(settings)
        assert [r["warm_start"] for r in runs(client, requester, other["id"])] == [False, False]
