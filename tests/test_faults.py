"""Faults during a call: the caller is never left in silence for more than 2 s after a fault, and the call record
says what happened.

Silence is measured from the caller's side: the audio their user agent receives, as RMS per 20 ms frame; the
silence after a fault is the time from the fault to the first audible frame.

Whisper or Piper failing: the bot runs in this process (the product's SIP server and call runner over a
:class:`Runtime` whose shared models wrap the real Whisper model and Piper voice, with a switch that makes them
raise), and the caller dials it with the project's own user agent. The caller vanishing without a BYE:
`voicebot serve` in a subprocess, the caller's RTP stops. The agent's phone vanishing mid-bridge: the agent
queue (:class:`LiveQueue`) on our user agent, caller and agents our user agent too (as in
``test_transfer_live.py``), the queue's voice espeak-ng; the agent's phone closes its sockets without a BYE.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from call_models import CALL_FLOW_MODELS, CALL_FLOW_MODELS_YAML
from net_helpers import free_port, rtp_ports, sip_port

from audio import pcm
from audio.speech import espeak_ng
from telephony.call import CallLeg
from telephony.config import SipConfig
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.live import AGENT_LOST_TEXT, FALLBACK_TEXT, LiveQueue, TransferResult
from telephony.queue.request import QueueRequest
from telephony.queue.runner import QueueRunner
from telephony.server import SipServer
from telephony.sip.ua import UserAgent
from voicebot.config import Settings
from voicebot.pipeline.dialog import MISHEARD_APOLOGY
from voicebot.pipeline.shared import SharedModels
from voicebot.pipeline.tts import SPEECH_APOLOGY
from voicebot.runtime import Runtime, fixed_prompts
from voicebot.server.sip import sip_call_runner
from voicebot.storage import CallStore
from voicebot.transfer import TransferStore

pytestmark = pytest.mark.slow

LOUD_RMS = 500.0
MAX_SILENCE_S = 2.0
GREETING = "Hello, this is the automated assistant of the shop. How can I help?"


class InjectedFault(RuntimeError):
    """The failure the tests make a model raise."""


class FlakyWhisper:
    """The real Whisper model; raises while ``failing`` (for every transcription, however it is made)."""

    def __init__(self, model: Any):
        self._model = model
        self.failing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def feature_extractor(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            raise InjectedFault("whisper failed")
        return self._model.feature_extractor(*args, **kwargs)

    def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            raise InjectedFault("whisper failed")
        return self._model.transcribe(*args, **kwargs)


class FlakyVoice:
    """The real Piper voice; raises while ``failing``."""

    def __init__(self, voice: Any):
        self._voice = voice
        self.failing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._voice, name)

    def synthesize(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            raise InjectedFault("piper failed")
        return self._voice.synthesize(*args, **kwargs)


class Ear:
    """What the caller hears: the arrival time and loudness of every 20 ms frame of the bot's audio."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, float]] = []

    def __call__(self, audio: bytes) -> None:
        x = np.frombuffer(audio, np.int16).astype(np.float64)
        if len(x):
            self.frames.append((time.monotonic(), float(np.sqrt((x**2).mean()))))

    def last_loud(self) -> float | None:
        return next((t for t, rms in reversed(self.frames) if rms > LOUD_RMS), None)

    def silence_after(self, t0: float) -> float | None:
        """Seconds from ``t0`` to the first audible frame after it (None: nothing audible yet)."""
        return next((t - t0 for t, rms in self.frames if t > t0 and rms > LOUD_RMS), None)

    async def spoke_and_stopped(self, since: float, quiet_s: float = 1.0, timeout: float = 60) -> bool:
        """Until the bot has been audible after ``since`` and quiet for ``quiet_s`` since."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            loud = self.last_loud()
            if loud is not None and loud > since and time.monotonic() - loud >= quiet_s:
                return True
            await asyncio.sleep(0.05)
        return False


def speech(text: str) -> bytes:
    samples, _ = espeak_ng(text, sample_rate=pcm.SAMPLE_RATE)
    return (np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes()


async def say(leg: CallLeg, audio: bytes) -> float:
    """Send ``audio`` and return the moment its last frame left."""
    await leg.write_audio(audio)
    while leg.queued_ms > 0 and leg.state == "answered":
        await asyncio.sleep(0.005)
    return time.monotonic()


@pytest.fixture(scope="module")
def loaded_runtime(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The models, dialog engine and call store, loaded once for these tests."""
    folder = tmp_path_factory.mktemp("faults")
    settings = Settings(models=CALL_FLOW_MODELS)
    settings.database.url = f"sqlite:///{folder / 'voicebot.db'}"
    settings.call.greeting = GREETING
    runtime = Runtime.load(settings, warm_up=False)
    yield runtime, folder / "voicebot.db"
    runtime.close()


