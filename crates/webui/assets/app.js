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
// A no-break space: "100 %" stays on one line.
const fmtShare = (s) => (s === null || s === undefined ? "–" : Math.round(s * 100) + "\u00a0%");
const clock = (ms) => new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
// A time of day, with the date when it is not today's.
function since(ms, nowMs) {
  const d = new Date(ms);
  if (d.toDateString() === new Date(nowMs).toDateString()) return clock(ms);
  return d.toLocaleDateString("en-GB", { day: "numeric", month: "short" }) + " " + clock(ms).slice(0, 5);
}
// Batches in a window, rounded: the figures are averages over the rate window's seconds, but a
// batch is whole, and "17.8/32" puzzles a class (the exact value stays in data-in-flight).
const fmtBatches = (v) => (v === null || v === undefined ? "–" : String(Math.round(v)));
// A difficulty range of one second: "4", or "4–23" while workers of both run.
const fmtRange = (r) => (r.min === r.max ? String(r.min) : `${r.min}–${r.max}`);
// "4", "4 and 23", "4, 20 and 23".
function fmtList(values) {
  const v = values.map(String);
  return v.length <= 1 ? v.join("") : `${v.slice(0, -1).join(", ")} and ${v[v.length - 1]}`;
}

// Leading zero bits of a hex digest: 4 per zero digit, then those of the first other digit.
function leadingZeroBits(hex) {
  let bits = 0;
  for (const c of hex) {
    const v = parseInt(c, 16);
    if (Number.isNaN(v)) break;
    if (v !== 0) return bits + Math.clz32(v) - 28;
    bits += 4;
  }
  return bits;
}

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

// One series, one value per second, the newest last, null where there is no data: an area
// (or bars) with its axes, no line where there is no data, and a dashed marker where the
// difficulty changed.
function drawChart(svg, series, values, bars) {
  const w = svg.clientWidth || 600, h = svg.clientHeight || 170;
  const left = 58, right = 8, top = 10, bottom = 22;
  const n = values.length;
  const known = values.filter((v) => v !== null);
  const max = niceMax(Math.max(1, ...known));
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
  // Every minute where there is room for its label, every other one (or fewer) on a narrow chart.
  const every = Math.max(1, Math.ceil(56 / ((pw * 60) / Math.max(1, n - 1))));
  for (let m = 0; m <= minutes; m += every) {
    const i = n - 1 - m * 60;
    const anchor = m === 0 ? "end" : m === minutes && i === 0 ? "start" : "middle";
    el("text", { class: "axis", x: x(i), y: h - 4, "text-anchor": anchor }, svg, m === 0 ? "now" : `−${m} min`);
  }

  // Runs of seconds with data, and the gaps between them.
  const runs = [], gaps = [];
  let from = 0;
  for (let i = 1; i <= n; i++) {
    if (i < n && (values[i] === null) === (values[from] === null)) continue;
    (values[from] === null ? gaps : runs).push([from, i - 1]);
    from = i;
  }
  for (const [a, b] of gaps) {
    if (b - a >= 20) {
      el("text", { class: "nodata", "data-testid": "no-data", x: (x(a) + x(b)) / 2, y: top + ph / 2, "text-anchor": "middle" }, svg, "no data");
    }
  }
  if (bars) {
    const bw = Math.max(1, pw / n - 0.5);
    values.forEach((v, i) => {
      if (v > 0) el("rect", { class: "bar", x: x(i) - bw / 2, y: y(v), width: bw, height: y(0) - y(v) }, svg);
    });
  } else {
    for (const [a, b] of runs) {
      if (a === b) {
        el("circle", { class: "dot", cx: x(a), cy: y(values[a]), r: 2.5 }, svg);
        continue;
      }
      let line = "";
      for (let i = a; i <= b; i++) line += `${i > a ? "L" : "M"}${x(i).toFixed(1)},${y(values[i]).toFixed(1)}`;
      el("path", { class: "area", d: `${line}L${x(b).toFixed(1)},${y(0)}L${x(a).toFixed(1)},${y(0)}Z` }, svg);
      el("path", { class: "line", d: line }, svg);
    }
  }
  svg.dataset.runs = runs.length;
  svg.dataset.seconds = known.length;

  (series.difficulty_changes || []).forEach((change, k) => {
    const i = Math.round((change.time_ms - series.start_ms) / series.step_ms);
    if (i < 0 || i >= n) return;
    const g = el("g", { class: "change", "data-testid": "difficulty-change", "data-time-ms": change.time_ms }, svg);
    el("line", { x1: x(i), x2: x(i), y1: top, y2: top + ph }, g);
    const end = x(i) > left + pw * 0.6;
    el("text", { x: x(i) + (end ? -4 : 4), y: top + 11 + (k % 2) * 14, "text-anchor": end ? "end" : "start" }, g,
      `difficulty ${fmtRange(change.from)} → ${fmtRange(change.to)}`);
  });
}

