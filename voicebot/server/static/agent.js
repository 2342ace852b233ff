"use strict";
const $ = (id) => document.getElementById(id);
const agentSelect = $("agent");
const params = new URLSearchParams(location.search);
let pc = null;
let answering = null;  // call id the page already answered
// This page's id, given to its phone and its events websocket: the server closes the phone when the socket goes.
const pageId = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
window.remoteLoud = 0;  // 100 ms windows of audible sound from the call (a level meter; tests read it)

async function usePhone() {
  const id = agentSelect.value;
  if (!id) return;
  const stream = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: params.get("raw") !== "1",
    noiseSuppression: params.get("raw") !== "1", autoGainControl: params.get("raw") !== "1"}});
  if (pc) pc.close();
  pc = new RTCPeerConnection();
  pc.addTransceiver(stream.getAudioTracks()[0], {direction: "sendrecv"});
  pc.ontrack = (event) => {
    const remote = event.streams[0] || new MediaStream([event.track]);
    $("remote").srcObject = remote;
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    ctx.createMediaStreamSource(remote).connect(analyser);
    const data = new Float32Array(analyser.fftSize);
    setInterval(() => {
      analyser.getFloatTimeDomainData(data);
      let sum = 0;
      for (const x of data) sum += x * x;
      if (Math.sqrt(sum / data.length) > 0.02) window.remoteLoud += 1;
    }, 100);
  };
  pc.onconnectionstatechange = () => { $("phonestatus").textContent = "phone: " + pc.connectionState; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 2000);
  });
  const answer = await api("/api/agents/" + encodeURIComponent(id) + "/phone",
    {sdp: pc.localDescription.sdp, type: pc.localDescription.type, page: pageId});
  await pc.setRemoteDescription(answer);
}

async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  if (res.status === 401) {  // the session ended (expired, logged out elsewhere): log in again, then come back
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("login required");
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.detail || res.statusText);
  return data;
}

async function signOut() {
  await fetch("/api/logout", {method: "POST"}).catch(() => {});
  location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
}

function text(el, value) { el.textContent = value == null || value === "" ? "—" : String(value); }

function intents(list) {
  return (list || []).map((t) => t.intent + (t.outcome ? " (" + t.outcome + ")" : "")).join(", ");
}

function showCall(current) {
  const box = $("callbox");
  if (!current || !current.handoff) { box.hidden = true; $("nocall").hidden = false; text($("callstatus"), ""); return; }
  const h = current.handoff;
  box.hidden = false; $("nocall").hidden = true;
  if (current.call_id !== shownCall) {
    shownCall = current.call_id; pendingAction = null;
    $("nbaconfirm").hidden = true; $("nbaresult").textContent = ""; $("nbaresult").className = "muted";
    showLive(); showCard(current.call_id); showAssist(current.call_id);
  }
  const ringingHere = pc && current.status === "ringing";
  if (ringingHere && $("autoanswer").checked && answering !== current.call_id) {
    answering = current.call_id;
    act("/answer", {});
  }
  $("callstatus").textContent = "(" + current.status + ")";
  text($("summary"), h.summary);
  text($("reason_text"), h.reason_text || h.reason);
  text($("caller"), (h.customer && h.customer.name) || h.caller_id);
  text($("verified"), h.customer ? (h.customer.verified ? "verified" + (h.customer.verified_by ? " by " + h.customer.verified_by : "") : "not verified") : "unknown caller");
  const f = h.frustration || {};
  const fr = $("frustration");
  fr.className = f.level || "";
  text(fr, f.level ? f.level + " (max " + f.max + ")" + (f.explanation ? ": " + f.explanation : "") : "");
  text($("done"), intents(h.intents_done));
  text($("pending"), intents(h.intents_pending));
  text($("slots"), Object.entries(h.slots || {}).map(([k, v]) => k + ": " + v).join(", "));
  const tr = $("transcript");
  tr.replaceChildren(...(h.transcript || []).map((t) => {
    const p = document.createElement("p");
    p.className = t.speaker;
    const b = document.createElement("b");
    b.textContent = t.speaker + ": ";
    p.append(b, document.createTextNode(t.text));
    return p;
  }));
}

// Why the agent's last call ended (the caller hung up, their line dropped...), until they set their state again.
function showEnded(ended) {
  $("callended").hidden = !ended;
  $("callended").textContent = ended ? "Your call ended: " + ended.text : "";
}

// Only the buttons that apply now (the server says which: GET /api/agents/{id} "controls").
function showControls(controls) {
  document.querySelectorAll("[data-control]").forEach((el) => { el.hidden = !controls.includes(el.dataset.control); });
}

