// Pure logic of the live view's samples: no DOM, no network, so Node's test runner can run it.
//
// Samples are kept in one array sorted by time ([{t: ns (number), f: {field: value}}]); a sample at a
// time already held merges into it, field by field, newest value winning (the server's rule too).

// The sliding windows, in ms; "today" and "custom" are the other windows.
export const SLIDING_WINDOWS = { "10m": 10 * 60e3, "1h": 3600e3, "8h": 8 * 3600e3 };

// Index of the first sample at or after tNs.
function lowerBound(samples, tNs) {
  let lo = 0;
  let hi = samples.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (samples[mid].t < tNs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Put one sample in its place (the array is changed); late or out-of-order samples simply fall into place.
export function insertSample(samples, sample) {
  const t = sample.t;
  const n = samples.length;
  if (n === 0 || samples[n - 1].t < t) {
    samples.push({ t: t, f: Object.assign({}, sample.f) });
    return;
  }
  const i = lowerBound(samples, t);
  if (samples[i].t === t) Object.assign(samples[i].f, sample.f);
  else samples.splice(i, 0, { t: t, f: Object.assign({}, sample.f) });
}

// The time (ms since epoch) of the newest of `incoming`, or `newestMs` if that is later (or null if none),
// never after nowMs: a sample from a clock that runs ahead counts as seen now (the server's rule too),
// so "live" ends on time after the phone stops.
export function newestMs(incoming, newestMs, nowMs = Infinity) {
  let newest = newestMs;
  for (const s of incoming) {
    const ms = Math.min(s.t / 1e6, nowMs);
    if (newest === null || newest === undefined || ms > newest) newest = ms;
  }
  return newest === undefined ? null : newest;
}

// How far the server's clock is ahead of the browser's, in ms, from an answer's Date header (whole
// seconds, so the server's time was in [serverDateMs, serverDateMs + 1000)) and when the request
// went (sentMs) and its answer came (receivedMs). 0 when they agree within 2 s: the header cannot
// tell finer, and a viewer whose clock is slow must still see samples the moment they arrive.
export function clockOffsetMs(serverDateMs, sentMs, receivedMs) {
  if (!Number.isFinite(serverDateMs)) return 0;
  const offset = serverDateMs + 500 - (sentMs + receivedMs) / 2;
  return Math.abs(offset) <= 2000 ? 0 : Math.round(offset);
}

// The samples at or before nowNs: what is drawn (marker, track, values, charts, summary). A sample
// from a clock that runs ahead waits until its time comes, so the marker never sits on a point the
// rider has not reached while the track goes on. The same array when nothing is ahead.
export function drawnSamples(samples, nowNs) {
  const n = samples.length;
  if (n === 0 || samples[n - 1].t <= nowNs) return samples;
  return samples.slice(0, lowerBound(samples, nowNs + 1));
}

// Drop the samples older than cutoffNs (the array is changed); returns how many went.
export function dropBefore(samples, cutoffNs) {
  let drop = 0;
  while (drop < samples.length && samples[drop].t < cutoffNs) drop++;
  if (drop > 0) samples.splice(0, drop);
  return drop;
}

// ---- time windows ---------------------------------------------------------------------------------

// The window a page address asks for (?window=1h, ?window=custom&from=...&to=...); "10m" otherwise.
export function parseWindow(params) {
  const w = params.get("window");
  if (w === "custom") {
    const from = Date.parse(params.get("from") || "");
    const to = Date.parse(params.get("to") || "");
    if (from < to) return { name: "custom", fromMs: from, toMs: to };
  }
  if (w === "today" || (w && Object.prototype.hasOwnProperty.call(SLIDING_WINDOWS, w))) return { name: w };
  return { name: "10m" };
}

// The page address's query for a window: the other parameters kept, the window's own replaced.
export function windowQuery(search, spec) {
  const q = new URLSearchParams(search);
  q.delete("from");
  q.delete("to");
  if (spec.name === "10m") q.delete("window");
  else q.set("window", spec.name);
  if (spec.name === "custom") {
    q.set("from", new Date(spec.fromMs).toISOString());
    q.set("to", new Date(spec.toMs).toISOString());
  }
  return q.toString();
}

// {fromMs, toMs} in ms since epoch; toMs null means "open": live samples keep arriving at the end.
// "today" starts at local midnight.
export function windowBounds(spec, nowMs) {
  if (spec.name === "custom") return { fromMs: spec.fromMs, toMs: spec.toMs };
  if (spec.name === "today") {
    const midnight = new Date(nowMs);
    midnight.setHours(0, 0, 0, 0);
    return { fromMs: midnight.getTime(), toMs: null };
  }
  return { fromMs: nowMs - SLIDING_WINDOWS[spec.name], toMs: null };
}

export function inWindow(bounds, tNs) {
  const ms = tNs / 1e6;
  return ms >= bounds.fromMs && (bounds.toMs === null || ms < bounds.toMs);
}

// Exact nanoseconds as a decimal string (a number would lose digits past 2^53).
export function msToNsString(ms) {
  return (BigInt(Math.round(ms)) * 1000000n).toString();
}

// The charts' x range in seconds: a custom window whole; otherwise from the first sample (or the
// window's start) to now, so a ride that began 2 minutes ago fills the chart; at least a minute.
// Never past now: a sample from a clock that runs ahead must not stretch the axis.
export function chartRange(spec, bounds, samples, nowMs) {
  if (spec.name === "custom") return { min: bounds.fromMs / 1000, max: bounds.toMs / 1000 };
  const max = nowMs;
  let min = bounds.fromMs;
  if (samples.length) min = Math.max(min, Math.min(samples[0].t / 1e6, max));
  min = Math.min(min, max - 60e3);
  return { min: min / 1000, max: max / 1000 };
}

// ---- latest values --------------------------------------------------------------------------------

// For each wanted field, the value of the newest sample that has it (phones send fields at different
// rates), and that sample's time: {values: {key: value}, times: {key: ns}}.
export function latestValues(samples, keys) {
  const wanted = new Set(keys);
  const values = {};
  const times = {};
  for (let i = samples.length - 1; i >= 0 && wanted.size > 0; i--) {
    const f = samples[i].f;
    for (const key of Array.from(wanted)) {
      if (typeof f[key] === "number") {
        values[key] = f[key];
        times[key] = samples[i].t;
        wanted.delete(key);
      }
    }
  }
  return { values: values, times: times };
}

// How old each latest value is, in ms, at nowMs.
export function valueAges(times, nowMs) {
  const ages = {};
  for (const key of Object.keys(times)) ages[key] = Math.max(0, nowMs - times[key] / 1e6);
  return ages;
}

// The panel's values older than staleMs at nowMs, with their ages in ms: {key: ageMs}. A sensor that
// stopped (a heart-rate strap out of range) must not read as current beside a "live" badge. Power
// sent only as the legs' values is as old as the older leg.
export function staleValues(times, nowMs, staleMs) {
  const ages = valueAges(times, nowMs);
  if (ages.pwr_w === undefined && ages.pwr_w_l !== undefined && ages.pwr_w_r !== undefined) {
    ages.pwr_w = Math.max(ages.pwr_w_l, ages.pwr_w_r);
  }
  const stale = {};
  for (const key of Object.keys(ages)) if (ages[key] > staleMs) stale[key] = ages[key];
  return stale;
}

// The status badge: {status, text}. formatAgo turns an age in ms into words ("12 s ago").
export function streamStatus(s, nowMs, staleMs, formatAgo) {
  // A share link that ended is no network fault: the badge says what happened.
  if (s.linkEnded) return { status: "ended", text: "link " + s.linkEnded };
  if (!s.connected) {
    const status = s.streamFailed || s.error ? "offline" : "connecting";
    return { status: status, text: status };
  }
  if (s.lastSampleTime === null) return { status: "waiting", text: "live · no samples yet" };
  const ago = nowMs - s.lastSampleTime;
  if (ago <= staleMs) return { status: "live", text: "live" };
  return { status: "stale", text: "last sample " + formatAgo(ago) };
}

// What the page says when the server refuses access: {text, linkEnded} (linkEnded: "revoked",
// "expired" or null). body is the refusal's JSON ({error, reason}); user the watched name.
export function accessProblem(status, body, user) {
  const reason = body && typeof body.reason === "string" ? body.reason : "";
  const ended = reason === "link_revoked" ? "revoked" : reason === "link_expired" ? "expired" : null;
  if (ended) {
    const what = ended === "revoked" ? "was revoked by " + user : "has expired";
    return { text: "This share link " + what + ". Ask " + user + " for a new link.", linkEnded: ended };
  }
  let text;
  if (status === 401) text = "This tracker is private. Sign in on the home page, or open the share link you were given.";
  else if (status === 403) text = (body && body.error) || "You are not allowed to watch this tracker.";
  else if (status === 404) text = "There is no tracker with this name.";
  else text = "The server answered " + status + ".";
  return { text: text, linkEnded: null };
}

// ---- position fixes -------------------------------------------------------------------------------

export function isFix(s) {
  return typeof s.f.lat === "number" && typeof s.f.lng === "number";
}

// The track's points, the newest fix and the one before it.
export function track(samples) {
  const latlngs = [];
  let lastFix = null;
  let fixBefore = null;
  for (const s of samples) {
    if (isFix(s)) {
      latlngs.push([s.f.lat, s.f.lng]);
      fixBefore = lastFix;
      lastFix = s;
    }
  }
  return { latlngs: latlngs, lastFix: lastFix, fixBefore: fixBefore };
}

// The fix nearest in time to tNs (the earlier one on a tie), or null.
export function nearestFix(samples, tNs) {
  const lo = lowerBound(samples, tNs);
  let after = lo;
  while (after < samples.length && !isFix(samples[after])) after++;
  let before = lo - 1;
  while (before >= 0 && !isFix(samples[before])) before--;
  const a = before >= 0 ? samples[before] : null;
  const b = after < samples.length ? samples[after] : null;
  if (a && b) return tNs - a.t <= b.t - tNs ? a : b;
  return a || b;
}

// Compass bearing in degrees (0 = north, 90 = east) from fix a to fix b ({lat, lng}).
export function bearingBetween(a, b) {
  const rad = Math.PI / 180;
  const y = Math.sin((b.lng - a.lng) * rad) * Math.cos(b.lat * rad);
  const x = Math.cos(a.lat * rad) * Math.sin(b.lat * rad) - Math.sin(a.lat * rad) * Math.cos(b.lat * rad) * Math.cos((b.lng - a.lng) * rad);
  return (Math.atan2(y, x) / rad + 360) % 360;
}
