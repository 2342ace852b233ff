"""audio.prosody.baseline: the caller's own reference and the change against it."""

from __future__ import annotations

import pytest

from audio.prosody.baseline import POPULATION_REFERENCE, SpeakerBaseline, population_baseline
from audio.prosody.features import ProsodyFeatures


def _utt(pitch: float, loud: float, rate: float | None = 4.0) -> ProsodyFeatures:
    return ProsodyFeatures(
        duration_s=2.0, speech_s=1.5, voiced_s=1.0, pitch_level_st=pitch, loudness_db=loud, speaking_rate=rate
    )


def test_baseline_takes_only_the_first_n_utterances() -> None:
    base = SpeakerBaseline(n_utterances=2)
    assert not base.complete and base.reference() == {}
    assert base.add(_utt(2.0, -20.0))
    assert base.add(_utt(4.0, -22.0))
    assert base.complete
    assert not base.add(_utt(20.0, 0.0))
    assert base.utterances == 2
    assert base.reference()["pitch_level_st"] == pytest.approx(3.0)


def test_median_resists_one_odd_utterance() -> None:
    base = SpeakerBaseline.from_features([_utt(2.0, -20), _utt(2.5, -21), _utt(15.0, -5)])
    assert base.reference()["pitch_level_st"] == pytest.approx(2.5)


def test_deltas_are_differences_or_ratios() -> None:
    base = SpeakerBaseline.from_features([_utt(2.0, -20.0, rate=4.0)])
    deltas = base.deltas(_utt(6.0, -14.0, rate=5.0))
    assert deltas["pitch_level_st"] == pytest.approx(4.0)
    assert deltas["loudness_db"] == pytest.approx(6.0)
    assert deltas["speaking_rate"] == pytest.approx(0.25)  # 25 % faster


def test_missing_values_are_left_out() -> None:
    base = SpeakerBaseline.from_features([_utt(2.0, -20.0, rate=None)])
    deltas = base.deltas(_utt(3.0, -20.0, rate=5.0))
    assert "speaking_rate" not in deltas and "pitch_level_st" in deltas


def test_silent_utterances_do_not_count() -> None:
    base = SpeakerBaseline(n_utterances=1)
    assert not base.add(ProsodyFeatures(duration_s=1.0, speech_s=0.0, voiced_s=0.0))
    assert base.utterances == 0 and not base.complete


def test_population_reference_is_fixed_and_has_no_pitch_level() -> None:
    base = population_baseline()
    assert base.is_population and base.complete
    assert "pitch_level_st" not in base.reference() and "loudness_db" not in base.reference()
    assert not base.add(_utt(2.0, -20.0))
    assert base.reference() == POPULATION_REFERENCE


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        SpeakerBaseline(n_utterances=0)
    with pytest.raises(ValueError, match="unknown"):
        SpeakerBaseline.from_reference({"pitch": 1.0})
