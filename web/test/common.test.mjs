// The pages' shared formatting (tracker/browser/static/common.js, a classic script that sets window.TrackerCommon).
import assert from "node:assert/strict";
import { test } from "node:test";

globalThis.window = {};
await import("../../tracker/browser/static/common.js");
const { formatAgo } = window.TrackerCommon;

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

test("recent ages read as ages", () => {
  assert.equal(formatAgo(12_000), "12 s ago");
  assert.equal(formatAgo(5 * MINUTE), "5 min ago");
  assert.equal(formatAgo(3 * HOUR), "3 h ago");
  assert.equal(formatAgo(2 * DAY), "2 days ago");
  assert.equal(formatAgo(7 * DAY), "7 days ago");
  assert.equal(formatAgo(-5000), "0 s ago"); // never "in the future"
});

test("past a week, the day instead of thousands of days", () => {
  const now = new Date(2026, 11, 5, 10, 30).getTime(); // local time: the day is the viewer's
  const lastSample = new Date(2015, 5, 11, 20, 46).getTime();
  assert.equal(formatAgo(now - lastSample, now), "on 2015-06-11");
  assert.equal(formatAgo(8 * DAY, now), "on 2026-11-27");
  // Called as the pages do, with the age alone: the day is counted back from now.
  assert.match(formatAgo(3851 * DAY), /^on \d{4}-\d{2}-\d{2}$/);
});
