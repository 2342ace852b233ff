"""Warm-transfer latency: from the hand-off (the bot has decided and announced it) until the caller hears the
agent, with an idle baresip agent in auto-answer mode; prints JSON.

    python benchmarks/transfer_latency.py [--runs 5] [--summary "Caller Jane Doe, verified. ..."]

Real parts: our SIP user agent as the bot and as the caller, baresip as the agent's phone (auto-answer,
sending a 3000 Hz tone as its voice), the process's Piper voice for the whisper (loaded as ``voicebot serve``
loads it, through SharedModels), the ACD and LiveQueue. Per run:

- ``dial_s``: hand-off -> the agent's leg answered (INVITE, baresip auto-answers at once);
- ``whisper_s``: answered -> bridged (synthesising and playing the whisper to the agent);
- ``to_agent_audio_s``: hand-off -> first 20 ms of the agent's voice at the caller (the total);
- ``without_whisper_s``: the total minus the whisper playback (what the queue and SIP add);
- ``announcement_s``: how long the bot's hand-off sentence (``--announcement``, the retail domain's) plays
  before the hand-off starts, synthesised with the same voice; ``decision_to_agent_audio_s`` adds it to the
  measured total (the bot decides, says the sentence, then the queue takes over).

Needs baresip (apt-get install baresip-core). The machine is shared, so numbers are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from telephony.call import CallLeg
from telephony.config import SipConfig
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.live import LiveQueue
from telephony.queue.runner import QueueRunner
from telephony.sip.ua import UserAgent

AGENT_HZ = 3000
ANNOUNCEMENT = ("I'll connect you with a colleague who can help. Please hold the line; they will see what we "
                "discussed, so you won't need to repeat yourself.")
SUMMARY = ("Caller Jane Doe, verified. Wants to cancel her subscription after a double charge. Frustrated. "
           "Handed over: asked for a person.")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_agent_voice(pcm: bytes) -> bool:
    x = np.frombuffer(pcm, np.int16).astype(np.float64)
    if len(x) < 160 or np.sqrt((x**2).mean()) < 500:
        return False
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), 2048))
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


async def measure(args: argparse.Namespace, agent_port: int, speak: Any) -> list[dict[str, float]]:
    loop = asyncio.get_running_loop()
    marks: dict[str, float] = {}
    handed: dict[str, float] = {}

    async def bot(leg: CallLeg) -> None:
        await leg.answer()
        handed["t"] = loop.time()
        await live.transfer_call(leg, {"summary": args.summary, "queue": "general"})

    def on_offer(event: str, _call_id: str, _agent_id: str) -> None:
        marks.setdefault(event, loop.time())

    def sip(base: int) -> SipConfig:
        return SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, rtp_port_min=base,
                         rtp_port_max=base + 99)

    server, phone = UserAgent(sip(39000), on_call=bot), UserAgent(sip(39100))
    await server.start()
    await phone.start()
    live = LiveQueue(server, speak)
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

            def on_audio(pcm: bytes, heard: dict[str, float] = heard) -> None:
                if "t" not in heard and is_agent_voice(pcm):
                    heard["t"] = loop.time()

            leg.on_audio = on_audio
            deadline = loop.time() + 30
            while "t" not in heard and loop.time() < deadline:
                await asyncio.sleep(0.01)
            await leg.hangup()
            while runner.acd.agent_state("alice") != "available":
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            if "t" not in heard or "answered" not in marks or "connected" not in marks:
                runs.append({"failed": 1.0})
                continue
            t0 = handed["t"]
            runs.append({
                "dial_s": round(marks["answered"] - t0, 3),
                "whisper_s": round(marks["connected"] - marks["answered"], 3),
                "to_agent_audio_s": round(heard["t"] - t0, 3),
                "without_whisper_s": round(heard["t"] - t0 - (marks["connected"] - marks["answered"]), 3),
            })
    finally:
        await live.close()
        await runner.close()
        await server.stop()
        await phone.stop()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--summary", default=SUMMARY)
    parser.add_argument("--announcement", default=ANNOUNCEMENT)
    args = parser.parse_args()

    from voicebot.config import Settings
    from voicebot.pipeline.shared import SharedModels
    from voicebot.transfer import TransferService

    started = time.perf_counter()
    shared = SharedModels.load(Settings())
    load_s = time.perf_counter() - started

    class _Speaker(TransferService):
        def __init__(self) -> None:  # only speak() is used: no database
            self.shared = shared

    speaker = _Speaker()
    with tempfile.TemporaryDirectory() as tmp:
        agent, port = start_agent(Path(tmp))
        try:
            time.sleep(0.5)
            runs = asyncio.run(measure(args, port, speaker.speak))
            announcement_s = len(asyncio.run(speaker.speak(args.announcement))) / 2 / 16000
        finally:
            agent.terminate()
            agent.wait(timeout=10)
        shared.close()
    ok = [r for r in runs if "failed" not in r]

    def summary(key: str) -> dict[str, float] | None:
        values = [r[key] for r in ok]
        return {"p50": round(statistics.median(values), 3), "max": round(max(values), 3)} if values else None

    print(json.dumps({
        "benchmark": "transfer_latency",
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared: pessimistic)",
        "runs": len(runs),
        "failed": len(runs) - len(ok),
        "models_load_s": round(load_s, 2),
        "whisper_text_words": len(args.summary.split()),
        **{key: summary(key) for key in ("dial_s", "whisper_s", "to_agent_audio_s", "without_whisper_s")},
        "announcement_s": round(announcement_s, 2),
        "decision_to_agent_audio_s": {k: round(v + announcement_s, 3) for k, v in (summary("to_agent_audio_s")
                                                                                 or {}).items()},
        "per_run": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
