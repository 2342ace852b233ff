// Caller page: one WebRTC call to the bot (pipecat SmallWebRTC signaling) and its live transcript.
// The keypad sends {"type": "dtmf", "key"} over the call's data channel: to the bot (order numbers, PINs)
// or, once the caller is with the agent queue, to the queue (e.g. its callback key).
// No external scripts: the page works on a network without internet access.
"use strict";

const callButton = document.getElementById("call");
const hangupButton = document.getElementById("hangup");
const statusLine = document.getElementById("status");
const transcript = document.getElementById("transcript");
const botAudio = document.getElementById("bot-audio");
const keypad = document.getElementById("keypad");

let pc = null;
let keys = null;  // the data channel the keypad sends on
let stream = null;
let callId = null;
let callKey = null;  // opens this call's record (GET /api/calls/ID with X-Call-Key)
let poller = null;

// ?raw=1 turns off the browser's echo cancellation and noise suppression (test rigs with a fake mic).
const raw = new URLSearchParams(location.search).get("raw") === "1";
// A caller ID only from the embedding site, signed for this server (voicebot token caller); else anonymous.
const callerToken = new URLSearchParams(location.search).get("caller_token");

function setStatus(text) { statusLine.textContent = text; }

function waitForIceGathering(peer) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (peer.iceGatheringState === "complete") { peer.removeEventListener("icegatheringstatechange", done); resolve(); } };
    peer.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 2000);  // loopback and LAN candidates arrive at once; don't hang on STUN
  });
}

function renderTurns(turns) {
  transcript.replaceChildren(...turns.filter((t) => t.text).map((t) => {
    const li = document.createElement("li");
    li.className = t.speaker;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = t.speaker === "caller" ? "You" : t.speaker === "agent" ? "Agent" : "Assistant";
    li.append(who, document.createTextNode(t.text));
    return li;
  }));
}

async function refreshTranscript() {
  if (!callId) return null;
  // The caller is not logged in: the key the server gave with its answer opens this one call's record.
  const res = await fetch(`/api/calls/${encodeURIComponent(callId)}`, { headers: { "X-Call-Key": callKey || "" } });
  if (!res.ok) return null;
  const record = await res.json();
  renderTurns(record.turns || []);
  if (record.end) {
    setStatus(`Call ended (${record.outcome})`);
    stopPolling();
  }
  return record;
}

function startPolling() { stopPolling(); poller = setInterval(() => refreshTranscript().catch(() => {}), 700); }
function stopPolling() { if (poller) { clearInterval(poller); poller = null; } }

async function call() {
  callButton.disabled = true;
  transcript.replaceChildren();
  setStatus("Asking for the microphone…");
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: raw ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false } : true,
    });
  } catch (err) {
    setStatus(`No microphone: ${err.message}`);
    callButton.disabled = false;
    return;
  }
  pc = new RTCPeerConnection();
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendrecv" });
  keys = pc.createDataChannel("keys");
  keys.onmessage = (event) => {
    // pipecat says so when the server ends the call (e.g. the agent hung up).
    try {
      const message = JSON.parse(event.data);
      if (message.type === "signalling" && message.message && message.message.type === "peerLeft") endCall(false);
    } catch (err) { /* not for us */ }
  };
  pc.ontrack = (event) => { botAudio.srcObject = event.streams[0] || new MediaStream([event.track]); };
  pc.onconnectionstatechange = () => {
    const state = pc ? pc.connectionState : "closed";
    if (state === "connected") { setStatus("Connected"); keypad.hidden = false; }
    if (state === "failed" || state === "closed" || state === "disconnected") endCall(false);
  };
  setStatus("Connecting…");
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    const res = await fetch("/api/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        sdp: pc.localDescription.sdp, type: pc.localDescription.type,
        ...(callerToken ? { request_data: { caller_token: callerToken } } : {}),
      }),
    });
    if (!res.ok) throw new Error((await res.json()).detail || res.statusText);
    const answer = await res.json();
    callId = answer.pc_id;
    callKey = answer.call_key;
    document.body.dataset.callId = callId;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  } catch (err) {
    setStatus(`Call failed: ${err.message}`);
    endCall(false);
    return;
  }
  hangupButton.disabled = false;
  startPolling();
}

function endCall(byCaller) {
  keypad.hidden = true;
  keys = null;
  if (pc) { pc.close(); pc = null; }
  if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
  hangupButton.disabled = true;
  callButton.disabled = false;
  if (byCaller) setStatus("Hung up");
  // One last look at the record: the server closes it a moment after the line drops.
  setTimeout(() => refreshTranscript().catch(() => {}), 1000);
}

function press(key) {
  if (keys && keys.readyState === "open") keys.send(JSON.stringify({ type: "dtmf", key }));
}

callButton.addEventListener("click", call);
// Closing the page hangs up at once (otherwise the server notices only when the connection times out).
window.addEventListener("pagehide", () => { if (pc) endCall(true); });
keypad.addEventListener("click", (event) => {
  const key = event.target.dataset && event.target.dataset.key;
  if (key) press(key);
});
hangupButton.addEventListener("click", () => endCall(true));
