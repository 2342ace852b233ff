// Supervisor dashboard: live calls over the /ws/events websocket, one call's streaming transcript, the queue and
// agent board, alerts, listen-in, and the call history with its plots. Plain ES module: no build step, no CDN.
// Every text from the server goes into the page with textContent (never as HTML): transcripts are caller input.

import { adminView } from "/static/supervisor.admin.js";
import { analyticsView } from "/static/supervisor.analytics.js";
import { barChart, donut, fmtMs, histogram, lineChart } from "/static/supervisor.charts.js";

const $ = (id) => document.getElementById(id);
const LEVELS = { calm: "calm", annoyed: "annoyed", frustrated: "frustrated" };
const ENDED_ROW_MS = 10_000; // an ended call stays in the live table this long, greyed, with its outcome
const MAX_ALERTS = 30;
const PAGE = 50;

const state = {
  me: null,
  levels: null, // {annoyed, frustrated}: the server's frustration thresholds (hello), for scores without a level
  live: new Map(), // call id -> LiveCall (+ ended, outcome)
  rows: new Map(), // call id -> <tr>
  queues: null, // [queue] or null when no queue is configured
  agents: null,
  boardAt: performance.now(), // when the queue snapshot was taken (waits tick from there)
  alerts: [],
  detail: null, // {id, mode: "live"|"history", call, turns: Map, buffer: [] | null, ended}
  recording: null, // {id, start (ms)} of the open call's playable recording: evidence links play from there
  ws: null,
  wsAttempt: 0,
  wsConnectedOnce: false,
  history: { params: null, offset: 0, request: 0 },
  listen: null, // {pc, pcId, callId, stream, whisper, meter}
  admin: null, // the Admin tab ({show()}), for admins only
  opener: null, // what had the focus when a call was opened (focus goes back there on close)
  clockOffset: 0, // server clock minus this PC's clock, ms
  clockSamples: 0,
};

// ---- small helpers ------------------------------------------------------------------------------------

/** Build an element: h("td", {class: "num", title: "..."}, "text", child, ...). */
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) if (c != null && c !== false) node.append(c instanceof Node ? c : String(c));
  return node;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function loginUrl() {
  return "/login?next=" + encodeURIComponent(location.pathname + location.search + location.hash);
}

/** JSON from the server; a lost session sends the user to the login page. */
async function api(path, { method = "GET", body, withHeaders = false } = {}) {
  let res;
  try {
    res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "The server cannot be reached.");
  }
  if (res.status === 401) {
    location.assign(loginUrl());
    throw new ApiError(401, "login required");
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const detail = data && typeof data.detail === "string" ? data.detail : res.statusText;
    throw new ApiError(res.status, detail || `HTTP ${res.status}`);
  }
  return withHeaders ? { data, headers: res.headers } : data;
}

const pad2 = (n) => String(n).padStart(2, "0");

function fmtDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  return (hh ? `${hh}:${pad2(mm)}` : String(mm)) + ":" + pad2(s % 60);
}

function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function fmtDateTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** The server's clock (durations count from the server's start times, whatever this PC's clock says). */
const serverNow = () => Date.now() + state.clockOffset;

/** Learn the server clock from an event's ``ts``: the largest ts - arrival is the offset with the least delay. */
function learnClock(ts) {
  const sample = ts * 1000 - Date.now();
  state.clockOffset = state.clockSamples++ === 0 ? sample : Math.max(state.clockOffset, sample);
}

function levelOf(score) {
  const t = state.levels;
  if (score == null || !t) return null;
  return score >= t.frustrated ? "frustrated" : score >= t.annoyed ? "annoyed" : "calm";
}

const channelName = (c) => ({ sip: "SIP", webrtc: "WebRTC", chat: "Chat" })[c] || c || "–";

function frustrationBadge(f) {
  if (!f || (f.level == null && f.score == null)) return h("span", { class: "muted" }, "–");
  const level = LEVELS[f.level] || levelOf(f.score) || "calm";
  const rising = f.trend === "rising";
  const score = f.score != null ? Number(f.score).toFixed(2) : null;
  const title = [
    `${level}${score != null ? ` (score ${score})` : ""}${rising ? ", rising" : ""}`,
    f.explanation || "no particular cue",
  ].join(": ");
  return h("span", { class: `badge ${level}`, title, "aria-label": title, dataset: { level } },
    level, h("span", { class: "trend", "aria-hidden": "true" }, rising ? "↗" : "→"));
}

function stateBadge(call) {
  if (call.ended) {
    return h("span", { class: "badge state-ended" }, `ended${call.outcome ? " · " + call.outcome : ""}`);
  }
  if (call.state === "queued") {
    return h("span", { class: "badge state-queued" }, "queued" + (call.queue ? ` · ${call.queue}` : ""));
  }
  if (call.state === "agent") {
    return h("span", { class: "badge state-agent" }, "with agent" + (call.agent_id ? ` ${call.agent_id}` : ""));
  }
  if (call.state === "supervisor") {
    return h("span", { class: "badge state-supervisor" }, "taken over" + (call.taken_over_by ? ` by ${call.taken_over_by}` : ""));
  }
  return h("span", { class: "badge state-bot" }, "bot");
}

// What the NLU reports besides the requests a call is about: never shown as an intent chip.
const NOT_INTENTS = new Set(["out_of_scope", "greet", "goodbye", "affirm", "deny", "thanks", "repeat"]);

function intentChips(names) {
  const list = (names || []).map((n) => (typeof n === "string" ? n : n.name)).filter((n) => n && !NOT_INTENTS.has(n));
  if (!list.length) return h("span", { class: "muted" }, "–");
  return h("span", { class: "chips" }, list.map((n) => h("span", { class: "chip intent" }, n)));
}

function latencyCell(ms) {
  if (ms == null) return h("span", { class: "muted" }, "–");
  return h("span", { class: ms > 1200 ? "latency-slow" : "", title: "from the end of the caller's speech to the bot's first audio" }, fmtMs(ms));
}

// ---- who is logged in ---------------------------------------------------------------------------------

async function loadMe() {
  state.me = await api("/api/me");
  const who = $("whoami");
  who.replaceChildren(h("span", {}, state.me.username), h("span", { class: "role" }, `(${state.me.role})`));
  if (state.me.role !== "agent") {
    $("tab-analytics").hidden = false;
    $("tab-wallboard").hidden = false;
    state.analytics = analyticsView({ h, api, $ });
  }
  if (state.me.role === "admin") {
    $("tab-admin").hidden = false;
    state.admin = adminView({ h, api, $, fmtDateTime, openCall, me: () => state.me });
  }
  if (state.me.role === "agent") {
    $("calls-h").textContent = "My live calls";
    $("calls-note").textContent = "As an agent you see the calls handed to you.";
  }
}

async function logout() {
  stopListen();
  try {
    await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
  } finally {
    location.assign("/login?next=" + encodeURIComponent("/supervisor"));
  }
}

// ---- live calls table ---------------------------------------------------------------------------------

function upsertCall(call) {
  if (!call || !call.id) return;
  const old = state.live.get(call.id);
  state.live.set(call.id, { firstSeen: Date.now(), ...(old || {}), ...call });
  renderRow(call.id);
  renderTiles();
}

function renderRow(id) {
  const call = state.live.get(id);
  const body = $("calls").tBodies[0];
  let tr = state.rows.get(id);
  if (!tr) {
    tr = h("tr", {
      tabindex: "0",
      dataset: { callId: id },
      onclick: () => openCall(id, "live"),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openCall(id, "live"); } },
    });
    state.rows.set(id, tr);
    body.prepend(tr); // newest on top
  }
  const level = call.frustration ? LEVELS[call.frustration.level] || levelOf(call.frustration.score) : null;
  tr.className = [level === "frustrated" || level === "annoyed" ? level : "", call.ended ? "ended" : "",
    Date.now() - call.firstSeen < 1200 ? "new" : "", state.detail && state.detail.id === id ? "selected" : ""].filter(Boolean).join(" ");
  tr.dataset.state = call.ended ? "ended" : call.state || "bot";
  tr.setAttribute("aria-label", `Call from ${call.caller_id || "unknown caller"}, ${call.ended ? "ended" : call.state || "bot"}`);
  tr.replaceChildren(
    h("td", {}, h("span", { class: "caller-id" }, call.caller_id || "unknown"),
      call.customer ? h("span", { class: "customer" }, call.customer) : null),
    h("td", {}, h("span", { class: `badge ch-${call.channel}` }, channelName(call.channel))),
    h("td", { class: "col-dialled" }, call.dialled || h("span", { class: "muted" }, "–")),
    h("td", { class: "num duration", dataset: { start: call.start || "" } }, durationOf(call)),
    h("td", {}, stateBadge(call)),
    h("td", {}, intentChips(call.intents)),
    h("td", {}, frustrationBadge(call.frustration)),
    h("td", { class: "num" }, latencyCell(call.last_latency_ms)),
  );
  $("calls-empty").hidden = state.live.size > 0;
}

