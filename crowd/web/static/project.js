/* One project's dashboard: progress, confidence, runs, workers (sortable, ban and unban),
 * a worker's confusion matrix, model accuracy when the project has models, and the review
 * panel when models have posted predictions. */
"use strict";

(() => {
  const { api, el, show, fmtInt, fmtPct, fmtTime, ApiError } = Crowd;
  const { bars, heatmap, line, stacked, reliability } = CrowdCharts;
  const KEY = "crowd.requester_token";
  const REFRESH_MS = 10000;
  const MAX_WORKER_PAGES = 20;
  const $ = (id) => document.getElementById(id);
  const projectId = Number($("project").dataset.projectId);
  const base = "/api/v1/projects/" + projectId;

  const COLUMNS = [
    { key: "name", title: "Worker", value: (w) => w.name.toLowerCase() },
    { key: "answers", title: "Answers", num: true, value: (w) => w.answers },
    { key: "accuracy", title: "Accuracy", num: true, value: (w) => w.accuracy },
    { key: "gold_accuracy", title: "Gold accuracy", num: true, value: (w) => w.gold_accuracy },
    // Traps: gold tasks shown in the review lane with a wrong proposal (docs/REVIEW.md).
    { key: "trap_catch_rate", title: "Traps caught", num: true, value: (w) => w.trap_catch_rate },
    { key: "evidence", title: "Quality rules", num: true, value: (w) => worstEvidence(w) },
    { key: "status", title: "Status", value: (w) => w.status },
  ];
  const RULE_NAMES = { accuracy: "Accuracy", gold: "Gold", trap: "Stamping" };

  /* The largest probability of being below a rule's threshold (how close to a ban). */
  function worstEvidence(w) {
    const found = Object.values(w.rules || {}).map((r) => r.p_below).filter((p) => p !== null);
    return found.length ? Math.max(...found) : null;
  }

  /* One line per quality rule: the estimate and its 95% interval, the probability of being
   * below the threshold, and how many more answers a decision needs (docs/QUALITY.md). */
  function evidenceCell(w) {
    const rules = Object.entries(w.rules || {});
    if (!rules.length) return "–";
    return el("ul", { class: "evidence" }, ...rules.map(([name, r]) => {
      const more = r.more_answers === 0 ? "decided"
        : r.more_answers === null ? "no decision in sight" : `${fmtInt(r.more_answers)} more answers to decide`;
      return el("li", { "data-rule": name },
        `${RULE_NAMES[name] || name} ${fmtPct(r.estimate)} (95%: ${fmtPct(r.low)}–${fmtPct(r.high)}); ` +
        `P(below ${fmtPct(r.threshold, 0)}) ${fmtPct(r.p_below)}; ${more}`);
    }));
  }

  const state = {
    token: null, project: null, workers: [], sort: { key: "accuracy", dir: "ascending" },
    selected: null, loading: false, again: false, timer: null, banTarget: null,
  };

  function status(text) { $("status").textContent = text; }

  function needSignIn(message) {
    sessionStorage.removeItem(KEY);
    state.token = null;
    clearInterval(state.timer);
    show($("project"), false);
    show($("signout"), false);
    $("who").textContent = "";
    show($("signin"), true);
    $("signin-error").textContent = message || "";
    $("signin-token").focus();
  }

  async function start(token) {
    state.token = token;
    $("signin-error").textContent = "";
    const ok = await refresh();
    if (!ok) return;
    show($("signin"), false);
    show($("signout"), true);
    show($("project"), true);
    $("who").textContent = "Signed in as a requester";
    clearInterval(state.timer);
    state.timer = setInterval(() => {
      if ($("auto-refresh").checked && document.visibilityState === "visible") refresh();
    }, REFRESH_MS);
  }

  /* Load every panel's data at once; returns false when the token or project is refused.
   * A refresh asked for while one is loading runs right after it (its data may predate
   * whatever prompted the new request). */
  async function refresh() {
    if (state.loading) {
      state.again = true;
      return true;
    }
    state.loading = true;
    try {
      const get = (path) => api(state.token, "GET", base + path).then((r) => r.body);
      const [project, stats, runs, workers, models, review] = await Promise.all([
        get(""), get("/stats?bins=10"), get("/aggregations?limit=10"), loadWorkers(),
        get("/models?limit=50").catch((err) => {
          if (err instanceof ApiError && err.status === 404) return null;  // no models endpoint
          throw err;
        }),
        get("/review"),
      ]);
      state.project = project;
      state.workers = workers.workers;
      drawHeader(project);
      drawProgress(project, stats);
      drawConfidence(stats);
      drawRuns(runs.aggregations);
      drawWorkers(workers.labels);
      drawModels(models);
      drawReview(review);
      $("updated").textContent = "Updated " + new Date().toLocaleTimeString("en-GB");
      return true;
    } catch (err) {
      if (err.status === 401 || err.status === 403) needSignIn(Crowd.signInMessage(err, "requester"));
      else if (err.status === 404) {
        clearInterval(state.timer);
        show($("signin"), false);
        show($("project"), false);
        show($("signout"), true);
        status("No project " + projectId + " among the projects of this token; " +
          "the dashboard's front page (/dashboard) lists them.");
      } else status("Could not refresh: " + err.message);
      return false;
    } finally {
      state.loading = false;
      if (state.again && state.token) {
        state.again = false;
        refresh();
      }
    }
  }

  async function loadWorkers() {
    let cursor = null, labels = [], all = [];
    for (let page = 0; page < MAX_WORKER_PAGES; page++) {
      const query = "?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      const { body } = await api(state.token, "GET", base + "/workers" + query);
      labels = body.labels;
      all = all.concat(body.workers);
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    return { labels, workers: all };
  }

  function drawHeader(project) {
    $("project-name").textContent = project.name;
    document.title = project.name + " · crowd dashboard";
    $("project-labels").textContent = answerKind(project) + " · overlap " +
      project.overlap + (project.max_overlap > project.overlap ? " to " + project.max_overlap : "") +
      " · method " + project.method;
  }

  /* What an answer is, by the project's type (docs/TYPES.md). */
  function answerKind(project) {
    const type = project.type || "categorical";
    if (type === "numeric") {
      const { min, max, step } = project.scale;
      return "Numeric, " + min + " to " + max + (step ? " in steps of " + step : "");
    }
    if (type === "pairwise") return "Pairwise comparisons" + (project.ties ? " (ties allowed)" : "");
    return (type === "multilabel" ? "Multi-label: " : "Labels: ") + project.labels.join(", ");
  }

  function figure(name, value, id) {
    return el("div", { class: "figure" }, el("dt", {}, name), el("dd", { "data-figure": id }, value));
  }

  function drawProgress(project, stats) {
    const c = project.counts;
    const perTask = stats.answers_per_task;
    const regularAnswers = perTask.reduce((s, d) => s + d.answers * d.tasks, 0);
    const pending = c.tasks - c.tasks_complete;
    $("progress").replaceChildren(
      figure("Tasks", fmtInt(c.tasks), "tasks"),
      figure("Complete", fmtInt(c.tasks_complete), "tasks_complete"),
      figure("Pending", fmtInt(pending), "tasks_pending"),
      figure("Answers", fmtInt(c.answers), "answers"),
      figure("Answers per task", c.tasks ? (regularAnswers / c.tasks).toFixed(2) : "–", "answers_per_task"),
      figure("Gold tasks", fmtInt(c.gold_tasks), "gold_tasks"),
      figure("Reserved now", fmtInt(c.reservations), "reservations"));
    $("progress-bar").replaceChildren(
      stacked([
        { label: "complete", value: c.tasks_complete, cls: "part-complete" },
        { label: "pending", value: pending, cls: "part-pending" },
      ], { label: `${fmtInt(c.tasks_complete)} of ${fmtInt(c.tasks)} tasks complete` }),
      el("p", { class: "legend" }, el("span", { class: "swatch part-complete" }), " complete ",
        el("span", { class: "swatch part-pending" }), " pending"));
    $("answers-chart").replaceChildren(perTask.length
      ? bars(perTask.map((d) => ({ label: String(d.answers), value: d.tasks,
        title: `${d.tasks} tasks with ${d.answers} answers` })),
      { label: "Tasks by number of answers: " + perTask.map((d) => `${d.answers} answers: ${d.tasks} tasks`).join("; "),
        xTitle: "answers", yTitle: "tasks" })
      : el("p", { class: "muted" }, "No tasks yet."));
  }

  function drawConfidence(stats) {
    const bins = stats.confidence.bins;
    const chart = stats.confidence.tasks
      ? bars(bins.map((b) => ({ label: b.from.toFixed(1), value: b.tasks,
        title: `confidence ${b.from.toFixed(2)}–${b.to.toFixed(2)}: ${b.tasks} tasks` })),
      { label: "Tasks by confidence: " + bins.map((b) => `${b.from.toFixed(1)} to ${b.to.toFixed(1)}: ${b.tasks}`).join("; "),
        xTitle: "confidence (bin start)", yTitle: "tasks" })
      : el("p", { class: "muted" }, "No aggregation run has published results yet.");
    $("confidence-chart").replaceChildren(chart,
      el("p", { class: "muted", "data-figure": "aggregated_tasks" },
        fmtInt(stats.confidence.tasks) + " tasks with a published result"));
  }

  function drawRuns(runs) {
    $("run-rows").replaceChildren(...runs.map((r) => {
      // Most runs take well under a second: below 10 s, show hundredths (one decimal
      // showed every fast run as 0.0).
      const seconds = r.seconds === null || r.seconds === undefined ? "–"
        : r.seconds < 0.01 ? "< 0.01" : r.seconds.toFixed(r.seconds < 10 ? 2 : 1);
      return el("tr", { "data-run": r.id },
        el("td", { class: "num" }, "#" + r.id),
        el("td", {}, el("span", { class: "badge " + r.status }, r.status)),
        el("td", {}, r.trigger),
        // auto: the method the run chose, with its reason on hover
        el("td", { title: r.choice_reason },
          r.chosen_method && r.chosen_method !== r.method ? r.method + " → " + r.chosen_method : r.method),
        el("td", {}, fmtTime(r.created_at)),
        el("td", { class: "num" }, seconds), el("td", { class: "num" }, fmtInt(r.answers)),
        el("td", { class: "num" }, fmtInt(r.tasks)), el("td", { class: "num" }, fmtInt(r.iterations)),
        el("td", { class: "error-text" }, r.error || ""));
    }));
    show($("no-runs"), runs.length === 0);
  }

  function drawWorkers(labels) {
    // The table is rebuilt on every refresh: keep the keyboard focus on the same control.
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.focusKey : undefined;
    const { key, dir } = state.sort;
    $("worker-head").replaceChildren(...COLUMNS.map((col) => el("th", {
      scope: "col", class: col.num ? "num" : null, "aria-sort": col.key === key ? dir : "none",
    }, el("button", { type: "button", class: "sort", "data-sort": col.key, "data-focus-key": "sort-" + col.key,
      onclick: () => sortBy(col.key) },
      col.title, el("span", { "aria-hidden": "true", class: "arrow" },
        col.key === key ? (dir === "ascending" ? " ▲" : " ▼") : ""))),
    ), el("th", { scope: "col" }, "Actions"));
    const column = COLUMNS.find((c) => c.key === key);
    const sign = dir === "ascending" ? 1 : -1;
    const rows = [...state.workers].sort((a, b) => {
      const x = column.value(a), y = column.value(b);
      if (x === y) return a.id - b.id;
      if (x === null || x === undefined) return 1;   // unknown figures last either way
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sign;
    });
    $("worker-rows").replaceChildren(...rows.map((w) => el("tr", { "data-worker": w.id },
      el("th", { scope: "row" }, w.name || "worker", el("span", { class: "muted" }, " #" + w.id)),
      el("td", { class: "num" }, fmtInt(w.answers)),
      el("td", { class: "num" }, fmtPct(w.accuracy)),
      el("td", { class: "num" }, w.gold_answers ? `${fmtPct(w.gold_accuracy)} of ${w.gold_answers}` : "–"),
      el("td", { class: "num" }, w.trap_answers ? `${fmtPct(w.trap_catch_rate)} of ${w.trap_answers}` : "–"),
      el("td", { class: "num" }, evidenceCell(w)),
      el("td", {}, el("span", { class: "badge " + w.status }, w.status),
        w.evidence_reversed ? el("span", { class: "flag reversed", title: "The rule that banned this worker now finds it more likely above the threshold; the ban stays until you lift it." }, " evidence reversed") : null,
        w.reason ? el("span", { class: "reason" }, " " + w.reason) : null),
      el("td", { class: "actions" },
        el("button", { type: "button", disabled: !w.confusion, "aria-pressed": state.selected === w.id ? "true" : "false",
          "data-focus-key": "confusion-" + w.id, onclick: () => selectWorker(w.id) }, "Confusion", el("span", { class: "visually-hidden" }, " of " + w.name)),
        w.status === "banned"
          ? el("button", { type: "button", "data-focus-key": "ban-" + w.id, onclick: () => unban(w) }, "Unban", el("span", { class: "visually-hidden" }, " " + w.name))
          : el("button", { type: "button", class: "danger", "data-focus-key": "ban-" + w.id, onclick: () => askBan(w) }, "Ban",
            el("span", { class: "visually-hidden" }, " " + w.name))))));
    show($("no-workers"), rows.length === 0);
    if (focused) {
      const again = document.querySelector(`[data-focus-key="${focused}"]`);
      if (again) again.focus();
    }
    drawConfusion(labels);
  }

  function sortBy(key) {
    const same = state.sort.key === key;
    state.sort = { key, dir: same && state.sort.dir === "ascending" ? "descending" : "ascending" };
    drawWorkers(state.project.labels);  // keeps the focus on the heading's button
  }

  function selectWorker(id) {
    state.selected = id;
    drawWorkers(state.project.labels);
    show($("confusion-panel"), true);
    // The panel is below the worker table, often past the bottom of the window: bring the
    // whole panel into view (scrolling as little as possible), then focus its heading.
    $("confusion-panel").scrollIntoView({ block: "nearest" });
    $("confusion-title").focus({ preventScroll: true });
  }

  function drawConfusion(labels) {
    const worker = state.workers.find((w) => w.id === state.selected);
    if (!worker || !worker.confusion) {
      show($("confusion-panel"), false);
      return;
    }
    $("confusion-title").textContent = "Confusion matrix of " + worker.name;
    $("confusion-title").setAttribute("tabindex", "-1");
    const summary = labels.map((label, i) =>
      `true ${label}: answered correctly ${fmtPct(worker.confusion[i][i])}`).join("; ");
    $("confusion-chart").replaceChildren(heatmap(worker.confusion, labels,
      { label: `Confusion matrix of ${worker.name}. ${summary}` }));
    show($("confusion-panel"), true);
  }

  function drawModels(models) {
    const list = models && Array.isArray(models.models) ? models.models : [];
    if (!list.length) {
      show($("models-panel"), false);
      return;
    }
    const points = [...list].reverse().map((m) => {
      const metrics = m.metrics || {};
      const value = typeof metrics.gold_accuracy === "number" ? metrics.gold_accuracy : null;
      return { label: "v" + m.id, value, text: value === null ? null : fmtPct(value),
        title: `model ${m.id} (${m.status}): gold accuracy ${fmtPct(value)} on ${fmtInt(metrics.gold_tasks)} gold tasks, ` +
          `trained on ${fmtInt(m.trained_tasks)} tasks` };
    });
    $("models-chart").replaceChildren(line(points, {
      label: "Model gold accuracy by version: " + points.map((p) => `${p.label} ${fmtPct(p.value)}`).join("; "),
      xTitle: "model version", yTitle: "gold accuracy" }));
    const scored = list.find((m) => m.metrics && typeof m.metrics.gold_accuracy === "number");
    $("models-latest").textContent = scored
      ? `Latest scored version, v${scored.id}: ${fmtPct(scored.metrics.gold_accuracy)} right on ` +
        `${fmtInt(scored.metrics.gold_tasks)} gold tasks, trained on ${fmtInt(scored.trained_tasks)} tasks.`
      : "No version has an accuracy yet: it is measured on gold tasks once a version has trained.";
    show($("models-panel"), true);
  }

  /* "n (share)" for a count and its share of a whole, "–" when there is no whole. */
  function ofWhole(n, share) {
    return share === null || share === undefined ? fmtInt(n) : `${fmtInt(n)} (${fmtPct(share)})`;
  }

  function accuracyCell(a) {
    return a.tasks ? `${fmtPct(a.accuracy)} of ${fmtInt(a.tasks)}` : "–";
  }

  function precisionText(a) {
    if (!a.labelled) return a.audited ? `${fmtInt(a.audited)} audited, none labelled yet` : "–";
    return `${fmtPct(a.precision)} (${fmtPct(a.interval[0])}–${fmtPct(a.interval[1])}) ` +
      `of ${fmtInt(a.labelled)}`;
  }

  /* The review panel: per model its predictions, what reviewers made of them, its accuracy
   * and a reliability diagram; the audited precision of auto-accepts (GET .../review). */
  function drawReview(review) {
    const models = review && Array.isArray(review.models) ? review.models : [];
    if (!models.length) {
      show($("review-panel"), false);
      return;
    }
    const a = review.audits;
    $("review-figures").replaceChildren(
      figure("Models", fmtInt(models.length), "review_models"),
      figure("Predictions", fmtInt(models.reduce((s, m) => s + m.predictions, 0)), "review_predictions"),
      figure("Auto-accepted", fmtInt(review.auto_accepted), "auto_accepted"),
      figure("Audited precision", a.labelled ? fmtPct(a.precision) : "–", "audited_precision"));
    $("review-audits").textContent = review.review === null
      ? "The review lane is off for this project (the project's review setting is null)."
      : a.labelled
        ? `Auto-accepts' audited precision: ${fmtPct(a.precision)}, 95% interval ` +
          `${fmtPct(a.interval[0])} to ${fmtPct(a.interval[1])}, from ${fmtInt(a.labelled)} ` +
          `audited tasks with a crowd label (${fmtInt(a.agree)} agree).`
        : `No audited task has a crowd label yet (${fmtInt(a.audited)} audited).`;
    $("review-rows").replaceChildren(...models.map((m) => el("tr", { "data-model": m.model },
      el("th", { scope: "row" }, m.model),
      el("td", { class: "num", "data-col": "predictions" }, fmtInt(m.predictions)),
      el("td", { class: "num", "data-col": "reviewed" }, ofWhole(m.reviewed, m.share_reviewed)),
      el("td", { class: "num", "data-col": "confirmed" }, ofWhole(m.confirmed, m.share_confirmed)),
      el("td", { class: "num", "data-col": "corrected" }, ofWhole(m.corrected, m.share_corrected)),
      el("td", { class: "num", "data-col": "gold" }, accuracyCell(m.accuracy.gold)),
      el("td", { class: "num", "data-col": "reviewed_accuracy" }, accuracyCell(m.accuracy.reviewed)),
      el("td", { class: "num", "data-col": "auto_accepted" }, fmtInt(m.auto_accepted)),
      el("td", { class: "num", "data-col": "audits" }, precisionText(m.audits)))));
    $("reliability-charts").replaceChildren(...models.map((m) => {
      const filled = m.reliability.filter((b) => b.tasks > 0);
      const summary = filled.length
        ? filled.map((b) => `${fmtPct(b.from, 0)}–${fmtPct(b.to, 0)}: ${fmtPct(b.accuracy)} right of ${b.tasks}`).join("; ")
        : "no checked predictions yet";
      return el("figure", { "data-model": m.model }, el("figcaption", {}, m.model),
        reliability(m.reliability, { label: `Reliability of ${m.model}: ${summary}`,
          xTitle: "model confidence", yTitle: "accuracy on checked tasks" }));
    }));
    show($("review-panel"), true);
  }

  function askBan(worker) {
    state.banTarget = worker;
    $("ban-title").textContent = "Ban " + worker.name;
    $("ban-dialog").showModal();
    $("ban-reason").select();
  }

  $("ban-dialog").addEventListener("close", async () => {
    const worker = state.banTarget;
    state.banTarget = null;
    if ($("ban-dialog").returnValue !== "ban" || !worker) return;
    const reason = $("ban-reason").value.trim() || "banned by the requester";
    await act(() => api(state.token, "POST", `${base}/workers/${worker.id}/ban`, { reason }),
      `Banned ${worker.name}.`);
  });

  async function unban(worker) {
    await act(() => api(state.token, "POST", `${base}/workers/${worker.id}/unban`),
      `Unbanned ${worker.name}.`);
  }

  async function act(call, done) {
    try {
      await call();
      status(done);
    } catch (err) {
      status("Failed: " + err.message);
    }
    await refresh();
  }

  $("run-now").addEventListener("click", async () => {
    try {
      const { body } = await api(state.token, "POST", base + "/aggregations");
      status(body.run ? `Run #${body.run.id} is queued.` : body.message);
    } catch (err) {
      status("Could not ask for a run: " + err.message);
    }
    await refresh();
  });
  $("refresh").addEventListener("click", refresh);
  $("signout").addEventListener("click", () => needSignIn(""));
  Crowd.signInForm($("signin-form"), $("signin-token"), KEY, start);

  const token = Crowd.takeToken(KEY);
  if (token) start(token);
  else show($("signin"), true);
})();
