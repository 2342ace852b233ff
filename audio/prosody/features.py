"""Prosodic features of one caller utterance: pitch, loudness, tempo, pauses, spectrum and voice quality.

Every input is resampled to 8 kHz and spectral measures use the telephone band (300-3400 Hz), so an
utterance from a SIP leg (G.711, 8 kHz) and one from a browser (48 kHz) are measured the same way.
The whole analysis is vectorised numpy: pitch comes from our own YIN (de Cheveigné & Kawahara 2002),
which also yields the aperiodicity used for the voicing decision (``librosa.yin`` does not return it).

Any array gives a defined result: silence, clipping, pure tones, 0.1 s clips and out-of-range values
produce a :class:`ProsodyFeatures` whose unmeasurable fields are ``None`` and whose ``issues`` say why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import soxr

ANALYSIS_RATE = 8000
FRAME = 320  # 40 ms: two periods of the lowest pitch we track
HOP = 80  # 10 ms
FMIN_HZ = 60.0
FMAX_HZ = 500.0
NFFT = 512
BAND_LO_HZ, BAND_SPLIT_HZ, BAND_HI_HZ = 300.0, 1000.0, 3400.0
YIN_THRESHOLD = 0.15
VOICED_APERIODICITY = 0.3
SILENCE_DB = -60.0  # an utterance whose loud frames stay below this is treated as silence
MIN_PAUSE_FRAMES = 20  # 200 ms: shorter gaps are stop closures, not pauses
PITCH_REF_HZ = 100.0

# The features a caller's baseline compares, in the order a report lists them.
FEATURE_NAMES: tuple[str, ...] = (
    "pitch_level_st",
    "pitch_range_st",
    "loudness_db",
    "speaking_rate",
    "pause_ratio",
    "spectral_centroid_hz",
    "spectral_tilt_db_oct",
    "hf_ratio_db",
    "jitter_pct",
    "shimmer_pct",
)


@dataclass(frozen=True)
class ProsodyFeatures:
    """What one utterance sounds like. ``None`` means "not measurable in this audio" (see ``issues``).

    Pitch is in semitones relative to 100 Hz, loudness in dB relative to full scale (RMS of the
    speech frames), speaking rate in syllable nuclei per second of speech (pauses excluded), pause
    ratio the share of the utterance spent in pauses of 200 ms or more. Spectral tilt is the slope of
    the vowel spectrum in dB per octave over 300-3400 Hz (less negative: a tenser, sharper voice);
    ``hf_ratio_db`` the energy 1-3.4 kHz relative to 0.3-1 kHz. Jitter and shimmer are frame-level
    (10 ms) perturbations of pitch and amplitude around their local trend, in percent.
    """

    duration_s: float
    speech_s: float
    voiced_s: float
    pitch_hz: float | None = None
    pitch_level_st: float | None = None
    pitch_range_st: float | None = None
    loudness_db: float | None = None
    speaking_rate: float | None = None
    pause_ratio: float | None = None
    spectral_centroid_hz: float | None = None
    spectral_tilt_db_oct: float | None = None
    hf_ratio_db: float | None = None
    jitter_pct: float | None = None
    shimmer_pct: float | None = None
    periodicity: float | None = None
    clipped_fraction: float = 0.0
    sample_rate: int = 0
    issues: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reliability(self) -> float:
        """0-1: how far to trust the pitch and tempo measures; about a second of voiced speech is full trust."""
        return float(min(1.0, self.voiced_s / 0.8))

    def value(self, name: str) -> float | None:
        """The feature called ``name`` (one of :data:`FEATURE_NAMES`)."""
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, floats rounded to what is meaningful."""
        out: dict[str, Any] = {}
        for key, val in asdict(self).items():
            if isinstance(val, float):
                val = round(val, 4)
            elif isinstance(val, tuple):
                val = list(val)
            out[key] = val
        return out


