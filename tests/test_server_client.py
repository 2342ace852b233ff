"""The WebRTC test caller's offline parts: reading the input file and finding its speech."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.client.webrtc import RATE, ClientError, read_wav, speech_segments, write_wav


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


def test_segments_bridge_short_pauses_and_split_long_ones():
    audio = np.concatenate([silence(0.5), tone(1.0), silence(0.3), tone(0.5), silence(1.5), tone(0.8), silence(0.4)])
    segments = speech_segments(audio)
    assert len(segments) == 2
    assert segments[0].start == pytest.approx(0.5, abs=0.03)
    assert segments[0].end == pytest.approx(2.3, abs=0.03)
    assert segments[1].start == pytest.approx(3.8, abs=0.03)
    assert segments[1].end == pytest.approx(4.6, abs=0.03)


def test_wav_is_read_as_48k_mono(tmp_path):
    path = tmp_path / "in.wav"
    write_wav(path, tone(1.0, 16000), rate=16000)
    samples = read_wav(path)
    assert len(samples) == pytest.approx(RATE, abs=100)


def test_missing_or_bad_wav_is_a_client_error(tmp_path):
    with pytest.raises(ClientError, match="no such file"):
        read_wav(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....nonsense")
    with pytest.raises(ClientError, match="not a PCM WAV"):
        read_wav(bad)
