"""Evaluation on labelled recordings: the frustration score (ROC AUC, F1, a confusion matrix) and speech
recognition (word error rate on transcribed clips: :func:`load_transcribed_clips`, :func:`word_error_rate`).

Frustration: two ways of scoring each clip are reported side by side:

* speaker-independent: the clip alone, against the population stand-in baseline (what the product
  does on a caller's first turn);
* baseline-normalised: against the same speaker's baseline built **leave-one-out from all of that
  speaker's other clips, whatever their label**. That scheme is label-blind: a baseline from only the
  speaker's neutral clips would leak the labels into the score.

Nothing here fits anything to the data; the threshold is the configured "annoyed" level.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audio.config import ProsodyConfig
from audio.frustration import LEVELS, score_turn
from audio.prosody.baseline import SpeakerBaseline
from audio.prosody.features import FEATURE_NAMES, ProsodyFeatures, extract_features

POSITIVE_LABELS = frozenset({"angry", "anger", "frustrated", "annoyed", "positive", "1", "yes", "true"})
NEGATIVE_LABELS = frozenset({"neutral", "calm", "negative", "0", "no", "false"})
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class EvaluationInputError(ValueError):
    """The labelled data cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class LabelledClip:
    """One audio file with its label (True: frustrated/angry) and its speaker."""

    path: Path
    positive: bool
    label: str
    speaker: str


def _label(raw: str) -> bool | None:
    key = raw.strip().lower()
    if key in POSITIVE_LABELS:
        return True
    if key in NEGATIVE_LABELS:
        return False
    return None


def load_labelled_clips(path: str | Path) -> tuple[list[LabelledClip], list[str]]:
    """Read labelled clips from a TSV (``file<TAB>label<TAB>speaker``, header optional) or a folder.

    A folder is read through its ``labels.tsv`` if it has one, else each sub-folder name is the label
    of the audio files in it and the speaker is the part of the file name before the first ``_``.
    Labels other than the known positive (angry, frustrated, annoyed ...) and negative (neutral, calm)
    ones are skipped. Returns the clips and a list of notes about rows that were skipped.
    """
    path = Path(path)
    notes: list[str] = []
    if path.is_dir():
        tsv = path / "labels.tsv"
        if tsv.exists():
            return _read_tsv(tsv, notes), notes
        clips = []
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            positive = _label(sub.name)
            if positive is None:
                notes.append(f"skipped folder {sub.name}/ (label not angry/frustrated/neutral/calm)")
                continue
            for file in sorted(sub.iterdir()):
                if file.suffix.lower() in AUDIO_SUFFIXES:
                    speaker = file.stem.split("_", 1)[0] if "_" in file.stem else "unknown"
                    clips.append(LabelledClip(file, positive, sub.name, speaker))
        if not clips:
            raise EvaluationInputError(f"{path}: no labels.tsv and no labelled sub-folders with audio files")
        return clips, notes
    if path.is_file():
        return _read_tsv(path, notes), notes
    raise EvaluationInputError(f"{path}: no such file or folder")


