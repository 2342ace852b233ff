"""Call control after the output transport: acts once the caller has heard what the bot said."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pipecat.frames.frames import EndWorkerFrame, Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from dialogs.manager.handoff import HandoffPacket
from voicebot.pipeline.call import CallContext
from voicebot.pipeline.frames import BotSaidFrame

# Called with the call and the handoff packet when the bot has announced a transfer.
HandoffHandler = Callable[[CallContext, HandoffPacket | None], Awaitable[None]]


class CallControl(FrameProcessor):
    """Closes bot turns when their audio has been sent; hangs up or hands off after the last words.

    Must sit after ``transport.output()``: a :class:`BotSaidFrame` leaves the output transport only
    after the audio queued before it.
    """

    def __init__(self, call: CallContext, on_handoff: HandoffHandler | None = None, **kwargs):
        super().__init__(**kwargs)
        self._call = call
        self._on_handoff = on_handoff
        self._handed = False
        call.on_announcement_cut = self._announcement_cut

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, BotSaidFrame) or frame.say is None:
            await self.push_frame(frame, direction)
            return
        say = frame.say
        if say.turn_id is not None:
            self._call.playing.discard(say.turn_id)
        await self._call.update_turn(say.turn_id, end=datetime.now(UTC))
        if say.then == "handoff":
            await self._hand_off(say.handoff)
        elif say.then == "hangup":
            await self.push_frame(EndWorkerFrame(reason=self._call.end_reason or "bot_hangup"))

    async def _announcement_cut(self) -> None:
        """The caller talked over the hand-off announcement: hand off now (the cut sentence never arrives here)."""
        await self._hand_off(self._call.handoff)

    async def _hand_off(self, packet: HandoffPacket | None) -> None:
        if self._handed:
            return
        self._handed = True
        if self._on_handoff is not None:
            await self._on_handoff(self._call, packet)
        else:
            # Without a transfer target (a browser caller) the bot's handoff announcement ends the call;
            # the record keeps outcome "handoff" and the packet for the agent queue.
            await self.push_frame(EndWorkerFrame(reason=self._call.end_reason or "bot_hangup"))
