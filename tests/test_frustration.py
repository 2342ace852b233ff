"""audio.frustration: the per-turn score from voice, words and dialog, and the per-call tracker."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from audio.config import ProsodyConfig
from audio.frustration import DialogSignals, FrustrationTracker, level_for, score_turn
from audio.prosody.baseline import SpeakerBaseline
from audio.prosody.features import extract_features
from audio.speech import espeak_ng

CALM_TEXTS = [
    "I would like to check on my order please.",
    "The order number is four five seven two.",
    "It was supposed to arrive on Monday.",
]
ANGRY_TEXT = "This is the third time I am calling about this order and it is still not here."
CALM = {"rate": 160, "pitch": 45, "amplitude": 80}
AGITATED = {"rate": 225, "pitch": 75, "amplitude": 170}


@pytest.fixture(scope="module")
def calm_utterances():
    return [extract_features(*espeak_ng(t, **CALM)) for t in CALM_TEXTS]


@pytest.fixture(scope="module")
def baseline(calm_utterances) -> SpeakerBaseline:
    return SpeakerBaseline.from_features(calm_utterances)


@pytest.fixture(scope="module")
def calm_turn():
    return extract_features(*espeak_ng(ANGRY_TEXT, **CALM))


@pytest.fixture(scope="module")
def agitated_turn():
    return extract_features(*espeak_ng(ANGRY_TEXT, **AGITATED))


def test_agitated_voice_scores_frustrated_calm_voice_calm(baseline, calm_turn, agitated_turn) -> None:
    calm = score_turn(calm_turn, baseline)
    agitated = score_turn(agitated_turn, baseline)
    assert calm.level == "calm" and calm.score < 0.3
    assert agitated.level == "frustrated" and agitated.score > calm.score + 0.4
    assert agitated.baseline == "own (3 utterances)"
    words = " ".join(agitated.explanation)
    assert "pitch +" in words and "louder than usual" in words
    assert agitated.contributions["pitch_level_st"] > 0 and agitated.deltas["pitch_level_st"] > 2


def test_words_push_the_score_and_are_quoted(baseline, calm_turn) -> None:
    plain = score_turn(calm_turn, baseline, "I would like to check my order")
    upset = score_turn(calm_turn, baseline, "This is the third time. Ridiculous. Get me a manager!")
    assert not any(k.startswith("words:") for k in plain.contributions)
    assert upset.score > plain.score + 0.3
    assert {"said 'third time'", "said 'ridiculous'", "said 'get me a manager'"} == set(upset.explanation)
    assert "words:human" in upset.contributions and "words:anger" in upset.contributions


@pytest.mark.parametrize("text", ["hello there", "please cancel my order", "I need a new charger", "shell"])
def test_ordinary_requests_are_not_word_cues(text: str) -> None:
    result = score_turn(None, None, text)
    assert result.contributions == {} and result.level == "calm"


def test_dialog_trouble_raises_the_score_step_by_step() -> None:
    scores = [score_turn(None, None, "", DialogSignals(no_match_streak=n)).score for n in range(4)]
    assert scores == sorted(scores) and scores[3] > scores[0] + 0.2
    result = score_turn(None, None, "", DialogSignals(reasks=2, failed_verifications=1))
    assert "bot had to re-ask twice" in result.explanation
    assert "verification failed once" in result.explanation


def test_without_baseline_the_population_reference_is_used(agitated_turn) -> None:
    result = score_turn(agitated_turn, None)
    assert result.baseline == "population"
    assert "pitch_level_st" not in result.deltas  # pitch level depends on the speaker, not comparable
    empty = score_turn(agitated_turn, SpeakerBaseline())
    assert empty.baseline == "population"


def test_tracker_builds_the_baseline_then_sees_a_rising_trend(calm_utterances) -> None:
    tracker = FrustrationTracker(ProsodyConfig(baseline_utterances=3))
    for text, features in zip(CALM_TEXTS, calm_utterances, strict=True):
        assert tracker.update(features, text).level == "calm"
    assert tracker.baseline.complete
    steps = [
        {"rate": 180, "pitch": 55, "amplitude": 100},
        {"rate": 200, "pitch": 65, "amplitude": 135},
        {"rate": 230, "pitch": 78, "amplitude": 180},
    ]
    results = [tracker.update(extract_features(*espeak_ng(ANGRY_TEXT, **kw))) for kw in steps]
    assert [r.score for r in results] == sorted(r.score for r in results)
    assert results[-1].rising and results[-1].level == "frustrated"
    assert "rising over the last three turns" in results[-1].explanation
    assert tracker.peak == pytest.approx(results[-1].score)
    assert tracker.baseline.utterances == 3  # later turns did not move the baseline


def test_tracker_is_not_rising_when_flat(calm_utterances) -> None:
    tracker = FrustrationTracker()
    results = [tracker.update(f) for f in calm_utterances + calm_utterances]
    assert not any(r.rising for r in results)


def test_levels_follow_configured_thresholds() -> None:
    cfg = ProsodyConfig(annoyed=0.3, frustrated=0.6)
    assert [level_for(s, cfg) for s in (0.29, 0.3, 0.59, 0.6)] == ["calm", "annoyed", "annoyed", "frustrated"]
    assert level_for(0.5) == "annoyed" and level_for(0.75) == "frustrated"


def test_weights_can_switch_a_cue_off(baseline, agitated_turn) -> None:
    off = ProsodyConfig(weights={"pitch_level_st": 0.0})
    assert "pitch_level_st" not in score_turn(agitated_turn, baseline, config=off).contributions
    assert score_turn(agitated_turn, baseline, config=off).score < score_turn(agitated_turn, baseline).score


def test_bad_config_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="below"):
        ProsodyConfig(annoyed=0.8, frustrated=0.5)
    with pytest.raises(ValidationError, match="unknown cue"):
        ProsodyConfig(weights={"pitch": 1.0})
    with pytest.raises(ValidationError):
        ProsodyConfig(baseline_utterances=0)


def test_a_frustrated_opening_does_not_become_the_baseline(calm_utterances, agitated_turn) -> None:
    tracker = FrustrationTracker(ProsodyConfig(baseline_utterances=2))
    opening = tracker.update(agitated_turn, "third time now, this is ridiculous, get me a manager")
    assert opening.level == "frustrated" and opening.baseline == "population"
    assert tracker.baseline.utterances == 0
    for features in calm_utterances[:2]:
        tracker.update(features)
    assert tracker.baseline.complete
    again = tracker.update(agitated_turn)
    assert again.baseline == "own (2 utterances)" and again.level == "frustrated"


def test_words_alone_are_capped() -> None:
    three = score_turn(None, None, "third time now, this is ridiculous, get me a manager")
    everything = score_turn(
        None, None, "third time, ridiculous, damn it, get me a manager, I will complain, seriously"
    )
    assert three.level == "frustrated"
    words = sum(v for k, v in everything.contributions.items() if k.startswith("words:"))
    assert words == pytest.approx(4.0)
    assert everything.score < 0.9
