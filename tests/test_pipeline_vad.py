"""Silero voice activity shared by calls (voicebot.pipeline.vad) against pipecat's own analyzer, on real speech."""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer

from audio.speech import espeak_ng
from voicebot.pipeline.vad import WINDOW, SileroModel, VoiceStream, holds_voice, shared_silero

RATE = 16000


def windows(audio: np.ndarray) -> list[bytes]:
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    return [pcm[i : i + 2 * WINDOW] for i in range(0, len(pcm) - 2 * WINDOW + 1, 2 * WINDOW)]


@pytest.fixture(scope="module")
def call_audio() -> list[bytes]:
    """A caller waiting in digital silence, speaking, pausing, over line noise, and speaking again."""
    speech, _ = espeak_ng("Where is my order? I would like to change my address.", sample_rate=RATE)
    noise = np.random.default_rng(1).normal(0, 0.003, RATE)
    quiet = np.zeros(RATE)
    return windows(np.concatenate([quiet * 4, speech, quiet * 0.5, speech, noise, speech, quiet * 3, speech, quiet]))


def pipecat_scores(audio: list[bytes]) -> list[float]:
    analyzer = SileroVADAnalyzer(sample_rate=RATE)
    analyzer.set_sample_rate(RATE)
    return [float(np.asarray(analyzer.voice_confidence(w)).reshape(-1)[0]) for w in audio]


def test_scores_are_pipecats_to_the_bit_with_and_without_skipping_silence(call_audio):
    expected = pipecat_scores(call_audio)
    for skip in (False, True):
        stream = VoiceStream(skip_silence=skip)
        assert [stream.confidence(w) for w in call_audio] == expected


def test_digital_silence_after_a_reset_is_not_scored(call_audio):
    stream = VoiceStream()
    for w in windows(np.zeros(5 * RATE)):
        stream.confidence(w)
    assert stream.scored == 0
    every = VoiceStream()
    for w in call_audio:
        every.confidence(w)
    assert 0 < every.scored < len(call_audio)


def test_calls_sharing_the_network_keep_their_own_state(call_audio):
    first, second = VoiceStream(), VoiceStream()
    assert first._model is second._model is shared_silero()
    later = call_audio[len(call_audio) // 3 :]
    got_first, got_second = [], []
    for a, b in zip(call_audio, later + call_audio, strict=False):
        got_first.append(first.confidence(a))
        got_second.append(second.confidence(b))
    assert got_first == pipecat_scores(call_audio)
    assert got_second == pipecat_scores(later + call_audio)[: len(got_second)]


def test_a_window_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="512 samples"):
        VoiceStream(SileroModel()).confidence(bytes(320))


def test_a_clip_holds_voice_only_where_a_window_is_voiced_enough():
    speech, _ = espeak_ng("two", sample_rate=RATE)
    pcm16 = (np.clip(speech, -1, 1) * 32767).astype(np.int16).tobytes()
    hiss = (np.random.default_rng(2).normal(0, 0.01, RATE) * 32767).astype(np.int16).tobytes()
    tone = (np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE) * 0.3 * 32767).astype(np.int16).tobytes()
    assert holds_voice(pcm16, 0.5) and holds_voice(bytes(RATE) + pcm16, 0.5)
    assert not holds_voice(hiss, 0.5) and not holds_voice(tone, 0.5) and not holds_voice(bytes(2 * RATE), 0.5)
    assert not holds_voice(pcm16[: 2 * WINDOW - 2], 0.5)  # shorter than one window: nothing to score
