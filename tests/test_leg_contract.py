"""The one leg contract (:class:`telephony.leg.Leg`) on each of the three leg kinds, each with a real peer where
the product has one: a SIP :class:`CallLeg` called by our own user agent over loopback, the agent page's
:class:`WebLeg` connected to an aiortc peer, the browser caller's :class:`BrowserLeg` driven at its pipeline
stages' edge (its playing stage replaced by a recorder, as in ``test_transfer_webrtc_caller_leg.py``).

For each: two sinks both get what the peer says and removing one stops only that one; a mixer's audio is mixed
into what ``write`` sends; key listeners all get each key and a failing one does not stop the others. The typed
assignments ``leg: Leg = ...`` are checked by mypy.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from test_telephony_call import config, loud_frequency, until, uri

from audio.pcm import BYTES_PER_MS, FRAME_BYTES, FRAME_S, SAMPLE_RATE, frames, silence
from telephony.bridge import Bridge
from telephony.call import CallLeg
from telephony.leg import Leg
from telephony.sip.ua import UserAgent
from voicebot.server.agent_phone import AgentPhone
from voicebot.server.caller_leg import BrowserLeg
from voicebot.server.rtc_audio import PacedAudioTrack, read_track

PEER_HZ, MIXER_HZ = 500, 1000


def tone(hz: float, seconds: float, start: int = 0) -> bytes:
    t = (start + np.arange(int(SAMPLE_RATE * seconds))) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def loud(chunks: list[bytes]) -> int:
    return loud_frequency(chunks)[0]


class ToneMixer:
    """An :class:`~telephony.leg.AudioMixer` with an endless tone; counts how often the leg asked it."""

    def __init__(self) -> None:
        self.pos = 0
        self.asked = 0

    def next_audio(self, nbytes: int) -> bytes:
        self.asked += 1
        pcm = tone(MIXER_HZ, nbytes / BYTES_PER_MS / 1000, start=self.pos)
        self.pos += nbytes // 2
        return pcm


async def check_contract(leg: Leg, say: Any, heard: list[bytes], press: Any | None) -> None:
    """``say()`` starts the peer talking (a tone at PEER_HZ), ``heard`` fills with what the peer hears,
    ``press(key)`` makes the peer press a key (None: this leg's peer has no keypad)."""
    assert isinstance(leg, Leg)
    # Two sinks get the same audio; removing one stops only that one.
    first: list[bytes] = []
    second: list[bytes] = []
    leg.add_sink(first.append)
    leg.add_sink(second.append)
    talking = say()
    await until(lambda: loud(first) >= 10 and loud(second) >= 10, 10)
    assert loud(first) >= 10 and loud(second) >= 10
    n, hz = loud_frequency(first)
    assert abs(hz - PEER_HZ) < 20
    assert 0.0 <= leg.media_idle_s < 1.0  # the peer's media flows (a leg that cannot tell says 0)
    leg.remove_sink(second.append)
    kept, had = len(first), len(second)
    await until(lambda: len(first) >= kept + 10, 10)
    assert len(first) >= kept + 10 and len(second) == had
    leg.remove_sink(first.append)
    talking.cancel()

    # A mixer's audio rides on what the leg writes (silence here), frame by frame.
    mixer = ToneMixer()
    leg.add_mixer(mixer)
    for frame in frames(silence(1000)):
        while leg.queued_ms > 2 * FRAME_S * 1000:  # written as a bridge does: one frame per frame played
            await asyncio.sleep(FRAME_S / 4)
        leg.write(frame)
    await until(lambda: loud(heard) >= 25, 10)
    n, hz = loud_frequency(heard)
    assert n >= 25 and abs(hz - MIXER_HZ) < 20
    leg.remove_mixer(mixer)
    asked = mixer.asked
    leg.write(silence(20))
    assert mixer.asked == asked

    if press is None:
        return
    # Every key listener gets every key, whatever an earlier one raised.
    def broken(key: str) -> None:
        raise RuntimeError("a listener with a bug")

    keys_a: list[str] = []
    keys_b: list[str] = []
    leg.add_dtmf_listener(broken)
    leg.add_dtmf_listener(keys_a.append)
    leg.add_dtmf_listener(keys_b.append)
    await press("5")
    await until(lambda: keys_a == ["5"] and keys_b == ["5"])
    assert keys_a == ["5"] and keys_b == ["5"]
    leg.remove_dtmf_listener(keys_b.append)
    await press("7")
    await until(lambda: keys_a == ["5", "7"])
    assert keys_a == ["5", "7"] and keys_b == ["5"]


def test_sip_call_leg_keeps_the_contract() -> None:
    async def main() -> None:
        answered: asyncio.Queue[CallLeg] = asyncio.Queue()

        async def bot(leg: CallLeg) -> None:
            await leg.answer()
            answered.put_nowait(leg)
            await leg.wait_ended()

        server = UserAgent(config(), on_call=bot)
        phone = UserAgent(config())
        await server.start()
        await phone.start()
        try:
            peer = await phone.dial(uri(server, "4000"), caller="5550000")
            heard: list[bytes] = []
            peer.add_sink(heard.append)
            leg: Leg = await asyncio.wait_for(answered.get(), 5)

            def say() -> asyncio.Task[None]:
                return asyncio.ensure_future(peer.write_audio(tone(PEER_HZ, 5.0)))

            async def press(key: str) -> None:
                peer.send_dtmf(key)

            await check_contract(leg, say, heard, press)
            assert leg.can_send_dtmf
            await peer.hangup()
            assert await asyncio.wait_for(leg.wait_ended(), 5) == "remote hangup"
        finally:
            await phone.stop()
            await server.stop()

    asyncio.run(main())


class PagePeer:
    """The agent's page as aiortc: its microphone sends a tone while ``talking``; it records what it hears."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.heard: list[bytes] = []
        self.talking = False
        self._pos = 0
        self.pc.addTransceiver(PacedAudioTrack(self._mic), direction="sendrecv")
        self.reader: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.reader = asyncio.ensure_future(read_track(track, self.heard.append))

    def _mic(self) -> bytes:
        if not self.talking:
            return b""
        pcm = tone(PEER_HZ, FRAME_S, start=self._pos)
        self._pos += FRAME_BYTES // 2
        return pcm

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.pc.close()


def test_agent_page_leg_keeps_the_contract() -> None:
    async def main() -> None:
        phone = AgentPhone("a1")
        page = PagePeer()
        try:
            await page.pc.setLocalDescription(await page.pc.createOffer())
            answer = await phone.connect(page.pc.localDescription.sdp, "offer")
            await page.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type=answer.type))
            ringing = asyncio.ensure_future(phone.ring("call-1", 5))
            await until(lambda: phone.ringing)
            assert phone.answer()
            leg: Leg = await ringing

            class Talking:
                def cancel(self) -> None:
                    page.talking = False

            def say() -> Talking:
                page.talking = True
                return Talking()

            # The page has no keypad: its leg's keys never come.
            await check_contract(leg, say, page.heard, None)
            assert not leg.can_send_dtmf
            await leg.hangup()
            assert leg.state == "ended" and await leg.wait_ended() == "local hangup"
        finally:
            await page.close()
            await phone.close()

    asyncio.run(main())


class Played:
    """Stands in for the stage that plays the browser leg's audio to the caller (``CallerAudioOut``)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def play(self, pcm: bytes) -> None:
        self.chunks.append(pcm)


def test_browser_caller_leg_keeps_the_contract() -> None:
    async def main() -> None:
        browser = BrowserLeg("browser-1", "5550001")
        played = Played()
        browser._out = played  # type: ignore[assignment]
        browser.take_over()  # the bot let go: the leg has the caller's audio and keys

        async def talk() -> None:
            for i, frame in enumerate(frames(tone(PEER_HZ, 5.0))):
                # The caller's stage gives 10 ms chunks; the leg cuts them into 20 ms frames.
                browser._audio_in(frame[: FRAME_BYTES // 2])
                browser._audio_in(frame[FRAME_BYTES // 2 :])
                if i % 5 == 4:
                    await asyncio.sleep(5 * FRAME_S)  # the caller's clock

        async def press(key: str) -> None:
            browser._key_in(key)

        leg: Leg = browser
        await check_contract(leg, lambda: asyncio.ensure_future(talk()), played.chunks, press)
        assert not leg.can_send_dtmf
        await leg.hangup()
        assert await leg.wait_ended() == "local hangup"

    asyncio.run(main())


def test_a_bridge_adds_its_sinks_beside_the_others_and_stop_removes_only_its_own() -> None:
    async def main() -> None:
        caller, agent = BrowserLeg("bridge-caller", "5550002"), BrowserLeg("bridge-agent", None)
        agent_hears = Played()
        agent._out = agent_hears  # type: ignore[assignment]
        agent.take_over()
        recorded: list[bytes] = []
        caller.add_sink(recorded.append)  # e.g. a recorder, there before the bridge
        bridge = Bridge(caller, agent)
        speech = frames(tone(PEER_HZ, 0.5))
        for frame in speech:
            caller._audio_in(frame)
            await until(lambda: agent.queued_ms == 0, 1)  # one frame played per frame said
        await until(lambda: len(agent_hears.chunks) >= len(speech), 2)
        assert agent_hears.chunks == speech and recorded == speech
        bridge.stop()
        caller._audio_in(speech[0])
        assert agent.queued_ms == 0 and recorded == speech + speech[:1]
        await caller.hangup()
        await agent.hangup()

    asyncio.run(main())
