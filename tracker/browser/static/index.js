// Tracker landing page: sign in; when signed in, the trackers you may watch and who may watch you.
// Every state-changing request carries the CSRF token (cookie `tracker_csrf`, sent back in a form field
// or the X-CSRF-Token header). Usernames and labels reach the page through textContent only.
// A module: the history (history.js) is its own part, handed this page's request helper.
import { startHistory } from "./history.js";

(function () {
  const $ = (id) => document.getElementById(id);
  let me = null;
  let signedOutCsrf = ""; // /api/me tells it when the cookie is not readable yet

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const eq = part.indexOf("=");
      if (eq > -1 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
    }
    return "";
  }
  function csrfToken() {
    return cookie("tracker_csrf") || (me && me.csrf) || signedOutCsrf;
  }

  function showMessage(text, ok) {
    const m = $("message");
    m.hidden = !text;
    m.textContent = text || "";
    m.classList.toggle("ok", Boolean(ok));
  }

  // `body`: a value sent as JSON, or a Blob (a file) sent as it is, with `extraHeaders`.
  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign({ Accept: "application/json" }, extraHeaders || {});
    const raw = body instanceof Blob;
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) headers["Content-Type"] = raw ? "application/octet-stream" : "application/json";
    const res = await fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    let data = null;
    try {
      data = await res.json();
    } catch (err) {
      data = null;
    }
    if (!res.ok && res.status !== 401) {
      throw new Error((data && data.error) || method + " " + path + " answered " + res.status);
    }
    return { status: res.status, data: data };
  }

  // Times from the server are ns since epoch (numbers) or ISO strings.
  function toDate(value) {
    if (value === null || value === undefined || value === "") return null;
    if (typeof value === "number") return new Date(value > 1e14 ? value / 1e6 : value > 1e11 ? value : value * 1000);
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : new Date(ms);
  }
  function formatDate(value, empty) {
    const d = toDate(value);
    return d ? d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : empty;
  }
  const formatAgo = window.TrackerCommon.formatAgo;
  function pick(obj, keys) {
    for (const k of keys) if (obj && obj[k] !== undefined) return obj[k];
    return undefined;
  }
  function watchUrl(name) {
    return "/watch/" + encodeURIComponent(name);
  }

  // ---- signed out -----------------------------------------------------------------------------------
  function showSignIn() {
    $("signin").hidden = false;
    const params = new URLSearchParams(location.search);
    const outcome = params.get("login");
    if (outcome === "banned") showBan(Number(params.get("retry_after")));
    else if (outcome === "failed" || params.get("error")) showMessage("Sign-in failed: wrong username or password. Try again.");
    // Said once: a reload later shows the plain form again.
    if (outcome) history.replaceState(null, "", location.pathname);
    // The form's CSRF token is one the server signed, and it expires: fetch a current one as the
    // form is sent (the page may have been open for hours), then send the form as usual.
    $("login-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const form = e.target;
      try {
        if (await refreshMe()) {
          location.reload(); // signed in meanwhile, in another tab
          return;
        }
      } catch (err) {
        showMessage("The server did not answer: " + err.message);
        return;
      }
      const token = csrfToken();
      if (!token) {
        showMessage("Signing in needs cookies: please allow cookies for this site and reload.");
        return;
      }
      form.elements.csrf.value = token;
      form.submit();
    });
    $("login-form").elements.username.focus();
  }

  // Too many failed sign-ins from this address: say so with the wait, counting down; the button
  // comes back when the ban is over.
  function showBan(retryAfterSeconds) {
    const until = Date.now() + (Number.isFinite(retryAfterSeconds) && retryAfterSeconds > 0 ? retryAfterSeconds : 0) * 1000;
    const button = $("login-form").querySelector("button[type=submit]");
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) {
        button.disabled = false;
        showMessage("You can sign in again now.", true);
        return false;
      }
      button.disabled = true;
      const wait = left >= 90 ? Math.ceil(left / 60) + " min" : left + " s";
      showMessage("Too many failed sign-ins from your address. Try again in " + wait + ".");
      return true;
    };
    if (tick()) {
      const timer = setInterval(() => {
        if (!tick()) clearInterval(timer);
      }, 1000);
    }
  }

  // ---- signed in ------------------------------------------------------------------------------------
  function renderTrackers(trackers) {
    const list = $("tracker-list");
    const items = [];
    for (const t of trackers || []) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = watchUrl(t.user);
      a.textContent = t.user;
      li.appendChild(a);
      if (t.user === me.user) {
        const mine = document.createElement("span");
        mine.className = "mine";
        mine.textContent = "you";
        li.appendChild(mine);
      }
      const badge = document.createElement("span");
      badge.className = "status";
      if (t.live) {
        badge.classList.add("status-live");
        badge.textContent = "live";
      } else if (t.last_sample_ns) {
        badge.classList.add("status-stale");
        badge.textContent = "last seen " + formatAgo(Date.now() - t.last_sample_ns / 1e6);
      } else {
        badge.classList.add("status-connecting");
        badge.textContent = "no samples yet";
      }
      li.appendChild(badge);
      items.push(li);
    }
    list.replaceChildren(...items);
  }

  async function refreshMe() {
    const { status, data } = await api("GET", "/api/me");
    if (status === 401) {
      if (data && data.csrf) signedOutCsrf = data.csrf;
      return null;
    }
    me = data;
    return data;
  }

  async function loadProfile() {
    const toggle = $("public-toggle");
    let isPublic = me && typeof me.public === "boolean" ? me.public : undefined;
    if (isPublic === undefined) {
      try {
        const { data } = await api("GET", "/api/profile");
        if (data && typeof data.public === "boolean") isPublic = data.public;
      } catch (err) {
        /* unknown: leave the box undecided */
      }
    }
    if (isPublic === undefined) toggle.indeterminate = true;
    else toggle.checked = isPublic;
    toggle.addEventListener("change", async () => {
      const wanted = toggle.checked;
      toggle.disabled = true;
      try {
        await api("POST", "/api/profile", { public: wanted });
        showMessage(wanted ? "Your profile is public now." : "Your profile is private now.", true);
      } catch (err) {
        toggle.checked = !wanted;
        showMessage(err.message);
      } finally {
        toggle.disabled = false;
      }
    });
  }

  // A red button that disables itself when clicked (the list is redrawn after the change).
  function dangerButton(text, onClick) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "danger";
    button.textContent = text;
    button.addEventListener("click", () => {
      button.disabled = true;
      onClick();
    });
    return button;
  }

  // A table of revocable things (share links, device tokens): text cells, then Revoke while active.
  function renderRevocable(tbody, emptyNote, items, cellsOf, revokeItem) {
    const rows = [];
    for (const item of items) {
      const tr = document.createElement("tr");
      const revoked = Boolean(pick(item, ["revoked", "revoked_ns"]));
      if (revoked) tr.className = "revoked";
      for (const [label, text] of cellsOf(item)) {
        const td = document.createElement("td");
        if (label !== "Label") td.dataset.label = label;
        td.textContent = text;
        tr.appendChild(td);
      }
      const actions = document.createElement("td");
      if (!revoked) actions.appendChild(dangerButton("Revoke", () => revokeItem(item)));
      tr.appendChild(actions);
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
    emptyNote.hidden = rows.length > 0;
    tbody.closest("table").hidden = rows.length === 0;
  }

  async function loadLinks() {
    const { data } = await api("GET", "/api/links");
    const links = Array.isArray(data) ? data : (data && data.links) || [];
    const cells = (link) => [
      ["Label", pick(link, ["label"]) || "(no label)"],
      // A link opens the live view, or one activity only (made on that activity's page).
      ["Opens", typeof link.activity_id === "number" ? "activity " + link.activity_id : "live view"],
      ["Created", formatDate(pick(link, ["created_ns", "created", "created_at"]), "")],
      ["Expires", formatDate(pick(link, ["expires_ns", "expires_at", "expires"]), "never")],
      ["Last used", formatDate(pick(link, ["last_used_ns", "last_used", "last_used_at"]), "never")],
    ];
    renderRevocable($("link-rows"), $("no-links"), links, cells, async (link) => {
      try {
        await api("DELETE", "/api/links/" + encodeURIComponent(link.id));
        showMessage("Link revoked: it stops working at once, open pages included.", true);
      } catch (err) {
        showMessage(err.message);
      }
      loadLinks();
    });
  }

  async function loadShares() {
    const { data } = await api("GET", "/api/shares");
    let viewers = Array.isArray(data) ? data : (data && (data.viewers || data.shares)) || [];
    viewers = viewers.map((v) => (typeof v === "string" ? v : v.viewer)).filter(Boolean);
    const items = viewers.map((viewer) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = viewer;
      const remove = dangerButton("Remove", async () => {
        try {
          await api("DELETE", "/api/shares", { viewer: viewer });
        } catch (err) {
          showMessage(err.message);
        }
        loadShares();
      });
      li.append(name, remove);
      return li;
    });
    $("share-list").replaceChildren(...items);
    $("no-shares").hidden = items.length > 0;
  }

  const SPEED_UNIT_NAMES = { knots: "knots", mps: "m/s", kph: "km/h" };

  async function loadTokens() {
    const { data } = await api("GET", "/api/tokens");
    const cells = (token) => [
      ["Label", token.label],
      ["Created", formatDate(token.created_ns, "")],
      ["Last used", formatDate(token.last_used_ns, "never")],
      ["Last sample", formatDate(token.last_sample_ns, "none")],
      ["Speed", SPEED_UNIT_NAMES[token.speed_unit] || token.speed_unit],
    ];
    renderRevocable($("token-rows"), $("no-tokens"), (data && data.tokens) || [], cells, async (token) => {
      try {
        await api("DELETE", "/api/tokens/" + encodeURIComponent(token.id));
        showMessage("Token revoked: the device can no longer send samples.", true);
      } catch (err) {
        showMessage(err.message);
      }
      loadTokens();
    });
  }

  // What to enter in each app, from the creation answer alone: the token is never fetched again.
  function copyButton(text) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (err) {
        button.textContent = "Select and copy";
      }
    });
    return button;
  }

  const QR_CAPTIONS = {
    config: "Scan this with the app (or the phone's camera): it fills in the settings above.",
    plain: "The app cannot scan settings: scan this with the phone's camera and paste the address into the app.",
  };

  function renderSetup(apps) {
    const blocks = (apps || []).map((app) => {
      const block = document.createElement("details");
      block.className = "app-setup";
      block.dataset.app = app.app;
      const summary = document.createElement("summary");
      summary.textContent = app.name;
      const where = document.createElement("p");
      where.className = "where";
      where.textContent = app.where;
      const list = document.createElement("dl");
      for (const setting of app.settings) {
        const dt = document.createElement("dt");
        dt.textContent = setting.name;
        const dd = document.createElement("dd");
        const code = document.createElement("code");
        code.textContent = setting.value;
        dd.appendChild(code);
        const action = document.createElement("dd");
        if (setting.copy) action.appendChild(copyButton(setting.value));
        list.append(dt, dd, action);
      }
      const sends = document.createElement("p");
      sends.className = "sends";
      sends.textContent = "Sends: " + app.sends;
      const speed = document.createElement("p");
      speed.className = "speed" + (app.speed_ok ? "" : " wrong");
      speed.textContent = "Speed: " + app.speed;
      block.append(summary, where, list, sends, speed);
      if (app.note) {
        const note = document.createElement("p");
        note.className = "note";
        note.textContent = app.note;
        block.appendChild(note);
      }
      if (app.qr_svg) {
        const figure = document.createElement("figure");
        const img = document.createElement("img");
        img.className = "qr";
        img.alt = "QR code for " + app.name;
        img.src = app.qr_svg; // a data: URI the server drew; nothing is fetched
        const caption = document.createElement("figcaption");
        caption.textContent = QR_CAPTIONS[app.qr_kind] || "";
        figure.append(img, caption);
        block.appendChild(figure);
      } else if (app.qr_text) {
        const none = document.createElement("p");
        none.className = "note";
        none.textContent = "The address is too long for a QR code: copy it instead.";
        block.appendChild(none);
      }
      return block;
    });
    $("token-setup").replaceChildren(...blocks);
  }

  function hideNewToken() {
    $("new-token").hidden = true;
    $("new-token-value").textContent = "";
    $("token-setup").replaceChildren();
  }

  function wireTokens() {
    $("token-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const label = $("token-label").value.trim();
      try {
        const { data } = await api("POST", "/api/tokens", { label: label, speed_unit: $("token-speed-unit").value });
        $("new-token-label").textContent = data.label;
        $("new-token-value").textContent = data.token;
        $("copy-token").textContent = "Copy";
        renderSetup(data.setup);
        $("new-token").hidden = false;
        $("token-label").value = "";
        showMessage(null);
      } catch (err) {
        showMessage(err.message);
      }
      loadTokens();
    });
    $("copy-token").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText($("new-token-value").textContent);
        $("copy-token").textContent = "Copied";
      } catch (err) {
        $("copy-token").textContent = "Select and copy";
      }
    });
    $("hide-token").addEventListener("click", hideNewToken);
  }

  // ---- gone-quiet alerts -----------------------------------------------------------------------------
  const ALERT_STATES = { waiting: "waiting for data", live: "live", quiet: "quiet: alert sent" };

  function formatAfter(seconds) {
    return seconds >= 60 ? +(seconds / 60).toFixed(2) + " min" : +seconds.toFixed(2) + " s";
  }

  function describeDelivery(d) {
    if (!d) return "none yet";
    const when = formatAgo(Date.now() - d.at_ns / 1e6);
    const tries = d.attempts + (d.attempts === 1 ? " attempt" : " attempts");
    if (d.state === "ok") return d.kind + " delivered " + when + " (" + tries + ")";
    const why = d.error || (d.status ? "HTTP " + d.status : "error");
    if (d.state === "retrying") return d.kind + ": " + why + ", retrying (" + tries + " so far)";
    return d.kind + " failed " + when + ": " + why + " after " + tries;
  }

  function renderAlerts(alerts) {
    const rows = alerts.map((alert) => {
      const tr = document.createElement("tr");
      const cells = [
        ["Device", alert.device === null ? "any device" : alert.device],
        ["Quiet for", formatAfter(alert.after_seconds)],
        ["Webhook", alert.webhook],
        ["State", ALERT_STATES[alert.state] || alert.state],
        ["Last notice", describeDelivery(alert.delivery)],
      ];
      for (const [label, text] of cells) {
        const td = document.createElement("td");
        if (label !== "Device") td.dataset.label = label;
        td.textContent = text;
        if (label === "Last notice" && alert.delivery && alert.delivery.state !== "ok") td.className = "failed";
        tr.appendChild(td);
      }
      const actions = document.createElement("td");
      const remove = dangerButton("Remove", async () => {
        const q = alert.device === null ? "" : "?device=" + encodeURIComponent(alert.device);
        try {
          const { data } = await api("DELETE", "/api/alerts" + q);
          renderAlerts(data.alerts);
        } catch (err) {
          showMessage(err.message);
          loadAlerts();
        }
      });
      actions.appendChild(remove);
      tr.appendChild(actions);
      return tr;
    });
    $("alert-rows").replaceChildren(...rows);
    $("no-alerts").hidden = rows.length > 0;
    document.querySelector("table.alerts").hidden = rows.length === 0;
  }

  async function loadAlerts() {
    const { status, data } = await api("GET", "/api/alerts");
    if (status === 200) renderAlerts(data.alerts || []);
  }

  function wireAlerts() {
    $("alert-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = {
        after: $("alert-after").value.trim() + "m",
        webhook: $("alert-webhook").value.trim(),
        device: $("alert-device").value.trim() || null,
      };
      try {
        const { data } = await api("POST", "/api/alerts", body);
        renderAlerts(data.alerts || []);
        $("alert-webhook").value = "";
        $("alert-device").value = "";
        showMessage("Alert saved.", true);
      } catch (err) {
        showMessage(err.message);
      }
    });
  }

  // ---- the account: password and sessions ---------------------------------------------------------
  function renderSessions(sessions) {
    const rows = sessions.map((session) => {
      const tr = document.createElement("tr");
      const browser = (session.user_agent || "unknown browser") + (session.current ? " (this session)" : "");
      const cells = [
        ["Browser", browser],
        ["Signed in", formatDate(session.created_ns, "")],
        ["Last used", formatDate(session.last_used_ns, "not known")],
        ["Expires", formatDate(session.expires_ns, "")],
      ];
      for (const [label, text] of cells) {
        const td = document.createElement("td");
        if (label !== "Browser") td.dataset.label = label;
        td.textContent = text;
        tr.appendChild(td);
      }
      if (session.current) tr.className = "current";
      return tr;
    });
    $("session-rows").replaceChildren(...rows);
    $("sign-out-others").disabled = sessions.every((session) => session.current);
  }

  async function loadSessions() {
    const { status, data } = await api("GET", "/api/sessions");
    if (status === 200) renderSessions(data.sessions || []);
  }

  function wireAccount() {
    $("password-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const current = $("password-current").value;
      const wanted = $("password-new").value;
      if (wanted !== $("password-again").value) {
        showMessage("The two new passwords differ: type the same one twice.");
        return;
      }
      try {
        const { status, data } = await api("POST", "/api/password", { current: current, new: wanted });
        if (status === 401) {
          location.reload(); // this session has ended
          return;
        }
        e.target.reset();
        const others = data.ended === 1 ? "1 other session" : data.ended + " other sessions";
        showMessage("Password changed; " + others + " signed out.", true);
      } catch (err) {
        showMessage(err.message);
      }
      loadSessions();
    });
    $("sign-out-others").addEventListener("click", async () => {
      try {
        const { data } = await api("DELETE", "/api/sessions");
        renderSessions(data.sessions || []);
        showMessage("Signed out everywhere else.", true);
      } catch (err) {
        showMessage(err.message);
      }
    });
    $("sign-out-all").addEventListener("click", async () => {
      try {
        await api("DELETE", "/api/sessions?all=true");
        location.replace("/");
      } catch (err) {
        showMessage(err.message);
      }
    });
  }

  // ---- courses: add (GeoJSON pasted or picked), attach to "now" or a link, detach, delete ----
  // GPX, TCX and FIT course files go to the server as they are: its formats package reads them.
  function targetName(target, links) {
    if (target === "now") return "everyone watching";
    const id = Number(target.slice(5));
    const link = links.find((l) => l.id === id);
    return "link " + ((link && (link.label || "(no label)")) || "#" + id);
  }

  async function loadCourses() {
    const [{ data }, linksAnswer] = await Promise.all([api("GET", "/api/courses"), api("GET", "/api/links")]);
    // A course shows on the live view: an activity's link opens none.
    const links = ((linksAnswer.data && linksAnswer.data.links) || []).filter((l) => !l.revoked && !l.expired && l.activity_id == null);
    const attachments = (data && data.attachments) || [];
    const rows = ((data && data.courses) || []).map((course) => {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      name.textContent = course.name;
      const distance = document.createElement("td");
      distance.dataset.label = "Distance";
      distance.textContent = (course.distance_m / 1000).toFixed(2) + " km";
      const shown = document.createElement("td");
      shown.dataset.label = "Shown to";
      for (const a of attachments.filter((a) => a.course === course.id)) {
        const tag = document.createElement("span");
        tag.className = "course-target";
        tag.textContent = targetName(a.target, links) + " ";
        const detach = document.createElement("button");
        detach.type = "button";
        detach.textContent = "Hide";
        detach.title = "Stop showing it there";
        detach.addEventListener("click", () => courseChange("DELETE", "/api/courses/attach/" + encodeURIComponent(a.target), undefined, "Course hidden."));
        tag.appendChild(detach);
        shown.appendChild(tag);
      }
      const actions = document.createElement("td");
      const select = document.createElement("select");
      select.setAttribute("aria-label", "Show " + course.name + " to");
      for (const [value, text] of [["now", "everyone watching"], ...links.map((l) => ["link:" + l.id, "link " + (l.label || "(no label)")])]) {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = text;
        select.appendChild(option);
      }
      const show = document.createElement("button");
      show.type = "button";
      show.textContent = "Show";
      show.addEventListener("click", () =>
        courseChange("PUT", "/api/courses/" + course.id + "/attach", { target: select.value }, "Course shown to " + select.selectedOptions[0].textContent + "."),
      );
      const remove = dangerButton("Delete", () => courseChange("DELETE", "/api/courses/" + course.id, undefined, "Course deleted."));
      actions.append(select, show, remove);
      tr.append(name, distance, shown, actions);
      return tr;
    });
    $("course-rows").replaceChildren(...rows);
    $("no-courses").hidden = rows.length > 0;
    $("course-rows").closest("table").hidden = rows.length === 0;
  }

  async function courseChange(method, path, body, done) {
    try {
      await api(method, path, body);
      showMessage(done, true);
    } catch (err) {
      showMessage(err.message);
    }
    loadCourses().catch((err) => showMessage(err.message));
  }

  function wireCourses() {
    $("course-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const file = $("course-file").files[0];
      const name = $("course-name").value.trim();
      const text = file ? null : $("course-text").value;
      // JSON or GeoJSON is sent as JSON; anything else (GPX, TCX, FIT) as the file itself, which the
      // server reads by its content and names by ?name=, else by the name inside it.
      const head = file ? await file.slice(0, 64).text() : text;
      try {
        if (/^\s*[{[]/.test(head)) {
          let course;
          try {
            course = JSON.parse(file ? await file.text() : text);
          } catch (err) {
            throw new Error("The course is not valid JSON" + (file ? " (" + file.name + ")" : "") + ": " + err.message);
          }
          if (name && course && typeof course === "object") course.name = name;
          else if (course && typeof course === "object" && course.name === undefined && !(course.properties && course.properties.name)) {
            course.name = file ? file.name.replace(/\.[^.]+$/, "") : "Course";
          }
          await api("POST", "/api/courses", course);
        } else {
          const filename = (file ? file.name : "pasted").replace(/[^\x20-\x7e]/g, "_"); // a header is ASCII
          await api("POST", "/api/courses" + (name ? "?name=" + encodeURIComponent(name) : ""), file || new Blob([text]), {
            "X-Filename": filename,
          });
        }
        $("course-form").reset();
        showMessage("Course added.", true);
      } catch (err) {
        showMessage(err.message);
      }
      loadCourses().catch((err) => showMessage(err.message));
    });
  }

  function wireManagement() {
    const own = $("own-watch-link");
    own.href = watchUrl(me.user);
    own.textContent = location.origin + watchUrl(me.user);

    $("link-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const label = $("link-label").value.trim();
      const expires = $("link-expires").value || null;
      try {
        const { data } = await api("POST", "/api/links", { label: label, expires: expires });
        const url = (data && data.url) || location.origin + watchUrl(me.user) + "?token=" + encodeURIComponent(data.token);
        const a = $("new-link-url");
        a.href = url;
        a.textContent = url;
        $("new-link").hidden = false;
        $("link-label").value = "";
        showMessage(null);
      } catch (err) {
        showMessage(err.message);
      }
      loadLinks();
      loadCourses().catch(() => {}); // the new link is one more place to show a course
    });
    $("copy-link").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText($("new-link-url").href);
        $("copy-link").textContent = "Copied";
      } catch (err) {
        $("copy-link").textContent = "Select and copy";
      }
    });

    $("share-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const viewer = $("share-viewer").value.trim();
      try {
        await api("POST", "/api/shares", { viewer: viewer });
        $("share-viewer").value = "";
        showMessage(null);
      } catch (err) {
        showMessage(err.message);
      }
      loadShares();
    });
  }

  async function showSignedIn() {
    $("who").hidden = false;
    $("who").textContent = "Signed in as " + me.user;
    const logout = $("logout-form");
    logout.hidden = false;
    logout.addEventListener("submit", () => {
      logout.elements.csrf.value = csrfToken();
    });
    $("trackers").hidden = false;
    renderTrackers(me.trackers);
    $("manage").hidden = false;
    $("devices").hidden = false;
    wireManagement();
    wireTokens();
    $("alerts").hidden = false;
    wireAlerts();
    $("courses").hidden = false;
    wireCourses();
    $("account").hidden = false;
    wireAccount();
    await Promise.all([
      startHistory({ api: api, csrfToken: csrfToken, showMessage: showMessage, user: me.user }),
      loadProfile(),
      loadLinks().catch((err) => showMessage(err.message)),
      loadShares().catch((err) => showMessage(err.message)),
      loadTokens().catch((err) => showMessage(err.message)),
      loadAlerts().catch((err) => showMessage(err.message)),
      loadCourses().catch((err) => showMessage(err.message)),
      loadSessions().catch((err) => showMessage(err.message)),
    ]);
    // Keep the live / last-seen badges and the alerts' states current.
    setInterval(async () => {
      try {
        const data = await refreshMe();
        if (data) renderTrackers(data.trackers);
        await loadAlerts();
      } catch (err) {
        /* the next round tries again */
      }
    }, 15000);
  }

  async function start() {
    let data;
    try {
      data = await refreshMe();
    } catch (err) {
      showMessage("The server did not answer: " + err.message);
      return;
    }
    if (data) await showSignedIn();
    else showSignIn();
  }
  start();
})();
