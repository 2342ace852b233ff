"""A pipecat transport for one SIP call leg, so the voice pipeline is the same for SIP and WebRTC callers.

``input()`` pushes the caller's audio as ``InputAudioRawFrame`` (16 kHz mono, 20 ms, a steady stream with
silence where packets were lost) and key presses as ``InputDTMFFrame``; ``output()`` plays
``OutputAudioRawFrame`` to RTP (paced by the RTP clock, cleared on interruption) and sends ``OutputDTMFFrame``
as RFC 4733 events. Events, as on pipecat's own transports: ``on_client_connected(transport, leg)`` when the
pipeline started on an answered leg, ``on_client_disconnected(transport, leg)`` when the call ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputDTMFFrame,
    OutputDTMFUrgentFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from audio.pcm import FRAME_S, SAMPLE_RATE
from telephony.call import CallLeg
from telephony.leg import CallError

LegEvent = Callable[[CallLeg], Awaitable[None]]


class SipTransportParams(TransportParams):
    """TransportParams with the SIP leg's fixed format; ``hangup_on_end``: an EndFrame hangs up the call
    after the queued audio has been played."""

    audio_in_enabled: bool = True
    audio_out_enabled: bool = True
    audio_in_sample_rate: int | None = SAMPLE_RATE
    audio_out_sample_rate: int | None = SAMPLE_RATE
    hangup_on_end: bool = True


class SipInputTransport(BaseInputTransport):
    """``on_connected`` / ``on_disconnected``: the transport's callbacks that fire its events (as pipecat's
    own transports hand callbacks to their clients)."""

    def __init__(self, leg: CallLeg, params: SipTransportParams, *, on_connected: LegEvent,
                 on_disconnected: LegEvent, **kwargs):
        super().__init__(params, **kwargs)
        self._on_connected, self._on_disconnected = on_connected, on_disconnected
        self._leg = leg
        self._queue: asyncio.Queue[bytes | str] = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._leg.add_sink(self._queue.put_nowait)
        # Keys pressed before the pipeline was up (the leg queues every key) come first.
        while not self._leg.dtmf.empty():
            self._queue.put_nowait(self._leg.dtmf.get_nowait())
        self._leg.add_dtmf_listener(self._queue.put_nowait)
        if self._reader is None:
            self._reader = self.create_task(self._read())
            self._watcher = self.create_task(self._watch())
        await self.set_transport_ready(frame)
        await self._on_connected(self._leg)

    async def _read(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, bytes):
                await self.push_audio_frame(InputAudioRawFrame(audio=item, sample_rate=SAMPLE_RATE, num_channels=1))
            else:
                try:
                    button = KeypadEntry(item)
                except ValueError:
                    continue  # A-D have no pipecat KeypadEntry
                await self.push_frame(InputDTMFFrame(button=button))

    async def _watch(self) -> None:
        await self._leg.ended.wait()
        await self._on_disconnected(self._leg)

    async def _detach(self) -> None:
        self._leg.remove_sink(self._queue.put_nowait)
        self._leg.remove_dtmf_listener(self._queue.put_nowait)
        for task in (self._reader, self._watcher):
            if task is not None:
                await self.cancel_task(task)
        self._reader = self._watcher = None

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._detach()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._detach()


class SipOutputTransport(BaseOutputTransport):
    def __init__(self, leg: CallLeg, params: SipTransportParams, **kwargs):
        super().__init__(params, **kwargs)
        self._leg = leg
        self._hangup_on_end = params.hangup_on_end

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            # Drop what is queued for RTP too, or the caller hears up to 80 ms more after barging in.
            self._leg.clear_audio()
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._leg.state == "ended":
            return False
        await self._leg.write_audio(frame.audio)
        return True

    def _supports_native_dtmf(self) -> bool:
        return self._leg.can_send_dtmf

    async def _write_dtmf_native(self, frame: OutputDTMFFrame | OutputDTMFUrgentFrame) -> None:
        with contextlib.suppress(CallError):
            self._leg.send_dtmf("".join(str(b.value) for b in frame.buttons or []))

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        if self._hangup_on_end and self._leg.state == "answered":
            # Let the goodbye play out before the BYE.
            while self._leg.queued_ms > 0 and self._leg.state == "answered":
                await asyncio.sleep(FRAME_S)
            await self._leg.hangup()


class SipCallTransport(BaseTransport):
    """The pipecat transport of one answered :class:`CallLeg`."""

    def __init__(self, leg: CallLeg, params: SipTransportParams | None = None, **kwargs):
        super().__init__(**kwargs)
        self.leg = leg
        self._params = params or SipTransportParams()
        self._input: SipInputTransport | None = None
        self._output: SipOutputTransport | None = None
        self._register_event_handler("on_client_connected")
        self._register_event_handler("on_client_disconnected")

    def input(self) -> SipInputTransport:
        if self._input is None:
            self._input = SipInputTransport(self.leg, self._params, on_connected=self._client_connected,
                                            on_disconnected=self._client_disconnected, name=self._input_name)
        return self._input

    def output(self) -> SipOutputTransport:
        if self._output is None:
            self._output = SipOutputTransport(self.leg, self._params, name=self._output_name)
        return self._output

    # pipecat's transports fire their events from their own methods like these (BaseObject's protected API).
    async def _client_connected(self, leg: CallLeg) -> None:
        await self._call_event_handler("on_client_connected", leg)

    async def _client_disconnected(self, leg: CallLeg) -> None:
        await self._call_event_handler("on_client_disconnected", leg)
