// Shared by Tracker's pages: small formatting helpers with no dependencies.
"use strict";
window.TrackerCommon = {
  // "12 s ago", "5 min ago", "3 h ago", "2 days ago" for an age in milliseconds; past a week the day
  // instead, in the viewer's time zone ("on 2015-06-11"): "3851 days ago" is no way to tell a date.
  formatAgo(ms, nowMs = Date.now()) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 90) return s + " s ago";
    const m = Math.round(s / 60);
    if (m < 90) return m + " min ago";
    const h = Math.round(m / 60);
    if (h < 36) return h + " h ago";
    const days = Math.round(h / 24);
    if (days <= 7) return days + " days ago";
    const day = new Date(nowMs - ms);
    const two = (n) => String(n).padStart(2, "0");
    return "on " + day.getFullYear() + "-" + two(day.getMonth() + 1) + "-" + two(day.getDate());
  },
};
