// The activity page's pure logic: rows to samples, the nearest route point, the summary, zones and laps.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  lapCells,
  lapMetres,
  nearestIndex,
  nextOnTrack,
  samplesFromRows,
  summaryRows,
  zoneBars,
} from "../../tracker/browser/static/activity/data.js";

const S = 1e9;

describe("samples", () => {
  test("samplesFromRows: the API's columns and rows become {t, f}, nulls left out", () => {
    const samples = samplesFromRows(["time", "hr_bpm", "lat"], [[1 * S, 120, null], [2 * S, null, 47.5]]);
    assert.deepEqual(samples, [{ t: 1 * S, f: { hr_bpm: 120 } }, { t: 2 * S, f: { lat: 47.5 } }]);
  });

  test("nearestIndex: the route point nearest a map position, skipping samples without one", () => {
    const samples = [
      { t: 0, f: { lat: 47.0, lng: 8.0 } },
      { t: 1, f: { hr_bpm: 100 } },
      { t: 2, f: { lat: 47.001, lng: 8.0 } },
      { t: 3, f: { lat: 47.0, lng: 8.002 } },
    ];
    assert.equal(nearestIndex(samples, 47.0009, 8.0001), 2);
    assert.equal(nearestIndex(samples, 47.0, 8.0015), 3);
    // At 60° north a degree of longitude is half as long: 0.0018° east is nearer than 0.001° north.
    const north = [{ t: 0, f: { lat: 60.001, lng: 10 } }, { t: 1, f: { lat: 60, lng: 10.0018 } }];
    assert.equal(nearestIndex(north, 60, 10), 1);
    assert.equal(nearestIndex([{ t: 0, f: { hr_bpm: 1 } }], 0, 0), -1);
  });
});

describe("summary", () => {
  test("summaryRows: each value with its unit, durations as h:mm:ss, only what is there", () => {
    const rows = summaryRows({
      samples: 43200, elapsed_s: 43200, moving_s: 3725.4, distance_m: 123456, distance_source: "positions",
      speed_avg_kph: 25.04, speed_max_kph: 61.26, elev_gain_m: 1234.6, elev_loss_m: 1200.2, hr_avg_bpm: 141.5,
      hr_max_bpm: 181, pwr_avg_w: 201.4, pwr_max_w: 812, np_w: 231.6, cad_avg_rpm: 87.5, cad_max_rpm: 120,
      temp_avg_c: null, hr_zones_s: null, pwr_zones_s: null, bbox: null,
    });
    const text = Object.fromEntries(rows.map((r) => [r.key, r.text]));
    assert.deepEqual(text, {
      elapsed_s: "12:00:00", moving_s: "1:02:05", distance_m: "123.46 km", speed_avg_kph: "25.0 km/h",
      speed_max_kph: "61.3 km/h", elev_gain_m: "1235 m", elev_loss_m: "1200 m", hr_avg_bpm: "142 bpm",
      hr_max_bpm: "181 bpm", pwr_avg_w: "201 W", pwr_max_w: "812 W", np_w: "232 W", cad_avg_rpm: "88 rpm",
      cad_max_rpm: "120 rpm", samples: "43200",
    });
    assert.equal(rows.find((r) => r.key === "distance_m").note, "from the positions");
    assert.deepEqual(summaryRows(null), []);
  });

  test("zoneBars: each zone's share of the time", () => {
    assert.deepEqual(zoneBars([60, 180, 0]), [
      { zone: 1, seconds: 60, text: "1:00", percent: 25 },
      { zone: 2, seconds: 180, text: "3:00", percent: 75 },
      { zone: 3, seconds: 0, text: "0:00", percent: 0 },
    ]);
    assert.deepEqual(zoneBars(null), []);
  });
});

describe("laps", () => {
  test("lapCells: km to two places, durations, a dash for what the lap lacks", () => {
    const lap = { lap: 3, distance_m: 1000.4, elapsed_s: 125, moving_s: 120, speed_avg_kph: 30.04, hr_avg_bpm: null, pwr_avg_w: 250.5, cad_avg_rpm: null, elev_gain_m: 12.2 };
    assert.deepEqual(lapCells(lap), ["3", "1.00", "2:05", "2:00", "30.0", "–", "251", "–", "12"]);
  });

  test("lapMetres: km typed by the viewer, a comma too; nonsense refused", () => {
    assert.equal(lapMetres("1"), 1000);
    assert.equal(lapMetres("0,5"), 500);
    assert.equal(lapMetres(" 2.25 "), 2250);
    assert.equal(lapMetres("0"), null);
    assert.equal(lapMetres("lots"), null);
    assert.equal(lapMetres("5000"), null);
  });

  test("nextOnTrack: the first later activity of the same device and sport", () => {
    const current = { id: 1, device: "g", sport: "cycling", start_ns: 0, end_ns: 100 };
    const list = [
      current,
      { id: 2, device: "g", sport: "running", start_ns: 150, end_ns: 200 },
      { id: 3, device: "g", sport: "cycling", start_ns: 500, end_ns: 600 },
      { id: 4, device: "g", sport: "cycling", start_ns: 300, end_ns: 400 },
      { id: 5, device: "g", sport: "cycling", start_ns: -50, end_ns: -10 },
    ];
    assert.equal(nextOnTrack(list, current).id, 4);
    assert.equal(nextOnTrack([current], current), null);
  });
});
