// The watch page's ride summary, from known samples.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  distanceKm,
  elevationGainM,
  fieldStats,
  haversineKm,
  rideSummary,
  summaryRows,
} from "../../tracker/browser/static/watch/summary.js";

const S = 1e9; // ns per second
const at = (sec, f) => ({ t: sec * S, f: f });

describe("distance", () => {
  test("haversineKm: a degree of latitude is 111.2 km; a degree of longitude shrinks with the latitude", () => {
    assert.ok(Math.abs(haversineKm({ lat: 0, lng: 0 }, { lat: 1, lng: 0 }) - 111.195) < 0.01);
    assert.ok(Math.abs(haversineKm({ lat: 60, lng: 0 }, { lat: 60, lng: 1 }) - 55.6) < 0.1);
    assert.equal(haversineKm({ lat: 47, lng: 8 }, { lat: 47, lng: 8 }), 0);
    // Paris to London, about 344 km.
    assert.ok(Math.abs(haversineKm({ lat: 48.8566, lng: 2.3522 }, { lat: 51.5074, lng: -0.1278 }) - 343.6) < 1);
  });

  test("from the device's dist_km: its increases, a reset to 0 does not subtract", () => {
    const samples = [at(0, { dist_km: 10 }), at(1, { dist_km: 10.5, lat: 1, lng: 1 }), at(2, { dist_km: 0.2 }), at(3, { dist_km: 0.7 })];
    const d = distanceKm(samples);
    assert.equal(d.from, "dist_km");
    assert.ok(Math.abs(d.km - 1.0) < 1e-9, d.km);
  });

  test("without dist_km: the positions joined, one degree of latitude", () => {
    const samples = [at(0, { lat: 0, lng: 0 }), at(1, { hr_bpm: 100 }), at(2, { lat: 0.5, lng: 0 }), at(3, { lat: 1, lng: 0 })];
    const d = distanceKm(samples);
    assert.equal(d.from, "positions");
    assert.ok(Math.abs(d.km - 111.195) < 0.01, d.km);
  });

  test("nothing to go by: null", () => {
    assert.equal(distanceKm([at(0, { lat: 1, lng: 1, dist_km: 3 })]), null);
    assert.equal(distanceKm([]), null);
  });
});

describe("elevationGainM", () => {
  test("GPS noise on a flat road climbs nothing", () => {
    const noisy = Array.from({ length: 200 }, (_, i) => 430 + 4 * Math.sin(i * 1.7));
    assert.equal(elevationGainM(noisy), 0);
  });

  test("a real climb counts, with its noise, and a descent between two climbs does not", () => {
    const climb = (from, to, n) => Array.from({ length: n }, (_, i) => from + ((to - from) * i) / (n - 1) + (i % 2 ? 1.5 : -1.5));
    const alts = [...climb(400, 500, 101), ...climb(500, 450, 51), ...climb(450, 480, 31)];
    const gain = elevationGainM(alts);
    assert.ok(gain >= 120 && gain <= 134, gain); // 100 + 30 m, give or take the threshold and the noise
  });

  test("fewer than two altitudes: null", () => {
    assert.equal(elevationGainM([]), null);
    assert.equal(elevationGainM([400]), null);
  });
});

test("fieldStats: average, max, min and last; power from the legs", () => {
  const samples = [at(0, { hr_bpm: 100 }), at(1, { hr_bpm: 140, pwr_w_l: 100, pwr_w_r: 120 }), at(2, { hr_bpm: 120, pwr_w: 300 })];
  assert.deepEqual(fieldStats(samples, "hr_bpm"), { avg: 120, max: 140, min: 100, last: 120, count: 3 });
  assert.deepEqual(fieldStats(samples, "pwr_w"), { avg: 260, max: 300, min: 220, last: 300, count: 2 });
  assert.equal(fieldStats(samples, "cad_rpm"), null);
});

describe("rideSummary", () => {
  test("a known ride: elapsed, distance, speeds, heart rate, power, climb, battery and signal", () => {
    const samples = [
      at(100, { dist_km: 5, spd_kph: 20, hr_bpm: 120, pwr_w: 200, alt_m: 400, battery: 90, gsm_signal: 70 }),
      at(160, { dist_km: 5.5, spd_kph: 30, hr_bpm: 150, pwr_w: 300, alt_m: 420 }),
      at(1000, { dist_km: 10, spd_kph: 25, hr_bpm: 135, pwr_w: 250, alt_m: 410, battery: 80, gsm_signal: 40 }),
    ];
    const summary = rideSummary(samples);
    assert.equal(summary.elapsedS, 900);
    assert.deepEqual(summary.distance, { km: 5, from: "dist_km" });
    assert.deepEqual(summary.speed, { avg: 25, max: 30 });
    assert.deepEqual(summary.hr, { avg: 135, max: 150 });
    assert.deepEqual(summary.power, { avg: 250, max: 300 });
    assert.equal(summary.elevationGainM, 20);
    assert.equal(summary.battery, 80);
    assert.equal(summary.gsmSignal, 40);
    assert.deepEqual(summaryRows(summary), [
      { key: "elapsed", label: "Elapsed", text: "15:00" },
      { key: "distance", label: "Distance", text: "5.00 km" },
      { key: "speed", label: "Speed", text: "avg 25.0 · max 30.0 km/h" },
      { key: "hr", label: "Heart rate", text: "avg 135 · max 150 bpm" },
      { key: "power", label: "Power", text: "avg 250 · max 300 W" },
      { key: "climb", label: "Climbed", text: "20 m" },
      { key: "battery", label: "Phone battery", text: "80 %" },
      { key: "gsm_signal", label: "Phone signal", text: "40 %" },
    ]);
  });

  test("positions only: the distance from them, the average speed from distance over time", () => {
    // One degree of latitude (111.195 km) in 4 hours.
    const samples = [at(0, { lat: 0, lng: 0 }), at(7200, { lat: 0.5, lng: 0 }), at(14400, { lat: 1, lng: 0 })];
    const summary = rideSummary(samples);
    assert.equal(summary.distance.from, "positions");
    assert.ok(Math.abs(summary.speed.avg - 27.8) < 0.01, summary.speed.avg);
    assert.equal(summary.speed.max, null);
    assert.deepEqual(
      summaryRows(summary).map((r) => r.text),
      ["4:00:00", "111.20 km", "avg 27.8 km/h"]
    );
  });

  test("no samples: nothing to show", () => {
    assert.equal(rideSummary([]), null);
    assert.deepEqual(summaryRows(null), []);
  });
});