@pytest.fixture
def flaky_runtime(loaded_runtime: Any) -> Any:
    """The runtime with fresh shared models (an empty TTS cache) around the real ones, behind failure switches."""
    runtime, db = loaded_runtime
    whisper, voice = FlakyWhisper(runtime.shared.whisper), FlakyVoice(runtime.shared.voice)
    shared = SharedModels(runtime.settings, whisper, voice)  # type: ignore[arg-type]
    # As `voicebot serve` does: the fixed prompts (greeting, apologies) are synthesised before any call.
    shared.warm_up(fixed_prompts(runtime.settings, runtime.engine))
    yield dataclasses.replace(runtime, shared=shared), whisper, voice, db
    shared.close()


async def in_process_call(runtime: Runtime, scenario: Callable[[CallLeg, Ear], Awaitable[None]]) -> None:
    """Run the product's SIP server over ``runtime`` in this loop; the caller dials it and plays ``scenario``."""
    port = free_port()
    settings = runtime.settings
    settings.sip.listen_udp = f"127.0.0.1:{port}"
    settings.sip.listen_tcp = None
    settings.sip.rtp_port_min, settings.sip.rtp_port_max = rtp_ports(200).values()
    server = SipServer(settings.sip, [], sip_call_runner(runtime))
    await server.start()
    caller = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None,
                                 **rtp_ports(100)))
    await caller.start()
    try:
        leg = await caller.dial(f"sip:bot@127.0.0.1:{port}", caller="+15550000000", ring_timeout=20)
        ear = Ear()
        leg.add_sink(ear)
        assert await ear.spoke_and_stopped(0.0), "no greeting"
        await scenario(leg, ear)
        await leg.hangup()
    finally:
        await caller.stop()
        await server.stop()


async def record_closed(db: Path, timeout: float = 30) -> dict[str, Any]:
    """The newest call's record (as the dashboard reads it) once it is closed, with its turns."""
    store = CallStore.from_url(f"sqlite:///{db}")
    end = time.monotonic() + timeout
    try:
        while True:
            calls = store.list(limit=1)
            record = store.get(calls[0]["id"]) if calls else None
            if record is not None and record["end"] is not None:
                return record
            assert time.monotonic() < end, f"the call record was not closed: {record}"
            await asyncio.sleep(0.1)
    finally:
        store.close()


def test_whisper_failing_gets_an_apology_at_once_and_the_next_turn_works(flaky_runtime: Any) -> None:
    runtime, whisper, _voice, db = flaky_runtime
    silences: list[float | None] = []

    async def scenario(leg: CallLeg, ear: Ear) -> None:
        whisper.failing = True
        done = await say(leg, speech("Where is my order?"))
        assert await ear.spoke_and_stopped(done), "the caller heard nothing after Whisper failed"
        silences.append(ear.silence_after(done))
        whisper.failing = False
        done = await say(leg, speech("Where is my order?"))
        assert await ear.spoke_and_stopped(done), "no reply to the next turn"

    asyncio.run(in_process_call(runtime, scenario))
    record = asyncio.run(record_closed(db))
    turns = record["turns"]
    assert silences[0] is not None and silences[0] < MAX_SILENCE_S, silences
    bot = [t["text"] for t in turns if t["speaker"] == "bot"]
    assert MISHEARD_APOLOGY in bot
    failed = [t for t in turns if t["speaker"] == "caller" and t.get("extra", {}).get("error") == "transcription failed"]
    assert len(failed) == 1, turns
    # The next turn was understood: a caller turn with words, and a reply after the apology.
    assert any(t["speaker"] == "caller" and "order" in (t["text"] or "").lower() for t in turns), turns
    assert bot.index(MISHEARD_APOLOGY) < len(bot) - 1
    assert record["outcome"] is not None


