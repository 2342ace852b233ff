"""The queue on live calls: :class:`LiveQueue` implements :class:`~telephony.queue.runner.QueueHandlers`
with call legs (:class:`telephony.leg.Leg`: SIP legs, the browser caller's leg of
``voicebot.server.caller_leg``, the agent page's of ``voicebot.server.agent_phone``).

A caller handed over by the bot keeps their leg. While they wait they hear hold music and, when the ACD says
so, their position and estimated wait; a key press goes to the ACD (the callback key). An offer dials the
agent's SIP URI on a second leg; when the agent answers, the agent alone hears the whisper (the ``whisper`` of
the caller's :class:`~telephony.queue.request.QueueRequest`, and with ``agent_confirm`` "press 1 to accept, 2
to decline"), then the legs are bridged. The bridge ends when either side hangs up, and the other side is hung
up with it.

An agent's side that drops mid-bridge (no media for the queue's ``agent_no_media_s``: their phone or page
vanished; or the leg ended other than by a hang-up, e.g. the page disconnected) is lost, not the call: the
caller hears an apology and goes back to the front of the queue (hold music), or gets a callback if nobody
else can take them (:meth:`telephony.queue.acd.ACD.agent_lost`); the result lists the agents lost.

The agent can be rung while the bot is still saying its hand-off sentence: :meth:`LiveQueue.transfer_call`
with ``caller_ready`` queues the call at once but leaves the caller's leg alone (no hold music, no keys)
until the event is set, and bridges only after both the whisper and the caller's last bot audio are over.

Speech comes in through an injected ``speak(text) -> 16 kHz PCM`` (Piper in the product, anything in tests),
so this module needs no model.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from audio.pcm import BYTES_PER_MS, FRAME_BYTES, FRAME_MS, FRAME_S, SAMPLE_RATE
from telephony.bridge import Bridge
from telephony.leg import AudioSink, CallError, Leg
from telephony.queue.actions import (
    Action,
    Announce,
    CallLeftQueue,
    Connect,
    Fallback,
    RingAgent,
    StopRinging,
    Transfer,
)
from telephony.queue.announcements import announcement_text
from telephony.queue.hold_music import hold_music_frames
from telephony.queue.request import QueueRequest
from telephony.queue.runner import QueueHandlers, QueueRunner
from telephony.sip.ua import DialError, UserAgent

log = logging.getLogger(__name__)

# The ACD's own timer decides when an agent did not answer; the SIP ring timeout only backs it up.
RING_GRACE_S = 5.0

Speak = Callable[[str], Awaitable[bytes]]
"""Text to 16 kHz 16-bit mono PCM."""

CONFIRM_PROMPT = "Press 1 to accept the call, or 2 to decline."
FALLBACK_TEXT = {
    "callback": "Thank you. We have noted your number, and an agent will call you back as soon as possible. "
    "Goodbye.",
    "callback_failed": "I am sorry, I could not note your callback request. Please call again later. Goodbye.",
    "voicemail": "I am sorry, no agent is available right now, and voice messages are not taken yet. "
    "Please call again later. Goodbye.",
    "voicemail_prompt": "I am sorry, no agent is available right now. Please leave a message after the tone, "
    "and we will call you back. Hang up when you are done.",
    "voicemail_done": "Thank you. Your message has been recorded. Goodbye.",
    "none": "I am sorry, no agent is available right now. Please call again later. Goodbye.",
}
VOICEMAIL_MAX_S = 120.0
VOICEMAIL_SILENCE_S = 6.0  # this long without speech after the caller spoke ends the message
VOICEMAIL_LEVEL = 400.0  # RMS of 16-bit samples that counts as speech

Voicemail = Callable[[Fallback, bytes], Awaitable[None]]
"""Keeps a recorded message (16 kHz PCM) of the caller of ``Fallback``."""

TRANSFER_FAILED_TEXT = "I am sorry, the transfer did not work. Please call again later. Goodbye."
AGENT_LOST_TEXT = "I am sorry, the line to your agent dropped. Please hold, you are next in line."
NORMAL_ENDS = ("remote hangup", "local hangup")  # a bridged agent's leg ending otherwise was lost, not hung up
MEDIA_CHECK_S = 0.1  # how often a bridged agent's media is checked: detection within this of the limit


@dataclass(frozen=True)
class AgentLost:
    """An agent whose side dropped mid-bridge: ``why`` is ``no_media`` or the leg's end reason."""

    agent_id: str
    why: str
    talk_s: float


