// Tracker live view: map, current values and charts of one rider, kept current by Server-Sent Events.
//
// Data flow: GET /api/watch/USER/config names the fields and the map tiles; GET /api/watch/USER/samples
// fills the chosen time window (the server downsamples long windows), then an EventSource on
// /api/watch/USER/events delivers every committed write. Samples are kept in one array sorted by time,
// so late or out-of-order samples simply fall into place; the map, values and charts are redrawn from
// it at most once per animation frame.
//
// The pieces: watch/samples.js and watch/fields.js (pure logic, tested with Node), watch/map.js,
// watch/charts.js and watch/stream.js; this module wires them to the page.
//
// Everything a user can type (usernames, labels) reaches the page through textContent only.
import { createCharts } from "./watch/charts.js";
import { fieldsFromConfig, formatDuration, panelRows, wantedKeys } from "./watch/fields.js";
import { createMapOrNone } from "./watch/map.js";
import {
  SLIDING_WINDOWS,
  accessProblem,
  chartRange,
  clockOffsetMs,
  dropBefore,
  drawnSamples,
  inWindow,
  insertSample,
  latestValues,
  msToNsString,
  nearestFix,
  newestMs,
  parseWindow,
  staleValues,
  streamStatus,
  windowBounds,
  windowQuery,
} from "./watch/samples.js";
import { createStream } from "./watch/stream.js";
import { RouteProgress } from "./watch/route.js";
import { rollingTables } from "./watch/rolling.js";
import { rideSummary, summaryRows } from "./watch/summary.js";