function durationOf(call) {
  if (!call.start) return "–";
  const end = call.ended && call.endedAt ? call.endedAt : serverNow();
  return fmtDuration((end - new Date(call.start).getTime()) / 1000);
}

function endCall(id, outcome) {
  const call = state.live.get(id);
  if (!call) return;
  call.ended = true;
  call.outcome = outcome;
  call.endedAt = serverNow();
  renderRow(id);
  renderTiles();
  setTimeout(() => {
    const c = state.live.get(id);
    if (c && c.ended) {
      state.live.delete(id);
      state.rows.get(id)?.remove();
      state.rows.delete(id);
      $("calls-empty").hidden = state.live.size > 0;
      renderTiles();
    }
  }, ENDED_ROW_MS);
}

function replaceLive(calls) {
  const keep = new Set(calls.map((c) => c.id));
  for (const id of [...state.live.keys()]) {
    if (!keep.has(id) && !state.live.get(id).ended) endCall(id, null);
  }
  for (const c of calls) upsertCall(c);
  $("calls-empty").hidden = state.live.size > 0;
}

function renderTiles() {
  const calls = [...state.live.values()].filter((c) => !c.ended);
  const count = (pred) => calls.filter(pred).length;
  $("t-calls").textContent = calls.length;
  $("t-bot").textContent = count((c) => !c.state || c.state === "bot");
  $("t-queued").textContent = count((c) => c.state === "queued");
  $("t-agent").textContent = count((c) => c.state === "agent");
  const hot = count((c) => c.frustration && (c.frustration.level === "frustrated" || levelOf(c.frustration.score) === "frustrated"));
  $("t-frustrated").textContent = hot;
  $("t-frustrated").parentElement.classList.toggle("on", hot > 0);
  if (state.agents) {
    const on = state.agents.filter((a) => a.state !== "offline");
    $("t-available").textContent = state.agents.filter((a) => a.state === "available").length;
    $("t-available-l").textContent = `agents available · ${on.length} of ${state.agents.length} logged in`;
  }
}

// ---- queues and agents board --------------------------------------------------------------------------

function setBoard(queues, agents) {
  // Events carry the bodies of GET /api/queues and GET /api/agents, or their lists.
  if (queues !== undefined) state.queues = Array.isArray(queues) ? queues : queues?.queues ?? null;
  if (agents !== undefined) state.agents = Array.isArray(agents) ? agents : agents?.agents ?? null;
  state.boardAt = performance.now();
  renderBoard();
  renderTiles();
}

function renderBoard() {
  const since = (performance.now() - state.boardAt) / 1000;
  const qbox = $("queues");
  if (!state.queues || !state.queues.length) {
    qbox.replaceChildren(h("p", { class: "empty" }, "No agent queue configured."));
  } else {
    qbox.replaceChildren(...state.queues.map((q) => {
      const s = q.stats || {};
      const waiting = q.waiting || [];
      const longest = waiting.length ? Math.max(...waiting.map((w) => (w.waited_s || 0) + since)) : 0;
      const sl = s.service_level;
      return h("article", { class: "queue", "aria-label": `Queue ${q.name}` },
        h("div", { class: "queue-head" }, h("h3", {}, q.name), h("span", { class: "muted small" }, q.strategy || "")),
        h("div", { class: "stats" },
          h("div", { class: "stat" + (waiting.length ? " warn" : "") }, h("b", {}, waiting.length), h("span", {}, "waiting")),
          h("div", { class: "stat" }, h("b", { dataset: waiting.length ? { baseS: longest - since } : {} },
            waiting.length ? fmtDuration(longest) : "–"), h("span", {}, "longest wait")),
          h("div", { class: "stat" + (sl != null && sl < 0.8 ? " warn" : "") },
            h("b", {}, sl == null ? "–" : `${Math.round(sl * 100)} %`),
            h("span", { title: `answered within ${s.service_level_s ?? "?"} s` }, "service level")),
          h("div", { class: "stat" + (s.abandoned ? " warn" : "") }, h("b", {}, s.abandoned ?? 0), h("span", {}, "abandoned"))),
        waiting.length ? h("ol", { class: "waiting" }, waiting.map((w) => h("li", {},
          h("span", { class: "pos" }, `#${w.position}`),
          h("button", { type: "button", class: "btn btn-ghost btn-small", onclick: () => openCall(w.call_id, "live") },
            w.caller || "unknown"),
          w.frustration ? frustrationBadge({ level: w.frustration }) : null,
          h("span", { class: "wait", dataset: { baseS: w.waited_s || 0 } }, fmtDuration((w.waited_s || 0) + since)),
        ))) : null);
    }));
  }
  const abox = $("agents");
  if (!state.agents || !state.agents.length) {
    abox.replaceChildren(h("p", { class: "empty" }, "No agents configured."));
    return;
  }
  const order = ["available", "ringing", "busy", "wrap_up", "paused", "offline"];
  const names = { available: "Available", ringing: "Ringing", busy: "On a call", wrap_up: "Wrap-up", paused: "Paused", offline: "Offline" };
  const groups = order.map((st) => [st, state.agents.filter((a) => a.state === st)]).filter(([, list]) => list.length);
  abox.replaceChildren(...groups.map(([st, list]) => h("div", { class: "agent-group" },
    h("h3", {}, `${names[st] || st} (${list.length})`),
    h("div", {}, list.map((a) => h("span", {
      class: `agent-chip ${st}`, dataset: { agent: a.id },
      ...(state.me && state.me.role !== "agent" ? { tabindex: "0", role: "button", "aria-label": `Set the state of ${a.name || a.id}`,
        onclick: (e) => agentMenu(a, e.currentTarget), onkeydown: (e) => { if (e.key === "Enter") agentMenu(a, e.currentTarget); } } : {}),
      title: [a.name, a.pause_reason ? `paused: ${a.pause_reason}` : null, (a.calls || []).length ? `on ${a.calls.length} call(s)` : null]
        .filter(Boolean).join(" · "),
    }, a.name || a.id, a.in_state_s != null
      ? h("span", { class: "since", dataset: { baseS: a.in_state_s } }, fmtDuration(a.in_state_s + since)) : null))))));
}

/** Staff set an agent's state from the board (POST /api/agents/{id}/state; the server writes it to the audit log). */
function agentMenu(agent, anchor) {
  document.querySelector(".agent-menu")?.remove();
  const menu = h("div", { class: "agent-menu", role: "menu", "aria-label": `State of ${agent.name || agent.id}` },
    [["available", "Available"], ["paused", "Pause"], ["offline", "Log out"]].filter(([st]) => st !== agent.state)
      .map(([st, label]) => h("button", { type: "button", class: "btn btn-small", role: "menuitem", dataset: { state: st },
        onclick: async () => {
          menu.remove();
          try {
            await api(`/api/agents/${encodeURIComponent(agent.id)}/state`, { method: "POST",
              body: st === "paused" ? { state: st, reason: `set by ${state.me?.username || "a supervisor"}` } : { state: st } });
            await loadBoard();
          } catch (err) {
            anchor.after(h("span", { class: "form-error small", role: "alert" }, `${agent.name || agent.id}: ${err.message}`));
          }
        } }, label)),
    h("button", { type: "button", class: "btn btn-ghost btn-small", onclick: () => menu.remove() }, "Cancel"));
  anchor.after(menu);
  menu.querySelector("button")?.focus();
}