@dataclass
class TransferResult:
    """How a handed-over call ended. ``outcome``: ``answered`` (an agent took it), ``abandoned`` (the caller
    hung up while waiting), ``timeout`` / ``no_agents`` (a fallback), ``callback`` (the caller asked for
    one), ``transferred`` (blind transfer), ``failed`` (the call could not be queued or transferred)."""

    call_id: str
    outcome: str
    queue: str | None = None
    agent_id: str | None = None
    wait_s: float = 0.0
    talk_s: float | None = None
    callback_id: int | None = None
    voicemail_s: float | None = None
    agents_lost: list[AgentLost] = field(default_factory=list)
    """Agents whose side dropped while bridged, in order (the caller went back to the queue each time)."""


class _Caller:
    def __init__(self, leg: Leg, request: QueueRequest):
        self.leg = leg
        self.request = request
        self.done: asyncio.Future[TransferResult] = asyncio.get_running_loop().create_future()
        self.player: asyncio.Task[None] | None = None
        self.connected = False
        self.in_fallback = False  # the fallback task finishes the call (a voicemail outlives the hang-up)
        self.result = TransferResult(call_id=leg.call_id, outcome="failed")
        # Set once the queue has the caller's leg: the bot's pipeline let go of it and its audio played out.
        self.ready = asyncio.Event()
        self.pending_announce: str | None = None  # an announcement due before the queue had the leg
        self.key_listener: Callable[[str], None] | None = None
        self.apology: asyncio.Task[None] | None = None  # "the line to your agent dropped", while it plays

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(self.result)


class _Offer:
    def __init__(self, action: RingAgent):
        self.action = action
        self.task: asyncio.Task[None] | None = None
        self.leg: Leg | None = None
        self.whisper: asyncio.Task[None] | None = None
        self.speech: asyncio.Task[bytes] | None = None  # the whisper, synthesised while the phone rings
        self.withdrawn = False