def _as_mono_float(samples: Any, issues: list[str]) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        arr = (arr.astype(np.float64) - (info.max + info.min + 1) / 2) / (info.max + 1)
    elif arr.dtype.kind == "b":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind not in "f":
        raise TypeError(f"audio samples must be numeric, not {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 2:
        # (frames, channels) as soundfile returns it, or (channels, frames): average the short axis.
        arr = arr.mean(axis=1 if arr.shape[1] <= arr.shape[0] else 0)
    elif arr.ndim != 1:
        arr = arr.reshape(-1)
    if not np.all(np.isfinite(arr)):
        issues.append("non-finite samples were set to zero")
        arr = np.where(np.isfinite(arr), arr, 0.0)
    peak = float(np.max(np.abs(arr))) if arr.size else 0.0
    if peak > 1.0:
        issues.append("samples beyond full scale were clipped")
        arr = np.clip(arr, -1.0, 1.0)
    return arr


def _clipped_fraction(x: np.ndarray) -> float:
    if x.size == 0:
        return 0.0
    peak = float(np.max(np.abs(x)))
    if peak < 0.98:
        return 0.0
    # Runs of samples stuck at the peak are the mark of clipping; a single peak sample is not.
    at_peak = np.abs(x) >= peak * 0.999
    stuck = at_peak[1:] & at_peak[:-1]
    return float(stuck.sum() / x.size)


def _yin(frames: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: f0 in Hz and the aperiodicity (minimum of the cumulative mean normalised difference)."""
    min_lag = int(np.floor(sr / FMAX_HZ))
    max_lag = int(np.ceil(sr / FMIN_HZ))
    win = frames.shape[1] - max_lag - 1
    # d(tau) = E(x[0:W]) + E(x[tau:tau+W]) - 2 r(tau), r by FFT cross-correlation.
    spec_a = np.fft.rfft(frames[:, :win], NFFT)
    spec_b = np.fft.rfft(frames, NFFT)
    corr = np.fft.irfft(np.conj(spec_a) * spec_b, NFFT)[:, : max_lag + 2]
    sq = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(max_lag + 2)
    energy_tau = sq[:, lags + win] - sq[:, lags]
    diff = np.maximum(energy_tau[:, :1] + energy_tau - 2.0 * corr, 0.0)
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags[1:] / np.maximum(cum, 1e-12)

    search = cmnd[:, min_lag : max_lag + 1]
    local_min = np.zeros_like(search, dtype=bool)
    local_min[:, 1:-1] = (search[:, 1:-1] <= search[:, :-2]) & (search[:, 1:-1] <= search[:, 2:])
    candidates = local_min & (search < YIN_THRESHOLD)
    first = np.argmax(candidates, axis=1)
    best = np.where(candidates.any(axis=1), first, np.argmin(search, axis=1))
    tau = best + min_lag
    rows = np.arange(frames.shape[0])
    aperiodicity = cmnd[rows, tau]
    # Parabolic interpolation between neighbouring lags for sub-sample precision.
    left = cmnd[rows, np.maximum(tau - 1, 1)]
    right = cmnd[rows, np.minimum(tau + 1, max_lag + 1)]
    denom = left - 2.0 * aperiodicity + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    refined = tau + np.clip(shift, -0.5, 0.5)
    return sr / refined, aperiodicity


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Start and end (exclusive) of each run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _local_perturbation_pct(values: np.ndarray, voiced: np.ndarray) -> float | None:
    """Mean |v[i] - (v[i-1] + v[i+1]) / 2| / v[i] over triples of consecutive voiced frames, in %."""
    ok = voiced[1:-1] & voiced[:-2] & voiced[2:]
    if ok.sum() < 3:
        return None
    mid = values[1:-1][ok]
    trend = 0.5 * (values[:-2][ok] + values[2:][ok])
    return float(100.0 * np.mean(np.abs(mid - trend) / np.maximum(mid, 1e-12)))


def _centred_sum(x: np.ndarray, width: int) -> np.ndarray:
    """Sum over a centred window of ``width`` frames, same length as ``x`` even when ``x`` is shorter."""
    full = np.convolve(x, np.ones(width), mode="full")
    start = (width - 1) // 2
    return full[start : start + x.size]


def _syllable_nuclei(env_db: np.ndarray, eligible: np.ndarray) -> int:
    """Count intensity peaks that stand 2 dB above the dips around them (after de Jong & Wempe 2009)."""
    n = env_db.size
    if n < 3:
        return 0
    half = 6  # peaks at least 70 ms apart: faster than any speaker's syllables
    padded = np.pad(env_db, half, mode="edge")
    window = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    is_max = env_db >= window.max(axis=1)
    reach = 15  # dips are looked for within 150 ms on each side
    padded_r = np.pad(env_db, reach, mode="edge")
    around = np.lib.stride_tricks.sliding_window_view(padded_r, 2 * reach + 1)
    left_min = around[:, :reach].min(axis=1)
    right_min = around[:, reach + 1 :].min(axis=1)
    prominent = env_db - np.maximum(left_min, right_min) >= 2.0
    peaks = np.flatnonzero(is_max & prominent & eligible)
    if peaks.size == 0:
        return 0
    # A flat-topped peak is several equal maxima in a row; count it once.
    return int(1 + np.count_nonzero(np.diff(peaks) > 1))


def extract_features(samples: np.ndarray, sample_rate: int) -> ProsodyFeatures:
    """Measure the prosody of one utterance.

    ``samples`` is mono (or multi-channel, averaged) audio: float in [-1, 1] or integer PCM.
    Never raises for odd audio; raises ``ValueError`` only for a sample rate that is not a positive
    number and ``TypeError`` for non-numeric data, which are programming errors.
    """
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    issues: list[str] = []
    raw = _as_mono_float(samples, issues)
    duration = raw.size / sample_rate
    clipped = _clipped_fraction(raw)
    if clipped > 0.001:
        issues.append(f"clipped audio ({clipped:.1%} of samples)")

    def empty(reason: str) -> ProsodyFeatures:
        return ProsodyFeatures(
            duration_s=duration, speech_s=0.0, voiced_s=0.0, clipped_fraction=clipped,
            sample_rate=sample_rate, issues=tuple([*issues, reason]),
        )  # fmt: skip

    if raw.size == 0:
        return empty("no audio")
    x = raw if sample_rate == ANALYSIS_RATE else soxr.resample(raw, sample_rate, ANALYSIS_RATE)
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    if x.size < FRAME:
        return empty("too short to analyse (under 40 ms)")

    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP]
    rms = np.sqrt(np.mean(frames**2, axis=1))
    frame_db = 20.0 * np.log10(np.maximum(rms, 1e-6))
    loud = float(np.percentile(frame_db, 95))
    if loud < SILENCE_DB:
        return empty("no speech (silence)")
    floor = float(np.percentile(frame_db, 10))
    # A noise floor well below the speech (a line's hiss) sets the bar; steady sound has no floor to use.
    noise_bar = floor + 6.0 if loud - floor > 20.0 else -np.inf
    active = frame_db > max(SILENCE_DB + 5.0, loud - 30.0, noise_bar)
    if not active.any():
        return empty("no speech (silence)")

    f0, aper = _yin(frames, ANALYSIS_RATE)
    voiced = active & (aper < VOICED_APERIODICITY) & (f0 >= FMIN_HZ) & (f0 <= FMAX_HZ)
    if voiced.sum() >= 3:
        # Octave jumps are the typical YIN error: drop frames far from the utterance's median pitch.
        median_st = np.median(12.0 * np.log2(f0[voiced] / PITCH_REF_HZ))
        voiced &= np.abs(12.0 * np.log2(f0 / PITCH_REF_HZ) - median_st) <= 9.0

    hop_s = HOP / ANALYSIS_RATE
    speech_s = float(active.sum() * hop_s)
    voiced_s = float(voiced.sum() * hop_s)

    spectrum = np.abs(np.fft.rfft(frames * np.hanning(FRAME), NFFT)) ** 2
    freqs = np.fft.rfftfreq(NFFT, 1.0 / ANALYSIS_RATE)
    band = (freqs >= BAND_LO_HZ) & (freqs <= BAND_HI_HZ)
    low = (freqs >= BAND_LO_HZ) & (freqs < BAND_SPLIT_HZ)
    high = (freqs >= BAND_SPLIT_HZ) & (freqs <= BAND_HI_HZ)

    values: dict[str, float | None] = {}
    values["loudness_db"] = float(10.0 * np.log10(np.mean(rms[active] ** 2)))

    band_power = spectrum[:, band]
    centroid = (band_power @ freqs[band]) / np.maximum(band_power.sum(axis=1), 1e-20)
    values["spectral_centroid_hz"] = float(np.mean(centroid[active]))

    # Syllable nuclei: peaks of the smoothed 300-2500 Hz energy in voiced stretches.
    nucleus_band = (freqs >= BAND_LO_HZ) & (freqs <= 2500.0)
    env = 10.0 * np.log10(np.maximum(spectrum[:, nucleus_band].sum(axis=1), 1e-20))
    env = _centred_sum(env, 5) / 5.0
    # The smoothed energy peak of a vowel can sit up to 50 ms from the frames YIN calls voiced.
    near_voiced = _centred_sum(voiced.astype(float), 11) > 0
    nuclei = _syllable_nuclei(env, near_voiced & active)
    if speech_s >= 0.3:
        values["speaking_rate"] = nuclei / speech_s

    first, last = np.flatnonzero(active)[[0, -1]]
    span = active[first : last + 1]
    paused = sum(end - start for start, end in _runs(~span) if end - start >= MIN_PAUSE_FRAMES)
    values["pause_ratio"] = float(paused / span.size)

    pitch_hz = None
    periodicity = None
    if voiced.sum() >= 3:
        st = 12.0 * np.log2(f0[voiced] / PITCH_REF_HZ)
        pitch_hz = float(np.median(f0[voiced]))
        values["pitch_level_st"] = float(np.median(st))
        periodicity = float(np.mean(1.0 - aper[voiced]))
        vp = np.log10(np.maximum(spectrum[voiced], 1e-20)) * 10.0
        values["hf_ratio_db"] = float(
            np.mean(
                10.0 * np.log10(np.maximum(spectrum[voiced][:, high].sum(axis=1), 1e-20))
                - 10.0 * np.log10(np.maximum(spectrum[voiced][:, low].sum(axis=1), 1e-20))
            )
        )
        octaves = np.log2(freqs[band])
        oc = octaves - octaves.mean()
        db = vp[:, band]
        slopes = (db - db.mean(axis=1, keepdims=True)) @ oc / (oc @ oc)
        values["spectral_tilt_db_oct"] = float(np.mean(slopes))
        if voiced.sum() >= 10:
            values["pitch_range_st"] = float(np.percentile(st, 90) - np.percentile(st, 10))
        values["jitter_pct"] = _local_perturbation_pct(f0, voiced)
        values["shimmer_pct"] = _local_perturbation_pct(rms, voiced)
    else:
        issues.append("no voiced speech (pitch not measurable)")
    if duration < 0.5:
        issues.append("short utterance: features are rough")

    return ProsodyFeatures(
        duration_s=duration,
        speech_s=speech_s,
        voiced_s=voiced_s,
        pitch_hz=pitch_hz,
        periodicity=periodicity,
        clipped_fraction=clipped,
        sample_rate=sample_rate,
        issues=tuple(issues),
        **values,
    )