def test_piper_failing_gets_a_cached_apology_at_once_and_the_next_turn_works(flaky_runtime: Any) -> None:
    runtime, _whisper, voice, db = flaky_runtime
    silences: list[float | None] = []

    async def scenario(leg: CallLeg, ear: Ear) -> None:
        voice.failing = True
        done = await say(leg, speech("I want to change my delivery address."))
        assert await ear.spoke_and_stopped(done), "the caller heard nothing after Piper failed"
        silences.append(ear.silence_after(done))
        voice.failing = False
        done = await say(leg, speech("Where is my order?"))
        assert await ear.spoke_and_stopped(done), "no reply to the next turn"

    asyncio.run(in_process_call(runtime, scenario))
    record = asyncio.run(record_closed(db))
    turns = record["turns"]
    assert silences[0] is not None and silences[0] < MAX_SILENCE_S, silences
    bot = [t for t in turns if t["speaker"] == "bot"]
    failed = [i for i, t in enumerate(bot) if t.get("extra", {}).get("error") == "speech synthesis failed"]
    apologies = [i for i, t in enumerate(bot) if t["text"] == SPEECH_APOLOGY]
    assert len(failed) == 1 and len(apologies) == 1, turns
    assert failed[0] < apologies[0] < len(bot) - 1  # the failed reply, the apology, then the next reply
    assert record["outcome"] is not None


def test_caller_vanishing_without_bye_ends_the_call_and_closes_the_record(tmp_path: Path) -> None:
    port = sip_port()
    db = tmp_path / "voicebot.db"
    rtp = rtp_ports(200)
    (tmp_path / "voicebot.yaml").write_text(
        f"database:\n  url: sqlite:///{db}\n"
        f"server:\n  host: 127.0.0.1\n  port: {free_port()}\n"
        f"sip:\n  listen_udp: 127.0.0.1:{port}\n  listen_tcp: 127.0.0.1:{port}\n"
        f"  rtp_port_min: {rtp['rtp_port_min']}\n  rtp_port_max: {rtp['rtp_port_max']}\n  no_media_timeout_s: 3\n"
        f"call:\n  greeting: {GREETING}\n" + CALL_FLOW_MODELS_YAML
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "voicebot", "serve", "--config", str(tmp_path / "voicebot.yaml")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    log: list[str] = []
    try:
        assert server.stdout is not None
        for line in server.stdout:
            log.append(line)
            if "SIP ready" in line or server.poll() is not None:
                break
        assert any("SIP ready" in line for line in log), "".join(log)

        async def call() -> dict[str, Any]:
            ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None,
                                     **rtp_ports(100)))
            await ua.start()
            vanished = False
            try:
                leg = await ua.dial(f"sip:bot@127.0.0.1:{port}", caller="+15550000001", ring_timeout=20)
                ear = Ear()
                leg.add_sink(ear)
                assert await ear.spoke_and_stopped(0.0), "no greeting"
                done = await say(leg, speech("Where is my order?"))
                assert await ear.spoke_and_stopped(done), "no reply"
                # The caller's phone vanishes: its sockets close, no more RTP, no BYE, nothing it would answer.
                vanished = True
                await leg.rtp.close()
                await ua.endpoint.close()
                return await record_closed(db, timeout=60)
            finally:
                if not vanished:
                    await ua.stop()

        record = asyncio.run(call())
        turns = record["turns"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    assert record["end_reason"] == "no_media", record
    assert record["outcome"] == "abandoned"
    speakers = [t["speaker"] for t in turns]
    assert speakers[:3] == ["bot", "caller", "bot"], turns
    assert all(t["end"] is not None for t in turns), turns


AGENT_HZ = 3000


def tone(hz: float, seconds: float) -> bytes:
    t = np.arange(int(pcm.SAMPLE_RATE * seconds)) / pcm.SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).tobytes()


