// smsrules console. Every page is rendered here from the JSON API (/v1/...), with
// DOM nodes and textContent only: nothing from the daemon is ever parsed as HTML.
// The session is an HttpOnly cookie; the CSRF token the login gives goes on every
// state-changing request (X-CSRF-Token).
"use strict";

(function () {
  const STATUSES = ["accepted", "queued", "sending", "sent", "delivered", "undelivered", "expired", "rejected", "failed"];
  const POLL_MS = 5000;
  let csrf = null;
  let pollTimer = null;
  let generation = 0; // bumped by every navigation: answers to reads of an earlier page are dropped

  // ---- DOM helpers ----

  // el("td", {class: "num"}, "text", node, ...): attributes by setAttribute, children as text nodes or nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) append(node, c);
    return node;
  }

  function append(node, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) c.forEach((x) => append(node, x));
    else node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function say(text) {
    const s = document.getElementById("status");
    s.textContent = text;
    if (text) setTimeout(() => { if (s.textContent === text) s.textContent = ""; }, 6000);
  }

  function page(title, ...children) {
    const root = document.getElementById("page");
    root.replaceChildren(el("h1", { id: "page-title" }, title), ...children);
    document.title = title + " — smsrules console";
  }

  function table(caption, headers, rows) {
    const head = el("tr", {}, headers.map((h) => el("th", { scope: "col", class: h.num ? "num" : null }, h.label || h)));
    return el("div", { class: "table-wrap" },
      el("table", {}, el("caption", {}, caption), el("thead", {}, head), el("tbody", {}, rows)));
  }

  function status(s) { return el("span", { class: "st st-" + s }, s); }
  function when(t) { return t ? new Date(t).toLocaleString() : "—"; }
  function num(v, digits) { return v === null || v === undefined ? "—" : Number(v).toFixed(digits || 0); }
  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + " %"; }
  function msgLink(id) { return el("a", { href: "#/message/" + encodeURIComponent(id), class: "mono" }, id); }

  // ---- the API ----

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  // A read answered after the user went to another page: nothing to show.
  class Stale extends Error {}

  async function api(method, path, body) {
    const gen = generation;
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
    const res = await fetch(path, { method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body) });
    let doc = null;
    try { doc = await res.json(); } catch (e) { doc = null; }
    if (method === "GET" && gen !== generation) throw new Stale();
    if (res.status === 401 && !path.startsWith("/v1/console/login")) {
      showLogin("Your session ended: log in again.");
      throw new ApiError(401, "unauthorized", "not logged in");
    }
    if (!res.ok) {
      const err = doc && doc.error ? doc.error : { code: "http_" + res.status, message: res.statusText };
      throw new ApiError(res.status, err.code, err.message);
    }
    return doc;
  }

  function showError(e) {
    if (e instanceof Stale || (e instanceof ApiError && e.status === 401)) return;
    document.getElementById("page").appendChild(el("p", { class: "alert", role: "alert" }, e.message || String(e)));
  }

  // ---- login ----

  function showLogin(note) {
    stopPolling();
    csrf = null;
    document.getElementById("nav").hidden = true;
    document.getElementById("logout").hidden = true;
    document.getElementById("page").replaceChildren();
    document.getElementById("login").hidden = false;
    if (note) say(note);
    document.getElementById("login-key").focus();
  }

  function loggedIn(doc) {
    csrf = doc.csrf_token;
    document.getElementById("login").hidden = true;
    document.getElementById("nav").hidden = false;
    document.getElementById("logout").hidden = false;
    route();
  }

  async function login(ev) {
    ev.preventDefault();
    const input = document.getElementById("login-key");
    const key = input.value;
    input.value = ""; // the key is not kept in the page
    try {
      loggedIn(await api("POST", "/v1/console/login", { key }));
    } catch (e) {
      say(e.message);
      input.focus();
    }
  }

  async function logout() {
    try { await api("POST", "/v1/console/logout"); } catch (e) { /* the cookie is cleared either way */ }
    showLogin("Logged out.");
  }

  // ---- pages ----

  function stopPolling() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function minutesChart(minutes) {
    const w = 600, h = 120, bw = w / minutes.length;
    const kinds = ["accepted", "sent", "delivered", "failed"];
    const max = Math.max(1, ...minutes.map((m) => Math.max(...kinds.map((k) => m[k]))));
    const chart = svg("svg", { class: "chart", viewBox: "0 0 " + w + " " + h, preserveAspectRatio: "none", role: "img",
      "aria-label": "Messages per minute, last 30 minutes: accepted, sent, delivered and failed" });
    minutes.forEach((m, i) => {
      kinds.forEach((k, j) => {
        const bh = (m[k] / max) * (h - 10);
        chart.appendChild(svg("rect", { class: k, x: i * bw + j * (bw / kinds.length), y: h - bh,
          width: bw / kinds.length - 1, height: bh }));
      });
    });
    return chart;
  }

  function overviewCards(doc) {
    const q = doc.queue, r = doc.rules;
    const card = (label, value, extra) => el("div", { class: "card" }, el("div", { class: "muted" }, label),
      el("div", { class: "value" }, value), extra ? el("div", { class: "muted" }, extra) : null);
    return el("div", { class: "cards" },
      card("Queue depth", q.depth),
      card("Oldest queued", q.oldest_age_s === null ? "none" : num(q.oldest_age_s, 0) + " s",
        q.oldest_id ? msgLink(q.oldest_id) : null),
      card("Rules", r.path || "none", r.loaded_at ? "loaded " + when(r.loaded_at) + " in " + num(r.load_ms, 1) + " ms" : null),
      card("Store", doc.store.full ? "FULL" : "ok", num(doc.store.bytes_used / 1048576, 1) + " MiB used"));
  }

  function renderOverview(doc) {
    const series = ["accepted", "sent", "delivered", "undelivered", "failed", "retried", "expired", "rejected",
      "inbound", "webhooks"];
    const recent = doc.minutes.slice(-10).reverse();
    const minuteRows = recent.map((m) => el("tr", {}, el("td", {}, new Date(m.at).toLocaleTimeString()),
      series.map((k) => el("td", { class: "num" }, m[k]))));
    const provRows = doc.providers.map((p) => el("tr", {}, el("td", {}, p.name), el("td", {}, p.adapter),
      el("td", {}, status(p.circuit)), el("td", { class: "num" }, p.in_flight), el("td", { class: "num" }, p.attempts),
      el("td", { class: "num" }, pct(p.delivered_ratio)), el("td", { class: "num" }, num(p.report_latency_p50_ms)),
      el("td", { class: "num" }, num(p.report_latency_p95_ms))));
    page("Overview", overviewCards(doc),
      el("h2", {}, "Messages per minute"), minutesChart(doc.minutes),
      el("p", { class: "legend" }, el("span", { class: "key accepted" }, "accepted"), " ",
        el("span", { class: "key sent" }, "sent"), " ", el("span", { class: "key delivered" }, "delivered"), " ",
        el("span", { class: "key failed" }, "failed"),
        " — the last 30 minutes, oldest on the left."),
      el("p", { class: "muted" }, "Counted since " + when(doc.sampling_since) + ". Updated every 5 s."),
      table("Last 10 minutes, newest first", ["minute"].concat(series.map((s) => ({ label: s, num: true }))), minuteRows),
      el("h2", {}, "Providers (last 15 minutes)"),
      table("Circuit, requests in flight and route quality", ["provider", "adapter", "circuit",
        { label: "in flight", num: true }, { label: "attempts", num: true }, { label: "delivered", num: true },
        { label: "report p50 ms", num: true }, { label: "report p95 ms", num: true }], provRows));
  }

  async function overview() {
    stopPolling();
    const tick = async () => {
      try {
        renderOverview(await api("GET", "/v1/overview"));
        pollTimer = setTimeout(tick, POLL_MS);
      } catch (e) { showError(e); }
    };
    await tick();
  }

  // -- messages --

  function searchForm(params) {
    const field = (name, label, type) => el("div", {}, el("label", { for: "q-" + name }, label),
      el("input", { id: "q-" + name, name, type: type || "text", value: params.get(name) || "" }));
    const sel = el("select", { id: "q-status", name: "status" }, el("option", { value: "" }, "any"),
      STATUSES.map((s) => el("option", { value: s, selected: params.get("status") === s }, s)));
    const form = el("form", { class: "search", role: "search", "aria-label": "Search messages" },
      field("to", "Recipient"), field("id", "Message id"), el("div", {}, el("label", { for: "q-status" }, "Status"), sel),
      field("provider", "Provider"), field("tag", "Tag (key or key=value)"),
      field("since", "Since", "datetime-local"), field("until", "Until", "datetime-local"),
      el("div", {}, el("button", { type: "submit" }, "Search")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
      location.hash = "#/messages?" + p.toString();
    });
    return form;
  }

  function messageRow(m) {
    return el("tr", {}, el("td", {}, when(m.created_at)), el("td", {}, msgLink(m.id)), el("td", { class: "mono" }, m.to),
      el("td", {}, status(m.status)), el("td", {}, m.provider || "—"), el("td", { class: "text" }, m.text),
      el("td", { class: "num" }, m.segments));
  }

  function apiQuery(params) {
    const q = new URLSearchParams();
    for (const [k, v] of params) {
      if (!v) continue;
      q.set(k, (k === "since" || k === "until") ? new Date(v).toISOString() : v);
    }
    return q;
  }

  async function messages(params) {
    const tbody = el("tbody", {});
    const note = el("p", { class: "muted", "aria-live": "polite" }, "Searching…");
    const more = el("button", { type: "button", class: "secondary", hidden: true }, "More");
    page("Messages", searchForm(params), el("div", { class: "table-wrap" }, el("table", {},
      el("caption", {}, "Newest first"),
      el("thead", {}, el("tr", {}, ["created", "id", "to", "status", "provider", "text", "parts"].map((h) =>
        el("th", { scope: "col" }, h)))), tbody)), note, more);
    const q = apiQuery(params);
    let cursor = null, found = 0, scanned = 0;
    const load = async () => {
      // A page scans a bounded part of the store: go on by itself (a few times) while nothing matched yet.
      for (let round = 0; round < 10; round++) {
        if (cursor) q.set("cursor", cursor);
        const doc = await api("GET", "/v1/search/messages?" + q.toString());
        doc.messages.forEach((m) => tbody.appendChild(messageRow(m)));
        found += doc.messages.length;
        scanned += doc.scanned;
        cursor = doc.next;
        if (doc.messages.length || !cursor) break;
      }
      note.textContent = found + " found, " + scanned + " read" + (cursor ? "; there may be more." : ".");
      more.hidden = !cursor;
    };
    more.addEventListener("click", () => load().catch(showError));
    await load();
  }

  function attemptsTable(m) {
    const rows = (m.attempts || []).map((a) => el("tr", {}, el("td", {}, a.provider), el("td", {}, when(a.started_at)),
      el("td", { class: "num" }, num(a.duration_ms)), el("td", { class: "num" }, a.http_status || "—"),
      el("td", {}, a.outcome), el("td", { class: "text" }, a.error || ""), el("td", { class: "mono" }, a.provider_id || ""),
      el("td", {}, a.report ? status(a.report) : "—")));
    return table("Attempts", ["provider", "started", { label: "ms", num: true }, { label: "HTTP", num: true },
      "outcome", "error", "provider id", "report"], rows);
  }

  async function retry(id) {
    if (!window.confirm("Send message " + id + " again, from the first provider of its route?")) return false;
    await api("POST", "/v1/messages/" + encodeURIComponent(id) + "/retry");
    say("Message " + id + " queued again.");
    return true;
  }

  async function message(id) {
    const m = await api("GET", "/v1/messages/" + encodeURIComponent(id));
    const facts = [["id", el("span", { class: "mono" }, m.id)], ["to", m.to], ["from", m.from || "(provider default)"],
      ["status", status(m.status)], ["provider", m.provider || "—"], ["segments", m.segments + " (" + m.encoding + ")"],
      ["cost", m.cost === null || m.cost === undefined ? "—" : m.cost], ["error", m.error || "—"],
      ["tags", Object.entries(m.tags || {}).map(([k, v]) => k + (v === null ? "" : "=" + v)).join(", ") || "—"],
      ["created", when(m.created_at)], ["replies to", m.reply_to ? el("a", { href: "#/inbound?id=" + encodeURIComponent(m.reply_to) }, m.reply_to) : "—"]];
    const dl = el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const timeline = el("ol", { class: "timeline", "aria-label": "Status history" },
      (m.history || []).map((h) => el("li", {}, status(h.status), " ", when(h.at))));
    const actions = el("div", { class: "row" });
    if (m.status === "failed") {
      actions.appendChild(el("button", { type: "button", class: "danger", onclick: () =>
        retry(m.id).then((done) => done && message(id)).catch(showError) }, "Retry this message"));
    }
    page("Message", dl, actions, el("h2", {}, "Text"), el("pre", { id: "message-text" }, m.text),
      el("h2", {}, "History"), timeline, el("h2", {}, "Attempts and reports"), attemptsTable(m));
  }

  // -- failed --

  // Retries ids one by one (the retry API takes one message), showing progress on the button.
  async function retryIds(ids, button) {
    if (!ids.length) { say("Nothing selected."); return; }
    if (!window.confirm("Send " + ids.length + " failed message" + (ids.length === 1 ? "" : "s") + " again?")) return;
    button.disabled = true;
    let ok = 0, bad = 0;
    for (const id of ids) {
      try { await api("POST", "/v1/messages/" + encodeURIComponent(id) + "/retry"); ok++; } catch (e) { bad++; }
      button.textContent = "Retried " + (ok + bad) + " of " + ids.length;
    }
    say(ok + " queued again" + (bad ? ", " + bad + " refused" : "") + ".");
  }

  // A group's messages with a checkbox each, and a button that retries the checked ones.
  function groupDetails(g, n) {
    const boxes = g.ids.map((id, i) => el("li", {}, el("input", { type: "checkbox", id: "g" + n + "-" + i, value: id }),
      " ", el("label", { for: "g" + n + "-" + i, class: "mono inline" }, id), " ", msgLink(id)));
    const button = el("button", { type: "button", class: "secondary" }, "Retry selected");
    button.addEventListener("click", () => retryIds(boxes.map((li) => li.querySelector("input"))
      .filter((c) => c.checked).map((c) => c.value), button).catch(showError));
    return el("details", {}, el("summary", {}, "Messages"), el("ul", { class: "plain" }, boxes), button);
  }

  async function failed() {
    const doc = await api("GET", "/v1/failed");
    const rows = doc.groups.map((g, n) => {
      const button = el("button", { type: "button", class: "danger" }, "Retry " + g.count);
      button.addEventListener("click", () => retryIds(g.ids, button).catch(showError));
      return el("tr", {}, el("td", { class: "text" }, g.error || "(no error text)"), el("td", {}, g.provider || "—"),
        el("td", { class: "num" }, g.count), el("td", {}, when(g.newest_created_at)),
        el("td", {}, groupDetails(g, n)), el("td", {}, button));
    });
    page("Failed messages", table("Grouped by error and provider, biggest first", ["error", "provider",
      { label: "count", num: true }, "newest", "messages", "action"], rows),
      el("p", { class: "muted" }, doc.scanned + " failed messages read" + (doc.next ? " (the newest; more exist)" : "") + "."));
  }

  // -- inbound --

  function inboundRow(m) {
    return el("tr", {}, el("td", {}, when(m.received_at)), el("td", { class: "mono" }, m.from),
      el("td", { class: "mono" }, m.to), el("td", {}, m.provider), el("td", { class: "text" }, m.text),
      el("td", {}, status(m.state)), el("td", { class: "text" }, m.error || ""),
      el("td", {}, (m.replies || []).map((id) => el("div", {}, msgLink(id)))));
  }

  function inboundForm(params) {
    const form = el("form", { class: "search", role: "search", "aria-label": "Filter inbound SMS" },
      el("div", {}, el("label", { for: "in-from" }, "Sender"),
        el("input", { id: "in-from", name: "from", type: "text", value: params.get("from") || "" })),
      el("div", {}, el("button", { type: "submit" }, "Filter")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = form.querySelector("input").value;
      location.hash = "#/inbound" + (v ? "?from=" + encodeURIComponent(v) : "");
    });
    return form;
  }

  async function inbound(params) {
    const tbody = el("tbody", {});
    const more = el("button", { type: "button", class: "secondary", hidden: true }, "More");
    page("Inbound SMS", inboundForm(params), el("div", { class: "table-wrap" }, el("table", {},
      el("caption", {}, "Received, newest first"), el("thead", {}, el("tr", {}, ["received", "from", "to", "provider",
        "text", "handler", "error", "replies"].map((h) => el("th", { scope: "col" }, h)))), tbody)), more);
    if (params.get("id")) {
      tbody.appendChild(inboundRow(await api("GET", "/v1/inbound/" + encodeURIComponent(params.get("id")))));
      return;
    }
    const q = new URLSearchParams();
    if (params.get("from")) q.set("from", params.get("from"));
    const load = async () => {
      const doc = await api("GET", "/v1/inbound?" + q.toString());
      doc.inbound.forEach((m) => tbody.appendChild(inboundRow(m)));
      if (doc.next) q.set("cursor", doc.next);
      more.hidden = !doc.next;
    };
    more.addEventListener("click", () => load().catch(showError));
    await load();
  }

  // -- providers --

  function routeRows(stats) {
    const rows = [];
    for (const [name, p] of Object.entries(stats.providers || {})) {
      for (const [cc, w] of Object.entries(p.countries || {})) {
        const f = w["15m"] || {};
        rows.push(el("tr", {}, el("td", {}, name), el("td", {}, cc === "other" ? "other" : "+" + cc),
          el("td", { class: "num" }, f.attempts), el("td", { class: "num" }, f.accepted),
          el("td", { class: "num" }, pct(f.delivered_ratio)),
          el("td", { class: "num" }, num(f.report_latency_ms && f.report_latency_ms.p50)),
          el("td", { class: "num" }, num(f.report_latency_ms && f.report_latency_ms.p95))));
      }
    }
    return rows;
  }

  async function providers() {
    const [doc, stats] = await Promise.all([api("GET", "/v1/providers"), api("GET", "/v1/stats/routes")]);
    const rows = doc.providers.map((p) => el("tr", {}, el("td", {}, p.name), el("td", {}, p.adapter),
      el("td", {}, status(p.circuit)), el("td", { class: "num" }, p.rate_per_s || "no limit"),
      el("td", { class: "num" }, p.burst), el("td", { class: "num" }, num(p.rate_used, 1)),
      el("td", { class: "num" }, p.in_flight + " / " + p.concurrency), el("td", { class: "num" }, p.pending),
      el("td", { class: "num" }, p.batch_size), el("td", { class: "num" }, p.max_attempts),
      el("td", {}, p.paused_until ? when(p.paused_until) : "—")));
    page("Providers", table("Limits and their use now", ["provider", "adapter", "circuit", { label: "rate /s", num: true },
      { label: "burst", num: true }, { label: "rate used", num: true }, { label: "in flight", num: true },
      { label: "waiting", num: true }, { label: "batch", num: true }, { label: "attempts", num: true }, "paused until"], rows),
      el("h2", {}, "Route quality by country (last 15 minutes)"),
      table("Provider × country", ["provider", "country", { label: "attempts", num: true }, { label: "accepted", num: true },
        { label: "delivered", num: true }, { label: "report p50 ms", num: true }, { label: "report p95 ms", num: true }],
      routeRows(stats)));
  }

  // -- rules --

  function eventForm(events) {
    const out = el("pre", { id: "event-result", hidden: true });
    const sel = el("select", { id: "ev-name", name: "name" }, events.map((e) => el("option", { value: e }, e)));
    const body = el("textarea", { id: "ev-body", name: "body", spellcheck: "false" }, "{}");
    const form = el("form", { "aria-label": "Fire a test event" },
      el("label", { for: "ev-name" }, "Event"), sel, el("label", { for: "ev-body" }, "JSON body"), body,
      el("p", {}, el("button", { type: "submit" }, "Fire event")), out);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let payload;
      try { payload = JSON.parse(body.value || "{}"); } catch (e) { say("The body is not valid JSON: " + e.message); return; }
      if (!window.confirm("Fire " + sel.value + "? Its rule runs for real (it may send messages).")) return;
      out.hidden = false;
      try {
        out.textContent = JSON.stringify(await api("POST", "/v1/events/" + encodeURIComponent(sel.value), payload), null, 2);
      } catch (e) { out.textContent = e.code + ": " + e.message; }
    });
    return events.length ? form : el("p", { class: "muted" }, "The rules declare no sms.on handler.");
  }

  async function reload(result) {
    result.hidden = false;
    result.className = "";
    result.textContent = "Reloading…";
    try {
      const doc = await api("POST", "/v1/admin/reload");
      result.className = "ok";
      result.textContent = "Reloaded " + doc.rules + ": " + doc.providers + " providers, " + doc.templates + " templates.";
      return true;
    } catch (e) {
      result.className = "alert";
      result.setAttribute("role", "alert");
      result.textContent = "Reload refused; the running rules stay. " + e.message;
      return false;
    }
  }

  async function rules() {
    const doc = await api("GET", "/v1/rules");
    const result = el("div", { id: "reload-result", hidden: true });
    const button = el("button", { type: "button" }, "Reload rules");
    button.addEventListener("click", () => reload(result).then((ok) => ok && rules()).catch(showError));
    const facts = [["file", el("span", { class: "mono" }, doc.path)], ["loaded", when(doc.loaded_at) + " in " + num(doc.load_ms, 1) + " ms"],
      ["providers", doc.providers.map((p) => p.name + " (" + p.adapter + ")").join(", ") || "none"],
      ["templates", doc.templates.map((t) => t.name + "(" + t.vars.join(" ") + ")").join(", ") || "none"],
      ["events", doc.events.join(", ") || "none"], ["sms.on_inbound", doc.on_inbound ? "yes" : "no"],
      ["sms.route", doc.route ? "yes" : "no"]];
    page("Rules", el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      el("div", { class: "row" }, button), result,
      doc.changed_since_load ? el("p", { class: "alert" }, "The file changed on disk since it was loaded: reload to use it.") : null,
      el("h2", {}, "Source (read-only; secrets redacted)"),
      doc.source === null ? el("p", { class: "alert" }, doc.source_error) : el("pre", { class: "source" }, el("code", {}, doc.source)),
      el("h2", {}, "Fire a test event"), eventForm(doc.events));
  }

  // ---- routing ----

  const routes = { overview, messages, failed, inbound, providers, rules };

  function route() {
    if (!csrf) return;
    stopPolling();
    generation++;
    const hash = location.hash.replace(/^#\/?/, "");
    const [path, query] = hash.split("?");
    const parts = path.split("/");
    const params = new URLSearchParams(query || "");
    const name = parts[0] || "overview";
    for (const a of document.querySelectorAll("#nav a")) {
      if (a.getAttribute("href") === "#/" + (name === "message" ? "messages" : name)) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    const run = name === "message" ? () => message(decodeURIComponent(parts[1] || "")) : routes[name] ? () => routes[name](params) : null;
    if (!run) { page("Not found", el("p", {}, "No such page.")); return; }
    run().then(() => document.getElementById("main").focus({ preventScroll: true })).catch(showError);
  }

  async function start() {
    document.getElementById("login-form").addEventListener("submit", login);
    document.getElementById("logout").addEventListener("click", logout);
    window.addEventListener("hashchange", route);
    try {
      const doc = await api("GET", "/v1/console/session");
      if (doc.logged_in) loggedIn(doc);
      else showLogin("");
    } catch (e) {
      say(e.message);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
