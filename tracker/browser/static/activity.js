// Tracker activity page: one activity's route, charts, summary, laps and export; the owner's tools.
//
// Data flow: GET /api/activities/ID/config (tiles, fields, whether the caller may change it), the
// activity, its overview samples (downsampled by the server) and its laps, all at once. Selecting a
// range on a chart asks /samples for that range at full resolution; double-click or "Whole activity"
// goes back to the overview. The chart cursor and the map's hover marker follow each other: hovering
// a chart puts the marker on that sample, hovering or tapping the route puts the charts' cursor on
// the nearest sample.
//
// The pieces: activity/data.js (pure logic, tested with Node) and the live view's watch/map.js,
// watch/charts.js and watch/fields.js. Everything a user can type reaches the page through textContent.
import { LAP_COLUMNS, lapCells, lapMetres, nearestIndex, nextOnTrack, samplesFromRows, summaryRows, zoneBars } from "./activity/data.js";
import { displayName } from "./history/calendar.js";
import { createCharts } from "./watch/charts.js";
import { fieldsFromConfig } from "./watch/fields.js";
import { createMapOrNone } from "./watch/map.js";
import { nearestFix } from "./watch/samples.js";

const OVERVIEW_POINTS = 2000; // rows of the first load: the server downsamples to this
const ZOOM_POINTS = 4000; // rows of a zoomed range: full resolution when it holds that few
const EXPORT_FORMATS = ["gpx", "tcx", "fit", "csv", "geojson"];

const params = new URLSearchParams(location.search);
const activityId = location.pathname.replace(/^\/activity\//, "").split("/")[0];
const token = params.get("token");
const userParam = params.get("user");
const apiBase = "/api/activities/" + encodeURIComponent(activityId);

// What tests (and curious people in the console) can read; updated as things happen.
const state = (window.trackerState = {
  activityId: Number(activityId),
  loaded: false,
  error: null,
  linkEnded: null,
  canChange: false,
  name: null,
  overviewRows: 0,
  downsampled: null,
  zoomed: false,
  zoomRows: 0,
  zoomLoads: 0,
  hover: null, // [lat, lng] of the map's hover marker
  hoverSample: null, // {t, lat, lng} the chart cursor points at
  cursorT: null, // ns of the charts' cursor
  summary: {},
  laps: [],
  lapEvery: 1000,
  routePoints: 0,
  tilesFailed: 0,
  follow: false,
});

const $ = (id) => document.getElementById(id);
const el = {
  title: $("title"),
  when: $("when"),
  message: $("message"),
  summary: $("summary"),
  summaryList: $("summary-list"),
  zones: $("zones"),
  charts: $("charts"),
  chartHint: $("chart-hint"),
  resolution: $("resolution"),
  zoomReset: $("zoom-reset"),
  lapForm: $("lap-form"),
  lapEvery: $("lap-every"),
  lapHead: $("lap-head"),
  lapRows: $("lap-rows"),
  noLaps: $("no-laps"),
  exportLinks: $("export-links"),
  ownerTools: $("owner-tools"),
  mapNote: $("map-note"),
  follow: document.createElement("button"), // the live view's "follow" button: nothing to follow here
};

// The query every request of this page carries: the link's token, or whose activity it is.
function query(extra) {
  const q = new URLSearchParams(extra || {});
  if (token) q.set("token", token);
  else if (userParam) q.set("user", userParam);
  const text = q.toString();
  return text ? "?" + text : "";
}

async function getJson(path, extra) {
  const res = await fetch(apiBase + path + query(extra), { credentials: "same-origin", cache: "no-store" });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.error || "HTTP " + res.status), { status: res.status, body: body });
  return body;
}

