// Pure logic of which fields the live view shows and how: no DOM, so Node's test runner can run it.
//
// The server's /api/watch/NAME/config lists the fields it stores ({key, unit, meaning}): every one of
// them that arrives is shown, with the server's unit, the main ones first and the rest in the server's
// order. What stays here is presentation: short labels, how many digits, the charts' colours, and
// short spellings of a few units; a field without any is labelled with the server's meaning.

// The main fields, first in the panel in this order. format: digits after the point, or "duration"
// (h:mm:ss, no unit). chart: colour, when charted.
const MAIN = ["spd_kph", "hr_bpm", "pwr_w", "cad_rpm", "alt_m"];
const PRESENTATION = {
  spd_kph: { label: "Speed", format: 1, chart: "#0b3d91", chartOrder: 3 },
  hr_bpm: { label: "Heart rate", format: 0, chart: "#b3001b", chartOrder: 0 },
  pwr_w: { label: "Power", format: 0, chart: "#6a1b9a", chartOrder: 1 },
  cad_rpm: { label: "Cadence", format: 0, chart: "#00695c", chartOrder: 2 },
  alt_m: { label: "Altitude", format: 0, chart: "#6d4c41", chartOrder: 4 },
  dist_km: { label: "Distance", format: 2 },
  dur_s: { label: "Duration", format: "duration" },
  acc_m: { label: "GPS accuracy", format: 0 },
  bearing: { label: "Heading", format: 0 },
  temp_c: { label: "Temperature", format: 1 },
  battery: { label: "Battery", format: 0 },
  gsm_signal: { label: "GSM signal", format: 0 },
  pwr_w_l: { label: "Power left", format: 0 },
  pwr_w_r: { label: "Power right", format: 0 },
};
// The position is the map's to show.
const NOT_IN_PANEL = new Set(["lat", "lng"]);
const SHORT_UNITS = { "beats/min": "bpm", "rev/min": "rpm", deg: "°" };

function shortUnit(unit) {
  return Object.prototype.hasOwnProperty.call(SHORT_UNITS, unit) ? SHORT_UNITS[unit] : unit || "";
}

function capitalised(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

// From the config the server sends: {values: [{key, label, unit, format}], charts: [{key, label, unit, color}]}.
// Fields the server does not list are left out; a field this page has no presentation for is
// labelled with the server's meaning, to one decimal.
export function fieldsFromConfig(config) {
  const known = new Map();
  for (const f of (config && Array.isArray(config.fields) ? config.fields : [])) {
    if (f && typeof f.key === "string" && !NOT_IN_PANEL.has(f.key)) known.set(f.key, f);
  }
  const order = MAIN.filter((key) => known.has(key)).concat(Array.from(known.keys()).filter((key) => !MAIN.includes(key)));
  const values = [];
  const charts = [];
  for (const key of order) {
    const f = known.get(key);
    const p = Object.prototype.hasOwnProperty.call(PRESENTATION, key) ? PRESENTATION[key] : null;
    const format = p ? p.format : 1;
    const unit = format === "duration" ? "" : shortUnit(f.unit);
    const label = p ? p.label : capitalised(f.meaning || key);
    values.push({ key: key, label: label, unit: unit, format: format });
    if (p && p.chart) charts.push({ key: key, label: label, unit: unit, color: p.chart, order: p.chartOrder });
  }
  charts.sort((a, b) => a.order - b.order);
  return { values: values, charts: charts.map((c) => ({ key: c.key, label: c.label, unit: c.unit, color: c.color })) };
}

// The fields whose latest values the panel needs (the legs' power makes the total when it is missing).
export function wantedKeys(valueFields) {
  return valueFields.map((v) => v.key).concat(["pwr_w_l", "pwr_w_r"]);
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(sec).padStart(2, "0");
}

export function formatValue(field, value) {
  if (field.format === "duration") return formatDuration(value);
  return field.format === 0 ? Math.round(value).toString() : value.toFixed(field.format);
}

// A field's value in one sample's fields; power is the legs' sum when only they were sent.
export function fieldValue(key, f) {
  if (key === "pwr_w" && typeof f.pwr_w !== "number" && typeof f.pwr_w_l === "number" && typeof f.pwr_w_r === "number") {
    return f.pwr_w_l + f.pwr_w_r;
  }
  return typeof f[key] === "number" ? f[key] : undefined;
}

// "L 48 / R 52 %" from the latest left and right power, or null.
export function powerBalance(latest) {
  if (latest.pwr_w_l === undefined || latest.pwr_w_r === undefined) return null;
  const total = latest.pwr_w_l + latest.pwr_w_r;
  if (!(total > 0)) return null;
  const left = Math.round((100 * latest.pwr_w_l) / total);
  return "L " + left + " / R " + (100 - left) + " %";
}

// The panel's rows from the latest values: [{key, label, unit, text, balance}] (balance only for power).
export function panelRows(valueFields, latest) {
  const rows = [];
  for (const field of valueFields) {
    const value = fieldValue(field.key, latest);
    if (value === undefined) continue;
    const row = { key: field.key, label: field.label, unit: field.unit, text: formatValue(field, value), balance: null };
    if (field.key === "pwr_w") row.balance = powerBalance(latest);
    rows.push(row);
  }
  return rows;
}

// One chart's data: times in seconds and values, for the samples that have the field.
export function chartSeries(samples, key) {
  const xs = [];
  const ys = [];
  for (const s of samples) {
    const v = fieldValue(key, s.f);
    if (v !== undefined) {
      xs.push(s.t / 1e9);
      ys.push(v);
    }
  }
  return [xs, ys];
}

// The chart's crosshair readout: "171 bpm · 14:03:12" (the time in the viewer's locale).
export function readoutText(value, unit, timeText) {
  return (value === null || value === undefined ? "" : Math.round(value * 10) / 10 + " " + unit) + " · " + timeText;
}

// Axis labels: local clock time, with seconds when the visible span is short, the date when long.
export function formatClock(seconds, spanSeconds) {
  const d = new Date(seconds * 1000);
  const hm = String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  if (spanSeconds < 300) return hm + ":" + String(d.getSeconds()).padStart(2, "0");
  if (spanSeconds > 2 * 86400) return d.getDate() + "/" + (d.getMonth() + 1) + " " + hm;
  return hm;
}