// The bridged call's turns as they are transcribed, from the events websocket (an agent gets only her calls').
const liveTurns = new Map();  // call id -> turns
let shownCall = null;  // the call whose card and live transcript are on the page

function showLive() {
  const turns = liveTurns.get(shownCall) || [];
  if (!turns.length) { $("live").innerHTML = '<p class="muted">Nothing said yet.</p>'; return; }
  $("live").replaceChildren(...turns.map((t) => {
    const p = document.createElement("p");
    p.className = t.speaker + ((t.extra || {}).action ? " action" : "");
    const b = document.createElement("b");
    b.textContent = (t.speaker === "agent" ? "you" : t.speaker) + ": ";
    p.append(b, document.createTextNode(t.text));
    return p;
  }));
}

// The alerts a supervisor assigned to this user (GET /api/alerts gives an agent only those), kept by id.
const alerts = new Map();

async function loadAlerts() {
  try {
    const list = await api("/api/alerts?open=1");
    alerts.clear();
    for (const a of list.alerts) alerts.set(a.id, a);
    showAlerts();
  } catch (e) { $("error").textContent = e.message; }
}

function showAlerts() {
  const open = [...alerts.values()].filter((a) => !a.resolved_at)
    .sort((a, b) => (b.raised_at || "").localeCompare(a.raised_at || ""));
  $("alerts-empty").hidden = open.length > 0;
  $("alerts").replaceChildren(...open.map((a) => {
    const li = document.createElement("li");
    li.dataset.alert = a.id;
    const what = document.createElement("span");
    what.textContent = a.message + " (assigned by " + (a.assigned_by || "a supervisor") + ") ";
    li.append(what);
    if (a.acked_by) {
      li.append(Object.assign(document.createElement("span"), {className: "acked", textContent: "Acknowledged by " + a.acked_by}));
    } else {
      const ack = Object.assign(document.createElement("button"), {className: "alert-ack", textContent: "Acknowledge"});
      ack.addEventListener("click", async () => {
        try { alerts.set(a.id, await api("/api/alerts/" + encodeURIComponent(a.id) + "/ack", {})); showAlerts(); }
        catch (e) { $("error").textContent = e.message; }
      });
      li.append(ack);
    }
    return li;
  }));
}

function listen() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss" : "ws") + "://" + location.host +
    "/ws/events?page=" + pageId);
  ws.onopen = loadAlerts;  // what changed while the socket was down
  ws.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    // The server closes the phone when this socket goes away (kept through a call): connect it again if it did.
    if (ev.type === "hello") {
      if (pc && ev.phone === false) usePhone().catch((e) => { $("error").textContent = e.message; });
      return;
    }
    if (ev.type === "ping") { ws.send('{"type":"pong"}'); return; }  // this page is still here
    if (ev.type === "alert.updated" && ev.alert) { alerts.set(ev.alert.id, ev.alert); showAlerts(); return; }
    if (ev.type === "alert.withdrawn") { alerts.delete(ev.alert_id); showAlerts(); return; }  // given to someone else
    if (ev.type !== "turn" || !ev.turn || (ev.turn.extra || {}).kind !== "bridged") return;
    if (!liveTurns.has(ev.call_id)) liveTurns.set(ev.call_id, []);
    liveTurns.get(ev.call_id).push(ev.turn);
    if (ev.call_id === shownCall) {
      showLive();
      if (ev.turn.speaker === "caller" || (ev.turn.extra || {}).action) showAssist(shownCall);
    }
  };
  ws.onclose = () => setTimeout(listen, 2000);
}

// Everything that follows what the caller says: asked again after each caller turn and each action run.
function showAssist(callId) { showSuggestions(callId); showSummary(callId); showNextAction(callId); }

// The running summary: the hand-off, the requests and details heard, the caller's key sentences, actions run.
async function showSummary(callId) {
  const box = $("running");
  try {
    const s = await api("/api/agents/" + encodeURIComponent(agentSelect.value) + "/summary");
    if (callId !== shownCall) return;
    box.replaceChildren(Object.assign(document.createElement("p"), {textContent: s.summary.text}));
    box.dataset.turns = s.summary.caller_turns;
  } catch (e) { if (callId === shownCall) box.textContent = e.message; }
}

// The next best action: a domain action with its details (editable), run on the caller's account after a confirm.
let pendingAction = null;  // {action, slots, label} waiting for the agent's confirm