function cookie(name) {
  const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

// A change by the signed-in owner (CSRF token from the cookie, as on the home page).
async function change(method, url, body) {
  const res = await fetch(url, {
    method: method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": cookie("tracker_csrf") },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || "HTTP " + res.status);
  return data;
}

function showMessage(text) {
  el.message.hidden = !text;
  el.message.textContent = text || "";
}

// ---- the map ------------------------------------------------------------------------------------
const mapView = createMapOrNone(state, el, { rider: false });
let endMarkers = [];

function drawRoute(samples) {
  mapView.fitNext(true);
  mapView.render(samples);
  const fixes = samples.filter((s) => typeof s.f.lat === "number" && typeof s.f.lng === "number");
  state.routePoints = fixes.length;
  if (!mapView.leaflet) return;
  for (const m of endMarkers) m.remove();
  endMarkers = [];
  if (fixes.length === 0) return;
  const first = fixes[0].f;
  const last = fixes[fixes.length - 1].f;
  const mark = (f, color, title) =>
    L.circleMarker([f.lat, f.lng], { radius: 8, color: "#fff", weight: 2, fillColor: color, fillOpacity: 1, interactive: false })
      .bindTooltip(title)
      .addTo(mapView.leaflet);
  endMarkers = [mark(last, "#b00020", "end"), mark(first, "#0a6b2b", "start")];
  state.start = [first.lat, first.lng];
  state.end = [last.lat, last.lng];
}

// The route is thin: a wide, invisible copy of it catches the pointer.
let routeTarget = null;
function listenToRoute(samples) {
  if (!mapView.leaflet) return;
  if (routeTarget) routeTarget.remove();
  const latlngs = samples.filter((s) => typeof s.f.lat === "number").map((s) => [s.f.lat, s.f.lng]);
  routeTarget = L.polyline(latlngs, { weight: 18, opacity: 0.01, color: "#000" }).addTo(mapView.leaflet);
  const toCursor = (e) => {
    const i = nearestIndex(charted, e.latlng.lat, e.latlng.lng);
    if (i >= 0) charts.showTime(charted[i].t / 1e9);
  };
  routeTarget.on("mousemove", toCursor);
  routeTarget.on("click", toCursor);
}

// For tests: where on the page a position of the route is drawn.
window.activityPage = {
  pagePoint(lat, lng) {
    if (!mapView.leaflet) return null;
    const p = mapView.leaflet.latLngToContainerPoint([lat, lng]);
    const box = $("map").getBoundingClientRect();
    return { x: box.left + p.x, y: box.top + p.y };
  },
};

// ---- the charts ---------------------------------------------------------------------------------
let activity = null;
let overview = []; // the downsampled samples of the whole activity
let charted = []; // what the charts show: the overview, or a zoomed range at full resolution
let zoomGeneration = 0;

const charts = createCharts(
  state,
  el,
  () => ({ min: activity.start_ns / 1e9, max: activity.end_ns / 1e9 }),
  (tSec) => {
    if (tSec === null) {
      mapView.showHover(null);
      return;
    }
    const tNs = tSec * 1e9;
    state.cursorT = tNs;
    setSplitEnabled();
    const fix = nearestFix(charted, tNs);
    mapView.showHover(fix);
    state.hoverSample = fix ? { t: fix.t, lat: fix.f.lat, lng: fix.f.lng } : null;
  },
  (range) => (range ? zoomTo(range) : showOverview())
);

// The zoomed range's part of the route, drawn over it.
let zoomedPart = null;
function highlightRoute(samples) {
  if (!mapView.leaflet) return;
  const latlngs = samples ? samples.filter((s) => typeof s.f.lat === "number").map((s) => [s.f.lat, s.f.lng]) : [];
  if (!zoomedPart) zoomedPart = L.polyline([], { color: "#ff8c00", weight: 6, opacity: 0.9, interactive: false }).addTo(mapView.leaflet);
  zoomedPart.setLatLngs(latlngs);
  state.highlighted = latlngs.length;
}

function showOverview() {
  zoomGeneration++;
  highlightRoute(null);
  charted = overview;
  state.zoomed = false;
  el.zoomReset.hidden = true;
  charts.resetZoom();
  charts.render(charted);
  el.resolution.textContent = state.downsampled ? "Overview: " + overview.length + " points of " + activity.samples + " samples" : "All " + activity.samples + " samples";
}

async function zoomTo(range) {
  const generation = ++zoomGeneration;
  const start = String(Math.floor(range.min * 1e9));
  const end = String(Math.ceil(range.max * 1e9));
  let body;
  try {
    body = await getJson("/samples", { start: start, end: end, points: String(ZOOM_POINTS) });
  } catch (err) {
    showMessage("Could not load that range: " + err.message);
    return;
  }
  if (generation !== zoomGeneration) return;
  charted = samplesFromRows(body.columns, body.values);
  state.zoomed = true;
  state.zoomRows = body.values.length;
  state.zoomDownsampled = body.downsampled;
  state.zoomLoads += 1;
  el.zoomReset.hidden = false;
  charts.render(charted);
  highlightRoute(charted);
  el.resolution.textContent = (body.downsampled ? "Zoomed: " : "Zoomed, full resolution: ") + body.values.length + " samples";
}

el.zoomReset.addEventListener("click", showOverview);

// ---- summary, zones, laps -----------------------------------------------------------------------
function renderSummary(summary) {
  const shown = {};
  const items = summaryRows(summary).map((row) => {
    const item = document.createElement("div");
    item.className = "summary-" + row.key;
    const dt = document.createElement("dt");
    dt.textContent = row.label;
    const dd = document.createElement("dd");
    dd.textContent = row.text;
    if (row.note) {
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = row.note;
      dd.appendChild(note);
    }
    item.append(dt, dd);
    shown[row.key] = row.text;
    return item;
  });
  el.summaryList.replaceChildren(...items);
  const zones = [];
  for (const [key, cls, title] of [["hr_zones_s", "hr", "Time in heart-rate zones"], ["pwr_zones_s", "pwr", "Time in power zones"]]) {
    const bars = zoneBars(summary[key]);
    if (bars.length === 0) continue;
    const box = document.createElement("div");
    box.className = cls;
    const h3 = document.createElement("h3");
    h3.textContent = title;
    box.appendChild(h3);
    shown[key] = bars.map((b) => b.text);
    for (const b of bars) {
      const row = document.createElement("div");
      row.className = "zone";
      const name = document.createElement("span");
      name.textContent = "Z" + b.zone;
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = b.percent.toFixed(1) + "%";
      bar.appendChild(fill);
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = b.text;
      row.append(name, bar, time);
      box.appendChild(row);
    }
    zones.push(box);
  }
  el.zones.replaceChildren(...zones);
  el.summary.hidden = items.length === 0;
  state.summary = shown;
}

function renderLaps(laps) {
  el.lapHead.replaceChildren(
    ...LAP_COLUMNS.map((text) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      return th;
    })
  );
  el.lapRows.replaceChildren(
    ...laps.map((lap) => {
      const tr = document.createElement("tr");
      for (const cell of lapCells(lap)) {
        const td = document.createElement("td");
        td.textContent = cell;
        tr.appendChild(td);
      }
      return tr;
    })
  );
  el.noLaps.hidden = laps.length > 0;
  state.laps = laps;
}

async function loadLaps(everyM) {
  const body = await getJson("/laps", { every_m: String(everyM) });
  state.lapEvery = everyM;
  renderLaps(body.laps);
}

el.lapForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const metres = lapMetres(el.lapEvery.value);
  if (metres === null) {
    showMessage("A lap is 0.01 to 1000 km.");
    return;
  }
  showMessage(null);
  try {
    await loadLaps(metres);
  } catch (err) {
    showMessage("Could not load the laps: " + err.message);
  }
});

