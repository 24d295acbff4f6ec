// Pure logic of the owner's history: the month grid, activities grouped by the viewer's local day,
// week totals, and how the numbers read. No DOM, so Node's test runner can run it.
//
// Activities are the API's JSON (GET /api/activities): start_ns, end_ns and a summary with
// elapsed_s, distance_m, speed_avg_kph, ... (null when the samples had none of it).
// Days are the browser's local days: an activity belongs to the day it started on, as in
// every training log, even when it runs past midnight.

const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTH_NAMES = [
  "January", "February", "March", "April", "May", "June",
  "July", "August", "September", "October", "November", "December",
];
export const WEEKDAY_NAMES = WEEKDAYS;

const two = (n) => String(n).padStart(2, "0");

// "2026-12-05" for a local calendar day.
export function dayKey(year, month, day) {
  return year + "-" + two(month + 1) + "-" + two(day);
}

// The local day an instant (ns since the epoch) falls on.
export function localDayKey(ns) {
  const d = new Date(ns / 1e6);
  return dayKey(d.getFullYear(), d.getMonth(), d.getDate());
}

// The month's weeks, Monday first: each week is 7 days {key, year, month, day, inMonth}, from the
// Monday on or before the 1st to the Sunday on or after the last day (4 to 6 weeks). `month` is 0-11.
// Days are counted on the calendar, never in milliseconds, so a DST change cannot skip or repeat one.
export function monthGrid(year, month) {
  const first = new Date(year, month, 1);
  const lead = (first.getDay() + 6) % 7; // days since Monday
  const daysInMonth = new Date(year, month + 1, 0).getDate();
  const weeks = [];
  for (let offset = -lead; offset < daysInMonth; offset += 7) {
    const week = [];
    for (let i = 0; i < 7; i++) {
      const d = new Date(year, month, 1 + offset + i);
      week.push({
        key: dayKey(d.getFullYear(), d.getMonth(), d.getDate()),
        year: d.getFullYear(),
        month: d.getMonth(),
        day: d.getDate(),
        inMonth: d.getMonth() === month,
      });
    }
    weeks.push(week);
  }
  return weeks;
}

// The instants (ms) the grid covers: from its first day's local midnight to the midnight after its last.
export function gridRangeMs(weeks) {
  const first = weeks[0][0];
  const last = weeks[weeks.length - 1][6];
  return {
    fromMs: new Date(first.year, first.month, first.day).getTime(),
    toMs: new Date(last.year, last.month, last.day + 1).getTime(),
  };
}

// {year, month} moved by `by` months.
export function shiftMonth(year, month, by) {
  const d = new Date(year, month + by, 1);
  return { year: d.getFullYear(), month: d.getMonth() };
}

export function monthTitle(year, month) {
  return MONTH_NAMES[month] + " " + year;
}

function emptyTotals() {
  return { count: 0, distance_m: 0, elapsed_s: 0, moving_s: 0 };
}

function add(totals, summary) {
  totals.count += 1;
  totals.distance_m += (summary && summary.distance_m) || 0;
  totals.elapsed_s += (summary && summary.elapsed_s) || 0;
  totals.moving_s += (summary && summary.moving_s) || 0;
}

// Map of local day key -> {count, distance_m, elapsed_s, moving_s, activities (oldest first)}.
export function groupByDay(activities) {
  const days = new Map();
  const ordered = [...activities].sort((a, b) => a.start_ns - b.start_ns);
  for (const activity of ordered) {
    const key = localDayKey(activity.start_ns);
    if (!days.has(key)) days.set(key, { ...emptyTotals(), activities: [] });
    const day = days.get(key);
    add(day, activity.summary);
    day.activities.push(activity);
  }
  return days;
}

// The totals of one week of the grid, from groupByDay's days.
export function weekTotals(week, days) {
  const totals = emptyTotals();
  for (const cell of week) {
    const day = days.get(cell.key);
    if (!day) continue;
    totals.count += day.count;
    totals.distance_m += day.distance_m;
    totals.elapsed_s += day.elapsed_s;
    totals.moving_s += day.moving_s;
  }
  return totals;
}

