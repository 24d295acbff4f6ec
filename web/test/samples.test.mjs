// The live view's sample logic: merging, time windows, latest values and their ages, the status badge, fixes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  bearingBetween,
  chartRange,
  clockOffsetMs,
  dropBefore,
  drawnSamples,
  inWindow,
  insertSample,
  latestValues,
  msToNsString,
  nearestFix,
  newestMs,
  parseWindow,
  streamStatus,
  track,
  staleValues,
  accessProblem,
  valueAges,
  windowBounds,
  windowQuery,
} from "../../tracker/browser/static/watch/samples.js";

const S = 1e9; // ns per second

describe("insertSample", () => {
  test("keeps samples sorted by time whatever order they arrive in", () => {
    const samples = [];
    for (const t of [3, 1, 5, 2, 4]) insertSample(samples, { t: t * S, f: { hr_bpm: t } });
    assert.deepEqual(samples.map((s) => s.t / S), [1, 2, 3, 4, 5]);
  });

  test("merges a sample at a time already held, the newest value of each field winning", () => {
    const samples = [];
    insertSample(samples, { t: 1 * S, f: { hr_bpm: 100, cad_rpm: 80 } });
    insertSample(samples, { t: 2 * S, f: { hr_bpm: 101 } });
    insertSample(samples, { t: 1 * S, f: { hr_bpm: 120, lat: 47 } });
    assert.equal(samples.length, 2);
    assert.deepEqual(samples[0].f, { hr_bpm: 120, cad_rpm: 80, lat: 47 });
  });

  test("copies the fields: the caller's object is never changed by a later merge", () => {
    const samples = [];
    const first = { t: S, f: { hr_bpm: 1 } };
    insertSample(samples, first);
    insertSample(samples, { t: S, f: { hr_bpm: 2 } });
    assert.equal(first.f.hr_bpm, 1);
  });
});

test("newestMs keeps the later of the known newest time and the incoming samples'", () => {
  assert.equal(newestMs([], null), null);
  assert.equal(newestMs([{ t: 5e6 }, { t: 9e6 }, { t: 7e6 }], null), 9);
  assert.equal(newestMs([{ t: 5e6 }], 100), 100);
  // A sample from a clock that runs ahead counts as seen now.
  assert.equal(newestMs([{ t: 5e6 }, { t: 300e6 }], null, 20), 20);
  assert.equal(newestMs([{ t: 300e6 }], 50, 20), 50);
});

test("drawnSamples holds back the samples ahead of now until their time comes", () => {
  const samples = [1, 2, 3, 4].map((t) => ({ t: t * S, f: {} }));
  assert.equal(drawnSamples(samples, 4 * S), samples); // nothing ahead: the same array, no copy
  assert.deepEqual(drawnSamples(samples, 2.5 * S).map((s) => s.t / S), [1, 2]);
  assert.deepEqual(drawnSamples(samples, 2 * S).map((s) => s.t / S), [1, 2]);
  assert.deepEqual(drawnSamples(samples, 0), []);
  assert.deepEqual(drawnSamples([], 0), []);
});

test("dropBefore removes the samples older than the cutoff and says how many", () => {
  const samples = [1, 2, 3, 4].map((t) => ({ t: t * S, f: {} }));
  assert.equal(dropBefore(samples, 3 * S), 2);
  assert.deepEqual(samples.map((s) => s.t / S), [3, 4]);
  assert.equal(dropBefore(samples, 0), 0);
});