async function loadBoard() {
  const [q, a] = await Promise.allSettled([api("/api/queues"), api("/api/agents")]);
  setBoard(q.status === "fulfilled" ? q.value : null, a.status === "fulfilled" ? a.value : null);
}

// ---- alerts -------------------------------------------------------------------------------------------
// Alerts are kept by the server (GET /api/alerts): acknowledged and assigned here, every dashboard is told
// (alert.updated); an alert leaves the list when its call ends.

function toAlert(a, ts) {
  return {
    id: a.id || null, kind: a.kind || "alert", message: a.message || "Alert", callId: a.call_id || null,
    ts: a.raised_at ? Date.parse(a.raised_at) : ts ? ts * 1000 : Date.now(),
    ackedBy: a.acked_by || null, assignedTo: a.assigned_to || null, open: a.open !== false,
  };
}

function putAlert(alert) {
  const i = alert.id ? state.alerts.findIndex((a) => a.id === alert.id) : -1;
  if (!alert.open) {
    if (i >= 0) state.alerts.splice(i, 1);
  } else if (i >= 0) {
    state.alerts[i] = alert;
  } else {
    state.alerts.unshift(alert);
    state.alerts.sort((a, b) => b.ts - a.ts);
    state.alerts.length = Math.min(state.alerts.length, MAX_ALERTS);
  }
  renderAlerts();
  return i < 0 && alert.open;
}

function addAlert(ev) {
  const alert = toAlert(ev, ev.ts);
  if (putAlert(alert)) toast(alert);
}

async function loadAlerts() {
  try {
    const data = await api("/api/alerts?open=1");
    const stored = (data.alerts || []).map((a) => toAlert(a));
    const ids = new Set(stored.map((a) => a.id));
    // An alert that arrived while the list was read (not stored yet) stays.
    state.alerts = [...state.alerts.filter((a) => !ids.has(a.id)), ...stored];
    state.alerts.sort((a, b) => b.ts - a.ts);
    state.alerts.length = Math.min(state.alerts.length, MAX_ALERTS);
    renderAlerts();
  } catch { /* the events still bring new alerts */ }
}

function alertOpen(alert) {
  return alert.callId ? () => { showView("live"); openCall(alert.callId, "live"); } : undefined;
}

async function alertAction(alert, path, body, msg) {
  msg.textContent = "";
  try {
    putAlert(toAlert(await api(`/api/alerts/${encodeURIComponent(alert.id)}/${path}`, { method: "POST", body })));
  } catch (err) {
    msg.textContent = err.message;
  }
}

function alertControls(a) {
  if (!a.id || state.me?.role === "agent") return null;
  const msg = h("span", { class: "form-error small", role: "alert" });
  const who = h("input", { type: "text", class: "alert-assignee", list: "alert-users", placeholder: "user",
    "aria-label": "Assign to user", size: 8, value: a.assignedTo || "" });
  return h("div", { class: "alert-actions" },
    a.ackedBy
      ? h("span", { class: "acked" }, `Acknowledged by ${a.ackedBy}`)
      : h("button", { type: "button", class: "btn btn-small alert-ack", onclick: () => alertAction(a, "ack", undefined, msg) }, "Ack"),
    h("form", { class: "alert-assign", onsubmit: (e) => {
      e.preventDefault();
      if (who.value.trim()) alertAction(a, "assign", { user: who.value.trim() }, msg);
    } }, who, h("button", { type: "submit", class: "btn btn-small btn-ghost" }, "Assign")),
    a.assignedTo ? h("span", { class: "assigned" }, `Assigned to ${a.assignedTo}`) : null,
    msg);
}

function renderAlerts() {
  $("alerts").replaceChildren(...state.alerts.map((a) => h("li", { dataset: { alertId: a.id || "" }, class: a.ackedBy ? "acked" : null },
    h("button", { type: "button", class: `alert-item ${a.kind}`, onclick: alertOpen(a), disabled: !a.callId && undefined },
      h("span", { class: `icon ${a.kind}`, "aria-hidden": "true" }),
      h("span", {}, a.message),
      h("time", { datetime: new Date(a.ts).toISOString() }, fmtTime(new Date(a.ts).toISOString()))),
    alertControls(a))));
  $("alerts-empty").hidden = state.alerts.length > 0;
  const unacked = state.alerts.filter((a) => !a.ackedBy).length;
  const badge = $("alerts-count");
  badge.textContent = String(unacked);
  badge.hidden = unacked === 0;
  badge.title = `${unacked} alert(s) not acknowledged`;
  const names = new Set((state.agents || []).map((ag) => ag.id).filter(Boolean));
  if (state.me?.username) names.add(state.me.username);
  $("alert-users").replaceChildren(...[...names].sort().map((n) => h("option", { value: n })));
}

function toast(alert) {
  const box = $("toasts");
  const node = h("div", { class: `toast ${alert.kind}`, role: "alert" },
    h("button", { type: "button", class: "open", onclick: () => { node.remove(); alertOpen(alert)?.(); } },
      h("strong", {}, alert.kind === "wait" ? "Long wait" : "Frustrated caller"), h("br"), alert.message),
    h("button", { type: "button", class: "x", "aria-label": "Dismiss", onclick: () => node.remove() }, "✕"));
  box.prepend(node);
  while (box.children.length > 3) box.lastElementChild.remove();
  setTimeout(() => node.remove(), 9000);
}

// ---- one call: header, hand-off packet, transcript -----------------------------------------------------

function turnKey(t) {
  return t.id != null ? `id:${t.id}` : `${t.speaker}|${Date.parse(t.start)}|${t.text}`;
}

async function openCall(id, mode, { focus = true } = {}) {
  if (!id) return;
  if (state.detail?.id !== id) stopListen();
  if (!$("detail").contains(document.activeElement)) state.opener = document.activeElement;
  state.detail = { id, mode, call: state.live.get(id) || { id }, turns: new Map(), buffer: [], ended: false, handoff: null };
  for (const [rid, tr] of state.rows) tr.classList.toggle("selected", rid === id);
  document.body.classList.add("has-detail");
  $("detail").hidden = false;
  const hash = `#${mode}/call=${encodeURIComponent(id)}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
  $("transcript").replaceChildren();
  $("detail").classList.remove("failed");
  $("detail-error").hidden = true;
  $("handoff").hidden = true;
  $("scorecard").hidden = true;
  renderRecording(id, null);
  renderDetailHead();
  if (focus) $("detail-title").focus();
  const detail = state.detail;
  try {
    let data;
    if (mode === "live") {
      try {
        data = await api(`/api/live/${encodeURIComponent(id)}`);
      } catch (e) {
        if (e.status !== 404) throw e;
        data = await api(`/api/calls/${encodeURIComponent(id)}`); // ended meanwhile: its record
        detail.ended = true;
      }
    } else {
      data = await api(`/api/calls/${encodeURIComponent(id)}`);
      detail.ended = true;
    }
    if (state.detail !== detail) return;
    const { turns = [], handoff = null, scorecard = null, notes = [], ...call } = data;
    detail.call = { ...detail.call, ...call };
    renderRecording(id, call.recording);
    renderScorecard(scorecard, notes);
    if (call.end) detail.ended = true;
    renderDetailHead();
    if (handoff) renderHandoff(handoff);
    else if (call.transfer) renderTransfer(call.transfer);
    for (const t of turns) addTurn(t, false);
    // Calls bridged before agent turns went into the record keep them with the transfer.
    for (const t of call.transfer?.transcript || []) addTurn({ intents: [], latency_ms: null, extra: { kind: "bridged" }, ...t }, false);
    const buffered = detail.buffer;
    detail.buffer = null; // events from now on go straight in
    for (const ev of buffered) onCallEvent(ev, true);
    $("transcript-empty").hidden = detail.turns.size > 0;
  } catch (e) {
    if (state.detail !== detail) return;
    detail.buffer = null;
    const msg = e.status === 403 ? "You are not allowed to open this call."
      : e.status === 404 ? "There is no such call." : `This call cannot be shown: ${e.message}`;
    showDetailError(msg);
  }
}

function showDetailError(msg) {
  $("detail").classList.add("failed");
  $("detail-title").textContent = "Call";
  $("detail-meta").textContent = state.detail ? state.detail.id : "";
  const box = $("detail-error");
  box.textContent = msg;
  box.hidden = false;
  $("transcript").replaceChildren();
  $("transcript-empty").hidden = true;
  $("handoff").hidden = true;
}

function closeDetail(refocus = true) {
  stopListen();
  const id = state.detail?.id;
  state.detail = null;
  $("detail").hidden = true;
  document.body.classList.remove("has-detail");
  for (const tr of state.rows.values()) tr.classList.remove("selected");
  history.replaceState(null, "", location.hash.split("/")[0] || `#${currentView()}`);
  const row = refocus && id && state.rows.get(id);
  const opener = state.opener;
  state.opener = null;
  if (row) row.focus();
  else if (refocus && opener?.isConnected && opener !== document.body) opener.focus();
}

