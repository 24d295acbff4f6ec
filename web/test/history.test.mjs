// The owner's history: month grid, activities by local day, week totals and the numbers' spelling
// (tracker/browser/static/history/calendar.js), in a fixed time zone with a DST change.
process.env.TZ = "Europe/Zurich";

import assert from "node:assert/strict";
import { describe, test } from "node:test";

const {
  activityCells,
  displayName,
  formatClimb,
  formatDay,
  formatDistance,
  formatDuration,
  formatHeartRate,
  formatPower,
  formatSpeed,
  formatStart,
  gridRangeMs,
  groupByDay,
  localDayKey,
  monthGrid,
  monthTitle,
  parseZones,
  shiftMonth,
  sportLabel,
  totalsText,
  weekTotals,
  zonesText,
} = await import("../../tracker/browser/static/history/calendar.js");

const at = (iso) => Date.parse(iso) * 1e6; // ns since the epoch

describe("monthGrid", () => {
  test("December 2026: Monday 30 November to Sunday 3 January, five weeks", () => {
    const weeks = monthGrid(2026, 11);
    assert.equal(weeks.length, 5);
    assert.deepEqual(weeks.map((w) => [w[0].key, w[6].key]), [
      ["2026-11-30", "2026-12-06"],
      ["2026-12-07", "2026-12-13"],
      ["2026-12-14", "2026-12-20"],
      ["2026-12-21", "2026-12-27"],
      ["2026-12-28", "2027-01-03"],
    ]);
    assert.equal(weeks[0][0].inMonth, false);
    assert.equal(weeks[0][1].inMonth, true); // Tuesday the 1st
    assert.equal(weeks[4][3].key, "2026-12-31");
    assert.equal(weeks[4][4].inMonth, false);
  });

  test("February 2027 starts on a Monday and ends on a Sunday: exactly four weeks", () => {
    const weeks = monthGrid(2027, 1);
    assert.equal(weeks.length, 4);
    assert.deepEqual([weeks[0][0].key, weeks[3][6].key], ["2027-02-01", "2027-02-28"]);
    assert.ok(weeks.flat().every((d) => d.inMonth));
  });

  test("March 2026 has six weeks and its DST change neither skips nor repeats a day", () => {
    const weeks = monthGrid(2026, 2);
    assert.equal(weeks.length, 6);
    const keys = weeks.flat().map((d) => d.key);
    assert.equal(new Set(keys).size, 42);
    assert.deepEqual([keys[0], keys[41]], ["2026-02-23", "2026-04-05"]);
    assert.deepEqual(keys.slice(33, 37), ["2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"]);
  });

  test("the grid's instants run from local midnight to local midnight", () => {
    const { fromMs, toMs } = gridRangeMs(monthGrid(2026, 11));
    assert.equal(fromMs, Date.parse("2026-11-29T23:00:00Z")); // Zurich is UTC+1 in winter
    assert.equal(toMs, Date.parse("2027-01-03T23:00:00Z"));
    // Across the spring change: from UTC+1 to UTC+2.
    const march = gridRangeMs(monthGrid(2026, 2));
    assert.equal(march.fromMs, Date.parse("2026-02-22T23:00:00Z"));
    assert.equal(march.toMs, Date.parse("2026-04-05T22:00:00Z"));
  });

  test("months move across years", () => {
    assert.deepEqual(shiftMonth(2026, 11, 1), { year: 2027, month: 0 });
    assert.deepEqual(shiftMonth(2026, 0, -1), { year: 2025, month: 11 });
    assert.deepEqual(shiftMonth(2026, 5, -13), { year: 2025, month: 4 });
    assert.equal(monthTitle(2026, 11), "December 2026");
  });
});

