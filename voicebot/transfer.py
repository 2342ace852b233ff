"""Warm transfer in ``voicebot serve``: the agent queue on live SIP calls, with the process's Piper voice and
a record of every hand-off.

:class:`TransferService` owns the one ACD of the process (a :class:`~telephony.queue.runner.QueueRunner`
driving a :class:`~telephony.queue.live.LiveQueue`). The SIP call runner gives it a caller's leg when the bot
has announced the hand-off; it returns when the call is over and writes a row to ``voicebot_transfers``
(queue, agent, outcome, wait, talk time). A caller who hangs up while waiting turns the call record's outcome
into ``abandoned``; a call an agent took keeps ``handoff``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import DateTime, Float, Integer, String, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from telephony.queue.live import SAMPLE_RATE, LiveQueue, TransferResult
from telephony.queue.runner import QueueRunner
from telephony.queue.store import CallbackStore
from voicebot.storage.models import Base as CallBase
from voicebot.storage.models import CallRow

if TYPE_CHECKING:
    from telephony.call import CallLeg
    from telephony.sip.ua import UserAgent
    from voicebot.config import Settings
    from voicebot.pipeline.call import CallContext
    from voicebot.pipeline.shared import SharedModels

log = logging.getLogger(__name__)


class _Base(DeclarativeBase):
    pass


class TransferRow(_Base):
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
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# What a queue outcome makes of the call record's outcome (None: keep the bot's "handoff").
CALL_OUTCOME = {"abandoned": "abandoned", "callback": "callback", "timeout": "no_agent", "no_agents": "no_agent",
                "failed": "no_agent"}


class TransferStore:
    """Hand-off rows beside the call records (same database)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        CallBase.metadata.create_all(engine)  # the call records it corrects (normally made by CallStore)
        _Base.metadata.create_all(engine)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def add(self, result: TransferResult) -> None:
        """Record how a hand-off ended, and correct the call record's outcome and end time for it."""
        now = datetime.now(UTC)
        with self._sessions.begin() as s:
            s.add(TransferRow(call_id=result.call_id, queue=result.queue, agent_id=result.agent_id,
                              outcome=result.outcome, wait_s=round(result.wait_s, 2), talk_s=result.talk_s,
                              callback_id=result.callback_id, at=now))
            values: dict[str, Any] = {"end": now}
            if CALL_OUTCOME.get(result.outcome):
                values["outcome"] = CALL_OUTCOME[result.outcome]
            s.execute(update(CallRow).where(CallRow.id == result.call_id).values(**values))

    def of_call(self, call_id: str) -> dict[str, Any] | None:
        """The last hand-off of a call as JSON-ready data, or None."""
        with self._sessions() as s:
            row = s.scalars(select(TransferRow).where(TransferRow.call_id == call_id)
                            .order_by(TransferRow.id.desc())).first()
            if row is None:
                return None
            return {"queue": row.queue, "agent_id": row.agent_id, "outcome": row.outcome, "wait_s": row.wait_s,
                    "talk_s": row.talk_s, "callback_id": row.callback_id}


class TransferService:
    """The agent queue of one ``voicebot serve`` process. :meth:`start` inside the event loop, give it the
    SIP user agent (``ua``) that dials agents, then :meth:`handoff` each caller the bot hands over."""

    def __init__(self, settings: Settings, shared: SharedModels, engine: Engine):
        self.settings = settings
        self.shared = shared
        self.records = TransferStore(engine)
        self.callbacks = CallbackStore(engine)
        self.callbacks.create_tables()
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
        return cls(settings, runtime.shared, runtime.engine.database.engine)

    async def start(self) -> None:
        """Create the ACD on the running loop. Agents without a SIP user agent are rung in vain (unreachable)."""
        if self.runner is not None:
            return
        self.live = LiveQueue(self.ua, self.speak)  # type: ignore[arg-type]  # ua may be set later
        self.live.on_offer = self._on_offer
        self.live.web_ring = self.phones.ring
        self.runner = QueueRunner.on_loop(self.settings.agents, self.settings.queues, self.live,
                                          callbacks=self.callbacks)
        self.live.attach(self.runner)

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

    async def speak(self, text: str) -> bytes:
        """``text`` in the process's Piper voice as 16 kHz PCM (sentence by sentence, through the TTS cache)."""
        from voicebot.pipeline.shared import split_sentences

        parts = []
        for sentence in split_sentences(text) or [text]:
            speech = await self.shared.run(self.shared.synthesize, sentence)
            parts.append(speech.audio)
        return _resample(b"".join(parts), self.shared.tts_sample_rate, SAMPLE_RATE)

    async def handoff(self, leg: CallLeg, call: CallContext | None, packet: dict[str, Any] | None) -> TransferResult:
        """Queue the caller on ``leg`` with the hand-off ``packet``; returns when their call is over, after
        recording it. ``call`` (the bot's call context) gets its outcome corrected if the caller gave up."""
        if self.runner is None:
            await self.start()
        assert self.live is not None
        if self.ua is not None:
            self.live.ua = self.ua
        packet = dict(packet or {})
        packet.setdefault("call_id", leg.call_id)
        log.info("call %s: handed to queue %s", leg.call_id, packet.get("queue"))
        result = await self.live.transfer_call(leg, packet)
        log.info("call %s: queue outcome %s (agent %s, waited %.1f s)", leg.call_id, result.outcome,
                 result.agent_id, result.wait_s)
        if call is not None and CALL_OUTCOME.get(result.outcome):
            call.outcome = CALL_OUTCOME[result.outcome]
        try:
            await asyncio.to_thread(self.records.add, result)
        except Exception:
            log.exception("call %s: could not record the hand-off", leg.call_id)
        return result

    def _on_offer(self, event: str, call_id: str, agent_id: str) -> None:
        if event in ("ringing", "answered", "connected"):
            packet = self.live.handoff_of(call_id) if self.live is not None else None
            self.current[agent_id] = {"call_id": call_id, "status": event, "handoff": packet}
        elif event == "ended":
            cur = self.current.get(agent_id)
            if cur is not None and cur.get("call_id") == call_id:
                self.current.pop(agent_id, None)


def _resample(pcm: bytes, rate: int, target: int) -> bytes:
    if rate == target or not pcm:
        return pcm
    import soxr  # type: ignore[import-untyped]

    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    out = soxr.resample(samples, rate, target)
    return (np.clip(out, -1.0, 1.0) * 32767).astype("<i2").tobytes()
