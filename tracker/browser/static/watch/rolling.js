// Pure logic of the rolling statistics, as livetracking.io showed them: last / average / min / max of
// the main fields over the last 3 s, 1 min, 5 min and 10 min. No DOM, so Node's test runner can run it.
import { fieldValue, formatValue } from "./fields.js";

export const ROLLING_SPANS = [
  { seconds: 3, label: "3 s" },
  { seconds: 60, label: "1 min" },
  { seconds: 300, label: "5 min" },
  { seconds: 600, label: "10 min" },
];
// The fields they are shown for, in this order (when the server lists them and they arrived).
export const ROLLING_FIELDS = ["spd_kph", "hr_bpm", "pwr_w", "cad_rpm"];

// Last / average / min / max of one field over each span ending at endNs (samples after endNs are
// left out): [{label, seconds, last, avg, min, max, count}], the values null for a span without any.
// Walks back from the end only as far as the longest span.
export function rollingStats(samples, key, endNs, spans = ROLLING_SPANS) {
  const acc = spans.map((span) => ({ label: span.label, seconds: span.seconds, last: null, sum: 0, min: Infinity, max: -Infinity, count: 0 }));
  const longestNs = Math.max(...spans.map((span) => span.seconds)) * 1e9;
  for (let i = samples.length - 1; i >= 0; i--) {
    const s = samples[i];
    if (s.t > endNs) continue;
    const ageNs = endNs - s.t;
    if (ageNs >= longestNs) break;
    const v = fieldValue(key, s.f);
    if (v === undefined) continue;
    for (const a of acc) {
      if (ageNs >= a.seconds * 1e9) continue; // 3 s at 1 Hz: 3 samples
      if (a.last === null) a.last = v;
      a.sum += v;
      a.count++;
      if (v < a.min) a.min = v;
      if (v > a.max) a.max = v;
    }
  }
  return acc.map((a) => ({
    label: a.label,
    seconds: a.seconds,
    last: a.last,
    avg: a.count ? a.sum / a.count : null,
    min: a.count ? a.min : null,
    max: a.count ? a.max : null,
    count: a.count,
  }));
}

// The rolling statistics' tables: one per main field that has a value in the longest span,
// [{key, label, unit, rows: [{label, cells: [last, avg, min, max] as text ("–" for none)}]}].
// valueFields: the panel's fields (fields.js), for labels, units and digits.
export function rollingTables(samples, valueFields, endNs) {
  const tables = [];
  for (const key of ROLLING_FIELDS) {
    const field = valueFields.find((f) => f.key === key);
    if (!field) continue;
    const stats = rollingStats(samples, key, endNs);
    if (!stats.some((row) => row.count > 0)) continue;
    const text = (v) => (v === null ? "–" : formatValue(field, v));
    tables.push({
      key: key,
      label: field.label,
      unit: field.unit,
      rows: stats.map((row) => ({ label: row.label, cells: [text(row.last), text(row.avg), text(row.min), text(row.max)] })),
    });
  }
  return tables;
}
