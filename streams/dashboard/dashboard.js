// The customer-operations page: polls the worker's JSON views and renders them, charts as
// inline SVG drawn here (no library, no network). Every number is also kept raw in data-value
// (chart points and bars too), so a test can compare it with the API.
"use strict";

// The API token, when the worker has one: asked for once (on the first 401) and kept in this
// variable only, never in the URL, a cookie or web storage; a reload asks again.
let token = "";
const params = new URLSearchParams(location.search);
const refreshMs = Number(params.get("refresh") || 2000);
const FIGURES_EVERY_MS = 30000; // /kpis asks every worker of the store: polled less often
let refreshes = 0;
let figuresAt = 0;
let timer = null;
let timezone = "UTC";

class Unauthorized extends Error {}
class NotFound extends Error {}

// ------------------------------------------------------------------ plain words

const GROUPS = ["new_visitor", "returning_visitor", "customer", "lapsed"];
const PATHS = ["touch→purchase", "touch→seed→purchase", "repurchase"];
const WORDS = {
  new_visitor: "new visitors", returning_visitor: "returning visitors, never bought",
  customer: "customers", lapsed: "lapsed customers",
  "touch→purchase": "bought on the first visit", "touch→seed→purchase": "came back, then bought",
  repurchase: "bought again", cart: "carts", browse: "browsing", holdout: "control (not sent)",
  treatment: "sent",
  recommendation: "recommendation", discount_trigger: "discount",
  complements_after_purchase: "complements of a purchase",
  downsell_after_browse: "a mid-priced alternative after browsing",
  discount_after_abandonment: "a discount after an abandonment",
  replenishment: "time to restock", favourites_repurchase: "favourites",
  popular_in_category: "popular in a category", recall_returning: "welcome back (never bought)",
  win_back: "win back a lapsed customer",
};
const ONE = { new_visitor: "new visitor", returning_visitor: "returning visitor, never bought", customer: "customer", lapsed: "lapsed customer" };
const STAGES = { touch: "first contact", seed: "showed interest", purchase: "bought once", repurchase: "bought again" };
const COLORS = { new_visitor: "#2f6db5", returning_visitor: "#e08a1e", customer: "#2a9d5c", lapsed: "#9b59b6", orders: "#1d2733" };
const words = (key) => WORDS[key] || key;

// ------------------------------------------------------------------ numbers and tables

function show(el, value, format) {
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  if (value === null || value === undefined) el.textContent = "–";
  else if (format === "percent") el.textContent = (100 * value).toFixed(1) + "%";
  else if (format === "money") el.textContent = Number(value).toFixed(2);
  else el.textContent = String(value);
}

function cell(row, id, value, format) {
  const td = row.insertCell();
  if (id) td.id = id;
  td.className = "num";
  show(td, value, format);
  return td;
}

// a text cell; `aside`: a smaller second line (the technical name of a plain-worded label)
function text(row, value, aside) {
  const td = row.insertCell();
  td.textContent = value;
  if (aside) {
    const small = document.createElement("small");
    small.textContent = aside;
    td.append(" ", small);
  }
  return td;
}

function rows(tableId, entries, render) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren();
  for (const entry of entries) render(body.insertRow(), ...entry);
}

const ratio = (part, whole) => (whole ? Math.round((10000 * part) / whole) / 10000 : null);

function when(seconds) {
  if (!seconds) return "–";
  const options = { dateStyle: "medium", timeStyle: "short", timeZone: timezone };
  try { return new Date(seconds * 1000).toLocaleString("en-GB", options); }
  catch { return new Date(seconds * 1000).toISOString(); }
}

// ------------------------------------------------------------------ SVG charts

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, parent, label) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (label !== undefined) el.textContent = label;
  if (parent) parent.appendChild(el);
  return el;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value);
}

function legend(series) {
  const div = document.createElement("div");
  div.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    item.style.setProperty("--color", s.color);
    item.textContent = s.label;
    div.appendChild(item);
  }
  return div;
}

