"""The caller's frustration, one score per turn, from how they sound, what they say and how the dialog goes.

The score is knowledge-driven, not trained. The literature on vocal anger agrees that it raises pitch
level and range, loudness, speaking rate and the share of high-frequency energy, relative to the same
speaker's calm speech; so each prosodic feature adds to a logit in proportion to its change against
the caller's baseline (one "unit" is a change a listener notices, e.g. 3 semitones or 4 dB). Angry or
exasperated phrases and dialog trouble (re-asks, repeated misunderstanding, failed verification) add
their own fixed amounts. A logistic turns the sum into 0-1, and the largest contributions become the
explanation a supervisor reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audio.config import ProsodyConfig
from audio.prosody.baseline import SpeakerBaseline, population_baseline
from audio.prosody.features import ProsodyFeatures

LEVELS = ("calm", "annoyed", "frustrated")
BIAS = -2.2  # no cue at all: score 0.10
# Own-baseline changes are trusted fully; comparisons with the population stand-in only half.
POPULATION_TRUST = 0.5
MIN_EXPLAINED = 0.3  # contributions below this are not worth a supervisor's attention


@dataclass(frozen=True)
class ProsodicCue:
    """How a feature's change against the baseline moves the score."""

    unit: float  # the change worth one unit (negative: a decrease is the frustrated direction)
    weight: float  # logit added per unit
    describe: Callable[[float, bool], str]  # (delta, own baseline?) -> words for a supervisor
    needs_voice: bool = True  # pitch and tempo measures are scaled by the utterance's reliability


def _st(delta: float) -> str:
    n = round(delta)
    return f"{n:+d} semitone" + ("" if abs(n) == 1 else "s")


def _usual(own: bool) -> str:
    return "than usual" if own else "than typical"


PROSODIC_CUES: dict[str, ProsodicCue] = {
    "pitch_level_st": ProsodicCue(
        3.0, 0.9, lambda d, own: f"pitch {_st(d)} over {'baseline' if own else 'typical'}"
    ),
    "pitch_range_st": ProsodicCue(3.0, 0.5, lambda d, own: f"pitch range {_st(d)} wider {_usual(own)}"),
    "loudness_db": ProsodicCue(
        4.0, 0.9, lambda d, own: f"{d:.0f} dB louder {_usual(own)}", needs_voice=False
    ),
    "speaking_rate": ProsodicCue(0.2, 0.5, lambda d, own: f"speaking {100 * d:.0f} % faster {_usual(own)}"),
    "hf_ratio_db": ProsodicCue(
        3.0, 0.7, lambda d, own: f"sharper voice ({d:.0f} dB more high-frequency energy {_usual(own)})"
    ),
    "spectral_tilt_db_oct": ProsodicCue(
        2.0, 0.4, lambda d, own: f"tenser voice (spectrum {d:.1f} dB/octave flatter {_usual(own)})"
    ),
    "spectral_centroid_hz": ProsodicCue(
        0.15,
        0.3,
        lambda d, own: f"brighter voice (spectral centre {100 * d:.0f} % higher {_usual(own)})",
        needs_voice=False,
    ),
    "pause_ratio": ProsodicCue(
        -0.15, 0.15, lambda d, own: f"hardly pausing ({-100 * d:.0f} % less pause time {_usual(own)})"
    ),
    "jitter_pct": ProsodicCue(
        0.5, 0.1, lambda d, own: f"rougher voice (pitch jitter {100 * d:.0f} % higher)"
    ),
    "shimmer_pct": ProsodicCue(
        0.5, 0.1, lambda d, own: f"rougher voice (loudness shimmer {100 * d:.0f} % higher)"
    ),
}
# A unit count is capped so one extreme measure (often a measuring error) cannot decide alone.
UNIT_CAP = (-1.0, 2.5)


@dataclass(frozen=True)
class Phrase:
    pattern: re.Pattern[str]
    weight: float
    kind: str


def _phrases(kind: str, weight: float, *patterns: str) -> list[Phrase]:
    return [Phrase(re.compile(rf"\b(?:{p})\b", re.IGNORECASE), weight, kind) for p in patterns]


