"""Warm transfer in ``voicebot serve``: the agent queue on live SIP calls, with the process's Piper voice and
a record of every hand-off.

While caller and agent are bridged, both sides are cut into utterances (by level) and transcribed with the
shared Whisper model; each turn goes into the call record as soon as it is transcribed (speaker ``caller`` or
``agent``, ``extra.kind`` ``bridged``), so it reaches the dashboard live, and ``GET /api/calls/{id}/transfer``
lists them (records of older versions kept them in ``voicebot_transfer_turns``, still read). Prometheus:
``voicebot_queue_waiting``, ``voicebot_queue_calls_total``, ``voicebot_queue_wait_seconds``, ``voicebot_agents``.

:class:`TransferService` owns the one ACD of the process (a :class:`~telephony.queue.runner.QueueRunner`
driving a :class:`~telephony.queue.live.LiveQueue`). The SIP call runner and the WebRTC server give it a
caller's leg when the bot has decided to hand off (the agent is rung while the bot says its last sentence); it
returns when the call is over and writes a row to ``voicebot_transfers`` (queue, agent, outcome, wait, talk
time). It holds the call record open meanwhile and closes it at the end with the queue's outcome: a caller who
hangs up while waiting makes it ``abandoned``; a call an agent took keeps ``handoff``.

Events (``voicebot.events``): ``handoff`` with the packet when the queue gets a call, ``call.state`` ``queued``
(with ``queue``) and ``agent`` (with ``agent_id``), and ``queue`` snapshots (the bodies of ``GET /api/queues``
and ``GET /api/agents``) after each change of the ACD.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.engine import Engine

from audio.pcm import SAMPLE_RATE, SAMPLE_WIDTH, resample
from telephony.queue.acd import QueueError
from telephony.queue.actions import Action, AgentStateChanged, CallLeftQueue, Fallback
from telephony.queue.claims import AgentClaims
from telephony.queue.entries import QueueEntries
from telephony.queue.live import LiveQueue, TransferResult
from telephony.queue.runner import QueueRunner
from telephony.queue.store import CallbackStore
from voicebot.events import handoff_customer
from voicebot.monitor import MONITORS
from voicebot.redaction import Redactor
from voicebot.transfer.ending import CallEnding, why_ended
from voicebot.transfer.request import queue_request_from_packet
from voicebot.transfer.store import CALL_OUTCOME, TransferStore
from voicebot.transfer.utterances import Utterances

if TYPE_CHECKING:
    from dialogs.manager.handoff import HandoffPacket
    from telephony.call import CallLeg
    from telephony.leg import Leg
    from telephony.sip.ua import UserAgent
    from voicebot.config import Settings
    from voicebot.events import EventBus
    from voicebot.pipeline.call import CallContext
    from voicebot.pipeline.shared import SharedModels
    from voicebot.storage import CallStore

log = logging.getLogger(__name__)


class AgentPhoneBook(Protocol):
    """The agent pages connected as phones (agents whose contact is ``webrtc``), as the queue rings them."""

    def ring(self, agent_id: str, call_id: str, timeout: float) -> Awaitable[Any]:
        """Ring ``agent_id``'s page; the answered leg, or raises ``DialError``."""
        ...


class PageCalls(Protocol):
    """Calls from other nodes of a cluster to agent pages connected here (``voicebot.cluster.pages.PageRelay``)."""

    async def handle(self, leg: CallLeg) -> None:
        """Ring the page the ringing ``leg`` is for and relay it once answered, or reject the leg."""
        ...

    def key(self, agent_id: str, key: str) -> bool:
        """Send the agent's ``key`` to the caller's node; False if the agent has no such call."""
        ...


QUEUE_WAITING = Gauge("voicebot_queue_waiting", "Callers waiting for an agent.", ["queue"])
QUEUE_CALLS = Counter("voicebot_queue_calls_total", "Callers who left a queue, by outcome.", ["queue", "outcome"])
QUEUE_WAIT = Histogram("voicebot_queue_wait_seconds", "Time in the queue of callers who left it.", ["queue"],
                       buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600))
AGENTS = Gauge("voicebot_agents", "Agents by state.", ["state"])
AGENT_STATES = ("offline", "available", "ringing", "busy", "wrap_up", "paused")