// One line per series over the x labels; points carry data-series, data-period, data-value.
function lineChart(id, labels, series) {
  const [W, H, L, R, T, B] = [720, 240, 44, 40, 10, 34];
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "svg-chart", role: "img" });
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const x = (i) => L + (labels.length < 2 ? (W - L - R) / 2 : (i * (W - L - R)) / (labels.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }, root);
    svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, root, Number.isInteger(v) ? v : v.toFixed(1));
  }
  const step = Math.ceil(labels.length / 8);
  labels.forEach((label, i) => {
    if (i % step === 0) svg("text", { x: x(i), y: H - B + 18, "text-anchor": "middle" }, root, label);
  });
  for (const s of series) {
    const g = svg("g", { class: "series", "data-series": s.name }, root);
    const points = s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
    svg("polyline", { points, fill: "none", stroke: s.color, "stroke-width": 2.5, "stroke-dasharray": s.dashed ? "6 4" : "none" }, g);
    s.values.forEach((v, i) => {
      const dot = svg("circle", { cx: x(i), cy: y(v), r: 3.5, fill: s.color, "data-period": labels[i], "data-value": v }, g);
      svg("title", {}, dot, `${s.label}, ${labels[i]}: ${v}`);
    });
  }
  if (!labels.length) svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, root, "no activity in this range");
  document.getElementById(id).replaceChildren(root, legend(series));
}

// Horizontal bars, one per entry {key, label, value}; bars carry data-key and data-value. Drawn
// at their pixel size (not stretched to the panel), so the labels keep the page's font size.
function barChart(id, entries, format, labelW = 200) {
  const [W, rowH] = [labelW + 300, 26];
  const H = Math.max(1, entries.length) * rowH + 6;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "svg-chart bars", role: "img" });
  const max = Math.max(0, ...entries.map((e) => e.value)) || 1;
  entries.forEach((e, i) => {
    const top = 3 + i * rowH;
    svg("text", { x: labelW - 8, y: top + rowH / 2 + 4, "text-anchor": "end" }, root, e.label);
    const width = (240 * e.value) / max;
    svg("rect", { x: labelW, y: top + 4, width, height: rowH - 8, fill: e.color || "#2f6db5", "data-key": e.key, "data-value": e.value }, root);
    const shown = format === "percent" ? (100 * e.value).toFixed(1) + "%" : String(e.value);
    svg("text", { x: labelW + width + 6, y: top + rowH / 2 + 4 }, root, shown);
  });
  document.getElementById(id).replaceChildren(root);
}

// ------------------------------------------------------------------ right now: /segments

