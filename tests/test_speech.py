"""audio.speech: test speech from espeak-ng and Piper, synthesised at test time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audio.speech import SpeechSynthesisError, espeak_ng, piper_tts, piper_voice_path, write_wav

TEXT = "Hello, I would like to check the status of my order."


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_espeak_returns_mono_float_speech_at_native_rate() -> None:
    samples, rate = espeak_ng(TEXT)
    assert rate == 22050
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert 1.5 < samples.size / rate < 6.0
    assert np.max(np.abs(samples)) <= 1.0
    assert _rms(samples) > 0.01


def test_espeak_knobs_change_the_speech() -> None:
    slow, rate = espeak_ng(TEXT, rate=120)
    fast, _ = espeak_ng(TEXT, rate=300)
    assert fast.size < 0.7 * slow.size
    soft, _ = espeak_ng(TEXT, amplitude=40)
    loud, _ = espeak_ng(TEXT, amplitude=160)
    assert _rms(loud) > 2.0 * _rms(soft)


def test_espeak_resamples_on_request() -> None:
    native, _ = espeak_ng(TEXT)
    phone, rate = espeak_ng(TEXT, sample_rate=8000)
    assert rate == 8000
    assert abs(phone.size - native.size * 8000 / 22050) < 10


def test_espeak_unknown_voice_is_a_clear_error() -> None:
    with pytest.raises(SpeechSynthesisError, match="espeak-ng failed"):
        espeak_ng(TEXT, voice="xx-nope")


def test_piper_voice_is_bundled_with_its_config() -> None:
    model = piper_voice_path()
    assert model.suffix == ".onnx" and model.exists()
    config = json.loads(model.with_name(model.name + ".json").read_text())
    assert config["audio"]["sample_rate"] == 22050


def test_piper_speaks_and_length_scale_slows_it(tmp_path) -> None:
    normal, rate = piper_tts(TEXT)
    slow, _ = piper_tts(TEXT, length_scale=1.5)
    assert rate == 22050 and normal.dtype == np.float32
    assert _rms(normal) > 0.01
    assert slow.size > 1.25 * normal.size
    import soundfile as sf

    path = write_wav(tmp_path / "piper.wav", normal, rate)
    back, back_rate = sf.read(str(path), dtype="float32")
    assert back_rate == rate and back.size == normal.size