const formatAgo = window.TrackerCommon.formatAgo;
const params = new URLSearchParams(location.search);
const user = decodeURIComponent(location.pathname.replace(/^\/watch\//, "").split("/")[0] || "");
const token = params.get("token");
// How long without a new sample before the badge says "last sample ... ago": the server's one
// definition of live (config.live_within_seconds) once the config is in; ?stale= (seconds) for tests.
const staleOverride = params.get("stale");
let staleMs = positiveNumber(staleOverride, 60) * 1000;
const MAX_POINTS = 2000;
const apiBase = "/api/watch/" + encodeURIComponent(user);
const tokenQuery = token ? "?token=" + encodeURIComponent(token) : "";

// What tests (and curious people in the console) can read; updated as things happen.
const state = (window.trackerState = {
  user: user,
  window: "10m",
  status: "connecting",
  statusText: "connecting",
  connected: false,
  markerLatLng: null, // where the marker is drawn now (moves during a glide)
  markerTarget: null, // the newest fix: where the marker is going
  heading: null,
  accuracy: null,
  follow: true, // the window's whole route kept in view, until the viewer pans
  viewBounds: null, // what the map shows: [[south, west], [north, east]]
  lastSampleTime: null, // ms since epoch of the newest sample seen (never after the moment it was seen)
  heldBack: 0, // samples ahead of now, not drawn until their time comes
  clockOffset: 0, // ms the server's clock is ahead of this browser's (0 within 2 s)
  sampleCount: 0,
  trackPointCount: 0,
  chartPoints: {},
  values: {},
  downsampled: false,
  loads: 0,
  eventsReceived: 0,
  resets: 0,
  lastEventId: null,
  error: null,
  linkEnded: null, // "revoked" or "expired": the share link this page was opened with ended
  staleValues: {},
  tilesFailed: 0,
  mapFailed: false, // the map library did not load: no map, everything else works
  devices: [], // [{device: name or null, last_sample_ns}], newest first
  summary: {}, // {elapsed: "15:00", distance: "5.00 km", ...}: the window's ride summary as shown
  rolling: {}, // {hr_bpm: {"3 s": [last, avg, min, max], ...}}: the rolling statistics as shown
  course: null, // {id, name, distance_m, points: n} of the planned route shown, or null
  route: null, // {done, remaining, eta, etaIn, offRoute, doneM, remainingM, etaSeconds, offM}: the readout as shown
});

const el = {
  rider: document.getElementById("rider-name"),
  status: document.getElementById("status"),
  announce: document.getElementById("status-announce"),
  message: document.getElementById("message"),
  values: document.getElementById("values"),
  noData: document.getElementById("no-data"),
  charts: document.getElementById("charts"),
  chartHint: document.getElementById("chart-hint"),
  follow: document.getElementById("follow"),
  mapNote: document.getElementById("map-note"),
  customForm: document.getElementById("custom-range"),
  rangeFrom: document.getElementById("range-from"),
  rangeTo: document.getElementById("range-to"),
  devices: document.getElementById("devices"),
  deviceList: document.getElementById("device-list"),
  summary: document.getElementById("summary"),
  summaryList: document.getElementById("summary-list"),
  rolling: document.getElementById("rolling"),
  rollingTables: document.getElementById("rolling-tables"),
  route: document.getElementById("route"),
  routeTitle: document.getElementById("route-title"),
  routeList: document.getElementById("route-list"),
  offRoute: document.getElementById("off-route"),
};
el.rider.textContent = user;
document.title = user + " · Tracker";

// ---- samples: one array sorted by time; a sample at an existing time merges into it ------------------
let samples = []; // [{t: ns (number), f: {field: value}}]
let windowSpec = parseWindow(params);
let pendingDuringLoad = null; // samples that arrived by SSE while a window load was in flight
let valueFields = []; // from the server's config (fields.js)
state.sampleTimes = () => samples.map((s) => s.t); // for tests: the order samples are kept in

// The page's now: the browser's clock, set right by the server's when they differ by more than 2 s
// (a viewer's slow clock must not hold back samples, nor a fast one make them look old).
let clockOffset = 0;
const nowMs = () => Date.now() + clockOffset;

const currentBounds = () => windowBounds(windowSpec, nowMs());

function ingest(incoming) {
  const b = currentBounds();
  for (const s of incoming) {
    if (pendingDuringLoad) pendingDuringLoad.push(s);
    if (inWindow(b, s.t)) insertSample(samples, s);
  }
  state.lastSampleTime = newestMs(incoming, state.lastSampleTime, nowMs());
  state.sampleCount = samples.length;
  updateStatus();
  scheduleRender();
}

const mapView = createMapOrNone(state, el);
const charts = createCharts(
  state,
  el,
  () => chartRange(windowSpec, currentBounds(), samples, nowMs()),
  (tSec) => {
    if (tSec === null) return mapView.showHover(null);
    // The crosshair's time on the map: the fix nearest to it.
    const fix = nearestFix(drawn(), tSec * 1e9);
    if (fix) mapView.showHover(fix);
  }
);

// ---- time windows ---------------------------------------------------------------------------------
function setWindow(spec, load) {
  windowSpec = spec;
  state.window = spec.name;
  for (const b of document.querySelectorAll("[data-window]")) {
    b.setAttribute("aria-pressed", String(b.dataset.window === spec.name));
  }
  el.customForm.hidden = spec.name !== "custom";
  const query = windowQuery(location.search, spec);
  history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  charts.resetZoom();
  if (load !== false) loadWindow({ fit: true });
}

for (const b of document.querySelectorAll("[data-window]")) {
  b.addEventListener("click", () => {
    const name = b.dataset.window;
    if (name === "custom") {
      const b0 = currentBounds();
      el.rangeFrom.value = toLocalInput(b0.fromMs);
      el.rangeTo.value = toLocalInput(b0.toMs === null ? nowMs() : b0.toMs);
      el.customForm.hidden = false;
      for (const other of document.querySelectorAll("[data-window]")) {
        other.setAttribute("aria-pressed", String(other === b));
      }
      el.rangeFrom.focus();
      return;
    }
    setWindow({ name: name });
  });
}
el.customForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const from = new Date(el.rangeFrom.value).getTime();
  const to = new Date(el.rangeTo.value).getTime();
  if (!(from < to)) {
    showMessage("The range must start before it ends.");
    return;
  }
  showMessage(null);
  setWindow({ name: "custom", fromMs: from, toMs: to });
});

// ---- loading a window -----------------------------------------------------------------------------
let loadGeneration = 0;

