// The watch page's rolling statistics (last / average / min / max over 3 s, 1, 5 and 10 min), from known samples.
import assert from "node:assert/strict";
import { test } from "node:test";

import { fieldsFromConfig } from "../../tracker/browser/static/watch/fields.js";
import { rollingStats, rollingTables } from "../../tracker/browser/static/watch/rolling.js";

const S = 1e9;
const END = 10_000 * S;
// Twelve minutes at 1 Hz: heart rate 100 until 5 min ago, then 150 until 1 min ago, then 170 to 179.
const samples = [];
for (let age = 720; age >= 0; age--) {
  const hr = age > 300 ? 100 : age > 60 ? 150 : 170 + (age % 10);
  samples.push({ t: END - age * S, f: { hr_bpm: hr } });
}

test("each span's last, average, min and max, counted back from the end", () => {
  const rows = rollingStats(samples, "hr_bpm", END);
  assert.deepEqual(rows.map((r) => [r.label, r.count]), [["3 s", 3], ["1 min", 60], ["5 min", 300], ["10 min", 600]]);
  assert.deepEqual(rows[0], { label: "3 s", seconds: 3, last: 170, avg: 171, min: 170, max: 172, count: 3 });
  assert.deepEqual([rows[1].min, rows[1].max, rows[2].min, rows[3].min, rows[3].max], [170, 179, 150, 100, 179]);
  const lastTen = samples.filter((s) => END - s.t < 600 * S).map((s) => s.f.hr_bpm);
  assert.ok(Math.abs(rows[3].avg - lastTen.reduce((a, b) => a + b, 0) / 600) < 1e-9);
});

test("samples after the end are left out; a sensor that stopped leaves the short spans empty", () => {
  const rows = rollingStats(samples, "hr_bpm", END - 200 * S);
  assert.equal(rows[0].last, 150);
  const later = rollingStats(samples, "hr_bpm", END + 30 * S);
  assert.deepEqual([later[0].count, later[0].avg, later[0].last], [0, null, null]);
  assert.equal(later[1].count, 30);
  assert.equal(rollingStats(samples, "pwr_w", END).every((r) => r.count === 0), true);
});

test("rollingTables: a table per main field that arrived, formatted with the field's digits", () => {
  const { values } = fieldsFromConfig({
    fields: [
      { key: "hr_bpm", unit: "beats/min", meaning: "heart rate" },
      { key: "spd_kph", unit: "km/h", meaning: "speed" },
      { key: "pwr_w", unit: "W", meaning: "power" },
    ],
  });
  const withSpeed = samples.map((s, i) => ({ t: s.t, f: i % 2 ? s.f : { ...s.f, spd_kph: 30.04 } }));
  const tables = rollingTables(withSpeed, values, END);
  assert.deepEqual(tables.map((t) => [t.key, t.label, t.unit]), [["spd_kph", "Speed", "km/h"], ["hr_bpm", "Heart rate", "bpm"]]);
  assert.deepEqual(tables[1].rows[0], { label: "3 s", cells: ["170", "171", "170", "172"] });
  assert.deepEqual(tables[0].rows[3].cells, ["30.0", "30.0", "30.0", "30.0"]);
  assert.deepEqual(rollingTables(withSpeed, values, END + 3600 * S), []);
});
