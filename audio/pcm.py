"""The one PCM format calls use inside the product, and the helpers everyone needs to move audio in it.

Every leg, the queue, the bridge, listen-in, the transcriber and the voice pipeline exchange **16 kHz,
16-bit signed little-endian, mono PCM in 20 ms frames** (``FRAME_BYTES`` bytes). Codecs (G.711 at 8 kHz,
Opus at 48 kHz) and models (Piper at 22.05 kHz) convert at the edge, with the helpers here.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
"""Samples per second of call audio."""
SAMPLE_WIDTH = 2
"""Bytes per sample (int16)."""
FRAME_MS = 20
"""Milliseconds per frame."""
FRAME_S = FRAME_MS / 1000
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
"""320 samples in one frame."""
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH
"""640 bytes in one frame."""
BYTES_PER_MS = SAMPLE_RATE * SAMPLE_WIDTH // 1000
"""32 bytes of call audio per millisecond."""


def duration_ms(pcm: bytes | bytearray, rate: int = SAMPLE_RATE) -> float:
    """How long ``pcm`` (16-bit mono at ``rate``) plays, in milliseconds."""
    return len(pcm) / (rate * SAMPLE_WIDTH / 1000)


def silence(ms: float, rate: int = SAMPLE_RATE) -> bytes:
    """``ms`` milliseconds of digital silence (rounded down to whole samples)."""
    return bytes(int(rate * ms / 1000) * SAMPLE_WIDTH)


def frames(pcm: bytes, frame_bytes: int = FRAME_BYTES, *, pad: bool = False) -> list[bytes]:
    """``pcm`` cut into whole frames; the last partial frame is padded with silence if ``pad``, else dropped."""
    out = [pcm[i:i + frame_bytes] for i in range(0, len(pcm) - frame_bytes + 1, frame_bytes)]
    rest = len(pcm) % frame_bytes
    if pad and rest:
        out.append(pcm[len(pcm) - rest:].ljust(frame_bytes, b"\0"))
    return out


class FrameSplitter:
    """Cuts a stream of PCM chunks of any size into whole frames, keeping the remainder for the next chunk."""

    def __init__(self, frame_bytes: int = FRAME_BYTES):
        self.frame_bytes = frame_bytes
        self._pending = bytearray()

    def feed(self, pcm: bytes) -> list[bytes]:
        """The whole frames available after adding ``pcm``."""
        self._pending.extend(pcm)
        n = len(self._pending) // self.frame_bytes * self.frame_bytes
        if not n:
            return []
        chunk = bytes(self._pending[:n])
        del self._pending[:n]
        return [chunk[i:i + self.frame_bytes] for i in range(0, n, self.frame_bytes)]


def to_int16(pcm: bytes) -> np.ndarray:
    """PCM bytes as an int16 array (no copy)."""
    return np.frombuffer(pcm, dtype="<i2")


def mix(a: bytes, b: bytes) -> bytes:
    """Two 16-bit PCM chunks added sample by sample with clipping; the result is as long as ``a``
    (``b`` is cut or treated as silence beyond its end)."""
    if not b:
        return a
    total = to_int16(a).astype(np.int32)
    extra = to_int16(b[: len(a) - len(a) % 2 if len(b) > len(a) else len(b) - len(b) % 2])
    total[: len(extra)] += extra
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


def first_channel(pcm: bytes, channels: int) -> bytes:
    """The first channel of interleaved 16-bit PCM."""
    if channels == 1:
        return pcm
    return to_int16(pcm)[::channels].tobytes()


def resample(pcm: bytes, rate: int, target: int = SAMPLE_RATE) -> bytes:
    """16-bit mono PCM at ``rate`` resampled to ``target`` in one go (for whole prompts; for a live stream
    use :class:`StreamResampler`, which keeps the filter state between chunks)."""
    if rate == target or not pcm:
        return pcm
    import soxr  # type: ignore[import-untyped]

    out = soxr.resample(to_int16(pcm).astype(np.float32), rate, target)
    return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()


class StreamResampler:
    """A live stream of 16-bit mono chunks at one rate resampled to another without clicks at chunk borders
    (soxr's streaming resampler; its first chunk may return fewer samples: filter delay)."""

    def __init__(self, rate: int, target: int = SAMPLE_RATE):
        import soxr  # type: ignore[import-untyped]

        self.rate, self.target = rate, target
        self._stream = soxr.ResampleStream(rate, target, 1, dtype="int16") if rate != target else None

    def process(self, pcm: bytes) -> bytes:
        if self._stream is None:
            return pcm
        return self._stream.resample_chunk(to_int16(pcm)).tobytes()