def _read_tsv(tsv: Path, notes: list[str]) -> list[LabelledClip]:
    clips = []
    try:
        rows = list(csv.reader(tsv.read_text(encoding="utf-8").splitlines(), delimiter="\t"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationInputError(f"{tsv}: cannot read ({exc})") from None
    for number, row in enumerate(rows, 1):
        if not row or not row[0].strip() or row[0].startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() in {"file", "path"}:
            continue
        if len(row) < 2:
            raise EvaluationInputError(f"{tsv}:{number}: expected file<TAB>label[<TAB>speaker], got {row!r}")
        positive = _label(row[1])
        if positive is None:
            notes.append(f"{tsv.name}:{number}: skipped label {row[1]!r}")
            continue
        speaker = row[2].strip() if len(row) > 2 and row[2].strip() else "unknown"
        file = Path(row[0].strip())
        clips.append(
            LabelledClip(file if file.is_absolute() else tsv.parent / file, positive, row[1], speaker)
        )
    if not clips:
        raise EvaluationInputError(f"{tsv}: no rows with a usable label (angry/frustrated vs neutral/calm)")
    return clips


def roc_auc(positive: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float | None:
    """Area under the ROC curve (the Mann-Whitney probability, ties counted half); None without both classes."""
    y = np.asarray(positive, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_report(
    positive: Sequence[bool], scores: Sequence[float], threshold: float
) -> dict[str, Any]:
    """ROC AUC, and at ``threshold`` (score >= threshold is positive): confusion matrix, precision, recall, F1."""
    y = np.asarray(positive, dtype=bool)
    pred = np.asarray(scores, dtype=float) >= threshold
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    tn = int((~pred & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "roc_auc": roc_auc(y, scores),
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "accuracy": (tp + tn) / max(1, y.size),
        # rows: true negative class, true positive class; columns: predicted negative, predicted positive
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def _read_audio(path: Path) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


def evaluate_frustration(
    clips: Sequence[LabelledClip], config: ProsodyConfig | None = None, threshold: float | None = None
) -> dict[str, Any]:
    """Score every clip both ways and report the metrics (see the module docstring).

    Unreadable audio files are skipped and listed under ``unreadable``. ``threshold`` defaults to the
    config's "annoyed" level.
    """
    cfg = config or ProsodyConfig()
    thr = cfg.annoyed if threshold is None else threshold
    features: list[ProsodyFeatures] = []
    used: list[LabelledClip] = []
    unreadable: list[str] = []
    for clip in clips:
        try:
            samples, rate = _read_audio(clip.path)
        except (OSError, RuntimeError, ValueError) as exc:
            unreadable.append(f"{clip.path}: {exc}")
            continue
        features.append(extract_features(samples, rate))
        used.append(clip)
    if not used:
        raise EvaluationInputError("none of the audio files could be read: " + "; ".join(unreadable[:3]))

    y = [c.positive for c in used]
    independent = [score_turn(f, None, config=cfg) for f in features]
    by_speaker: dict[str, list[int]] = {}
    for i, clip in enumerate(used):
        by_speaker.setdefault(clip.speaker, []).append(i)
    normalised = []
    feature_deltas: dict[str, list[tuple[bool, float]]] = {name: [] for name in FEATURE_NAMES}
    alone = 0
    for i, clip in enumerate(used):
        others = [features[j] for j in by_speaker[clip.speaker] if j != i]
        baseline = SpeakerBaseline.from_features(others) if others else None
        alone += baseline is None
        result = score_turn(features[i], baseline, config=cfg)
        normalised.append(result)
        if baseline is not None:
            for name, delta in result.deltas.items():
                feature_deltas[name].append((clip.positive, delta))

    report_si = classification_report(y, [r.score for r in independent], thr)
    report_bn = classification_report(y, [r.score for r in normalised], thr)
    levels: dict[str, dict[str, int]] = {}
    for clip, result in zip(used, normalised, strict=True):
        row = levels.setdefault(clip.label, dict.fromkeys(LEVELS, 0))
        row[result.level] += 1
    return {
        "clips": len(used),
        "positive": int(sum(y)),
        "negative": len(y) - int(sum(y)),
        "speakers": len(by_speaker),
        "threshold": thr,
        "baseline_scheme": "leave-one-out: all of the speaker's other clips, label-blind (median per feature)",
        "roc_auc": report_si["roc_auc"],
        "f1": report_si["f1"],
        "confusion_matrix": report_si["confusion_matrix"],
        "roc_auc_baseline_normalised": report_bn["roc_auc"],
        "f1_baseline_normalised": report_bn["f1"],
        "confusion_matrix_baseline_normalised": report_bn["confusion_matrix"],
        "speaker_independent": report_si,
        "baseline_normalised": report_bn,
        "levels_baseline_normalised": levels,
        # Diagnostic only: how well each feature's change alone separates the classes (0.5 = not at all).
        "feature_auc_baseline_normalised": {
            name: roc_auc([p for p, _ in pairs], [d for _, d in pairs])
            for name, pairs in feature_deltas.items()
            if pairs
        },
        "clips_without_baseline": alone,
        "unreadable": unreadable,
    }


# --- Speech recognition: word error rate on transcribed clips -------------------------------------------

@functools.cache
def _english_normaliser() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    normaliser: Callable[[str], str] = EnglishTextNormalizer()
    return normaliser


def normalise_transcript(text: str) -> list[str]:
    """The words of ``text`` as WER compares them: Whisper's English text normaliser (openai/whisper's
    ``EnglishTextNormalizer``, packaged as ``whisper-normalizer``), the one published Whisper WERs use: lower
    case, no punctuation, numbers as digits ("forty two" and "42" alike), British spellings as American,
    contractions and titles spelt out, hesitations ("um") dropped."""
    return _english_normaliser()(text).split()


def reference_words(text: str) -> list[str]:
    """The words of a reference transcript: :func:`normalise_transcript` after its brackets are made spaces. Whisper's
    normaliser drops whatever stands in brackets or parentheses (in Whisper's output that is "(laughs)", "[music]"),
    but in a reference they are punctuation of what was said: LJSpeech's "dated (which also was printed ... in the
    year fourteen sixty-two)" would lose 14 of its 20 words and count every one Whisper heard as an insertion."""
    return normalise_transcript(re.sub(r"[()\[\]{}<>]", " ", text))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, number of reference words): the reference's words by :func:`reference_words`, the
    hypothesis's by :func:`normalise_transcript`."""
    ref, hyp = reference_words(reference), normalise_transcript(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1], len(ref)


def word_error_rate(pairs: Sequence[tuple[str, str]]) -> float:
    """Corpus WER of (reference, hypothesis) pairs: all word errors over all reference words."""
    errors = words = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        errors += e
        words += n
    return errors / words if words else 0.0


@dataclass(frozen=True)
class TranscribedClip:
    """One recording and what was said in it."""

    path: Path
    text: str


def load_transcribed_clips(path: str | Path) -> list[TranscribedClip]:
    """Clips from a folder with ``transcripts.tsv`` (``file<TAB>text``, header optional, as eval-data/asr)
    or from such a TSV anywhere (relative paths resolve against its folder).

    Raises :class:`EvaluationInputError` naming the file and line of a row it cannot use.
    """
    path = Path(path)
    if path.is_dir():
        tsv = path / "transcripts.tsv"
        if not tsv.is_file():
            raise EvaluationInputError(f"{path}: no transcripts.tsv (file<TAB>text per line) in the folder")
    elif path.is_file():
        tsv = path
    else:
        raise EvaluationInputError(f"{path}: no such file or folder")
    try:
        rows = list(csv.reader(tsv.read_text(encoding="utf-8").splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationInputError(f"{tsv}: cannot read ({exc})") from None
    clips = []
    for number, row in enumerate(rows, 1):
        if not row or not row[0].strip() or row[0].startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() in {"file", "path"}:
            continue
        if len(row) < 2 or not row[1].strip():
            raise EvaluationInputError(f"{tsv}:{number}: expected file<TAB>text, got {row!r}")
        file = Path(row[0].strip())
        file = file if file.is_absolute() else tsv.parent / file
        if not file.is_file():
            raise EvaluationInputError(f"{tsv}:{number}: {file} does not exist")
        clips.append(TranscribedClip(file, row[1].strip()))
    if not clips:
        raise EvaluationInputError(f"{tsv}: no rows (file<TAB>text)")
    return clips


def read_clip(path: Path, sample_rate: int) -> np.ndarray:
    """A recording as float32 mono samples at ``sample_rate`` (any rate, format and channel count soundfile reads)."""
    samples, rate = _read_audio(path)
    if rate != sample_rate:
        import soxr

        samples = soxr.resample(samples, rate, sample_rate).astype(np.float32)
    return samples.astype(np.float32)
