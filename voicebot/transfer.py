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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import JSON, DateTime, Float, Integer, LargeBinary, String, Text, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from telephony.queue.actions import Action, AgentStateChanged, CallLeftQueue, Fallback
from telephony.queue.live import SAMPLE_RATE, LiveQueue, TransferResult
from telephony.queue.runner import QueueRunner
from telephony.queue.store import CallbackStore
from voicebot.monitor import MONITORS
from voicebot.redaction import Redactor
from voicebot.storage.models import ERASE_BY_NUMBER, ERASE_WITH_CALL, Base, CallRow, TurnRow

if TYPE_CHECKING:
    from telephony.leg import Leg
    from telephony.sip.ua import UserAgent
    from voicebot.config import Settings
    from voicebot.events import EventBus
    from voicebot.pipeline.call import CallContext
    from voicebot.pipeline.shared import SharedModels
    from voicebot.storage import CallStore

log = logging.getLogger(__name__)


class TransferRow(Base):
    """One hand-off of a call to the agent queue and how it ended."""

    __tablename__ = "voicebot_transfers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    wait_s: Mapped[float] = mapped_column(Float)
    talk_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    callback_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    voicemail_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TransferTurnRow(Base):
    """One utterance of the caller or the agent while they were bridged."""

    __tablename__ = "voicebot_transfer_turns"
    __table_args__ = {"info": {ERASE_WITH_CALL: True}}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    speaker: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VoicemailRow(Base):
    """A message a caller left when no agent could take the call: WAV audio, transcript, hand-off packet."""

    __tablename__ = "voicebot_voicemails"
    __table_args__ = {"info": {ERASE_WITH_CALL: True, ERASE_BY_NUMBER: "caller"}}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    queue: Mapped[str] = mapped_column(String(64))
    caller: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(String(32))
    seconds: Mapped[float] = mapped_column(Float)
    transcript: Mapped[str] = mapped_column(Text)
    wav: Mapped[bytes] = mapped_column(LargeBinary)
    handoff: Mapped[dict] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="new")


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

# What a queue outcome makes of the call record's outcome (None: keep the bot's "handoff").
CALL_OUTCOME = {"abandoned": "abandoned", "callback": "callback", "timeout": "no_agent", "no_agents": "no_agent",
                "failed": "no_agent"}