async function loadWindow(opts) {
  const generation = ++loadGeneration;
  pendingDuringLoad = [];
  const b = currentBounds();
  // An open window asks up to a day ahead: a phone with a fast clock still shows up.
  const toMs = b.toMs === null ? nowMs() + 86400e3 : b.toMs;
  const q = new URLSearchParams({ from: msToNsString(b.fromMs), to: msToNsString(toMs), max_points: String(MAX_POINTS) });
  if (token) q.set("token", token);
  let body;
  try {
    const sentMs = Date.now();
    const res = await fetch(apiBase + "/samples?" + q.toString(), { credentials: "same-origin", cache: "no-store" });
    if (generation !== loadGeneration) return null;
    clockOffset = clockOffsetMs(Date.parse(res.headers.get("Date") || ""), sentMs, Date.now());
    state.clockOffset = clockOffset;
    if (!res.ok) {
      pendingDuringLoad = null;
      showAccessProblem(res.status, await res.json().catch(() => ({})));
      return null;
    }
    body = await res.json();
  } catch (err) {
    if (generation === loadGeneration) pendingDuringLoad = null;
    return null; // the server is away; the stream's reconnect brings us back here
  }
  if (generation !== loadGeneration) return null;
  state.error = null;
  state.linkEnded = null;
  showMessage(null);
  if (!configLoaded) loadConfig(); // it failed before (the server was away, or access was missing)
  if (!courseLoaded) loadCourse();
  const arrivedMeanwhile = pendingDuringLoad || [];
  pendingDuringLoad = null;
  samples = [];
  for (const s of body.samples) insertSample(samples, s);
  const b2 = currentBounds();
  for (const s of arrivedMeanwhile) if (inWindow(b2, s.t)) insertSample(samples, s);
  state.lastSampleTime = newestMs(samples.slice(-1), state.lastSampleTime, nowMs());
  state.sampleCount = samples.length;
  state.downsampled = Boolean(body.downsampled);
  state.loads += 1;
  mapView.forgetMarker(); // the marker jumps to the window's newest fix, no glide
  mapView.fitNext(opts && opts.fit);
  updateStatus();
  scheduleRender();
  return body.last_event_id || null;
}

function showAccessProblem(status, body) {
  state.error = status;
  if (status === 401 || status === 403 || status === 404) {
    // Access ended (revoked link, profile made private): stop showing what was loaded.
    samples = [];
    state.sampleCount = 0;
    mapView.forgetMarker();
    scheduleRender();
  }
  const problem = accessProblem(status, body, user);
  state.linkEnded = problem.linkEnded;
  showMessage(problem.text);
  updateStatus();
}

function showMessage(text) {
  el.message.hidden = !text;
  el.message.textContent = text || "";
}

// ---- the event stream -----------------------------------------------------------------------------
const stream = createStream(
  state,
  (lastEventId) => {
    const q = new URLSearchParams();
    if (token) q.set("token", token);
    // EventSource cannot set headers on its first request; the server reads this when Last-Event-ID is absent.
    if (lastEventId) q.set("last_event_id", lastEventId);
    const query = q.toString();
    return apiBase + "/events" + (query ? "?" + query : "");
  },
  {
    reload: () => loadWindow({ fit: false }),
    samples: (list) => {
      ingest(list);
      scheduleDevices();
    },
    denied: (body) => showAccessProblem(403, body),
    // The server could not replay what we missed (it restarted, or we fell too far behind): refetch.
    reset: () => loadWindow({ fit: false }),
    changed: () => updateStatus(),
  }
);

// ---- last sample per device (the device tag): fetched at start and, at most every few seconds, after events
const DEVICES_EVERY_MS = 5000;
let devicesTimer = null;
let devicesFetchedAt = 0;

async function loadDevices() {
  devicesFetchedAt = Date.now();
  try {
    const res = await fetch(apiBase + "/devices" + tokenQuery, { credentials: "same-origin", cache: "no-store" });
    if (!res.ok) return;
    state.devices = (await res.json()).devices || [];
  } catch (err) {
    return; // the server is away: the list stays as it was
  }
  renderDevices();
}

function scheduleDevices() {
  if (devicesTimer) return;
  const wait = Math.max(0, devicesFetchedAt + DEVICES_EVERY_MS - Date.now());
  devicesTimer = setTimeout(() => {
    devicesTimer = null;
    loadDevices();
  }, wait);
}

