"""One call's state outside the frames: its dialog session, its record, and how it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from voicebot import metrics
from voicebot.events import handoff_customer
from voicebot.pipeline.lanes import DIALOG
from voicebot.storage import CallStore

if TYPE_CHECKING:
    from dialogs.engine import BotReply, Turn
    from dialogs.manager.handoff import HandoffPacket
    from dialogs.manager.session import DialogSession
    from voicebot.pipeline.shared import SharedModels
    from voicebot.pipeline.turns import CallerTurnProcessor
    from voicebot.recording import CallRecording

log = logging.getLogger(__name__)

T = TypeVar("T")

# session.end() accepts these reasons; anything else the pipeline knows maps onto them.
_ENGINE_REASONS = {"caller_hangup", "bot_hangup", "handoff", "error"}
_AS_ENGINE_REASON = {"no_media": "caller_hangup"}  # the caller's phone vanished: they left


class CallContext:
    """The dialog session and call record of one call. ``finish`` closes both, exactly once."""

    def __init__(
        self,
        call_id: str,
        channel: str,
        caller_id: str | None,
        session: DialogSession,
        store: CallStore,
        shared: SharedModels,
    ):
        self.call_id = call_id
        self.channel = channel
        self.caller_id = caller_id
        self.session = session
        self.store = store
        self.shared = shared
        self.end_reason: str | None = None
        self.outcome: str | None = None
        self.handoff: HandoffPacket | None = None
        self.turns: CallerTurnProcessor | None = None  # set by the builder; asked for unfinished speech
        self.playing: set[int] = set()  # bot turns whose audio is queued or playing
        # Set by the call runner when recording is on: started with the record, stopped by a decline.
        self.recording: CallRecording | None = None
        # Optional: called the moment the dialog decides to hand off (before the announcement is spoken),
        # with this context and the packet; the SIP runner uses it to ring an agent during the announcement.
        self.on_handoff_decided: Callable[[CallContext, HandoffPacket | None], None] | None = None
        # Set by the call control stage: what to do when the caller talks over the hand-off announcement (the
        # announcement then never reports that it was heard, so the hand-off must not wait for that).
        self.on_announcement_cut: Callable[[], Awaitable[None]] | None = None
        self.started: float | None = None  # monotonic time the record was opened (the call's start)
        self._opened = False
        self._finished = False
        self._record_held = False
        self._suspended = False

    async def open(self) -> None:
        """Create the call record (before the greeting)."""
        if self._opened:
            return
        self._opened = True
        self.started = time.monotonic()
        await self.store.arun("open_call", self.call_id, self.channel, self.caller_id, self.session.dialled)
        metrics.ACTIVE_CALLS.labels(self.channel).inc()
        if self.recording is not None:
            await self.recording.start()

    def elapsed_s(self) -> float:
        """Seconds since the call started (0 before its record is opened)."""
        return 0.0 if self.started is None else time.monotonic() - self.started

    async def decline_recording(self) -> None:
        """The caller declined the recording: it stops and what was recorded is deleted."""
        if self.recording is not None:
            await self.recording.decline()

    async def start_dialog(self) -> BotReply:
        return await DIALOG.run(self.session.start)

    async def handle(self, turn: Turn) -> BotReply:
        return await DIALOG.run(self.session.handle, turn)

    async def run_dialog(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking dialog work ``func(*args)`` off the event loop, apart from speech recognition (lanes.DIALOG)."""
        return await DIALOG.run(func, *args)

    async def add_turn(self, speaker: str, text: str, start: datetime, **fields: Any) -> int | None:
        metrics.TURNS.labels(speaker).inc()
        return await self.store.arun("add_turn", self.call_id, speaker, text, start, **fields)

    async def update_turn(self, turn_id: int | None, **fields: Any) -> None:
        if turn_id is not None:
            await self.store.arun("update_turn", turn_id, **fields)

    def publish_handoff(self, packet: HandoffPacket | None) -> None:
        """Tell the event bus (the supervisor dashboard) that this call is handed off, with its packet.

        The agent queue publishes this itself for the calls it takes; this is for calls no queue takes.
        """
        if self.store.events is not None:
            self.store.events.publish("handoff", call_id=self.call_id, packet=packet.to_dict() if packet is not None else None,
                                      customer=handoff_customer(packet))

    def hold_record(self) -> bool:
        """Leave closing the call record to the caller of this method (the agent queue, which closes it with
        the queue's outcome when the transferred call is over); False if it is closed already."""
        if self._finished:
            return False
        self._record_held = True
        return True

    def suspend(self) -> bool:
        """The bot lets go of the call for now (a supervisor takes it over): the end of its pipeline neither ends
        the dialog session nor closes the record, so :meth:`resume` can give it back; False if it is over."""
        if self._finished:
            return False
        self._suspended = True
        return True

    @property
    def suspended(self) -> bool:
        """A supervisor has the call (:meth:`suspend`): the bot neither answers nor speaks."""
        return self._suspended

    def resume(self) -> None:
        """The call goes on (with the bot, or to be closed by :meth:`finish` after a supervisor had it)."""
        self._suspended = False
        self.end_reason = self.outcome = None
        self.playing = set()

    async def bot_interrupted(self) -> None:
        """The caller barged in: every bot turn still playing ends now, marked interrupted."""
        playing, self.playing = self.playing, set()
        now = datetime.now(UTC)
        for turn_id in playing:
            await self.update_turn(turn_id, end=now, extra={"interrupted": True})
        if self.end_reason == "handoff" and self.on_announcement_cut is not None:
            await self.on_announcement_cut()

    async def finish(self, reason: str) -> None:
        """End the call for ``reason`` (caller_hangup, bot_hangup, handoff, silence, no_media, error).

        Records what the caller was in the middle of saying, closes the dialog session and the record.
        Safe to call more than once; only the first call counts. Nothing while suspended (:meth:`suspend`).
        """
        if self._finished or self._suspended:
            return
        self._finished = True
        reason = self.end_reason or reason
        pending = self.turns.pending_speech() if self.turns is not None else None
        if pending is not None and self._opened:
            try:
                text = await self.shared.run(self.shared.transcribe, pending.audio)
            except Exception:
                log.exception("call %s: transcribing the last words failed", self.call_id)
                text = ""
            if text.strip():
                await self.add_turn(
                    "caller", text, pending.start, end=datetime.now(UTC), extra={"partial": True}
                )
        engine_reason = reason if reason in _ENGINE_REASONS else _AS_ENGINE_REASON.get(reason, "bot_hangup")
        try:
            outcome = await DIALOG.run(self.session.end, engine_reason)
        except Exception:
            log.exception("call %s: closing the dialog session failed", self.call_id)
            outcome = None
        if reason in ("silence", "no_media"):
            outcome = "abandoned"
        self.outcome = self.outcome or outcome or ("abandoned" if reason == "caller_hangup" else "ended")
        customer_id = getattr(self.session.state, "customer_id", None)
        if self._opened and isinstance(customer_id, int):
            await self.store.arun("set_customer", self.call_id, customer_id)
        if self._opened:
            if not self._record_held:
                await self.store.arun("close_call", self.call_id, self.outcome, reason)
            metrics.ACTIVE_CALLS.labels(self.channel).dec()
        metrics.CALLS.labels(self.channel, self.outcome).inc()
