// Shared by Tracker's pages: small formatting helpers with no dependencies.
"use strict";
window.TrackerCommon = {
  // "12 s ago", "5 min ago", "3 h ago", "2 days ago" for an age in milliseconds.
  formatAgo(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 90) return s + " s ago";
    const m = Math.round(s / 60);
    if (m < 90) return m + " min ago";
    const h = Math.round(m / 60);
    if (h < 36) return h + " h ago";
    return Math.round(h / 24) + " days ago";
  },
};