function renderDetailHead() {
  const d = state.detail;
  if (!d) return;
  const call = detailCall();
  $("detail-title").textContent = `Call from ${call.caller_id || "unknown caller"}`;
  renderDetailMeta();
  const ended = d.ended || call.ended || !!call.end;
  const badges = [];
  if (ended) {
    badges.push(h("span", { class: `badge out-${call.outcome || "none"}` }, call.outcome ? `outcome: ${call.outcome}` : "ended"));
    if (call.end_reason) badges.push(h("span", { class: "badge" }, call.end_reason.replaceAll("_", " ")));
  } else {
    badges.push(stateBadge(call));
  }
  if (call.agent_id && (ended || call.state !== "agent")) badges.push(h("span", { class: "badge state-agent" }, `agent ${call.agent_id}`));
  if (ended && call.taken_over_by) badges.push(h("span", { class: "badge state-supervisor" }, `taken over by ${call.taken_over_by}`));
  if (call.customer) badges.push(h("span", { class: "badge" }, `customer: ${call.customer}`));
  if (call.frustration) badges.push(frustrationBadge(call.frustration));
  else if (call.frustration_max != null) badges.push(frustrationBadge({ score: call.frustration_max, explanation: "highest of the call" }));
  $("detail-badges").replaceChildren(...badges);
  // Listening needs a call in progress; whispering needs an agent on it.
  const busy = !!state.listen;
  $("listen-box").hidden = ended && !busy;
  $("listen").disabled = ended || busy;
  $("whisper").disabled = ended || busy || call.state !== "agent";
  $("whisper").title = call.state === "agent" ? "Talk to the agent; the caller does not hear you" : "Possible once an agent has the call";
  // Barge-in: on a phone or browser call the bot has, the bot stops and you talk with the caller (stopping hangs
  // up); on a call an agent has, you join the two.
  const joinable = call.state === "agent";
  $("takeover").textContent = joinable ? "Join call" : "Take over";
  const takeable = call.state === "bot" && (call.channel === "sip" || call.channel === "webrtc");  // not a typed chat
  $("takeover").disabled = ended || busy || !(joinable || takeable);
  $("takeover").title = joinable ? "The caller and the agent both hear you"
    : call.state !== "bot" ? "Possible while the bot or an agent has the call"
    : !takeable ? "Possible on phone and browser calls" : "The bot stops; you talk with the caller (stopping hangs up)";
}

function detailCall() {
  const d = state.detail;
  const live = d.mode === "live" ? state.live.get(d.id) : null;
  return { ...d.call, ...(live || {}) };
}

function renderDetailMeta() {
  if (!state.detail) return;
  const call = detailCall();
  const parts = [channelName(call.channel)];
  if (call.dialled) parts.push(`to ${call.dialled}`);
  if (call.start) parts.push(`started ${fmtDateTime(call.start)}`);
  if (call.end) parts.push(`lasted ${fmtDuration((new Date(call.end) - new Date(call.start)) / 1000)}`);
  else if (call.start) parts.push(`${durationOf(call)} so far`);
  $("detail-meta").textContent = parts.join(" · ");
  $("detail-meta").dataset.start = call.end ? "" : call.start || "";
}

