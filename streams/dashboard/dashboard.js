// The customer-operations page: polls the worker's JSON views and renders them.
// Every number is also kept raw in data-value, so a test can compare it with the API.
"use strict";

// The API token, when the worker has one: asked for once (on the first 401) and kept in this
// variable only, never in the URL, a cookie or web storage; a reload asks again.
let token = "";
const params = new URLSearchParams(location.search);
const refreshMs = Number(params.get("refresh") || 2000);
const charts = {};
let refreshes = 0;
let timer = null;

class Unauthorized extends Error {}

function show(el, value, format) {
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  if (value === null || value === undefined) el.textContent = "–";
  else if (format === "percent") el.textContent = (100 * value).toFixed(1) + "%";
  else if (format === "money") el.textContent = Number(value).toFixed(2);
  else el.textContent = String(value);
}

function cell(row, id, value, format) {
  const td = row.insertCell();
  td.id = id;
  td.className = "num";
  show(td, value, format);
  return td;
}

function rows(tableId, entries, render) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren();
  for (const entry of entries) render(body.insertRow(), ...entry);
}

function bars(id, labels, values) {
  const data = { labels, series: [values] };
  if (charts[id]) charts[id].update(data);
  else charts[id] = new Chartist.BarChart("#" + id, data, {
    axisY: { onlyInteger: true }, chartPadding: { left: 10 },
  });
}

function renderSegments(view) {
  document.getElementById("partitions").textContent = (view.partitions || []).join(", ") || "none";
  for (const el of document.querySelectorAll("[data-kpi]")) {
    const key = el.dataset.kpi;
    show(el, view[key], el.dataset.format || (key === "revenue" || key === "average_order_value" ? "money" : ""));
  }
  const segments = ["new_visitor", "returning_visitor", "customer"].map((s) => [s, view.segments[s] || 0]);
  rows("segments", segments, (row, name, n) => { row.insertCell().textContent = name; cell(row, "segment-" + name, n); });
  bars("segments-chart", segments.map((s) => s[0]), segments.map((s) => s[1]));
  const paths = Object.entries(view.orders_by_path || {}).sort();
  rows("paths", paths, (row, name, n) => { row.insertCell().textContent = name; cell(row, "path-" + name, n); });
  bars("paths-chart", paths.map((p) => p[0]), paths.map((p) => p[1]));
  rows("abandonment", Object.entries(view.abandonment || {}), (row, kind, a) => {
    row.insertCell().textContent = kind;
    cell(row, "abandoned-" + kind, a.abandoned);
    cell(row, "recovered-" + kind, a.recovered);
    cell(row, "recovery-rate-" + kind, a.recovery_rate, "percent");
  });
}

function renderExperiments(report) {
  const entries = [];
  for (const [strategy, arms] of Object.entries(report.strategies || {}))
    for (const [arm, r] of Object.entries(arms)) entries.push([strategy, arm, r]);
  rows("experiments", entries, (row, strategy, arm, r) => {
    const id = strategy + "-" + arm;
    row.insertCell().textContent = strategy;
    row.insertCell().textContent = arm;
    cell(row, "decided-" + id, r.decided);
    cell(row, "converted-" + id, r.converted);
    cell(row, "rate-" + id, r.conversion_rate, "percent");
    cell(row, "revenue-" + id, r.revenue, "money");
    const td = cell(row, "uplift-" + id, r.uplift ? r.uplift.absolute : null, "percent");
    if (r.uplift) {
      td.textContent += " (" + (100 * r.uplift.ci_low).toFixed(1) + "% … " + (100 * r.uplift.ci_high).toFixed(1) + "%)";
      td.dataset.ciLow = r.uplift.ci_low;
      td.dataset.ciHigh = r.uplift.ci_high;
      if (r.uplift.significant) td.classList.add("significant");
    }
  });
  const labels = entries.map((e) => e[0] + " / " + e[1]);
  bars("conversion-chart", labels, entries.map((e) => 100 * (e[2].conversion_rate || 0)));
}

async function getJson(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  if (response.status === 401) throw new Unauthorized(path + ": HTTP 401");
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(refresh, ms);
}

function askForToken() {
  const login = document.getElementById("login");
  document.getElementById("login-message").textContent = token
    ? "the worker refused this token"
    : "this worker needs its API token (JOURNEYSTREAM_API_TOKEN)";
  login.hidden = false;
  document.getElementById("token").focus();
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  token = input.value.trim();
  input.value = "";
  document.getElementById("login").hidden = true;
  schedule(0);
});

async function refresh() {
  const error = document.getElementById("error");
  try {
    const [view, report] = await Promise.all([getJson("/segments"), getJson("/experiments")]);
    renderSegments(view);
    renderExperiments(report);
    refreshes += 1;
    document.getElementById("refreshes").textContent = String(refreshes);
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    error.hidden = true;
    schedule(refreshMs);
  } catch (err) {
    if (err instanceof Unauthorized) {
      askForToken(); // polling resumes when a token is entered
      return;
    }
    error.textContent = String(err);
    error.hidden = false;
    schedule(refreshMs);
  }
}

refresh();
