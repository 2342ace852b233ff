"""Whisper's encoder windows of many lengths do not grow the process: CTranslate2 keeps memory for every input
length it has seen, so :class:`SharedModels` sizes windows in whole seconds (``WINDOW_STEP_S``). Real model, real
speech (espeak-ng), this process's RSS."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from audio import pcm
from audio.speech import espeak_ng
from voicebot.calls.heap import HEAP
from voicebot.config import Settings
from voicebot.models import load_piper, load_whisper
from voicebot.pipeline.shared import SharedModels

pytestmark = pytest.mark.slow


def rss_mb() -> float:
    """Resident memory in use: collected and trimmed first, so heap glibc merely keeps from earlier tests of this
    process does not count (as the server does after each call, :mod:`voicebot.calls.heap`)."""
    gc.collect()
    HEAP.trim()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_utterances_of_many_lengths_do_not_grow_the_memory() -> None:
    settings = Settings()  # type: ignore[call-arg]
    shared = SharedModels(settings, load_whisper(settings), load_piper(settings))
    try:
        samples, _ = espeak_ng("Where is my order?", sample_rate=pcm.SAMPLE_RATE)
        said = (np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes()

        def utterance(seconds: float) -> bytes:  # the words, then silence up to ``seconds``
            return said + pcm.silence(seconds * 1000 - pcm.duration_ms(said))

        for seconds in range(9, 15):  # every whole-second window these lengths can need, seen once
            shared.transcribe(utterance(seconds + 0.5))
        # Then 30 other lengths in the same windows: the first transcriptions also warm up what any decode needs
        # once (about 7 MB, flat after it), which is not what this test is about.
        for i in range(30):
            shared.transcribe(utterance(9.27 + i * 0.17))
        before = rss_mb()
        # 30 lengths, 10 ms apart at the window's resolution: with exact windows each was a new input shape.
        texts = [shared.transcribe(utterance(9.2 + i * 0.17)) for i in range(30)]
        grown = rss_mb() - before
    finally:
        shared.close()
    assert any("order" in t.lower() for t in texts), texts
    assert grown < 8, f"RSS grew {grown:.1f} MB over 30 utterance lengths"
