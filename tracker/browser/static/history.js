// The owner's history on the landing page: activities as a list (paged with the API's cursor) or a
// month calendar, import of GPX/TCX/FIT files by upload, export of a time range, and the activity
// settings. Everything the server sends is shown with textContent; changes carry the CSRF token
// through the page's own request helper (index.js), uploads the same header by XMLHttpRequest.
import {
  WEEKDAY_NAMES,
  activityCells,
  dayKey,
  formatDay,
  formatDistance,
  formatDuration,
  gridRangeMs,
  groupByDay,
  monthGrid,
  monthTitle,
  parseZones,
  shiftMonth,
  sportLabel,
  totalsText,
  weekTotals,
  zonesText,
} from "./history/calendar.js";

const PAGE_SIZE = 20;
// A month holds far fewer activities than this; the cap only bounds a runaway loop.
const MONTH_PAGE = 500;
const MONTH_MAX_PAGES = 10;

const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function activityUrl(id) {
  return "/activity/" + encodeURIComponent(id);
}

// page: {api(method, path, body), csrfToken(), showMessage(text, ok), user}
export function startHistory(page) {
  const userParam = "user=" + encodeURIComponent(page.user);
  // uploads: file name -> {loaded, total, state}, as the progress bars show them
  const state = { next: null, view: "list", month: null, listed: 0, uploads: {} };
  const now = new Date();
  state.month = { year: now.getFullYear(), month: now.getMonth() };
  window.trackerHistory = state; // read by the page tests

  // ---- the list ---------------------------------------------------------------------------------
  function activityRow(activity) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(activity.id);
    for (const [label, text] of activityCells(activity)) {
      const td = document.createElement("td");
      td.dataset.label = label;
      td.dataset.key = label.toLowerCase();
      if (label === "Name") {
        const a = element("a", "", text);
        a.href = activityUrl(activity.id);
        td.appendChild(a);
      } else {
        td.textContent = text;
      }
      tr.appendChild(td);
    }
    return tr;
  }

  async function loadList(reset) {
    const more = $("history-more");
    more.disabled = true;
    const cursor = reset ? null : state.next;
    let path = "/api/activities?" + userParam + "&limit=" + PAGE_SIZE;
    if (cursor) path += "&before=" + encodeURIComponent(cursor);
    try {
      const { data } = await page.api("GET", path);
      const rows = (data.activities || []).map(activityRow);
      if (reset) $("activity-rows").replaceChildren(...rows);
      else $("activity-rows").append(...rows);
      state.next = data.next;
      state.listed = $("activity-rows").children.length;
      $("no-activities").hidden = state.listed > 0;
      $("activity-table").hidden = state.listed === 0;
      more.hidden = !data.next;
    } catch (err) {
      page.showMessage(err.message);
    } finally {
      more.disabled = false;
    }
  }

  // ---- the month ----------------------------------------------------------------------------------
  async function monthActivities(weeks) {
    const { fromMs, toMs } = gridRangeMs(weeks);
    const found = [];
    let cursor = null;
    for (let round = 0; round < MONTH_MAX_PAGES; round++) {
      let path = "/api/activities?" + userParam + "&limit=" + MONTH_PAGE;
      path += "&from=" + BigInt(fromMs) * 1_000_000n + "&to=" + (BigInt(toMs) * 1_000_000n - 1n);
      if (cursor) path += "&before=" + encodeURIComponent(cursor);
      const { data } = await page.api("GET", path);
      found.push(...(data.activities || []));
      cursor = data.next;
      if (!cursor) break;
    }
    return found;
  }

  function showDay(cell, day) {
    $("month-day-title").textContent = formatDay(cell);
    const rows = day ? day.activities.map(activityRow) : [];
    $("month-day-rows").replaceChildren(...rows);
    $("month-day").hidden = rows.length === 0;
  }

  async function loadMonth() {
    const { year, month } = state.month;
    $("month-title").textContent = monthTitle(year, month);
    const weeks = monthGrid(year, month);
    let days;
    try {
      days = groupByDay(await monthActivities(weeks));
    } catch (err) {
      page.showMessage(err.message);
      return;
    }
    // Another click may have moved the month meanwhile: draw only the month still asked for.
    if (state.month.year !== year || state.month.month !== month) return;
    const today = new Date();
    const todayKey = dayKey(today.getFullYear(), today.getMonth(), today.getDate());
    const rows = weeks.map((week) => {
      const tr = document.createElement("tr");
      for (const [index, cell] of week.entries()) {
        const day = days.get(cell.key);
        const td = element("td", cell.inMonth ? "day" : "day outside");
        td.dataset.day = cell.key;
        td.dataset.count = String(day ? day.count : 0);
        if (cell.key === todayKey) td.classList.add("today");
        const number = element("span", "number", String(cell.day));
        number.setAttribute("aria-label", WEEKDAY_NAMES[index] + " " + cell.key);
        td.appendChild(number);
        if (day) {
          const button = element("button", "day-total");
          button.type = "button";
          button.setAttribute("aria-label", cell.key + ": " + totalsText(day));
          button.append(...totalsParts(day, day.count === 1 ? "1 activity" : day.count + " activities"));
          button.addEventListener("click", () => showDay(cell, day));
          td.appendChild(button);
        }
        tr.appendChild(td);
      }
      const totals = weekTotals(week, days);
      const total = element("td", "week");
      total.setAttribute("aria-label", "week: " + (totalsText(totals) || "none"));
      if (totals.count) total.append(...totalsParts(totals, String(totals.count) + "×"));
      tr.appendChild(total);
      return tr;
    });
    $("month-rows").replaceChildren(...rows);
    $("month-day").hidden = true;
    state.monthShown = year + "-" + String(month + 1).padStart(2, "0");
  }

  // A day's or week's count, distance and duration, each on its own line; a phone shows the units smaller.
  function totalsParts(totals, countText) {
    const distance = element("span", "distance");
    const [number, unit] = formatDistance(totals.distance_m).split(" ");
    distance.append(number, element("span", "unit", " " + unit));
    return [element("span", "count", countText), distance, element("span", "duration", formatDuration(totals.elapsed_s))];
  }

  function showView(view) {
    state.view = view;
    $("history-list-view").hidden = view !== "list";
    $("history-month-view").hidden = view !== "month";
    $("history-show-list").setAttribute("aria-pressed", String(view === "list"));
    $("history-show-month").setAttribute("aria-pressed", String(view === "month"));
    if (view === "month") loadMonth();
  }

  function moveMonth(by) {
    state.month = shiftMonth(state.month.year, state.month.month, by);
    loadMonth();
  }

  function refresh() {
    loadList(true);
    if (state.view === "month") loadMonth();
  }

  // ---- import -------------------------------------------------------------------------------------
  // The server's import summary, a line each: what was stored, each track read, what was left out or not
  // mapped, and the activities it went into (a link each).
  function describeImport(result) {
    const counted = (counts) => Object.entries(counts || {}).map(([what, n]) => what + " (" + n + ")").join(", ");
    const lines = [(result.format ? result.format.toUpperCase() + ": " : "") + result.stored + " of " + result.points + " points stored"];
    for (const track of result.tracks || []) {
      const about = [track.kind, track.name, sportLabel(track.sport), track.device].filter(Boolean).join(", ");
      lines.push(about + ": " + track.points + " points");
    }
    if (Object.keys(result.refused || {}).length) lines.push("left out: " + counted(result.refused));
    if (Object.keys(result.unmapped || {}).length) lines.push("not mapped: " + counted(result.unmapped));
    // The activities the file's samples fell in, after the import: each opens its page.
    for (const activity of result.activities || []) lines.push({ text: "in " + activity.name, href: activityUrl(activity.id) });
    return lines;
  }

  function uploadOne(file, item) {
    const progress = item.querySelector("progress");
    const status = item.querySelector(".status-text");
    const detail = item.querySelector(".detail");
    const seen = { loaded: 0, total: null, state: "uploading" };
    state.uploads[file.name] = seen;
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/import?" + userParam);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRF-Token", page.csrfToken());
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        progress.max = e.total;
        progress.value = e.loaded;
        seen.loaded = e.loaded;
        seen.total = e.total;
        status.textContent = "uploading " + Math.round((100 * e.loaded) / e.total) + " %";
      });
      xhr.upload.addEventListener("load", () => {
        status.textContent = "reading the file…";
      });
      const finish = (ok, text, lines) => {
        progress.max = 1;
        progress.value = 1;
        item.classList.add(ok ? "done" : "failed");
        item.dataset.state = ok ? "done" : "failed";
        seen.state = item.dataset.state;
        status.textContent = text;
        detail.replaceChildren(
          ...lines.map((line) => {
            if (typeof line === "string") return element("li", "", line);
            const link = element("a", "", line.text);
            link.href = line.href;
            const item = element("li", "");
            item.append(link);
            return item;
          }),
        );
        resolve(ok);
      };
      xhr.addEventListener("load", () => {
        let data = null;
        try {
          data = JSON.parse(xhr.responseText);
        } catch (err) {
          data = null;
        }
        if (xhr.status >= 200 && xhr.status < 300 && data) {
          finish(true, "done", describeImport(data));
        } else {
          finish(false, "failed", [(data && data.error) || "the server answered " + xhr.status]);
        }
      });
      xhr.addEventListener("error", () => finish(false, "failed", ["the upload did not reach the server"]));
      // Multipart, so the file's name travels whole (a header could carry only Latin-1).
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }

  async function importFiles(files) {
    const list = $("import-list");
    const items = [...files].map((file) => {
      const li = element("li", "upload");
      li.dataset.file = file.name;
      li.dataset.state = "waiting";
      const progress = document.createElement("progress");
      progress.max = 1;
      progress.value = 0;
      progress.setAttribute("aria-label", "upload of " + file.name);
      li.append(element("span", "file", file.name), progress, element("span", "status-text", "waiting"), element("ul", "detail"));
      return li;
    });
    list.prepend(...items);
    // One file after another: the server reads each whole, and the progress stays readable.
    let stored = 0;
    for (const [index, file] of [...files].entries()) {
      if (await uploadOne(file, items[index])) stored++;
    }
    if (stored) refresh();
  }

  function wireImport() {
    const input = $("import-files");
    input.addEventListener("change", () => {
      if (input.files.length) importFiles(input.files).finally(() => (input.value = ""));
    });
    const zone = $("import-drop");
    zone.addEventListener("dragover", (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files.length) importFiles(e.dataTransfer.files);
    });
  }

  // ---- export ------------------------------------------------------------------------------------
  function localInputValue(date) {
    const two = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate()) + "T" + two(date.getHours()) + ":" + two(date.getMinutes());
  }

  function rfc3339(inputValue) {
    const ms = Date.parse(inputValue); // a datetime-local value is the browser's local time
    return Number.isNaN(ms) ? inputValue : new Date(ms).toISOString();
  }

  function wireExport() {
    const today = new Date();
    $("export-start").value = localInputValue(new Date(today.getFullYear(), today.getMonth(), today.getDate()));
    $("export-end").value = localInputValue(today);
    $("export-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const error = $("export-error");
      error.hidden = true;
      const query = new URLSearchParams({
        user: page.user,
        format: $("export-format").value,
        start: rfc3339($("export-start").value),
        end: rfc3339($("export-end").value),
      });
      const button = e.target.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const res = await fetch("/api/export?" + query, { credentials: "same-origin", cache: "no-store" });
        if (!res.ok) {
          let message = "the export answered " + res.status;
          try {
            message = (await res.json()).error || message;
          } catch (err) {
            /* not JSON: the status says it */
          }
          throw new Error(message);
        }
        const disposition = res.headers.get("Content-Disposition") || "";
        const named = /filename="?([^";]+)"?/.exec(disposition);
        const link = document.createElement("a");
        link.href = URL.createObjectURL(await res.blob());
        link.download = named ? named[1] : "export." + query.get("format");
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
  }

  // ---- activity settings -------------------------------------------------------------------------
  const numberOrNull = (text) => (text.trim() === "" ? null : Number(text));
  // Zone bounds as typed: a list when they read as numbers, else the text itself, for the server to name the rule.
  const zonesOrNull = (text) => {
    if (text.trim() === "") return null;
    return parseZones(text) || text;
  };

  function fillSettings(settings) {
    $("set-gap").value = String(settings.gap_s / 60);
    $("set-moving").value = String(settings.moving_kph);
    $("set-hr-max").value = settings.hr_max_bpm === null ? "" : String(settings.hr_max_bpm);
    $("set-hr-zones").value = zonesText(settings.hr_zones_bpm);
    $("set-ftp").value = settings.ftp_w === null ? "" : String(settings.ftp_w);
    $("set-pwr-zones").value = zonesText(settings.pwr_zones_w);
  }

  async function loadSettings() {
    const { data } = await page.api("GET", "/api/activity-settings?" + userParam);
    fillSettings(data);
  }

  function wireSettings() {
    $("settings-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const error = $("settings-error");
      const gap = numberOrNull($("set-gap").value);
      const body = {
        gap_s: gap === null ? null : Math.round(gap * 60 * 1000) / 1000,
        moving_kph: numberOrNull($("set-moving").value),
        hr_max_bpm: numberOrNull($("set-hr-max").value),
        hr_zones_bpm: zonesOrNull($("set-hr-zones").value),
        ftp_w: numberOrNull($("set-ftp").value),
        pwr_zones_w: zonesOrNull($("set-pwr-zones").value),
      };
      try {
        const { data } = await page.api("PUT", "/api/activity-settings?" + userParam, body);
        fillSettings(data);
        error.hidden = true;
        page.showMessage("Activity settings saved: the activities and their summaries follow them.", true);
        refresh();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      }
    });
  }

  // ---- start ---------------------------------------------------------------------------------------
  for (const id of ["history", "import", "export", "activity-settings"]) $(id).hidden = false;
  $("history-show-list").addEventListener("click", () => showView("list"));
  $("history-show-month").addEventListener("click", () => showView("month"));
  $("history-more").addEventListener("click", () => loadList(false));
  $("month-prev").addEventListener("click", () => moveMonth(-1));
  $("month-next").addEventListener("click", () => moveMonth(1));
  wireImport();
  wireExport();
  wireSettings();
  return Promise.all([loadList(true), loadSettings().catch((err) => page.showMessage(err.message))]);
}
