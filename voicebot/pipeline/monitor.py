"""The monitor tap: a call's audio for supervisors who listen in (see :mod:`voicebot.monitor`).

Two taps per call: one right after ``transport.input()`` passes on the caller's audio, one after
``transport.output()`` the bot's (the output transport pushes each chunk on once it has been sent, so the bot's
audio reaches listeners when the caller hears it, and a barge-in cuts it for both). Only the bot's speech
(``TTSAudioRawFrame``) counts as ``bot``: a browser caller handed to the agent queue keeps this pipeline, and
what the queue plays through it (hold music, the agent) is not the bot; the bridge's own tap feeds the agent.
The caller tap also holds the call live for listeners from the pipeline's start until its end.
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import AudioRawFrame, Frame, InputAudioRawFrame, StartFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from audio import pcm
from voicebot.monitor import MONITORS, Monitors


class MonitorTap(FrameProcessor):
    """Copies ``source``'s audio (``caller``: input frames, ``bot``: the bot's speech) to the call's listeners,
    resampled to 16 kHz mono; with ``holds_call`` it also marks the call live while the pipeline runs."""

    def __init__(self, call_id: str, source: str, *, holds_call: bool = False, monitors: Monitors = MONITORS,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self._call_id = call_id
        self._source = source
        self._kind = InputAudioRawFrame if source == "caller" else TTSAudioRawFrame
        self._holds_call = holds_call
        self._holding = False
        self._monitors = monitors
        self._resampler: pcm.StreamResampler | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._holds_call and not self._holding:
            self._holding = True
            self._monitors.begin(self._call_id)
        elif isinstance(frame, self._kind) and self._monitors.listening(self._call_id):
            self._monitors.feed(self._call_id, self._source, self._pcm16k(frame))
        await self.push_frame(frame, direction)

    def _pcm16k(self, frame: AudioRawFrame) -> bytes:
        audio = pcm.first_channel(frame.audio, frame.num_channels)
        if frame.sample_rate == pcm.SAMPLE_RATE:
            return audio
        if self._resampler is None or self._resampler.rate != frame.sample_rate:
            # A stream keeps the filter state across chunks (no clicks at 20 ms boundaries).
            self._resampler = pcm.StreamResampler(frame.sample_rate)
        return self._resampler.process(audio)

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._holding:
            self._holding = False
            self._monitors.end(self._call_id)