class TransferStore:
    """Hand-off rows beside the call records (same database)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.redactor = Redactor.default()  # card numbers ... never stored (the service sets privacy: from config)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def add(self, result: TransferResult, turns: Sequence[tuple[str, str, datetime, datetime]] = (), *,
            correct_call: bool = True) -> None:
        """Record how a hand-off ended and what caller and agent said (``(speaker, text, start, end)``; none
        when the turns went into the call record), and with ``correct_call`` set the call record's outcome
        and end time for it (without: whoever holds the record closes it)."""
        now = datetime.now(UTC)
        with self._sessions.begin() as s:
            for speaker, text, start, end in sorted(turns, key=lambda t: t[2]):
                s.add(TransferTurnRow(call_id=result.call_id, speaker=speaker, text=self.redactor.text(text),
                                      start=start, end=end))
            s.add(TransferRow(call_id=result.call_id, queue=result.queue, agent_id=result.agent_id,
                              outcome=result.outcome, wait_s=round(result.wait_s, 2), talk_s=result.talk_s,
                              callback_id=result.callback_id, voicemail_s=result.voicemail_s, at=now))
            if not correct_call:
                return
            values: dict[str, Any] = {"end": now}
            if CALL_OUTCOME.get(result.outcome):
                values["outcome"] = CALL_OUTCOME[result.outcome]
            s.execute(update(CallRow).where(CallRow.id == result.call_id).values(**values))

    def add_voicemail(self, *, call_id: str, queue: str, caller: str | None, reason: str, audio: bytes,
                      transcript: str, handoff: dict[str, Any]) -> int:
        """Keep a voice message (16 kHz PCM, stored as WAV); returns its id."""
        import io
        import wave

        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(audio)
        transcript, handoff = self.redactor.text(transcript), self.redactor.value(handoff)
        with self._sessions.begin() as s:
            row = VoicemailRow(call_id=call_id, queue=queue, caller=caller, reason=reason,
                               seconds=round(len(audio) / 2 / SAMPLE_RATE, 2), transcript=transcript,
                               wav=buf.getvalue(), handoff=json.loads(json.dumps(handoff, default=str)),
                               at=datetime.now(UTC), status="new")
            s.add(row)
            s.flush()
            return row.id

    def voicemails(self, status: str | None = "new") -> list[dict[str, Any]]:
        """Voice messages, newest first, without their audio."""
        with self._sessions() as s:
            q = select(VoicemailRow).order_by(VoicemailRow.id.desc())
            if status is not None:
                q = q.where(VoicemailRow.status == status)
            return [{"id": r.id, "call_id": r.call_id, "queue": r.queue, "caller": r.caller, "reason": r.reason,
                     "seconds": r.seconds, "transcript": r.transcript, "at": _iso(r.at), "status": r.status,
                     "summary": (r.handoff or {}).get("summary")} for r in s.scalars(q)]

    def voicemail_wav(self, voicemail_id: int) -> bytes | None:
        with self._sessions() as s:
            row = s.get(VoicemailRow, voicemail_id)
            return None if row is None else row.wav

    def set_voicemail_status(self, voicemail_id: int, status: str) -> bool:
        with self._sessions.begin() as s:
            row = s.get(VoicemailRow, voicemail_id)
            if row is None:
                return False
            row.status = status
            return True

    def of_call(self, call_id: str) -> dict[str, Any] | None:
        """The last hand-off of a call as JSON-ready data, or None."""
        with self._sessions() as s:
            row = s.scalars(select(TransferRow).where(TransferRow.call_id == call_id)
                            .order_by(TransferRow.id.desc())).first()
            if row is None:
                return None
            old = s.scalars(select(TransferTurnRow).where(TransferTurnRow.call_id == call_id)
                            .order_by(TransferTurnRow.start, TransferTurnRow.id))
            transcript: list[dict[str, str | None]] = [
                {"speaker": t.speaker, "text": t.text, "start": _iso(t.start), "end": _iso(t.end)} for t in old]
            # Since the bridged turns go into the call record: those of its turns marked "bridged".
            bridged = s.scalars(select(TurnRow).where(TurnRow.call_id == call_id, TurnRow.speaker != "bot")
                                .order_by(TurnRow.start, TurnRow.id))
            transcript += [{"speaker": t.speaker, "text": t.text, "start": _iso(t.start),
                            "end": _iso(t.end) if t.end is not None else None}
                           for t in bridged if (t.extra or {}).get("kind") == "bridged"]
            return {"queue": row.queue, "agent_id": row.agent_id, "outcome": row.outcome, "wait_s": row.wait_s,
                    "talk_s": row.talk_s, "callback_id": row.callback_id, "voicemail_s": row.voicemail_s,
                    "transcript": transcript}


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
        from voicebot.server.agent_phone import AgentPhones

        self.phones = AgentPhones()  # agent pages connected as phones (contact: webrtc)

    @classmethod
    def from_runtime(cls, runtime: Any) -> TransferService | None:
        """A service for ``runtime`` (a :class:`voicebot.server.runtime.Runtime`), or None without
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
        self.live.web_ring = self.phones.ring
        if self.transcribe:
            self.live.tap = self._tap
        self.live.voicemail = self._keep_voicemail
        self.live.on_queued = self._on_queued
        self.runner = QueueRunner.on_loop(self.settings.agents, self.settings.queues, self.live,
                                          callbacks=self.callbacks)
        self.live.attach(self.runner)
        self.runner.add_listener(self._metrics)
        self.runner.add_listener(self._queue_changed)
        self._metrics(None)

    def use_ua(self, ua: UserAgent) -> None:
        """Dial agents through ``ua`` (the SIP server's user agent)."""
        self.ua = ua
        if self.live is not None:
            self.live.ua = ua

    async def close(self) -> None:
        if self.live is not None:
            await self.live.close()
        if self.runner is not None:
            await self.runner.close()
        await self.phones.close()

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
        return _resample(b"".join(parts), self.shared.tts_sample_rate, SAMPLE_RATE)

    async def speak_whisper(self, text: str) -> bytes:
        """The whisper to an agent, faster and with shorter pauses than to callers: the caller waits while
        the agent hears it."""
        return await self.speak(text, WHISPER_LENGTH_SCALE, WHISPER_PAUSE_S)

    async def handoff(self, leg: Leg, call: CallContext | None, packet: dict[str, Any] | None, *,
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
        packet = dict(packet or {})
        packet.setdefault("call_id", leg.call_id)
        call_id = leg.call_id
        # The record stays open (the call live on the dashboard) until the queue is done; closed below.
        held = call is not None and self.store is not None and call.hold_record()
        log.info("call %s: handed to queue %s", call_id, packet.get("queue"))
        self._publish("handoff", call_id=call_id, packet=_jsonable(packet))
        result = TransferResult(call_id=call_id, outcome="failed")
        try:
            with MONITORS.holding(call_id):  # live for listeners until the queue is done with the call
                result = await self.live.transfer_call(leg, packet, caller_ready=caller_ready)
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
            reason=action.reason, audio=audio, transcript=text, handoff=action.handoff)
        log.info("call %s: voice message %d kept (%.1f s)", action.call_id, vid, len(audio) / 2 / SAMPLE_RATE)

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
            for agent in self.runner.acd.agents_snapshot():
                counts[agent["state"]] = counts.get(agent["state"], 0) + 1
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

    def _on_queued(self, call_id: str) -> None:
        assert self.runner is not None
        queue = next((q["name"] for q in self.runner.acd.snapshot()["queues"]
                      if any(w["call_id"] == call_id for w in q["waiting"])), None)
        if queue is not None:  # not when the call left at once (blind transfer, no agent logged in)
            self._publish("call.state", call_id=call_id, state="queued", queue=queue)
        self._queue_changed()

    def _on_offer(self, event: str, call_id: str, agent_id: str) -> None:
        if event == "connected":
            self._publish("call.state", call_id=call_id, state="agent", agent_id=agent_id,
                          queue=self.live.queue_of(call_id) if self.live is not None else None)
            if self.store is not None:
                self._spawn_write("set_agent", call_id, agent_id)
        if event in ("ringing", "answered", "connected"):
            packet = self.live.handoff_of(call_id) if self.live is not None else None
            self.current[agent_id] = {"call_id": call_id, "status": event, "handoff": packet}
        elif event == "ended":
            cur = self.current.get(agent_id)
            if cur is not None and cur.get("call_id") == call_id:
                self.current.pop(agent_id, None)


    def _spawn_write(self, method: str, *args: Any) -> None:
        assert self.store is not None
        task = asyncio.ensure_future(self.store.arun(method, *args))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)


