// The live view's fields: which are shown, labelled and formatted how, from the config the server sends.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  chartSeries,
  fieldValue,
  fieldsFromConfig,
  formatClock,
  formatDuration,
  formatValue,
  panelRows,
  powerBalance,
  readoutText,
  wantedKeys,
} from "../../tracker/browser/static/watch/fields.js";

// What GET /api/watch/NAME/config lists today (tracker/vocabulary.py), in the server's order.
const SERVER_FIELDS = [
  ["dur_s", "s", "elapsed duration"],
  ["dist_km", "km", "distance"],
  ["lat", "deg", "latitude"],
  ["lng", "deg", "longitude"],
  ["acc_m", "m", "GPS accuracy"],
  ["bearing", "deg", "bearing"],
  ["battery", "%", "battery charge"],
  ["gsm_signal", "%", "GSM radio signal"],
  ["temp_c", "°C", "temperature"],
  ["spd_kph", "km/h", "speed"],
  ["alt_m", "m", "altitude / elevation"],
  ["hr_bpm", "beats/min", "heart rate"],
  ["cad_rpm", "rev/min", "cadence"],
  ["pwr_w", "W", "power"],
  ["pwr_w_l", "W", "power, left leg"],
  ["pwr_w_r", "W", "power, right leg"],
].map(([key, unit, meaning]) => ({ key, unit, meaning }));
const CONFIG = { user: "alice", tile_url: "", tile_attribution: "", fields: SERVER_FIELDS };

describe("fieldsFromConfig", () => {
  test("every field but the position: the main ones first, then the server's order", () => {
    const { values, charts } = fieldsFromConfig(CONFIG);
    assert.deepEqual(
      values.map((v) => [v.key, v.label, v.unit]),
      [
        ["spd_kph", "Speed", "km/h"],
        ["hr_bpm", "Heart rate", "bpm"],
        ["pwr_w", "Power", "W"],
        ["cad_rpm", "Cadence", "rpm"],
        ["alt_m", "Altitude", "m"],
        ["dur_s", "Duration", ""],
        ["dist_km", "Distance", "km"],
        ["acc_m", "GPS accuracy", "m"],
        ["bearing", "Heading", "°"],
        ["battery", "Battery", "%"],
        ["gsm_signal", "GSM signal", "%"],
        ["temp_c", "Temperature", "°C"],
        ["pwr_w_l", "Power left", "W"],
        ["pwr_w_r", "Power right", "W"],
      ]
    );
    assert.deepEqual(charts, [
      { key: "hr_bpm", label: "Heart rate", unit: "bpm", color: "#b3001b" },
      { key: "pwr_w", label: "Power", unit: "W", color: "#6a1b9a" },
      { key: "cad_rpm", label: "Cadence", unit: "rpm", color: "#00695c" },
      { key: "spd_kph", label: "Speed", unit: "km/h", color: "#0b3d91" },
      { key: "alt_m", label: "Altitude", unit: "m", color: "#6d4c41" },
    ]);
  });

  test("units come from the server", () => {
    const fields = SERVER_FIELDS.map((f) => (f.key === "alt_m" ? { ...f, unit: "ft" } : f));
    const { values, charts } = fieldsFromConfig({ fields });
    assert.equal(values.find((v) => v.key === "alt_m").unit, "ft");
    assert.equal(charts.find((c) => c.key === "alt_m").unit, "ft");
  });

  test("a field the server does not list is not shown", () => {
    const { values, charts } = fieldsFromConfig({ fields: SERVER_FIELDS.filter((f) => f.key !== "hr_bpm") });
    assert.ok(!values.some((v) => v.key === "hr_bpm"));
    assert.ok(!charts.some((c) => c.key === "hr_bpm"));
  });

  test("a new field is shown after the others, labelled with its meaning", () => {
    const { values, charts } = fieldsFromConfig({ fields: [...SERVER_FIELDS, { key: "spo2_pct", unit: "%", meaning: "blood oxygen" }] });
    assert.deepEqual(values[values.length - 1], { key: "spo2_pct", label: "Blood oxygen", unit: "%", format: 1 });
    assert.equal(charts.length, 5);
  });

  test("no config, or a config without fields, shows nothing", () => {
    assert.deepEqual(fieldsFromConfig(null), { values: [], charts: [] });
    assert.deepEqual(fieldsFromConfig({}), { values: [], charts: [] });
    assert.deepEqual(fieldsFromConfig({ fields: [null, { unit: "x" }] }), { values: [], charts: [] });
  });
});

