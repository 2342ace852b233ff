"""Whisper on a real bridged call: a caller (over SIP with our user agent, or a browser over WebRTC with aiortc)
asks the bot for a human, the queue rings an agent whose phone is an aiortc client on the agent API, and a
supervisor listens in with ``whisper``. The
supervisor's microphone (a 1 kHz tone) reaches the agent and not the caller; the supervisor hears the agent
(a 3 kHz tone); before the bridge the whisper is refused with 409."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from auth_helpers import add_user, login
from call_models import CALL_FLOW_MODELS
from net_helpers import rtp_ports, sip_port
from test_transfer_live import frames_at

from audio.speech import espeak_ng
from telephony.config import SipConfig
from telephony.sip.ua import UserAgent
from voicebot.client.local_server import ServerProcess
from voicebot.server.rtc_audio import PacedAudioTrack, read_track

pytestmark = pytest.mark.slow

SUPERVISOR_HZ, AGENT_HZ = 1000, 3000


class Phone:
    """An aiortc endpoint whose microphone is a steady tone; keeps what it hears (16 kHz PCM)."""

    def __init__(self, hz: float):
        self.pc = RTCPeerConnection()
        self.heard: list[bytes] = []
        self._hz, self._n = hz, 0
        self.pc.addTransceiver(PacedAudioTrack(self._mic), direction="sendrecv")
        self.reader: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.reader = asyncio.ensure_future(read_track(track, self.heard.append))

    def _mic(self) -> bytes:
        t = (np.arange(320) + self._n) / 16000
        self._n += 320
        return (8000 * np.sin(2 * np.pi * self._hz * t)).astype("<i2").tobytes()

    async def offer(self) -> dict[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": "offer"}

    async def answer(self, body: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))

    def tone_frames(self, hz: float, last: int | None = None) -> int:
        audio = self.heard[-last:] if last else self.heard
        return frames_at(np.frombuffer(b"".join(audio), np.int16), 16000, hz)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.pc.close()


class SipCaller:
    """The caller as a SIP phone (our user agent); ``heard``: 16 kHz 20 ms frames."""

    def __init__(self, bot_port: int):
        self.bot_port = bot_port
        self.heard: list[bytes] = []
        self.ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{sip_port()}", listen_tcp=None, **rtp_ports(50)))
        self.leg: Any = None

    async def dial(self, base_url: str) -> str:
        await self.ua.start()
        self.leg = await self.ua.dial(f"sip:bot@127.0.0.1:{self.bot_port}", caller="5550142")
        self.leg.add_sink(self.heard.append)
        return str(self.leg.call_id)

    async def say(self, pcm16k: bytes) -> None:
        for i in range(0, len(pcm16k), 640):
            await self.leg.write_audio(pcm16k[i : i + 640])

    async def hangup(self) -> None:
        if self.leg is not None:
            await self.leg.hangup()

    async def close(self) -> None:
        await self.ua.stop()


class BrowserCaller:
    """The caller as a browser (aiortc on ``/api/offer``), speaking through a queue of 20 ms frames."""

    def __init__(self) -> None:
        self.heard: list[bytes] = []
        self._say: list[bytes] = []
        self.pc = RTCPeerConnection()
        self.pc.addTransceiver(PacedAudioTrack(lambda: self._say.pop(0) if self._say else b""), direction="sendrecv")
        self.reader: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.reader = asyncio.ensure_future(read_track(track, self.heard.append))

    async def dial(self, base_url: str) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            res = await http.post("/api/offer", json={"sdp": self.pc.localDescription.sdp, "type": "offer"})
        assert res.status_code == 200, res.text
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=res.json()["sdp"], type=res.json()["type"]))
        return str(res.json()["pc_id"])

    async def say(self, pcm16k: bytes) -> None:
        self._say.extend(pcm16k[i : i + 640] for i in range(0, len(pcm16k), 640))
        await until(lambda: not self._say, 30, "the caller's sentence to be sent")

    async def hangup(self) -> None:
        await self.pc.close()

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.pc.close()


async def until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def loud(pcm: bytes) -> bool:
    x = np.frombuffer(pcm, np.int16).astype(np.float64)
    return bool(x.size) and float(np.sqrt(np.mean(x**2))) > 300


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    """One server for both channels (each places a call of its own), its SIP port; agent alice and a supervisor."""
    port = sip_port()
    config = {
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(50)},
        "call": {"greeting": "Hello, this is the Acme assistant. How can I help?"},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"}],
        "queues": [{"name": "general", "agent_timeout": 20, "max_wait": 60}],
        "models": CALL_FLOW_MODELS,
    }
    with ServerProcess(tmp_path_factory.mktemp("listen_bridge") / "server", config, start_timeout_s=300) as server:
        add_user(server.config["database"]["url"], "alice", "agent")
        add_user(server.config["database"]["url"], "sup", "supervisor")
        yield server, port


@pytest.mark.parametrize("channel", ["sip", "webrtc"])
def test_whisper_reaches_the_agent_of_a_bridged_call_and_not_the_caller(served: tuple[ServerProcess, int],
                                                                        channel: str) -> None:
    server, port = served
    speech, _ = espeak_ng("I want to speak to a human.", rate=150, sample_rate=16000)
    request = (speech * 20000).astype(np.int16).tobytes()

    agent_auth, sup_auth = login(server.url, "alice"), login(server.url, "sup")

    async def run() -> dict[str, Any]:
        agent, sup = Phone(AGENT_HZ), Phone(SUPERVISOR_HZ)
        caller: SipCaller | BrowserCaller = SipCaller(port) if channel == "sip" else BrowserCaller()
        caller_heard = caller.heard
        refused: list[int] = []
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            res = await http.post("/api/agents/alice/phone", json=await agent.offer(), headers=agent_auth)
            assert res.status_code == 200, res.text
            await agent.answer(res.json())
            res = await http.post("/api/agents/alice/state", json={"state": "available"}, headers=agent_auth)
            assert res.status_code == 200, res.text

            async def pick_up() -> None:  # the agent answers as soon as the page rings
                while (await http.post("/api/agents/alice/answer", headers=agent_auth)).status_code != 200:
                    await asyncio.sleep(0.1)

            answering = asyncio.ensure_future(pick_up())
            try:
                call_id = await caller.dial(server.url)
                url = f"/api/live/{urllib.parse.quote(call_id, safe='')}/listen"  # browser call ids hold a '#'
                # The greeting, then the request for a human once it is over.
                await until(lambda: any(loud(p) for p in caller_heard), 30, "the greeting")
                await until(lambda: not any(loud(p) for p in caller_heard[-40:]), 30, "the end of the greeting")
                await caller.say(request)
                # Whisper is refused until the agent is bridged, then answered.
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    res = await http.post(url, json={**await sup.offer(), "whisper": True}, headers=sup_auth)
                    if res.status_code != 409:
                        break
                    refused.append(res.status_code)
                    await sup.close()
                    sup = Phone(SUPERVISOR_HZ)
                    await asyncio.sleep(0.2)
                assert res.status_code == 200, res.text
                await sup.answer(res.json())
                bridged_at = len(caller_heard)
                await until(lambda: agent.tone_frames(SUPERVISOR_HZ, last=100) > 40, 20, "the agent hearing the whisper")
                await until(lambda: sup.tone_frames(AGENT_HZ, last=100) > 40, 20, "the supervisor hearing the agent")
                caller_during = len(caller_heard) - bridged_at
                await caller.hangup()
                await until(lambda: sup.pc.connectionState in ("closed", "failed"), 30, "the listener to close")
            finally:
                answering.cancel()
                await caller.close()
                await agent.close()
                await sup.close()
        return {"refused": refused, "caller_heard": caller_heard[bridged_at:], "caller_during": caller_during,
                "agent": agent, "sup": sup}

    out = asyncio.run(run())

    assert out["refused"], "the whisper should have been refused (409) before the bridge"
    assert out["caller_during"] >= 50, "the caller's leg carried no audio while the supervisor whispered"
    caller = np.frombuffer(b"".join(out["caller_heard"]), np.int16)
    assert frames_at(caller, 16000, AGENT_HZ) > 20, "the caller should hear the agent"
    assert frames_at(caller, 16000, SUPERVISOR_HZ) == 0, "the caller heard the supervisor's whisper"
    assert out["sup"].tone_frames(SUPERVISOR_HZ) <= 2, "the supervisor's own voice came back to them"