describe("time windows", () => {
  test("parseWindow reads the page address and falls back to the live 10 minutes", () => {
    assert.deepEqual(parseWindow(new URLSearchParams("")), { name: "10m" });
    assert.deepEqual(parseWindow(new URLSearchParams("window=1h")), { name: "1h" });
    assert.deepEqual(parseWindow(new URLSearchParams("window=today")), { name: "today" });
    assert.deepEqual(parseWindow(new URLSearchParams("window=3y")), { name: "10m" });
    assert.deepEqual(parseWindow(new URLSearchParams("window=toString")), { name: "10m" });
    const custom = parseWindow(new URLSearchParams("window=custom&from=2026-01-01T10:00:00Z&to=2026-01-01T12:00:00Z"));
    assert.deepEqual(custom, { name: "custom", fromMs: Date.UTC(2026, 0, 1, 10), toMs: Date.UTC(2026, 0, 1, 12) });
    // A range that ends before it starts is no range.
    assert.deepEqual(parseWindow(new URLSearchParams("window=custom&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")), { name: "10m" });
  });

  test("windowQuery keeps other parameters and writes the window's own", () => {
    assert.equal(windowQuery("?token=abc&window=1h", { name: "10m" }), "token=abc");
    assert.equal(windowQuery("token=abc", { name: "8h" }), "token=abc&window=8h");
    const q = new URLSearchParams(windowQuery("from=x&to=y", { name: "custom", fromMs: 0, toMs: 1000 }));
    assert.equal(q.get("window"), "custom");
    assert.equal(q.get("from"), "1970-01-01T00:00:00.000Z");
    assert.equal(q.get("to"), "1970-01-01T00:00:01.000Z");
    // What parseWindow reads back is the same window.
    assert.deepEqual(parseWindow(q), { name: "custom", fromMs: 0, toMs: 1000 });
  });

  test("windowBounds: sliding windows end open at now, today starts at local midnight, custom is fixed", () => {
    const now = Date.UTC(2026, 5, 1, 12, 30);
    assert.deepEqual(windowBounds({ name: "10m" }, now), { fromMs: now - 600e3, toMs: null });
    assert.deepEqual(windowBounds({ name: "8h" }, now), { fromMs: now - 8 * 3600e3, toMs: null });
    const today = windowBounds({ name: "today" }, now);
    const midnight = new Date(today.fromMs);
    assert.equal(today.toMs, null);
    assert.deepEqual([midnight.getHours(), midnight.getMinutes(), midnight.getSeconds(), midnight.getMilliseconds()], [0, 0, 0, 0]);
    assert.ok(today.fromMs <= now && now - today.fromMs < 86400e3);
    assert.deepEqual(windowBounds({ name: "custom", fromMs: 1, toMs: 2 }, now), { fromMs: 1, toMs: 2 });
  });

  test("inWindow includes the start, excludes the end of a closed window", () => {
    assert.ok(inWindow({ fromMs: 1000, toMs: 2000 }, 1000e6));
    assert.ok(!inWindow({ fromMs: 1000, toMs: 2000 }, 2000e6));
    assert.ok(!inWindow({ fromMs: 1000, toMs: 2000 }, 999e6));
    assert.ok(inWindow({ fromMs: 1000, toMs: null }, 1e18));
  });

  test("msToNsString is exact beyond 2^53", () => {
    assert.equal(msToNsString(1764900000123), "1764900000123000000");
    assert.equal(msToNsString(0), "0");
  });

  test("chartRange: from the first sample to now, at least a minute; a custom window whole", () => {
    const now = 1_000_000e3;
    const b = { fromMs: now - 600e3, toMs: null };
    assert.deepEqual(chartRange({ name: "10m" }, b, [], now), { min: (now - 600e3) / 1000, max: now / 1000 });
    const twoMinutesAgo = [{ t: (now - 120e3) * 1e6, f: {} }];
    assert.deepEqual(chartRange({ name: "10m" }, b, twoMinutesAgo, now), { min: (now - 120e3) / 1000, max: now / 1000 });
    const justNow = [{ t: (now - 5e3) * 1e6, f: {} }];
    assert.deepEqual(chartRange({ name: "10m" }, b, justNow, now), { min: (now - 60e3) / 1000, max: now / 1000 });
    const ahead = [{ t: (now + 30e3) * 1e6, f: {} }]; // a phone with a fast clock: the axis ends now
    assert.deepEqual(chartRange({ name: "10m" }, b, ahead, now), { min: (now - 60e3) / 1000, max: now / 1000 });
    assert.deepEqual(chartRange({ name: "custom" }, { fromMs: 1000, toMs: 5000 }, twoMinutesAgo, now), { min: 1, max: 5 });
  });
});

describe("latest values", () => {
  const samples = [
    { t: 1 * S, f: { hr_bpm: 100, cad_rpm: 80, pwr_w: 0 } },
    { t: 2 * S, f: { hr_bpm: 110 } },
    { t: 3 * S, f: { lat: 47, lng: 8, hr_bpm: "x" } },
  ];

  test("each field's value comes from the newest sample that has it as a number", () => {
    const latest = latestValues(samples, ["hr_bpm", "cad_rpm", "pwr_w", "spd_kph"]);
    assert.deepEqual(latest.values, { hr_bpm: 110, cad_rpm: 80, pwr_w: 0 });
    assert.deepEqual(latest.times, { hr_bpm: 2 * S, cad_rpm: 1 * S, pwr_w: 1 * S });
  });

  test("staleValues names the values older than the threshold, with their ages", () => {
    const times = { hr_bpm: 1e9, spd_kph: 50e9, pwr_w_l: 10e9, pwr_w_r: 45e9 };
    // At 60 s with a 30 s threshold: heart rate (59 s) and the legs' power (the older leg, 50 s) are old.
    assert.deepEqual(staleValues(times, 60e3, 30e3), { hr_bpm: 59e3, pwr_w_l: 50e3, pwr_w: 50e3 });
    assert.deepEqual(staleValues(times, 20e3, 30e3), {});
    // A sample from a clock that runs ahead is never "old".
    assert.deepEqual(staleValues({ hr_bpm: 100e9 }, 60e3, 30e3), {});
  });

  test("valueAges says how old each latest value is", () => {
    const { times } = latestValues(samples, ["hr_bpm", "cad_rpm"]);
    assert.deepEqual(valueAges(times, 10e3), { hr_bpm: 8e3, cad_rpm: 9e3 });
    assert.deepEqual(valueAges(times, 0), { hr_bpm: 0, cad_rpm: 0 }); // never negative
  });
});

