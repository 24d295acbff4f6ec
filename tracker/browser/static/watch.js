// Tracker live view: map, current values and charts of one rider, kept current by Server-Sent Events.
//
// Data flow: GET /api/watch/USER/samples fills the chosen time window (the server downsamples long
// windows), then an EventSource on /api/watch/USER/events delivers every committed write. Samples are
// kept in one array sorted by time, so late or out-of-order samples simply fall into place; the map,
// values and charts are redrawn from it at most once per animation frame.
//
// Everything a user can type (usernames, labels) reaches the page through textContent only.
"use strict";

(function () {
  const formatAgo = window.TrackerCommon.formatAgo;
  const params = new URLSearchParams(location.search);
  const user = decodeURIComponent(location.pathname.replace(/^\/watch\//, "").split("/")[0] || "");
  const token = params.get("token");
  // How long without a new sample before the badge says "last sample ... ago" (seconds; ?stale= for tests).
  const staleMs = positiveNumber(params.get("stale"), 30) * 1000;
  const MAX_POINTS = 2000;
  const SLIDING_WINDOWS = { "10m": 10 * 60e3, "1h": 3600e3, "8h": 8 * 3600e3 };
  const GLIDE_MAX_MS = 750; // a glide never lasts longer than this, however far apart the fixes are
  const apiBase = "/api/watch/" + encodeURIComponent(user);

  // Values shown in the panel, in this order, only when present in the window.
  const VALUE_FIELDS = [
    { key: "spd_kph", label: "Speed", unit: "km/h", format: (v) => v.toFixed(1) },
    { key: "hr_bpm", label: "Heart rate", unit: "bpm", format: (v) => Math.round(v).toString() },
    { key: "pwr_w", label: "Power", unit: "W", format: (v) => Math.round(v).toString() },
    { key: "cad_rpm", label: "Cadence", unit: "rpm", format: (v) => Math.round(v).toString() },
    { key: "alt_m", label: "Altitude", unit: "m", format: (v) => Math.round(v).toString() },
    { key: "dist_km", label: "Distance", unit: "km", format: (v) => v.toFixed(2) },
    { key: "dur_s", label: "Duration", unit: "", format: formatDuration },
    { key: "temp_c", label: "Temperature", unit: "°C", format: (v) => v.toFixed(1) },
    { key: "battery", label: "Battery", unit: "%", format: (v) => Math.round(v).toString() },
    { key: "gsm_signal", label: "GSM signal", unit: "%", format: (v) => Math.round(v).toString() },
  ];
  const CHART_FIELDS = [
    { key: "hr_bpm", label: "Heart rate", unit: "bpm", color: "#b3001b" },
    { key: "pwr_w", label: "Power", unit: "W", color: "#6a1b9a" },
    { key: "cad_rpm", label: "Cadence", unit: "rpm", color: "#00695c" },
    { key: "spd_kph", label: "Speed", unit: "km/h", color: "#0b3d91" },
    { key: "alt_m", label: "Altitude", unit: "m", color: "#6d4c41" },
  ];

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
    follow: true,
    lastSampleTime: null, // ms since epoch of the newest sample seen
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
    tilesFailed: 0,
    devices: [], // [{device: name or null, last_sample_ns}], newest first
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
  };
  state.sampleTimes = () => samples.map((s) => s.t); // for tests: the order samples are kept in
  el.rider.textContent = user;
  document.title = user + " · Tracker";

  // ---- samples: one array sorted by time; a sample at an existing time merges into it ----------------
  let samples = []; // [{t: ns (number), f: {field: value}}]
  let windowSpec = initialWindow();
  let pendingDuringLoad = null; // samples that arrived by SSE while a window load was in flight

  function insertSample(sample) {
    const t = sample.t;
    const n = samples.length;
    if (n === 0 || samples[n - 1].t < t) {
      samples.push({ t: t, f: Object.assign({}, sample.f) });
      return;
    }
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (samples[mid].t < t) lo = mid + 1;
      else hi = mid;
    }
    if (samples[lo].t === t) Object.assign(samples[lo].f, sample.f); // same rule as the server: newest value per field
    else samples.splice(lo, 0, { t: t, f: Object.assign({}, sample.f) });
  }

  function ingest(incoming) {
    let newest = state.lastSampleTime;
    for (const s of incoming) {
      const ms = s.t / 1e6;
      if (newest === null || ms > newest) newest = ms;
      if (pendingDuringLoad) pendingDuringLoad.push(s);
      if (inWindow(s.t)) insertSample(s);
    }
    state.lastSampleTime = newest;
    state.sampleCount = samples.length;
    updateStatus();
    scheduleRender();
  }

  // ---- time windows ---------------------------------------------------------------------------------
  function initialWindow() {
    const w = params.get("window");
    if (w === "custom") {
      const from = Date.parse(params.get("from") || "");
      const to = Date.parse(params.get("to") || "");
      if (from < to) return { name: "custom", fromMs: from, toMs: to };
    }
    if (w === "today" || (w && SLIDING_WINDOWS[w])) return { name: w };
    return { name: "10m" };
  }

  function windowBounds() {
    // ms since epoch; toMs null means "open": live samples keep arriving at the end.
    const now = Date.now();
    if (windowSpec.name === "custom") return { fromMs: windowSpec.fromMs, toMs: windowSpec.toMs };
    if (windowSpec.name === "today") {
      const midnight = new Date();
      midnight.setHours(0, 0, 0, 0);
      return { fromMs: midnight.getTime(), toMs: null };
    }
    return { fromMs: now - SLIDING_WINDOWS[windowSpec.name], toMs: null };
  }

  function inWindow(tNs) {
    const b = windowBounds();
    const ms = tNs / 1e6;
    return ms >= b.fromMs && (b.toMs === null || ms < b.toMs);
  }

  function msToNsString(ms) {
    return (BigInt(Math.round(ms)) * 1000000n).toString();
  }

  function setWindow(spec, load) {
    windowSpec = spec;
    state.window = spec.name;
    for (const b of document.querySelectorAll("[data-window]")) {
      b.setAttribute("aria-pressed", String(b.dataset.window === spec.name));
    }
    el.customForm.hidden = spec.name !== "custom";
    const q = new URLSearchParams(location.search);
    q.delete("from");
    q.delete("to");
    if (spec.name === "10m") q.delete("window");
    else q.set("window", spec.name);
    if (spec.name === "custom") {
      q.set("from", new Date(spec.fromMs).toISOString());
      q.set("to", new Date(spec.toMs).toISOString());
    }
    const query = q.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    zoomRange = null;
    if (load !== false) loadWindow({ fit: true });
  }

  for (const b of document.querySelectorAll("[data-window]")) {
    b.addEventListener("click", () => {
      const name = b.dataset.window;
      if (name === "custom") {
        const b0 = windowBounds();
        el.rangeFrom.value = toLocalInput(b0.fromMs);
        el.rangeTo.value = toLocalInput(b0.toMs === null ? Date.now() : b0.toMs);
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
    const b = windowBounds();
    // An open window asks up to a day ahead: a phone with a fast clock still shows up.
    const toMs = b.toMs === null ? Date.now() + 86400e3 : b.toMs;
    const q = new URLSearchParams({ from: msToNsString(b.fromMs), to: msToNsString(toMs), max_points: String(MAX_POINTS) });
    if (token) q.set("token", token);
    let body;
    try {
      const res = await fetch(apiBase + "/samples?" + q.toString(), { credentials: "same-origin", cache: "no-store" });
      if (generation !== loadGeneration) return null;
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
    showMessage(null);
    const arrivedMeanwhile = pendingDuringLoad || [];
    pendingDuringLoad = null;
    samples = [];
    for (const s of body.samples) insertSample(s);
    for (const s of arrivedMeanwhile) if (inWindow(s.t)) insertSample(s);
    const newest = samples.length ? samples[samples.length - 1].t / 1e6 : null;
    if (newest !== null && (state.lastSampleTime === null || newest > state.lastSampleTime)) state.lastSampleTime = newest;
    state.sampleCount = samples.length;
    state.downsampled = Boolean(body.downsampled);
    state.loads += 1;
    markerFixTime = -Infinity; // the marker jumps to the window's newest fix, no glide
    needsFit = Boolean(opts && opts.fit);
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
      markerFixTime = -Infinity;
      scheduleRender();
    }
    if (status === 401) showMessage("This tracker is private. Sign in on the home page, or open the share link you were given.");
    else if (status === 403) showMessage((body && body.error) || "You are not allowed to watch this tracker.");
    else if (status === 404) showMessage("There is no tracker with this name.");
    else showMessage("The server answered " + status + ".");
  }

  function showMessage(text) {
    el.message.hidden = !text;
    el.message.textContent = text || "";
  }

  // ---- the event stream -----------------------------------------------------------------------------
  let source = null;
  let reconnectTimer = null;
  let reconnectDelay = 1000;
  let streamFailed = false; // until the first error the badge says "connecting", not "offline"

  function connect(lastEventId) {
    if (source) source.close();
    const q = new URLSearchParams();
    if (token) q.set("token", token);
    // EventSource cannot set headers on its first request; the server reads this when Last-Event-ID is absent.
    if (lastEventId) q.set("last_event_id", lastEventId);
    const query = q.toString();
    const es = new EventSource(apiBase + "/events" + (query ? "?" + query : ""));
    source = es;
    es.onopen = () => {
      if (source !== es) return;
      state.connected = true;
      reconnectDelay = 1000;
      updateStatus();
    };
    es.onerror = () => {
      if (source !== es) return;
      state.connected = false;
      streamFailed = true;
      updateStatus();
      // CONNECTING: the browser retries by itself and sends Last-Event-ID. CLOSED (an HTTP error such as
      // a revoked link): it gave up, so we reload the window (which tells us why) and open a new stream.
      if (es.readyState === EventSource.CLOSED) scheduleReconnect();
    };
    es.addEventListener("samples", (e) => {
      if (source !== es) return;
      state.lastEventId = e.lastEventId || state.lastEventId;
      state.eventsReceived += 1;
      let data;
      try {
        data = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      ingest(data.samples || []);
      scheduleDevices();
    });
    es.addEventListener("denied", (e) => {
      if (source !== es) return;
      // The owner revoked the link, made the profile private or removed the share.
      let body = {};
      try {
        body = JSON.parse(e.data);
      } catch (err) {
        /* keep the generic text */
      }
      es.close();
      state.connected = false;
      streamFailed = true;
      showAccessProblem(403, body);
      updateStatus();
      scheduleReconnect();
    });
    es.addEventListener("reset", () => {
      if (source !== es) return;
      // The server could not replay what we missed (it restarted, or we fell too far behind): refetch.
      state.resets += 1;
      loadWindow({ fit: false });
    });
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    if (source) source.close();
    source = null;
    reconnectTimer = setTimeout(async () => {
      reconnectTimer = null;
      const lastEventId = await loadWindow({ fit: false });
      if (lastEventId === null && state.error) {
        reconnectDelay = Math.min(reconnectDelay * 2, 60e3);
        scheduleReconnect();
        return;
      }
      connect(lastEventId);
    }, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 30e3);
  }

  // ---- last sample per device (the device tag): fetched at start and, at most every few seconds, after events
  const DEVICES_EVERY_MS = 5000;
  let devicesTimer = null;
  let devicesFetchedAt = 0;

  async function loadDevices() {
    devicesFetchedAt = Date.now();
    try {
      const res = await fetch(apiBase + "/devices" + (token ? "?token=" + encodeURIComponent(token) : ""), {
        credentials: "same-origin",
        cache: "no-store",
      });
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
      ago.textContent = "last sample " + formatAgo(Date.now() - d.last_sample_ns / 1e6);
      ago.title = new Date(d.last_sample_ns / 1e6).toLocaleString();
      li.append(name, ago);
      return li;
    });
    el.deviceList.replaceChildren(...items);
  }

  // ---- status badge ---------------------------------------------------------------------------------
  function updateStatus() {
    let status;
    let text;
    if (!state.connected) {
      status = streamFailed || state.error ? "offline" : "connecting";
      text = status;
    } else if (state.lastSampleTime === null) {
      status = "waiting";
      text = "live · no samples yet";
    } else {
      const ago = Date.now() - state.lastSampleTime;
      if (ago <= staleMs) {
        status = "live";
        text = "live";
      } else {
        status = "stale";
        text = "last sample " + formatAgo(ago);
      }
    }
    // Screen readers hear changes of state, not the "... ago" counting every second.
    if (status !== state.status) el.announce.textContent = status === "stale" ? text : status;
    state.status = status;
    state.statusText = text;
    if (el.status.textContent !== text) el.status.textContent = text;
    el.status.className = "status status-" + status;
  }

  // ---- map ------------------------------------------------------------------------------------------
  const map = L.map("map", { zoomControl: true, worldCopyJump: true, attributionControl: true }).setView([30, 0], 2);
  L.control.scale({ imperial: false }).addTo(map);
  const track = L.polyline([], { color: "#0b3d91", weight: 4, opacity: 0.9 }).addTo(map);
  const accuracyCircle = L.circle([0, 0], { radius: 1, color: "#0b3d91", weight: 1, fillOpacity: 0.12, interactive: false });
  const riderIcon = L.divIcon({
    className: "rider-marker",
    iconSize: [44, 44],
    iconAnchor: [22, 22],
    html:
      '<div class="rider-heading"><svg viewBox="0 0 44 44" width="44" height="44" aria-hidden="true">' +
      '<path class="arrow" d="M22 1 L32 15 L12 15 Z"/><circle cx="22" cy="22" r="9"/></svg></div>',
  });
  const marker = L.marker([0, 0], { icon: riderIcon, keyboard: false, title: "current position" });
  const hoverMarker = L.circleMarker([0, 0], { radius: 7, color: "#111", weight: 2, fillColor: "#ffd23f", fillOpacity: 1, interactive: false });

  let markerFixTime = -Infinity; // time (ns) of the fix the marker shows or glides to
  let glideFrame = null;
  let needsFit = true;

  function setMarkerPosition(latlng) {
    if (!map.hasLayer(marker)) marker.addTo(map);
    marker.setLatLng(latlng);
    if (state.accuracy) accuracyCircle.setLatLng(latlng);
    state.markerLatLng = [latlng[0], latlng[1]];
  }

  function glideTo(target, durationMs) {
    if (glideFrame !== null) cancelAnimationFrame(glideFrame); // a newer fix cancels the running glide
    glideFrame = null;
    const from = state.markerLatLng;
    if (!from || durationMs <= 0 || document.hidden) {
      setMarkerPosition(target);
      return;
    }
    const start = performance.now();
    const step = (now) => {
      const k = Math.min(1, (now - start) / durationMs);
      const e = k < 0.5 ? 2 * k * k : 1 - Math.pow(-2 * k + 2, 2) / 2; // ease in-out
      setMarkerPosition([from[0] + (target[0] - from[0]) * e, from[1] + (target[1] - from[1]) * e]);
      glideFrame = k < 1 ? requestAnimationFrame(step) : null;
    };
    glideFrame = requestAnimationFrame(step);
  }

  function showFix(fix, previousFix, glide) {
    const target = [fix.f.lat, fix.f.lng];
    const previousTarget = state.markerTarget;
    state.markerTarget = target;
    let heading = typeof fix.f.bearing === "number" ? fix.f.bearing : null;
    if (heading === null && previousFix) {
      const moved = map.distance([previousFix.f.lat, previousFix.f.lng], target);
      heading = moved > 2 ? bearingBetween(previousFix.f, fix.f) : state.heading;
    }
    state.heading = heading;
    state.accuracy = typeof fix.f.acc_m === "number" && fix.f.acc_m > 0 ? fix.f.acc_m : null;
    if (state.accuracy) {
      accuracyCircle.setRadius(state.accuracy);
      if (!map.hasLayer(accuracyCircle)) accuracyCircle.addTo(map);
    } else if (map.hasLayer(accuracyCircle)) {
      accuracyCircle.remove();
    }
    const duration = glide && previousFix ? Math.min(GLIDE_MAX_MS, Math.max(0, (fix.t - previousFix.t) / 1e6)) : 0;
    glideTo(target, duration);
    if (!map.hasLayer(marker)) marker.addTo(map);
    applyHeading(marker.getElement().querySelector(".rider-heading"), heading);
    if (state.follow && !needsFit) {
      const far = !previousTarget || map.distance(previousTarget, target) > 5000;
      if (far) map.setView(target, Math.max(map.getZoom(), 15), { animate: false });
      else map.panTo(target, { animate: duration > 0, duration: duration / 1000, easeLinearity: 0.5 });
    }
  }

  function applyHeading(headingEl, heading) {
    if (!headingEl) return;
    headingEl.classList.toggle("no-heading", heading === null);
    headingEl.style.transform = heading === null ? "" : "rotate(" + heading + "deg)";
  }

  function setFollow(on) {
    state.follow = on;
    el.follow.hidden = on;
    if (on && state.markerTarget) map.panTo(state.markerTarget);
  }
  map.on("dragstart", () => setFollow(false));
  el.follow.addEventListener("click", () => setFollow(true));

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

  function render() {
    const latlngs = [];
    let lastFix = null;
    let fixBefore = null;
    for (const s of samples) {
      if (typeof s.f.lat === "number" && typeof s.f.lng === "number") {
        latlngs.push([s.f.lat, s.f.lng]);
        fixBefore = lastFix;
        lastFix = s;
      }
    }
    track.setLatLngs(latlngs);
    state.trackPointCount = latlngs.length;

    if (lastFix && lastFix.t > markerFixTime) {
      // Only a newer fix moves the marker; a late sample only fills in the track.
      const glide = markerFixTime !== -Infinity;
      markerFixTime = lastFix.t;
      showFix(lastFix, fixBefore, glide);
    } else if (!lastFix && map.hasLayer(marker)) {
      marker.remove();
      accuracyCircle.remove();
      state.markerLatLng = null;
      state.markerTarget = null;
      markerFixTime = -Infinity;
    }
    if (needsFit) {
      needsFit = false;
      if (latlngs.length > 1) map.fitBounds(track.getBounds(), { padding: [24, 24], maxZoom: 16, animate: false });
      else if (lastFix) map.setView([lastFix.f.lat, lastFix.f.lng], 15, { animate: false });
      if (state.follow && state.markerTarget && latlngs.length > 1) map.panTo(state.markerTarget, { animate: false });
    }

    renderValues();
    renderCharts();
    el.noData.hidden = samples.length > 0 || state.error !== null;
  }

  function renderValues() {
    const latest = latestValues();
    const shown = {};
    const frag = document.createDocumentFragment();
    for (const spec of VALUE_FIELDS) {
      let value = latest[spec.key];
      if (spec.key === "pwr_w" && value === undefined && latest.pwr_w_l !== undefined && latest.pwr_w_r !== undefined) {
        value = latest.pwr_w_l + latest.pwr_w_r;
      }
      if (value === undefined) continue;
      const text = spec.format(value);
      shown[spec.key] = text;
      const item = document.createElement("div");
      item.className = "value value-" + spec.key;
      item.dataset.key = spec.key;
      const dt = document.createElement("dt");
      dt.textContent = spec.label;
      const dd = document.createElement("dd");
      const num = document.createElement("span");
      num.className = "num";
      num.textContent = text;
      dd.appendChild(num);
      let balanceItem = null;
      if (spec.unit) {
        const unit = document.createElement("span");
        unit.className = "unit";
        unit.textContent = spec.unit;
        dd.appendChild(unit);
      }
      if (spec.key === "pwr_w" && latest.pwr_w_l !== undefined && latest.pwr_w_r !== undefined) {
        const total = latest.pwr_w_l + latest.pwr_w_r;
        if (total > 0) {
          const left = Math.round((100 * latest.pwr_w_l) / total);
          const balance = document.createElement("dd");
          balance.className = "balance";
          balance.textContent = "L " + left + " / R " + (100 - left) + " %";
          shown.balance = balance.textContent;
          balanceItem = balance;
        }
      }
      item.append(dt, dd);
      if (balanceItem) item.appendChild(balanceItem);
      frag.appendChild(item);
    }
    el.values.replaceChildren(frag);
    state.values = shown;
  }

  function latestValues() {
    // For each field, the value of the newest sample that has it (phones send fields at different rates).
    const wanted = new Set(VALUE_FIELDS.map((v) => v.key).concat(["pwr_w_l", "pwr_w_r"]));
    const found = {};
    for (let i = samples.length - 1; i >= 0 && wanted.size > 0; i--) {
      const f = samples[i].f;
      for (const key of Array.from(wanted)) {
        if (typeof f[key] === "number") {
          found[key] = f[key];
          wanted.delete(key);
        }
      }
    }
    return found;
  }

  // ---- charts ---------------------------------------------------------------------------------------
  const charts = new Map(); // key -> {plot, figure, readout}
  let zoomRange = null; // {min, max} in seconds when the viewer zoomed in, else null (whole window)
  let syncingScale = false;

  function chartValue(key, f) {
    if (key === "pwr_w" && typeof f.pwr_w !== "number" && typeof f.pwr_w_l === "number" && typeof f.pwr_w_r === "number") {
      return f.pwr_w_l + f.pwr_w_r;
    }
    return typeof f[key] === "number" ? f[key] : undefined;
  }

  function chartSize() {
    const width = Math.max(200, Math.floor(el.charts.clientWidth));
    const height = window.matchMedia("(max-width: 899px)").matches ? 100 : 110;
    return { width: width, height: height };
  }

  function xBounds() {
    if (zoomRange) return zoomRange;
    const b = windowBounds();
    if (windowSpec.name === "custom") return { min: b.fromMs / 1000, max: b.toMs / 1000 };
    // From the first sample (or the window's start) to now: a ride that began 2 minutes ago fills the
    // chart instead of hugging its right edge; at least a minute is shown.
    let max = Date.now();
    let min = b.fromMs;
    if (samples.length) {
      max = Math.max(max, samples[samples.length - 1].t / 1e6);
      min = Math.max(min, samples[0].t / 1e6);
    }
    min = Math.min(min, max - 60e3);
    return { min: min / 1000, max: max / 1000 };
  }

  function makeChart(spec) {
    const figure = document.createElement("figure");
    figure.className = "chart chart-" + spec.key;
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "chart-name";
    name.textContent = spec.label + " (" + spec.unit + ")";
    const readout = document.createElement("span");
    readout.className = "chart-readout";
    caption.append(name, readout);
    const holder = document.createElement("div");
    figure.append(caption, holder);
    // Keep the charts in a fixed order whatever order their fields first appear in.
    const order = CHART_FIELDS.map((c) => c.key);
    let before = null;
    for (const other of el.charts.children) {
      if (order.indexOf(other.dataset.key) > order.indexOf(spec.key)) {
        before = other;
        break;
      }
    }
    figure.dataset.key = spec.key;
    el.charts.insertBefore(figure, before);
    const size = chartSize();
    const axisStyle = { stroke: "#1a1a1a", grid: { stroke: "#d5d9de", width: 1 }, ticks: { stroke: "#9aa3ad", width: 1 }, font: "12px system-ui, sans-serif" };
    const plot = new uPlot(
      {
        width: size.width,
        height: size.height,
        legend: { show: false },
        scales: { x: { time: true } },
        cursor: {
          sync: { key: "tracker-watch" },
          drag: { x: true, y: false, setScale: false },
          points: { size: 8 },
          bind: {
            // Double-click goes back to the whole window (uPlot's own handler would fit the data).
            dblclick: () => () => {
              zoomRange = null;
              applyXScale();
              return null;
            },
          },
        },
        axes: [
          Object.assign({ size: 26, space: 72, values: (u, splits) => splits.map((v) => formatClock(v, u)) }, axisStyle),
          Object.assign({ size: 44 }, axisStyle),
        ],
        series: [{}, { label: spec.label, stroke: spec.color, width: 2, fill: spec.color + "1f", points: { show: false } }],
        hooks: {
          setSelect: [
            (u) => {
              if (u.select.width > 4) {
                zoomRange = { min: u.posToVal(u.select.left, "x"), max: u.posToVal(u.select.left + u.select.width, "x") };
                applyXScale();
              }
              u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            },
          ],
          setCursor: [(u) => onChartCursor(u, spec, readout)],
        },
      },
      [[], []],
      holder
    );
    const chart = { plot: plot, figure: figure, readout: readout };
    charts.set(spec.key, chart);
    return chart;
  }

  function renderCharts() {
    const counts = {};
    for (const spec of CHART_FIELDS) {
      const xs = [];
      const ys = [];
      for (const s of samples) {
        const v = chartValue(spec.key, s.f);
        if (v !== undefined) {
          xs.push(s.t / 1e9);
          ys.push(v);
        }
      }
      counts[spec.key] = xs.length;
      let chart = charts.get(spec.key);
      if (xs.length === 0) {
        if (chart) chart.figure.hidden = true;
        continue;
      }
      if (!chart) chart = makeChart(spec);
      chart.figure.hidden = false;
      chart.plot.setData([xs, ys], false);
    }
    state.chartPoints = counts;
    el.chartHint.hidden = !Object.values(counts).some((n) => n > 1);
    applyXScale();
  }

  function applyXScale() {
    const x = xBounds();
    state.zoom = zoomRange ? { min: zoomRange.min, max: zoomRange.max } : null;
    syncingScale = true;
    for (const chart of charts.values()) {
      if (!chart.figure.hidden) chart.plot.setScale("x", { min: x.min, max: x.max });
    }
    syncingScale = false;
  }

  function onChartCursor(u, spec, readout) {
    const idx = u.cursor.idx;
    if (idx === null || idx === undefined || u.data[0].length === 0) {
      readout.textContent = "";
      if (map.hasLayer(hoverMarker)) hoverMarker.remove();
      state.hover = null;
      return;
    }
    const tSec = u.data[0][idx];
    const v = u.data[1][idx];
    readout.textContent = (v === null || v === undefined ? "" : Math.round(v * 10) / 10 + " " + spec.unit) + " · " + new Date(tSec * 1000).toLocaleTimeString();
    // The crosshair's time on the map: the fix nearest to it.
    const fix = nearestFix(tSec * 1e9);
    if (fix) {
      hoverMarker.setLatLng([fix.f.lat, fix.f.lng]);
      if (!map.hasLayer(hoverMarker)) hoverMarker.addTo(map);
      state.hover = [fix.f.lat, fix.f.lng];
    }
  }

  function nearestFix(tNs) {
    let lo = 0;
    let hi = samples.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (samples[mid].t < tNs) lo = mid + 1;
      else hi = mid;
    }
    const isFix = (s) => typeof s.f.lat === "number" && typeof s.f.lng === "number";
    let after = lo;
    while (after < samples.length && !isFix(samples[after])) after++;
    let before = lo - 1;
    while (before >= 0 && !isFix(samples[before])) before--;
    const a = before >= 0 ? samples[before] : null;
    const b = after < samples.length ? samples[after] : null;
    if (a && b) return tNs - a.t <= b.t - tNs ? a : b;
    return a || b;
  }

  new ResizeObserver(() => {
    const size = chartSize();
    for (const chart of charts.values()) chart.plot.setSize(size);
    map.invalidateSize();
  }).observe(document.querySelector(".layout"));

  // ---- once a second: the badge's "... ago", the sliding window's left edge ------------------------
  setInterval(() => {
    updateStatus();
    if (!el.devices.hidden) renderDevices();
    if (SLIDING_WINDOWS[windowSpec.name]) {
      const cutoffNs = (Date.now() - SLIDING_WINDOWS[windowSpec.name]) * 1e6;
      let drop = 0;
      while (drop < samples.length && samples[drop].t < cutoffNs) drop++;
      if (drop > 0) {
        samples.splice(0, drop);
        state.sampleCount = samples.length;
        scheduleRender();
      } else if (!zoomRange && charts.size) {
        applyXScale(); // the window slides: keep "now" at the right edge
      }
    }
  }, 1000);

  // ---- helpers --------------------------------------------------------------------------------------
  function positiveNumber(text, fallback) {
    const n = Number(text);
    return text !== null && Number.isFinite(n) && n > 0 ? n : fallback;
  }

  function formatDuration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(sec).padStart(2, "0");
  }

  function formatClock(seconds, u) {
    // Axis labels: local clock time, with seconds when the visible span is short, the date when long.
    const d = new Date(seconds * 1000);
    const span = u.scales.x.max - u.scales.x.min;
    const hm = String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
    if (span < 300) return hm + ":" + String(d.getSeconds()).padStart(2, "0");
    if (span > 2 * 86400) return d.getDate() + "/" + (d.getMonth() + 1) + " " + hm;
    return hm;
  }


  function bearingBetween(a, b) {
    const rad = Math.PI / 180;
    const y = Math.sin((b.lng - a.lng) * rad) * Math.cos(b.lat * rad);
    const x = Math.cos(a.lat * rad) * Math.sin(b.lat * rad) - Math.sin(a.lat * rad) * Math.cos(b.lat * rad) * Math.cos((b.lng - a.lng) * rad);
    return (Math.atan2(y, x) / rad + 360) % 360;
  }

  function toLocalInput(ms) {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
    return d.toISOString().slice(0, 19);
  }

  function plainText(html) {
    // Attribution from the server's settings may carry HTML; show it as text, never as markup.
    return new DOMParser().parseFromString(String(html || ""), "text/html").body.textContent || "";
  }

  function escapeHtml(text) {
    const div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML;
  }

  // ---- start ----------------------------------------------------------------------------------------
  async function loadConfig() {
    const q = token ? "?token=" + encodeURIComponent(token) : "";
    try {
      const res = await fetch(apiBase + "/config" + q, { credentials: "same-origin", cache: "no-store" });
      if (!res.ok) return;
      const config = await res.json();
      if (!config.tile_url) return;
      const tiles = L.tileLayer(config.tile_url, {
        maxZoom: 19,
        attribution: escapeHtml(plainText(config.tile_attribution)),
        crossOrigin: false,
      });
      tiles.on("tileerror", (e) => {
        // No internet, or no tile server: keep the blank background instead of broken-image icons.
        e.tile.style.visibility = "hidden";
        state.tilesFailed += 1;
        if (state.tilesFailed === 1) {
          el.mapNote.textContent = "Map tiles unavailable: the track is drawn without a background map.";
          el.mapNote.hidden = false;
        }
      });
      tiles.on("tileload", () => {
        el.mapNote.hidden = true;
      });
      tiles.addTo(map);
    } catch (err) {
      /* no config: the map stays blank, everything else works */
    }
  }

  setWindow(windowSpec, false); // buttons and URL
  const firstLoad = loadWindow({ fit: true });
  loadConfig();
  loadDevices();
  firstLoad.then((lastEventId) => {
    if (lastEventId === null && state.error) scheduleReconnect();
    else connect(lastEventId);
  });
  updateStatus();
})();
