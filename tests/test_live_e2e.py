"""A real call seen from a dashboard: `voicebot serve` in a child process, a logged-in `/ws/events` client, and the
aiortc test caller saying a request synthesised now (Piper). The dashboard must see the call start, the caller's
turn with its intents, entities and frustration signals, the bot's reply with its decision trace, the live
summary, and the end."""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np
import pytest
from auth_helpers import add_user, cookie
from call_models import CALL_FLOW_MODELS
from websockets.sync.client import connect

from audio.speech import piper_tts, write_wav
from voicebot.client.local_server import ServerProcess
from voicebot.client.webrtc import place_call

pytestmark = pytest.mark.slow

GREETING = "Hello, you're speaking with the automated assistant of Acme Online Store. How can I help?"


def test_a_real_call_streams_to_the_dashboard(tmp_path):
    samples, rate = piper_tts("I ordered a lamp yesterday and I want to know where my order is.",
                              sample_rate=16000, noise_scale=0.0, noise_w_scale=0.0)
    silence = np.zeros(int(0.4 * rate), np.float32)
    wav = write_wav(tmp_path / "say.wav", np.concatenate([silence, samples, silence]), rate)
    events: list[dict] = []
    with ServerProcess(tmp_path / "server", {"call": {"greeting": GREETING}, "dialog": {"seed": 7},
                                                   "models": CALL_FLOW_MODELS}) as server:
        add_user(f"sqlite:///{server.workdir / 'voicebot.db'}", "sup", "supervisor")
        ws_url = server.url.replace("http://", "ws://") + f"/ws/events?token={cookie(server.url, 'sup')}"
        with connect(ws_url) as ws:
            hello = json.loads(ws.recv(timeout=10))
            ended = threading.Event()

            def read() -> None:
                while not ended.is_set():
                    event = json.loads(ws.recv(timeout=60))
                    events.append(event)
                    if event["type"] == "call.ended":
                        ended.set()

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            asyncio.run(place_call(server.url, wav, tail_s=2.0))
            assert ended.wait(30), [e["type"] for e in events]
            reader.join(5)

    assert hello["type"] == "hello" and hello["calls"] == []
    call_id = events[0]["call_id"]
    assert events[0]["type"] == "call.started" and events[0]["call"]["channel"] == "webrtc"
    assert {e.get("call_id") for e in events} == {call_id}
    turns = [e["turn"] for e in events if e["type"] == "turn"]
    assert [t["speaker"] for t in turns][:3] == ["bot", "caller", "bot"]
    greeting, caller, reply = turns[:3]
    assert greeting["text"] == GREETING and greeting["extra"]["kind"] == "greeting"
    assert "order_status" in [i["name"] for i in caller["intents"]]
    assert {"type": "date", "text": "yesterday"} in [{k: e[k] for k in ("type", "text")}
                                                      for e in caller["extra"]["entities"]]
    assert caller["extra"]["signals"]["frustration_level"] in ("calm", "annoyed", "frustrated")
    trace = reply["extra"]["trace"]
    assert trace["nlu"]["scores"]["order_status"] > 0.5 and isinstance(trace["steps"], list)
    latencies = [e["fields"]["latency_ms"] for e in events
                 if e["type"] == "turn.updated" and e["turn_id"] == reply["id"] and "latency_ms" in e["fields"]]
    assert latencies and latencies[0] > 0
    summaries = [e["call"] for e in events if e["type"] == "call.updated"]
    last = summaries[-1]
    assert last["intents"] == ["order_status"] and last["turns"] >= 3
    assert last["last_latency_ms"] == round(latencies[0], 1)
    assert last["frustration"]["level"] == caller["extra"]["signals"]["frustration_level"]
    assert events[-1]["type"] == "call.ended" and events[-1]["outcome"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