function renderDevices() {
  // Only worth a list once samples name their device; otherwise the badge says it all.
  const named = state.devices.some((d) => d.device !== null);
  el.devices.hidden = !named;
  if (!named) return;
  const items = state.devices.map((d) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "device-name";
    name.textContent = d.device === null ? "(no device tag)" : d.device;
    const ago = document.createElement("span");
    ago.className = "device-ago";
    ago.textContent = "last sample " + formatAgo(nowMs() - d.last_sample_ns / 1e6);
    ago.title = new Date(d.last_sample_ns / 1e6).toLocaleString();
    li.append(name, ago);
    return li;
  });
  el.deviceList.replaceChildren(...items);
}

// ---- status badge ---------------------------------------------------------------------------------
function updateStatus() {
  const badge = streamStatus(
    {
      connected: state.connected,
      streamFailed: stream.failed(),
      error: state.error,
      linkEnded: state.linkEnded,
      lastSampleTime: state.lastSampleTime,
    },
    nowMs(),
    staleMs,
    formatAgo
  );
  // Screen readers hear changes of state, not the "... ago" counting every second.
  if (badge.status !== state.status) el.announce.textContent = badge.status === "stale" ? badge.text : badge.status;
  state.status = badge.status;
  state.statusText = badge.text;
  if (el.status.textContent !== badge.text) el.status.textContent = badge.text;
  el.status.className = "status status-" + badge.status;
}

// ---- rendering: at most once per frame ------------------------------------------------------------
let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

// What is drawn: the samples up to now (one from a clock that runs ahead waits for its time).
const drawn = () => drawnSamples(samples, nowMs() * 1e6);
let heldBackTimer = null;

function render() {
  const shown = drawn();
  state.heldBack = samples.length - shown.length;
  mapView.render(shown);
  renderValues(shown);
  renderSummary(shown);
  renderRolling(shown);
  renderRoute(shown);
  charts.render(shown);
  el.noData.hidden = samples.length > 0 || state.error !== null;
  // Draw a held-back sample the moment its time comes.
  if (state.heldBack > 0 && heldBackTimer === null) {
    const dueMs = samples[shown.length].t / 1e6 - nowMs();
    heldBackTimer = setTimeout(() => {
      heldBackTimer = null;
      scheduleRender();
    }, Math.max(20, Math.min(dueMs + 5, 60e3)));
  }
}

function renderValues(drawnNow) {
  const latest = latestValues(drawnNow || drawn(), wantedKeys(valueFields));
  // Each field's own newest time, not the window's: a value older than the badge's threshold is
  // greyed and says its age, so a sensor that stopped never reads as current.
  const old = staleValues(latest.times, nowMs(), staleMs);
  const shown = {};
  const staleShown = {};
  const frag = document.createDocumentFragment();
  for (const row of panelRows(valueFields, latest.values)) {
    shown[row.key] = row.text;
    const item = document.createElement("div");
    item.className = "value value-" + row.key;
    item.dataset.key = row.key;
    const dt = document.createElement("dt");
    dt.textContent = row.label;
    const dd = document.createElement("dd");
    const num = document.createElement("span");
    num.className = "num";
    num.textContent = row.text;
    dd.appendChild(num);
    if (row.unit) {
      const unit = document.createElement("span");
      unit.className = "unit";
      unit.textContent = row.unit;
      dd.appendChild(unit);
    }
    item.append(dt, dd);
    if (row.balance) {
      const balance = document.createElement("dd");
      balance.className = "balance";
      balance.textContent = row.balance;
      shown.balance = row.balance;
      item.appendChild(balance);
    }
    if (old[row.key] !== undefined) {
      const age = document.createElement("dd");
      age.className = "value-age";
      age.textContent = formatAgo(old[row.key]);
      staleShown[row.key] = age.textContent;
      item.classList.add("value-stale");
      item.appendChild(age);
    }
    frag.appendChild(item);
  }
  el.values.replaceChildren(frag);
  state.values = shown;
  state.staleValues = staleShown; // {key: "2 min ago"} for the values shown as old
}

