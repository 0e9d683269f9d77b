// The demo page: connects with @pushpull/client and shows what arrives.
// Query parameters prefill the form: channel, ws, lp, pub, transport,
// version (the protocol: 3, 4 or 5); with a channel the page connects at
// once.
import { PullClient } from "./client/index.js";

const $ = (id) => document.getElementById(id);
const q = new URLSearchParams(location.search);
const state = { client: null, messages: [], statuses: [] };
window.pushpullDemo = state;

function randomChannel() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function defaults() {
  try {
    const r = await fetch("defaults.json", { cache: "no-store" });
    return r.ok ? await r.json() : {};
  } catch {
    return {};
  }
}

function publishDefault(d) {
  if (!d.publish) return "";
  if (!d.publish_port) return new URL(d.publish, location.href).toString();
  return `${d.publish_scheme || "http"}://${location.hostname}:${d.publish_port}${d.publish}`;
}

function render(ev) {
  $("empty").hidden = true;
  const li = document.createElement("li");
  const head = document.createElement("div");
  const cmd = document.createElement("span");
  cmd.className = "cmd";
  cmd.textContent = `${ev.module_id} / ${ev.command}`;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `${new Date().toLocaleTimeString()} · ${ev.source}${ev.mid ? " · mid " + ev.mid : ""}`;
  head.append(cmd, meta);
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(ev.params);
  li.append(head, pre);
  $("messages").prepend(li);
  $("count").textContent = String(state.messages.length);
}

function showStatus(s) {
  const el = $("status");
  el.dataset.status = s.status;
  el.textContent = s.status;
  const parts = [];
  if (s.transport) parts.push(s.transport === "websocket" ? "WebSocket" : "long polling");
  if (state.client) parts.push(`protocol ${state.client.protocol}`);
  if (s.status === "offline" && s.retryIn !== undefined) parts.push(`retry in ${(s.retryIn / 1000).toFixed(1)} s`);
  if (s.errors) parts.push(`${s.errors} error${s.errors > 1 ? "s" : ""}`);
  if (s.reason) parts.push(s.reason);
  $("detail").textContent = parts.join(" · ");
}

function connect() {
  state.client?.stop();
  const channel = $("channel").value.trim();
  const client = new PullClient({
    transport: $("transport").value,
    config: {
      server: { version: Number($("version").value), websocket_enabled: true, websocket: $("ws").value, long_polling: $("lp").value },
      channels: { private: { id: channel, type: "private" } },
    },
    log: (line) => console.debug("pushpull:", line),
  });
  client.onStatus((s) => {
    state.statuses.push(s);
    showStatus(s);
  });
  client.onPullEvent((module, command, params, extra, ev) => {
    state.messages.push(ev);
    render(ev);
  });
  state.client = client;
  const u = new URL(location.href);
  u.searchParams.set("channel", channel);
  history.replaceState(null, "", u);
  return client.start();
}

async function publish() {
  const channel = $("channel").value.trim();
  const body = JSON.stringify({
    module_id: $("module").value,
    command: $("command").value,
    params: { text: $("text").value },
    extra: { server_time: new Date().toISOString(), server_time_unix: Math.floor(Date.now() / 1000) },
  });
  const url = $("puburl").value + (($("puburl").value.includes("?") ? "&" : "?") + "CHANNEL_ID=" + encodeURIComponent(channel));
  // A string body is sent as text/plain: a "simple" request, so the
  // browser sends no preflight (the publish route answers OPTIONS with 404).
  try {
    const r = await fetch(url, { method: "POST", body });
    $("pubresult").textContent = r.ok ? "published" : `failed: HTTP ${r.status} ${await r.text()}`;
  } catch (err) {
    $("pubresult").textContent = `failed: ${err.message} (is the publish URL reachable from this page?)`;
  }
}

const d = await defaults();
$("channel").value = q.get("channel") || randomChannel();
$("ws").value = q.get("ws") || (d.websocket ? new URL(d.websocket, location.href).toString().replace(/^http/, "ws") : "");
$("lp").value = q.get("lp") || (d.long_polling ? new URL(d.long_polling, location.href).toString() : "");
$("puburl").value = q.get("pub") || publishDefault(d);
if (q.get("transport")) $("transport").value = q.get("transport");
if (q.get("version")) $("version").value = q.get("version");

$("connect").addEventListener("submit", (e) => {
  e.preventDefault();
  void connect();
});
$("disconnect").addEventListener("click", () => state.client?.stop());
$("publish").addEventListener("submit", (e) => {
  e.preventDefault();
  void publish();
});
if (q.get("channel")) void connect();
state.ready = true;