async function showNextAction(callId) {
  const box = $("nba");
  try {
    const n = await api("/api/agents/" + encodeURIComponent(agentSelect.value) + "/next-action");
    if (callId !== shownCall) return;
    if (!n.next) { box.innerHTML = '<p class="muted">no action suggested</p>'; return; }
    const a = n.next;
    const title = document.createElement("p");
    title.innerHTML = "<b></b> <span class=muted></span>";
    title.children[0].textContent = a.label;
    title.children[1].textContent = "(" + a.action + ", because " + a.because + ")";
    const fields = document.createElement("p");
    for (const slot of [...Object.keys(a.slots), ...a.missing]) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.dataset.slot = slot; input.value = a.slots[slot] || ""; input.size = 16; input.maxLength = 200;
      label.append(slot.replace(/_/g, " ") + " ", input);
      fields.append(label);
    }
    const run = document.createElement("button");
    run.id = "nbarun"; run.className = "go"; run.textContent = a.label;
    run.disabled = !n.verified;
    run.title = n.verified ? "Run it on the caller's account (you confirm first)" : "the caller is not verified";
    run.addEventListener("click", () => {
      const slots = {};
      fields.querySelectorAll("input").forEach((i) => { slots[i.dataset.slot] = i.value; });
      pendingAction = {action: a.action, slots, label: a.label};
      $("nbaquestion").textContent = "Run “" + a.label + "” on the caller's account as you? " +
        Object.entries(slots).map(([k, v]) => k.replace(/_/g, " ") + ": " + (v || "—")).join(", ");
      $("nbaconfirm").hidden = false;
    });
    box.replaceChildren(title, fields, run);
  } catch (e) { if (callId === shownCall) box.textContent = e.message; }
}

async function runAction() {
  const todo = pendingAction;
  $("nbaconfirm").hidden = true;
  pendingAction = null;
  if (!todo) return;
  const out = $("nbaresult");
  try {
    const r = await api("/api/agents/" + encodeURIComponent(agentSelect.value) + "/action",
      {action: todo.action, slots: todo.slots});
    out.className = r.outcome === "ok" ? "ok" : "muted";
    out.textContent = r.text;
    showCard(shownCall);  // the action may have changed what the card shows
  } catch (e) { out.className = ""; out.textContent = e.message; }
}

// Knowledge entries matching what the caller said last, asked again after each of the caller's turns.
async function showSuggestions(callId) {
  const box = $("suggest");
  try {
    const s = await api("/api/agents/" + encodeURIComponent(agentSelect.value) + "/suggestions");
    if (callId !== shownCall) return;
    if (!s.knowledge.length) { box.innerHTML = '<p class="muted">no matching knowledge</p>'; return; }
    box.replaceChildren(...s.knowledge.flatMap((k) => {
      const q = document.createElement("p");
      q.innerHTML = "<b></b> <span class=muted></span>";
      q.children[0].textContent = k.entry_id;
      q.children[1].textContent = "(" + Math.round(k.score * 100) + " %, \u201c" + k.question + "\u201d)";
      const a = document.createElement("p");
      a.className = "answer";
      a.textContent = k.text || k.answer;
      return [q, a];
    }));
  } catch (e) { if (callId === shownCall) box.textContent = e.message; }
}

function cardSection(title, rows) {
  const out = [];
  const h = document.createElement("h3");
  h.textContent = title;
  out.push(h);
  if (!rows.length) { const p = document.createElement("p"); p.className = "muted"; p.textContent = "none"; out.push(p); }
  else {
    const ul = document.createElement("ul");
    for (const r of rows) { const li = document.createElement("li"); li.textContent = r; ul.append(li); }
    out.push(ul);
  }
  return out;
}

async function showCard(callId) {
  const box = $("card");
  try {
    const c = await api("/api/agents/" + encodeURIComponent(agentSelect.value) + "/card");
    if (!c.verified) { box.innerHTML = '<p class="muted">not verified</p>'; return; }
    const k = c.card;
    const day = (iso) => iso ? iso.slice(0, 10) : "—";
    const name = document.createElement("p");
    name.innerHTML = "<b></b>";
    name.firstChild.textContent = k.name + (k.city ? ", " + k.city : "") + " (verified)";
    box.replaceChildren(name,
      ...cardSection("Orders", k.orders.map((o) => o.number + ": " + o.status + ", " + day(o.placed_at) + ", " + o.total)),
      ...cardSection("Open returns", k.open_returns.map((r) => r.rma + " for order " + r.order + ": " + r.status)),
      ...cardSection("Subscription", k.subscriptions.map((s) => s.plan + ": " + s.status + ", " + s.monthly_price + "/month" + (s.renews_at ? ", renews " + day(s.renews_at) : ""))),
      ...cardSection("Past contacts", k.past_contacts.map((p) => day(p.started_at) + " " + p.channel + " (" + (p.outcome || "—") + "): " + (p.summary || "no summary"))));
  } catch (e) { if (callId === shownCall) box.textContent = e.message; }
}