function renderExport() {
  el.exportLinks.replaceChildren(
    ...EXPORT_FORMATS.map((format) => {
      const a = document.createElement("a");
      a.href = apiBase + "/export" + query({ format: format });
      a.download = "";
      a.className = "export-" + format;
      a.textContent = format.toUpperCase();
      return a;
    })
  );
}

function renderHeader() {
  el.title.textContent = displayName(activity);
  document.title = "Tracker: " + displayName(activity);
  const start = new Date(activity.start_ns / 1e6);
  el.when.textContent = start.toLocaleString() + (activity.sport ? " · " + activity.sport : "") + (activity.device ? " · " + activity.device : "");
  state.name = activity.name;
}

// ---- the owner's tools --------------------------------------------------------------------------
function setSplitEnabled() {
  $("split").disabled = !(state.canChange && state.cursorT !== null);
}

function ownerQuery() {
  return userParam ? "?user=" + encodeURIComponent(userParam) : "";
}

function setUpOwnerTools() {
  el.ownerTools.hidden = false;
  $("rename-input").value = activity.named ? activity.name : "";
  $("rename-input").placeholder = displayName(activity);
  $("rename-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      activity = await change("PATCH", apiBase + ownerQuery(), { name: $("rename-input").value });
      renderHeader();
      showMessage(null);
    } catch (err) {
      showMessage("Could not rename: " + err.message);
    }
  });
  $("split").addEventListener("click", async () => {
    if (state.cursorT === null) return;
    try {
      const body = await change("POST", apiBase + "/split" + ownerQuery(), { at: String(Math.round(state.cursorT)) });
      // The part that kept this page's id stays here (the larger one); the other has an id of its own.
      const here = body.activities.find((a) => String(a.id) === activityId) || body.activities[0];
      const other = body.activities.find((a) => a !== here);
      state.split = body.activities.map((a) => a.id);
      await load(here.id);
      showMessage("Split in two: this part, and “" + other.name + "” (activity " + other.id + ").");
    } catch (err) {
      showMessage("Could not split: " + err.message);
    }
  });
  $("merge").addEventListener("click", async () => {
    try {
      const q = new URLSearchParams({ from: String(activity.end_ns), limit: "500" });
      if (userParam) q.set("user", userParam);
      const res = await fetch("/api/activities?" + q.toString(), { credentials: "same-origin", cache: "no-store" });
      const next = nextOnTrack((await res.json()).activities || [], activity);
      if (!next) {
        showMessage("No later activity of this device and sport to merge with.");
        return;
      }
      const merged = await change("POST", "/api/activities/merge" + ownerQuery(), { ids: [activity.id, next.id] });
      state.merged = next.id;
      await load(merged.id);
      showMessage("Merged with " + next.name + ".");
    } catch (err) {
      showMessage("Could not merge: " + err.message);
    }
  });
  $("as-course").addEventListener("click", async () => {
    try {
      // The server thins the route (at most 10,000 points) and names the course as the activity.
      const course = await change("POST", "/api/courses" + ownerQuery(), { activity: activity.id });
      showMessage("Course “" + course.name + "” added (" + (course.distance_m / 1000).toFixed(2) + " km): show it to your watchers under Courses on the home page.");
    } catch (err) {
      showMessage("Could not make a course: " + err.message);
    }
  });
  const dialog = $("delete-dialog");
  $("delete").addEventListener("click", () => {
    $("delete-text").textContent =
      "“" + activity.name + "” and its " + activity.samples + " samples will be removed for good. This cannot be undone.";
    state.deleteAsked = true;
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "delete") return;
    try {
      await change("DELETE", apiBase + query({ confirm: String(activity.id) }));
      state.deleted = true;
      location.href = "/";
    } catch (err) {
      showMessage("Could not delete: " + err.message);
    }
  });
  $("share-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const expires = $("share-expires").value;
    try {
      const link = await change("POST", apiBase + "/links" + ownerQuery(), {
        label: $("share-label").value || null,
        expires_in: expires || null,
      });
      $("new-link-url").value = link.url;
      $("new-link").hidden = false;
      state.newLink = link.url;
      showMessage(null);
    } catch (err) {
      showMessage("Could not make a link: " + err.message);
    }
  });
}