// The window's ride summary (watch/summary.js): elapsed, distance, speeds, heart rate, power, climb, phone.
function renderSummary(drawnNow) {
  const rows = summaryRows(rideSummary(drawnNow));
  const shown = {};
  const items = [];
  for (const row of rows) {
    const item = document.createElement("div");
    item.className = "summary-" + row.key;
    const dt = document.createElement("dt");
    dt.textContent = row.label;
    const dd = document.createElement("dd");
    dd.textContent = row.text;
    item.append(dt, dd);
    items.push(item);
    shown[row.key] = row.text;
  }
  el.summaryList.replaceChildren(...items);
  el.summary.hidden = rows.length === 0;
  state.summary = shown;
}

// ---- the planned route (watch/route.js): where the rider is along it, fed the fixes in time order --
// Asked again every minute (?course_every= seconds, for tests), so a course the owner attaches or
// hides shows up on open pages; the ETag of the one shown makes an unchanged answer a bodiless 304.
const COURSE_EVERY_MS = positiveNumber(params.get("course_every"), 60) * 1000;
let courseLoaded = false;
let courseTag = null;
let routeProgress = null; // RouteProgress of the course shown, or null
let routeFedLoads = -1; // the window load whose fixes it was fed: a new window starts it afresh

async function loadCourse() {
  try {
    const headers = courseTag ? { "If-None-Match": courseTag } : {};
    const res = await fetch(apiBase + "/course" + tokenQuery, { credentials: "same-origin", cache: "no-store", headers: headers });
    if (res.status === 401 || res.status === 403) {
      showCourse(null, null); // access ended: the course goes with the track
      return;
    }
    if (res.status === 304 || !res.ok) return;
    const body = await res.json();
    courseLoaded = true;
    showCourse(body.course, body.off_route_m, res.headers.get("ETag"));
  } catch (err) {
    /* the server is away: asked again with the next window load */
  }
}

function showCourse(course, offRouteM, tag) {
  courseTag = tag || null;
  routeProgress = course ? new RouteProgress(course.points, offRouteM) : null;
  routeFedLoads = -1;
  state.course = course ? { id: course.id, name: course.name, distance_m: course.distance_m, points: course.points.length } : null;
  mapView.setCourse(course ? course.points : null);
  scheduleRender();
}

function renderRoute(drawnNow) {
  if (!routeProgress) {
    el.route.hidden = true;
    state.route = null;
    return;
  }
  if (routeFedLoads !== state.loads) {
    routeProgress.reset();
    routeFedLoads = state.loads;
  }
  for (const s of drawnNow) if (s.t > routeProgress.lastT) routeProgress.add(s.t, s.f.lat, s.f.lng);
  const r = routeProgress.readout();
  const km = (m) => (m / 1000).toFixed(2) + " km";
  const rows = [["Route", km(routeProgress.route.total)]];
  const shown = { name: state.course.name, total: rows[0][1] };
  if (r) {
    shown.done = km(r.doneM);
    shown.remaining = km(r.remainingM);
    shown.doneM = r.doneM;
    shown.remainingM = r.remainingM;
    shown.offM = r.offM;
    rows.push(["Done", shown.done], ["To go", shown.remaining]);
    if (r.eta) {
      const at = new Date(r.eta.atNs / 1e6);
      shown.eta = String(at.getHours()).padStart(2, "0") + ":" + String(at.getMinutes()).padStart(2, "0");
      shown.etaIn = formatDuration(r.eta.seconds);
      shown.etaSeconds = r.eta.seconds;
      rows.push(["Arrival", shown.eta], ["In", shown.etaIn]);
    } else {
      shown.eta = null;
      rows.push(["Arrival", "–"]);
    }
    shown.offRoute = r.offRoute ? "Off route by " + Math.round(r.offM) + " m" : null;
  }
  const name = document.createElement("span");
  name.className = "course-name";
  name.textContent = state.course.name;
  el.routeTitle.replaceChildren("Planned route: ", name);
  el.offRoute.hidden = !shown.offRoute;
  el.offRoute.textContent = shown.offRoute || "";
  el.routeList.replaceChildren(
    ...rows.map(([label, text]) => {
      const item = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = text;
      item.append(dt, dd);
      return item;
    }),
  );
  el.route.hidden = false;
  state.route = shown;
}

let rollingShown = null; // what the rolling tables show, to skip redrawing the same

