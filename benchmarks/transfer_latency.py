"""Warm-transfer latency: from the bot's decision to hand off until the caller hears the agent, with an idle
baresip agent in auto-answer mode; prints JSON.

    python benchmarks/transfer_latency.py [--runs 5] [--sequential] [--summary "Caller Jane Doe, ..."]
    python benchmarks/transfer_latency.py --caller webrtc [--runs 5]

Real parts: our SIP user agent as the bot and as the caller, baresip as the agent's phone (auto-answer,
sending a 3000 Hz tone as its voice), the process's Piper voice for the hand-off sentence and the whisper
(loaded as ``voicebot serve`` loads it, through SharedModels and TransferService, TTS cache emptied before
each run), the ACD and LiveQueue. As in ``voicebot serve``, at the decision the bot starts synthesising and
playing its hand-off sentence (``--announcement``, the retail domain's) to the caller and at the same time
queues the call (``transfer_call(..., caller_ready=...)``): the agent is rung and hears the whisper while the
caller hears the sentence; the bridge waits for both. ``--sequential`` measures the old order (sentence
first, then the queue, with the whisper at the callers' pace). Per run:

- ``announcement_end_s``: decision -> the hand-off sentence has played out to the caller;
- ``dial_s``: decision -> the agent's leg answered (INVITE, baresip auto-answers at once);
- ``whisper_s``: answered -> bridged (synthesising and playing the whisper, waiting for the sentence);
- ``decision_to_agent_audio_s``: decision -> the agent's voice at the caller (the total).

The whisper is built from a hand-off packet like the dialog engine's (``--summary`` whispers that text
instead).

``--caller webrtc`` measures a browser caller through the whole product instead: ``voicebot serve`` in a child
process (SIP on, to ring the same baresip agent), an aiortc caller (as a browser: Opus over WebRTC) that says
"I want to speak to a human" (espeak-ng) after the greeting. The decision is the start of the bot's hand-off
turn in the call record (stored the moment the dialog decides); per run:

- ``announcement_end_s``: decision -> the end of that turn (its audio has been sent to the caller);
- ``decision_to_agent_audio_s``: decision -> the agent's tone at the caller (the total);
- ``speech_end_to_agent_audio_s``: the end of the caller's request -> the agent's tone (what the caller waits).

Both clocks are the same machine's.

Needs baresip (apt-get install baresip-core). The machine is shared, so numbers are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from dialogs.manager.handoff import REASONS, HandoffCustomer, HandoffFrustration, HandoffIntent, HandoffPacket
from telephony.call import CallLeg
from telephony.config import SipConfig
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.live import LiveQueue, _play_once
from telephony.queue.runner import QueueRunner
from telephony.sip.ua import UserAgent
from voicebot.transfer.request import queue_request_from_packet

AGENT_HZ = 3000
ANNOUNCEMENT = "Connecting you to a colleague; no need to repeat."  # the retail domain's `handoff`
PACKET = HandoffPacket(
    summary="Caller Jane Doe, verified. Wants to cancel her subscription after a double charge. Frustrated. "
    "Handed over: asked for a person.",
    reason="caller_request", reason_text=REASONS["caller_request"], queue="general", priority=0, channel="sip",
    call_id=None, caller_id=None, contact_id=None,
    customer=HandoffCustomer(id=1, name="Jane Doe", verified=True, verified_by="postcode"),
    intents_done=(), intents_pending=(HandoffIntent("cancel_subscription", "active", None, {}),), slots={},
    transcript=(), frustration=HandoffFrustration(last=0.8, max=0.8, level="frustrated", explanation=None),
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_agent_voice(pcm: bytes, rate: int = 16000) -> bool:
    x = np.frombuffer(pcm, np.int16).astype(np.float64)
    if len(x) < rate // 100 or np.sqrt((x**2).mean()) < 500:
        return False
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), 2048 * rate // 16000))
    return abs(np.argmax(spectrum) * 16000 / 2048 - AGENT_HZ) < 100


def start_agent(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    rate = 8000
    t = np.arange(30 * rate) / rate
    sf.write(str(folder / "agent.wav"), (np.sin(2 * np.pi * AGENT_HZ * t) * 8000).astype(np.int16), rate)
    cfg = folder / "agent"
    cfg.mkdir()
    (cfg / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{port}\n"
        "audio_player aubridge,nullplay\naudio_alert aubridge,nullplay\n"
        f"audio_source aufile,{folder / 'agent.wav'}\nnet_interface 127.0.0.1\n"
        "module_path /usr/lib/baresip/modules\n"
        + "".join(f"module {m}.so\n" for m in ("g711", "aufile", "aubridge", "account", "menu"))
    )
    (cfg / "accounts").write_text(f"<sip:alice@127.0.0.1:{port}>;regint=0;answermode=auto\n")
    proc = subprocess.Popen(["baresip", "-f", str(cfg), "-t", "3600"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


async def measure(args: argparse.Namespace, agent_port: int, service: Any) -> list[dict[str, float]]:
    loop = asyncio.get_running_loop()
    marks: dict[str, float] = {}
    handed: dict[str, float] = {}
    request = queue_request_from_packet(PACKET)
    if args.summary:
        request = replace(request, whisper=args.summary)

    async def announce(leg: CallLeg) -> None:
        await _play_once(leg, await service.speak(args.announcement))
        marks["announced"] = loop.time()

    async def bot(leg: CallLeg) -> None:
        await leg.answer()
        await asyncio.sleep(0.3)  # the caller's side is listening
        service.shared._tts_cache.clear()  # each caller's whisper is new text: measure cold synthesis
        handed["t"] = loop.time()
        if args.sequential:
            await announce(leg)
            await live.transfer_call(leg, request)
            return
        ready = asyncio.Event()
        saying = asyncio.ensure_future(announce(leg))
        saying.add_done_callback(lambda _task: ready.set())
        await live.transfer_call(leg, request, caller_ready=ready)

    def on_offer(event: str, _call_id: str, _agent_id: str) -> None:
        marks.setdefault(event, loop.time())

    def sip(base: int) -> SipConfig:
        return SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, rtp_port_min=base,
                         rtp_port_max=base + 99)

    server, phone = UserAgent(sip(39000), on_call=bot), UserAgent(sip(39100))
    await server.start()
    await phone.start()
    live = LiveQueue(server, service.speak)
    if not args.sequential:
        live.speak_whisper = service.speak_whisper
    live.on_offer = on_offer
    agents = [AgentConfig(id="alice", contact=f"sip:alice@127.0.0.1:{agent_port}", logged_in=True)]
    runner = QueueRunner.on_loop(agents, [QueueConfig(name="general", wrap_up=0, agent_timeout=10)], live)
    live.attach(runner)
    runs = []
    try:
        for _ in range(args.runs):
            marks.clear()
            handed.clear()
            heard: dict[str, float] = {}
            leg = await phone.dial(f"sip:queue@127.0.0.1:{server.transport.udp_address[1]}")
            streak: list[float] = []

            def on_audio(pcm: bytes, heard: dict[str, float] = heard, streak: list[float] = streak) -> None:
                # Three frames in a row: a fricative of the bot's sentence is not the agent's 3000 Hz tone.
                if "t" in heard:
                    return
                if not is_agent_voice(pcm):
                    streak.clear()
                    return
                streak.append(loop.time())
                if len(streak) >= 3:
                    heard["t"] = streak[0]

            leg.add_sink(on_audio)
            deadline = loop.time() + 30
            while "t" not in heard and loop.time() < deadline:
                await asyncio.sleep(0.01)
            await leg.hangup()
            while runner.acd.agent_state("alice") != "available":
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            if "t" not in heard or any(k not in marks for k in ("answered", "connected", "announced")):
                runs.append({"failed": 1.0})
                continue
            t0 = handed["t"]
            runs.append({
                "announcement_end_s": round(marks["announced"] - t0, 3),
                "dial_s": round(marks["answered"] - t0, 3),
                "whisper_s": round(marks["connected"] - marks["answered"], 3),
                "decision_to_agent_audio_s": round(heard["t"] - t0, 3),
            })
    finally:
        await live.close()
        await runner.close()
        await server.stop()
        await phone.stop()
    return runs


async def webrtc_call(base: str, request: np.ndarray) -> tuple[str, float | None, float]:
    """One browser-like call: the request after the greeting, then listen for the agent's tone. Returns the
    call id, when (epoch seconds) the caller first heard the agent, and when its request ended."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from voicebot.client.webrtc import FilePlayer, http_json

    player = FilePlayer(request)
    pc = RTCPeerConnection()
    pc.addTransceiver(player, direction="sendrecv")
    heard: dict[str, float] = {}
    last_loud: dict[str, float] = {}

    async def listen(track: Any) -> None:
        streak: list[float] = []
        try:
            while "agent" not in heard:
                frame = await track.recv()
                now = time.time()
                pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0].astype(np.int16)
                if np.sqrt((pcm.astype(np.float64) ** 2).mean()) > 200:
                    last_loud["t"] = now
                # Three frames in a row: a fricative of the bot's sentence is not the agent's 3000 Hz tone.
                if not is_agent_voice(pcm.tobytes(), frame.sample_rate):
                    streak.clear()
                    continue
                streak.append(now - frame.samples / frame.sample_rate)
                if len(streak) >= 3:
                    heard["agent"] = streak[0]
        except Exception:  # the call ended
            return

    tasks: list[asyncio.Task[None]] = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(listen(track))))
    await pc.setLocalDescription(await pc.createOffer())
    answer = await asyncio.to_thread(http_json, "POST", f"{base}/api/offer",
                                    {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    started = time.time()
    while time.time() - last_loud.get("t", time.time()) < 0.8 and time.time() - started < 20:  # the greeting
        await asyncio.sleep(0.02)
    player.play()
    while not player.finished.is_set():
        await asyncio.sleep(0.01)
    spoken_end = time.time()
    while "agent" not in heard and time.time() - spoken_end < 30:
        await asyncio.sleep(0.01)
    await pc.close()
    for task in tasks:
        task.cancel()
    return answer["pc_id"], heard.get("agent"), spoken_end


def measure_webrtc(args: argparse.Namespace, agent_port: int, folder: Path) -> list[dict[str, float]]:
    """Runs of a browser caller through ``voicebot serve`` (see the module docstring)."""
    import urllib.parse
    import urllib.request
    from datetime import datetime

    from sqlalchemy import create_engine

    from audio.speech import espeak_ng
    from voicebot.client.local_server import ServerProcess
    from voicebot.users import UserStore

    def get(url: str, headers: dict[str, str]) -> Any:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as res:
            return json.loads(res.read())

    speech, _ = espeak_ng("I want to speak to a human.", rate=150, sample_rate=48000)
    request = (speech * 20000).astype(np.int16)
    sip = free_port()
    config = {
        "call": {"greeting": "Hello, how can I help?"},
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{sip}", "listen_tcp": None,
                "rtp_port_min": 39200, "rtp_port_max": 39299},
        "agents": [{"id": "alice", "name": "Alice", "contact": f"sip:alice@127.0.0.1:{agent_port}",
                    "logged_in": True}],
        "queues": [{"name": "general", "wrap_up": 0, "agent_timeout": 10}],
    }
    runs = []
    with ServerProcess(folder / "server", config) as server:
        UserStore(create_engine(server.config["database"]["url"])).add("bench", "supervisor", "bench-password")
        login = urllib.request.Request(f"{server.url}/api/login", method="POST",
                                       data=json.dumps({"username": "bench", "password": "bench-password"}).encode(),
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(login, timeout=10) as res:
            headers = {"Authorization": f"Bearer {json.loads(res.read())['token']}"}
        for _ in range(args.runs):
            call_id, agent_at, spoken_end = asyncio.run(webrtc_call(server.url, request))
            record: dict[str, Any] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not record.get("end"):
                time.sleep(0.3)
                record = get(f"{server.url}/api/calls/{urllib.parse.quote(call_id, safe='')}", headers)
            while time.monotonic() < deadline and get(f"{server.url}/api/agents", headers)["agents"][0]["state"] != "available":
                time.sleep(0.2)
            said = [t for t in record.get("turns", []) if t["speaker"] == "bot" and t.get("extra", {}).get("kind") == "reply"]
            if agent_at is None or not said or not said[-1]["end"]:
                runs.append({"failed": 1.0})
                continue
            decided = datetime.fromisoformat(said[-1]["start"]).timestamp()
            runs.append({
                "announcement_end_s": round(datetime.fromisoformat(said[-1]["end"]).timestamp() - decided, 3),
                "decision_to_agent_audio_s": round(agent_at - decided, 3),
                "speech_end_to_agent_audio_s": round(agent_at - spoken_end, 3),
            })
    return runs


MACHINE = f"{platform.machine()}, {os.cpu_count()} cores (shared: pessimistic)"


def summary(ok: list[dict[str, float]], key: str) -> dict[str, float] | None:
    """The median and the largest ``key`` of the runs that did not fail (None: every run failed)."""
    values = [r[key] for r in ok]
    return {"p50": round(statistics.median(values), 3), "max": round(max(values), 3)} if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--caller", choices=("sip", "webrtc"), default="sip",
                        help="webrtc: a browser-like caller through voicebot serve")
    parser.add_argument("--summary", default=None, help="whisper this text instead of the packet's fields")
    parser.add_argument("--sequential", action="store_true", help="the old order: sentence, then the queue")
    parser.add_argument("--announcement", default=ANNOUNCEMENT)
    args = parser.parse_args()

    if args.caller == "webrtc":
        main_webrtc(args)
        return

    from voicebot.config import Settings
    from voicebot.pipeline.shared import SharedModels
    from voicebot.transfer import TransferService

    started = time.perf_counter()
    shared = SharedModels.load(Settings())
    load_s = time.perf_counter() - started

    class _Speaker(TransferService):
        def __init__(self) -> None:  # only speak() and speak_whisper() are used: no database
            self.shared = shared

    speaker = _Speaker()
    whisper = args.summary or queue_request_from_packet(PACKET).whisper
    with tempfile.TemporaryDirectory() as tmp:
        agent, port = start_agent(Path(tmp))
        try:
            time.sleep(0.5)
            runs = asyncio.run(measure(args, port, speaker))
            announcement_s = len(asyncio.run(speaker.speak(args.announcement))) / 2 / 16000
            speak_whisper = speaker.speak if args.sequential else speaker.speak_whisper
            whisper_audio_s = len(asyncio.run(speak_whisper(whisper))) / 2 / 16000
        finally:
            agent.terminate()
            agent.wait(timeout=10)
        shared.close()
    ok = [r for r in runs if "failed" not in r]
    print(json.dumps({
        "benchmark": "transfer_latency",
        "machine": MACHINE,
        "runs": len(runs),
        "failed": len(runs) - len(ok),
        "mode": "sequential" if args.sequential else "overlapped",
        "models_load_s": round(load_s, 2),
        "announcement": args.announcement,
        "announcement_audio_s": round(announcement_s, 2),
        "whisper": whisper,
        "whisper_audio_s": round(whisper_audio_s, 2),
        **{key: summary(ok, key) for key in ("announcement_end_s", "dial_s", "whisper_s", "decision_to_agent_audio_s")},
        "per_run": runs,
    }, indent=2))


def main_webrtc(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        agent, port = start_agent(Path(tmp))
        try:
            runs = measure_webrtc(args, port, Path(tmp))
        finally:
            agent.terminate()
            agent.wait(timeout=10)
    ok = [r for r in runs if "failed" not in r]
    print(json.dumps({
        "benchmark": "transfer_latency",
        "caller": "webrtc",
        "machine": MACHINE,
        "runs": len(runs),
        "failed": len(runs) - len(ok),
        **{key: summary(ok, key) for key in ("announcement_end_s", "decision_to_agent_audio_s",
                                             "speech_end_to_agent_audio_s")},
        "per_run": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
