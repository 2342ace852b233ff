"""One call from start to end, whatever the channel.

:class:`CallRunner` builds the call pipeline over a channel's transport, greets the caller once their media
is up, ends the call when they leave and, with the agent queue, hands the caller over: the queue gets the
caller's leg the moment the dialog decides to hand off (the agent is rung while the bot announces the
transfer) and takes it once the caller has heard the announcement. How the bot lets go of the leg is the
channel's one difference:

- a SIP leg outlives the pipeline: the bot's pipeline is cancelled (not ended, which would hang up) and the
  queue takes the leg once the pipeline is done with it;
- a browser's connection belongs to the pipeline (stopping it closes the connection): the pipeline runs on,
  and the channel's ``take_over`` switches the caller's audio from the bot to the leg.

The runner returns when both the bot and the queue are done with the call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import EndFrame, InputDTMFFrame
from pipecat.transports.base_transport import BaseTransport

from telephony.call import NO_MEDIA
from voicebot.pipeline.builder import CallTransport, build_call_pipeline
from voicebot.recording import call_recording

if TYPE_CHECKING:
    from dialogs.manager.handoff import HandoffPacket
    from dialogs.manager.session import DialogSession
    from telephony.leg import Leg
    from voicebot.pipeline.call import CallContext
    from voicebot.runtime import Runtime
    from voicebot.transfer import TransferService

log = logging.getLogger(__name__)

END_GRACE_S = 5.0  # a call asked to end gracefully (the queue hung up) is cancelled after this long


class CallRunner:
    """One call over ``transport`` (a pipecat transport: its ``on_client_connected`` greets, its
    ``on_client_disconnected`` ends the call), with the dialog ``session`` made for it.

    With ``transfer`` and ``leg``, a hand-off queues the caller on ``leg``. ``take_over`` (a browser) is
    called at the hand-off to give the leg the caller's audio while the pipeline keeps running; without it
    (SIP) the bot's pipeline is stopped and the leg stays up. ``end_leg(reason)`` (a browser) ends a leg that
    does not end by itself when the caller leaves or the pipeline is over. ``pipeline_transport`` replaces
    ``transport`` as the pipeline's input and output (stages around them, e.g. the browser leg's)."""

    def __init__(
        self,
        runtime: Runtime,
        session: DialogSession,
        transport: BaseTransport,
        *,
        leg: Leg | None = None,
        transfer: TransferService | None = None,
        take_over: Callable[[], None] | None = None,
        end_leg: Callable[[str], None] | None = None,
        pipeline_transport: CallTransport | None = None,
    ):
        self.leg = leg
        self.transfer = transfer if leg is not None else None
        self._take_over = take_over
        self._end_leg = end_leg
        self.released = asyncio.Event()  # the bot is done with the caller: the queue may take the leg
        self.queued: asyncio.Future[Any] | None = None  # the queue's hand-off, until the call is over
        self._stopping: asyncio.Future[None] | None = None
        self._ending: asyncio.Future[None] | None = None
        self.call = build_call_pipeline(
            pipeline_transport or transport, session, runtime.shared, runtime.settings, runtime.store,
            on_handoff=self._handed_off if self.transfer is not None else None)
        if self.transfer is not None:
            self.call.call.on_handoff_decided = self._queue
        # Recording (if on) starts with the call's record and ends once the queue is done with the call too.
        self.recording = call_recording(runtime.settings, runtime.store, self.call.call.call_id)
        self.call.call.recording = self.recording
        transport.add_event_handler("on_client_connected", self._connected)
        transport.add_event_handler("on_client_disconnected", self._disconnected)

    async def run(self) -> None:
        """Run the call until both the bot and the queue are done with it."""
        try:
            await self.call.run()
        except asyncio.CancelledError:  # server shutdown: the queue lets go of the call too
            if self.queued is not None:
                self.queued.cancel()
            raise
        finally:
            if self._end_leg is not None:
                self._end_leg("call ended")
            self.released.set()  # a queue waiting for the bot's last words must not wait for ever
            if self._ending is not None:
                self._ending.cancel()
            if self.queued is not None:
                for failure in await asyncio.gather(self.queued, return_exceptions=True):
                    if isinstance(failure, Exception):
                        log.error("call %s: the agent queue failed", self.call.call.call_id, exc_info=failure)
            if self.recording is not None:
                await self.recording.finish()

    async def press(self, key: str) -> None:
        """A key the caller pressed, into the bot's pipeline (as a phone's RFC 4733 digit would come)."""
        await self.call.worker.queue_frame(InputDTMFFrame(button=KeypadEntry(key)))

    async def end(self) -> None:
        """End the call after the audio already sent (the queue hung up); cancelled if that takes too long."""
        if self._ending is not None:
            return
        worker = self.call.worker
        await worker.queue_frame(EndFrame())

        async def cancel_late() -> None:
            await asyncio.sleep(END_GRACE_S)
            await worker.cancel(reason="hangup")

        self._ending = asyncio.ensure_future(cancel_late())

    # --- the pipeline's and the transport's events ----------------------------------------------------------
    async def _connected(self, _transport: Any, _client: Any) -> None:
        await self.call.greet()

    async def _disconnected(self, _transport: Any, _client: Any) -> None:
        if self._end_leg is not None:
            self._end_leg("remote hangup")
        if self.leg is not None and self.leg.end_reason == NO_MEDIA and self.call.call.end_reason is None:
            self.call.call.end_reason = "no_media"  # the caller vanished without a BYE: the record says so
        await self.call.caller_left()

    def _queue(self, ctx: CallContext, packet: HandoffPacket | None) -> None:
        """The dialog decided to hand off: queue the caller now, the queue takes them once ``released``."""
        if self.queued is None and self.transfer is not None and self.leg is not None:
            self.queued = asyncio.ensure_future(
                self.transfer.handoff(self.leg, ctx, packet or ctx.handoff, caller_ready=self.released))

    async def _handed_off(self, ctx: CallContext, packet: HandoffPacket | None) -> None:
        """The caller has heard the hand-off announcement (or talked over it): the bot lets go of them."""
        self._queue(ctx, packet)
        if self._take_over is not None:
            self._take_over()
            self.released.set()
            return
        # A cancel, not an end, keeps the leg up; ``run`` sets ``released`` once the pipeline is done.
        ctx.end_reason = "handoff"
        self._stopping = asyncio.ensure_future(self.call.worker.cancel(reason="handoff"))