/** How a past call's hand-off to the agent queue went (GET /api/calls/{id} ``transfer``). */
function renderTransfer(t) {
  const rows = [
    ["Queue", t.queue],
    ["Outcome", t.outcome],
    ["Agent", t.agent_id],
    ["Waited", t.wait_s != null ? fmtDuration(t.wait_s) : null],
    ["Talked", t.talk_s != null ? fmtDuration(t.talk_s) : null],
    ["Callback", t.callback_id != null ? `request #${t.callback_id}` : null],
    ["Voice message", t.voicemail_s != null ? `${Math.round(t.voicemail_s)} s` : null],
  ].filter(([, v]) => v != null && v !== "");
  $("handoff-title").textContent = "Hand-off to the agent queue";
  $("handoff-body").replaceChildren(h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  $("handoff").hidden = false;
}

function renderHandoff(p) {
  $("handoff-title").textContent = "Hand-off packet";
  const f = p.frustration || {};
  const intents = (list) => (list || []).map((t) => (typeof t === "string" ? t : t.intent + (t.outcome ? ` (${t.outcome})` : "")));
  const customer = p.customer
    ? `${p.customer.name || "customer " + p.customer.id} — ${p.customer.verified ? "verified" + (p.customer.verified_by ? " by " + p.customer.verified_by : "") : "not verified"}`
    : "not identified";
  const rows = [
    ["Reason", p.reason_text || p.reason],
    ["Queue", p.queue ? `${p.queue}${p.priority ? ` (priority ${p.priority})` : ""}` : null],
    ["Customer", customer],
    ["Done", intents(p.intents_done).join(", ") || "–"],
    ["Pending", intents(p.intents_pending).join(", ") || "–"],
    ["Details", Object.entries(p.slots || {}).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ") || "–"],
  ];
  $("handoff-body").replaceChildren(
    h("p", { class: "summary" }, p.summary || ""),
    h("dl", {}, rows.filter(([, v]) => v != null).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      h("dt", {}, "Frustration"),
      h("dd", {}, frustrationBadge({ level: f.level, score: f.max, explanation: f.explanation }),
        f.max != null ? ` max ${Number(f.max).toFixed(2)}` : "")),
  );
  $("handoff").hidden = false;
}

/** Words of a finalised turn as spans that fade in one after the other (CSS animation, delay per word). */
function animatedWords(text) {
  const words = text.split(/(\s+)/);
  const count = words.filter((w) => w.trim()).length;
  const step = Math.max(25, Math.min(90, Math.round(2200 / Math.max(1, count))));
  const p = h("p", { class: "turn-text", style: `--step:${step}ms` });
  let i = 0;
  for (const w of words) {
    if (!w.trim()) p.append(w);
    else p.append(h("span", { class: "w", style: `--i:${i++}` }, w));
  }
  return p;
}

function addTurn(turn, animate, replayed = false) {
  const d = state.detail;
  if (!d) return;
  const key = turnKey(turn);
  if (d.turns.has(key)) return;
  // Stored turns come without their ids. An event that arrived while they were being fetched, or just after,
  // may be one of them: the first id-less turn of the same speaker and words (a bot turn's start moves to its
  // first audio, so the start alone does not identify it). It keeps the id from now on, so updates find it.
  const near = (x) => replayed || Math.abs(Date.parse(x.turn.start) - Date.parse(turn.start)) < 5000;
  const [seenKey, seen] = (turn.id != null
    ? [...d.turns.entries()].find(([, x]) => x.turn.id == null && x.turn.speaker === turn.speaker
      && x.turn.text === turn.text && near(x))
    : null) || [];
  if (seen) {
    if (turn.id != null) {
      d.turns.delete(seenKey);
      d.turns.set(key, seen);
      // What was fetched is newer than the event (published when the turn was first stored): keep it.
      seen.turn = { ...turn, ...seen.turn, id: turn.id, seq: turn.seq, extra: { ...(turn.extra || {}), ...(seen.turn.extra || {}) } };
      seen.node._turn = seen.turn;
      renderTurn(seen, false);
    }
    return;
  }
  const node = h("li", { class: `turn ${turn.speaker}`, dataset: { speaker: turn.speaker } });
  const entry = { turn, node };
  d.turns.set(key, entry);
  renderTurn(entry, animate);
  // Keep the transcript in the order the turns were said.
  const list = $("transcript");
  const after = [...list.children].find((li) => li._turn && compareTurns(li._turn, turn) > 0);
  node._turn = turn;
  list.insertBefore(node, after || null);
  $("transcript-empty").hidden = true;
  if (animate) node.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function compareTurns(a, b) {
  if (a.seq != null && b.seq != null) return a.seq - b.seq; // the order the call record keeps
  return (Date.parse(a.start) || 0) - (Date.parse(b.start) || 0);
}

const SPEAKERS = { caller: "Caller", bot: "Bot", agent: "Agent" };

function renderTurn(entry, animate) {
  const t = entry.turn;
  const extra = t.extra || {};
  const head = h("div", { class: "turn-head" },
    h("span", { class: "who" }, SPEAKERS[t.speaker] || t.speaker),
    t.speaker === "agent" && (extra.agent_id || state.detail?.call.agent_id) ? h("span", {}, extra.agent_id || state.detail.call.agent_id) : null,
    h("time", { datetime: t.start || "" }, fmtTime(t.start)),
    extra.kind && extra.kind !== "reply" && extra.kind !== "bridged" ? h("span", { class: "kind" }, extra.kind) : null,
    extra.partial ? h("span", { class: "kind", title: "the caller hung up mid-sentence" }, "cut off") : null,
    t.speaker === "bot" && t.latency_ms != null ? h("span", { class: "lat", title: "reply latency" }, fmtMs(t.latency_ms)) : null);
  const text = t.text || (t.speaker === "bot" ? "(nothing said)" : "…");
  const body = animate ? animatedWords(text) : h("p", { class: "turn-text" }, text);
  const meta = h("div", { class: "turn-meta" });
  const parts = [head, body];
  entry.node.classList.remove("lvl-annoyed", "lvl-frustrated");
  if (t.speaker === "caller") {
    for (const i of t.intents || []) {
      meta.append(h("span", { class: "chip intent", title: i.confidence != null ? `confidence ${i.confidence}` : null },
        i.name, i.confidence != null ? h("span", { class: "conf" }, Number(i.confidence).toFixed(2)) : null));
    }
    for (const e of extra.entities || []) {
      const value = typeof e.value === "object" ? JSON.stringify(e.value) : e.value;
      meta.append(h("span", { class: "chip entity", title: e.text ? `heard as "${e.text}"` : null }, `${e.type}: ${value}`));
    }
    const s = extra.signals;
    if (s && (s.frustration != null || s.frustration_level)) {
      const level = s.frustration_level || levelOf(s.frustration);
      meta.append(frustrationBadge({ level, score: s.frustration, trend: s.frustration_trend, explanation: s.frustration_explanation }));
      if (level === "annoyed" || level === "frustrated") entry.node.classList.add(`lvl-${level}`);
    }
  }
  if (t.speaker === "bot" && extra.trace) {
    const panelId = `trace-${Math.random().toString(36).slice(2, 9)}`;
    const panel = renderTrace(extra.trace, extra.stages);
    panel.id = panelId;
    panel.hidden = true;
    const toggle = h("button", { type: "button", class: "btn btn-small why", "aria-expanded": "false", "aria-controls": panelId },
      "why?");
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      panel.hidden = !open;
    });
    meta.append(toggle);
    parts.push(meta, panel);
  } else if (meta.childNodes.length) {
    parts.push(meta);
  }
  entry.node.replaceChildren(...parts);
}

function renderTrace(trace, stages) {
  const rows = [];
  const nlu = trace.nlu;
  if (nlu && nlu.scores) {
    const top = Object.entries(nlu.scores).sort((a, b) => b[1] - a[1]).slice(0, 5);
    rows.push(["NLU scores", h("div", { class: "scores" }, top.map(([name, v]) => [
      h("span", {}, name), h("span", { class: "bar", "aria-hidden": "true" }, h("i", { style: `width:${Math.round(v * 100)}%` })),
      h("span", { class: "v" }, Number(v).toFixed(2))]))]);
    if (nlu.segments?.length > 1) rows.push(["Clauses", nlu.segments.map((s) => `“${s}”`).join(" · ")]);
    if (nlu.negated?.length) rows.push(["Negated", nlu.negated.join(", ")]);
    if (nlu.normalized) rows.push(["Heard as", nlu.normalized]);
  }
  if (trace.steps?.length) rows.push(["Steps", h("ol", {}, trace.steps.map((s) => h("li", {}, typeof s === "string" ? s : JSON.stringify(s))))]);
  if (trace.expect) rows.push(["Expects", trace.expect + (trace.expect_slot ? ` (${trace.expect_slot})` : "")]);
  if (trace.verified != null) rows.push(["Verified", trace.verified ? "yes" : "no"]);
  if (trace.style && trace.style !== "default") rows.push(["Style", trace.style]);
  if (trace.frustration) rows.push(["Frustration", `${trace.frustration}${trace.frustration_explanation ? ` — ${trace.frustration_explanation}` : ""}`]);
  if (trace.handoff_reason) rows.push(["Hand-off", trace.handoff_reason]);
  if (trace.rule) rows.push(["Rule", trace.rule]);
  if (stages) {
    rows.push(["Timing", Object.entries(stages).map(([k, v]) => `${k.replace(/_ms$/, "")} ${k.endsWith("_ms") ? fmtMs(v) : v}`).join(", ")]);
  }
  return h("div", { class: "trace" }, h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
}

function updateTurn(turnId, fields) {
  const d = state.detail;
  const entry = d && d.turns.get(`id:${turnId}`);
  if (!entry) return;
  const { extra, ...rest } = fields || {};
  entry.turn = { ...entry.turn, ...rest, extra: { ...(entry.turn.extra || {}), ...(extra || {}) } };
  entry.node._turn = entry.turn;
  renderTurn(entry, false);
}

/** An event about the open call (buffered while its stored turns are being fetched). */
function onCallEvent(ev, replayed = false) {
  const d = state.detail;
  if (!d || ev.call_id !== d.id) return;
  if (d.buffer) { d.buffer.push(ev); return; }
  switch (ev.type) {
    case "turn": addTurn(ev.turn, true, replayed); break;
    case "turn.updated": updateTurn(ev.turn_id, ev.fields); break;
    case "handoff": renderHandoff(ev.packet || {}); break;
    case "call.ended":
      d.ended = true;
      d.call = { ...d.call, outcome: ev.outcome, end_reason: ev.end_reason, end: ev.end || new Date().toISOString() };
      stopListen();
      renderDetailHead();
      break;
    default: break; // call.updated / call.state: handleEvent re-renders the header
  }
}

// ---- listen in / whisper (LISTEN's API: POST /api/live/{id}/listen with a WebRTC offer) ---------------

function listenStatus(text, on = false) {
  $("listen-status").textContent = text;
  $("listen-box").classList.toggle("on", on);
}

/** mode: "listen" (hear the call), "whisper" (and talk to the agent) or "takeover" (the bot stops, you talk with
 * the caller; stopping hangs up). */
async function startListen(mode) {
  const d = state.detail;
  if (!d || state.listen) return;
  const callId = d.id;
  const whisper = mode === "whisper";
  const talks = mode !== "listen";
  let pc = null;
  let stream = null;
  try {
    pc = new RTCPeerConnection();
    if (talks) {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendrecv", streams: [stream] });
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    state.listen = { pc, pcId: null, callId, stream, whisper, mode };
    renderDetailHead();
    $("listen-stop").hidden = false;
    const joining = mode === "takeover" && detailCall().state === "agent";
    $("listen-stop").textContent = mode === "takeover" && !joining ? "Hang up" : "Stop";
    $("handback").hidden = !(mode === "takeover" && !joining);
    listenStatus("connecting…");
    pc.ontrack = (e) => {
      const remote = e.streams[0] || new MediaStream([e.track]);
      $("listen-audio").srcObject = remote;
      if (state.listen?.pc === pc) state.listen.meter = levelMeter(remote);
    };
    pc.onconnectionstatechange = () => {
      if (state.listen?.pc !== pc) return;
      if (pc.connectionState === "connected") {
        const what = state.listen.conference ? "in the call · the caller and the agent hear you"
          : mode === "takeover" ? "you have the caller · the bot is stopped"
          : whisper ? "whispering to the agent · you hear the call" : "listening";
        listenStatus(what, true);
      }
      else if (pc.connectionState === "failed" || pc.connectionState === "closed") stopListen("the connection dropped");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc);
    const path = mode === "takeover" ? "takeover" : "listen";
    const answer = await api(`/api/live/${encodeURIComponent(callId)}/${path}`, {
      method: "POST", body: mode === "takeover" ? { sdp: pc.localDescription.sdp, type: "offer" } : { sdp: pc.localDescription.sdp, type: "offer", whisper },
    });
    if (state.listen?.pc !== pc) return; // stopped meanwhile
    state.listen.pcId = answer.pc_id || null;
    state.listen.conference = answer.mode === "conference";
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type || "answer" });
  } catch (e) {
    const why = e instanceof ApiError ? e.message : e.name === "NotAllowedError" ? "the microphone was not allowed" : e.message;
    const verb = mode === "takeover" ? "take over" : mode;
    if (state.listen?.pc === pc || !state.listen) stopListen(`Cannot ${verb}: ${why}`);
    else { pc?.close(); stream?.getTracks().forEach((t) => t.stop()); }
  }
}

/** A level meter of what the supervisor hears; counts loud 100 ms windows in #listen-box's data-loud. */
function levelMeter(stream) {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  ctx.createMediaStreamSource(stream).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  const level = $("listen-level");
  const box = $("listen-box");
  let loud = 0;
  level.hidden = false;
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const x of data) sum += x * x;
    const rms = Math.sqrt(sum / data.length);
    level.value = Math.min(1, rms * 5);
    if (rms > 0.02) box.dataset.loud = String(++loud);
  }, 100);
  return { ctx, timer };
}

