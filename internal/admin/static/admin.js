// The pushpull admin page: reads api/state with the backend key every
// interval and draws it; no dependencies, charts are inline SVG.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const store = window.sessionStorage;
  let key = store.getItem("pushpull-admin-key") || "";
  let timer = 0;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const k of kids) e.append(k);
    return e;
  }

  // An exact count, as /metrics has it; fractions get 3 decimals.
  function num(v) {
    if (v === undefined || v === null) return "–";
    return Number.isInteger(v) ? String(v) : v.toFixed(3);
  }
  function bytes(v) {
    if (v === undefined) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    for (; v >= 1024 && i < u.length - 1; i++) v /= 1024;
    return (i ? v.toFixed(1) : String(v)) + " " + u[i];
  }
  function secs(v) {
    if (!v) return "0";
    return v < 1e-3 ? (v * 1e6).toFixed(0) + " µs" : v < 1 ? (v * 1e3).toFixed(1) + " ms" : v.toFixed(2) + " s";
  }
  function metricCell(metrics, series, cls) {
    return el("td", { class: cls || "n", "data-metric": series }, num(metrics[series]));
  }
  function rows(tbody, list) {
    tbody.replaceChildren(...list);
  }

  function login(message) {
    clearTimeout(timer);
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-key").focus();
  }

  async function api(path, init) {
    const r = await fetch(path, { ...init, headers: { ...(init && init.headers), Authorization: "Bearer " + key } });
    if (r.status === 401) {
      store.removeItem("pushpull-admin-key");
      key = "";
      throw Object.assign(new Error("The backend key is not right."), { auth: true });
    }
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
    return r.json();
  }

  async function refresh() {
    let st;
    try {
      st = await api("api/state");
    } catch (e) {
      if (e.auth) return login(e.message);
      $("updated").textContent = "not updated: " + e.message;
      timer = setTimeout(refresh, 5000);
      return;
    }
    $("login").hidden = true;
    $("main").hidden = false;
    render(st);
    timer = setTimeout(refresh, st.intervalMs || 2000);
  }

  function render(st) {
    const m = st.metrics;
    $("process").textContent = "process " + st.process;
    $("updated").textContent = "updated " + new Date(st.time).toLocaleTimeString();
    $("ready").textContent = st.ready ? "ready" : "not ready";
    $("ready").className = "v " + (st.ready ? "ok" : "bad");
    $("ready-error").textContent = st.readyError || "";
    for (const e of document.querySelectorAll(".card [data-metric]")) e.textContent = num(m[e.dataset.metric]);

    const protos = ["1-2", "3", "4", "5"];
    rows($("conns").tBodies[0], protos.map((p) => {
      const s = (t) => `pushpull_connections{protocol="${p}",transport="${t}"}`;
      const c = (t) => m[`pushpull_connects_total{protocol="${p}",transport="${t}"}`] || 0;
      return el("tr", {}, el("td", {}, p), metricCell(m, s("websocket")), metricCell(m, s("longpolling")),
        el("td", { class: "n" }, num(c("websocket") + c("longpolling"))));
    }));

    const codes = Object.keys(m).filter((s) => s.startsWith("pushpull_disconnects_total{") && m[s] > 0);
    rows($("disconnects").tBodies[0], codes.length ? codes.map((s) =>
      el("tr", {}, el("td", {}, s.match(/code="([^"]*)"/)[1]), metricCell(m, s))) :
      [el("tr", {}, el("td", { class: "muted", colSpan: 2 }, "none"))]);

    rows($("processes").tBodies[0], (st.processes || []).map((p) =>
      el("tr", {}, el("td", { class: "id" }, p.processUniqueId + (p.processUniqueId === st.process ? " (this)" : "")),
        el("td", { class: "n" }, String(p.pid)), el("td", { class: "n" }, String(p.websockets)),
        el("td", { class: "n" }, String(p.pollings)), el("td", { class: "n" }, String(p.channels)),
        el("td", { class: "n" }, p.date ? Math.max(0, Math.round((st.time - p.date) / 1000)) + " s ago" : "–"))));
    $("processes-error").textContent = st.processesError || "";

    rows($("channels").tBodies[0], (st.topChannels || []).length ? st.topChannels.map((c) =>
      el("tr", {}, el("td", {}, el("code", {}, c.channel)), el("td", { class: "n" }, String(c.subscribers)))) :
      [el("tr", {}, el("td", { class: "muted", colSpan: 2 }, "no subscribers"))]);

    const storage = [];
    const kv = (k, v, series) => storage.push(el("tr", {}, el("th", {}, k), series ? metricCell(m, series) : el("td", { class: "n" }, v)));
    if (st.redis) {
      const r = st.redis;
      kv("engine", "Redis " + (r.version || "") + (r.cluster ? " (cluster)" : ""));
      kv("address", (r.addrs || []).join(", "));
      kv("key layout", r.layout);
      kv("connected", r.connected ? "yes" : "no" + (r.error ? ": " + r.error : ""));
      kv("pub/sub subscribed", r.subscribed ? "yes" : "no");
      kv("keys", "", "pushpull_redis_keys");
      kv("memory", bytes(m.pushpull_redis_memory_bytes));
      kv("clients", "", "pushpull_redis_clients");
      kv("pub/sub reconnects", "", "pushpull_redis_pubsub_reconnects_total");
      kv("command errors", "", "pushpull_redis_command_errors_total");
    } else {
      kv("engine", "memory");
      kv("history messages", "", "pushpull_store_messages");
      kv("history bytes", bytes(m.pushpull_store_bytes));
    }
    kv("resident memory", bytes(m.process_resident_memory_bytes));
    kv("goroutines", "", "go_goroutines");
    kv("open descriptors", "", "process_open_fds");
    rows($("storage").tBodies[0], storage);

    const drops = [
      ["slow consumers dropped", "pushpull_slow_consumers_total"],
      ["client messages over the rate", "pushpull_rate_limited_messages_total"],
      ["connections over maxConnPerIP", "pushpull_refused_connections_total"],
      ["resumes (WebSocket)", 'pushpull_resume_requests_total{transport="websocket"}'],
      ["resumes (long polling)", 'pushpull_resume_requests_total{transport="longpolling"}'],
      ["bytes written (WebSocket)", 'pushpull_written_bytes_total{transport="websocket"}'],
      ["bytes written (long polling)", 'pushpull_written_bytes_total{transport="longpolling"}'],
    ];
    rows($("drops").tBodies[0], drops.map(([k, s]) => el("tr", {}, el("th", {}, k), metricCell(m, s))));

    const errs = (st.errors || []).slice().reverse();
    $("errors-none").hidden = errs.length > 0;
    $("errors").hidden = errs.length === 0;
    rows($("errors").tBodies[0], errs.map((e) => el("tr", {}, el("td", {}, new Date(e.time).toLocaleTimeString()),
      el("td", { class: e.level === "ERROR" ? "bad" : "" }, e.level), el("td", {}, e.msg + (e.attrs ? " " + e.attrs : "")))));

    const h = st.history || [];
    chart("rates", h, [["published", "var(--a)", "published"], ["delivered", "var(--b)", "delivered"]], num1);
    chart("latency", h, [["latencyMean", "var(--a)", "mean"], ["latencyP99", "var(--b)", "p99"]], secs);
    chart("conns", h, [["connections", "var(--a)", "open connections"]], num1);
    document.body.dataset.rendered = String(st.time);
  }
  function num1(v) { return v >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1); }

  const NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }
  // chart draws the series (field, colour, name) of the samples h as lines.
  function chart(id, h, series, fmt) {
    const s = $("chart-" + id);
    const W = 400, H = 160, L = 44, B = 16, T = 8;
    s.setAttribute("viewBox", `0 0 ${W} ${H}`);
    s.setAttribute("preserveAspectRatio", "none");
    const kids = [];
    let top = 0;
    for (const [f] of series) for (const p of h) top = Math.max(top, p[f]);
    top = top > 0 ? top * 1.1 : 1;
    for (let i = 0; i <= 2; i++) {
      const y = T + (H - B - T) * (1 - i / 2);
      kids.push(svg("line", { x1: L, x2: W, y1: y, y2: y, stroke: "#d9dee4" }));
      const t = svg("text", { x: L - 4, y: y + 3, "text-anchor": "end" });
      t.textContent = fmt((top * i) / 2);
      kids.push(t);
    }
    if (h.length > 1) {
      const t0 = h[0].t, span = Math.max(h[h.length - 1].t - t0, 1);
      for (const [f, colour] of series) {
        const pts = h.map((p) => `${(L + ((p.t - t0) / span) * (W - L)).toFixed(1)},${(T + (H - B - T) * (1 - p[f] / top)).toFixed(1)}`);
        kids.push(svg("polyline", { points: pts.join(" "), fill: "none", stroke: colour, "stroke-width": 1.5, "vector-effect": "non-scaling-stroke" }));
      }
      const lbl = svg("text", { x: L, y: H - 3 });
      lbl.textContent = "last " + (span < 120000 ? Math.round(span / 1000) + " s" : Math.round(span / 60000) + " min");
      kids.push(lbl);
    } else {
      const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" });
      t.textContent = "gathering…";
      kids.push(t);
    }
    s.replaceChildren(...kids);
    const last = h[h.length - 1];
    $("legend-" + id).replaceChildren(...series.map(([f, colour, name]) => {
      const i = el("i");
      i.style.background = colour;
      return el("span", {}, i, name + (last ? ": " + fmt(last[f]) : ""));
    }));
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    key = $("login-key").value.trim();
    $("login-key").value = "";
    store.setItem("pushpull-admin-key", key);
    refresh();
  });
  $("keycheck-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("keycheck-result");
    const input = $("keycheck-key");
    try {
      const r = await api("api/keycheck", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key: input.value }) });
      input.value = "";
      if (!r.configured) { out.className = "bad"; out.textContent = "This server has no security key: channels are not signed, and a portal with a key gets its messages refused."; }
      else if (r.matches) { out.className = "ok"; out.textContent = "The key matches the one in force."; }
      else if (r.previous) { out.className = "bad"; out.textContent = "This is the previous key, still accepted during the grace period: update the portal."; }
      else { out.className = "bad"; out.textContent = "The key does not match: the portal's messages are refused (wrong signature)."; }
      if (r.trimmed) out.textContent += " (Spaces around the pasted key were ignored.)";
      out.dataset.result = r.matches ? "match" : r.previous ? "previous" : "mismatch";
    } catch (e) {
      if (e.auth) return login(e.message);
      out.className = "bad";
      out.textContent = e.message;
    }
  });

  if (key) refresh(); else login();
})();
