"""The labelling page in the review lane (issue 12), in a real Chromium: a review-lane task shows
the model's proposal pre-selected; Enter confirms it, a key or a click corrects it, S skips;
a blind task shows no proposal, and none is in the data the page receives."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, Response, expect

from crowd.store.db import Database
from tests.conftest import auth


def _stored(database: Database, pid: int) -> dict[str, tuple[str, str | None, int | None]]:
    with database.transaction() as cur:
        cur.execute(
            "SELECT t.external_id, a.status, p.labels[a.label + 1], a.proposal FROM assignments a"
            " JOIN tasks t ON t.id = a.task_id JOIN projects p ON p.id = a.project_id"
            " WHERE a.project_id = %s",
            (pid,),
        )
        return {ext: (status, label, proposal) for ext, status, label, proposal in cur.fetchall()}


def test_a_reviewer_confirms_with_enter_corrects_with_a_key_or_a_click_and_skips(
    page: Page, client, requester, make_project, make_worker, database
) -> None:
    review = {"overlap": 1, "max_overlap": 1, "blind_below": 0.5, "trap_rate": 0.0}
    pid = make_project(requester, name="reviews", labels=["pos", "neg", "neu"], overlap=1,
                       gold_rate=0.0, review=review)["id"]  # fmt: skip
    order = ["r1", "b1", "r2", "r3", "r4"]
    tasks: list[dict[str, Any]] = [{"external_id": x, "data": {"text": f"text {x}"}} for x in order]
    for task in tasks:
        if task["external_id"] != "b1":
            task["prediction"] = {"model": "llm", "label": "pos", "confidence": 0.9}
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    assert r.status_code == 201, r.json
    worker = make_worker(requester, "rita")

    received: list[dict[str, Any]] = []

    def record(response: Response) -> None:
        if (
            response.request.method == "POST"
            and response.status == 201
            and (response.url.endswith("/assignments") or response.url.endswith("/answer"))
        ):
            body = json.loads(response.text())
            reservation = body.get("next", body)  # an answer carries the next task
            if reservation:
                received.append(reservation)

    page.on("response", record)
    page.goto(f"/label#token={worker}")
    proposal = page.locator("#proposal")
    proposed = page.locator("#answer-buttons .proposed")

    expect(page.locator("#task-id")).to_have_text("r1")
    expect(proposal).to_be_visible()
    expect(proposal).to_contain_text("A model proposes")
    expect(proposal).to_contain_text("pos")
    expect(proposed).to_have_count(1)
    expect(proposed).to_have_attribute("data-label", "pos")
    expect(proposed).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Enter")  # confirms

    expect(page.locator("#task-id")).to_have_text("b1")
    expect(proposal).to_be_hidden()
    expect(proposed).to_have_count(0)
    expect(page.locator("#work")).not_to_contain_text("proposes")
    page.keyboard.press("Enter")  # nothing to confirm on a blind task
    page.keyboard.press("2")

    expect(page.locator("#task-id")).to_have_text("r2")
    expect(proposed).to_have_attribute("data-label", "pos")
    page.keyboard.press("3")  # corrects with a key

    expect(page.locator("#task-id")).to_have_text("r3")
    page.get_by_role("button", name="2 neg").click()  # corrects with a click

    expect(page.locator("#task-id")).to_have_text("r4")
    expect(proposal).to_be_visible()
    page.keyboard.press("s")
    expect(page.get_by_role("heading", name="No task left")).to_be_visible()

    assert _stored(database, pid) == {
        "r1": ("answered", "pos", 0),
        "b1": ("answered", "neg", None),
        "r2": ("answered", "neu", 0),
        "r3": ("answered", "neg", 0),
        "r4": ("skipped", None, 0),
    }
    # What the page received: the blind task came with no proposal at all.
    by_task = {b["task"]["external_id"]: b for b in received}
    assert set(by_task) == set(order)
    assert by_task["b1"]["lane"] == "blind" and "proposal" not in by_task["b1"]
    assert all(by_task[x]["proposal"] == {"label": "pos"} for x in order if x != "b1")


def test_the_dashboard_shows_each_workers_traps_caught(
    page: Page, client, requester, make_project, make_worker
) -> None:
    review = {"trap_rate": 1.0}
    pid = make_project(requester, name="traps", labels=["pos", "neg"], overlap=1,
                       gold_rate=0.0, review=review)["id"]  # fmt: skip
    gold = [{"external_id": f"g{i}", "gold": "pos"} for i in range(4)]
    gold.append({"external_id": "t"})  # traps come while a regular task is left
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": gold}, headers=auth(requester))
    assert r.status_code == 201
    worker = make_worker(requester, "tina")
    for i in range(4):
        got = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json
        assert got["proposal"] == {"label": "neg"}  # the only wrong label
        label = "neg" if i == 0 else "pos"  # accepts the first trap, catches the others
        r = client.post(
            f"/api/v1/assignments/{got['assignment_id']}/answer",
            json={"label": label},
            headers=auth(worker),
        )
        assert r.status_code == 201

    page.goto(f"/dashboard/projects/{pid}#token={requester}")
    expect(page.get_by_role("columnheader", name="Traps caught")).to_be_visible()
    expect(page.locator("#worker-rows tr", has_text="tina")).to_contain_text("75.0% of 4")
