"""Hold music: a soft arpeggio generated from code (no recording, so no third-party licence; it is part of
this program). 16 kHz 16-bit mono PCM, notes in the telephone band (300-3400 Hz), loops without a click."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from audio.pcm import FRAME_MS, SAMPLE_RATE, SAMPLE_WIDTH

# C major - A minor - F major - G major, four notes up each chord; MIDI note numbers.
PROGRESSION = ((72, 76, 79, 84), (69, 72, 76, 81), (65, 69, 72, 77), (67, 71, 74, 79))
NOTE_S = 0.5
LEVEL_DBFS = -20.0


def _hz(midi: int) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def tone(freq_hz: float, seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One soft note as float samples in [-1, 1]: a sine with a little second and third harmonic, a 10 ms
    attack and an exponential decay that reaches silence at the end (so notes join without clicks)."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    wave = (
        np.sin(2 * np.pi * freq_hz * t)
        + 0.3 * np.sin(4 * np.pi * freq_hz * t)
        + 0.1 * np.sin(6 * np.pi * freq_hz * t)
    )
    attack = np.minimum(1.0, t / 0.01)
    decay = np.exp(-3.0 * t / seconds) * (1.0 - t / seconds)
    return wave * attack * decay / 1.4


@lru_cache(maxsize=4)
def hold_music(sample_rate: int = SAMPLE_RATE) -> bytes:
    """One loop of the hold music (8 s) as 16-bit little-endian mono PCM at ``sample_rate``."""
    notes = [tone(_hz(m), NOTE_S, sample_rate) for chord in PROGRESSION for m in chord]
    signal = np.concatenate(notes)
    peak = 10 ** (LEVEL_DBFS / 20) / max(float(np.max(np.abs(signal))), 1e-9)
    return (signal * peak * 32767).astype("<i2").tobytes()


def hold_music_frames(frame_ms: int = FRAME_MS, sample_rate: int = SAMPLE_RATE) -> Iterator[bytes]:
    """Endless frames of ``frame_ms`` of hold music, for a leg that wants one frame per packet."""
    loop = hold_music(sample_rate)
    size = sample_rate * frame_ms // 1000 * SAMPLE_WIDTH
    # A loop that is not a whole number of frames continues from where the last frame ended.
    doubled = loop + loop
    pos = 0
    while True:
        yield doubled[pos : pos + size]
        pos = (pos + size) % len(loop)
