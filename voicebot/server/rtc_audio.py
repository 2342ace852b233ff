"""Audio over the server's own aiortc connections (the agent's phone, a supervisor listening in), as 16 kHz
16-bit mono in 20 ms frames both ways.

:class:`PacedAudioTrack` sends: each frame comes from :meth:`PacedAudioTrack.next_chunk` (a buffer for the
agent's phone, a mix of the call for a supervisor), padded with silence, paced in real time.
:func:`read_track` receives: a peer's track resampled and cut into 20 ms chunks.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

from audio.pcm import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH, FrameSplitter


class PacedAudioTrack(MediaStreamTrack):
    """Sends ``pull()`` (or a subclass's :meth:`next_chunk`) every 20 ms: 16 kHz 16-bit mono PCM."""

    kind = "audio"

    def __init__(self, pull: Callable[[], bytes] | None = None) -> None:
        super().__init__()
        self._pull = pull
        self._start: float | None = None
        self._pts = 0

    def next_chunk(self) -> bytes:
        """The next 20 ms to send (shorter is padded with silence)."""
        return self._pull() if self._pull is not None else b""

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._pts += FRAME_SAMPLES
            await asyncio.sleep(max(0.0, self._start + self._pts / SAMPLE_RATE - time.time()))
        chunk = self.next_chunk()[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(chunk)
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


async def read_track(track: MediaStreamTrack, on_chunk: Callable[[bytes], None]) -> None:
    """Call ``on_chunk`` with each 20 ms of ``track`` (16 kHz 16-bit mono) until the track ends."""
    resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    frames = FrameSplitter()
    try:
        while True:
            frame = await track.recv()
            if not isinstance(frame, AudioFrame):
                continue
            for out in resampler.resample(frame):
                for chunk in frames.feed(bytes(out.planes[0])[: out.samples * SAMPLE_WIDTH]):
                    on_chunk(chunk)
    except MediaStreamError:
        return
