"""The dashboard's review panel (issue 12) in a real Chromium: for a small seeded project whose
answers are known, each model's predictions, shares reviewed, confirmed and corrected,
accuracy on gold and on reviewed tasks, the reliability diagram's dots, and the audited
precision of auto-accepts, as GET .../review reports them; a project without predictions has
no panel."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.aggregation.test_live import drain
from tests.conftest import auth
from tests.review.test_review_panel import MODEL, crowd_labels, expected_panel, seed_panel_project

#: The page writes ranges and missing figures with an en dash.
DASH = "\N{EN DASH}"


def test_the_review_panel_shows_each_models_figures_and_its_reliability_diagram(
    page: Page, client, requester, make_project, make_worker, settings
) -> None:
    pid = seed_panel_project(client, make_project, make_worker, requester, settings)
    want = expected_panel(crowd_labels(client, requester, pid))

    page.goto(f"/dashboard/projects/{pid}#token={requester}")
    panel = page.locator("#review-panel")
    expect(panel).to_be_visible()
    row = page.locator(f'#review-rows tr[data-model="{MODEL}"]')
    expect(row.locator("th")).to_have_text(MODEL)
    cell = lambda col: row.locator(f'[data-col="{col}"]')  # noqa: E731
    expect(cell("predictions")).to_have_text("12")
    expect(cell("reviewed")).to_have_text("6 (50.0%)")
    expect(cell("confirmed")).to_have_text("4 (66.7%)")
    expect(cell("corrected")).to_have_text("2 (33.3%)")
    expect(cell("gold")).to_have_text("75.0% of 4")
    right = want["reviewed_accuracy"]["correct"]
    expect(cell("reviewed_accuracy")).to_have_text(f"{100 * right / 6:.1f}% of 6")
    expect(cell("auto_accepted")).to_have_text("0")
    expect(cell("audits")).to_have_text(DASH)  # accept_at is off: nothing audited
    expect(page.locator('[data-figure="review_predictions"]')).to_have_text("12")
    expect(page.locator('[data-figure="audited_precision"]')).to_have_text(DASH)

    # One dot per bucket with checked predictions, at its tasks and accuracy.
    dots = page.locator(f'#reliability-charts figure[data-model="{MODEL}"] circle.dot')
    filled = [(i, b) for i, b in enumerate(want["buckets"]) if b[0]]
    expect(dots).to_have_count(len(filled))
    shown = dots.evaluate_all(
        "ds => ds.map(d => [Number(d.dataset.from), Number(d.dataset.tasks),"
        " Number(d.dataset.accuracy)])"
    )
    assert shown == [[round(i / 10, 6), n, round(ok / n, 6)] for i, (n, _conf, ok) in filled]
    label = page.locator(f'#reliability-charts figure[data-model="{MODEL}"] svg')
    expect(label).to_have_attribute("aria-label", f"Reliability of {MODEL}: " + "; ".join(
        f"{i * 10}%{DASH}{(i + 1) * 10}%: {100 * ok / n:.1f}% right of {n}" for i, (n, _c, ok) in filled
    ))  # fmt: skip


def test_the_panel_shows_the_audited_precision_of_auto_accepts_and_hides_without_models(
    page: Page, client, requester, make_project, make_worker, settings
) -> None:
    pid = make_project(requester, labels=["pos", "neg"], overlap=1, gold_rate=0.0)["id"]
    page.goto(f"/dashboard/projects/{pid}#token={requester}")
    expect(page.locator("#project-name")).to_be_visible()
    expect(page.locator("#review-panel")).to_be_hidden()

    # Every would-be-accepted task is audited (audit_rate 1): labelled blind, then compared.
    review = {"overlap": 1, "max_overlap": 1, "blind_below": 0.5, "accept_at": 0.9,
              "audit_rate": 1.0, "trap_rate": 0.0}  # fmt: skip
    pid = make_project(requester, labels=["pos", "neg"], overlap=1, gold_rate=0.0,
                       review=review)["id"]  # fmt: skip
    tasks = [{"external_id": f"a{i}", "prediction": {"model": "llm", "label": "pos",
                                                      "confidence": 0.95}} for i in range(5)]  # fmt: skip
    r = client.post(f"/api/v1/projects/{pid}/tasks", json={"tasks": tasks}, headers=auth(requester))
    assert r.status_code == 201, r.json
    worker = make_worker(requester, "auditor")
    for _ in range(5):  # four agree with the model, one does not
        got = client.post(f"/api/v1/projects/{pid}/assignments", headers=auth(worker)).json
        assert got["lane"] == "blind"
        label = "neg" if got["task"]["external_id"] == "a0" else "pos"
        a = client.post(f"/api/v1/assignments/{got['assignment_id']}/answer",
                        json={"label": label}, headers=auth(worker))  # fmt: skip
        assert a.status_code == 201, a.json
    drain(settings)
    report = client.get(f"/api/v1/projects/{pid}/review", headers=auth(requester)).json
    audits = report["audits"]
    assert (audits["audited"], audits["labelled"], audits["agree"]) == (5, 5, 4)
    low, high = audits["interval"]

    page.goto(f"/dashboard/projects/{pid}#token={requester}")
    expect(page.locator('[data-figure="audited_precision"]')).to_have_text("80.0%")
    expect(page.locator("#review-audits")).to_have_text(
        f"Auto-accepts' audited precision: 80.0%, 95% interval {100 * low:.1f}% to "
        f"{100 * high:.1f}%, from 5 audited tasks with a crowd label (4 agree)."
    )
    row = page.locator('#review-rows tr[data-model="llm"]')
    expect(row.locator('[data-col="audits"]')).to_have_text(
        f"80.0% ({100 * low:.1f}%{DASH}{100 * high:.1f}%) of 5"
    )
