"""A browser (WebRTC) caller as a call leg the agent queue can take over once the bot hands off.

The caller's SmallWebRTC connection belongs to the bot's pipecat pipeline: stopping that pipeline closes the
peer connection. So the pipeline keeps running for the whole call, and two small stages around the transport
switch the caller's audio from the bot to the queue when the bot lets go (after its hand-off sentence):

    transport.input() -> CallerAudioIn -> ...bot stages... -> CallerAudioOut -> transport.output() -> CallerAudioSent

Once :meth:`BrowserLeg.take_over` has been called, ``CallerAudioIn`` gives the caller's audio (16 kHz, cut
into 20 ms frames) and key presses to the leg instead of the bot, and ``CallerAudioOut`` drops whatever the
bot stages still produce and plays what the queue writes to the leg (hold music, announcements, the agent),
paced in real time. :class:`BrowserLeg` implements :class:`telephony.leg.Leg`, which
:class:`telephony.queue.live.LiveQueue` and :class:`telephony.bridge.Bridge` use.

A supervisor taking the call over from the bot takes the leg the same way (:meth:`BrowserLeg.take_over`), and
handing it back returns the caller to the bot (:meth:`BrowserLeg.give_back`).

The caller closing the page (or the connection failing) ends the leg (:meth:`BrowserLeg.peer_gone`); the
queue hanging the leg up ends the pipeline gracefully, which closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import (
    DataFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    OutputAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup

from audio.pcm import (
    BYTES_PER_MS,
    FRAME_BYTES,
    FRAME_S,
    SAMPLE_RATE,
    FrameSplitter,
    StreamResampler,
    first_channel,
)
from telephony.leg import LegBase

log = logging.getLogger(__name__)

DTMF_KEYS = frozenset("0123456789*#")


class BrowserLeg(LegBase):
    """The caller's side of one WebRTC call, for the agent queue: ``answered`` until hung up or gone."""

    channel = "webrtc"
    state: str

    def __init__(self, call_id: str, caller: str | None, end_call: Callable[[], Awaitable[None]] | None = None):
        super().__init__()
        self.call_id = call_id
        self.caller = caller
        self.dialled: str | None = None
        self.state = "answered"
        self.end_reason = ""
        self.answered = asyncio.Event()
        self.answered.set()  # the bot answered the browser long before the queue sees the leg
        self.ended = asyncio.Event()
        self.taken = False  # the queue has the caller's audio (the bot let go)
        self._end_call = end_call
        self._outbox = bytearray()  # what the caller will hear, drained by the pacer
        self._splitter = FrameSplitter()
        self._pacer: asyncio.Task[None] | None = None
        self._out: CallerAudioOut | None = None

    # --- the Leg output queue ----------------------------------------------------------------------------
    def _enqueue(self, pcm: bytes) -> None:
        self._outbox.extend(pcm)

    @property
    def queued_ms(self) -> float:
        return len(self._outbox) / BYTES_PER_MS

    def clear_audio(self) -> None:
        self._outbox.clear()

    async def hangup(self) -> None:
        """End the call: what is queued for the caller is dropped and the bot's pipeline ends, which closes
        the WebRTC connection."""
        if self.state == "ended":
            return
        self._end("local hangup")
        if self._end_call is None:
            return
        try:
            await self._end_call()
        except Exception:
            log.exception("call %s: ending the pipeline failed", self.call_id)

    # --- driven by the application and the pipeline stages -------------------------------------------------
    def take_over(self) -> None:
        """The bot has let go: from now on the caller's audio and keys go to the leg, and the caller hears
        what is written to it."""
        if self.taken or self.state != "answered":
            return
        self.taken = True
        self._pacer = asyncio.ensure_future(self._pace())
        self._pacer.add_done_callback(self._pacer_done)

    def give_back(self) -> None:
        """The bot takes the caller back (a supervisor who took the call over handed it back): the caller's audio
        and keys go to the bot again, and what was queued for the caller is dropped."""
        if not self.taken:
            return
        self.taken = False
        self._outbox.clear()
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None

    def _pacer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: playing to the caller failed", self.call_id, exc_info=task.exception())
            self.peer_gone("error")  # a caller who can no longer hear the queue is not left waiting in it

    def peer_gone(self, reason: str = "remote hangup") -> None:
        """The caller closed the page or the connection failed."""
        self._end(reason)

    def _end(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        self.end_reason = reason
        self._outbox.clear()
        if self._pacer is not None:
            self._pacer.cancel()
        self.ended.set()

    def _audio_in(self, pcm: bytes) -> None:
        for frame in self._splitter.feed(pcm):
            self._audio_to_sinks(frame)

    def _key_in(self, key: str) -> None:
        if self.state != "answered":
            return
        self._tell_key_listeners(key)

    async def _pace(self) -> None:
        """Hand 20 ms of queued audio to the output stage every 20 ms (on a fixed schedule, so the
        transport's own buffer neither runs dry nor grows)."""
        start = time.monotonic()
        n = 0
        while self.state == "answered":
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_S - time.monotonic()))
            if not self._outbox or self._out is None:
                continue  # nothing to play: the transport sends silence by itself
            # The tail of a prompt is shorter than a frame: padded, or "played out" would never come.
            chunk = bytes(self._outbox[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\0")
            del self._outbox[:FRAME_BYTES]
            await self._out.play(chunk)


@dataclass
class QueueAudioFrame(OutputAudioRawFrame):
    """Audio the queue plays to a browser caller (hold music, announcements, the agent once bridged)."""


class CallerAudioIn(FrameProcessor):
    """Right after ``transport.input()``: once the leg is taken over, the caller's audio and keys go to the
    leg and no longer to the bot."""

    def __init__(self, leg: BrowserLeg, **kwargs: Any):
        super().__init__(**kwargs)
        self._leg = leg

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self._leg.taken and direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, InputAudioRawFrame):
                self._leg._audio_in(first_channel(frame.audio, frame.num_channels))
                return
            if isinstance(frame, InputDTMFFrame):
                self._leg._key_in(str(frame.button.value))
                return
        await self.push_frame(frame, direction)


class CallerAudioOut(FrameProcessor):
    """Right before ``transport.output()``: once the leg is taken over, the bot's stages are muted (their
    audio and turn frames are dropped, so a late bot timer cannot speak or hang up) and the leg's audio is
    played instead."""

    def __init__(self, leg: BrowserLeg, **kwargs: Any):
        super().__init__(**kwargs)
        self._leg = leg
        self._rate = SAMPLE_RATE
        self._resampler: StreamResampler | None = None
        leg._out = self

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]  # pipecat's own
        await super().setup(setup)
        if setup.audio_out_sample_rate and setup.audio_out_sample_rate != SAMPLE_RATE:
            # The transport's rate (Piper's), resampled here as a stream so no 20 ms chunk clicks.
            self._rate = setup.audio_out_sample_rate
            self._resampler = StreamResampler(SAMPLE_RATE, self._rate)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self._leg.taken and direction == FrameDirection.DOWNSTREAM and isinstance(frame, DataFrame):
            return
        await self.push_frame(frame, direction)

    async def play(self, pcm: bytes) -> None:
        """Send 20 ms of 16 kHz audio to the caller."""
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
            if not pcm:
                return
        await self.push_frame(QueueAudioFrame(audio=pcm, sample_rate=self._rate, num_channels=1))