function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 2000); // LAN candidates come at once; do not wait on unreachable STUN
  });
}

/** Give the call taken over back to the bot: the server closes this connection without hanging up. */
async function handBack() {
  const l = state.listen;
  if (!l || l.mode !== "takeover") return;
  try {
    await api(`/api/live/${encodeURIComponent(l.callId)}/handback`, { method: "POST", body: {} });
    l.pcId = null; // closed by the server: a DELETE would find nothing
    stopListen();
    listenStatus("handed back to the bot");
  } catch (e) {
    listenStatus(`Cannot hand back: ${e.message}`);
  }
}

function stopListen(message = "") {
  const l = state.listen;
  state.listen = null;
  if (l) {
    if (l.meter) {
      clearInterval(l.meter.timer);
      l.meter.ctx.close().catch(() => {});
    }
    l.pc.close();
    l.stream?.getTracks().forEach((t) => t.stop());
    $("listen-audio").srcObject = null;
    if (l.pcId) {
      fetch(`/api/live/${encodeURIComponent(l.callId)}/listen/${encodeURIComponent(l.pcId)}`, {
        method: "DELETE", credentials: "same-origin",
      }).catch(() => {});
    }
  }
  $("listen-stop").hidden = true;
  $("handback").hidden = true;
  $("listen-level").hidden = true;
  delete $("listen-box").dataset.loud;
  listenStatus(message);
  $("listen-status").classList.toggle("error-text", !!message);
  if (state.detail) renderDetailHead();
}

// ---- websocket: live events with reconnect ------------------------------------------------------------

function setConn(kind, text) {
  document.body.dataset.conn = kind;
  $("conn-text").textContent = text;
}

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/events`;
  setConn(state.wsConnectedOnce ? "reconnecting" : "connecting", state.wsConnectedOnce ? "reconnecting…" : "connecting…");
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onmessage = (msg) => {
    let ev;
    try { ev = JSON.parse(msg.data); } catch { return; }
    if (typeof ev.ts === "number") learnClock(ev.ts);
    handleEvent(ev);
  };
  ws.onopen = () => {
    const again = state.wsConnectedOnce;
    state.wsConnectedOnce = true;
    state.wsAttempt = 0;
    state.clockSamples = 0; // the server may have changed (restart, another machine)
    setConn("live", "live");
    if (again) resync();
  };
  ws.onclose = (e) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (e.code === 4401) { location.assign(loginUrl()); return; }
    if (e.code === 4403) { setConn("offline", "not allowed"); return; }
    // Exponential backoff with jitter: 1, 2, 4 … 30 s.
    const delay = Math.min(30, 2 ** state.wsAttempt) * (0.75 + Math.random() * 0.5);
    state.wsAttempt += 1;
    const until = Date.now() + delay * 1000;
    setConn("reconnecting", `offline — retrying in ${Math.ceil(delay)} s`);
    const countdown = setInterval(() => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left > 0 && !state.ws) setConn("reconnecting", `offline — retrying in ${left} s`);
    }, 1000);
    setTimeout(() => { clearInterval(countdown); connect(); }, delay * 1000);
  };
}

/** The server's thresholds arrived (or changed): the history filter offers them and the plot marks them. */
function levelsChanged() {
  const t = state.levels;
  const select = document.querySelector('select[name="min_frustration"]');
  if (t && select) {
    const chosen = select.value;
    select.replaceChildren(
      h("option", { value: "" }, "any"),
      h("option", { value: String(t.annoyed) }, `${t.annoyed} (annoyed or worse)`),
      h("option", { value: String(t.frustrated) }, `${t.frustrated} (frustrated)`),
    );
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }
  if (state.history.params) loadStats(state.history.params);
}

/** After a reconnect: what happened while the socket was down. */
async function resync() {
  try {
    const data = await api("/api/live");
    replaceLive(data.calls || []);
  } catch { /* the hello snapshot covers it */ }
  loadBoard().catch(() => {});
  const d = state.detail;
  if (d && d.mode === "live" && !d.ended) openCall(d.id, "live", { focus: false });
}

function handleEvent(ev) {
  switch (ev.type) {
    case "hello": {
      const changed = JSON.stringify(ev.frustration_levels || null) !== JSON.stringify(state.levels);
      state.levels = ev.frustration_levels || null;
      if (changed) levelsChanged();
      replaceLive(ev.calls || []);
      if ("queues" in ev || "agents" in ev) setBoard(ev.queues, ev.agents);
      if (state.me?.role !== "agent") loadAlerts();
      break;
    }
    case "call.started":
      upsertCall({ state: "bot", intents: [], frustration: null, ...(ev.call || {}), id: ev.call_id || ev.call?.id });
      break;
    case "call.updated":
      upsertCall({ ...(ev.call || {}), id: ev.call_id || ev.call?.id });
      break;
    case "call.state": {
      const c = state.live.get(ev.call_id);
      if (c) upsertCall({ id: ev.call_id, state: ev.state, queue: ev.queue ?? c.queue, agent_id: ev.agent_id ?? c.agent_id });
      break;
    }
    case "turn": {
      const c = state.live.get(ev.call_id);
      if (c && ev.turn?.speaker === "bot" && ev.turn.latency_ms != null) upsertCall({ id: ev.call_id, last_latency_ms: ev.turn.latency_ms });
      break;
    }
    case "call.ended":
      endCall(ev.call_id, ev.outcome);
      break;
    case "queue":
      setBoard(ev.queues, ev.agents);
      break;
    case "alert":
      addAlert(ev);
      break;
    case "alert.updated":
      if (ev.alert) putAlert(toAlert(ev.alert));
      break;
    case "dropped": // the server dropped events this page was too slow for: read the state again
      resync();
      break;
    default:
      break;
  }
  if (ev.call_id) {
    onCallEvent(ev);
    if (state.detail?.id === ev.call_id && ev.type !== "turn") renderDetailHead();
  }
}

// ---- history: search, results, plots ------------------------------------------------------------------

function dayBound(value, end) {
  // The date inputs are local days; the API gets UTC instants (end: the start of the next day).
  if (!value) return null;
  const d = new Date(`${value}T00:00:00`);
  if (end) d.setDate(d.getDate() + 1);
  return d.toISOString();
}

function searchParams() {
  const form = new FormData($("search"));
  const params = new URLSearchParams();
  for (const key of ["q", "number", "intent", "outcome", "min_frustration", "qa", "tag"]) {
    const v = String(form.get(key) || "").trim();
    if (v) params.set(key, v);
  }
  const since = dayBound(form.get("since"), false);
  const until = dayBound(form.get("until"), true);
  if (since) params.set("since", since);
  if (until) params.set("until", until);
  updateExportLinks(since, until);
  return params;
}

/** The export buttons take the history search's date range (default: the last 7 days). */
function updateExportLinks(since, until) {
  for (const format of ["csv", "json"]) {
    const p = new URLSearchParams({ format });
    if (since) p.set("from", since);
    if (until) p.set("to", until);
    $(`export-${format}`).href = `/api/calls/export?${p}`;
  }
}

const SCORE_LABELS = {
  resolved: "Resolved", containment: "Contained (no person needed)", ai_disclosure: "AI disclosed",
  verified_before_account_actions: "Verified before account actions", confirmed_before_changes: "Confirmed before changes",
  silence: "Silence", talk_over: "Talk-over", frustration: "Frustration peak", sentiment: "Caller sentiment",
  handoff_reason: "Hand-off reason",
};

function scoreDetails(item) {
  const bits = [];
  if (item.by) bits.push(`by ${item.by}`);
  if (item.seconds != null && typeof item.result !== "number") bits.push(`${item.seconds} s`);
  if (typeof item.result === "number" && item.name === "talk_over") bits.push("s");
  if (item.longest_gap_s != null) bits.push(`longest gap ${item.longest_gap_s} s`);
  if (item.interruptions) bits.push(`${item.interruptions} interruption(s)`);
  if (item.trend) bits.push(item.trend);
  if (item.description) bits.push(item.description);
  return bits.join(", ");
}

/** Jump to the transcript turn a piece of evidence names (turns are numbered from 1 in record order). */
function showTurn(n) {
  const li = $("transcript").children[n - 1];
  if (!li) return;
  li.scrollIntoView({ block: "center" });
  li.classList.add("flash");
  setTimeout(() => li.classList.remove("flash"), 1500);
}

function recordingUrl(id) {
  return `/api/calls/${encodeURIComponent(id)}/recording`;
}

/** The call's recording in the panel's player (caller left, bot and agent right), or that the caller declined it. */
function renderRecording(id, rec) {
  const box = $("recording-box");
  const audio = $("recording-audio");
  state.recording = rec && rec.available ? { id, start: rec.start ? Date.parse(rec.start) : null } : null;
  if (!rec || (!rec.available && !rec.declined)) {
    box.hidden = true;
    audio.removeAttribute("src");
    return;
  }
  box.hidden = false;
  audio.hidden = !rec.available;
  if (rec.available) {
    audio.src = recordingUrl(id);
    const cut = rec.interrupted ? " (cut short: the server stopped during the call)" : "";
    $("recording-note").textContent = `Recording, ${Math.round(rec.duration_s || 0)} s${cut}`;
  } else {
    audio.removeAttribute("src");
    $("recording-note").textContent = "The caller declined the recording: nothing was kept.";
  }
}

/** Seconds into the recording at which a piece of evidence (its ISO time) happened, or null. */
function recordingOffset(time) {
  const rec = state.recording;
  if (!rec || rec.start == null || !time) return null;
  const at = Date.parse(time);
  return Number.isNaN(at) ? null : Math.max(0, Math.round((at - rec.start) / 100) / 10);
}

/** A link into the recording at an evidence's time (``#t=SECONDS``); played in the panel's player. */
function evidenceLink(e) {
  const t = recordingOffset(e.time);
  if (t == null) return null;
  const href = `${recordingUrl(state.recording.id)}#t=${t}`;
  return h("a", {
    href, class: "btn btn-ghost btn-small", title: `Play the recording from ${t} s`,
    onclick: (ev) => {
      ev.preventDefault();
      const audio = $("recording-audio");
      // Already loaded: seek; otherwise the #t= fragment starts the new load there.
      if (audio.readyState >= 1 && audio.currentSrc.split("#")[0] === new URL(href, location.href).href.split("#")[0]) audio.currentTime = t;
      else audio.src = href;
      audio.play().catch(() => {});
    },
  }, `▶ ${t} s`);
}

