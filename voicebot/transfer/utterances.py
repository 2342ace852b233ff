"""Utterances of a bridged call: each side cut into stretches of speech by level, for its transcript."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from audio.pcm import FRAME_MS


class Utterances:
    """Cuts one side of a call (call audio in frames, :mod:`audio.pcm`) into utterances by level: speech
    starts with a frame above ``threshold`` RMS and ends after ``silence_ms`` below it (or at ``max_s``). A plain level gate
    is enough for a transcript of a bridged call: both sides are close-talking phones."""

    def __init__(self, threshold: float = 400.0, silence_ms: int = 700, min_speech_ms: int = 200,
                 max_s: float = 20.0, keep_ms: int = 200):
        self.threshold = threshold
        self.silence_frames = silence_ms // FRAME_MS
        self.min_frames = min_speech_ms // FRAME_MS
        self.max_frames = int(max_s * 1000) // FRAME_MS
        self.keep_frames = keep_ms // FRAME_MS
        self._frames: list[bytes] = []
        self._recent: list[bytes] = []  # audio just before speech starts (soft first syllable)
        self._speech = 0
        self._quiet = 0
        self._start: datetime | None = None

    def feed(self, pcm: bytes) -> tuple[bytes, datetime, datetime] | None:
        """Add one frame; returns ``(audio, start, end)`` when an utterance has ended."""
        x = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
        loud = bool(len(x)) and float(np.sqrt(np.mean(x * x))) > self.threshold
        if self._start is None:
            if not loud:
                self._recent = (self._recent + [pcm])[-self.keep_frames:] if self.keep_frames else []
                return None
            self._start = datetime.now(UTC)
            self._frames = list(self._recent)
            self._speech, self._quiet = 0, 0
        self._frames.append(pcm)
        if loud:
            self._speech += 1
            self._quiet = 0
        else:
            self._quiet += 1
        if self._quiet >= self.silence_frames or len(self._frames) >= self.max_frames:
            return self.flush()
        return None

    def flush(self) -> tuple[bytes, datetime, datetime] | None:
        """The utterance in progress (if it had enough speech), ending now."""
        if self._start is None:
            return None
        start, frames, speech = self._start, self._frames, self._speech
        self._start, self._frames, self._recent = None, [], []
        if speech < self.min_frames:
            return None
        return b"".join(frames), start, datetime.now(UTC)