test("streamStatus: connecting, offline, waiting, live, then stale after the limit", () => {
  const ago = (ms) => Math.round(ms / 1000) + " s ago";
  const base = { connected: false, streamFailed: false, error: null, lastSampleTime: null };
  assert.deepEqual(streamStatus(base, 0, 30e3, ago), { status: "connecting", text: "connecting" });
  assert.deepEqual(streamStatus({ ...base, streamFailed: true }, 0, 30e3, ago), { status: "offline", text: "offline" });
  assert.deepEqual(streamStatus({ ...base, error: 401 }, 0, 30e3, ago), { status: "offline", text: "offline" });
  const up = { ...base, connected: true };
  assert.deepEqual(streamStatus(up, 0, 30e3, ago), { status: "waiting", text: "live · no samples yet" });
  assert.deepEqual(streamStatus({ ...up, lastSampleTime: 1000 }, 31e3, 30e3, ago), { status: "live", text: "live" });
  assert.deepEqual(streamStatus({ ...up, lastSampleTime: 1000 }, 41e3, 30e3, ago), { status: "stale", text: "last sample 40 s ago" });
});

describe("position fixes", () => {
  const samples = [
    { t: 1 * S, f: { lat: 1, lng: 1 } },
    { t: 2 * S, f: { hr_bpm: 1 } },
    { t: 3 * S, f: { lat: 3, lng: 3 } },
    { t: 4 * S, f: { lat: 4 } }, // half a fix is no fix
    { t: 9 * S, f: { lat: 9, lng: 9 } },
  ];

  test("track lists the fixes and names the newest and the one before", () => {
    const t = track(samples);
    assert.deepEqual(t.latlngs, [[1, 1], [3, 3], [9, 9]]);
    assert.equal(t.lastFix.t, 9 * S);
    assert.equal(t.fixBefore.t, 3 * S);
    assert.deepEqual(track([{ t: 1, f: { hr_bpm: 1 } }]), { latlngs: [], lastFix: null, fixBefore: null });
  });

  test("nearestFix finds the fix closest in time, skipping samples without a position", () => {
    assert.equal(nearestFix(samples, 2.2 * S).t, 3 * S);
    assert.equal(nearestFix(samples, 1.8 * S).t, 1 * S);
    assert.equal(nearestFix(samples, 2 * S).t, 1 * S); // a tie goes to the earlier fix
    assert.equal(nearestFix(samples, 7 * S).t, 9 * S);
    assert.equal(nearestFix(samples, 100 * S).t, 9 * S);
    assert.equal(nearestFix(samples, 0).t, 1 * S);
    assert.equal(nearestFix([], S), null);
  });

  test("bearingBetween points north, east, south and west", () => {
    const close = (a, b) => Math.abs(a - b) < 1e-6;
    assert.ok(close(bearingBetween({ lat: 0, lng: 0 }, { lat: 1, lng: 0 }), 0));
    assert.ok(close(bearingBetween({ lat: 0, lng: 0 }, { lat: 0, lng: 1 }), 90));
    assert.ok(close(bearingBetween({ lat: 1, lng: 0 }, { lat: 0, lng: 0 }), 180));
    assert.ok(close(bearingBetween({ lat: 0, lng: 1 }, { lat: 0, lng: 0 }), 270));
  });
});

describe("access problems", () => {
  test("an ended share link says what happened and what to do, and the badge says so", () => {
    const revoked = accessProblem(403, { error: "x", reason: "link_revoked" }, "bob");
    assert.deepEqual(revoked, { text: "This share link was revoked by bob. Ask bob for a new link.", linkEnded: "revoked" });
    const expired = accessProblem(403, { error: "x", reason: "link_expired" }, "bob");
    assert.deepEqual(expired, { text: "This share link has expired. Ask bob for a new link.", linkEnded: "expired" });
    const badge = streamStatus({ connected: false, streamFailed: true, error: 403, linkEnded: "expired", lastSampleTime: null }, 0, 30e3, String);
    assert.deepEqual(badge, { status: "ended", text: "link expired" });
  });

  test("other refusals keep their words", () => {
    assert.equal(accessProblem(403, { error: "not allowed to watch bob" }, "bob").text, "not allowed to watch bob");
    assert.equal(accessProblem(403, {}, "bob").linkEnded, null);
    assert.match(accessProblem(401, {}, "bob").text, /private/);
  });
});

test("clockOffsetMs: the server's clock from an answer's Date header, only past 2 s", () => {
  const t = 1_700_000_000_000;
  // The header says t (whole seconds); the answer came 100 ms after the request, at the browser's t.
  assert.equal(clockOffsetMs(t, t - 100, t), 0);
  assert.equal(clockOffsetMs(t + 1000, t - 100, t), 0); // within the header's resolution and the trip
  assert.equal(clockOffsetMs(t + 120_000, t - 100, t), 120_550); // the browser is two minutes slow
  assert.equal(clockOffsetMs(t - 60_000, t - 100, t), -59_450); // a minute fast
  assert.equal(clockOffsetMs(NaN, t - 100, t), 0); // no header
});