function renderSegments(view) {
  const parts = view.partitions || [];
  document.getElementById("partitions").textContent = parts.join(", ") || "none";
  document.getElementById("coverage").textContent = parts.length
    ? `"Right now" counts the customers this worker looks after (${parts.length} part${parts.length > 1 ? "s" : ""} of the store's customers); "Over time" counts the whole store, whichever worker serves this page.`
    : "This worker looks after no customers at the moment; \"Over time\" still counts the whole store.";
  for (const el of document.querySelectorAll("[data-kpi]")) {
    const key = el.dataset.kpi;
    show(el, view[key], el.dataset.format || (key === "revenue" || key === "average_order_value" ? "money" : ""));
  }
  const segments = GROUPS.map((s) => [s, view.segments[s] || 0]);
  show(document.querySelector("[data-segment=lapsed]"), view.segments.lapsed || 0);
  rows("segments", segments, (row, name, n) => { text(row, words(name)); cell(row, "segment-" + name, n); });
  barChart("segments-chart", segments.map(([key, value]) => ({ key, value, label: words(key), color: COLORS[key] })));
  const byPath = view.orders_by_path || {};
  const paths = [...PATHS, ...Object.keys(byPath).filter((p) => !PATHS.includes(p))]
    .filter((p) => p in byPath).map((p) => [p, byPath[p]]);
  rows("paths", paths, (row, name, n) => { text(row, words(name), name); cell(row, "path-" + name, n); });
  rows("abandonment", Object.entries(view.abandonment || {}), (row, kind, a) => {
    text(row, words(kind));
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
    text(row, strategy.replaceAll("_", " "));
    text(row, words(arm));
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
  barChart("conversion-chart", entries.map(([strategy, arm, r]) => ({
    key: strategy + "-" + arm, label: strategy.replaceAll("_", " ") + ", " + words(arm),
    value: r.conversion_rate || 0, color: arm === "holdout" ? "#9aa5b1" : "#2f6db5",
  })), "percent", 330);
}

// ------------------------------------------------------------------ over time: /kpis

function rangeQuery() {
  const query = new URLSearchParams({ period: document.getElementById("range-period").value });
  const from = document.getElementById("range-from").value;
  const to = document.getElementById("range-to").value;
  if (from) query.set("from", from);
  if (to) query.set("to", to);
  return query;
}

// The selected periods added up: counts only (a rate of sums, never a sum of rates).
function totals(periods) {
  const t = { orders: 0, revenue: 0, fired: 0, recovered: 0, lapsed_visitors: 0, paths: Object.fromEntries(PATHS.map((p) => [p, 0])) };
  for (const p of periods) {
    t.orders += p.all.orders;
    t.revenue += p.all.revenue;
    t.fired += p.abandonment.all.fired;
    t.recovered += p.abandonment.all.recovered;
    t.lapsed_visitors += p.groups.lapsed.visitors;
    for (const path of PATHS) t.paths[path] += p.orders_by_path[path] || 0;
  }
  t.revenue = Math.round(100 * t.revenue) / 100;
  t.repurchase_share = ratio(t.paths.repurchase, t.orders);
  t.recovery_rate = ratio(t.recovered, t.fired);
  return t;
}

function renderFigures(body, period) {
  const periods = body[period] || [];
  timezone = body.timezone || timezone;
  document.getElementById("timezone").textContent = timezone;
  document.getElementById("kpi-partitions").textContent = (body.partitions || []).join(", ") || "none";
  for (const el of document.querySelectorAll(".period-word")) el.textContent = period;
  document.getElementById("range-shown").textContent = periods.length
    ? `${periods.length} ${period}${periods.length > 1 ? "s" : ""} with activity, ${periods[0].first_day} to ${periods.at(-1).last_day} (store time, ${timezone})`
    : "no activity in this range";

  const t = totals(periods);
  for (const el of document.querySelectorAll("[data-range]")) show(el, t[el.dataset.range], el.dataset.format);
  const latest = periods.at(-1);
  document.getElementById("latest-period").textContent = latest ? latest.period : "the latest period";
  const latestFigures = latest ? {
    ...Object.fromEntries(GROUPS.map((g) => ["conversion-" + g, latest.groups[g].conversion_rate])),
    "repurchase-rate": latest.repurchase_rate.rate,
    "recall-rate": latest.recall.rate,
    "recall-conversion": latest.recall.conversion_rate,
  } : {};
  for (const el of document.querySelectorAll("[data-latest]")) show(el, latestFigures[el.dataset.latest], el.dataset.format);

  const labels = periods.map((p) => p.period);
  lineChart("trend-chart", labels, [
    ...GROUPS.map((g) => ({ name: g, label: words(g), color: COLORS[g], values: periods.map((p) => p.groups[g].visitors) })),
    { name: "orders", label: "orders", color: COLORS.orders, dashed: true, values: periods.map((p) => p.all.orders) },
  ]);
  const pathColors = ["#2f6db5", "#e08a1e", "#2a9d5c"];
  barChart("path-chart", PATHS.map((key, i) => ({ key, label: words(key), value: t.paths[key], color: pathColors[i] })));

  rows("periods", periods.map((p) => [p]), (row, p) => {
    text(row, p.period);
    cell(row, null, p.all.visitors);
    cell(row, null, p.all.buyers);
    cell(row, null, p.all.orders);
    cell(row, null, p.all.revenue, "money");
    for (const g of GROUPS) cell(row, null, p.groups[g].conversion_rate, "percent");
    cell(row, null, p.repurchase_rate.rate, "percent");
    cell(row, null, p.recall.rate, "percent");
    cell(row, null, p.abandonment.all.recovery_rate, "percent");
  });
}

async function refreshFigures() {
  const query = rangeQuery();
  const body = await getJson("/kpis?" + query);
  renderFigures(body, query.get("period"));
  figuresAt = Date.now();
}

document.getElementById("range").addEventListener("submit", (event) => {
  event.preventDefault();
  figuresAt = 0; // the next refresh asks for the new range
  schedule(0);
});

// ------------------------------------------------------------------ customer lookup

function renderCustomer(body) {
  const p = body.profile || {};
  show(document.getElementById("customer-stage"), STAGES[p.stage] || p.stage);
  document.getElementById("customer-stage").dataset.value = p.stage || "";
  show(document.getElementById("customer-segment"), ONE[p.segment] || p.segment);
  document.getElementById("customer-segment").dataset.value = p.segment || "";
  show(document.getElementById("customer-sessions"), p.sessions);
  show(document.getElementById("customer-orders"), p.orders);
  show(document.getElementById("customer-spend"), p.total_spend, "money");
  show(document.getElementById("customer-aov"), p.average_order_value, "money");
  const favourite = (p.favourite_categories || []).join(", ") || "none yet";
  document.getElementById("customer-summary").textContent =
    `${body.customer_key}: first seen ${when(p.first_seen)}, last seen ${when(p.last_seen)}, ` +
    `last order ${when(p.last_order_at)}. Favourite categories: ${favourite}; ` +
    `price band: ${p.price_band || "–"}; tags: ${(p.tags || []).map((t) => t.replaceAll("_", " ")).join(", ") || "none"}.`;

  // the journey day by day, newest first: how they came and what they bought
  const days = Object.entries((body.journey || {}).activity || {}).sort().reverse().slice(0, 10);
  rows("customer-days", days, (row, day, d) => {
    row.dataset.day = day;
    text(row, day);
    text(row, ONE[d[0]] || d[0]);
    cell(row, null, d[2]);
    cell(row, null, d[3], "money");
    const paths = PATHS.map((path, i) => [path, d[4 + i]]).filter(([, n]) => n > 0);
    text(row, paths.map(([path, n]) => words(path) + (n > 1 ? " ×" + n : "")).join(", ") || "–");
  });
  const items = [
    ...(p.recent_views || []).slice(-5).reverse().map((v) => `viewed ${v.product_id} (${v.category}) on ${when(v.at)}`),
    ...(p.cart || []).map((c) => `in the cart: ${c.quantity} × ${c.product_id} at ${Number(c.unit_price).toFixed(2)}`),
    ...(p.recently_purchased || []).slice(-5).reverse().map((b) => `bought ${b.product_id} on ${when(b.at)}`),
  ];
  document.getElementById("customer-products").replaceChildren(...items.map((line) => {
    const li = document.createElement("li");
    li.textContent = line;
    return li;
  }));
  // the latest decisions for this customer, newest first: sent, or held out (the control group)
  const decisions = (body.decisions || []).slice(0, 8);
  document.getElementById("customer-recommendations").replaceChildren(
    ...(decisions.length ? decisions : [null]).map((d) => {
      const li = document.createElement("li");
      if (d === null) {
        li.textContent = "no recommendation or discount decided for this customer yet";
        return li;
      }
      li.dataset.decision = d.id;
      const how = d.sent_as ? `sent as a ${words(d.sent_as)}` : d.arm === "holdout" ? "held out (control group)" : "not sent";
      li.textContent = `${when(d.at)}: ${words(d.strategy)}, ${how}`;
      return li;
    }),
  );
  document.getElementById("customer").hidden = false;
}

document.getElementById("lookup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const id = document.getElementById("lookup-id").value.trim();
  const anonymous = document.getElementById("lookup-anonymous").checked;
  const message = document.getElementById("lookup-message");
  message.textContent = "";
  try {
    renderCustomer(await getJson("/customers/" + encodeURIComponent(id) + (anonymous ? "?anonymous=1" : "")));
  } catch (err) {
    document.getElementById("customer").hidden = true;
    if (err instanceof Unauthorized) askForToken();
    else message.textContent = err instanceof NotFound ? `no customer with id ${id}` : String(err);
  }
});

// ------------------------------------------------------------------ token and polling

async function getJson(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  if (response.status === 401) throw new Unauthorized(path + ": HTTP 401");
  if (response.status === 404) throw new NotFound(path + ": HTTP 404");
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
    if (Date.now() - figuresAt >= FIGURES_EVERY_MS) await refreshFigures();
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
