// Pure logic of a planned route (course) on the live view: no DOM, so Node's test runner can run it.
// Where the rider is along the route, how far is done and left, whether they are off it, and when
// they will arrive at the recent pace.
//
// Geometry: lengths along the route are great-circle (haversine) lengths, the ones the server stores
// as the course's distance_m. Projecting a position onto one segment uses an equirectangular plane
// around that segment (x scaled by the cosine of the segment's mean latitude): over the few hundred
// metres a course segment spans, that differs from the sphere by far less than GPS noise.

import { EARTH_RADIUS_KM, haversineKm } from "./summary.js";

const EARTH_RADIUS_M = EARTH_RADIUS_KM * 1000; // the mean radius, as tracker/courses.py uses
const RAD = Math.PI / 180;
// Progress keeps to the route ahead of the last progress: the next position is looked for from
// BEHIND_M before it to AHEAD_M after it, so an out-and-back or a loop does not jump to the other leg
// that passes the same place. Only when nothing there is on route is the whole route searched.
export const BEHIND_M = 50;
export const AHEAD_M = 2000;
export const PACE_WINDOW_S = 600; // the estimated arrival uses the progress of the last 10 minutes
export const MIN_PACE_SPAN_S = 30; // ... over at least this long a span
export const MIN_MOVING_MPS = 0.2; // slower than this (0.72 km/h) along the route counts as not moving: no arrival

// A course's points ([[lat, lng, alt|null], ...]) with the distance along the route at each point.
export function prepareRoute(points) {
  const pts = points.map((p) => ({ lat: p[0], lng: p[1] }));
  const cum = [0];
  for (let i = 1; i < pts.length; i++) cum.push(cum[i - 1] + haversineKm(pts[i - 1], pts[i]) * 1000);
  return { points: pts, cum: cum, total: cum[cum.length - 1] || 0 };
}

// The nearest point of segment i to `pos`: {index, along (m from the route's start), offM}.
export function projectOnSegment(route, i, pos) {
  const a = route.points[i];
  const b = route.points[i + 1];
  const kx = Math.cos(((a.lat + b.lat) / 2) * RAD) * RAD * EARTH_RADIUS_M;
  const ky = RAD * EARTH_RADIUS_M;
  const bx = (b.lng - a.lng) * kx;
  const by = (b.lat - a.lat) * ky;
  const px = (pos.lng - a.lng) * kx;
  const py = (pos.lat - a.lat) * ky;
  const len2 = bx * bx + by * by;
  const t = len2 > 0 ? Math.max(0, Math.min(1, (px * bx + py * by) / len2)) : 0;
  const dx = px - t * bx;
  const dy = py - t * by;
  const segment = route.cum[i + 1] - route.cum[i];
  return { index: i, along: route.cum[i] + t * segment, offM: Math.hypot(dx, dy) };
}

// The nearest point of the route to `pos` among the segments that overlap [fromM, toM] along it
// (the whole route by default); the first such segment on a tie. The first segment is found by
// bisection (cum rises), so a window of a course of 100,000 points looks at its few segments only.
export function nearestOnRoute(route, pos, fromM = -Infinity, toM = Infinity) {
  const n = route.points.length;
  let lo = 0;
  let hi = n - 1; // the first i with cum[i + 1] >= fromM is in [lo, hi)
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (route.cum[mid + 1] < fromM) lo = mid + 1;
    else hi = mid;
  }
  let best = null;
  for (let i = lo; i + 1 < n && route.cum[i] <= toM; i++) {
    const p = projectOnSegment(route, i, pos);
    if (best === null || p.offM < best.offM) best = p;
  }
  return best;
}

// Where `pos` is along the route given the last progress (null at first): {along, offM, onRoute}.
// Off route, the progress stays where it was (or at the nearest point, before any progress).
export function locate(route, pos, lastAlong, offRouteM) {
  if (lastAlong !== null && lastAlong !== undefined) {
    const ahead = nearestOnRoute(route, pos, lastAlong - BEHIND_M, lastAlong + AHEAD_M);
    if (ahead !== null && ahead.offM <= offRouteM) return { along: ahead.along, offM: ahead.offM, onRoute: true };
  }
  const nearest = nearestOnRoute(route, pos);
  if (nearest === null) return null;
  if (lastAlong === null || lastAlong === undefined || nearest.offM <= offRouteM) {
    // The first position, or back on the route elsewhere (a shortcut, a detour's end).
    return { along: nearest.along, offM: nearest.offM, onRoute: nearest.offM <= offRouteM };
  }
  return { along: lastAlong, offM: nearest.offM, onRoute: false };
}

// The estimated arrival from the progress history ([{t: ns, along: m}], in time order): the pace is
// the progress gained over the last PACE_WINDOW_S. {seconds, atNs, mps} or null while not moving.
export function estimateArrival(history, remainingM) {
  if (history.length < 2) return null;
  const last = history[history.length - 1];
  const since = last.t - PACE_WINDOW_S * 1e9;
  let first = history[0];
  for (const h of history) {
    if (h.t >= since) {
      first = h;
      break;
    }
  }
  const span = (last.t - first.t) / 1e9;
  if (span < MIN_PACE_SPAN_S) return null;
  const mps = (last.along - first.along) / span;
  if (!(mps >= MIN_MOVING_MPS)) return null;
  const seconds = remainingM / mps;
  return { seconds: seconds, atNs: last.t + Math.round(seconds * 1e9), mps: mps };
}

// The rider's progress along one course, fed the positions in time order (add), read by readout().
export class RouteProgress {
  constructor(points, offRouteM) {
    this.route = prepareRoute(points);
    this.offRouteM = offRouteM;
    this.reset();
  }

  reset() {
    this.along = null;
    this.offM = null;
    this.onRoute = false;
    this.lastT = -Infinity;
    this.history = [];
  }

  // A position at time t (ns); positions older than the last one added are ignored (late samples
  // fill in the track; progress only moves forward in time).
  add(t, lat, lng) {
    if (t <= this.lastT || typeof lat !== "number" || typeof lng !== "number") return;
    const here = locate(this.route, { lat: lat, lng: lng }, this.along, this.offRouteM);
    if (here === null) return;
    this.lastT = t;
    this.along = here.along;
    this.offM = here.offM;
    this.onRoute = here.onRoute;
    if (here.onRoute) {
      this.history.push({ t: t, along: here.along });
      const keepFrom = t - PACE_WINDOW_S * 1e9;
      let drop = 0;
      while (drop < this.history.length - 1 && this.history[drop + 1].t <= keepFrom) drop++;
      if (drop > 0) this.history.splice(0, drop);
    }
  }

  // {doneM, remainingM, totalM, offM, offRoute, eta} or null before any position.
  readout() {
    if (this.along === null) return null;
    const remainingM = Math.max(0, this.route.total - this.along);
    return {
      doneM: this.along,
      remainingM: remainingM,
      totalM: this.route.total,
      offM: this.offM,
      offRoute: !this.onRoute,
      eta: this.onRoute ? estimateArrival(this.history, remainingM) : null,
    };
  }
}
