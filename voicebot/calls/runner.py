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

A supervisor may take a call over from the bot (:meth:`CallRunner.take_over`, barge-in) the way the queue takes
it: a SIP call's pipeline is cancelled as for a hand-off and the leg stays up for the supervisor; a browser's
pipeline runs on, muted, while the channel's ``take_over`` gives the caller's audio to the leg. The record
(outcome ``taken_over``) is closed when the leg ends, unless the supervisor hands the call back
(:meth:`CallRunner.hand_back`): then the bot takes the call back where it left it, with the same dialog session
and record (SIP: a new pipeline over the same leg; a browser: the channel's ``give_back`` returns the caller's
audio to the pipeline that ran on). :data:`RUNNERS` finds a call's runner by its id.

The runner returns when the bot, the queue and a supervisor who took the call over are done with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import EndFrame, InputDTMFFrame, InterruptionFrame
from pipecat.transports.base_transport import BaseTransport

from telephony.call import NO_MEDIA
from voicebot.calls.heap import release_after_call
from voicebot.monitor import MONITORS
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
TAKEN_OVER = "taken_over"  # the outcome and end reason of the bot's part of a call a supervisor took over


class TakeOverRefused(Exception):
    """The call cannot be taken over now; the message says why (shown to the supervisor)."""


class HandBackRefused(Exception):
    """The call cannot be handed back to the bot now; the message says why (shown to the supervisor)."""


class CallRunners:
    """The calls this process runs, by call id (a supervisor's take-over finds its call here)."""

    def __init__(self) -> None:
        self._runners: dict[str, CallRunner] = {}

    def get(self, call_id: str) -> CallRunner | None:
        return self._runners.get(call_id)

    def add(self, call_id: str, runner: CallRunner) -> None:
        self._runners[call_id] = runner

    def remove(self, call_id: str, runner: CallRunner) -> None:
        if self._runners.get(call_id) is runner:
            del self._runners[call_id]


RUNNERS = CallRunners()


