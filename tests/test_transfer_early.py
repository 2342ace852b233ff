"""The agent is rung while the bot is still talking to the caller (``transfer_call(..., caller_ready=...)``),
and the whisper is a few words from the hand-off packet.

Real SIP legs on loopback (our user agent as bot, caller and agent phone), stand-in speech as in
test_transfer_live: the whisper is a 2500 Hz tone, the bot's hand-off sentence a 1000 Hz one, the agent's
voice 3000 Hz; what the caller heard is checked by frequency and order.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
from handoff_helpers import customer, frustration, handoff_packet, intent
from test_transfer_live import AGENT_HZ, WHISPER_HZ, PhoneAgent, frames_at, queue, sip_config, tone, wait_for

from dialogs.manager.handoff import HandoffPacket
from telephony.call import CallLeg
from telephony.queue.config import AgentConfig
from telephony.queue.live import LiveQueue, TransferResult, _play_once
from telephony.queue.request import NO_WHISPER
from telephony.queue.runner import QueueRunner
from telephony.sip.ua import UserAgent
from voicebot.transfer.request import queue_request_from_packet

SENTENCE_HZ = 1000
PACKET = handoff_packet(
    "Caller Jane Doe, verified. Wants to cancel her subscription after a double charge.",
    customer=customer("Jane Doe", True, verified_by="pin"),
    intents_done=(intent("billing_question", "done"),),
    intents_pending=(intent("cancel_subscription"), intent("speak_to_agent")),
    frustration=frustration("frustrated", 0.8),
)


def whisper_text(packet: HandoffPacket | None) -> str:
    return queue_request_from_packet(packet).whisper


def test_whisper_names_the_caller_their_requests_and_mood_not_the_long_summary() -> None:
    assert whisper_text(PACKET) == "Jane Doe, verified. Cancel subscription, billing question. Frustrated."
    unknown = replace(PACKET, customer=None, intents_done=(), intents_pending=(), frustration=frustration())
    assert whisper_text(unknown) == "Caller not identified. Asked for a person."
    not_verified = replace(PACKET, customer=customer("Jane Doe", False), frustration=frustration("annoyed", 0.5))
    assert whisper_text(not_verified).startswith("Jane Doe, not verified.")
    assert "Annoyed." in whisper_text(not_verified)
    # No packet (the bot handed over before any dialog): the agent still hears who is coming.
    assert whisper_text(None) == NO_WHISPER


class Speech:
    """The stand-in voice: the whisper (``speak_whisper``) is 0.5 s of 2500 Hz, anything else 700 Hz."""

    def __init__(self) -> None:
        self.whispered: list[str] = []

    async def whisper(self, text: str) -> bytes:
        self.whispered.append(text)
        return tone(WHISPER_HZ, 0.5).tobytes()

    async def other(self, text: str) -> bytes:
        return tone(700, 0.5).tobytes()


def test_agent_is_rung_during_the_bot_sentence_and_bridged_only_after_it() -> None:
    async def agent_answers(leg: CallLeg) -> None:
        await leg.answer()
        frame = tone(AGENT_HZ, 0.02).tobytes()
        while leg.state == "answered":
            await leg.write_audio(frame)

    events: list[tuple[str, bool]] = []  # (offer event, whether the bot had let go of the caller yet)
    results: list[TransferResult] = []
    released = asyncio.Event()

    async def main() -> None:
        agent = PhoneAgent(agent_answers)
        await agent.ua.start()
        speech = Speech()

        async def bot_call(leg: CallLeg) -> None:
            # The dialog decided to hand off: queue at once, and keep talking until the agent has been reached
            # and has heard the whisper; only then does the bot let go of the leg.
            await leg.answer()
            transfer = asyncio.ensure_future(
                live.transfer_call(leg, queue_request_from_packet(PACKET), caller_ready=released))
            sentence = tone(SENTENCE_HZ, 0.2).tobytes()
            for _ in range(100):  # at most 20 s
                await _play_once(leg, sentence)
                if sum(1 for e, _ in events if e == "answered") and speech.whispered:
                    break
            await _play_once(leg, tone(SENTENCE_HZ, 1.0).tobytes())  # longer than the 0.5 s whisper
            released.set()
            results.append(await transfer)

        bot = UserAgent(sip_config(), on_call=bot_call)
        await bot.start()
        live = LiveQueue(bot, speech.other)
        live.speak_whisper = speech.whisper
        live.on_offer = lambda event, _call, _agent: events.append((event, released.is_set()))
        runner = QueueRunner.on_loop([AgentConfig(id="alice", contact=agent.uri("alice"), logged_in=True)],
                                     [queue()], live)
        live.attach(runner)
        caller_ua = UserAgent(sip_config())
        await caller_ua.start()
        heard: list[bytes] = []
        try:
            leg = await caller_ua.dial(f"sip:queue@127.0.0.1:{bot.transport.udp_address[1]}")
            leg.add_sink(heard.append)
            await wait_for(lambda: frames_at(np.frombuffer(b"".join(heard), np.int16), 16000, AGENT_HZ) > 25, 30)
            await leg.hangup()
            await wait_for(lambda: bool(results), 10)
        finally:
            await live.close()
            await runner.close()
            for ua in (caller_ua, bot, agent.ua):
                await ua.stop()
        samples = np.frombuffer(b"".join(heard), np.int16)
        # Rung while the bot still held the caller; bridged only after it let go.
        assert ("answered", False) in events, events
        assert [released_then for e, released_then in events if e == "connected"] == [True], events
        assert speech.whispered == ["Jane Doe, verified. Cancel subscription, billing question. Frustrated."]
        # The caller heard the whole sentence, then the agent; never the whisper.
        n = 320
        frames = samples[: len(samples) // n * n].reshape(-1, n)
        kinds = [SENTENCE_HZ if frames_at(f, 16000, SENTENCE_HZ) else AGENT_HZ if frames_at(f, 16000, AGENT_HZ)
                 else 0 for f in frames]
        assert kinds.count(SENTENCE_HZ) >= 45  # at least the last second, not cut off by the bridge
        assert max(i for i, k in enumerate(kinds) if k == SENTENCE_HZ) < kinds.index(AGENT_HZ)
        assert frames_at(samples, 16000, WHISPER_HZ) == 0
        assert results[0].outcome == "answered" and results[0].agent_id == "alice", results

    asyncio.run(main())


def test_caller_who_hangs_up_during_the_bot_sentence_is_abandoned_and_the_agent_released() -> None:
    async def agent_answers(leg: CallLeg) -> None:
        await leg.answer()
        await leg.wait_ended()

    async def main() -> None:
        agent = PhoneAgent(agent_answers)
        await agent.ua.start()
        speech = Speech()
        results: list[TransferResult] = []
        never = asyncio.Event()  # the bot never lets go: only the caller's hang-up ends the wait

        async def bot_call(leg: CallLeg) -> None:
            await leg.answer()
            results.append(await live.transfer_call(leg, queue_request_from_packet(PACKET), caller_ready=never))

        bot = UserAgent(sip_config(), on_call=bot_call)
        await bot.start()
        live = LiveQueue(bot, speech.other)
        live.speak_whisper = speech.whisper
        runner = QueueRunner.on_loop([AgentConfig(id="alice", contact=agent.uri("alice"), logged_in=True)],
                                     [queue(wrap_up=0)], live)
        live.attach(runner)
        caller_ua = UserAgent(sip_config())
        await caller_ua.start()
        try:
            leg = await caller_ua.dial(f"sip:queue@127.0.0.1:{bot.transport.udp_address[1]}")
            await wait_for(lambda: len(agent.legs) == 1 and agent.legs[0].state == "answered", 10)
            await leg.hangup()
            await wait_for(lambda: bool(results), 10)
            await asyncio.wait_for(agent.legs[0].ended.wait(), 10)  # the agent is not left on a dead call
            await wait_for(lambda: runner.acd.agent_state("alice") == "available", 10)
        finally:
            await live.close()
            await runner.close()
            for ua in (caller_ua, bot, agent.ua):
                await ua.stop()
        assert results[0].outcome == "abandoned", results

    asyncio.run(main())
