"""The worker's labelling page in a real Chromium: keyboard labelling, skip, no task left, bans."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from crowd.store.db import Database
from tests.conftest import auth


def _post_tasks(client, token: str, pid: int, tasks: list[dict]) -> None:
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(token))
    assert r.status_code == 201, r.json


def _stored(database: Database, pid: int) -> dict[str, tuple[str, str | None]]:
    with database.transaction() as cur:
        cur.execute(
            "SELECT t.external_id, a.status, p.labels[a.label + 1] FROM assignments a"
            " JOIN tasks t ON t.id = a.task_id JOIN projects p ON p.id = a.project_id"
            " WHERE a.project_id = %s",
            (pid,),
        )
        return {ext: (status, label) for ext, status, label in cur.fetchall()}


def test_a_worker_labels_tasks_with_the_keyboard_and_the_answers_are_stored(
    page: Page, live_url, client, requester, make_project, make_worker, database
) -> None:
    pid = make_project(requester, name="animals", labels=["cat", "dog", "bird"], overlap=1,
                       gold_rate=0.0)["id"]  # fmt: skip
    image = f"{live_url}/ui/static/favicon.svg"
    _post_tasks(client, requester, pid, [
        {"external_id": "t1", "data": {"text": "meows at night", "source": "forum"}},
        {"external_id": "t2", "data": {"caption": "a photo", "image_url": image}},
        {"external_id": "t3", "data": {"text": "barks", "meta": {"lang": "en"}}},
        {"external_id": "t4", "data": {"text": "sings"}},
    ])  # fmt: skip
    worker = make_worker(requester, "alice")

    page.goto(f"/label#token={worker}")
    # the token left the address bar for the tab's sessionStorage
    expect(page.locator("#project-name")).to_have_text("animals")
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('crowd.worker_token')") == worker
    expect(page.get_by_role("button", name="1 cat")).to_be_visible()
    expect(page.get_by_role("timer")).to_contain_text("Reserved for you for ")

    pressed = {"t1": "1", "t2": "2", "t3": "s", "t4": "3"}
    for _ in pressed:
        task = page.locator("#task-id").inner_text()
        if task == "t2":  # the image URL is shown as an image, and it loaded
            image_el = page.get_by_role("img", name="image_url of task t2")
            expect(image_el).to_be_visible()
            assert image_el.evaluate("img => img.complete && img.naturalWidth > 0")
        if task == "t1":
            expect(page.locator("#task-data")).to_contain_text("meows at night")
        page.keyboard.press(pressed[task])
        if task != list(pressed)[-1]:
            expect(page.locator("#task-id")).not_to_have_text(task)

    expect(page.get_by_role("heading", name="No task left")).to_be_visible()
    assert _stored(database, pid) == {
        "t1": ("answered", "cat"),
        "t2": ("answered", "dog"),
        "t3": ("skipped", None),
        "t4": ("answered", "bird"),
    }


def test_a_worker_signs_in_picks_a_project_and_is_told_it_is_banned(
    page: Page, client, requester, make_project, make_worker
) -> None:
    first = make_project(requester, name="first", labels=["yes", "no"])["id"]
    second = make_project(requester, name="second", labels=["yes", "no"])["id"]
    _post_tasks(client, requester, second, [{"external_id": "s1", "data": {"text": "hi"}}])
    worker = make_worker(requester, "bob")
    worker_id = client.get("/api/v1/workers", headers=auth(requester)).json["workers"][0]["id"]
    r = client.post(f"/api/v1/projects/{first}/workers/{worker_id}/ban",
                    json={"reason": "copied answers"}, headers=auth(requester))  # fmt: skip
    assert r.status_code == 200

    page.goto("/label")
    page.get_by_label("Worker token").fill("crowd_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not known")
    page.get_by_label("Worker token").fill(requester)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not a worker token")

    page.get_by_label("Worker token").fill(worker)
    page.get_by_role("button", name="Sign in").click()
    expect(
        page.get_by_role("button", name="first You are banned from this project")
    ).to_be_visible()
    page.get_by_role("button", name="first").click()
    expect(page.get_by_role("heading", name="You are banned from this project")).to_be_visible()
    expect(page.locator("#notice-text")).to_contain_text("copied answers")

    page.get_by_role("button", name="Change project").click()
    page.get_by_role("button", name="second").click()
    expect(page.locator("#task-id")).to_have_text("s1")
    expect(page).to_have_url(f"{page.url.split('?')[0]}?project={second}")

    # Banned while a task is on screen: the next key press is refused with the reason.
    r = client.post(
        f"/api/v1/projects/{second}/workers/{worker_id}/ban",
        json={"reason": "answers too fast"},
        headers=auth(requester),
    )
    assert r.status_code == 200
    page.keyboard.press("1")
    expect(page.get_by_role("heading", name="You are banned from this project")).to_be_visible()
    expect(page.locator("#notice-text")).to_contain_text("answers too fast")


def test_when_the_reservation_runs_out_the_next_task_is_fetched(
    page: Page, client, requester, make_project, make_worker, database
) -> None:
    pid = make_project(requester, name="quick", labels=["a", "b"], lease_seconds=5)["id"]
    _post_tasks(
        client, requester, pid, [{"external_id": f"q{i}", "data": {"n": i}} for i in (1, 2)]
    )
    worker = make_worker(requester)

    page.goto(f"/label#token={worker}")
    expect(page.locator("#task-id")).to_have_text("q1")
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"Reserved for you for 0:0[1-5]"))
    expect(page.locator("#task-id")).to_have_text("q2", timeout=9_000)
    expect(page.get_by_role("status")).to_contain_text("Time ran out")
    page.keyboard.press("2")
    expect(page.get_by_role("heading", name="No task left")).to_be_visible()
    assert _stored(database, pid) == {"q1": ("expired", None), "q2": ("answered", "b")}


def test_the_chooser_lists_only_projects_with_a_task_left_for_this_worker(
    page: Page, client, requester, make_project, make_worker
) -> None:
    pids = {}
    for name in ("done", "empty", "open one", "open two"):
        project = make_project(requester, name=name, labels=["yes", "no"], overlap=1, gold_rate=0)
        pids[name] = project["id"]
    for name in ("done", "open one", "open two"):
        _post_tasks(client, requester, pids[name], [{"external_id": f"{name} 1"}])
    other = make_worker(requester, "other")  # answers the only task of "done"
    got = client.post(f"/api/v1/projects/{pids['done']}/assignments", headers=auth(other)).json
    client.post(f"/api/v1/assignments/{got['assignment_id']}/answer", json={"label": "yes"},
                headers=auth(other))  # fmt: skip

    page.goto(f"/label#token={make_worker(requester, 'carol')}")
    choices = page.locator("#project-list button.choice .choice-name")
    expect(choices).to_have_text(["open one", "open two"])
    expect(page.locator("#idle-note")).to_have_text(
        "Not shown: 2 projects have nothing left for you to label right now. "
        "Check again later, or ask your requester for more tasks."
    )

    # Once its only task is labelled, "open one" leaves the list too.
    page.get_by_role("button", name="open one").click()
    expect(page.locator("#task-id")).to_have_text("open one 1")
    page.keyboard.press("1")
    expect(page.get_by_role("heading", name="No task left")).to_be_visible()
    page.get_by_role("button", name="Change project").click()
    expect(choices).to_have_text(["open two"])
    expect(page.locator("#idle-note")).to_contain_text("Not shown: 3 projects have nothing left")


def test_a_token_link_opened_in_the_already_open_page_signs_that_worker_in(
    page: Page, client, requester, make_project, make_worker, database
) -> None:
    pid = make_project(requester, name="p", labels=["yes", "no"], overlap=1, gold_rate=0.0)["id"]
    _post_tasks(client, requester, pid, [{"external_id": "t1"}, {"external_id": "t2"}])
    alice, bob = make_worker(requester, "alice"), make_worker(requester, "bob")

    page.goto(f"/label#token={alice}")
    expect(page.locator("#task-id")).to_have_text("t1")
    # The same tab follows a link to the page with another token: only the fragment changes.
    page.evaluate("token => { window.location.hash = 'token=' + token; }", bob)
    expect(page.locator("#task-id")).to_have_text("t2")  # bob's reservation (alice holds t1)
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('crowd.worker_token')") == bob
    page.keyboard.press("2")
    expect(page.get_by_role("heading", name="No task left")).to_be_visible()
    with database.transaction() as cur:
        cur.execute(
            "SELECT t.external_id, w.name, a.status FROM assignments a"
            " JOIN tasks t ON t.id = a.task_id JOIN accounts w ON w.id = a.worker_id"
            " WHERE a.project_id = %s ORDER BY t.external_id",
            (pid,),
        )
        assert cur.fetchall() == [("t1", "alice", "reserved"), ("t2", "bob", "answered")]
