// The live view's map (Leaflet, loaded before this module as the global L): the track, the rider's
// marker gliding from fix to fix and turned to the heading, the accuracy circle, the chart cursor's
// place, the planned route (a wider, lighter line under the track), and the tiles named by the server's settings.
import { bearingBetween, track as trackOf } from "./samples.js";

const GLIDE_MAX_MS = 750; // a glide never lasts longer than this, however far apart the fixes are

// options.rider = false: the route alone, no current-position marker (the activity page's own markers).
export function createMap(state, el, options = {}) {
  const rider = options.rider !== false;
  const map = L.map("map", { zoomControl: true, worldCopyJump: true, attributionControl: true }).setView([30, 0], 2);
  L.control.scale({ imperial: false }).addTo(map);
  const track = L.polyline([], { color: "#0b3d91", weight: 4, opacity: 0.9 }).addTo(map);
  const course = L.polyline([], { color: "#e0701b", weight: 7, opacity: 0.45, interactive: false, className: "course-line" });
  const accuracyCircle = L.circle([0, 0], { radius: 1, color: "#0b3d91", weight: 1, fillOpacity: 0.12, interactive: false });
  const riderIcon = L.divIcon({
    className: "rider-marker",
    iconSize: [44, 44],
    iconAnchor: [22, 22],
    html:
      '<div class="rider-heading"><svg viewBox="0 0 44 44" width="44" height="44" aria-hidden="true">' +
      '<path class="arrow" d="M22 1 L32 15 L12 15 Z"/><circle cx="22" cy="22" r="9"/></svg></div>',
  });
  const marker = L.marker([0, 0], { icon: riderIcon, keyboard: false, title: "current position" });
  const hoverMarker = L.circleMarker([0, 0], { radius: 7, color: "#111", weight: 2, fillColor: "#ffd23f", fillOpacity: 1, interactive: false });

  let markerFixTime = -Infinity; // time (ns) of the fix the marker shows or glides to
  let glideFrame = null;
  let needsFit = true;

  function setMarkerPosition(latlng) {
    if (!map.hasLayer(marker)) marker.addTo(map);
    marker.setLatLng(latlng);
    if (state.accuracy) accuracyCircle.setLatLng(latlng);
    state.markerLatLng = [latlng[0], latlng[1]];
  }

  function glideTo(target, durationMs) {
    if (glideFrame !== null) cancelAnimationFrame(glideFrame); // a newer fix cancels the running glide
    glideFrame = null;
    const from = state.markerLatLng;
    if (!from || durationMs <= 0 || document.hidden) {
      setMarkerPosition(target);
      return;
    }
    const start = performance.now();
    const step = (now) => {
      const k = Math.min(1, (now - start) / durationMs);
      const e = k < 0.5 ? 2 * k * k : 1 - Math.pow(-2 * k + 2, 2) / 2; // ease in-out
      setMarkerPosition([from[0] + (target[0] - from[0]) * e, from[1] + (target[1] - from[1]) * e]);
      glideFrame = k < 1 ? requestAnimationFrame(step) : null;
    };
    glideFrame = requestAnimationFrame(step);
  }

  function showFix(fix, previousFix, glide) {
    const target = [fix.f.lat, fix.f.lng];
      state.markerTarget = target;
    let heading = typeof fix.f.bearing === "number" ? fix.f.bearing : null;
    if (heading === null && previousFix) {
      const moved = map.distance([previousFix.f.lat, previousFix.f.lng], target);
      heading = moved > 2 ? bearingBetween(previousFix.f, fix.f) : state.heading;
    }
    state.heading = heading;
    state.accuracy = typeof fix.f.acc_m === "number" && fix.f.acc_m > 0 ? fix.f.acc_m : null;
    if (state.accuracy) {
      accuracyCircle.setRadius(state.accuracy);
      if (!map.hasLayer(accuracyCircle)) accuracyCircle.addTo(map);
    } else if (map.hasLayer(accuracyCircle)) {
      accuracyCircle.remove();
    }
    const duration = glide && previousFix ? Math.min(GLIDE_MAX_MS, Math.max(0, (fix.t - previousFix.t) / 1e6)) : 0;
    glideTo(target, duration);
    if (!map.hasLayer(marker)) marker.addTo(map);
    applyHeading(marker.getElement().querySelector(".rider-heading"), heading);
    // Following keeps the window's whole route in view: refit only when the rider leaves the view.
    if (state.follow && !needsFit && !map.getBounds().pad(-0.05).contains(target)) fitRoute();
  }

  // The window's whole route (and so the marker, its newest fix) and the planned route in view.
  function fitRoute() {
    const points = track.getLatLngs();
    const bounds = points.length > 1 ? L.latLngBounds(points) : null;
    if (map.hasLayer(course)) {
      const all = bounds ? bounds.extend(course.getBounds()) : course.getBounds();
      if (state.markerTarget) all.extend(state.markerTarget);
      map.fitBounds(all, { padding: [24, 24], maxZoom: 16, animate: false });
    } else if (bounds) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16, animate: false });
    else if (state.markerTarget) map.setView(state.markerTarget, 15, { animate: false });
  }

  // The planned route ([[lat, lng, alt], ...]), or null to remove it; fitted in while following.
  function setCourse(points) {
    if (!points || points.length < 2) {
      course.remove();
      state.courseDrawn = 0;
      return;
    }
    course.setLatLngs(points.map((p) => [p[0], p[1]]));
    if (!map.hasLayer(course)) course.addTo(map);
    course.bringToBack(); // under the live track
    state.courseDrawn = points.length;
    if (state.follow) fitRoute();
  }

  function applyHeading(headingEl, heading) {
    if (!headingEl) return;
    headingEl.classList.toggle("no-heading", heading === null);
    headingEl.style.transform = heading === null ? "" : "rotate(" + heading + "deg)";
  }

  function setFollow(on) {
    state.follow = on;
    el.follow.hidden = on;
    if (on) fitRoute();
  }
  map.on("dragstart", () => setFollow(false));
  // What the map shows, for tests: [[south, west], [north, east]].
  map.on("moveend", () => {
    const b = map.getBounds();
    state.viewBounds = [[b.getSouth(), b.getWest()], [b.getNorth(), b.getEast()]];
  });
  el.follow.addEventListener("click", () => setFollow(true));

  // Draw the samples: the track, and the marker when a newer fix came (a late sample only fills in the track).
  function render(samples) {
    const t = trackOf(samples);
    track.setLatLngs(t.latlngs);
    state.trackPointCount = t.latlngs.length;
    if (!rider) {
      // no current position: nothing moves but the hover marker
    } else if (t.lastFix && t.lastFix.t > markerFixTime) {
      const glide = markerFixTime !== -Infinity;
      markerFixTime = t.lastFix.t;
      showFix(t.lastFix, t.fixBefore, glide);
    } else if (!t.lastFix && map.hasLayer(marker)) {
      marker.remove();
      accuracyCircle.remove();
      state.markerLatLng = null;
      state.markerTarget = null;
      markerFixTime = -Infinity;
    }
    if (needsFit) {
      needsFit = false;
      fitRoute();
    }
  }

  // The marker jumps to the newest fix at the next render, no glide (after a window load or lost access).
  function forgetMarker() {
    markerFixTime = -Infinity;
  }

  // Whether the next render fits the view to the track.
  function fitNext(fit) {
    needsFit = Boolean(fit);
  }

  // The chart cursor's place on the map, or null to hide it.
  function showHover(fix) {
    if (!fix) {
      if (map.hasLayer(hoverMarker)) hoverMarker.remove();
      state.hover = null;
      return;
    }
    hoverMarker.setLatLng([fix.f.lat, fix.f.lng]);
    if (!map.hasLayer(hoverMarker)) hoverMarker.addTo(map);
    state.hover = [fix.f.lat, fix.f.lng];
  }

  function addTiles(config) {
    if (!config.tile_url) return;
    const tiles = L.tileLayer(config.tile_url, {
      maxZoom: 19,
      attribution: escapeHtml(plainText(config.tile_attribution)),
      crossOrigin: false,
    });
    tiles.on("tileerror", (e) => {
      // No internet, or no tile server: keep the blank background instead of broken-image icons.
      e.tile.style.visibility = "hidden";
      state.tilesFailed += 1;
      if (state.tilesFailed === 1) {
        el.mapNote.textContent = "Map tiles unavailable: the track is drawn without a background map.";
        el.mapNote.hidden = false;
      }
    });
    tiles.on("tileload", () => {
      el.mapNote.hidden = true;
    });
    tiles.addTo(map);
  }

  return {
    render: render, forgetMarker: forgetMarker, fitNext: fitNext, showHover: showHover, addTiles: addTiles,
    setCourse: setCourse, invalidateSize: () => map.invalidateSize(),
    leaflet: map, // for pages that add layers of their own
    trackLayer: track,
  };
}

// The map, or, when Leaflet did not load (its file missing, or it threw), a stand-in that draws
// nothing: values, charts and the stream must not depend on the map library.
export function createMapOrNone(state, el, options = {}) {
  try {
    if (typeof L === "undefined") throw new Error("Leaflet is not loaded");
    return createMap(state, el, options);
  } catch (err) {
    console.error("the map is unavailable:", err);
    state.mapFailed = true;
    el.mapNote.textContent = "The map could not be loaded; values and charts still update.";
    el.mapNote.hidden = false;
    el.mapNote.classList.add("map-failed");
    const nothing = () => {};
    return {
      render: nothing, forgetMarker: nothing, fitNext: nothing, showHover: nothing, addTiles: nothing,
      setCourse: nothing, invalidateSize: nothing, leaflet: null, trackLayer: null,
    };
  }
}

function plainText(html) {
  // Attribution from the server's settings may carry HTML; show it as text, never as markup.
  return new DOMParser().parseFromString(String(html || ""), "text/html").body.textContent || "";
}

function escapeHtml(text) {
  const div = document.createElement("div");
  div.textContent = text;
  return div.innerHTML;
}