PHRASES: list[Phrase] = [
    *_phrases(
        "repetition", 1.0,
        r"(?:second|third|fourth|fifth|tenth|umpteenth) time", r"how many times", r"again and again",
        r"(?:i )?(?:already|just) (?:told|said|gave|explained)", r"for the (?:last|hundredth) time",
        r"(?:i|you) keep (?:asking|telling|saying)", r"(?:still|yet) (?:not|no|nothing|hasn't|haven't)",
        r"over and over", r"same (?:question|thing) again",
    ),
    *_phrases(
        "anger", 1.2,
        r"ridiculous", r"unacceptable", r"absurd", r"outrageous", r"useless", r"pathetic", r"terrible",
        r"horrible", r"(?:the )?worst", r"stupid", r"idiot\w*", r"(?:a|this is a) joke", r"nonsense",
        r"fed up", r"sick (?:and tired )?of", r"tired of", r"waste of (?:my )?time", r"annoy\w*",
        r"frustrat\w*", r"angry", r"furious", r"disgust\w*", r"incompetent", r"unbelievable",
        r"are you (?:even )?listening", r"you(?: don't|'re not| do not| are not) (?:understand\w*|listening|helping)",
        r"not what i (?:said|asked|want\w*)",
    ),
    *_phrases("swearing", 1.2, r"damn\w*", r"hell", r"crap", r"bloody", r"shit\w*", r"fuck\w*", r"bullshit"),
    *_phrases(
        "human", 1.4,
        r"(?:speak|talk|put me through) to (?:a |an |your |the )?(?:manager|supervisor|human|person|real person|someone|agent|representative)",
        r"(?:get|give|want) me (?:a |an |the |your )?(?:manager|supervisor|human|real person|representative)",
        r"manager", r"supervisor", r"real person", r"human being", r"representative",
    ),
    *_phrases("complaint", 0.8, r"complain\w*", r"lawyer", r"never (?:again|shop\w*|buy\w*)", r"switch(?:ing)? to (?:another|a different)"),
    *_phrases("exasperation", 0.6, r"no,? no,? no", r"oh (?:come on|my god)", r"seriously", r"listen"),
]  # fmt: skip
WORDS_CAP = 4.0  # words alone can reach "frustrated" (three kinds of cue), never certainty


@dataclass(frozen=True)
class DialogSignals:
    """How the dialog has gone up to this turn: the bot's re-asks of a slot, misunderstandings in a row
    and failed identity checks."""

    reasks: int = 0
    no_match_streak: int = 0
    failed_verifications: int = 0


@dataclass(frozen=True)
class FrustrationScore:
    """One turn's frustration: ``score`` 0-1, ``level`` (calm / annoyed / frustrated), the reasons in words,
    and each cue's contribution to the logit (positive pushes up)."""

    score: float
    level: str
    explanation: list[str]
    contributions: dict[str, float]
    deltas: dict[str, float] = field(default_factory=dict)
    baseline: str = "none"
    rising: bool = False

    @property
    def summary(self) -> str:
        """The explanation as one line."""
        return ", ".join(self.explanation)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "score": round(self.score, 4),
            "level": self.level,
            "explanation": list(self.explanation),
            "contributions": {k: round(v, 4) for k, v in self.contributions.items()},
            "deltas": {k: round(v, 4) for k, v in self.deltas.items()},
            "baseline": self.baseline,
            "rising": self.rising,
        }


def level_for(score: float, config: ProsodyConfig | None = None) -> str:
    """The level word for a score under the config's thresholds."""
    cfg = config or ProsodyConfig()
    if score >= cfg.frustrated:
        return "frustrated"
    if score >= cfg.annoyed:
        return "annoyed"
    return "calm"