class LiveQueue(QueueHandlers):
    """Queue handlers for SIP legs: hold music and announcements to callers, offers dialled to agents'
    SIP URIs with a whisper, bridges. Create it, then :meth:`attach` the runner that drives it."""

    def __init__(self, ua: UserAgent | None, speak: Speak):
        self.ua = ua
        self.speak = speak
        self.runner: QueueRunner | None = None
        self._callers: dict[str, _Caller] = {}
        self._offers: dict[tuple[str, str], _Offer] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._agent_legs: dict[str, Leg] = {}  # agent id -> their leg (offer answered or bridged)
        self.web_ring: Callable[[str, str, float], Awaitable[Leg]] | None = None
        """Optional ``ring(agent_id, call_id, timeout) -> leg`` for agents whose contact is ``webrtc`` (the
        agent page as a phone); the leg is answered when returned, DialError if it is not."""
        self.voicemail: Voicemail | None = None
        """Optional keeper of voice messages; without it a ``voicemail`` fallback only apologises."""
        self.tap: Callable[[str, str, bytes], None] | None = None
        """Optional ``fn(call_id, "caller" | "agent", pcm)`` with each 20 ms both sides say while bridged
        (transcripts for the supervisor and the call record)."""
        self.speak_whisper: Speak | None = None
        """Optional voice for the whisper only (e.g. faster speech: the agent hears it on every call);
        ``speak`` without it."""
        self.on_offer: Callable[[str, str, str], None] | None = None
        """Optional ``fn(event, call_id, agent_id)`` for the agent page: ``ringing``, ``answered``,
        ``connected``, ``ended``."""
        self.on_queued: Callable[[str], None] | None = None
        """Optional ``fn(call_id)`` once a call handed over has been given to the ACD."""

    def attach(self, runner: QueueRunner) -> None:
        """Use ``runner`` (whose handlers are this object) for every call from now on."""
        self.runner = runner
        runner.add_listener(self._on_action)

    # --- the application side ------------------------------------------------------------------------------
    async def transfer_call(
        self, leg: Leg, request: QueueRequest, *, caller_ready: asyncio.Event | None = None
    ) -> TransferResult:
        """Put the caller on ``leg`` into the queue ``request`` names and return when their call
        is over (an agent talked to them and one side hung up, they gave up, or a fallback was played).
        The leg is hung up at the end unless it already ended.

        With ``caller_ready``, the call is queued (and agents rung) at once, but the leg is taken over (hold
        music, keys, announcements, fallbacks, the bridge) only once the event is set: the bot may still be
        talking to the caller until then. Whoever passes it must set it, also when the caller hung up.
        """
        assert self.runner is not None, "attach a QueueRunner first"
        call_id = leg.call_id
        caller = _Caller(leg, request)
        if leg.state != "answered":
            caller.result.outcome = "abandoned"
            return caller.result
        self._callers[call_id] = caller
        watcher = self._spawn(self._watch_caller(caller))
        try:
            self.runner.enqueue(call_id, replace(request, caller=leg.caller or request.caller))
        except Exception:
            log.exception("call %s could not be queued", call_id)
            caller.finish()
        else:
            if self.on_queued is not None:
                try:
                    self.on_queued(call_id)
                except Exception:
                    log.exception("queued listener failed")
        taking = self._spawn(self._take_over(caller, caller_ready))
        try:
            return await caller.done
        finally:
            watcher.cancel()
            taking.cancel()
            if caller.key_listener is not None:
                leg.remove_dtmf_listener(caller.key_listener)
            self._stop_player(caller)
            self._callers.pop(call_id, None)
            if leg.state != "ended":
                await leg.hangup()

    async def _take_over(self, caller: _Caller, ready: asyncio.Event | None) -> None:
        """Once ``ready`` (and the bot's last audio has played out): hold music, the caller's keys."""
        leg = caller.leg
        try:
            if ready is not None:
                await ready.wait()
            await _drained(leg)  # the tail of the bot's hand-off sentence is still the caller's to hear
            if leg.state != "answered" or caller.done.done():
                return
            caller.key_listener = self._caller_key_listener(leg.call_id)
            leg.add_dtmf_listener(caller.key_listener)
            if not caller.connected and not caller.in_fallback:
                caller.player = self._spawn(self._play(leg, caller.pending_announce))  # hold music at once
        finally:
            caller.ready.set()

    def offers_of(self, agent_id: str) -> list[str]:
        """Call ids currently offered to ``agent_id`` (ringing or hearing the whisper)."""
        return [call_id for (call_id, aid) in self._offers if aid == agent_id]

    def caller_leg(self, call_id: str) -> Leg | None:
        """The caller's leg of a call the queue has (waiting, ringing an agent or bridged), or None."""
        caller = self._callers.get(call_id)
        return caller.leg if caller is not None else None

    def agent_leg(self, agent_id: str) -> Leg | None:
        """The leg of ``agent_id`` while they have one (an offer they answered, or their bridged call)."""
        return self._agent_legs.get(agent_id)

    async def hangup_agent(self, agent_id: str) -> bool:
        """Hang up the agent's leg (the agent page's button); False if they have none."""
        leg = self._agent_legs.get(agent_id)
        if leg is None or leg.state == "ended":
            return False
        await leg.hangup()
        return True

    def request_of(self, call_id: str) -> QueueRequest | None:
        """The request a call handed over was queued with (None once it is over)."""
        caller = self._callers.get(call_id)
        return caller.request if caller is not None else None

    def queue_of(self, call_id: str) -> str | None:
        """The queue a call handed over left for an agent or a fallback (None while it waits)."""
        caller = self._callers.get(call_id)
        return caller.result.queue if caller is not None else None

    async def close(self) -> None:
        """Cancel everything still running (server shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- QueueHandlers ---------------------------------------------------------------------------------------
    def ring(self, action: RingAgent) -> None:
        offer = _Offer(action)
        self._offers[(action.call_id, action.agent_id)] = offer
        speak = self.speak_whisper or self.speak
        offer.speech = self._spawn(speak(self._whisper_text(action)))  # synthesised while the phone rings
        offer.task = self._spawn(self._ring(offer))
        self._notify("ringing", action.call_id, action.agent_id)

    def stop_ringing(self, action: StopRinging) -> None:
        offer = self._offers.pop((action.call_id, action.agent_id), None)
        if offer is None:
            return
        offer.withdrawn = True
        log.info("call %s: offer to %s withdrawn (%s)", action.call_id, action.agent_id, action.reason)
        for task in (offer.whisper, offer.speech):
            if task is not None:
                task.cancel()
        if offer.leg is not None:
            self._spawn(offer.leg.hangup())
        elif offer.task is not None:
            offer.task.cancel()  # a dial still ringing: UserAgent.dial sends CANCEL
        self._notify("ended", action.call_id, action.agent_id)

    def announce(self, action: Announce) -> None:
        caller = self._callers.get(action.call_id)
        if caller is None or caller.connected:
            return
        if not caller.ready.is_set():
            caller.pending_announce = announcement_text(action)  # played when the bot has let go of the leg
            return
        self._stop_player(caller)
        caller.player = self._spawn(self._play(caller.leg, announcement_text(action), after=caller.apology))

    def connect(self, action: Connect) -> Awaitable[None]:
        return self._connect(action)

    def fallback(self, action: Fallback, callback_id: int | None) -> Awaitable[None]:
        return self._fallback(action, callback_id)

    def transfer(self, action: Transfer) -> Awaitable[None]:
        return self._transfer(action)

    # --- internals -------------------------------------------------------------------------------------------
    def _whisper_text(self, action: RingAgent) -> str:
        caller = self._callers.get(action.call_id)
        whisper = caller.request.whisper if caller is not None else QueueRequest().whisper
        return whisper + (" " + CONFIRM_PROMPT if action.confirm else "")

    def _on_action(self, action: Action) -> None:
        if not isinstance(action, CallLeftQueue):
            return
        caller = self._callers.get(action.call_id)
        if caller is None:
            return
        caller.result.outcome = action.outcome
        caller.result.queue = action.queue
        caller.result.wait_s = action.wait_s
        caller.result.agent_id = action.agent_id
        if action.outcome == "abandoned":
            caller.finish()

    def _caller_key_listener(self, call_id: str) -> Callable[[str], None]:
        def on_key(key: str) -> None:
            caller = self._callers.get(call_id)
            if self.runner is not None and caller is not None and not caller.connected:
                self.runner.caller_key(call_id, key)

        return on_key

    async def _watch_caller(self, caller: _Caller) -> None:
        await caller.leg.ended.wait()
        caller.ready.set()  # nothing more to wait for on a leg that ended
        if not caller.connected and self.runner is not None:
            self.runner.hangup(caller.leg.call_id)  # abandoned, if still queued
        if not caller.connected and not caller.in_fallback:
            # Left during a transfer, or before anything took the call: nothing else will finish it.
            caller.finish()

    async def _ring(self, offer: _Offer) -> None:
        a = offer.action
        assert self.runner is not None
        web = a.contact == "webrtc"
        if (web and self.web_ring is None) or not (web or a.contact.startswith(("sip:", "sips:"))):
            self.runner.agent_unreachable(a.call_id, a.agent_id, "no phone")
            return
        if not web and self.ua is None:
            self.runner.agent_unreachable(a.call_id, a.agent_id, "SIP is off")
            return
        caller = self._callers.get(a.call_id)
        shown = caller.leg.caller if caller is not None else None
        try:
            if web:
                assert self.web_ring is not None
                leg = await self.web_ring(a.agent_id, a.call_id, a.timeout_s + RING_GRACE_S)
            else:
                assert self.ua is not None
                leg = await self.ua.dial(a.contact, caller=_sip_user(shown), ring_timeout=a.timeout_s + RING_GRACE_S)
        except DialError as exc:
            log.info("call %s: agent %s not reached: %s %s", a.call_id, a.agent_id, exc.status, exc.reason)
            if not offer.withdrawn:
                self._offers.pop((a.call_id, a.agent_id), None)
                # 486/603: the agent (or their phone) refused this call.
                if exc.status in (486, 600, 603):
                    self.runner.agent_declined(a.call_id, a.agent_id)
                else:
                    self.runner.agent_unreachable(a.call_id, a.agent_id, exc.reason if web else f"SIP {exc.status}")
            return
        if offer.withdrawn:
            await leg.hangup()
            return
        offer.leg = leg
        self._agent_legs[a.agent_id] = leg
        if a.confirm:
            leg.add_dtmf_listener(lambda key: self._agent_key(a.call_id, a.agent_id, key))
        self._spawn(self._watch_agent(offer, leg))
        offer.whisper = self._spawn(self._whisper(leg, offer))
        self._notify("answered", a.call_id, a.agent_id)
        self.runner.agent_answered(a.call_id, a.agent_id)

    def _agent_key(self, call_id: str, agent_id: str, key: str) -> None:
        if self.runner is not None and (call_id, agent_id) in self._offers:
            self.runner.agent_key(call_id, agent_id, key)

    async def _watch_agent(self, offer: _Offer, leg: Leg) -> None:
        await leg.ended.wait()
        a = offer.action
        if self._agent_legs.get(a.agent_id) is leg:
            del self._agent_legs[a.agent_id]
        if not offer.withdrawn and self._offers.get((a.call_id, a.agent_id)) is offer and self.runner is not None:
            # The agent hung up before taking the call: the next agent is tried.
            self._offers.pop((a.call_id, a.agent_id), None)
            self.runner.agent_declined(a.call_id, a.agent_id)

    async def _whisper(self, leg: Leg, offer: _Offer) -> None:
        assert offer.speech is not None
        await _play_once(leg, await offer.speech)

    async def _connect(self, action: Connect) -> None:
        assert self.runner is not None
        caller = self._callers.get(action.call_id)
        offer = self._offers.pop((action.call_id, action.agent_id), None)
        if caller is None or offer is None or offer.leg is None:
            log.warning("call %s: connect without a caller or agent leg", action.call_id)
            if offer is not None and offer.leg is not None:
                await offer.leg.hangup()
            self.runner.hangup(action.call_id)
            if caller is not None:
                caller.finish()
            return
        agent_leg = offer.leg
        caller.connected = True
        if offer.whisper is not None:
            if offer.action.confirm:
                offer.whisper.cancel()  # the agent accepted: no need to hear the rest
            try:
                await offer.whisper
            except asyncio.CancelledError:
                pass
            except Exception:  # no whisper (the voice failed) is better than no call
                log.exception("call %s: whisper to %s failed", action.call_id, action.agent_id)
        # Never bridged while the bot is still talking to the caller (the agent was rung during its last words).
        await caller.ready.wait()
        await _finished(caller.apology)
        self._stop_player(caller)
        agent_leg.clear_audio()
        caller.leg.clear_audio()
        loop = asyncio.get_running_loop()
        if caller.leg.state != "answered" or agent_leg.state != "answered":
            self._notify("ended", action.call_id, action.agent_id)  # the agent heard the whisper: told before the BYE
            for leg in (caller.leg, agent_leg):
                await leg.hangup()
            self.runner.hangup(action.call_id)
            caller.result.talk_s = 0.0
            if caller.leg.state != "answered":
                caller.result.outcome = "abandoned"  # gone before the bridge (e.g. during the bot's last words)
            caller.finish()
            return
        started = loop.time()
        bridge = Bridge(caller.leg, agent_leg, hangup_together=False)
        taps = self._tap_bridge(action.call_id, caller.leg, agent_leg) if self.tap is not None else []
        # Ready before it may be needed: the caller must hear it at once if the agent's side drops.
        apology = self._spawn(self.speak(AGENT_LOST_TEXT))
        self._notify("connected", action.call_id, action.agent_id)
        log.info("call %s: bridged to agent %s", action.call_id, action.agent_id)
        lost: str | None = None
        try:
            lost = await _agent_dropped(caller.leg, agent_leg, self._agent_no_media_s(action.queue))
        finally:
            bridge.stop()
            for leg, sink in taps:
                leg.remove_sink(sink)
            talk_s = round(loop.time() - started, 2)
            for leg in (caller.leg, agent_leg) if lost is None else (agent_leg,):
                if leg.state != "ended":
                    self._spawn(leg.hangup())
            self._notify("ended", action.call_id, action.agent_id)
            if lost is None:
                apology.cancel()
                caller.result.talk_s = talk_s
                caller.result.agent_id = action.agent_id
                self.runner.hangup(action.call_id)  # handle time and wrap-up
                caller.finish()
        if lost is not None:
            self._agent_lost(caller, action, lost, talk_s, apology)

    def _agent_no_media_s(self, queue: str) -> float:
        assert self.runner is not None
        q = self.runner.acd.queues.get(queue)
        return q.agent_no_media_s if q is not None else 0.0

    def _agent_lost(self, caller: _Caller, action: Connect, why: str, talk_s: float,
                    apology: asyncio.Task[bytes]) -> None:
        """The agent's side dropped while the caller stayed: apology, then back to the queue (or a callback)."""
        assert self.runner is not None
        log.warning("call %s: agent %s lost after %.1f s (%s); the caller goes back to the queue",
                    action.call_id, action.agent_id, talk_s, why)
        caller.connected = False
        caller.result.agents_lost.append(AgentLost(action.agent_id, why, talk_s))
        caller.leg.clear_audio()
        caller.apology = self._spawn(self._play_apology(caller.leg, apology))
        caller.player = self._spawn(self._play(caller.leg, None, after=caller.apology))
        self.runner.agent_lost(action.call_id)  # may ring the next agent, or give a callback, at once

    async def _play_apology(self, leg: Leg, speech: asyncio.Task[bytes]) -> None:
        try:
            pcm = await speech
        except Exception:  # hold music without words is better than a silent line
            log.exception("call %s: the apology could not be synthesised", leg.call_id)
            return
        await _play_once(leg, pcm)

    async def _fallback(self, action: Fallback, callback_id: int | None) -> None:
        caller = self._callers.get(action.call_id)
        if caller is None:
            return
        caller.result.callback_id = callback_id
        caller.in_fallback = True
        await caller.ready.wait()
        await _finished(caller.apology)
        self._stop_player(caller)
        key: str = action.kind
        if key == "callback" and callback_id is None:
            key = "callback_failed"
        try:
            if key == "voicemail" and self.voicemail is not None:
                await self._record_voicemail(caller, action)
            elif caller.leg.state == "answered":
                await _play_once(caller.leg, await self.speak(FALLBACK_TEXT[key]))
        finally:
            caller.finish()

    async def _record_voicemail(self, caller: _Caller, action: Fallback) -> None:
        """Prompt, beep, record until the caller hangs up, stops talking or the time is up; keep it."""
        assert self.voicemail is not None
        leg = caller.leg
        if leg.state == "answered":
            await _play_once(leg, await self.speak(FALLBACK_TEXT["voicemail_prompt"]) + _beep())
        frames: list[bytes] = []
        spoke = asyncio.Event()
        quiet = {"frames": 0}

        def record(pcm: bytes) -> None:
            frames.append(pcm)
            x = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
            if len(x) and float(np.sqrt(np.mean(x * x))) > VOICEMAIL_LEVEL:
                spoke.set()
                quiet["frames"] = 0
            else:
                quiet["frames"] += 1

        leg.add_sink(record)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + VOICEMAIL_MAX_S
        try:
            while leg.state == "answered" and loop.time() < deadline:
                if spoke.is_set() and quiet["frames"] * FRAME_S >= VOICEMAIL_SILENCE_S:
                    break
                await asyncio.sleep(0.1)
        finally:
            leg.remove_sink(record)
        audio = b"".join(frames)
        caller.result.voicemail_s = round(len(audio) / BYTES_PER_MS / 1000, 2)
        if leg.state == "answered":
            await _play_once(leg, await self.speak(FALLBACK_TEXT["voicemail_done"]))
        if spoke.is_set():
            await self.voicemail(action, audio)

    async def _transfer(self, action: Transfer) -> None:
        caller = self._callers.get(action.call_id)
        if caller is None:
            return
        await caller.ready.wait()
        self._stop_player(caller)
        leg = caller.leg
        try:
            try:
                status = await leg.transfer(action.target)
                if status < 300:
                    caller.result.outcome = "transferred"
                    return
                log.info("call %s: REFER to %s ended with %s; dialling it", action.call_id, action.target, status)
            except CallError as exc:
                log.info("call %s: %s; dialling %s instead", action.call_id, exc, action.target)
            # The caller's phone cannot transfer itself: a new leg to the target, bridged.
            try:
                if self.ua is None:
                    raise DialError(503, "SIP is off")
                other = await self.ua.dial(action.target, caller=_sip_user(leg.caller))
            except DialError as exc:
                log.warning("call %s: blind transfer to %s failed: %s", action.call_id, action.target, exc)
                caller.result.outcome = "failed"
                if leg.state == "answered":
                    await _play_once(leg, await self.speak(TRANSFER_FAILED_TEXT))
                return
            caller.connected = True
            caller.result.outcome = "transferred"
            await Bridge(leg, other).wait()
        finally:
            caller.finish()

    def _tap_bridge(self, call_id: str, caller_leg: Leg, agent_leg: Leg) -> list[tuple[Leg, AudioSink]]:
        """Give :attr:`tap` what each side says; the sinks added, for removing them when the bridge ends."""
        tap = self.tap
        assert tap is not None
        taps: list[tuple[Leg, AudioSink]] = []
        for leg, side in ((caller_leg, "caller"), (agent_leg, "agent")):

            def heard(pcm: bytes, side: str = side) -> None:
                try:
                    tap(call_id, side, pcm)
                except Exception:
                    log.exception("call %s: audio tap failed", call_id)

            leg.add_sink(heard)
            taps.append((leg, heard))
        return taps

    def _stop_player(self, caller: _Caller) -> None:
        if caller.player is not None:
            caller.player.cancel()
            caller.player = None
            caller.leg.clear_audio()

    async def _play(self, leg: Leg, text: str | None, after: asyncio.Task[None] | None = None) -> None:
        """Once ``after`` (what the leg is hearing) is over: ``text`` (if any), then hold music until cancelled."""
        await _finished(after)
        if text:
            await _play_once(leg, await self.speak(text))
        for frame in hold_music_frames(FRAME_MS, SAMPLE_RATE):
            if leg.state != "answered":
                return
            await leg.write_audio(frame)

    def _notify(self, event: str, call_id: str, agent_id: str) -> None:
        if self.on_offer is not None:
            try:
                self.on_offer(event, call_id, agent_id)
            except Exception:
                log.exception("offer listener failed")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("live queue task failed", exc_info=task.exception())