function renderScorecard(card, notes) {
  const box = $("scorecard");
  if (!card) { box.hidden = true; return; }
  const failed = card.failed || [];
  $("scorecard-title").textContent = failed.length ? `Scorecard: ${failed.length} check(s) failed` : "Scorecard: all checks passed";
  $("scorecard-items").tBodies[0].replaceChildren(...(card.items || []).map((item) => {
    const result = String(item.result);
    const cls = result === "pass" ? "ok" : result === "fail" ? "bad" : "muted";
    const label = SCORE_LABELS[item.name] || item.name.replace(/^rule:/, "Rule: ");
    return h("tr", {},
      h("th", { scope: "row" }, label),
      h("td", {}, h("span", { class: `badge score-${cls}` }, result), " ", h("span", { class: "muted" }, scoreDetails(item))),
      h("td", {}, (item.evidence || []).flatMap((e) => [h("button", {
        type: "button", class: "btn btn-ghost btn-small", title: e.text || "", onclick: () => showTurn(e.turn),
      }, `turn ${e.turn}${e.note ? ` (${e.note})` : ""}`), evidenceLink(e)].filter(Boolean))));
  }));
  renderNotes(notes || []);
  box.hidden = false;
  box.open = failed.length > 0;
}

function renderNotes(notes) {
  $("notes").replaceChildren(...notes.map((n) => h("li", {},
    h("span", { class: "muted small" }, `${n.username}, ${fmtDateTime(n.at)}: `), n.note || "",
    ...(n.tags || []).map((t) => h("span", { class: "chip" }, t)))));
}

async function saveNote(e) {
  e.preventDefault();
  const id = state.detail?.id;
  if (!id) return;
  const form = new FormData($("note-form"));
  const tags = String(form.get("tags") || "").split(",").map((t) => t.trim()).filter(Boolean);
  $("note-msg").textContent = "saving…";
  try {
    await api(`/api/calls/${encodeURIComponent(id)}/notes`, { method: "POST", body: { note: String(form.get("note") || ""), tags } });
    const data = await api(`/api/calls/${encodeURIComponent(id)}`);
    if (state.detail?.id !== id) return;
    renderNotes(data.notes || []);
    $("note-form").reset();
    $("note-msg").textContent = "saved";
  } catch (err) {
    $("note-msg").textContent = err.status === 403 ? "Only supervisors and admins add notes." : `Not saved: ${err.message}`;
  }
}

async function search(offset = 0) {
  const params = searchParams();
  const request = state.history.request + 1; // a newer search wins over one still on its way
  state.history = { params, offset, request };
  const page = new URLSearchParams(params);
  page.set("limit", String(PAGE));
  page.set("offset", String(offset));
  $("results-note").textContent = "searching…";
  let rows;
  let total = null;
  try {
    const { data, headers } = await api(`/api/calls?${page}`, { withHeaders: true });
    rows = Array.isArray(data) ? data : data.calls || data.items || [];
    total = Number(headers.get("X-Total-Count") ?? (Array.isArray(data) ? NaN : data.total));
  } catch (e) {
    if (request === state.history.request) $("results-note").textContent = `Search failed: ${e.message}`;
    return;
  }
  if (request !== state.history.request) return;
  const body = $("results").tBodies[0];
  if (offset === 0) body.replaceChildren();
  for (const r of rows) body.append(resultRow(r));
  const shown = body.rows.length;
  const all = Number.isFinite(total) ? total : null;
  $("results-note").textContent = !shown ? "No calls match."
    : all != null && all > shown ? `${shown} of ${all} calls` : `${shown} call${shown === 1 ? "" : "s"}`;
  $("more").hidden = all != null ? shown >= all : rows.length < PAGE;
  const names = new Set([...$("intent-list").options].map((o) => o.value));
  for (const r of rows) for (const n of r.intents || []) names.add(typeof n === "string" ? n : n.name);
  $("intent-list").replaceChildren(...[...names].sort().map((n) => h("option", { value: n })));
  if (offset === 0) loadStats(params);
}