def address(ua: UserAgent) -> str:
    udp = ua.transport.udp_address
    assert udp is not None
    return f"127.0.0.1:{udp[1]}"


def queue_ua(on_call: Any = None) -> UserAgent:
    return UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, **rtp_ports(100)),
                     on_call=on_call)


class QueueBot:
    """Our user agent answering every call and handing it to the agent queue, whose voice is espeak-ng."""

    def __init__(self, agents: list[AgentConfig], queue: QueueConfig):
        self.ua = queue_ua(self._on_call)
        self.said: list[str] = []
        self.agents, self.queue = agents, queue
        self.results: dict[str, TransferResult] = {}
        self.live = LiveQueue(self.ua, self._speak)
        self.offers: list[tuple[str, str, str]] = []  # (event, call id, agent id) as the agent page hears them
        self.live.on_offer = lambda *event: self.offers.append(event)
        self.runner: QueueRunner | None = None

    async def _speak(self, text: str) -> bytes:
        self.said.append(text)
        return await asyncio.to_thread(speech, text)

    async def start(self) -> None:
        await self.ua.start()
        self.runner = QueueRunner.on_loop(self.agents, [self.queue], self.live)
        self.live.attach(self.runner)

    async def _on_call(self, leg: CallLeg) -> None:
        await leg.answer()
        self.results[leg.call_id] = await self.live.transfer_call(leg, QueueRequest(whisper="A caller."))

    @property
    def uri(self) -> str:
        return f"sip:queue@{address(self.ua)}"

    async def stop(self) -> None:
        await self.live.close()
        if self.runner is not None:
            await self.runner.close()
        await self.ua.stop()


class AgentPhone:
    """An agent's phone (our user agent): answers, talks (a 3000 Hz tone); ``vanish`` kills it without a BYE,
    ``hangup`` ends the call with one."""

    def __init__(self) -> None:
        self.ua = queue_ua(self._on_call)
        self.legs: list[CallLeg] = []
        self.gone = False

    async def _on_call(self, leg: CallLeg) -> None:
        self.legs.append(leg)
        await leg.answer()
        while leg.state == "answered" and not self.gone:
            await leg.write_audio(tone(AGENT_HZ, 0.02))

    def uri(self, user: str) -> str:
        return f"sip:{user}@{address(self.ua)}"

    async def vanish(self) -> None:
        """The phone's network is gone: no more RTP, no BYE, nothing it would answer."""
        self.gone = True
        await self.legs[-1].rtp.close()
        await self.ua.endpoint.close()


def silent_runs(frames: list[tuple[float, float]], since: float) -> float:
    """The longest run of silent 20 ms frames received after ``since``, in seconds."""
    longest = run = 0
    for t, rms in frames:
        if t <= since:
            continue
        run = run + 1 if rms <= LOUD_RMS else 0
        longest = max(longest, run)
    return longest * pcm.FRAME_S


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.05)


def agent_queue(**kw: Any) -> QueueConfig:
    base: dict[str, Any] = {"name": "general", "agent_timeout": 6, "max_wait": 30, "wrap_up": 0,
                            "announce_every": 0, "fallback": "none", "agent_no_media_s": 1.0}
    return QueueConfig(**{**base, **kw})


