// Pure logic of the ride summary: no DOM, so Node's test runner can run it.
// Samples are the live view's ([{t: ns, f: {field: value}}], sorted by time).
import { fieldValue, formatDuration } from "./fields.js";

export const EARTH_RADIUS_KM = 6371.0088; // the mean radius
// A climb counts once the altitude rose this far above the lowest point since the last counted
// climb (and a descent resets that point only once it fell this far): GPS altitude wanders by a few
// metres, and without this the noise of a flat ride adds up to hills.
export const ELEVATION_THRESHOLD_M = 5;

// Great-circle distance in km between two {lat, lng}.
export function haversineKm(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLng = (b.lng - a.lng) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

// The distance covered in km: from the device's own dist_km when at least two samples have it (its
// increases summed, so a counter reset to 0 mid-window does not subtract), else the positions
// joined with the haversine formula. {km, from: "dist_km" | "positions"}, or null without either.
export function distanceKm(samples) {
  let previous = null;
  let counted = 0;
  let km = 0;
  for (const s of samples) {
    const d = s.f.dist_km;
    if (typeof d !== "number") continue;
    if (previous !== null && d > previous) km += d - previous;
    previous = d;
    counted++;
  }
  if (counted >= 2) return { km: km, from: "dist_km" };
  let fix = null;
  let fixes = 0;
  km = 0;
  for (const s of samples) {
    if (typeof s.f.lat !== "number" || typeof s.f.lng !== "number") continue;
    const here = { lat: s.f.lat, lng: s.f.lng };
    if (fix) km += haversineKm(fix, here);
    fix = here;
    fixes++;
  }
  return fixes >= 2 ? { km: km, from: "positions" } : null;
}

// Metres climbed, with a hysteresis of thresholdM so that altitude noise does not count; null
// without two altitudes.
export function elevationGainM(altitudes, thresholdM = ELEVATION_THRESHOLD_M) {
  if (altitudes.length < 2) return null;
  let gain = 0;
  let reference = altitudes[0];
  for (const alt of altitudes) {
    if (alt >= reference + thresholdM) {
      gain += alt - reference;
      reference = alt;
    } else if (alt <= reference - thresholdM) {
      reference = alt;
    }
  }
  return gain;
}

// {avg, max, min, last, count} of one field's values (power: the legs' sum when only they came), or null.
export function fieldStats(samples, key) {
  let sum = 0;
  let count = 0;
  let max = -Infinity;
  let min = Infinity;
  let last = null;
  for (const s of samples) {
    const v = fieldValue(key, s.f);
    if (v === undefined) continue;
    sum += v;
    count++;
    if (v > max) max = v;
    if (v < min) min = v;
    last = v;
  }
  return count ? { avg: sum / count, max: max, min: min, last: last, count: count } : null;
}

// The window's ride summary: {elapsedS, distance, speed, hr, power, elevationGainM, battery, gsmSignal}
// (each null when the window has nothing for it). Averages are of the samples; without a speed
// field the average speed is the distance over the elapsed time.
export function rideSummary(samples) {
  if (samples.length === 0) return null;
  const elapsedS = (samples[samples.length - 1].t - samples[0].t) / 1e9;
  const distance = distanceKm(samples);
  let speed = fieldStats(samples, "spd_kph");
  if (!speed && distance && elapsedS > 0) speed = { avg: distance.km / (elapsedS / 3600), max: null };
  const altitudes = [];
  for (const s of samples) if (typeof s.f.alt_m === "number") altitudes.push(s.f.alt_m);
  const battery = fieldStats(samples, "battery");
  const gsm = fieldStats(samples, "gsm_signal");
  return {
    elapsedS: elapsedS,
    distance: distance,
    speed: speed ? { avg: speed.avg, max: speed.max } : null,
    hr: pick(fieldStats(samples, "hr_bpm")),
    power: pick(fieldStats(samples, "pwr_w")),
    elevationGainM: elevationGainM(altitudes),
    battery: battery ? battery.last : null,
    gsmSignal: gsm ? gsm.last : null,
  };
}

function pick(stats) {
  return stats ? { avg: stats.avg, max: stats.max } : null;
}

// The summary as rows to show: [{key, label, text}], only what the window has.
export function summaryRows(summary) {
  if (!summary) return [];
  const rows = [{ key: "elapsed", label: "Elapsed", text: formatDuration(summary.elapsedS) }];
  if (summary.distance) rows.push({ key: "distance", label: "Distance", text: summary.distance.km.toFixed(2) + " km" });
  const avgMax = (key, label, s, digits, unit) => {
    if (!s) return;
    const avg = s.avg.toFixed(digits);
    const text = s.max === null ? "avg " + avg + " " + unit : "avg " + avg + " · max " + s.max.toFixed(digits) + " " + unit;
    rows.push({ key: key, label: label, text: text });
  };
  avgMax("speed", "Speed", summary.speed, 1, "km/h");
  avgMax("hr", "Heart rate", summary.hr, 0, "bpm");
  avgMax("power", "Power", summary.power, 0, "W");
  if (summary.elevationGainM !== null) rows.push({ key: "climb", label: "Climbed", text: Math.round(summary.elevationGainM) + " m" });
  if (summary.battery !== null) rows.push({ key: "battery", label: "Phone battery", text: Math.round(summary.battery) + " %" });
  if (summary.gsmSignal !== null) rows.push({ key: "gsm_signal", label: "Phone signal", text: Math.round(summary.gsmSignal) + " %" });
  return rows;
}