async def _play_once(leg: Leg, pcm: bytes) -> None:
    """Play ``pcm`` to ``leg`` and return once it has been sent (or the leg ended)."""
    for i in range(0, len(pcm), FRAME_BYTES):
        if leg.state != "answered":
            return
        await leg.write_audio(pcm[i : i + FRAME_BYTES])
    await _drained(leg)


async def _agent_dropped(caller: Leg, agent: Leg, no_media_s: float) -> str | None:
    """Wait while the bridge is up; None if it ended normally (either side hung up), else how the agent's side
    was lost: ``no_media`` (nothing from them for ``no_media_s``; 0: never checked) or its leg's end reason."""
    ends = [asyncio.ensure_future(leg.ended.wait()) for leg in (caller, agent)]
    try:
        while not any(t.done() for t in ends):
            if no_media_s > 0 and agent.media_idle_s >= no_media_s:
                return "no_media" if caller.state == "answered" else None
            # A leg offers no "media stopped" event: its idle time is polled.
            await asyncio.wait(ends, timeout=MEDIA_CHECK_S)
    finally:
        for t in ends:
            t.cancel()
    if caller.state == "answered" and agent.end_reason not in NORMAL_ENDS:
        return agent.end_reason or "ended"
    return None


async def _finished(task: asyncio.Task[None] | None) -> None:
    """Wait for ``task`` (if any) to be over, however it ends; not cancelled with the waiter."""
    if task is not None and not task.done():
        await asyncio.wait([task])


async def _drained(leg: Leg) -> None:
    """Return once the audio queued for ``leg`` has been sent (or the leg ended)."""
    # A leg offers no "played" event; its queue drains at 20 ms per frame.
    while leg.state == "answered" and leg.queued_ms > 0:
        await asyncio.sleep(FRAME_S)


def _beep(seconds: float = 0.4, hz: float = 1000.0) -> bytes:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def _sip_user(number: str | None) -> str:
    """The caller's number as the From user shown on the agent's phone, if it is a plain number or name."""
    if number and re.fullmatch(r"\+?[A-Za-z0-9._-]{1,32}", number):
        return number
    return "voicebot"
