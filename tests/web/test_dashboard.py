"""The requester dashboard in a real Chromium: numbers change after a real aggregation run,
workers sort, a confusion matrix is drawn, bans and unbans reach PostgreSQL, and the model panel
draws each trained version's accuracy on gold as the models endpoint reports it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from crowd.store.db import Database
from tests.aggregation.test_live import answer_next, drain, good_and_bad_on_gold, post_tasks
from tests.conftest import auth
from tests.models.test_models import FEATURES, _answer, _tasks


def _figure(page: Page, name: str):
    return page.locator(f'[data-figure="{name}"]')


def _ban_status(database: Database, pid: int, name: str) -> tuple[str, str | None] | None:
    with database.transaction() as cur:
        cur.execute(
            "SELECT pw.status, pw.reason FROM project_workers pw"
            " JOIN accounts a ON a.id = pw.worker_id WHERE pw.project_id = %s AND a.name = %s",
            (pid, name),
        )
        row = cur.fetchone()
    return (row[0], row[1]) if row else None


def test_dashboard_numbers_change_after_an_aggregation_run(
    page: Page, client, requester, make_project, make_worker, settings, database
) -> None:
    pid = make_project(requester, name="sentiment", labels=["pos", "neg"], overlap=3,
                       gold_rate=0.0)["id"]  # fmt: skip
    post_tasks(client, requester, pid, [{"external_id": f"t{i}"} for i in range(6)])
    truth = {f"t{i}": "pos" if i % 2 else "neg" for i in range(6)}
    names = ["ann", "ben", "spam"]
    for name in names:
        worker = make_worker(requester, name)
        for _ in range(6):  # "spam" always answers "pos"
            answer_next(client, worker, pid, lambda t, n=name: "pos" if n == "spam" else truth[t])

    page.goto(f"/dashboard/projects/{pid}#token={requester}")
    expect(page.locator("#project-name")).to_have_text("sentiment")
    assert "token" not in page.url
    expect(_figure(page, "tasks")).to_have_text("6")
    expect(_figure(page, "answers")).to_have_text("18")
    expect(_figure(page, "answers_per_task")).to_have_text("3.00")
    expect(_figure(page, "aggregated_tasks")).to_have_text("0 tasks with a published result")
    expect(page.get_by_text("No aggregation run has published results yet.")).to_be_visible()
    expect(page.locator("#worker-rows tr")).to_have_count(3)
    expect(page.locator("#worker-rows")).not_to_contain_text("%")  # no estimates before a run
    expect(page.locator("#models-panel")).to_be_hidden()  # a project without a model

    drain(settings)  # a real RQ worker runs the queued aggregation
    page.get_by_role("button", name="Refresh").click()

    expect(page.locator("#run-rows tr").first.locator(".badge")).to_have_text("succeeded")
    expect(page.locator("#run-rows tr").first).to_contain_text("18")
    # Seconds: the run's own duration, in hundredths (not 0.0 for every run under 50 ms)
    (run,) = client.get(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester)).json[
        "aggregations"
    ]
    shown = page.locator("#run-rows tr").first.locator("td").nth(5)
    expect(shown).to_have_text("< 0.01" if run["seconds"] < 0.01 else f"{run['seconds']:.2f}")
    expect(_figure(page, "aggregated_tasks")).to_have_text("6 tasks with a published result")
    bars = page.locator("#confidence-chart rect.bar")
    expect(bars).to_have_count(10)
    heights = sum(int(v) for v in bars.evaluate_all("rs => rs.map(r => r.dataset.value)"))
    assert heights == 6

    # Sorted by accuracy, ascending, by default: the spammer comes first; a click reverses.
    expect(page.locator("#worker-rows tr").first.locator("th")).to_contain_text("spam")
    page.get_by_role("button", name="Accuracy", exact=True).click()
    expect(page.locator("th[aria-sort='descending']")).to_have_text("Accuracy ▼")
    expect(page.locator("#worker-rows tr").last.locator("th")).to_contain_text("spam")

    page.set_viewport_size({"width": 1200, "height": 600})  # the panel starts below the fold
    page.get_by_role("button", name="Confusion of spam").click()
    expect(page.get_by_role("heading", name="Confusion matrix of spam")).to_be_visible()
    expect(page.locator("#confusion-chart rect.cell")).to_have_count(4)
    # The whole matrix is in the window, and the keyboard focus is on its heading.
    box = page.locator("#confusion-panel").bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 600, box
    expect(page.get_by_role("heading", name="Confusion matrix of spam")).to_be_focused()

    page.get_by_role("button", name="Ban spam").click()
    page.get_by_label("Reason (the worker sees it)").fill("always pos")
    page.get_by_role("button", name="Ban", exact=True).click()
    expect(page.locator("tr", has_text="spam").locator(".badge")).to_have_text("banned")
    assert _ban_status(database, pid, "spam") == ("banned", "always pos")

    # the keyboard focus follows the worker's row through the table's rebuild
    expect(page.get_by_role("button", name="Unban spam")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("tr", has_text="spam").locator(".badge")).to_have_text("active")
    expect(page.get_by_role("button", name="Ban spam")).to_be_focused()
    assert _ban_status(database, pid, "spam") == ("active", None)


def test_project_list_links_to_each_dashboard_and_a_bad_token_is_refused(
    page: Page, client, requester, other_requester, make_project, make_worker
) -> None:
    mine = make_project(requester, name="mine")["id"]
    make_project(other_requester, name="theirs")

    page.goto("/dashboard")
    page.get_by_label("Requester token").fill("crowd_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not known")
    page.get_by_label("Requester token").fill(make_worker(requester, "bob"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("needs a requester or admin token")

    page.get_by_label("Requester token").fill(requester)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="mine")).to_be_visible()
    expect(page.get_by_role("link", name="theirs")).to_have_count(0)
    page.get_by_role("link", name="mine").click()  # the token stays in this tab's storage
    expect(page).to_have_url(f"{page.url.split('/dashboard')[0]}/dashboard/projects/{mine}")
    expect(page.locator("#project-name")).to_have_text("mine")
    r = client.get(f"/api/v1/projects/{mine}", headers=auth(requester))
    expect(_figure(page, "tasks")).to_have_text(str(r.json["counts"]["tasks"]))

    page.goto(f"/dashboard/projects/{mine + 1000}")  # signed in already, in this tab
    expect(page.get_by_role("status")).to_contain_text(f"No project {mine + 1000} among")
    expect(page.locator("#signin")).to_be_hidden()


def _pct(share: float) -> str:
    """A share as the dashboard writes it (fmtPct: one decimal)."""
    return f"{100 * share:.1f}%"


def test_model_panel_shows_each_version_and_its_gold_accuracy(
    page: Page, client, requester, make_worker, make_project, settings
) -> None:
    pid = make_project(requester, name="signs", labels=["neg", "pos"], overlap=1, gold_rate=0.0,
                       model=FEATURES, retrain_every=1000)["id"]  # fmt: skip
    post_tasks(client, requester, pid, _tasks(40, seed=11))
    post_tasks(client, requester, pid, _tasks(30, seed=12, prefix="g", gold=True))
    worker = make_worker(requester)
    for _ in range(2):  # two versions, each asked for after more answers were aggregated
        _answer(client, worker, pid, 12)
        drain(settings)
        r = client.post(f"/api/v1/projects/{pid}/models", headers=auth(requester))
        assert r.status_code == 202 and r.json["model"]["status"] == "queued", r.json
        drain(settings)
    r = client.get(f"/api/v1/projects/{pid}/models", headers=auth(requester))
    newest, oldest = r.json["models"]
    assert [v["status"] for v in (oldest, newest)] == ["succeeded", "succeeded"]
    assert (oldest["trained_tasks"], newest["trained_tasks"]) == (12, 24)

    page.goto(f"/dashboard/projects/{pid}#token={requester}")
    expect(page.locator("#project-name")).to_have_text("signs")
    panel = page.locator("#models-panel")
    expect(panel).to_be_visible()
    expect(panel.get_by_role("heading")).to_have_text("Model accuracy across versions")
    # oldest to newest, left to right, one dot per version with its exact figures
    expect(panel.locator("text.tick", has_text="v")).to_have_text(
        [f"v{oldest['id']}", f"v{newest['id']}"]
    )
    expect(panel.locator("circle.dot title")).to_have_text(
        [
            f"model {v['id']} (succeeded): gold accuracy {_pct(v['metrics']['gold_accuracy'])}"
            f" on 30 gold tasks, trained on {v['trained_tasks']} tasks"
            for v in (oldest, newest)
        ]
    )
    expect(panel.get_by_role("img")).to_have_attribute(
        "aria-label",
        "Model gold accuracy by version: "
        + "; ".join(f"v{v['id']} {_pct(v['metrics']['gold_accuracy'])}" for v in (oldest, newest)),
    )
    # the figures are written on the chart too, and the newest version is summed up under it
    expect(panel.locator("text.value")).to_have_text(
        [_pct(v["metrics"]["gold_accuracy"]) for v in (oldest, newest)]
    )
    expect(panel.locator("#models-latest")).to_have_text(
        f"Latest scored version, v{newest['id']}: {_pct(newest['metrics']['gold_accuracy'])}"
        " right on 30 gold tasks, trained on 24 tasks."
    )


def test_dashboard_shows_each_quality_rules_interval_probability_and_a_reversed_ban(
    page: Page, client, requester, make_project, make_worker, settings
) -> None:
    """Chromium plus two aggregation runs by a real forking RQ worker: one bans, the next
    reverses the evidence, and the page shows both."""
    pid = make_project(requester, labels=["a", "b"], overlap=3, gold_rate=1.0, qc_min_answers=4,
                       qc_min_gold_accuracy=0.6, qc_min_gold_answers=2)["id"]  # fmt: skip
    _good, _bad = good_and_bad_on_gold(client, requester, make_worker, pid)
    drain(settings)

    page.goto(f"/dashboard/projects/{pid}#token={requester}")
    # bad: 0 of 8 gold right under the fallback prior Beta(1, 1): Beta(1, 9), mean 10%,
    # 95% interval 0.3%-33.6%, below 60% with probability 1 - 0.4^9 = 99.97%.
    bad_row = page.locator("#worker-rows tr", has_text="bad")
    expect(bad_row.locator("[data-rule=gold]")).to_have_text(
        "Gold 10.0% (95%: 0.3%\u201333.6%); P(below 60%) 100.0%; decided"
    )
    expect(bad_row.locator(".badge")).to_have_text("banned")
    expect(bad_row.locator(".flag")).to_have_count(0)
    good_row = page.locator("#worker-rows tr", has_text="good")
    expect(good_row.locator("[data-rule=gold]")).to_contain_text(
        "Gold 90.0% (95%: 66.4%\u201399.7%)"
    )

    # A lower bar turns the evidence around: the ban stays, flagged for the requester.
    client.patch(f"/api/v1/projects/{pid}", json={"qc_min_gold_accuracy": 0.05},
                 headers=auth(requester))  # fmt: skip
    client.post(f"/api/v1/projects/{pid}/aggregations", headers=auth(requester))
    drain(settings)
    page.get_by_role("button", name="Refresh").click()
    expect(bad_row.locator(".flag")).to_have_text(" evidence reversed")
    expect(bad_row.locator(".badge")).to_have_text("banned")
