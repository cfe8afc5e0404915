// gemgate console. Every change is a call to the admin API — the same routes scripts use —
// carried by the session's cookie and its CSRF token (X-CSRF-Token). Values are written with
// textContent only, never as HTML. No inline script anywhere: the CSP allows this file alone.
"use strict";

const csrf = document.querySelector('meta[name="csrf"]')?.content || "";
const words = document.getElementById("words")?.dataset || {};

function flash(text, ok) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = text;
  box.className = ok ? "ok" : "problem";
  box.hidden = !text;
}

async function call(method, url, body) {
  const answer = await fetch(url, {
    method, credentials: "same-origin",
    headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json",
              "Accept-Language": document.documentElement.lang},
    body: body === undefined ? undefined : JSON.stringify(body)});
  let data = {};
  try { data = await answer.json(); } catch (e) { /* an empty or non-JSON answer */ }
  if (!answer.ok) {
    const error = data.error || {};
    throw new Error([error.message, error.hint].filter(Boolean).join(" — ") || answer.statusText);
  }
  return data;
}

// A form's fields as the admin API's JSON: data-kind says how to read a field.
function bodyOf(form) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name) continue;
    const kind = field.dataset.kind || "text";
    let value = field.type === "checkbox" ? field.checked : field.value.trim();
    if (kind === "number") value = value === "" ? null : Number(value);
    else if (kind === "list") value = value === "" ? [] : value.split(/[\s,]+/).filter(Boolean);
    else if (kind === "lines") value = field.value.split(/\r?\n/);
    else if (kind === "optional") { if (value === "") continue; }
    else if (kind === "nullable") value = value === "" ? null : value;
    body[field.name] = value;
  }
  return body;
}

// The page's content again, from the server, without a reload (what a change altered).
async function refresh() {
  const answer = await fetch(location.href, {credentials: "same-origin"});
  const fresh = new DOMParser().parseFromString(await answer.text(), "text/html")
    .getElementById("content");
  const here = document.getElementById("content");
  if (fresh && here) here.replaceWith(fresh);
}

function showResults(target, results) {
  const table = document.querySelector(target);
  if (!table) return;
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const result of results) {
    const row = body.insertRow();
    row.className = "result";
    const verdict = result.verdict || (result.works ? "works" : result.state);
    for (const [name, text] of [["key", result.key], ["verdict", verdict],
                                ["hint", result.hint || ""]]) {
      const cell = row.insertCell();
      cell.className = name;
      cell.textContent = text;
    }
  }
  table.hidden = false;
}

function showSecret(secret) {
  const box = document.getElementById("secret-box");
  document.getElementById("new-secret").textContent = secret;
  box.hidden = false;
}

async function act(element, method, url, body) {
  if (element.dataset.confirm && !window.confirm(element.dataset.confirm)) return;
  element.disabled = true;
  document.body.dataset.settled = "no";  // tests (and people) can tell an action is under way
  try {
    const data = await call(method, url, body);
    if (data.secret) showSecret(data.secret);
    if (data.results && element.dataset.results) showResults(element.dataset.results, data.results);
    flash(words.done || "Done", true);
    await refresh();
  } catch (error) {
    flash(error.message, false);
  } finally {
    element.disabled = false;
    document.body.dataset.settled = "yes";
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.dataset.api) return;
  event.preventDefault();
  act(form, form.dataset.method || "POST", form.dataset.api, bodyOf(form));
});

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-api]");
  if (button) {
    event.preventDefault();
    act(button, button.dataset.method || "POST", button.dataset.api, undefined);
    return;
  }
  const copy = event.target.closest("button[data-copy]");
  if (copy) {
    const text = document.querySelector(copy.dataset.copy)?.textContent || "";
    const done = () => { copy.textContent = words.copied || "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => selectText(copy.dataset.copy));
    } else {
      selectText(copy.dataset.copy);
      done();
    }
  }
});

function selectText(selector) {
  const range = document.createRange();
  range.selectNodeContents(document.querySelector(selector));
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  document.execCommand("copy");
}

// Live figures: one small JSON call every few seconds, none while the tab is hidden.
function poll(region) {
  const every = Number(region.dataset.every || 5) * 1000;
  const fill = async () => {
    if (document.hidden) return;
    try {
      const data = await call("GET", region.dataset.live);
      for (const field of region.querySelectorAll("[data-field]")) {
        const value = field.dataset.field.split(".").reduce((v, k) => (v == null ? v : v[k]), data);
        field.textContent = value == null ? "–" : typeof value === "object"
          ? Object.entries(value).map(([k, v]) => `${k} × ${v}`).join(", ") || "–"
          : String(value);
      }
    } catch (error) { /* the next round tries again */ }
  };
  fill();
  setInterval(fill, every);
}

document.querySelectorAll("[data-live]").forEach(poll);
