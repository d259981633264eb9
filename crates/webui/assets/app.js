// ChocoMiner dashboard: polls /api/summary every second and shows it. No libraries, no other
// server: the charts are drawn here as SVG.
"use strict";

const POLL_MS = 1000;
const TIMEOUT_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let lastUpdate = null; // when the figures shown were read (ms since the epoch)

// 12.3, 456, 12.3 k, 4.56 M: short enough for a projector.
function fmtRate(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + " G";
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e8 ? 0 : a >= 1e7 ? 1 : 2) + " M";
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + " k";
  if (a >= 100) return v.toFixed(0);
  return v.toFixed(1);
}
function fmtCount(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return Math.abs(v) >= 1e6 ? fmtRate(v) : Math.round(v).toLocaleString("en-US");
}
const fmtShare = (s) => (s === null || s === undefined ? "–" : Math.round(s * 100) + " %");
const clock = (ms) => new Date(ms).toLocaleTimeString("en-GB", { hour12: false });

// Sets an element's text and the raw value the tests read.
function show(id, value, text) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  return el;
}
function bar(id, share) {
  const el = $(id);
  const s = Math.max(0, Math.min(1, share || 0));
  el.style.width = (s * 100).toFixed(1) + "%";
  el.classList.toggle("high", s >= 0.9);
}
function el(name, attrs, parent, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  parent.appendChild(node);
  return node;
}
// 1, 2, 5, 10, 20, 50, ... at or above v.
function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// One series, one value per second, the newest last: an area (or bars) with its axes.
function drawChart(svg, values, bars) {
  const w = svg.clientWidth || 600, h = svg.clientHeight || 170;
  const left = 58, right = 8, top = 10, bottom = 22;
  const n = values.length;
  const max = niceMax(Math.max(1, ...values));
  const pw = w - left - right, ph = h - top - bottom;
  const x = (i) => left + (pw * i) / Math.max(1, n - 1);
  const y = (v) => top + ph * (1 - v / max);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  for (const f of [0, 0.5, 1]) {
    el("line", { class: "grid", x1: left, x2: w - right, y1: y(max * f), y2: y(max * f) }, svg);
    el("text", { class: "axis", x: left - 6, y: y(max * f) + 4, "text-anchor": "end" }, svg, fmtRate(max * f));
  }
  const minutes = Math.floor((n - 1) / 60);
  for (let m = 0; m <= minutes; m++) {
    const i = n - 1 - m * 60;
    const anchor = m === 0 ? "end" : m === minutes && i === 0 ? "start" : "middle";
    el("text", { class: "axis", x: x(i), y: h - 4, "text-anchor": anchor }, svg, m === 0 ? "now" : `−${m} min`);
  }
  if (bars) {
    const bw = Math.max(1, pw / n - 0.5);
    values.forEach((v, i) => {
      if (v > 0) el("rect", { class: "bar", x: x(i) - bw / 2, y: y(v), width: bw, height: y(0) - y(v) }, svg);
    });
  } else if (n > 1) {
    const line = values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join("");
    el("path", { class: "area", d: `${line}L${x(n - 1)},${y(0)}L${x(0)},${y(0)}Z` }, svg);
    el("path", { class: "line", d: line }, svg);
  }
}

function renderStage(name, stage, unitRate) {
  show(`${name}-rate`, stage.rate, fmtRate(stage.rate));
  const n = stage.instances.length;
  show(`${name}-instances`, n, `${n} instance${n === 1 ? "" : "s"}`);
  const names = $(`${name}-names`);
  names.textContent = stage.instances.join(", ");
  names.title = names.textContent;
  if (unitRate !== undefined) show(`${name}-nuggets`, unitRate, fmtRate(unitRate));
}

function renderNuggets(nuggets) {
  const body = $("nuggets-body");
  body.replaceChildren();
  if (!nuggets.length) {
    const tr = body.insertRow();
    tr.className = "empty";
    const td = tr.insertCell();
    td.colSpan = 5;
    td.textContent = "no nuggets yet";
    return;
  }
  for (const nugget of nuggets) {
    const tr = body.insertRow();
    tr.dataset.testid = "nugget-row";
    tr.insertCell().textContent = clock(nugget.time_ms);
    tr.insertCell().textContent = nugget.instance;
    tr.insertCell().textContent = nugget.zero_bits;
    // The digest with its leading zero hex digits highlighted: that is what makes a nugget.
    const digest = tr.insertCell();
    digest.className = "hex";
    digest.dataset.testid = "nugget-digest";
    const zeros = Math.floor(nugget.zero_bits / 4);
    const z = document.createElement("span");
    z.className = "zeros";
    z.textContent = nugget.digest.slice(0, zeros);
    digest.append(z, nugget.digest.slice(zeros));
    const number = tr.insertCell();
    number.className = "hex";
    number.textContent = nugget.number.slice(0, 12) + "…";
    number.title = nugget.number;
  }
}

