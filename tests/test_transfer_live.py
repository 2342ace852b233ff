"""The agent queue on live SIP calls (telephony.queue.live) with real peers on loopback.

The "bot" is our user agent: it answers and hands each caller straight to :class:`LiveQueue`. Callers are our
own user agent (so what they hear is captured sample by sample); agents are baresip in auto-answer mode
reached by their SIP URI, or our user agent where an agent must press keys or never answer. Speech is a
stand-in: ``speak`` turns the whisper into a 2500 Hz tone and everything else into a 700 Hz one, so the
recordings show by frequency who heard what (caller's voice 400 Hz, agent's voice 3000 Hz).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from handoff_helpers import customer, handoff_packet, intent
from net_helpers import free_port, rtp_ports

from telephony.call import CallLeg
from telephony.config import SipConfig
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.live import LiveQueue, TransferResult
from telephony.queue.runner import QueueRunner
from telephony.sip.ua import UserAgent
from voicebot.transfer.request import queue_request_from_packet

WHISPER_HZ, OTHER_HZ, CALLER_HZ, AGENT_HZ = 2500, 700, 400, 3000
PACKET = handoff_packet("Caller Jane Doe, verified. Wants to cancel her subscription.", caller_id="5550100",
                        customer=customer("Jane Doe", True), intents_pending=(intent("cancel_subscription"),))
WHISPER = "Jane Doe, verified. Cancel subscription."



def sip_config() -> SipConfig:
    return SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, **rtp_ports(100))


def tone(hz: float, seconds: float, rate: int = 16000, level: float = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * level).astype(np.int16)


def frames_at(samples: np.ndarray, rate: int, hz: float) -> int:
    """How many loud 20 ms frames have ``hz`` (within 80 Hz) as their dominant frequency."""
    n = rate // 50
    frames = samples[: len(samples) // n * n].reshape(-1, n).astype(np.float64)
    count = 0
    for f in frames:
        if np.sqrt((f**2).mean()) < 500:
            continue
        spectrum = np.abs(np.fft.rfft(f * np.hanning(n), 4096))
        if abs(np.argmax(spectrum) * rate / 4096 - hz) < 80:
            count += 1
    return count


class Texts:
    """The stand-in voice: records what it was asked to say."""

    def __init__(self) -> None:
        self.said: list[str] = []

    async def __call__(self, text: str) -> bytes:
        self.said.append(text)
        hz = WHISPER_HZ if text.startswith(WHISPER) else OTHER_HZ
        return tone(hz, 1.0).tobytes()


class Bot:
    """Our user agent as the bot: answers every call and hands it to the queue."""

    def __init__(self, agents: list[AgentConfig], queue: QueueConfig):
        self.ua = UserAgent(sip_config(), on_call=self._on_call)
        self.speak = Texts()
        self.agents, self.queue = agents, queue
        self.results: dict[str, TransferResult] = {}
        self.live: LiveQueue | None = None
        self.runner: QueueRunner | None = None

    async def start(self) -> None:
        await self.ua.start()
        self.live = LiveQueue(self.ua, self.speak)
        self.runner = QueueRunner.on_loop(self.agents, [self.queue], self.live)
        self.live.attach(self.runner)

    async def _on_call(self, leg: CallLeg) -> None:
        await leg.answer()
        assert self.live is not None
        self.results[leg.call_id] = await self.live.transfer_call(leg, queue_request_from_packet(PACKET))

    @property
    def uri(self) -> str:
        return f"sip:queue@127.0.0.1:{self.ua.transport.udp_address[1]}"

    async def stop(self) -> None:
        assert self.live is not None and self.runner is not None
        await self.live.close()
        await self.runner.close()
        await self.ua.stop()


class Caller:
    """Our user agent as a caller: says a steady 400 Hz tone and records everything it hears."""

    def __init__(self) -> None:
        self.ua = UserAgent(sip_config())
        self.heard: list[bytes] = []
        self.leg: CallLeg | None = None

    async def call(self, uri: str) -> CallLeg:
        await self.ua.start()
        self.leg = await self.ua.dial(uri, caller="5550100")
        self.leg.add_sink(self.heard.append)
        asyncio.ensure_future(self._talk(self.leg))
        return self.leg

    async def _talk(self, leg: CallLeg) -> None:
        frame = tone(CALLER_HZ, 0.02, level=6000).tobytes()
        while leg.state == "answered":
            await leg.write_audio(frame)

    def samples(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.heard), np.int16)


class PhoneAgent:
    """Our user agent as an agent's phone: ``behaviour(leg)`` decides what happens after the INVITE."""

    def __init__(self, behaviour: Callable[[CallLeg], Awaitable[None]]):
        self.legs: list[CallLeg] = []
        self.behaviour = behaviour
        self.ua = UserAgent(sip_config(), on_call=self._on_call)

    async def _on_call(self, leg: CallLeg) -> None:
        self.legs.append(leg)
        await self.behaviour(leg)

    def uri(self, user: str) -> str:
        return f"sip:{user}@127.0.0.1:{self.ua.transport.udp_address[1]}"


