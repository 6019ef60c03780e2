/* Shared helpers of the crowd pages: the token, API calls, and building DOM nodes safely.
 * No framework and no build step; every page loads this file first. */
"use strict";

const Crowd = (() => {
  /* Take a token from the URL fragment (#token=...) into sessionStorage under `key`, and
   * remove it from the address bar. Returns the token now stored, or null. */
  function takeToken(key) {
    const params = new URLSearchParams(window.location.hash.slice(1));
    const fromUrl = params.get("token");
    if (fromUrl) {
      sessionStorage.setItem(key, fromUrl.trim());
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", window.location.pathname + window.location.search +
        (rest ? "#" + rest : ""));
    }
    return sessionStorage.getItem(key);
  }

  /* An error from the API: HTTP status, the API's error code and its message. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /* Call the JSON API. Resolves to {status, body, date}; rejects with ApiError for 4xx/5xx
   * (status 0 when the server could not be reached). */
  async function api(token, method, path, body) {
    const headers = { Authorization: "Bearer " + token, Accept: "application/json" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", "the server could not be reached; check the connection");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (err) { data = null; }
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || "http_" + response.status,
        error.message || response.statusText || "request failed");
    }
    return { status: response.status, body: data, date: response.headers.get("Date") };
  }

  /* Build an element: el("p", {class: "x", onclick: f}, "text", child, ...). Text is always
   * set as text, never parsed as HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(node, visible) { node.hidden = !visible; }

  function fmtInt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en"); }

  function fmtPct(x, digits = 1) {
    return x === null || x === undefined ? "–" : (100 * x).toFixed(digits) + "%";
  }

  function fmtTime(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return d.toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" });
  }

  /* The sign-in error for a token the API refused (`err`, an ApiError): an unknown token
   * (401), one of another role than the page's `role` ("requester" or "worker", 403), or
   * the API's own message. */
  function signInMessage(err, role) {
    if (err.status === 401) return "That token is not known. Check that it was copied whole.";
    if (err.status === 403) {
      return role === "worker"
        ? "That is not a worker token. The labelling page needs the token of a worker."
        : "The dashboard needs a requester or admin token.";
    }
    return err.message;
  }

  /* Wire a sign-in form: on submit, store the token under `key` and call onToken(token). */
  function signInForm(form, input, key, onToken) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      sessionStorage.setItem(key, token);
      input.value = "";
      onToken(token);
    });
  }

  return { takeToken, ApiError, api, el, show, fmtInt, fmtPct, fmtTime, signInMessage, signInForm };
})();