describe("formatting", () => {
  const { values } = fieldsFromConfig(CONFIG);
  const field = (key) => values.find((v) => v.key === key);

  test("digits per field", () => {
    assert.equal(formatValue(field("spd_kph"), 31.46), "31.5");
    assert.equal(formatValue(field("hr_bpm"), 171.4), "171");
    assert.equal(formatValue(field("dist_km"), 12.3456), "12.35");
    assert.equal(formatValue(field("temp_c"), -3), "-3.0");
    assert.equal(formatValue(field("dur_s"), 3725), "1:02:05");
  });

  test("formatDuration: m:ss under an hour, h:mm:ss above", () => {
    assert.equal(formatDuration(0), "0:00");
    assert.equal(formatDuration(59.6), "1:00");
    assert.equal(formatDuration(605), "10:05");
    assert.equal(formatDuration(36000), "10:00:00");
    assert.equal(formatDuration(-5), "0:00");
  });

  test("formatClock: seconds for short spans, the date for long ones", () => {
    const t = new Date(2026, 2, 7, 9, 5, 3).getTime() / 1000; // local time
    assert.equal(formatClock(t, 60), "09:05:03");
    assert.equal(formatClock(t, 3600), "09:05");
    assert.equal(formatClock(t, 3 * 86400), "7/3 09:05");
  });

  test("readoutText rounds to a tenth and names the unit", () => {
    assert.equal(readoutText(171.26, "bpm", "14:03:12"), "171.3 bpm · 14:03:12");
    assert.equal(readoutText(null, "bpm", "14:03:12"), " · 14:03:12");
  });
});

describe("power", () => {
  test("the total is the legs' sum when only they were sent", () => {
    assert.equal(fieldValue("pwr_w", { pwr_w_l: 100, pwr_w_r: 120 }), 220);
    assert.equal(fieldValue("pwr_w", { pwr_w: 250, pwr_w_l: 100, pwr_w_r: 120 }), 250);
    assert.equal(fieldValue("pwr_w", { pwr_w_l: 100 }), undefined);
    assert.equal(fieldValue("hr_bpm", { hr_bpm: "fast" }), undefined);
  });

  test("powerBalance shows the left and right share", () => {
    assert.equal(powerBalance({ pwr_w_l: 96, pwr_w_r: 104 }), "L 48 / R 52 %");
    assert.equal(powerBalance({ pwr_w_l: 0, pwr_w_r: 0 }), null);
    assert.equal(powerBalance({ pwr_w_l: 96 }), null);
  });
});

test("panelRows: the fields with a value, in order, formatted, with the power balance", () => {
  const { values } = fieldsFromConfig(CONFIG);
  assert.ok(wantedKeys(values).includes("pwr_w_l") && wantedKeys(values).includes("pwr_w_r"));
  const rows = panelRows(values, { hr_bpm: 171, spd_kph: 31.46, pwr_w_l: 150, pwr_w_r: 150, lat: 47 });
  assert.deepEqual(rows, [
    { key: "spd_kph", label: "Speed", unit: "km/h", text: "31.5", balance: null },
    { key: "hr_bpm", label: "Heart rate", unit: "bpm", text: "171", balance: null },
    { key: "pwr_w", label: "Power", unit: "W", text: "300", balance: "L 50 / R 50 %" },
    { key: "pwr_w_l", label: "Power left", unit: "W", text: "150", balance: null },
    { key: "pwr_w_r", label: "Power right", unit: "W", text: "150", balance: null },
  ]);
  assert.deepEqual(panelRows(values, {}), []);
});

test("chartSeries: seconds and values of the samples that have the field", () => {
  const samples = [
    { t: 1e9, f: { hr_bpm: 100 } },
    { t: 2e9, f: { lat: 1, lng: 2 } },
    { t: 3e9, f: { hr_bpm: 102, pwr_w_l: 10, pwr_w_r: 20 } },
  ];
  assert.deepEqual(chartSeries(samples, "hr_bpm"), [[1, 3], [100, 102]]);
  assert.deepEqual(chartSeries(samples, "pwr_w"), [[3], [30]]);
  assert.deepEqual(chartSeries(samples, "alt_m"), [[], []]);
});