function resultRow(r) {
  const duration = r.duration_s != null ? r.duration_s : r.end && r.start ? (new Date(r.end) - new Date(r.start)) / 1000 : null;
  const open = () => openCall(r.id, "history");
  return h("tr", {
    tabindex: "0", dataset: { callId: r.id }, onclick: open,
    onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } },
  },
  h("td", { class: "nowrap" }, fmtDateTime(r.start)),
  h("td", {}, h("span", { class: "caller-id" }, r.caller_id || (r.customer_id != null ? `customer #${r.customer_id}` : "unknown"))),
  h("td", {}, h("span", { class: `badge ch-${r.channel}` }, channelName(r.channel))),
  h("td", {}, r.dialled || "–"),
  h("td", { class: "num" }, duration == null ? (r.end ? "–" : "live") : fmtDuration(duration)),
  h("td", {}, intentChips(r.intents)),
  h("td", {}, r.outcome ? h("span", { class: `badge out-${r.outcome}` }, r.outcome) : h("span", { class: "muted" }, r.end ? "–" : "in progress")),
  h("td", {}, r.frustration_max != null ? frustrationBadge({ score: r.frustration_max, explanation: `highest score in the call: ${Number(r.frustration_max).toFixed(2)}` }) : h("span", { class: "muted" }, "–")),
  h("td", {}, r.agent_id || "–"));
}

function hourLabel(hour) {
  if (typeof hour === "number") return { short: pad2(hour), long: `${pad2(hour)}:00` };
  const d = new Date(hour);
  if (Number.isNaN(d.getTime())) return { short: String(hour), long: String(hour) };
  return { short: pad2(d.getHours()), long: d.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" }) };
}

async function loadStats(params) {
  const q = new URLSearchParams();
  for (const k of ["since", "until"]) if (params.get(k)) q.set(k, params.get(k));
  $("charts-range").textContent = "";
  let s;
  try {
    s = await api(`/api/stats${q.size ? `?${q}` : ""}`);
  } catch (e) {
    for (const id of ["chart-hours", "chart-outcomes", "chart-latency", "chart-frustration"]) {
      $(id).replaceChildren(h("p", { class: "nodata" }, `No statistics: ${e.message}`));
    }
    return;
  }
  $("charts-range").textContent = s.since && s.until ? `${fmtDateTime(s.since)} – ${fmtDateTime(s.until)}` : "";
  const hours = (s.calls_per_hour || []).map((x) => {
    const l = hourLabel(x.hour);
    return { label: l.short, value: x.calls, title: `${l.long}: ${x.calls} call${x.calls === 1 ? "" : "s"}` };
  });
  barChart($("chart-hours"), hours, { label: `Calls per hour: ${hours.reduce((a, b) => a + b.value, 0)} calls in ${hours.length} hours` });
  const o = s.outcomes || {};
  const colours = { resolved: "#1f9d4c", handoff: "#1a6fc9", callback_requested: "#7048c9", no_agent: "#a0522d",
    abandoned: "#c92a2a", unresolved: "#e69b00" };
  // Callers nobody could take (no agents configured) are not "handed off": they asked for a callback or left.
  const parts = [
    { label: "resolved by the bot", value: o.resolved || 0, color: colours.resolved },
    { label: "handed off", value: o.handoff || 0, color: colours.handoff },
    { label: "callback requested", value: o.callback_requested || 0, color: colours.callback_requested },
    { label: "no agent", value: o.no_agent || 0, color: colours.no_agent },
    { label: "abandoned", value: o.abandoned || 0, color: colours.abandoned },
    { label: "unresolved", value: o.unresolved || 0, color: colours.unresolved },
  ];
  const other = Object.entries(o).filter(([k]) => !(k in colours)).reduce((a, [, v]) => a + v, 0);
  if (other) parts.push({ label: o.in_progress === other ? "in progress" : "other", value: other, color: "#8a93a3" });
  const total = parts.reduce((a, p) => a + p.value, 0);
  donut($("chart-outcomes"), parts, {
    label: `Outcomes: ${parts.map((p) => `${p.label} ${p.value}`).join(", ")} of ${total}`, centreLabel: "by the bot",
  });
  const lat = s.latency_ms || {};
  histogram($("chart-latency"), lat.histogram || [], {
    label: `Reply latency: median ${fmtMs(lat.p50)}, 95th percentile ${fmtMs(lat.p95)}`, markers: { p50: lat.p50, p95: lat.p95 },
  });
  // One point per hour of the range (gaps where no caller was scored), aligned with the calls per hour.
  const scored = new Map((s.frustration_by_hour || []).map((x) => [String(x.hour), x]));
  const axis = (s.calls_per_hour || []).length ? s.calls_per_hour.map((x) => x.hour) : [...scored.keys()];
  const fr = axis.map((hour) => {
    const x = scored.get(String(hour));
    return { label: hourLabel(hour).short, mean: x ? x.mean : null, max: x ? x.max : null };
  });
  lineChart($("chart-frustration"), fr, {
    label: "Frustration per hour, mean and maximum score",
    thresholds: state.levels ? [{ value: state.levels.annoyed, label: "annoyed" }, { value: state.levels.frustrated, label: "frustrated" }] : [],
  });
}

// ---- views and keyboard -------------------------------------------------------------------------------

function currentView() {
  return document.body.dataset.view || "live";
}

function showView(view) {
  if (state.detail && state.detail.mode !== view) closeDetail(false);
  document.body.dataset.view = view;
  $("view-live").hidden = view !== "live";
  $("view-history").hidden = view !== "history";
  $("view-admin").hidden = view !== "admin";
  $("view-analytics").hidden = view !== "analytics";
  // The wallboard is the live view's tiles and queue board, large, for a screen on the wall (CSS: body[data-view]).
  $("view-live").hidden = view !== "live" && view !== "wallboard";
  for (const v of ["live", "history", "admin", "analytics", "wallboard"]) {
    const tab = $(`tab-${v}`);
    if (v === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (view === "history" && !state.history.params) search(0);
  if (view === "admin") state.admin?.show();
  if (view === "analytics") state.analytics?.show();
}

/** The view a hash names, among those this user may see. */
function viewOf(name) {
  if (name === "history") return "history";
  if ((name === "analytics" || name === "wallboard") && state.analytics) return name;
  return name === "admin" && state.admin ? "admin" : "live";
}

function route() {
  const [name, rest] = location.hash.replace(/^#/, "").split("/");
  const view = viewOf(name);
  showView(view);
  const m = /^call=(.+)$/.exec(rest || "");
  if (m) {
    const id = decodeURIComponent(m[1]);
    if (state.detail?.id !== id) openCall(id, view);
  }
}

function tick() {
  for (const [id, tr] of state.rows) {
    const call = state.live.get(id);
    const cell = tr.querySelector(".duration");
    if (call && cell && !call.ended) cell.textContent = durationOf(call);
  }
  const d = state.detail;
  if (d && !d.ended && $("detail-meta").dataset.start) renderDetailMeta();
  // Waits and time in state count up from the snapshot without rebuilding the board (focus, hover stay).
  const since = (performance.now() - state.boardAt) / 1000;
  for (const node of document.querySelectorAll("#queues [data-base-s], #agents [data-base-s]")) {
    node.textContent = fmtDuration(Number(node.dataset.baseS) + since);
  }
}

function wire() {
  $("logout").addEventListener("click", logout);
  $("detail-close").addEventListener("click", closeDetail);
  $("listen").addEventListener("click", () => startListen("listen"));
  $("whisper").addEventListener("click", () => startListen("whisper"));
  $("takeover").addEventListener("click", () => startListen("takeover"));
  $("listen-stop").addEventListener("click", () => stopListen());
  $("handback").addEventListener("click", handBack);
  $("alerts-clear").addEventListener("click", () => { state.alerts = []; renderAlerts(); });
  $("search").addEventListener("submit", (e) => { e.preventDefault(); search(0); });
  $("search").addEventListener("reset", () => setTimeout(() => search(0), 0));
  $("more").addEventListener("click", () => search(state.history.offset + PAGE));
  $("note-form").addEventListener("submit", saveNote);
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.detail && !e.defaultPrevented) closeDetail();
  });
}

async function main() {
  wire();
  try {
    await loadMe();
  } catch (e) {
    if (e.status !== 401) setConn("offline", `cannot load the user: ${e.message}`);
    return;
  }
  route();
  connect();
  loadBoard().catch(() => {});
  setInterval(tick, 1000);
}

main();
