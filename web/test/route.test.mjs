// The planned route's math, against values worked out by hand. On the equator a degree of longitude
// is R·π/180 = 111,194.93 m (R = 6,371,008.8 m), and the equirectangular projection is exact there.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  RouteProgress,
  estimateArrival,
  locate,
  prepareRoute,
  projectOnSegment,
} from "../../tracker/browser/static/watch/route.js";

const M_PER_DEG = 111194.93; // at the equator
const S = 1e9;
const near = (actual, expected, tolerance, what) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected ${expected} ± ${tolerance}`);

describe("route geometry", () => {
  test("lengths along the route: two 0.01° steps along the equator are 1,111.95 m each", () => {
    const route = prepareRoute([[0, 0], [0, 0.01, 420], [0, 0.02]]);
    near(route.cum[1], 1111.95, 0.01, "first point");
    near(route.total, 2223.9, 0.02, "total");
  });

  test("a position 0.001° north of the middle of a segment: 111.19 m off, halfway along it", () => {
    const route = prepareRoute([[0, 0], [0, 0.01]]);
    const p = projectOnSegment(route, 0, { lat: 0.001, lng: 0.005 });
    near(p.along, 555.97, 0.01, "along");
    near(p.offM, 111.19, 0.01, "off");
  });

  test("beyond a segment's end, the end is the nearest point", () => {
    const route = prepareRoute([[0, 0], [0, 0.01]]);
    const p = projectOnSegment(route, 0, { lat: 0, lng: 0.011 });
    near(p.along, 1111.95, 0.01, "along");
    near(p.offM, 111.19, 0.01, "off");
  });

  test("at 60° north the projection shrinks longitude by cos 60°: 0.002° east is 111.19 m", () => {
    // A meridian segment at 60°N; the position 0.002° of longitude east of it: 0.002·111,194.93·0.5.
    const route = prepareRoute([[60, 10], [60.01, 10]]);
    const p = projectOnSegment(route, 0, { lat: 60.005, lng: 10.002 });
    near(p.offM, 111.19, 0.05, "off");
    near(p.along, 555.97, 0.05, "along");
  });
});

describe("progress prefers going on from where it was", () => {
  // Out 0.01° east and back on the same road: 2,223.9 m.
  const outAndBack = [[0, 0], [0, 0.01], [0, 0]];

  test("on the way back, the same place counts as the return leg", () => {
    const progress = new RouteProgress(outAndBack, 50);
    for (const [i, lng] of [0.002, 0.004, 0.006, 0.008, 0.0099, 0.008, 0.006].entries()) progress.add(i * 60 * S, 0, lng);
    // 0.01° out and 0.004° back: 0.014° along.
    near(progress.readout().doneM, 0.014 * M_PER_DEG, 0.05, "done");
    near(progress.readout().remainingM, 0.006 * M_PER_DEG, 0.05, "remaining");
  });

  test("the first position goes to the first leg that passes it", () => {
    const progress = new RouteProgress(outAndBack, 50);
    progress.add(0, 0, 0.002);
    near(progress.readout().doneM, 0.002 * M_PER_DEG, 0.05, "done");
  });

  test("a loop: leaving the start is the start of the loop, reaching it again is its end", () => {
    // A square loop of four 0.01° sides, start = end.
    const loop = [[0, 0], [0, 0.01], [0.01, 0.01], [0.01, 0], [0, 0]];
    const progress = new RouteProgress(loop, 50);
    progress.add(0, 0, 0.0001);
    near(progress.readout().doneM, 0.0001 * M_PER_DEG, 0.05, "at the start");
    const side = 0.01 * M_PER_DEG;
    progress.add(1 * S, 0.005, 0.01); // halfway up the east side
    progress.add(2 * S, 0.01, 0.005); // halfway along the north side
    progress.add(3 * S, 0.005, 0); // halfway down the west side
    progress.add(4 * S, 0.0001, 0); // just before the end
    const total = progress.readout().totalM;
    near(progress.readout().doneM, total - 0.0001 * M_PER_DEG, 0.5, "at the end");
    assert.ok(total > 3.99 * side && total < 4.01 * side);
  });
});

describe("off route", () => {
  test("farther than the threshold: off route by the distance, and progress stays", () => {
    const progress = new RouteProgress([[0, 0], [0, 0.01]], 50);
    progress.add(0, 0, 0.003);
    progress.add(60 * S, 0.0009, 0.004); // 100.08 m north of the route
    const r = progress.readout();
    assert.equal(r.offRoute, true);
    near(r.offM, 0.0009 * M_PER_DEG, 0.05, "off");
    near(r.doneM, 0.003 * M_PER_DEG, 0.05, "done kept");
    assert.equal(r.eta, null);
  });

  test("within the threshold: on route", () => {
    const r = locate(prepareRoute([[0, 0], [0, 0.01]]), { lat: 0.0004, lng: 0.004 }, null, 50);
    assert.equal(r.onRoute, true);
    near(r.offM, 44.48, 0.01, "off");
  });
});

describe("estimated arrival", () => {
  test("steady pace: 0.0006° a minute, 0.0134° left, so 22⅓ minutes", () => {
    const progress = new RouteProgress([[0, 0], [0, 0.02]], 50);
    for (let minute = 0; minute <= 11; minute++) progress.add((1000 + minute * 60) * S, 0, minute * 0.0006);
    const r = progress.readout();
    near(r.remainingM, 0.0134 * M_PER_DEG, 0.05, "remaining");
    near(r.eta.seconds, 1340, 0.01, "seconds");
    near(r.eta.atNs, (1000 + 660 + 1340) * S, 1e7, "arrival");
  });

  test("only the last 10 minutes count: fast, then slow", () => {
    // 0.001°/min for 10 min, then 0.0002°/min for 10 min: at 20 min, 0.012° done of 0.03°; the last
    // 10 min gained 0.002°, so 0.018° left takes 90 min.
    const history = [];
    for (let minute = 0; minute <= 20; minute++) {
      const deg = minute <= 10 ? minute * 0.001 : 0.01 + (minute - 10) * 0.0002;
      history.push({ t: minute * 60 * S, along: deg * M_PER_DEG });
    }
    const eta = estimateArrival(history, 0.018 * M_PER_DEG);
    near(eta.seconds, 5400, 0.01, "seconds");
  });

  test("none while not moving, and none from a span too short", () => {
    const progress = new RouteProgress([[0, 0], [0, 0.02]], 50);
    for (let minute = 0; minute <= 5; minute++) progress.add(minute * 60 * S, 0, 0.005);
    assert.equal(progress.readout().eta, null);
    assert.equal(estimateArrival([{ t: 0, along: 0 }, { t: 10 * S, along: 100 }], 1000), null);
  });

  test("late positions are ignored", () => {
    const progress = new RouteProgress([[0, 0], [0, 0.02]], 50);
    progress.add(100 * S, 0, 0.005);
    progress.add(50 * S, 0, 0.001);
    near(progress.readout().doneM, 0.005 * M_PER_DEG, 0.05, "done");
  });
});

describe("a long course", () => {
  test("100,000 points: the window ahead is searched, not the whole course", () => {
    // 100,000 points 0.0001° apart along the equator (11.12 m each).
    const points = Array.from({ length: 100000 }, (_, i) => [0, i * 0.0001]);
    const progress = new RouteProgress(points, 50);
    const started = performance.now();
    for (let i = 0; i < 2000; i++) progress.add(i * S, 0.0001, 1 + i * 0.00005);
    const ms = performance.now() - started;
    near(progress.readout().doneM, (1 + 1999 * 0.00005) * M_PER_DEG, 0.5, "done");
    near(progress.readout().offM, 11.12, 0.01, "off");
    assert.ok(ms < 500, `2,000 positions took ${ms} ms`);
  });
});