# Piper pace of the whisper (1.0 is the callers' pace): agents hear one on every call and the caller waits for
# it to end; 0.7 stays intelligible (Whisper transcribes it in tests/test_transfer_e2e.py).
WHISPER_LENGTH_SCALE = 0.7
WHISPER_PAUSE_S = 0.08  # between the whisper's short sentences (Piper leaves ~0.2 s after each)

class TransferService:
    """The agent queue of one ``voicebot serve`` process. :meth:`start` inside the event loop, give it the
    SIP user agent (``ua``) that dials agents, then :meth:`handoff` each caller the bot hands over."""

    def __init__(self, settings: Settings, shared: SharedModels, engine: Engine, *, transcribe: bool = True,
                 store: CallStore | None = None, events: EventBus | None = None):
        self.settings = settings
        self.transcribe = transcribe
        self.store = store  # the call records: bridged turns go there as they are transcribed
        self.events = events
        self._snapshot_due = False
        self._writes: set[asyncio.Future[Any]] = set()
        self._segmenters: dict[tuple[str, str], Utterances] = {}
        self._stt: dict[str, list[asyncio.Task[tuple[str, str, datetime, datetime] | None]]] = {}
        self.shared = shared
        self.records = TransferStore(engine)
        self.records.redactor = Redactor.from_settings(settings)
        self.callbacks = CallbackStore(engine)
        self.ua: UserAgent | None = None
        self.live: LiveQueue | None = None
        self.runner: QueueRunner | None = None
        # What the agent page shows: the packet of the call currently offered to / taken by each agent.
        self.current: dict[str, dict[str, Any]] = {}
        self.last: dict[str, dict[str, Any]] = {}  # each agent's call that ended last (the page's wrap-up form)
        self._bridged: dict[str, tuple[Leg | None, Leg | None]] = {}  # agent id -> (caller's, agent's) legs
        self.phones: AgentPhoneBook | None = None  # agent pages connected as phones: see use_phones
        self.claims: AgentClaims | None = None  # agents shared with other nodes (a cluster); None: this ACD only
        self.entries: QueueEntries | None = None  # waiting callers and statistics shared likewise
        self.pages: PageCalls | None = None  # other nodes' calls to agent pages here (a cluster)

    @classmethod
    def from_runtime(cls, runtime: Any) -> TransferService | None:
        """A service for ``runtime`` (a :class:`voicebot.runtime.Runtime`), or None without
        ``agents:`` and ``queues:`` in the config."""
        settings = runtime.settings
        if not settings.agents or not settings.queues:
            return None
        return cls(settings, runtime.shared, runtime.engine.database.engine, store=runtime.store,
                   events=runtime.events)

    async def start(self) -> None:
        """Create the ACD on the running loop. Agents without a SIP user agent are rung in vain (unreachable)."""
        if self.runner is not None:
            return
        self.live = LiveQueue(self.ua, self.speak)  # ua: set later by use_ua (the SIP server starts first)
        self.live.speak_whisper = self.speak_whisper
        self.live.on_offer = self._on_offer
        if self.phones is not None:
            self.live.web_ring = self.phones.ring
        if self.transcribe:
            self.live.tap = self._tap
        self.live.voicemail = self._keep_voicemail
        self.live.on_queued = self._on_queued
        self.runner = QueueRunner.on_loop(self.settings.agents, self.settings.queues, self.live,
                                          callbacks=self.callbacks, claims=self.claims, entries=self.entries)
        self.live.attach(self.runner)
        self.runner.add_listener(self._metrics)
        self.runner.add_listener(self._queue_changed)
        if self.events is not None:
            self.events.add_listener(self._on_event)
        self._metrics(None)

    def use_ua(self, ua: UserAgent) -> None:
        """Dial agents through ``ua`` (the SIP server's user agent)."""
        self.ua = ua
        if self.live is not None:
            self.live.ua = ua

    def use_phones(self, phones: AgentPhoneBook) -> None:
        """Ring agents whose contact is ``webrtc`` on ``phones`` (the server's agent pages)."""
        self.phones = phones
        if self.live is not None:
            self.live.web_ring = phones.ring

    async def close(self) -> None:
        if self.live is not None:
            await self.live.close()
        if self.runner is not None:
            await self.runner.close()

    async def speak(self, text: str, length_scale: float | None = None, pause_s: float | None = None) -> bytes:
        """``text`` in the process's Piper voice as 16 kHz PCM (sentence by sentence, through the TTS cache);
        ``length_scale`` below 1 speaks faster (default: the configured TTS pace); ``pause_s`` cuts the
        silence after each sentence to at most that long (default: Piper's own)."""
        from voicebot.pipeline.shared import split_sentences

        parts = []
        for sentence in split_sentences(text) or [text]:
            speech = await self.shared.run(self.shared.synthesize, sentence, length_scale)
            audio = speech.audio
            if pause_s is not None:
                audio = _trim_tail(audio, int(self.shared.tts_sample_rate * pause_s))
            parts.append(audio)
        return resample(b"".join(parts), self.shared.tts_sample_rate, SAMPLE_RATE)

    async def speak_whisper(self, text: str) -> bytes:
        """The whisper to an agent, faster and with shorter pauses than to callers: the caller waits while
        the agent hears it."""
        return await self.speak(text, WHISPER_LENGTH_SCALE, WHISPER_PAUSE_S)

    async def handoff(self, leg: Leg, call: CallContext | None, packet: HandoffPacket | None, *,
                      caller_ready: asyncio.Event | None = None) -> TransferResult:
        """Queue the caller on ``leg`` with the hand-off ``packet``; returns when their call is over, after
        recording it. ``call`` (the bot's call context) gets its outcome corrected if the caller gave up.

        With ``caller_ready`` the agent is rung at once, while the bot may still talk to the caller; the
        queue takes the leg (and bridges) only once the event is set (see ``LiveQueue.transfer_call``)."""
        if self.runner is None:
            await self.start()
        assert self.live is not None
        if self.ua is not None:
            self.live.ua = self.ua
        call_id = leg.call_id
        request = queue_request_from_packet(packet)
        if packet is None:  # the agent page still learns which call it is
            request = replace(request, details={"call_id": call_id})
        # The record stays open (the call live on the dashboard) until the queue is done; closed below.
        held = call is not None and self.store is not None and call.hold_record()
        log.info("call %s: handed to queue %s", call_id, request.queue)
        self._publish("handoff", call_id=call_id, packet=_jsonable(request.details), customer=handoff_customer(packet))
        result = TransferResult(call_id=call_id, outcome="failed")
        try:
            with MONITORS.holding(call_id):  # live for listeners until the queue is done with the call
                result = await self.live.transfer_call(leg, request, caller_ready=caller_ready)
            log.info("call %s: queue outcome %s (agent %s, waited %.1f s)", call_id, result.outcome,
                     result.agent_id, result.wait_s)
        finally:
            if call is not None and CALL_OUTCOME.get(result.outcome):
                call.outcome = CALL_OUTCOME[result.outcome]
            turns = await self._transcripts(call_id)
            try:
                await asyncio.to_thread(self.records.add, result, turns, correct_call=not held)
            except Exception:
                log.exception("call %s: could not record the hand-off", call_id)
            if held:
                assert call is not None and self.store is not None
                await self.store.arun("close_call", call_id, call.outcome or "handoff", call.end_reason or "handoff")
        return result

    async def _keep_voicemail(self, action: Fallback, audio: bytes) -> None:
        try:
            text = await self.shared.run(self.shared.transcribe, audio)
        except Exception:
            log.exception("call %s: transcribing the voice message failed", action.call_id)
            text = ""
        vid = await asyncio.to_thread(
            self.records.add_voicemail, call_id=action.call_id, queue=action.queue, caller=action.caller,
            reason=action.reason, audio=audio, transcript=text, handoff=action.request.details)
        log.info("call %s: voice message %d kept (%.1f s)", action.call_id, vid, len(audio) / SAMPLE_WIDTH / SAMPLE_RATE)

    # --- transcripts of the bridged conversation ------------------------------------------------------------
    def _tap(self, call_id: str, side: str, pcm: bytes) -> None:
        MONITORS.feed(call_id, side, pcm)  # supervisors listening in (voicebot.monitor)
        seg = self._segmenters.get((call_id, side))
        if seg is None:
            seg = self._segmenters[(call_id, side)] = Utterances()
        done = seg.feed(pcm)
        if done is not None:
            self._transcribe_later(call_id, side, *done)

    def _transcribe_later(self, call_id: str, side: str, audio: bytes, start: datetime, end: datetime) -> None:
        async def run() -> tuple[str, str, datetime, datetime] | None:
            text = await self.shared.run(self.shared.transcribe, audio)
            if not text.strip():
                return None
            if self.store is not None:
                # Into the call record at once (the dashboard shows it live); not kept for the old table.
                await self.store.arun("add_turn", call_id, side, text.strip(), start, end=end,
                                      extra={"kind": "bridged"})
                return None
            return (side, text, start, end)

        self._stt.setdefault(call_id, []).append(asyncio.ensure_future(run()))

    async def _transcripts(self, call_id: str) -> list[tuple[str, str, datetime, datetime]]:
        """Every utterance of the bridged call, the last ones flushed, once transcribed (empty when they went
        into the call record)."""
        for side in ("caller", "agent"):
            seg = self._segmenters.pop((call_id, side), None)
            rest = seg.flush() if seg is not None else None
            if rest is not None:
                self._transcribe_later(call_id, side, *rest)
        tasks = self._stt.pop(call_id, [])
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, timeout=60)
        for task in pending:
            task.cancel()
        turns = []
        for task in done:
            if task.exception() is not None:
                log.error("call %s: transcribing the bridged call failed", call_id, exc_info=task.exception())
            elif task.result() is not None:
                turns.append(task.result())
        return turns  # type: ignore[return-value]

    def _metrics(self, action: Action | None) -> None:
        if isinstance(action, CallLeftQueue):
            QUEUE_CALLS.labels(action.queue, action.outcome).inc()
            QUEUE_WAIT.labels(action.queue).observe(action.wait_s)
        if self.runner is None:
            return
        if action is None or isinstance(action, AgentStateChanged):
            counts = dict.fromkeys(AGENT_STATES, 0)
            for agent in self.runner.acd.agents():
                counts[agent.state] = counts.get(agent.state, 0) + 1
            for state, n in counts.items():
                AGENTS.labels(state).set(n)
        for q in self.settings.queues:
            QUEUE_WAITING.labels(q.name).set(self.runner.acd.queue_stats(q.name)["waiting"])

    # --- events -----------------------------------------------------------------------------------------------
    def _publish(self, type_: str, **data: Any) -> None:
        if self.events is not None:
            self.events.publish(type_, **data)

    def _queue_changed(self, action: Action | None = None) -> None:
        """A snapshot of queues and agents, once per turn of the loop however many actions it saw."""
        if self.events is None or self._snapshot_due:
            return
        self._snapshot_due = True
        asyncio.get_running_loop().call_soon(self._publish_snapshot)

    def _publish_snapshot(self) -> None:
        self._snapshot_due = False
        if self.runner is None:
            return
        self._publish("queue", queues=self.runner.acd.snapshot()["queues"], agents=self.runner.acd.agents_snapshot())

    def set_agent_state(self, agent_id: str, state: str, reason: str | None = None) -> None:
        """Log an agent in, pause or log them out (``QueueRunner.set_agent_state``), and tell the other nodes of
        a cluster (event ``agent.set``), whose ACDs know the agent too. Raises ``QueueError`` as the runner does."""
        assert self.runner is not None
        self.runner.set_agent_state(agent_id, state, reason)
        if agent_id in self.last:  # ready (or paused, or out) after the call: its end is no longer news
            self.last[agent_id].pop("ended", None)
        self._publish("agent.set", agent_id=agent_id, state=state, reason=reason)

    def _on_event(self, event: Mapping[str, Any]) -> None:
        # Another node's agent.set (its own are applied already; on a single node events carry no node).
        node = event.get("node")
        if event.get("type") != "agent.set" or self.runner is None or node is None or self.events is None \
                or node == self.events.node_id:
            return
        try:
            self.runner.set_agent_state(str(event.get("agent_id")), str(event.get("state")), event.get("reason"))
        except QueueError as exc:  # an agent this node's config lacks: the configs differ
            log.warning("agent state from node %s not applied: %s", node, exc)

    def _on_queued(self, call_id: str) -> None:
        assert self.runner is not None
        queue = self.runner.acd.waiting_in(call_id)
        if queue is not None:  # not when the call left at once (blind transfer, no agent logged in)
            self._publish("call.state", call_id=call_id, state="queued", queue=queue)
        self._queue_changed()

    def _on_offer(self, event: str, call_id: str, agent_id: str) -> None:
        if event == "connected" and self.live is not None:  # kept to tell the agent why the call ended
            self._bridged[agent_id] = (self.live.caller_leg(call_id), self.live.agent_leg(agent_id))
        if event == "connected":
            self._publish("call.state", call_id=call_id, state="agent", agent_id=agent_id,
                          queue=self.live.queue_of(call_id) if self.live is not None else None)
            if self.store is not None:
                self._spawn_write("set_agent", call_id, agent_id)
        if event in ("ringing", "answered", "connected"):
            request = self.live.request_of(call_id) if self.live is not None else None
            packet = dict(request.details) if request is not None else None
            self.current[agent_id] = {"call_id": call_id, "status": event, "handoff": packet}
        elif event == "ended":
            legs = self._bridged.pop(agent_id, None)
            cur = self.current.get(agent_id)
            if cur is not None and cur.get("call_id") == call_id:
                self.last[agent_id] = self.current.pop(agent_id)
                if legs is None and self.live is not None:  # not bridged yet: the agent may be hearing the whisper
                    legs = (self.live.caller_leg(call_id), self.live.agent_leg(agent_id))
                ending = why_ended(*legs) if legs is not None else None
                # Before the bridge only the caller's side ending is news (else the offer was declined or withdrawn).
                if ending is not None and (cur.get("status") == "connected" or
                                           cur.get("status") == "answered" and ending.reason.startswith("caller_")):
                    self._tell_ended(agent_id, call_id, ending)

    def _tell_ended(self, agent_id: str, call_id: str, ending: CallEnding) -> None:
        """The agent's bridged call is over: their page shows why (``last.ended``) while they wrap up."""
        self.last[agent_id]["ended"] = {"reason": ending.reason, "text": ending.text}
        log.info("call %s: agent %s's call ended: %s", call_id, agent_id, ending.reason)

    async def page_call(self, leg: CallLeg) -> None:
        """An inbound SIP call to an agent page (``page-AGENT``) from another node of a cluster; 404 on a single
        node."""
        if self.pages is None:
            log.info("call %s to %s refused (404): not a cluster node", leg.call_id, leg.dialled)
            await leg.reject(404, "Not Found")
            return
        await self.pages.handle(leg)

    def remote_offer(self, event: str, call_id: str, agent_id: str, ending: CallEnding | None = None) -> None:
        """What the agent page shows of a call another node rings it for (``ringing``, ``answered``, ``ended``
        with why a call the agent answered ended); its hand-off packet is the one relayed from that node (see
        ``voicebot.server.agents``)."""
        if event in ("ringing", "answered"):
            cur = self.current.get(agent_id)
            packet = cur.get("handoff") if cur is not None and cur.get("call_id") == call_id else None
            self.current[agent_id] = {"call_id": call_id, "status": event, "handoff": packet, "remote": True}
        elif event == "ended":
            cur = self.current.get(agent_id)
            if cur is not None and cur.get("call_id") == call_id:
                self.last[agent_id] = self.current.pop(agent_id)
                if ending is not None:
                    self._tell_ended(agent_id, call_id, ending)

    def _spawn_write(self, method: str, *args: Any) -> None:
        assert self.store is not None
        task = asyncio.ensure_future(self.store.arun(method, *args))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)


def _jsonable(data: Mapping[str, object]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(data), default=str))


def _trim_tail(pcm: bytes, keep: int, level: int = 300) -> bytes:
    """``pcm`` (16-bit) with at most ``keep`` quiet samples after its last sample louder than ``level``."""
    x = np.frombuffer(pcm, dtype=np.int16)
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > level)
    if not len(loud):
        return pcm
    return x[: min(len(x), int(loud[-1]) + 1 + keep)].tobytes()