function render(s) {
  const rate = show("hashes-rate", s.hashes_per_s, fmtRate(s.hashes_per_s));
  rate.dataset.windowStartMs = s.spans.window_start_ms;
  rate.dataset.windowEndMs = s.spans.window_end_ms;
  show("nuggets-rate", s.nuggets_per_s, fmtRate(s.nuggets_per_s));
  show("nuggets-total", s.totals.nuggets, fmtCount(s.totals.nuggets)).title = String(s.totals.nuggets);
  show("hashes-total", s.totals.hashes, fmtCount(s.totals.hashes)).title = String(s.totals.hashes);
  const lost = s.totals.lost;
  show("lost-total", lost, lost > 0 ? `(${fmtCount(lost)} number${lost === 1 ? "" : "s"} lost)` : "");

  drawChart($("chart-hashes"), s.series.hashes, false);
  drawChart($("chart-nuggets"), s.series.nuggets, true);

  const { rng, hasher, worker } = s.stages;
  renderStage("rng", rng);
  renderStage("hasher", hasher);
  renderStage("worker", worker, s.nuggets_per_s);
  show("rng-limit", rng.rate_limit, rng.rate_limit === null ? "none"
    : `${fmtRate(rng.rate_limit)}/s, ${fmtShare(rng.rate_limit > 0 ? rng.rate / rng.rate_limit : null)} used`);
  show("rng-fill", rng.window_fill, fmtShare(rng.window_fill));
  bar("rng-fill-bar", rng.window_fill);
  show("hasher-busy", hasher.busy, fmtShare(hasher.busy));
  bar("hasher-busy-bar", hasher.busy);
  show("hasher-fill", hasher.window_fill, fmtShare(hasher.window_fill));
  bar("hasher-fill-bar", hasher.window_fill);

  const b = s.bottleneck;
  for (const name of ["rng", "hasher", "worker"]) {
    const card = $(`stage-${name}`);
    card.classList.toggle("bottleneck", !!b && b.stage === name);
    card.dataset.bottleneck = String(!!b && b.stage === name);
  }
  const verdict = $("bottleneck");
  verdict.dataset.stage = b ? b.stage : "";
  verdict.replaceChildren();
  if (b) {
    const strong = document.createElement("strong");
    strong.textContent = `Bottleneck: ${b.stage}`;
    verdict.append(strong, ` — ${b.reason}.`);
  } else {
    verdict.textContent = "No stage is saturated right now.";
  }
  renderNuggets(s.nuggets);

  const idle = !rng.instances.length && !hasher.instances.length && !worker.instances.length;
  const notice = $("notice");
  notice.hidden = !idle;
  notice.textContent = idle ? "No stage has written stats in the last seconds: is the pipeline running? (just up)" : "";

  const updated = $("updated");
  updated.textContent = `updated ${clock(s.spans.now_ms)} · rates over ${clock(s.spans.window_start_ms)}–${clock(s.spans.window_end_ms)}`;
  updated.dataset.nowMs = s.spans.now_ms;
  lastUpdate = s.spans.now_ms;
  $("source").textContent = `InfluxDB ${s.influx_url}, database ${s.db}`;
}

function showError(message) {
  const error = $("error");
  const detail = document.createElement("small");
  detail.textContent = lastUpdate === null ? "Retrying every second; no figures yet."
    : `Retrying every second; the figures below are from ${clock(lastUpdate)}.`;
  error.replaceChildren(message, document.createElement("br"), detail);
  error.hidden = false;
  document.body.classList.add("stale");
  if (lastUpdate === null) $("updated").textContent = "no figures yet";
}

async function poll() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  try {
    const response = await fetch("/api/summary", { cache: "no-store", signal: abort.signal });
    let data;
    try {
      data = await response.json();
    } catch (e) {
      throw new Error(`HTTP ${response.status} from /api/summary, not JSON`);
    }
    if (data.ok) {
      render(data);
      $("error").hidden = true;
      document.body.classList.remove("stale");
    } else {
      showError(data.error || `HTTP ${response.status} from /api/summary`);
      if (data.influx_url) $("source").textContent = `InfluxDB ${data.influx_url}, database ${data.db}`;
    }
  } catch (e) {
    showError(`The dashboard server at ${location.host} does not answer (${e.message}); retrying.`);
  } finally {
    clearTimeout(timer);
    document.body.classList.remove("loading");
    setTimeout(poll, POLL_MS);
  }
}

poll();
