"""A caller's own baseline: how this person sounds normally, so a change can be measured.

People differ far more from each other than one person differs between calm and angry, so the
frustration score looks at the change against the caller's first utterances in the call. Until a
caller has spoken, :func:`population_baseline` stands in: reference values of calm read speech for the
features that have a meaningful absolute scale (not pitch level, which depends on the speaker's sex
and age, and not loudness, which depends on the microphone and line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from audio.prosody.features import FEATURE_NAMES, ProsodyFeatures

# Features whose change is relative ("30 % faster"); all others change by a difference in their unit.
RELATIVE_FEATURES: frozenset[str] = frozenset(
    {"speaking_rate", "spectral_centroid_hz", "jitter_pct", "shimmer_pct"}
)

# Calm reference speech for first turns without a baseline: the median of our own synthesised neutral
# sentences (Piper en_US-joe-medium and espeak-ng at default settings), measured by
# benchmarks/prosody_reference.py. Deliberately absent: pitch level, loudness, jitter, shimmer.
POPULATION_REFERENCE: dict[str, float] = {
    "pitch_range_st": 5.2,
    "speaking_rate": 4.9,
    "pause_ratio": 0.0,
    "spectral_centroid_hz": 910.0,
    "spectral_tilt_db_oct": -6.0,
    "hf_ratio_db": -7.6,
}


@dataclass
class SpeakerBaseline:
    """Per-feature reference values built from a speaker's first ``n_utterances`` utterances.

    Add utterances one at a time with :meth:`add`; it accepts them until ``n_utterances`` have been
    taken and ignores later ones, so the baseline stays "how the caller sounded at the start".
    The reference of each feature is the median of the utterances that measured it, so one odd
    utterance does not drag the baseline.
    """

    n_utterances: int = 3
    _values: dict[str, list[float]] = field(default_factory=dict, repr=False)
    _count: int = 0
    _fixed: dict[str, float] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.n_utterances < 1:
            raise ValueError("a baseline needs at least one utterance (n_utterances >= 1)")

    @classmethod
    def from_features(cls, utterances: Iterable[ProsodyFeatures]) -> SpeakerBaseline:
        """A baseline from all the given utterances (for offline use: a file, or a speaker's other clips)."""
        items = list(utterances)
        baseline = cls(n_utterances=max(1, len(items)))
        for item in items:
            baseline.add(item)
        return baseline

    @classmethod
    def from_reference(cls, reference: Mapping[str, float]) -> SpeakerBaseline:
        """A fixed baseline from reference values (feature name -> value); :meth:`add` leaves it unchanged."""
        unknown = set(reference) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(f"unknown prosodic feature(s): {', '.join(sorted(unknown))}")
        return cls(n_utterances=1, _fixed=dict(reference))

    @property
    def utterances(self) -> int:
        """How many utterances the baseline is built from (0 for a fixed reference)."""
        return self._count

    @property
    def complete(self) -> bool:
        """True once ``n_utterances`` have been taken (always for a fixed reference)."""
        return self._fixed is not None or self._count >= self.n_utterances

    @property
    def is_population(self) -> bool:
        """True for a fixed reference rather than a speaker's own speech."""
        return self._fixed is not None

    def add(self, features: ProsodyFeatures) -> bool:
        """Take one utterance into the baseline; returns False if it was not taken (full, or no speech)."""
        if self.complete or features.speech_s <= 0.0:
            return False
        for name in FEATURE_NAMES:
            val = features.value(name)
            if val is not None and np.isfinite(val):
                self._values.setdefault(name, []).append(float(val))
        self._count += 1
        return True

    def reference(self) -> dict[str, float]:
        """Feature name -> the baseline value, for the features the baseline has measured."""
        if self._fixed is not None:
            return dict(self._fixed)
        return {name: float(np.median(vals)) for name, vals in self._values.items() if vals}

    def deltas(self, features: ProsodyFeatures) -> dict[str, float]:
        """Feature name -> change of ``features`` against the baseline.

        A relative feature (see :data:`RELATIVE_FEATURES`) gives ``value / reference - 1`` (0.3 is 30 %
        more); every other one ``value - reference`` in its own unit (semitones, dB, dB/octave, share).
        Features missing on either side are left out.
        """
        out: dict[str, float] = {}
        for name, ref in self.reference().items():
            val = features.value(name)
            if val is None or not np.isfinite(val):
                continue
            if name in RELATIVE_FEATURES:
                if ref > 0:
                    out[name] = float(val / ref - 1.0)
            else:
                out[name] = float(val - ref)
        return out


def population_baseline() -> SpeakerBaseline:
    """The stand-in baseline for a caller who has not spoken yet (see :data:`POPULATION_REFERENCE`)."""
    return SpeakerBaseline.from_reference(POPULATION_REFERENCE)