class CallRunner:
    """One call over ``transport`` (a pipecat transport: its ``on_client_connected`` greets, its
    ``on_client_disconnected`` ends the call), with the dialog ``session`` made for it.

    With ``transfer`` and ``leg``, a hand-off queues the caller on ``leg``. ``take_over`` (a browser) is
    called at the hand-off or a supervisor's take-over to give the leg the caller's audio while the pipeline keeps
    running, ``give_back`` when a supervisor hands the call back; without them (SIP) the bot's pipeline is stopped
    and the leg stays up. ``end_leg(reason)`` (a browser) ends a leg that
    does not end by itself when the caller leaves or the pipeline is over. ``pipeline_transport`` replaces
    ``transport`` as the pipeline's input and output (stages around them, e.g. the browser leg's).
    ``resume_transport`` makes a new transport over ``leg`` for a call a supervisor hands back to the bot (SIP);
    without it a call cannot be handed back."""

    def __init__(
        self,
        runtime: Runtime,
        session: DialogSession,
        transport: BaseTransport,
        *,
        leg: Leg | None = None,
        transfer: TransferService | None = None,
        take_over: Callable[[], None] | None = None,
        give_back: Callable[[], None] | None = None,
        end_leg: Callable[[str], None] | None = None,
        pipeline_transport: CallTransport | None = None,
        resume_transport: Callable[[], BaseTransport] | None = None,
    ):
        self.leg = leg
        self.runtime = runtime
        self._resume_transport = resume_transport
        self._handed_back: asyncio.Event | None = None  # set by hand_back while a supervisor has the call
        self._resuming: asyncio.Future[None] | None = None  # a browser call going back to the bot
        self._supervisor_holds = 0  # MONITORS holds taken for supervisors (listeners stay between pipelines)
        self.transfer = transfer if leg is not None else None
        self._take_over = take_over
        self._give_back = give_back
        self._end_leg = end_leg
        self.released = asyncio.Event()  # the bot is done with the caller: the queue may take the leg
        self.queued: asyncio.Future[Any] | None = None  # the queue's hand-off, until the call is over
        self._stopping: asyncio.Future[None] | None = None
        self._ending: asyncio.Future[None] | None = None
        self.taken_over_by: str | None = None  # the supervisor who took the call over from the bot
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
        """Run the call until the bot, the queue and a supervisor who took it over are done with it."""
        call_id = self.call.call.call_id
        RUNNERS.add(call_id, self)
        try:
            await self.call.run()
            while self.taken_over_by is not None:
                if self._take_over is not None:  # a browser: its connection went with the pipeline
                    assert self.leg is not None and self._end_leg is not None
                    self._end_leg("call ended")  # if the caller or the supervisor has not ended it already
                    await self._close_taken_over(await self.leg.wait_ended())
                    break
                if not await self._supervised():
                    break
                await self.call.run()  # handed back: the bot's new pipeline, until it ends or is taken over again
        except asyncio.CancelledError:  # server shutdown: the queue lets go of the call too
            if self.queued is not None:
                self.queued.cancel()
            raise
        finally:
            RUNNERS.remove(call_id, self)
            for _ in range(self._supervisor_holds):
                MONITORS.end(call_id)
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
        # glibc keeps what a call freed in the heap (several MB a call): give it back to the system.
        await release_after_call()

    async def take_over(self, username: str) -> Leg:
        """Supervisor ``username`` takes the caller from the bot: the bot stops speaking and answering (its
        pipeline is cancelled, the leg stays up) and the caller's leg is returned for the supervisor's audio.
        The call stays live for listeners until the leg ends. Raises :class:`TakeOverRefused`."""
        ctx = self.call.call
        if self.leg is None:
            raise TakeOverRefused("this call has no line a supervisor could take")
        if self.taken_over_by is not None:
            raise TakeOverRefused(f"{self.taken_over_by} has taken this call over already")
        if self.queued is not None or self.released.is_set():
            raise TakeOverRefused("the call is with the agent queue: listen or whisper instead")
        if ctx.end_reason is not None or self.leg.state != "answered" or not ctx.suspend():
            raise TakeOverRefused("the call is ending")
        self.taken_over_by = username
        self._handed_back = asyncio.Event()
        ctx.end_reason = ctx.outcome = TAKEN_OVER
        MONITORS.begin(ctx.call_id)  # listeners stay on the call after the bot's pipeline (its hold) is gone
        self._supervisor_holds += 1
        if self._take_over is not None:
            # A browser's connection belongs to the pipeline: it runs on, muted, and the leg has the caller.
            self._take_over()
            await self.call.worker.queue_frame(InterruptionFrame())  # what the bot had queued is not heard
        else:
            # A cancel, not an end, keeps the leg up (as for a hand-off); what the bot had queued is not heard.
            self._stopping = asyncio.ensure_future(self.call.worker.cancel(reason=TAKEN_OVER))
        self.leg.clear_audio()
        at = datetime.now(UTC)
        await ctx.store.arun("set_taken_over", ctx.call_id, username, at)
        if ctx.store.events is not None:
            ctx.store.events.publish("call.taken_over", call_id=ctx.call_id, by=username, at=at.isoformat())
        return self.leg

    def hand_back(self, username: str) -> None:
        """Supervisor ``username`` gives the call they took over back to the bot: a new pipeline over the same leg
        and dialog session says the bot is back and asks its pending question again. The supervisor's audio must
        be off the leg first. Raises :class:`HandBackRefused`."""
        if self.taken_over_by is None or self._handed_back is None:
            raise HandBackRefused("the bot has this call: nobody took it over")
        if self._handed_back.is_set():
            raise HandBackRefused("this call is being handed back already")
        if self.leg is None or self.leg.state != "answered":
            raise HandBackRefused("the call is ending")
        if self._resume_transport is None and self._give_back is None:
            raise HandBackRefused("this call cannot go back to the bot")
        log.info("call %s: %s hands the call back to the bot", self.call.call.call_id, username)
        self._handed_back.set()
        if self._give_back is not None:
            # A browser: the pipeline that ran on takes the caller back once the supervisor's audio is off the leg.
            self._resuming = asyncio.ensure_future(self._give_back_to_bot())

    async def _give_back_to_bot(self) -> None:
        """A browser call handed back: the caller's audio goes to the bot's pipeline again, which takes the call
        back where it was (as a new SIP pipeline does)."""
        assert self._give_back is not None
        ctx = self.call.call
        by, self.taken_over_by = self.taken_over_by, None
        self._give_back()
        ctx.resume()
        await self.call.resume()
        if ctx.store.events is not None:
            ctx.store.events.publish("call.handed_back", call_id=ctx.call_id, by=by, at=datetime.now(UTC).isoformat())

    async def _supervised(self) -> bool:
        """Wait while a supervisor has the call: True once they handed it back (the bot's new pipeline is built),
        False when the leg ended (the record is closed, outcome ``taken_over``)."""
        assert self.leg is not None and self._handed_back is not None and self.taken_over_by is not None
        if self._stopping is not None:
            await asyncio.gather(self._stopping, return_exceptions=True)  # the old pipeline has let go of the leg
        ended = asyncio.ensure_future(self.leg.wait_ended())
        back = asyncio.ensure_future(self._handed_back.wait())
        try:
            await asyncio.wait([ended, back], return_when=asyncio.FIRST_COMPLETED)
        finally:
            back.cancel()
            if not ended.done():
                ended.cancel()
        ctx = self.call.call
        if not ended.done() and self.leg.state == "answered":
            by, self.taken_over_by = self.taken_over_by, None
            try:
                self._resume(ctx)
            except Exception:  # our own error: loud, and the caller is not left on a line nobody has
                log.exception("call %s: the bot could not take the call back; hanging up", ctx.call_id)
                await self.leg.hangup()
                ctx.resume()
                ctx.end_reason, ctx.outcome = "error", TAKEN_OVER
                await ctx.finish("error")
                return False
            if ctx.store.events is not None:
                ctx.store.events.publish("call.handed_back", call_id=ctx.call_id, by=by,
                                         at=datetime.now(UTC).isoformat())
            return True
        await self._close_taken_over(ended.result() if ended.done() else await self.leg.wait_ended())
        return False

    async def _close_taken_over(self, reason: str) -> None:
        """The leg of a call a supervisor had ended for ``reason``: the record is closed, outcome ``taken_over``."""
        reason = {"remote hangup": "caller_hangup", "local hangup": "supervisor_hangup"}.get(reason, reason)
        ctx = self.call.call
        ctx.resume()
        ctx.end_reason, ctx.outcome = (reason or "hangup")[:32], TAKEN_OVER
        await ctx.finish(ctx.end_reason)

    def _resume(self, ctx: CallContext) -> None:
        """The bot's new pipeline over the leg, for the same call context (record, dialog session, recording)."""
        assert self._resume_transport is not None
        transport = self._resume_transport()
        ctx.resume()
        self.call = build_call_pipeline(
            transport, ctx.session, self.runtime.shared, self.runtime.settings, self.runtime.store,
            on_handoff=self._handed_off if self.transfer is not None else None, call=ctx)
        transport.add_event_handler("on_client_connected", self._connected_again)
        transport.add_event_handler("on_client_disconnected", self._disconnected)
        self._stopping = None

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

    async def _connected_again(self, _transport: Any, _client: Any) -> None:
        await self.call.resume()

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