def _word_cues(text: str) -> list[tuple[str, float, str]]:
    """(kind, weight, what was said) for each distinct phrase found; each kind counts once."""
    found: dict[str, tuple[str, float, str]] = {}
    for phrase in PHRASES:
        match = phrase.pattern.search(text)
        if match and phrase.kind not in found:
            found[phrase.kind] = (phrase.kind, phrase.weight, match.group(0).lower())
    return list(found.values())


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def score_turn(
    features: ProsodyFeatures | None,
    baseline: SpeakerBaseline | None = None,
    text: str = "",
    dialog: DialogSignals | None = None,
    config: ProsodyConfig | None = None,
) -> FrustrationScore:
    """Score one caller turn.

    ``features`` may be None (a text-only turn); ``baseline`` None or still empty means the caller's
    own baseline is not available yet, and the population stand-in is used with half the trust.
    Never raises for odd input: missing features simply contribute nothing.
    """
    cfg = config or ProsodyConfig()
    contributions: dict[str, float] = {}
    reasons: dict[str, str] = {}
    deltas: dict[str, float] = {}
    baseline_name = "none"

    if features is not None and features.speech_s > 0:
        usable = baseline is not None and (baseline.is_population or bool(baseline.reference()))
        base = baseline if baseline is not None and usable else population_baseline()
        own = not base.is_population
        baseline_name = (
            f"own ({base.utterances} utterance{'' if base.utterances == 1 else 's'})" if own else "population"
        )
        trust = 1.0 if own else POPULATION_TRUST
        deltas = base.deltas(features)
        for name, delta in deltas.items():
            cue = PROSODIC_CUES[name]
            weight = cfg.weights.get(name, cue.weight)
            units = min(max(delta / cue.unit, UNIT_CAP[0]), UNIT_CAP[1])
            scale = trust * (features.reliability if cue.needs_voice else min(1.0, features.speech_s / 0.5))
            value = weight * units * scale
            if value != 0.0:
                contributions[name] = value
                reasons[name] = cue.describe(delta, own)

    for kind, weight, said in _word_cues(text or ""):
        contributions[f"words:{kind}"] = weight * cfg.words_weight
        reasons[f"words:{kind}"] = f"said '{said}'"
    total_words = sum(v for k, v in contributions.items() if k.startswith("words:"))
    if total_words > WORDS_CAP:
        for key in [k for k in contributions if k.startswith("words:")]:
            contributions[key] *= WORDS_CAP / total_words

    sig = dialog or DialogSignals()
    dialog_cues = (
        ("dialog:reasks", sig.reasks, 0.5, lambda n: f"bot had to re-ask {_times(n)}"),
        ("dialog:no_match", sig.no_match_streak, 0.6, lambda n: f"not understood {_times(n)} in a row"),
        ("dialog:verification", sig.failed_verifications, 0.7, lambda n: f"verification failed {_times(n)}"),
    )
    for key, count, weight, say in dialog_cues:
        if count > 0:
            contributions[key] = weight * min(int(count), 3) * cfg.dialog_weight
            reasons[key] = say(int(count))

    logit = BIAS + sum(contributions.values())
    score = 1.0 / (1.0 + math.exp(-logit))
    pushing = sorted((v, k) for k, v in contributions.items() if v >= MIN_EXPLAINED)
    explanation: list[str] = []
    for _, key in reversed(pushing):
        if reasons[key] not in explanation:
            explanation.append(reasons[key])
        if len(explanation) >= cfg.max_explanations:
            break
    return FrustrationScore(
        score=score,
        level=level_for(score, cfg),
        explanation=explanation,
        contributions=contributions,
        deltas=deltas,
        baseline=baseline_name,
    )


class FrustrationTracker:
    """One call's frustration: builds the caller's baseline from their first utterances and scores every turn.

    Each turn is scored against the baseline as it stood before the turn, then the turn joins the
    baseline if it is still being built and did not score "frustrated": a caller who opens shouting
    must not teach the tracker that shouting is their normal voice (the population reference stands
    in until calmer turns arrive). ``rising`` is set when the last three scores went up each time
    and by at least ``rising_min_rise`` overall, ending at "annoyed" or above.
    """

    def __init__(self, config: ProsodyConfig | None = None) -> None:
        self.config = config or ProsodyConfig()
        self.baseline = SpeakerBaseline(n_utterances=self.config.baseline_utterances)
        self.history: list[FrustrationScore] = []

    def update(
        self, features: ProsodyFeatures | None, text: str = "", dialog: DialogSignals | None = None
    ) -> FrustrationScore:
        """Score this turn, record it and return the score (with ``rising`` filled in)."""
        result = score_turn(features, self.baseline, text, dialog, self.config)
        if features is not None and result.level != "frustrated":
            self.baseline.add(features)
        recent = [s.score for s in self.history[-2:]] + [result.score]
        rising = (
            len(recent) == 3
            and all(b > a for a, b in zip(recent, recent[1:], strict=False))
            and recent[-1] - recent[0] >= self.config.rising_min_rise
            # Wobbles among calm turns are not a trend worth a supervisor's attention.
            and result.score >= self.config.annoyed
        )
        if rising:
            result = FrustrationScore(
                score=result.score,
                level=result.level,
                explanation=[*result.explanation, "rising over the last three turns"],
                contributions=result.contributions,
                deltas=result.deltas,
                baseline=result.baseline,
                rising=True,
            )
        self.history.append(result)
        return result

    @property
    def peak(self) -> float:
        """The highest score so far in the call (0 before the first turn)."""
        return max((s.score for s in self.history), default=0.0)