// A stage's window of unacknowledged batches: "3/8", with the share on its bar.
function renderWindow(name, stage) {
  const fill = show(`${name}-fill`, stage.window_fill,
    stage.window === null ? "–" : `${fmtBatches(stage.in_flight)}/${fmtBatches(stage.window)}`);
  fill.dataset.inFlight = stage.in_flight ?? "";
  fill.dataset.window = stage.window ?? "";
  bar(`${name}-fill-bar`, stage.window_fill);
}

// Batches a stage holds because no instance of the next one listens.
function renderWaiting(name, stage, next) {
  const waiting = stage.waiting || 0;
  const line = show(`${name}-waiting`, stage.waiting, waiting > 0
    ? `waiting for a ${next} to come back: ${fmtCount(waiting)} batch${waiting === 1 ? "" : "es"} waiting, no ${next} listens` : "");
  line.hidden = !(waiting > 0);
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

// The first digits of a digest in bits, its leading zero bits highlighted, into `cell`:
// "0000 0000 00" + "11" for 10 zero bits (digest 003…).
function renderBits(cell, digest) {
  const zeros = leadingZeroBits(digest);
  const digits = digest.slice(0, Math.min(digest.length, Math.floor(zeros / 4) + 1));
  const bits = [...digits].map((c) => parseInt(c, 16).toString(2).padStart(4, "0")).join("");
  const grouped = (from, to) => {
    let text = "";
    for (let i = from; i < to; i++) text += (i > 0 && i % 4 === 0 ? " " : "") + bits[i];
    return text;
  };
  const z = document.createElement("span");
  z.className = "zero-bits";
  z.dataset.count = zeros;
  z.textContent = grouped(0, zeros);
  const rest = document.createElement("span");
  rest.textContent = grouped(zeros, bits.length) + "…";
  cell.append(z, rest);
  cell.dataset.zeroBits = zeros;
  cell.title = `${zeros} leading zero bits: the first ${digits.length} hex digit${digits.length === 1 ? "" : "s"} (${digits}) in bits`;
}

// A digest with its leading zero bits marked: the zero hex digits, then the digit in which the
// zero bits end (its first zeros % 4 bits are zero), marked apart.
function renderDigest(cell, digest) {
  const zeros = leadingZeroBits(digest);
  const whole = Math.floor(zeros / 4), partial = zeros % 4;
  const z = document.createElement("span");
  z.className = "zeros";
  z.textContent = digest.slice(0, whole);
  cell.append(z);
  if (partial > 0) {
    const digit = digest[whole];
    const p = document.createElement("span");
    p.className = "partial";
    p.textContent = digit;
    p.title = `${digit} = ${parseInt(digit, 16).toString(2).padStart(4, "0")}: its first ${partial} bit${partial === 1 ? "" : "s"} zero`;
    cell.append(p);
  }
  cell.append(digest.slice(whole + (partial > 0 ? 1 : 0)));
}

function renderNuggets(nuggets) {
  const body = $("nuggets-body");
  body.replaceChildren();
  if (!nuggets.length) {
    const tr = body.insertRow();
    tr.className = "empty";
    const td = tr.insertCell();
    td.colSpan = 6;
    td.textContent = "no nuggets yet";
    return;
  }
  for (const nugget of nuggets) {
    const tr = body.insertRow();
    tr.dataset.testid = "nugget-row";
    tr.insertCell().textContent = clock(nugget.time_ms);
    tr.insertCell().textContent = nugget.instance;
    tr.insertCell().textContent = nugget.zero_bits;
    // The leading zero bits are what makes a nugget: shown bit by bit, and on the digest.
    const bits = tr.insertCell();
    bits.className = "hex bits";
    bits.dataset.testid = "nugget-bits";
    renderBits(bits, nugget.digest);
    const digest = tr.insertCell();
    digest.className = "hex";
    digest.dataset.testid = "nugget-digest";
    renderDigest(digest, nugget.digest);
    const number = tr.insertCell();
    number.className = "hex";
    number.textContent = nugget.number.slice(0, 8) + "…";
    number.title = nugget.number;
  }
}

// The nugget records not listed because no worker wrote them as they stand (forged, copied,
// stamped ahead): one quiet line saying how many and why.
function renderRefused(refused) {
  const count = refused ? refused.count : 0;
  const reasons = count ? refused.reasons.map((r) => `${fmtCount(r.count)} ${r.what}`).join(", ") : "";
  const line = show("nuggets-refused", count,
    count ? `${fmtCount(count)} nugget record${count === 1 ? "" : "s"} refused: ${reasons}` : "");
  line.hidden = count === 0;
}

// The difficulty in force, and the nuggets found at it: nuggets at different difficulties
// are not comparable, so the tile counts only those at the difficulty shown, since it began.
function renderDifficulty(s) {
  const d = s.difficulty;
  const running = s.stages.worker.instances.length > 0;
  const inForce = d.in_force;
  const shown = inForce.length ? inForce : !running && d.last !== null ? [d.last] : [];
  const tile = show("difficulty", inForce.join(","), shown.length ? shown.join(" / ") : "–");
  tile.dataset.inForce = String(inForce.length > 0);
  tile.classList.toggle("past", !inForce.length);
  let note;
  if (inForce.length === 1) {
    note = `1 nugget per ${fmtCount(Math.pow(2, inForce[0]))} hashes on average`;
  } else if (inForce.length > 1) {
    note = `the workers differ (${fmtList(inForce)}): changing?`;
  } else if (running) {
    note = "not reported by the workers";
  } else {
    note = shown.length ? "the last run's; no worker runs" : "no worker has run";
  }
  $("difficulty-note").textContent = note;
  const at = shown.length ? `at difficulty ${fmtList(shown)}` : "";
  $("nuggets-rate-note").textContent = running ? at : "";

  const totals = d.totals;
  const now = s.spans.now_ms;
  if (totals.length) {
    const nuggets = totals.reduce((sum, t) => sum + t.nuggets, 0);
    const value = show("nuggets-total", nuggets, fmtCount(nuggets));
    value.dataset.difficulty = totals.map((t) => t.difficulty).join(",");
    value.title = totals.map((t) => `${fmtCount(t.nuggets)} nuggets in ${fmtCount(t.hashes)} hashes at difficulty ${t.difficulty}`).join("; ");
    $("nuggets-total-note").textContent = totals.map((t) =>
      (totals.length > 1 ? `${fmtCount(t.nuggets)} ` : "") +
      `at difficulty ${t.difficulty}` + (t.since_ms === null ? "" : ` since ${since(t.since_ms, now)}`)).join(", ");
  } else {
    // No difficulty known: all the nuggets there are, saying so.
    const value = show("nuggets-total", s.totals.nuggets, fmtCount(s.totals.nuggets));
    value.dataset.difficulty = "";
    value.title = String(s.totals.nuggets);
    $("nuggets-total-note").textContent = "in all runs, any difficulty";
  }
}

// The lesson: which step the running stack is at, what the last scale did, what to try next.
const STAGES = ["rng", "hasher", "worker"];
// "1 rng · 1 hasher · 10 workers".
const fmtCounts = (c) => STAGES.map((name) => `${c[name]} ${name}${c[name] === 1 ? "" : "s"}`).join(" · ");
// The lesson's texts are fragments, as `chocominer status` prints them ("add a worker: does the
// rate go up?"): on the page, sentences. A stage's name stays as it is spelt ("rng makes…").
function sentence(text) {
  if (!text) return "";
  const first = text.split(/[ :]/)[0];
  const t = STAGES.includes(first) ? text : text.charAt(0).toUpperCase() + text.slice(1);
  return /[.?!]$/.test(t) ? t : t + ".";
}
// A command into `el`, an option and its value kept on one line ("--scale worker=10") when it
// wraps. Plain spaces between the words: copied, it runs as it is.
function renderCommand(el, command) {
  el.replaceChildren();
  const words = command ? command.split(" ") : [];
  for (let i = 0; i < words.length; i++) {
    let group = words[i];
    if (group.startsWith("-") && !group.includes("=") && i + 1 < words.length && !words[i + 1].startsWith("-")) {
      group += " " + words[++i];
    }
    const span = document.createElement("span");
    span.className = "word";
    span.textContent = group;
    el.append(...(el.childNodes.length ? [" ", span] : [span]));
  }
  el.dataset.value = command || "";
}
// Text into `el`, with what is between backticks as code.
function withCode(el, text) {
  el.replaceChildren();
  text.split("`").forEach((part, i) => {
    if (i % 2) {
      const code = document.createElement("code");
      code.textContent = part;
      el.append(code);
    } else {
      el.append(part);
    }
  });
}

function renderLesson(s) {
  const l = s.lesson, step = l.step;
  const panel = $("lesson");
  panel.dataset.step = step.id;
  panel.dataset.discovery = String(s.discovery);
  $("lesson-discovery").hidden = !s.discovery;
  show("lesson-number", step.number, step.number > 0 ? `step ${step.number} of ${step.of}`
    : step.id === "starting" ? "before the lesson" : "off the lesson's path");
  const pips = $("lesson-pips");
  pips.replaceChildren();
  for (let i = 1; i <= step.of; i++) {
    const pip = document.createElement("span");
    pip.className = i < step.number ? "done" : i === step.number ? "now" : "";
    pips.append(pip);
  }
  $("lesson-title").textContent = step.title;
  $("lesson-counts").textContent = `running: ${fmtCounts(l.counts)}`;
  withCode($("lesson-expect"), sentence(step.expect));

  // Before → after: the rate just before the last change of instances, and once the figures
  // hold only seconds after it, the rate since; until then a countdown, not a rate that still
  // mixes both.
  const change = l.change, box = $("lesson-change");
  box.dataset.state = !change ? "none" : change.rate_after === null ? "settling" : "settled";
  if (!change) {
    $("lesson-scaled").textContent = "no scale seen since the dashboard started; the rate now:";
    show("lesson-rate-before", null, "");
    show("lesson-rate-after", s.hashes_per_s, fmtRate(s.hashes_per_s));
    show("lesson-factor", null, "");
  } else {
    const scaled = STAGES.filter((name) => change.from[name] !== change.to[name])
      .map((name) => `${name} ${change.from[name]} → ${change.to[name]}`).join(", ");
    $("lesson-scaled").textContent = `${scaled} at ${clock(change.at_ns / 1e6)}`;
    show("lesson-rate-before", change.rate_before, fmtRate(change.rate_before));
    if (change.rate_after === null) {
      const left = Math.max(0, Math.ceil((l.settles_at_ms - s.spans.now_ms) / 1000));
      show("lesson-rate-after", null, `settling… ${left} s`).title =
        "The rates cover the last seconds: the rate after is shown once they are all after the change.";
      show("lesson-factor", null, "");
    } else {
      show("lesson-rate-after", change.rate_after, fmtRate(change.rate_after)).title = "";
      const factor = change.rate_before > 0 ? change.rate_after / change.rate_before : null;
      show("lesson-factor", factor, factor === null ? "" : `×${factor.toFixed(1)}`);
    }
  }

  // Next: the command in its three spellings, or, past the last step, the way to Kubernetes.
  const next = step.next;
  const bridge = step.id === "more_hashers" && !next;
  $("lesson-next-title").textContent = bridge ? "Next: from one machine to a cluster" : "Next";
  const why = $("lesson-why");
  why.hidden = bridge;
  withCode(why, sentence(step.why_next));
  const list = $("lesson-bridge");
  list.hidden = !bridge;
  list.replaceChildren();
  if (bridge) {
    for (const part of step.why_next.split("; ")) {
      const li = document.createElement("li");
      li.className = "bridge-item";
      withCode(li, sentence(part));
      list.append(li);
    }
  }
  $("lesson-commands").hidden = !next;
  for (const spelling of ["just", "compose", "kubectl"]) {
    renderCommand($(`lesson-${spelling}`), next ? next[spelling] : "");
  }
  $("lesson-probes").hidden = !step.probes.length;
  const probes = $("lesson-probe-list");
  probes.replaceChildren();
  for (const probe of step.probes) {
    const code = document.createElement("code");
    code.textContent = probe;
    probes.append(code, " ");
  }
}

function render(s) {
  const rate = show("hashes-rate", s.hashes_per_s, fmtRate(s.hashes_per_s));
  rate.dataset.windowStartMs = s.spans.window_start_ms;
  rate.dataset.windowEndMs = s.spans.window_end_ms;
  show("nuggets-rate", s.nuggets_per_s, fmtRate(s.nuggets_per_s));
  renderDifficulty(s);
  const t = s.totals;
  show("hashes-total", t.hashes, fmtCount(t.hashes)).title = String(t.hashes);
  const covered = show("totals-note", t.since_ms, t.since_ms === null ? "in all runs"
    : `in all runs since ${since(t.since_ms, s.spans.now_ms)} · ${fmtCount(t.nuggets)} nuggets at any difficulty`);
  covered.title = "Everything the database holds, whatever the profile or difficulty of each run.";
  const lost = t.lost;
  show("lost-total", lost, lost > 0 ? `(${fmtCount(lost)} number${lost === 1 ? "" : "s"} lost)` : "");
  const forged = t.forged;
  show("forged-total", forged, forged > 0 ? `(${fmtCount(forged)} forged refused)` : "").title =
    "Nugget candidates the workers refused: their digest was not their number's hash.";

  drawChart($("chart-hashes"), s.series, s.series.hashes, false);
  drawChart($("chart-nuggets"), s.series, s.series.nuggets, true);

  const { rng, hasher, worker } = s.stages;
  renderStage("rng", rng);
  renderStage("hasher", hasher);
  renderStage("worker", worker, s.nuggets_per_s);
  show("rng-limit", rng.rate_limit, rng.rate_limit === null ? "none"
    : `${fmtRate(rng.rate_limit)}/s, ${fmtShare(rng.rate_limit > 0 ? rng.rate / rng.rate_limit : null)} used`);
  renderWindow("rng", rng);
  renderWaiting("rng", rng, "hasher");
  show("hasher-busy", hasher.busy, fmtShare(hasher.busy));
  bar("hasher-busy-bar", hasher.busy);
  renderWindow("hasher", hasher);
  renderWaiting("hasher", hasher, "worker");
  // Workers that do not report how busy they are (older ones) leave the line out.
  const workerBusy = worker.busy ?? null;
  $("worker-busy-row").hidden = workerBusy === null;
  show("worker-busy", workerBusy, fmtShare(workerBusy));
  bar("worker-busy-bar", workerBusy);

  const b = s.bottleneck;
  for (const name of ["rng", "hasher", "worker"]) {
    const card = $(`stage-${name}`);
    card.classList.toggle("bottleneck", !!b && b.stage === name);
    card.dataset.bottleneck = String(!!b && b.stage === name);
  }
  const verdict = $("bottleneck");
  verdict.dataset.stage = b ? b.stage : "";
  verdict.dataset.discovery = String(s.discovery);
  verdict.replaceChildren();
  if (s.discovery) {
    // The server named none; saying "no stage is saturated" would be a hint, and a wrong one.
    const strong = document.createElement("strong");
    strong.textContent = "Discovery mode:";
    verdict.append(strong, " the dashboard names no bottleneck. Which stage holds the others back? Read their figures above, or probe each one.");
  } else if (b) {
    const strong = document.createElement("strong");
    strong.textContent = `Bottleneck: ${b.stage}`;
    verdict.append(strong, ` — ${b.reason}.`);
  } else {
    verdict.textContent = "No stage is saturated right now.";
  }
  renderLesson(s);
  renderNuggets(s.nuggets);
  renderRefused(s.nuggets_refused);

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