// ---- loading ------------------------------------------------------------------------------------
let configDone = false;

async function load(id) {
  if (String(id) !== activityId) {
    // Another activity (a split or merge renamed what this page shows): its own address.
    location.href = "/activity/" + id + location.search;
    return;
  }
  let config, samples, laps;
  try {
    [config, activity, samples, laps] = await Promise.all([
      configDone ? Promise.resolve(null) : getJson("/config"),
      getJson(""),
      getJson("/samples", { points: String(OVERVIEW_POINTS) }),
      getJson("/laps", { every_m: String(state.lapEvery) }),
    ]);
  } catch (err) {
    state.error = err.status || 0;
    state.linkEnded = err.body && err.body.reason ? err.body.reason : null;
    const problems = {
      401: "Sign in on the home page to see this activity, or ask its owner for a link.",
      404: "There is no such activity (it may have been deleted or merged).",
    };
    showMessage(problems[err.status] || err.message);
    return;
  }
  if (config) {
    configDone = true;
    state.canChange = Boolean(config.can_change) && !token;
    charts.setFields(fieldsFromConfig(config).charts);
    mapView.addTiles(config);
    if (state.canChange) setUpOwnerTools();
  }
  overview = samplesFromRows(samples.columns, samples.values);
  state.overviewRows = samples.values.length;
  state.downsampled = samples.downsampled;
  renderHeader();
  renderSummary(activity.summary);
  drawRoute(overview);
  listenToRoute(overview);
  showOverview();
  renderLaps(laps.laps);
  renderExport();
  setSplitEnabled();
  state.loaded = true;
  state.loads = (state.loads || 0) + 1;
}

new ResizeObserver(() => {
  charts.resize();
  mapView.invalidateSize();
}).observe(document.querySelector(".layout"));

load(activityId);