def test_agent_phone_vanishing_mid_bridge_sends_the_caller_back_to_the_front_of_the_queue(tmp_path: Path) -> None:
    async def main() -> tuple[TransferResult, float, dict[str, Any], list[str]]:
        alice, bob = AgentPhone(), AgentPhone()
        await alice.ua.start()
        await bob.ua.start()
        agents = [AgentConfig(id="alice", contact=alice.uri("alice"), logged_in=True),
                  AgentConfig(id="bob", contact=bob.uri("bob"), logged_in=False)]
        bot = QueueBot(agents, agent_queue())
        await bot.start()
        caller = queue_ua()
        await caller.start()
        try:
            assert bot.runner is not None
            leg = await caller.dial(bot.uri, caller="+15550000002", ring_timeout=10)
            ear = Ear()
            leg.add_sink(ear)
            await until(lambda: bot.runner is not None and bot.runner.acd.agent_state("alice") == "busy", 20)
            # Bridged: the caller hears alice for a while, then her phone vanishes.
            await until(lambda: sum(1 for _, rms in ear.frames if rms > LOUD_RMS) > 50, 20)
            bot.runner.set_agent_state("bob", "available")  # bob logs in while alice talks
            vanished = time.monotonic()
            await alice.vanish()
            await until(lambda: ("connected", leg.call_id, "bob") in bot.offers, 30)
            stats = bot.runner.acd.queue_stats("general")
            assert bot.runner.acd.agent_state("alice") == "paused"
            bridged = time.monotonic()
            await until(lambda: any(t > bridged and rms > LOUD_RMS for t, rms in ear.frames), 5)  # bob is heard
            await bob.legs[0].hangup()
            await asyncio.wait_for(leg.ended.wait(), 10)
            await until(lambda: leg.call_id in bot.results, 10)
            return bot.results[leg.call_id], silent_runs(ear.frames, vanished), stats, bot.said
        finally:
            await caller.stop()
            await bot.stop()
            await bob.ua.stop()

    result, silence, stats, said = asyncio.run(main())
    assert silence < MAX_SILENCE_S, silence
    assert AGENT_LOST_TEXT in said
    assert [(lost.agent_id, lost.why) for lost in result.agents_lost] == [("alice", "no_media")]
    assert result.outcome == "answered" and result.agent_id == "bob", result
    assert stats["agent_lost"] == 1 and stats["answered"] == 2
    # The record: the lost agent, then how the hand-off ended.
    store = CallStore.from_url(f"sqlite:///{tmp_path / 'voicebot.db'}")
    try:
        TransferStore(store.engine).add(result)
        record = TransferStore(store.engine).of_call(result.call_id)
    finally:
        store.close()
    assert record is not None
    assert record["agents_lost"] == ["alice"] and record["outcome"] == "answered" and record["agent_id"] == "bob"


def test_agent_phone_vanishing_with_nobody_else_gets_an_apology_and_a_callback() -> None:
    async def main() -> tuple[TransferResult, float, list[str], dict[str, Any]]:
        alice = AgentPhone()
        await alice.ua.start()
        agents = [AgentConfig(id="alice", contact=alice.uri("alice"), logged_in=True)]
        bot = QueueBot(agents, agent_queue())
        await bot.start()
        caller = queue_ua()
        await caller.start()
        try:
            assert bot.runner is not None
            leg = await caller.dial(bot.uri, caller="+15550000003", ring_timeout=10)
            ear = Ear()
            leg.add_sink(ear)
            await until(lambda: sum(1 for _, rms in ear.frames if rms > LOUD_RMS) > 50, 30)
            vanished = time.monotonic()
            await alice.vanish()
            await asyncio.wait_for(leg.ended.wait(), 30)  # the bot says goodbye after the callback text
            await until(lambda: leg.call_id in bot.results, 10)
            return (bot.results[leg.call_id], silent_runs(ear.frames, vanished), bot.said,
                    bot.runner.acd.queue_stats("general"))
        finally:
            await caller.stop()
            await bot.stop()

    result, silence, said, stats = asyncio.run(main())
    assert silence < MAX_SILENCE_S, silence
    # The apology, then the callback fallback (no callback store here: its "could not note" variant).
    assert said[-2:] == [AGENT_LOST_TEXT, FALLBACK_TEXT["callback_failed"]], said
    assert result.outcome == "callback" and [lost.agent_id for lost in result.agents_lost] == ["alice"]
    assert stats["agent_lost"] == 1 and stats["callbacks"] == 1
