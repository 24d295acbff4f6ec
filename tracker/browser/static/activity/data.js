// Pure logic of the activity page: no DOM, so Node's test runner can run it.
//
// Samples are the live view's shape ([{t: ns, f: {field: value}}], sorted by time), made from the
// activity API's columns and rows, so that watch/map.js and watch/charts.js draw them as they are.
import { formatDuration } from "../watch/fields.js";

// {columns: ["time", key...], values: [[ns, v...]]} -> [{t, f}]; a null value is left out of f.
export function samplesFromRows(columns, values) {
  const keys = columns.slice(1);
  return values.map((row) => {
    const f = {};
    for (let i = 0; i < keys.length; i++) {
      const v = row[i + 1];
      if (typeof v === "number") f[keys[i]] = v;
    }
    return { t: row[0], f: f };
  });
}

// The index of the sample with a position nearest to (lat, lng), or -1 without positions. Distances
// on a plane scaled by cos(latitude): exact enough to pick the nearest of a route's points.
export function nearestIndex(samples, lat, lng) {
  const k = Math.cos((lat * Math.PI) / 180);
  let best = -1;
  let bestD = Infinity;
  for (let i = 0; i < samples.length; i++) {
    const f = samples[i].f;
    if (typeof f.lat !== "number" || typeof f.lng !== "number") continue;
    const dy = f.lat - lat;
    const dx = (f.lng - lng) * k;
    const d = dx * dx + dy * dy;
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

const round = (v) => String(Math.round(v));
const fixed = (digits) => (v) => v.toFixed(digits);

// The summary's keys (tracker/activities/summary.py SUMMARY_KEYS) as shown: label, unit, format.
// Zones are bars (zoneBars), the bounding box is the map's.
const SUMMARY_SHOWN = [
  ["elapsed_s", "Elapsed", "", formatDuration],
  ["moving_s", "Moving time", "", formatDuration],
  ["distance_m", "Distance", "km", (v) => (v / 1000).toFixed(2)],
  ["speed_avg_kph", "Average speed (moving)", "km/h", fixed(1)],
  ["speed_max_kph", "Max speed", "km/h", fixed(1)],
  ["elev_gain_m", "Climbed", "m", round],
  ["elev_loss_m", "Descended", "m", round],
  ["hr_avg_bpm", "Average heart rate", "bpm", round],
  ["hr_max_bpm", "Max heart rate", "bpm", round],
  ["pwr_avg_w", "Average power", "W", round],
  ["pwr_max_w", "Max power", "W", round],
  ["np_w", "Normalized power", "W", round],
  ["cad_avg_rpm", "Average cadence", "rpm", round],
  ["cad_max_rpm", "Max cadence", "rpm", round],
  ["temp_avg_c", "Average temperature", "°C", fixed(1)],
  ["samples", "Samples", "", round],
];
const DISTANCE_SOURCES = { dist_km: "from the device's distance", positions: "from the positions" };

// [{key, label, text, note}] for the summary's values that are there (null: the samples say nothing).
export function summaryRows(summary) {
  const rows = [];
  if (!summary) return rows;
  for (const [key, label, unit, format] of SUMMARY_SHOWN) {
    const v = summary[key];
    if (typeof v !== "number") continue;
    const row = { key: key, label: label, text: format(v) + (unit ? " " + unit : ""), note: null };
    if (key === "distance_m") row.note = DISTANCE_SOURCES[summary.distance_source] || null;
    rows.push(row);
  }
  return rows;
}

// Seconds per zone -> [{zone: 1.., seconds, text, percent}] for bars; [] without zones.
export function zoneBars(seconds) {
  if (!Array.isArray(seconds) || seconds.length === 0) return [];
  const total = seconds.reduce((a, b) => a + b, 0);
  return seconds.map((s, i) => ({
    zone: i + 1,
    seconds: s,
    text: formatDuration(s),
    percent: total > 0 ? (100 * s) / total : 0,
  }));
}

// A lap's cells as the table shows them, in LAP_COLUMNS order; "–" where the lap has no value.
export const LAP_COLUMNS = ["Lap", "Distance (km)", "Time", "Moving", "Speed (km/h)", "Heart rate", "Power (W)", "Cadence", "Climb (m)"];
export function lapCells(lap) {
  const or = (v, format) => (typeof v === "number" ? format(v) : "–");
  return [
    String(lap.lap),
    or(lap.distance_m, (v) => (v / 1000).toFixed(2)),
    or(lap.elapsed_s, formatDuration),
    or(lap.moving_s, formatDuration),
    or(lap.speed_avg_kph, fixed(1)),
    or(lap.hr_avg_bpm, round),
    or(lap.pwr_avg_w, round),
    or(lap.cad_avg_rpm, round),
    or(lap.elev_gain_m, round),
  ];
}

// "1.5" km -> 1500 m for the laps' every_m; null unless a number from 0.01 to 1000 km.
export function lapMetres(text) {
  const km = Number(String(text).trim().replace(",", "."));
  if (!Number.isFinite(km) || km < 0.01 || km > 1000) return null;
  return Math.round(km * 1000);
}

// The activity right after `current` on its track (same device and sport), from a list; or null.
export function nextOnTrack(activities, current) {
  let next = null;
  for (const a of activities) {
    if (a.id === current.id || a.device !== current.device || a.sport !== current.sport) continue;
    if (a.start_ns <= current.end_ns) continue;
    if (next === null || a.start_ns < next.start_ns) next = a;
  }
  return next;
}
