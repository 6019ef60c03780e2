/* The requester's project list: each project links to its dashboard. */
"use strict";

(() => {
  const { api, el, show, fmtTime } = Crowd;
  const KEY = "crowd.requester_token";
  const $ = (id) => document.getElementById(id);
  let token = null;
  let cursor = null;

  function signOut() {
    sessionStorage.removeItem(KEY);
    token = null;
    $("who").textContent = "";
    show($("signout"), false);
    show($("projects"), false);
    show($("signin"), true);
    $("signin-token").focus();
  }

  async function start(value) {
    token = value;
    cursor = null;
    $("project-rows").replaceChildren();
    $("signin-error").textContent = "";
    try {
      await loadMore();
      show($("signin"), false);
      show($("signout"), true);
      show($("projects"), true);
      $("who").textContent = "Signed in as a requester";
    } catch (err) {
      sessionStorage.removeItem(KEY);
      show($("signin"), true);
      $("signin-error").textContent = Crowd.signInMessage(err, "requester");
      $("signin-token").focus();
    }
  }

  async function loadMore() {
    const query = cursor ? "&cursor=" + encodeURIComponent(cursor) : "";
    const { body } = await api(token, "GET", "/api/v1/projects?limit=100" + query);
    cursor = body.next_cursor;
    for (const p of body.projects) {
      $("project-rows").append(el("tr", {},
        el("th", { scope: "row" }, el("a", { href: "/dashboard/projects/" + p.id }, p.name)),
        el("td", {}, p.labels.join(", ")),
        el("td", { class: "num" }, p.overlap + (p.max_overlap > p.overlap ? "–" + p.max_overlap : "")),
        el("td", {}, p.method),
        el("td", { class: "num" }, p.last_run_id === null ? "–" : "#" + p.last_run_id),
        el("td", {}, fmtTime(p.created_at))));
    }
    show($("no-projects"), $("project-rows").children.length === 0);
    show($("more-projects"), Boolean(cursor));
  }

  $("more-projects").addEventListener("click", () => loadMore().catch((err) => {
    $("status").textContent = err.message;
  }));
  $("signout").addEventListener("click", signOut);
  Crowd.signInForm($("signin-form"), $("signin-token"), KEY, start);
  const stored = Crowd.takeToken(KEY);
  if (stored) start(stored);
  else show($("signin"), true);
})();