class CallerAudioSent(FrameProcessor):
    """Right after ``transport.output()``: the queue's audio ends here once sent. Later stages (the listen-in
    tap) take the output as the bot's voice; supervisors hear a bridged call from the bridge itself."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, QueueAudioFrame):
            await self.push_frame(frame, direction)


class LegTransport:
    """A transport for :func:`voicebot.pipeline.builder.build_call_pipeline` that puts the leg's stages
    around ``transport``'s input and output."""

    def __init__(self, transport: Any, leg: BrowserLeg):
        self._transport = transport
        self._leg = leg
        self._input: Pipeline | None = None
        self._output: Pipeline | None = None

    def input(self) -> Pipeline:
        if self._input is None:
            self._input = Pipeline([self._transport.input(), CallerAudioIn(self._leg, name=f"leg-in-{self._leg.call_id}")])
        return self._input

    def output(self) -> Pipeline:
        if self._output is None:
            self._output = Pipeline([CallerAudioOut(self._leg, name=f"leg-out-{self._leg.call_id}"),
                                     self._transport.output(), CallerAudioSent(name=f"leg-sent-{self._leg.call_id}")])
        return self._output


def key_of_message(message: Any) -> str | None:
    """The key of a caller page's keypad message ``{"type": "dtmf", "key": "5"}``, or None for anything else."""
    if isinstance(message, dict) and message.get("type") == "dtmf":
        key = message.get("key")
        if isinstance(key, str) and len(key) == 1 and key in DTMF_KEYS:
            return key
    return None

