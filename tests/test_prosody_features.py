"""audio.prosody.features: measures that move the right way, and a defined result for any audio."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audio.frustration import score_turn
from audio.prosody.features import FEATURE_NAMES, ProsodyFeatures, extract_features
from audio.speech import espeak_ng

TEXT = "I ordered a blue jacket last week and it still has not arrived at my house."


@pytest.fixture(scope="module")
def normal() -> tuple[np.ndarray, int]:
    return espeak_ng(TEXT)


def _tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_pure_tone_pitch_is_found_at_any_rate(rate: int) -> None:
    f = extract_features(_tone(220.0, 1.0, rate), rate)
    assert f.pitch_hz == pytest.approx(220.0, rel=0.02)
    assert f.pitch_level_st == pytest.approx(12 * math.log2(2.2), abs=0.3)
    assert f.pitch_range_st is not None and f.pitch_range_st < 0.5


def test_higher_voice_has_higher_pitch_level() -> None:
    low = extract_features(*espeak_ng(TEXT, pitch=25))
    high = extract_features(*espeak_ng(TEXT, pitch=80))
    assert high.pitch_level_st - low.pitch_level_st > 2.0


def test_faster_speech_has_higher_speaking_rate() -> None:
    slow = extract_features(*espeak_ng(TEXT, rate=130))
    fast = extract_features(*espeak_ng(TEXT, rate=260))
    assert fast.speaking_rate > 1.4 * slow.speaking_rate
    # espeak at its default rate says about 5 syllables per second of speech.
    assert 2.5 < slow.speaking_rate < 6.5


def test_loudness_follows_gain(normal) -> None:
    samples, rate = normal
    full = extract_features(samples, rate)
    half = extract_features(samples * 0.5, rate)
    assert full.loudness_db - half.loudness_db == pytest.approx(6.02, abs=0.5)
    # Gain alone must not change pitch or tempo.
    assert half.pitch_level_st == pytest.approx(full.pitch_level_st, abs=0.2)
    assert half.speaking_rate == pytest.approx(full.speaking_rate, rel=0.15)


def test_telephone_band_audio_measures_like_wideband(normal) -> None:
    samples, rate = normal
    wide = extract_features(samples, rate)
    phone = extract_features(*espeak_ng(TEXT, sample_rate=8000))
    assert phone.pitch_level_st == pytest.approx(wide.pitch_level_st, abs=0.5)
    assert phone.speaking_rate == pytest.approx(wide.speaking_rate, rel=0.2)
    assert phone.hf_ratio_db == pytest.approx(wide.hf_ratio_db, abs=1.5)


def test_a_long_pause_raises_the_pause_ratio(normal) -> None:
    samples, rate = normal
    gap = np.zeros(2 * rate, dtype=np.float32)
    paused = extract_features(np.concatenate([samples, gap, samples]), rate)
    joined = extract_features(np.concatenate([samples, samples]), rate)
    assert paused.pause_ratio > joined.pause_ratio + 0.12


def test_integer_and_stereo_input_equal_float_mono(normal) -> None:
    samples, rate = normal
    ref = extract_features(samples, rate)
    as_int = extract_features((samples * 32767).astype(np.int16), rate)
    stereo = extract_features(np.stack([samples, samples], axis=1), rate)
    for other in (as_int, stereo):
        assert other.pitch_level_st == pytest.approx(ref.pitch_level_st, abs=0.05)
        assert other.loudness_db == pytest.approx(ref.loudness_db, abs=0.1)


def test_clipping_is_reported(normal) -> None:
    samples, rate = normal
    f = extract_features(np.clip(samples * 20, -1, 1), rate)
    assert f.clipped_fraction > 0.01
    assert any("clipped" in issue for issue in f.issues)


def test_silence_has_no_speech() -> None:
    f = extract_features(np.zeros(16000, dtype=np.float32), 16000)
    assert f.speech_s == 0 and f.pitch_level_st is None
    assert any("silence" in issue for issue in f.issues)


def test_bad_sample_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        extract_features(np.zeros(100), 0)


def _garbage() -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(7)
    speech, rate = espeak_ng("third time", sample_rate=8000)
    return {
        "empty": (np.zeros(0, dtype=np.float32), 16000),
        "10 ms": (rng.normal(0, 0.1, 160), 16000),
        "0.1 s speech": (speech[1000:1800], 8000),
        "silence": (np.zeros(48000), 48000),
        "dc": (np.ones(16000), 16000),
        "white noise": (rng.normal(0, 0.3, 16000), 16000),
        "pure tone": (_tone(1000.0, 2.0, 8000, amp=1.0), 8000),
        "full-scale square": (np.sign(_tone(150.0, 1.0, 16000)), 16000),
        "extreme values": (rng.normal(0, 1e30, 16000), 16000),
        "tiny values": (rng.normal(0, 1e-30, 16000), 16000),
        "nan and inf": (
            np.where(rng.random(16000) < 0.1, np.nan, np.where(rng.random(16000) < 0.1, np.inf, 0.2)),
            16000,
        ),
        "int16 max": (np.full(8000, 32767, dtype=np.int16), 8000),
        "uint8": (rng.integers(0, 255, 8000).astype(np.uint8), 8000),
        "clicks": (np.where(np.arange(16000) % 800 == 0, 1.0, 0.0), 16000),
        "odd rate": (speech, 11025),
        "3-d array": (rng.normal(0, 0.1, (2, 2, 4000)), 16000),
    }


@pytest.mark.parametrize("samples_n", [319, 320, 321, 399, 401, 480, 560, 640, 800, 1200])
def test_every_short_length_is_handled(samples_n: int) -> None:
    # Lengths around one analysis frame (320 samples at 8 kHz) and a few frames: where windowing breaks.
    speech, rate = espeak_ng("third time", sample_rate=8000)
    f = extract_features(speech[2000 : 2000 + samples_n], rate)
    assert f.duration_s == pytest.approx(samples_n / rate)
    assert all(f.value(k) is None or math.isfinite(f.value(k)) for k in FEATURE_NAMES)


@pytest.mark.parametrize("name", list(_garbage()))
def test_garbage_gives_a_defined_result(name: str) -> None:
    samples, rate = _garbage()[name]
    f = extract_features(samples, rate)
    assert isinstance(f, ProsodyFeatures)
    assert f.duration_s == pytest.approx(np.asarray(samples).size / rate)
    for key in FEATURE_NAMES:
        value = f.value(key)
        assert value is None or math.isfinite(value), (key, value)
    assert 0.0 <= f.speech_s <= f.duration_s + 0.05
    result = score_turn(f, None)
    assert 0.0 <= result.score <= 1.0 and result.level in {"calm", "annoyed", "frustrated"}
    assert f.to_dict()["issues"] == list(f.issues)


def test_natural_voice_tempo_is_measured() -> None:
    from audio.speech import piper_tts

    # Without Piper's noise the speech is the same on every run, so the test cannot flake.
    slow = extract_features(*piper_tts(TEXT, length_scale=1.3, noise_scale=0.0, noise_w_scale=0.0))
    fast = extract_features(*piper_tts(TEXT, length_scale=0.75, noise_scale=0.0, noise_w_scale=0.0))
    assert fast.speaking_rate > 1.2 * slow.speaking_rate
    assert fast.pitch_level_st == pytest.approx(slow.pitch_level_st, abs=2.0)