describe("groupByDay and weekTotals", () => {
  const ride = (id, startIso, distance_m, elapsed_s) => ({
    id,
    start_ns: at(startIso),
    end_ns: at(startIso) + elapsed_s * 1e9,
    summary: { distance_m, elapsed_s, moving_s: elapsed_s - 60 },
  });
  // 22:59 UTC on the 5th is 23:59 in Zurich, still the 5th; 23:30 UTC is 00:30 on the 6th.
  const activities = [
    ride(3, "2026-12-05T23:30:00Z", 5000, 1800),
    ride(1, "2026-12-05T07:12:00Z", 40_000, 5400),
    ride(2, "2026-12-05T22:59:00Z", 1200, 600),
    ride(4, "2026-12-07T10:00:00Z", 20_000, 3600),
    { id: 5, start_ns: at("2026-12-08T10:00:00Z"), end_ns: at("2026-12-08T10:00:01Z"), summary: { distance_m: null, elapsed_s: 1, moving_s: null } },
  ];

  test("each activity on the local day it started, oldest first", () => {
    assert.equal(localDayKey(at("2026-12-05T22:59:00Z")), "2026-12-05");
    assert.equal(localDayKey(at("2026-12-05T23:00:00Z")), "2026-12-06");
    const days = groupByDay(activities);
    assert.deepEqual([...days.keys()].sort(), ["2026-12-05", "2026-12-06", "2026-12-07", "2026-12-08"]);
    const fifth = days.get("2026-12-05");
    assert.deepEqual(fifth.activities.map((a) => a.id), [1, 2]);
    assert.deepEqual([fifth.count, fifth.distance_m, fifth.elapsed_s, fifth.moving_s], [2, 41_200, 6000, 5880]);
    assert.equal(days.get("2026-12-06").count, 1);
    assert.deepEqual([days.get("2026-12-08").distance_m, days.get("2026-12-08").moving_s], [0, 0]);
  });

  test("a week's totals add its days, and only its days", () => {
    const days = groupByDay(activities);
    const weeks = monthGrid(2026, 11);
    assert.deepEqual(weekTotals(weeks[0], days), { count: 3, distance_m: 46_200, elapsed_s: 7800, moving_s: 7620 });
    assert.deepEqual(weekTotals(weeks[1], days), { count: 2, distance_m: 20_000, elapsed_s: 3601, moving_s: 3540 });
    assert.deepEqual(weekTotals(weeks[2], days), { count: 0, distance_m: 0, elapsed_s: 0, moving_s: 0 });
    assert.equal(totalsText(weekTotals(weeks[0], days)), "3 · 46.20 km · 2:10:00");
    assert.equal(totalsText(weekTotals(weeks[2], days)), "");
  });
});

describe("formatting", () => {
  test("durations, distances, speeds and the rest", () => {
    assert.deepEqual([formatDuration(0), formatDuration(59.6), formatDuration(3599), formatDuration(3600), formatDuration(45296)],
      ["0:00", "1:00", "59:59", "1:00:00", "12:34:56"]);
    assert.deepEqual([formatDistance(0), formatDistance(999.4), formatDistance(1000), formatDistance(42195)],
      ["0 m", "999 m", "1.00 km", "42.20 km"]);
    assert.deepEqual([formatSpeed(24.349), formatClimb(123.5), formatHeartRate(141.5), formatPower(209.4)],
      ["24.3 km/h", "124 m", "142 bpm", "209 W"]);
    for (const f of [formatDuration, formatDistance, formatSpeed, formatClimb, formatHeartRate, formatPower]) {
      assert.equal(f(null), "–");
      assert.equal(f(undefined), "–");
    }
  });

  test("the start in local time, the sport as words", () => {
    assert.equal(formatStart(at("2026-12-05T06:12:00Z")), "Sat 5 Dec 2026, 07:12");
    assert.equal(formatStart(at("2026-07-01T22:05:00Z")), "Thu 2 Jul 2026, 00:05"); // UTC+2 in summer
    assert.equal(formatDay(monthGrid(2026, 10)[2][6]), "Sun 15 Nov 2026");
    assert.equal(formatDay(monthGrid(2026, 10)[0][0]), "Mon 26 Oct 2026");
    assert.equal(sportLabel("mountain-biking"), "Mountain biking");
    assert.equal(sportLabel(""), "");
  });

  test("a list row: every column, missing values as a dash", () => {
    const cells = activityCells({
      id: 7, name: "Morning ride", named: true, sport: "cycling", device: "", start_ns: at("2026-12-05T06:12:00Z"),
      summary: { elapsed_s: 5400, distance_m: 40_123, speed_avg_kph: 27.66, elev_gain_m: 412.4, hr_avg_bpm: null, pwr_avg_w: 201.6 },
    });
    assert.deepEqual(cells, [
      ["When", "Sat 5 Dec 2026, 07:12"], ["Name", "Morning ride"], ["Sport", "Cycling"], ["Device", "–"],
      ["Duration", "1:30:00"], ["Distance", "40.12 km"], ["Speed", "27.7 km/h"], ["Climb", "412 m"],
      ["HR", "–"], ["Power", "202 W"],
    ]);
  });

  test("an automatic name is the sport and the local start, an owner's name stays", () => {
    const start_ns = at("2026-12-05T06:12:00Z");
    assert.equal(displayName({ name: "Cycling, 5 Dec 2026 06:12", named: false, sport: "cycling", start_ns }), "Cycling, Sat 5 Dec 2026, 07:12");
    assert.equal(displayName({ name: "Activity, 5 Dec 2026 06:12", named: false, sport: "", start_ns }), "Activity, Sat 5 Dec 2026, 07:12");
    assert.equal(displayName({ name: "Cycling, 5 Dec", named: true, sport: "cycling", start_ns }), "Cycling, 5 Dec");
  });

  test("zone bounds as text and back", () => {
    assert.equal(zonesText([120, 140, 160]), "120, 140, 160");
    assert.equal(zonesText(null), "");
    assert.deepEqual(parseZones("120, 140,160 175"), [120, 140, 160, 175]);
    assert.deepEqual(parseZones("  "), []);
    assert.equal(parseZones("120, fast"), null);
  });
});