// Last / average / min / max of the main fields over the last 3 s, 1, 5 and 10 min (watch/rolling.js),
// ending now (a chosen range: at its end).
function renderRolling(drawnNow) {
  const b = currentBounds();
  const endMs = b.toMs === null ? nowMs() : Math.min(nowMs(), b.toMs);
  const tables = rollingTables(drawnNow || drawn(), valueFields, endMs * 1e6);
  // Redrawn every second: leave the tables alone when nothing in them changed.
  const signature = JSON.stringify(tables);
  if (signature === rollingShown) return;
  rollingShown = signature;
  const shown = {};
  const nodes = tables.map((t) => {
    const table = document.createElement("table");
    table.className = "rolling-" + t.key;
    const caption = document.createElement("caption");
    caption.textContent = t.label + (t.unit ? " (" + t.unit + ")" : "");
    const head = document.createElement("tr");
    for (const text of ["", "last", "avg", "min", "max"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      head.appendChild(th);
    }
    const thead = document.createElement("thead");
    thead.appendChild(head);
    const tbody = document.createElement("tbody");
    shown[t.key] = {};
    for (const row of t.rows) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = row.label;
      tr.appendChild(th);
      for (const cell of row.cells) {
        const td = document.createElement("td");
        td.textContent = cell;
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
      shown[t.key][row.label] = row.cells;
    }
    table.append(caption, thead, tbody);
    return table;
  });
  el.rollingTables.replaceChildren(...nodes);
  el.rolling.hidden = nodes.length === 0;
  state.rolling = shown;
}

new ResizeObserver(() => {
  charts.resize();
  mapView.invalidateSize();
}).observe(document.querySelector(".layout"));

// ---- once a second: the badge's "... ago", the sliding window's left edge ------------------------
setInterval(() => {
  updateStatus();
  renderValues(); // values age: one that stopped coming greys out without a new sample
  renderRolling(); // the spans end now: a sensor that stopped empties them
  if (!el.devices.hidden) renderDevices();
  if (SLIDING_WINDOWS[windowSpec.name]) {
    if (dropBefore(samples, (nowMs() - SLIDING_WINDOWS[windowSpec.name]) * 1e6) > 0) {
      state.sampleCount = samples.length;
      scheduleRender();
    } else {
      charts.slide(); // the window slides: keep "now" at the right edge
    }
  }
}, 1000);

// ---- helpers --------------------------------------------------------------------------------------
function positiveNumber(text, fallback) {
  const n = Number(text);
  return text !== null && Number.isFinite(n) && n > 0 ? n : fallback;
}

function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 19);
}

// ---- start ----------------------------------------------------------------------------------------
const CONFIG_RETRY_MS = 3000;
let configLoaded = false;
let configLoading = false;
let configRetry = null;

async function loadConfig() {
  if (configLoading) return;
  configLoading = true;
  try {
    const res = await fetch(apiBase + "/config" + tokenQuery, { credentials: "same-origin", cache: "no-store" });
    const config = res.ok ? await res.json() : null;
    if (config && !configLoaded) {
      configLoaded = true;
      if (staleOverride === null) staleMs = positiveNumber(String(config.live_within_seconds), 60) * 1000;
      const fields = fieldsFromConfig(config);
      valueFields = fields.values;
      charts.setFields(fields.charts);
      scheduleRender();
      mapView.addTiles(config);
    }
  } catch (err) {
    /* the server is away: asked again below */
  } finally {
    configLoading = false;
  }
  // Without the config there are no values or charts: ask again soon (a window load that succeeds
  // after access came back asks at once).
  if (!configLoaded && !configRetry && !state.error) {
    configRetry = setTimeout(() => {
      configRetry = null;
      loadConfig();
    }, CONFIG_RETRY_MS);
  }
}

setWindow(windowSpec, false); // buttons and URL
const firstLoad = loadWindow({ fit: true });
loadConfig();
loadDevices();
loadCourse();
setInterval(loadCourse, COURSE_EVERY_MS);
firstLoad.then((lastEventId) => {
  if (lastEventId === null && state.error) stream.scheduleReconnect();
  else stream.connect(lastEventId);
});
updateStatus();
