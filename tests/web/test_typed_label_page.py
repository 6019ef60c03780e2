"""The labelling page of typed projects in a real Chromium (docs/TYPES.md): checkboxes with
1-9 and Enter (multilabel), a slider and a number field on the scale (numeric), two items
side by side with the arrow keys and T (pairwise); the answers are stored as sent. And the
dashboard of a typed project after a real run."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from crowd.store.db import Database
from tests.aggregation.test_live import drain
from tests.conftest import auth


def _project(client, token: str, **spec: Any) -> int:
    r = client.post("/api/v1/projects", json={"name": "p", "overlap": 1, "gold_rate": 0, **spec},
                    headers=auth(token))  # fmt: skip
    assert r.status_code == 201, r.json
    return int(r.json["id"])


def _post(client, token: str, pid: int, tasks: list[dict[str, Any]]) -> None:
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(token))
    assert r.status_code == 201, r.json


def _stored(database: Database, pid: int) -> dict[str, tuple[Any, ...]]:
    """Per task: (status, label, value, label names of the label set)."""
    with database.transaction() as cur:
        cur.execute(
            "SELECT t.external_id, a.status, p.labels[a.label + 1], a.value,"
            " ARRAY(SELECT p.labels[i + 1] FROM unnest(a.label_set) i)"
            " FROM assignments a JOIN tasks t ON t.id = a.task_id"
            " JOIN projects p ON p.id = a.project_id WHERE a.project_id = %s",
            (pid,),
        )
        return {row[0]: row[1:] for row in cur.fetchall()}


def _next_task(page: Page, before: str) -> None:
    expect(page.locator("#task-id")).not_to_have_text(before)


def test_multilabel_checkboxes_toggle_with_1_to_9_and_enter_submits(
    page: Page, client, requester, make_worker, database
) -> None:
    pid = _project(client, requester, name="tags", type="multilabel", labels=["cat", "dog", "bird"])
    _post(
        client,
        requester,
        pid,
        [{"external_id": f"t{i}", "data": {"text": f"photo {i}"}} for i in (1, 2, 3)],
    )
    worker = make_worker(requester, "alice")
    page.goto(f"/label#token={worker}")
    expect(page.locator("#project-name")).to_have_text("tags")
    expect(page.get_by_role("checkbox", name="1 cat")).to_be_visible()

    order = []
    for keys in (["1", "3"], ["2", "2", "3"], []):
        task = page.locator("#task-id").inner_text()
        order.append(task)
        for key in keys:
            page.keyboard.press(key)
        if task == order[0]:
            expect(page.get_by_role("checkbox", name="1 cat")).to_be_checked()
            expect(page.get_by_role("checkbox", name="2 dog")).not_to_be_checked()
        page.keyboard.press("Enter")
        if len(order) < 3:
            _next_task(page, task)
            # A new task starts with nothing ticked.
            expect(page.get_by_role("checkbox", name="3 bird")).not_to_be_checked()
    expect(page.get_by_role("heading", name="No task left")).to_be_visible()
    stored = _stored(database, pid)
    assert [stored[t][3] for t in order] == [["cat", "bird"], ["bird"], []]
    assert all(stored[t][0] == "answered" for t in order)


def test_numeric_slider_and_number_field_honour_the_scale(
    page: Page, client, requester, make_worker, database
) -> None:
    pid = _project(client, requester, name="ratings", type="numeric",
                   scale={"min": 1, "max": 5, "step": 0.5})  # fmt: skip
    _post(client, requester, pid, [{"external_id": "r1", "data": {"text": "good"}},
                                   {"external_id": "r2", "data": {"text": "bad"}}])  # fmt: skip
    worker = make_worker(requester, "bob")
    page.goto(f"/label#token={worker}")
    expect(page.locator("#project-name")).to_have_text("ratings")
    slider = page.get_by_role("slider", name="Value from 1 to 5")
    field = page.get_by_role("spinbutton", name="Value")
    assert slider.get_attribute("step") == "0.5" and field.get_attribute("max") == "5"

    first = page.locator("#task-id").inner_text()
    # Off the step: the page says what to send and keeps the task.
    field.fill("2.25")
    field.press("Enter")
    expect(page.locator("#status")).to_contain_text("from 1 to 5 in steps of 0.5")
    expect(page.locator("#task-id")).to_have_text(first)
    field.fill("4.5")
    expect(slider).to_have_value("4.5")  # the two stay in step
    field.press("Enter")
    _next_task(page, first)
    second = page.locator("#task-id").inner_text()
    slider.fill("2")  # the slider sets the field
    expect(field).to_have_value("2")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("heading", name="No task left")).to_be_visible()
    stored = _stored(database, pid)
    assert (stored[first][0], stored[first][2]) == ("answered", 4.5)
    assert (stored[second][0], stored[second][2]) == ("answered", 2.0)


def test_pairwise_shows_both_items_and_takes_arrows_and_t_for_a_tie(
    page: Page, client, requester, make_worker, database
) -> None:
    pid = _project(client, requester, name="prefs", type="pairwise", ties=True)
    _post(client, requester, pid, [
        {"external_id": f"c{i}", "left": {"id": f"a{i}", "data": {"text": f"left text {i}"}},
         "right": {"id": f"b{i}", "data": {"text": f"right text {i}"}}}
        for i in (1, 2, 3)
    ])  # fmt: skip
    worker = make_worker(requester, "carol")
    page.goto(f"/label#token={worker}")
    expect(page.locator("#project-name")).to_have_text("prefs")
    expect(page.get_by_role("button", name="Tie T")).to_be_visible()

    pressed = {}
    for key in ("ArrowLeft", "ArrowRight", "t"):
        task = page.locator("#task-id").inner_text()
        n = task[1:]
        expect(page.get_by_role("region", name="Left")).to_contain_text(f"left text {n}")
        expect(page.get_by_role("region", name="Right")).to_contain_text(f"right text {n}")
        pressed[task] = key
        page.keyboard.press(key)
        if len(pressed) < 3:
            _next_task(page, task)
    expect(page.get_by_role("heading", name="No task left")).to_be_visible()
    stored = _stored(database, pid)
    winner = {"ArrowLeft": "left", "ArrowRight": "right", "t": "tie"}
    assert {t: stored[t][1] for t in pressed} == {t: winner[k] for t, k in pressed.items()}


def test_the_dashboard_shows_a_numeric_project_and_its_run(
    page: Page, client, requester, make_worker, settings
) -> None:
    pid = _project(client, requester, name="ages", type="numeric", scale={"min": 0, "max": 100},
                   overlap=2)  # fmt: skip
    _post(client, requester, pid, [{"external_id": f"t{i}"} for i in range(3)])
    for name, offset in (("ann", 0), ("ben", 2)):
        worker = make_worker(requester, name)
        for _ in range(3):
            r = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker))
            a = client.post(f"/api/v1/assignments/{r.json['assignment_id']}/answer",
                            json={"value": 30 + offset}, headers=auth(worker))  # fmt: skip
            assert a.status_code == 201, a.json
    drain(settings)
    page.goto(f"/dashboard/projects/{pid}#token={requester}")
    expect(page.locator("#project-name")).to_have_text("ages")
    expect(page.locator("#project-labels")).to_contain_text("Numeric, 0 to 100")
    expect(page.locator("#run-rows tr").first.locator(".badge")).to_have_text("succeeded")
    expect(page.locator("#run-rows tr").first).to_contain_text("numeric-em")
    expect(page.locator("#worker-rows tr")).to_have_count(2)