class Utterances:
    """Cuts one side of a call (16 kHz PCM in 20 ms frames) into utterances by level: speech starts with a
    frame above ``threshold`` RMS and ends after ``silence_ms`` below it (or at ``max_s``). A plain level gate
    is enough for a transcript of a bridged call: both sides are close-talking phones."""

    def __init__(self, threshold: float = 400.0, silence_ms: int = 700, min_speech_ms: int = 200,
                 max_s: float = 20.0, keep_ms: int = 200):
        self.threshold = threshold
        self.silence_frames = silence_ms // 20
        self.min_frames = min_speech_ms // 20
        self.max_frames = int(max_s * 50)
        self.keep_frames = keep_ms // 20
        self._frames: list[bytes] = []
        self._recent: list[bytes] = []  # audio just before speech starts (soft first syllable)
        self._speech = 0
        self._quiet = 0
        self._start: datetime | None = None

    def feed(self, pcm: bytes) -> tuple[bytes, datetime, datetime] | None:
        """Add 20 ms; returns ``(audio, start, end)`` when an utterance has ended."""
        x = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
        loud = bool(len(x)) and float(np.sqrt(np.mean(x * x))) > self.threshold
        if self._start is None:
            if not loud:
                self._recent = (self._recent + [pcm])[-self.keep_frames:] if self.keep_frames else []
                return None
            self._start = datetime.now(UTC)
            self._frames = list(self._recent)
            self._speech, self._quiet = 0, 0
        self._frames.append(pcm)
        if loud:
            self._speech += 1
            self._quiet = 0
        else:
            self._quiet += 1
        if self._quiet >= self.silence_frames or len(self._frames) >= self.max_frames:
            return self.flush()
        return None

    def flush(self) -> tuple[bytes, datetime, datetime] | None:
        """The utterance in progress (if it had enough speech), ending now."""
        if self._start is None:
            return None
        start, frames, speech = self._start, self._frames, self._speech
        self._start, self._frames, self._recent = None, [], []
        if speech < self.min_frames:
            return None
        return b"".join(frames), start, datetime.now(UTC)


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))


def _iso(dt: datetime) -> str:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


def _trim_tail(pcm: bytes, keep: int, level: int = 300) -> bytes:
    """``pcm`` (16-bit) with at most ``keep`` quiet samples after its last sample louder than ``level``."""
    x = np.frombuffer(pcm, dtype=np.int16)
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > level)
    if not len(loud):
        return pcm
    return x[: min(len(x), int(loud[-1]) + 1 + keep)].tobytes()


def _resample(pcm: bytes, rate: int, target: int) -> bytes:
    if rate == target or not pcm:
        return pcm
    import soxr  # type: ignore[import-untyped]

    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    out = soxr.resample(samples, rate, target)
    return (np.clip(out, -1.0, 1.0) * 32767).astype("<i2").tobytes()