def queue(**kw: Any) -> QueueConfig:
    base: dict[str, Any] = {"name": "general", "agent_timeout": 4, "max_wait": 20, "wrap_up": 1,
                            "announce_every": 3, "fallback": "none", "callback_key": "9"}
    return QueueConfig(**{**base, **kw})


async def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed (apt-get install baresip-core)")
def test_whisper_reaches_only_the_agent_and_the_bridge_carries_both_ways(tmp_path: Path) -> None:
    # The agent's softphone: 2 s of silence (while the whisper plays), 3 s of 3000 Hz, then it hangs up.
    rate = 8000
    voice = np.concatenate([np.zeros(2 * rate, np.int16), tone(AGENT_HZ, 3.0, rate, 8000)])
    sf.write(str(tmp_path / "agent.wav"), voice, rate, subtype="PCM_16")
    agent_port = free_port()
    (tmp_path / "rec").mkdir()
    (tmp_path / "phone").mkdir()
    (tmp_path / "phone" / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{agent_port}\n"
        "audio_player aubridge,nullplay\naudio_alert aubridge,nullplay\n"
        f"audio_source aufile,{tmp_path / 'agent.wav'}\nnet_interface 127.0.0.1\n"
        "module_path /usr/lib/baresip/modules\n"
        + "".join(f"module {m}.so\n" for m in ("g711", "aufile", "aubridge", "sndfile", "account", "menu"))
        + f"snd_path {tmp_path / 'rec'}\n"
    )
    (tmp_path / "phone" / "accounts").write_text(
        f"<sip:alice@127.0.0.1:{agent_port}>;regint=0;answermode=auto\n")
    phone = subprocess.Popen(["baresip", "-f", str(tmp_path / "phone"), "-t", "40"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    agents = [AgentConfig(id="alice", contact=f"sip:alice@127.0.0.1:{agent_port}", logged_in=True)]
    bot = Bot(agents, queue())
    caller = Caller()

    async def main() -> None:
        await bot.start()
        try:
            await asyncio.sleep(0.5)  # baresip binds its port
            leg = await caller.call(bot.uri)
            await asyncio.wait_for(leg.ended.wait(), 25)
            assert leg.end_reason == "remote hangup"  # the agent hung up: the bot ended the caller's leg too
            await wait_for(lambda: bool(bot.results), 5)
            assert bot.runner is not None
            stats = bot.runner.acd.queue_stats("general")
            assert stats["answered"] == 1 and stats["waiting"] == 0
            assert bot.runner.acd.agent_state("alice") in ("wrap_up", "available")
        finally:
            await bot.stop()
            await caller.ua.stop()

    try:
        asyncio.run(main())
    finally:
        phone.terminate()
        out, _ = phone.communicate(timeout=10)
    result = next(iter(bot.results.values()))
    assert result.outcome == "answered" and result.agent_id == "alice", result
    assert result.talk_s is not None and result.talk_s > 2
    assert any(t.startswith(WHISPER) for t in bot.speak.said)

    heard_by_agent, agent_rate = sf.read(str(next((tmp_path / "rec").glob("dump-*-dec.wav"))), dtype="int16")
    heard_by_caller = caller.samples()
    # The whisper: about 1 s at the agent, nothing at the caller.
    assert frames_at(heard_by_agent, agent_rate, WHISPER_HZ) > 30, "the agent did not hear the whisper"
    assert frames_at(heard_by_caller, 16000, WHISPER_HZ) == 0, "the caller heard the whisper"
    # The bridge: the caller's voice at the agent, the agent's voice at the caller.
    assert frames_at(heard_by_agent, agent_rate, CALLER_HZ) > 50, out[-2000:]
    assert frames_at(heard_by_caller, 16000, AGENT_HZ) > 50


def test_no_answer_cancels_the_ring_then_the_caller_gets_the_fallback() -> None:
    # An agent phone that rings and never answers: the ACD gives up after agent_timeout and the ring is
    # cancelled (SIP CANCEL reaches the phone); no one else can take the call, so max_wait ends in the fallback.
    async def never_answer(leg: CallLeg) -> None:
        await leg.wait_ended()

    async def main() -> None:
        deaf = PhoneAgent(never_answer)
        await deaf.ua.start()
        agents = [AgentConfig(id="bob", contact=deaf.uri("bob"), logged_in=True)]
        bot = Bot(agents, queue(agent_timeout=1.5, max_wait=4))
        await bot.start()
        caller = Caller()
        try:
            leg = await caller.call(bot.uri)
            await wait_for(lambda: len(deaf.legs) == 1, 5)
            await asyncio.wait_for(deaf.legs[0].ended.wait(), 5)
            assert deaf.legs[0].end_reason == "cancelled"
            assert bot.runner is not None
            assert bot.runner.acd.agent_state("bob") == "paused"  # autopause after no answer
            await asyncio.wait_for(leg.ended.wait(), 10)
            await wait_for(lambda: bool(bot.results), 5)
            result = next(iter(bot.results.values()))
            assert result.outcome == "timeout" and result.agent_id is None
            assert result.wait_s >= 4
            assert any("no agent is available" in t for t in bot.speak.said)
            assert frames_at(caller.samples(), 16000, OTHER_HZ) > 30  # announcement and fallback were heard
        finally:
            await bot.stop()
            await caller.ua.stop()
            await deaf.ua.stop()

    asyncio.run(main())


def test_declined_offer_goes_to_the_next_agent_who_accepts() -> None:
    # agent_confirm: each agent hears the whisper and presses a key; bob declines (2), carol accepts (1).
    def presses(key: str, then_hangup_after: float | None) -> Callable[[CallLeg], Awaitable[None]]:
        async def behaviour(leg: CallLeg) -> None:
            await leg.answer()
            await asyncio.sleep(0.5)
            leg.send_dtmf(key)
            if then_hangup_after is not None:
                await asyncio.sleep(then_hangup_after)
                await leg.hangup()
            await leg.wait_ended()

        return behaviour

    async def main() -> None:
        bob = PhoneAgent(presses("2", None))
        carol = PhoneAgent(presses("1", 2.0))
        await bob.ua.start()
        await carol.ua.start()
        agents = [AgentConfig(id="bob", contact=bob.uri("bob"), logged_in=True),
                  AgentConfig(id="carol", contact=carol.uri("carol"), logged_in=True)]
        bot = Bot(agents, queue(agent_confirm=True, strategy="round_robin"))
        await bot.start()
        caller = Caller()
        try:
            # bob has been idle longest whatever the strategy picks first, so set the order explicitly.
            assert bot.runner is not None
            bot.runner.set_agent_state("carol", "paused", "later")
            leg = await caller.call(bot.uri)
            await wait_for(lambda: len(bob.legs) == 1, 5)
            await asyncio.wait_for(bob.legs[0].ended.wait(), 10)  # declined: bob's leg is hung up
            bot.runner.set_agent_state("carol", "available")
            await asyncio.wait_for(leg.ended.wait(), 15)  # carol accepts, talks 2 s and hangs up
            await wait_for(lambda: bool(bot.results), 5)
            result = next(iter(bot.results.values()))
            assert result.outcome == "answered" and result.agent_id == "carol", result
            assert len(carol.legs) == 1 and carol.legs[0].end_reason == "local hangup"
            assert bot.runner.acd.agent_state("bob") == "available"  # a decline does not pause
            assert sum("Press 1 to accept" in t for t in bot.speak.said) == 2
        finally:
            await bot.stop()
            await caller.ua.stop()
            await bob.ua.stop()
            await carol.ua.stop()

    asyncio.run(main())


def test_caller_hanging_up_while_queued_is_abandoned_with_the_wait() -> None:
    async def main() -> None:
        agents = [AgentConfig(id="dave", contact="sip:dave@127.0.0.1:9", logged_in=False)]
        bot = Bot(agents, queue())
        await bot.start()
        caller = Caller()
        try:
            leg = await caller.call(bot.uri)
            assert bot.runner is not None
            await wait_for(lambda: bot.runner is not None and bot.runner.acd.queue_stats("general")["waiting"] == 1, 5)
            await asyncio.sleep(1.5)
            await leg.hangup()
            await wait_for(lambda: bool(bot.results), 5)
            result = next(iter(bot.results.values()))
            assert result.outcome == "abandoned" and 1.4 < result.wait_s < 10
            stats = bot.runner.acd.queue_stats("general")
            assert stats["abandoned"] == 1 and stats["waiting"] == 0
        finally:
            await bot.stop()
            await caller.ua.stop()

    asyncio.run(main())


def test_two_callers_one_agent_second_waits_hears_position_then_gets_the_agent() -> None:
    # The agent answers, talks 1.5 s and hangs up; wrap-up 1 s; then the second caller is offered.
    async def short_call(leg: CallLeg) -> None:
        await leg.answer()
        await asyncio.sleep(2.5)  # whisper (1 s) then 1.5 s of conversation
        await leg.hangup()

    async def main() -> None:
        agent = PhoneAgent(short_call)
        await agent.ua.start()
        agents = [AgentConfig(id="erin", contact=agent.uri("erin"), logged_in=True)]
        bot = Bot(agents, queue(announce_every=2))
        await bot.start()
        first, second = Caller(), Caller()
        try:
            leg1 = await first.call(bot.uri)
            await wait_for(lambda: len(agent.legs) == 1, 5)
            leg2 = await second.call(bot.uri)
            assert bot.runner is not None
            await wait_for(lambda: bot.runner is not None and bot.runner.acd.queue_stats("general")["waiting"] == 1, 5)
            await asyncio.wait_for(leg1.ended.wait(), 10)
            await asyncio.wait_for(leg2.ended.wait(), 15)
            await wait_for(lambda: len(bot.results) == 2, 5)
            r1, r2 = bot.results[leg1.call_id], bot.results[leg2.call_id]
            assert r1.outcome == r2.outcome == "answered" and r1.agent_id == r2.agent_id == "erin"
            assert len(agent.legs) == 2
            # The second caller waited for the first call and the wrap-up, and was told their place.
            assert r1.talk_s is not None and r2.wait_s > r1.talk_s + 1 - 0.1
            assert any("in line" in t for t in bot.speak.said)
            assert frames_at(second.samples(), 16000, OTHER_HZ) > 30
            assert bot.runner.acd.queue_stats("general")["answered"] == 2
        finally:
            await bot.stop()
            await first.ua.stop()
            await second.ua.stop()
            await agent.ua.stop()

    asyncio.run(main())


def test_callback_key_records_a_request_and_ends_the_call(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from telephony.queue.store import CallbackStore

    async def main() -> None:
        agents = [AgentConfig(id="dave", contact="sip:dave@127.0.0.1:9", logged_in=False)]
        bot = Bot(agents, queue(fallback="callback"))
        await bot.start()
        assert bot.runner is not None
        bot.runner.callbacks = CallbackStore(create_engine(f"sqlite:///{tmp_path / 'cb.db'}"))
        bot.runner.callbacks.create_tables()
        caller = Caller()
        try:
            leg = await caller.call(bot.uri)
            await wait_for(lambda: any("press 9" in t for t in bot.speak.said), 5)
            leg.send_dtmf("9")
            await asyncio.wait_for(leg.ended.wait(), 10)
            await wait_for(lambda: bool(bot.results), 5)
            result = next(iter(bot.results.values()))
            assert result.outcome == "callback" and result.callback_id is not None
            request = bot.runner.callbacks.get(result.callback_id)
            assert request is not None and request.caller == "5550100" and request.status == "pending"
            assert request.handoff == PACKET.to_dict()  # the packet's JSON, kept with the request
            assert any("call you back" in t for t in bot.speak.said)
        finally:
            await bot.stop()
            await caller.ua.stop()

    asyncio.run(main())


def test_blind_transfer_queue_connects_the_caller_to_the_target() -> None:
    # Our caller's phone refuses REFER (403), so the queue dials the target on a new leg and bridges it.
    async def target_talks(leg: CallLeg) -> None:
        await leg.answer()
        for _ in range(100):  # 2 s of the target's voice
            await leg.write_audio(tone(AGENT_HZ, 0.02).tobytes())
        await asyncio.sleep(0.3)
        await leg.hangup()

    async def main() -> None:
        target = PhoneAgent(target_talks)
        await target.ua.start()
        agents = [AgentConfig(id="dave", contact="sip:dave@127.0.0.1:9", logged_in=False)]
        bot = Bot(agents, queue(blind_transfer_to=target.uri("desk")))
        await bot.start()
        caller = Caller()
        try:
            leg = await caller.call(bot.uri)
            await asyncio.wait_for(leg.ended.wait(), 10)
            await wait_for(lambda: bool(bot.results), 5)
            result = next(iter(bot.results.values()))
            assert result.outcome == "transferred", result
            assert len(target.legs) == 1
            assert frames_at(caller.samples(), 16000, AGENT_HZ) > 40
        finally:
            await bot.stop()
            await caller.ua.stop()
            await target.ua.stop()

    asyncio.run(main())


def test_voicemail_fallback_records_the_callers_message() -> None:
    # No agent logged in and join_empty off: the caller is asked for a message at once, speaks 2 s after the
    # beep, then stays silent until the recording stops by itself.
    kept: list[tuple[str, bytes]] = []

    async def keep(action: Any, audio: bytes) -> None:
        kept.append((action.reason, audio))

    async def main() -> None:
        agents = [AgentConfig(id="dave", contact="sip:dave@127.0.0.1:9", logged_in=False)]
        bot = Bot(agents, queue(fallback="voicemail", join_empty=False))
        await bot.start()
        assert bot.live is not None
        bot.live.voicemail = keep
        caller = Caller()  # dialled by hand: it must stay silent until the beep
        await caller.ua.start()
        try:
            leg = await caller.ua.dial(bot.uri, caller="5550100")
            leg.add_sink(caller.heard.append)
            # Wait for the beep (1000 Hz) after the prompt, then speak 2 s of 400 Hz.
            await wait_for(lambda: frames_at(caller.samples()[-16000:], 16000, 1000) > 5, 10)
            for _ in range(100):
                await leg.write_audio(tone(CALLER_HZ, 0.02, level=6000).tobytes())
            await asyncio.wait_for(leg.ended.wait(), 20)  # 6 s of silence end the message, then goodbye
            await wait_for(lambda: bool(bot.results) and bool(kept), 5)
            result = next(iter(bot.results.values()))
            assert result.outcome == "no_agents" and result.voicemail_s is not None and result.voicemail_s > 2
            reason, audio = kept[0]
            assert reason == "no_agents"
            assert frames_at(np.frombuffer(audio, np.int16), 16000, CALLER_HZ) > 80
            assert any("leave a message" in t for t in bot.speak.said)
            assert any("has been recorded" in t for t in bot.speak.said)
        finally:
            await bot.stop()
            await caller.ua.stop()

    asyncio.run(main())


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed (apt-get install baresip-core)")
def test_blind_transfer_by_refer_to_a_softphone_caller(tmp_path: Path) -> None:
    # baresip as the caller accepts REFER and calls the target itself; the queue reports "transferred".
    async def target_answers(leg: CallLeg) -> None:
        await leg.answer()
        await asyncio.sleep(1.0)
        await leg.hangup()

    rate = 8000
    sf.write(str(tmp_path / "caller.wav"), np.zeros(20 * rate, np.int16), rate, subtype="PCM_16")
    (tmp_path / "phone").mkdir()
    (tmp_path / "phone" / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{free_port()}\n"
        "audio_player aubridge,nullplay\naudio_alert aubridge,nullplay\n"
        f"audio_source aufile,{tmp_path / 'caller.wav'}\nnet_interface 127.0.0.1\n"
        "module_path /usr/lib/baresip/modules\n"
        + "".join(f"module {m}.so\n" for m in ("g711", "aufile", "aubridge", "account", "menu"))
    )
    (tmp_path / "phone" / "accounts").write_text("<sip:5550100@127.0.0.1>;regint=0\n")

    async def main() -> None:
        target = PhoneAgent(target_answers)
        await target.ua.start()
        agents = [AgentConfig(id="dave", contact="sip:dave@127.0.0.1:9", logged_in=False)]
        bot = Bot(agents, queue(blind_transfer_to=target.uri("desk")))
        await bot.start()
        try:
            phone = await asyncio.create_subprocess_exec(
                "baresip", "-f", str(tmp_path / "phone"), "-e", f"/dial {bot.uri}", "-t", "15",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            await wait_for(lambda: bool(bot.results), 15)
            await wait_for(lambda: len(target.legs) == 1, 5)
            phone.terminate()
            out, _ = await phone.communicate()
            result = next(iter(bot.results.values()))
            assert result.outcome == "transferred", out.decode(errors="replace")[-2000:]
            # The softphone called the target itself (REFER), not the bot on a second leg.
            assert target.legs[0].peer.port != bot.ua.transport.udp_address[1], target.legs[0].peer
        finally:
            await bot.stop()
            await target.ua.stop()

    asyncio.run(main())