// ---- how the numbers read ("–" when the activity has no such value)

export const NONE = "–";
const known = (v) => typeof v === "number" && Number.isFinite(v);

// h:mm:ss, or m:ss under an hour.
export function formatDuration(seconds) {
  if (!known(seconds)) return NONE;
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return (h ? h + ":" + two(m) : String(m)) + ":" + two(s % 60);
}

// "12.35 km"; "850 m" under a kilometre.
export function formatDistance(metres) {
  if (!known(metres)) return NONE;
  return metres < 1000 ? Math.round(metres) + " m" : (metres / 1000).toFixed(2) + " km";
}

export function formatSpeed(kph) {
  return known(kph) ? kph.toFixed(1) + " km/h" : NONE;
}

export function formatClimb(metres) {
  return known(metres) ? Math.round(metres) + " m" : NONE;
}

export function formatHeartRate(bpm) {
  return known(bpm) ? Math.round(bpm) + " bpm" : NONE;
}

export function formatPower(watts) {
  return known(watts) ? Math.round(watts) + " W" : NONE;
}

// "Sat 5 Dec 2026, 07:12" in the browser's time zone.
export function formatStart(ns) {
  const d = new Date(ns / 1e6);
  const weekday = WEEKDAYS[(d.getDay() + 6) % 7];
  return weekday + " " + d.getDate() + " " + MONTHS[d.getMonth()] + " " + d.getFullYear() + ", " + two(d.getHours()) + ":" + two(d.getMinutes());
}

// "Sun 15 Nov 2026" for a grid cell {year, month, day}.
export function formatDay(cell) {
  const d = new Date(cell.year, cell.month, cell.day);
  return WEEKDAYS[(d.getDay() + 6) % 7] + " " + cell.day + " " + MONTHS[cell.month] + " " + cell.year;
}

// "cycling" -> "Cycling", "mountain-biking" -> "Mountain biking"; "" when none.
export function sportLabel(sport) {
  if (!sport) return "";
  const words = sport.replace(/[-_]+/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// The owner's name, else the sport and the start in the browser's time zone (the API's automatic
// name is in UTC: beside local times it would read an hour or more off).
export function displayName(activity) {
  if (activity.named) return activity.name;
  return (sportLabel(activity.sport) || "Activity") + ", " + formatStart(activity.start_ns);
}

// The list's cells of one activity, in order: [column label, text].
export function activityCells(activity) {
  const s = activity.summary || {};
  return [
    ["When", formatStart(activity.start_ns)],
    ["Name", displayName(activity)],
    ["Sport", sportLabel(activity.sport) || NONE],
    ["Device", activity.device || NONE],
    ["Duration", formatDuration(s.elapsed_s)],
    ["Distance", formatDistance(s.distance_m)],
    ["Speed", formatSpeed(s.speed_avg_kph)],
    ["Climb", formatClimb(s.elev_gain_m)],
    ["HR", formatHeartRate(s.hr_avg_bpm)],
    ["Power", formatPower(s.pwr_avg_w)],
  ];
}

// A day's or a week's totals in a few words: "2 · 45.10 km · 1:32:00"; "" for none.
export function totalsText(totals) {
  if (!totals || !totals.count) return "";
  return [String(totals.count), formatDistance(totals.distance_m), formatDuration(totals.elapsed_s)].join(" · ");
}

// Comma-separated zone bounds as the settings form shows them, and back: [] for an empty field;
// null when a part is not a number (the server names the rule for everything else).
export function zonesText(bounds) {
  return Array.isArray(bounds) ? bounds.join(", ") : "";
}

export function parseZones(text) {
  const parts = text.split(/[,;\s]+/).filter(Boolean);
  const numbers = parts.map(Number);
  return numbers.every(Number.isFinite) ? numbers : null;
}
