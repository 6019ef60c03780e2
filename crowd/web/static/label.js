/* The worker's labelling page: sign in, pick a project, then label task after task.
 * Each answer is sent with "next": true, so storing it and reserving the next task is one
 * request. A countdown shows when the reservation expires; at zero the next task is fetched.
 * The answer controls follow the project's type (docs/TYPES.md): label buttons
 * (categorical), checkboxes with a Submit (multilabel), a slider and a number field on the
 * scale (numeric), the two items side by side with Left / Right (/ Tie) (pairwise). */
"use strict";

(() => {
  const { api, el, show, ApiError } = Crowd;
  const KEY = "crowd.worker_token";
  const $ = (id) => document.getElementById(id);
  const IMAGE_URL = /^(https?:\/\/\S+\.(png|jpe?g|gif|webp|svg|avif|bmp)([?#]\S*)?|data:image\/[a-z+.-]+[;,]\S*)$/i;
  const IMAGE_FIELD = /^(image|img|picture|photo|thumbnail)(_?url)?$/i;
  const RECHECK_MS = 20000;

  const state = {
    token: null,
    project: null,      // {id, name, labels, lease_seconds, type, scale, ties}
    assignment: null,   // the reservation being shown
    deadline: 0,        // performance.now() at which it expires
    busy: false,
    timer: null,
    recheck: null,
    projectsCursor: null,
    idle: 0,            // listed projects with nothing left for this worker (not shown)
  };

  function status(text) { $("status").textContent = text; }

  function signOut() {
    sessionStorage.removeItem(KEY);
    state.token = null;
    stopTimers();
    $("who").textContent = "";
    show($("signout"), false);
    show($("projects"), false);
    show($("work"), false);
    show($("signin"), true);
    $("signin-token").focus();
  }

  function stopTimers() {
    clearInterval(state.timer);
    clearTimeout(state.recheck);
    state.timer = null;
    state.recheck = null;
  }

  function failSignIn(err) {
    sessionStorage.removeItem(KEY);
    state.token = null;
    show($("projects"), false);
    show($("work"), false);
    show($("signin"), true);
    $("signin-error").textContent = Crowd.signInMessage(err, "worker");
    $("signin-token").focus();
  }

  async function start(token) {
    state.token = token;
    $("signin-error").textContent = "";
    show($("signin"), false);
    show($("signout"), true);
    const wanted = Number(new URLSearchParams(window.location.search).get("project"));
    try {
      const projects = await reloadProjects();
      const listed = projects.filter(listable);
      const chosen = projects.find((p) => p.id === wanted) ||
        (listed.length === 1 && !state.projectsCursor ? listed[0] : null);
      if (chosen) openProject(chosen);
      else showProjects(projects.length === 0);
    } catch (err) {
      if (err.status === 401 || err.status === 403) failSignIn(err);
      else status("Could not load your projects: " + err.message);
    }
  }

  /* The project list from its first page (what is left to do changes as the worker labels). */
  function reloadProjects() {
    $("project-list").replaceChildren();
    state.projectsCursor = null;
    state.idle = 0;
    return loadProjects();
  }

  async function loadProjects() {
    const query = state.projectsCursor ? "&cursor=" + encodeURIComponent(state.projectsCursor) : "";
    const { body } = await api(state.token, "GET", "/api/v1/me/projects?limit=100" + query);
    state.projectsCursor = body.next_cursor;
    // Only projects with a task waiting for this worker, and those it is banned from (with
    // the reason); the others are counted below the list.
    for (const project of body.projects) {
      if (!listable(project)) {
        state.idle += 1;
        continue;
      }
      $("project-list").append(el("li", {},
        el("button", { type: "button", class: "choice", onclick: () => openProject(project) },
          el("span", { class: "choice-name" }, project.name),
          el("span", { class: "choice-meta" },
            project.banned ? "You are banned from this project" : describe(project)))));
    }
    showIdle();
    show($("more-projects"), Boolean(body.next_cursor));
    $("who").textContent = "Signed in as a worker";
    return body.projects;
  }

  function listable(project) { return project.has_tasks || project.banned; }

  function kind(project) { return project.type || "categorical"; }

  function describe(project) {
    if (kind(project) === "numeric") {
      const { min, max } = project.scale;
      return "A number from " + min + " to " + max;
    }
    if (kind(project) === "pairwise") return "Which of two is better";
    return (kind(project) === "multilabel" ? "Any of: " : "") + project.labels.join(" · ");
  }

  function showIdle() {
    const n = state.idle;
    const listed = $("project-list").querySelectorAll("button").length;
    $("idle-note").textContent = !n ? "" : (listed ? "Not shown: " : "") +
      (n === 1 ? "1 project has" : n + " projects have") + " nothing left for you to label " +
      "right now. Check again later, or ask your requester for more tasks.";
    show($("idle-note"), n > 0);
  }

  function showProjects(empty) {
    stopTimers();
    show($("work"), false);
    show($("projects"), true);
    if (empty && !$("project-list").children.length) {
      $("project-list").append(el("li", {}, "No project is open to you yet. Ask your requester."));
    }
    const first = $("project-list").querySelector("button");
    (first || $("projects-title")).focus();
    history.replaceState(null, "", window.location.pathname);
  }

  function openProject(project) {
    state.project = project;
    history.replaceState(null, "", window.location.pathname + "?project=" + project.id);
    $("project-name").textContent = project.name;
    document.title = project.name + " · Label tasks · crowd";
    $("answer-buttons").replaceChildren(...controls(project));
    $("hint").replaceChildren(...hint(project));
    show($("projects"), false);
    show($("work"), true);
    fetchTask();
  }

  /* The answer controls of the project's type. */
  function controls(project) {
    const type = kind(project);
    if (type === "multilabel") {
      const boxes = project.labels.map((label, i) => el("label", { class: "check" },
        el("input", { type: "checkbox", "data-label": label,
          "aria-keyshortcuts": i < 9 ? String(i + 1) : null }),
        i < 9 ? el("kbd", {}, String(i + 1)) : null, " ", label));
      return [el("fieldset", { class: "checks" }, el("legend", {}, "Tick every label that applies"),
        ...boxes),
        el("button", { type: "button", id: "submit-answer", class: "label-button",
          "aria-keyshortcuts": "Enter", onclick: submitLabels }, "Submit ", el("kbd", {}, "Enter"))];
    }
    if (type === "numeric") {
      const { min, max, step } = project.scale;
      const stepAttr = step === null || step === undefined ? "any" : String(step);
      const slider = el("input", { type: "range", id: "value-slider", min, max, step: stepAttr,
        "aria-label": "Value from " + min + " to " + max });
      const number = el("input", { type: "number", id: "value-field", min, max, step: stepAttr,
        "aria-label": "Value", required: "" });
      slider.addEventListener("input", () => { number.value = slider.value; });
      number.addEventListener("input", () => { slider.value = number.value; });
      const form = el("form", { class: "scale", id: "value-form", novalidate: "" },
        el("span", { class: "muted" }, String(min)), slider, el("span", { class: "muted" }, String(max)),
        number,
        el("button", { type: "submit", class: "label-button", id: "submit-answer" },
          "Submit ", el("kbd", {}, "Enter")));
      form.addEventListener("submit", (event) => { event.preventDefault(); submitValue(); });
      return [form];
    }
    if (type === "pairwise") {
      const sides = [
        ["left", "← Left", "ArrowLeft"],
        ["right", "Right →", "ArrowRight"],
        ...(project.ties ? [["tie", "Tie ", "T"]] : []),
      ];
      return sides.map(([winner, text, key]) => el("button", {
        type: "button", class: "label-button", "data-winner": winner, "aria-keyshortcuts": key,
        onclick: () => send({ winner }, winner === "tie" ? "a tie" : winner),
      }, text, key === "T" ? el("kbd", {}, "T") : null));
    }
    return project.labels.map((label, i) => el("button", {
      type: "button",
      class: "label-button",
      "data-label": label,
      "aria-keyshortcuts": i < 9 ? String(i + 1) : null,
      onclick: () => answer(label),
    }, i < 9 ? el("kbd", {}, String(i + 1)) : null, " ", label));
  }

  function hint(project) {
    const k = (text) => el("kbd", {}, text);
    const type = kind(project);
    if (type === "multilabel") {
      return ["Keys: ", k("1"), "–", k("9"), " tick or untick a label, ", k("Enter"),
        " submits, ", k("S"), " skips. The next task appears on its own."];
    }
    if (type === "numeric") {
      return ["Set the value with the slider or type it, then ", k("Enter"), " submits; ",
        k("S"), " skips (outside the number field)."];
    }
    if (type === "pairwise") {
      return ["Keys: ", k("←"), " the left item is better, ", k("→"), " the right one",
        ...(project.ties ? [", ", k("T"), " a tie"] : []), ", ", k("S"), " skips."];
    }
    return ["Keys: ", k("1"), "–", k("9"), " choose a label, ", k("Enter"), " confirms a " +
      "model's proposal, ", k("S"), " skips. The next task appears on its own."];
  }

  function submitLabels() {
    const ticked = [...$("answer-buttons").querySelectorAll("input[type=checkbox]:checked")]
      .map((box) => box.dataset.label);
    send({ labels: ticked }, ticked.length ? ticked.join(", ") : "no label");
  }

  function submitValue() {
    const field = $("value-field");
    const { min, max, step } = state.project.scale;
    const value = Number(field.value);
    const onStep = step === null || step === undefined ||
      Math.abs((value - min) / step - Math.round((value - min) / step)) < 1e-9;
    if (field.value === "" || !Number.isFinite(value) || value < min || value > max || !onStep) {
      status("Enter a number from " + min + " to " + max +
        (step ? " in steps of " + step : "") + ".");
      field.focus();
      return;
    }
    send({ value }, String(value));
  }

  /* Reset the controls for a new task: nothing ticked, the slider mid-scale, no number. */
  function resetControls() {
    for (const box of $("answer-buttons").querySelectorAll("input[type=checkbox]")) box.checked = false;
    const slider = $("value-slider");
    if (slider) {
      const { min, max, step } = state.project.scale;
      let mid = (min + max) / 2;
      if (step) mid = min + Math.round((mid - min) / step) * step;
      slider.value = String(mid);
      $("value-field").value = "";
    }
  }

  /* Reserve the next task: 201 shows it, 204 means none is left, 403 banned says why. */
  async function fetchTask() {
    stopTimers();
    setBusy(true);
    try {
      const response = await api(state.token, "POST",
        "/api/v1/projects/" + state.project.id + "/assignments");
      if (response.status === 204) showNotice("none");
      else showTask(response.body, response.date);
    } catch (err) {
      handleError(err, fetchTask);
    } finally {
      setBusy(false);
    }
  }

  function answer(label) { return send({ label }, label); }

  /* Send an answer (its type's field) and show the next task. */
  async function send(fields, text) {
    if (state.busy || !state.assignment) return;
    const id = state.assignment.assignment_id;
    setBusy(true);
    stopTimers();
    try {
      const response = await retrying(() => api(state.token, "POST",
        "/api/v1/assignments/" + id + "/answer", { ...fields, next: true }));
      status("Saved “" + text + "”.");
      if (response.body.next) showTask(response.body.next, response.date);
      else {
        state.assignment = null;
        setBusy(false);
        await fetchTask();  // tells "nothing left" from "banned"
      }
    } catch (err) {
      handleError(err, fetchTask);
    } finally {
      setBusy(false);
    }
  }

  async function skip() {
    if (state.busy || !state.assignment) return;
    const id = state.assignment.assignment_id;
    setBusy(true);
    stopTimers();
    try {
      await retrying(() => api(state.token, "POST", "/api/v1/assignments/" + id + "/skip"));
      status("Skipped.");
      state.assignment = null;
      setBusy(false);
      await fetchTask();
    } catch (err) {
      handleError(err, fetchTask);
    } finally {
      setBusy(false);
    }
  }

  /* Network errors and 503 are retried (an answer sent twice is stored once). */
  async function retrying(call) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!(err.status === 0 || err.status === 503) || attempt >= 4) throw err;
        status("The server did not answer; trying again…");
        await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
      }
    }
  }

  function handleError(err, again) {
    if (!(err instanceof ApiError)) throw err;
    if (err.code === "banned") showNotice("banned", err.message);
    else if (err.status === 401) failSignIn(err);
    else if (err.status === 409) {
      status("That reservation had ended (" + err.message + "); here is a new task.");
      state.assignment = null;
      setTimeout(again, 0);
    } else if (err.status === 404) showNotice("gone", err.message);
    else if (err.status === 422 && state.assignment) {
      status(err.message);  // the task stays: answer it again
      state.timer = setInterval(tick, 1000);
    }
    else showNotice("error", err.message);
  }

  function showTask(reservation, serverDate) {
    state.assignment = reservation;
    const task = reservation.task;
    // Count down against the server's clock: the Date header, when it has one.
    const serverNow = serverDate ? Date.parse(serverDate) : Date.now();
    const left = Date.parse(reservation.expires_at) - (Number.isNaN(serverNow) ? Date.now() : serverNow);
    state.deadline = performance.now() + Math.max(0, left);
    $("task-id").textContent = task.external_id;
    $("task-data").replaceChildren(...(kind(state.project) === "pairwise"
      ? renderPair(task) : renderData(task)));
    resetControls();
    showProposal(reservation);
    show($("notice"), false);
    show($("task-area"), true);
    tick();
    state.timer = setInterval(tick, 1000);
    $("task-heading").focus();
  }

  /* The review lane: the model's proposed label is pre-selected; Enter confirms it, another
     label corrects it. A blind task's reservation has no proposal, so none is shown. */
  function showProposal(reservation) {
    const proposed = reservation.lane === "review" && reservation.proposal
      ? reservation.proposal.label : null;
    for (const button of $("answer-buttons").querySelectorAll("button")) {
      const on = button.dataset.label === proposed;
      button.classList.toggle("proposed", on);
      if (on) button.setAttribute("aria-pressed", "true");
      else button.removeAttribute("aria-pressed");
    }
    if (proposed === null) {
      $("proposal").replaceChildren();
      show($("proposal"), false);
      return;
    }
    $("proposal").replaceChildren("A model proposes “", el("strong", {}, proposed),
      "”. Press ", el("kbd", {}, "Enter"), " to confirm it, or choose another label to correct it.");
    show($("proposal"), true);
  }

  function proposedLabel() {
    const r = state.assignment;
    return r && r.lane === "review" && r.proposal ? r.proposal.label : null;
  }

  /* A pairwise task: its two items side by side, each with its own data. */
  function renderPair(task) {
    const side = (name, title) => {
      const item = (task.data || {})[name] || {};
      return el("section", { class: "pair-item", "data-side": name, "aria-label": title },
        el("h3", {}, title),
        ...renderData({ external_id: task.external_id + " " + name, data: item.data || {} }));
    };
    return [el("div", { class: "pair" }, side("left", "Left"), side("right", "Right"))];
  }

  function renderData(task) {
    // Stored JSON keeps no key order, so show images first, then text, then nested values.
    const isImage = ([field, value]) => typeof value === "string" && (IMAGE_URL.test(value.trim()) ||
      (IMAGE_FIELD.test(field) && /^https?:\/\//i.test(value.trim())));
    const rank = (entry) => (isImage(entry) ? 0 : typeof entry[1] === "object" && entry[1] !== null ? 2 : 1);
    const entries = Object.entries(task.data || {}).sort((a, b) => rank(a) - rank(b));
    if (!entries.length) return [el("p", { class: "muted" }, "This task has no data fields.")];
    return entries.map(([field, value]) => {
      if (isImage([field, value])) {
        return el("figure", { class: "field image" },
          el("img", { src: value.trim(), alt: field + " of task " + task.external_id, loading: "eager" }),
          el("figcaption", {}, field));
      }
      const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
      return el("div", { class: "field" },
        el("div", { class: "field-name" }, field),
        el(typeof value === "object" && value !== null ? "pre" : "div", { class: "field-value" }, text));
    });
  }

  function tick() {
    const left = Math.round((state.deadline - performance.now()) / 1000);
    if (left <= 0) {
      stopTimers();
      status("Time ran out for this task; fetching the next one.");
      state.assignment = null;
      fetchTask();
      return;
    }
    const minutes = Math.floor(left / 60);
    const seconds = String(left % 60).padStart(2, "0");
    $("timer").textContent = "Reserved for you for " + minutes + ":" + seconds;
    $("timer").classList.toggle("urgent", left <= 30);
  }

  function showNotice(kind, message) {
    stopTimers();
    state.assignment = null;
    show($("task-area"), false);
    const texts = {
      none: ["No task left", "There is no task for you in this project right now. " +
        "This page checks again every " + RECHECK_MS / 1000 + " seconds."],
      banned: ["You are banned from this project", message],
      gone: ["This project is not open to you", message],
      error: ["Something went wrong", message],
    };
    if (kind !== "none") status("");
    $("notice-title").textContent = texts[kind][0];
    $("notice-text").textContent = texts[kind][1];
    $("notice").className = "panel notice " + kind;
    show($("check-again"), kind === "none" || kind === "error");
    show($("notice"), true);
    $("notice-title").focus();
    if (kind === "none") state.recheck = setTimeout(fetchTask, RECHECK_MS);
  }

  function setBusy(busy) {
    state.busy = busy;
    for (const button of document.querySelectorAll(
      "#answer-buttons button, #answer-buttons input, #skip")) {
      button.disabled = busy;
    }
    $("work").setAttribute("aria-busy", busy ? "true" : "false");
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || !state.assignment) return;
    const target = event.target;
    const type = kind(state.project);
    const checkbox = target && target.tagName === "INPUT" && target.type === "checkbox";
    if (target && !checkbox && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" ||
        target.isContentEditable)) return;
    if (type === "multilabel" && /^[1-9]$/.test(event.key)) {
      const box = $("answer-buttons").querySelectorAll("input[type=checkbox]")[Number(event.key) - 1];
      if (box && !box.disabled) { event.preventDefault(); box.checked = !box.checked; }
    } else if (type === "multilabel" && event.key === "Enter" && target.tagName !== "BUTTON") {
      event.preventDefault();
      submitLabels();
    } else if (type === "pairwise" && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      event.preventDefault();
      const winner = event.key === "ArrowLeft" ? "left" : "right";
      send({ winner }, winner);
    } else if (type === "pairwise" && (event.key === "t" || event.key === "T")) {
      if (state.project.ties) { event.preventDefault(); send({ winner: "tie" }, "a tie"); }
    } else if (type === "numeric" && event.key === "Enter" && target.tagName !== "BUTTON") {
      event.preventDefault();
      submitValue();
    } else if (type === "categorical" && /^[1-9]$/.test(event.key)) {
      const label = state.project.labels[Number(event.key) - 1];
      if (label !== undefined) { event.preventDefault(); answer(label); }
    } else if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      skip();
    } else if (type === "categorical" && event.key === "Enter" && target.tagName !== "BUTTON" &&
        proposedLabel() !== null) {
      // (Enter on a focused button presses that button, as everywhere.)
      event.preventDefault();
      answer(proposedLabel());
    }
  });

  $("skip").addEventListener("click", skip);
  $("check-again").addEventListener("click", fetchTask);
  $("change-project").addEventListener("click", () => {
    stopTimers();
    reloadProjects().then((projects) => showProjects(projects.length === 0),
      (err) => (err.status === 401 ? failSignIn(err) : status(err.message)));
  });
  $("more-projects").addEventListener("click", () => loadProjects().catch((err) => status(err.message)));
  $("signout").addEventListener("click", signOut);
  Crowd.signInForm($("signin-form"), $("signin-token"), KEY, start);

  // A #token= link opened while the page is already open only changes the fragment: sign in
  // with that token now (the reservation on screen is left to expire, as on Change project).
  window.addEventListener("hashchange", () => {
    const before = state.token;
    const token = Crowd.takeToken(KEY);
    if (token && token !== before) {
      stopTimers();
      state.assignment = null;
      show($("work"), false);
      start(token);
    }
  });

  const token = Crowd.takeToken(KEY);
  if (token) start(token);
  else show($("signin"), true);
})();
