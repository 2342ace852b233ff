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

import numpy as np
import soxr  # type: ignore[import-untyped]
from pipecat.frames.frames import AudioRawFrame, Frame, InputAudioRawFrame, StartFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.monitor import MONITORS, RATE, Monitors


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
        self._resampler: soxr.ResampleStream | None = None
        self._resampler_rate = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._holds_call and not self._holding:
            self._holding = True
            self._monitors.begin(self._call_id)
        elif isinstance(frame, self._kind) and self._monitors.listening(self._call_id):
            self._monitors.feed(self._call_id, self._source, self._pcm16k(frame))
        await self.push_frame(frame, direction)

    def _pcm16k(self, frame: AudioRawFrame) -> bytes:
        samples = np.frombuffer(frame.audio, dtype=np.int16)
        if frame.num_channels > 1:
            samples = samples.reshape(-1, frame.num_channels)[:, 0]
        if frame.sample_rate == RATE:
            return samples.tobytes()
        if self._resampler is None or self._resampler_rate != frame.sample_rate:
            # A stream keeps the filter state across chunks (no clicks at 20 ms boundaries).
            self._resampler = soxr.ResampleStream(frame.sample_rate, RATE, 1, dtype="int16")
            self._resampler_rate = frame.sample_rate
        return self._resampler.resample_chunk(samples).tobytes()

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._holding:
            self._holding = False
            self._monitors.end(self._call_id)
