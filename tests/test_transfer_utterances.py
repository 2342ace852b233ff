"""The level-gated segmenter that cuts each side of a bridged call into utterances for the transcript."""

from __future__ import annotations

import numpy as np

from voicebot.transfer import Utterances


def frames(level: float, seconds: float) -> list[bytes]:
    n = int(seconds * 50)
    t = np.arange(320) / 16000
    one = (np.sin(2 * np.pi * 300 * t) * level).astype(np.int16).tobytes()
    return [one] * n


def run(seg: Utterances, chunks: list[bytes]) -> list[bytes]:
    return [done[0] for done in (seg.feed(c) for c in chunks) if done is not None]


def test_speech_between_silences_is_one_utterance_with_its_lead_in() -> None:
    seg = Utterances(threshold=400, silence_ms=600, keep_ms=200)
    out = run(seg, frames(0, 1) + frames(3000, 1.0) + frames(0, 1))
    assert len(out) == 1
    # 200 ms before the speech, 1 s of speech, the 600 ms of silence that ended it.
    assert len(out[0]) == 640 * (10 + 50 + 30)


def test_a_short_pause_does_not_split_and_a_long_one_does() -> None:
    seg = Utterances(threshold=400, silence_ms=600)
    out = run(seg, frames(3000, 0.5) + frames(0, 0.3) + frames(3000, 0.5) + frames(0, 1) + frames(3000, 0.5)
              + frames(0, 1))
    assert len(out) == 2


def test_clicks_and_quiet_noise_are_not_utterances() -> None:
    seg = Utterances(threshold=400, min_speech_ms=200)
    assert run(seg, frames(100, 2)) == []  # below the threshold
    assert run(seg, frames(3000, 0.1) + frames(0, 1)) == []  # 100 ms: too short to be speech
    assert seg.flush() is None


def test_flush_returns_the_utterance_in_progress_and_max_length_cuts() -> None:
    seg = Utterances(threshold=400, max_s=1.0)
    out = run(seg, frames(3000, 1.5))
    assert len(out) == 1 and len(out[0]) == 640 * 50
    rest = seg.flush()
    assert rest is not None and len(rest[0]) == 640 * 25
    assert rest[1] <= rest[2]