// The wrap-up form, prefilled by the bot once per call when the agent goes to wrap-up.
let wrapCall = null;

async function showWrapUp(state) {
  const box = $("wrapup");
  if (state !== "wrap_up") { box.hidden = true; return; }
  box.hidden = false;
  try {
    const w = await api("/api/agents/" + encodeURIComponent(agentSelect.value) + "/wrapup");
    if (w.call_id === wrapCall) return;
    wrapCall = w.call_id;
    text($("wrapcall"), "(call " + w.call_id + ")");
    $("disposition").value = w.form.disposition;
    $("wrapintents").value = w.form.intents.join(", ");
    $("wrapsummary").value = w.form.summary;
    $("wrapstatus").textContent = "proposed by the bot: edit and save";
  } catch (e) { $("wrapstatus").textContent = e.message; }
}

async function saveWrapUp() {
  try {
    await api("/api/agents/" + encodeURIComponent(agentSelect.value) + "/wrapup", {
      disposition: $("disposition").value, summary: $("wrapsummary").value,
      intents: $("wrapintents").value.split(",").map((x) => x.trim()).filter((x) => x)});
    $("wrapstatus").textContent = "saved";
  } catch (e) { $("wrapstatus").textContent = e.message; }
}

async function refresh() {
  const id = agentSelect.value;
  if (!id) return;
  try {
    const a = await api("/api/agents/" + encodeURIComponent(id));
    $("state").textContent = a.state + (a.pause_reason ? " (" + a.pause_reason + ")" : "");
    showControls(a.controls || []);
    showWrapUp(a.state);
    showCall(a.current);
    showEnded(a.current ? null : a.ended);
    const q = await api("/api/queues");
    $("queues").replaceChildren(...q.queues.map((qu) => {
      const row = document.createElement("tr");
      const s = qu.stats;
      row.innerHTML = "<th></th><td></td>";
      row.children[0].textContent = qu.name;
      row.children[1].textContent = qu.waiting.length + " waiting, longest " + Math.round(s.longest_wait_s) + " s; answered " + s.answered + ", abandoned " + s.abandoned + (s.service_level == null ? "" : ", service level " + Math.round(s.service_level * 100) + " %");
      return row;
    }));
    $("error").textContent = "";
  } catch (e) { $("error").textContent = e.message; }
}

async function act(path, body) {
  try { await api("/api/agents/" + encodeURIComponent(agentSelect.value) + path, body); $("error").textContent = ""; }
  catch (e) { $("error").textContent = e.message; }
  refresh();
}

document.querySelectorAll("button[data-state]").forEach((b) => b.addEventListener("click", () =>
  act("/state", {state: b.dataset.state, reason: b.dataset.state === "paused" ? ($("reason").value || "break") : null})));
$("savewrap").addEventListener("click", saveWrapUp);
$("nbayes").addEventListener("click", runAction);
$("nbano").addEventListener("click", () => { pendingAction = null; $("nbaconfirm").hidden = true; });
$("ready").addEventListener("click", () => act("/state", {state: "available", reason: null}));
$("accept").addEventListener("click", () => act("/accept", {}));
$("answer").addEventListener("click", () => act("/answer", {}));
$("usephone").addEventListener("click", () => usePhone().catch((e) => { $("error").textContent = e.message; }));
$("decline").addEventListener("click", () => act("/decline", {}));
$("signout").addEventListener("click", signOut);
$("hangup").addEventListener("click", () => act("/hangup", {}));
agentSelect.addEventListener("change", () => { localStorage.setItem("voicebot-agent", agentSelect.value); refresh(); });

(async () => {
  try {
    const list = await api("/api/agents");
    for (const a of list.agents) {
      const o = document.createElement("option");
      o.value = a.id; o.textContent = a.name + " (" + a.id + ")";
      agentSelect.append(o);
    }
    const saved = params.get("agent") || localStorage.getItem("voicebot-agent");
    if (saved && list.agents.some((a) => a.id === saved)) agentSelect.value = saved;
    $("autoanswer").checked = params.get("autoanswer") === "1";
  } catch (e) { $("error").textContent = e.message; }
  listen();
  refresh();
  setInterval(refresh, 1000);
})();
