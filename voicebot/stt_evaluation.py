"""Measure the product's own STT path on transcribed recordings: WER clean and through a telephone line.

The telephone line is :func:`voicebot.phone_speech.phone_line`: down to 8 kHz, G.711 mu-law and back, with
the codec the SIP stack itself uses. Used by ``voicebot eval stt`` and ``benchmarks/stt_choice.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from audio import pcm
from audio.evaluation import TranscribedClip, normalise_transcript, read_clip, word_error_rate, word_errors
from dialogs.domain.schema import DIALOG_ACTS
from voicebot.phone_speech import phone_line
from voicebot.pipeline.shared import SHORT_CLIP_S, SharedModels, Transcript

if TYPE_CHECKING:
    from dialogs.nlu import NLU

CHANNELS = ("clean", "g711")
NOTHING = "-"  # dialog_reading's verdict on words the dialog would not act on


def dialog_reading(nlu: NLU, text: str, expects: str | None = None, today: date | None = None) -> str:
    """What the dialog would take words it heard for, the way the bad-input benchmarks count a clip "acted on": the
    digits of an answer to the order number question (``expects`` "order_number"), "yes" or "no" of an answer to a
    yes-or-no question (``expects`` "yes_no"), "request" when the NLU finds any intent that is not a dialog act
    (not "no" or "thank you"), else :data:`NOTHING`."""
    names = {h.name for h in nlu.parse(text, today=today).intents}
    if expects == "order_number":
        digits = "".join(w for w in normalise_transcript(text) if w.isdigit())
        if digits:
            return digits
    if expects == "yes_no" and names & {"affirm", "deny"}:
        return "yes" if "affirm" in names else "no"
    return "request" if names - set(DIALOG_ACTS) else NOTHING


def acted_on(nlu: NLU, text: str, expects: str | None = None, today: date | None = None) -> bool:
    """Whether the dialog would act on ``text`` (see :func:`dialog_reading`)."""
    return dialog_reading(nlu, text, expects, today) != NOTHING


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as 16-bit PCM bytes."""
    return np.clip(np.rint(samples * 32767.0), -32768, 32767).astype("<i2").tobytes()


@dataclass(frozen=True)
class Recognised:
    """One clip through one channel: the reference, what the STT path heard, and how long it took."""

    reference: str
    transcript: Transcript
    seconds: float
    channel: str
    cpu_seconds: float  # CPU time of the process (all inference threads): comparable on a busy machine
    errors: int
    words: int
    audio_s: float = 0.0  # the clip's length
    clip: str = ""  # the recording's file

    def record(self) -> dict[str, Any]:
        """This clip as plain data, for ``voicebot eval stt --save``: which recording, what was said and heard, the
        verdict and the seconds it took."""
        t = self.transcript
        return {
            "clip": self.clip, "channel": self.channel, "reference": self.reference, "heard": t.text,
            "rejected": t.rejected, "decoded": t.decoded, "recovered_from": t.recovered_from,
            "confidence": round(t.confidence, 4),
            "avg_logprob": None if t.avg_logprob is None else round(t.avg_logprob, 4),
            "no_speech_prob": None if t.no_speech_prob is None else round(t.no_speech_prob, 4),
            "errors": self.errors, "words": self.words, "audio_s": round(self.audio_s, 3),
            "stt_s": round(self.seconds, 4), "stt_cpu_s": round(self.cpu_seconds, 4),
        }


def recognise_clip(shared: SharedModels, audio: bytes, reference: str, channel: str,
                   expects: str | None = None, clip: str = "") -> Recognised:
    """Transcribe 16 kHz PCM16 ``audio`` (through the telephone line if ``channel`` is g711) and score it."""
    if channel == "g711":
        audio = phone_line(audio)
    started, cpu = time.perf_counter(), time.process_time()
    transcript = shared.recognise(audio, expects=expects)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    errors, words = word_errors(reference, transcript.text)
    return Recognised(reference, transcript, seconds, channel, cpu_seconds, errors, words,
                      len(audio) / 2 / pcm.SAMPLE_RATE, clip)


def summarise(results: Sequence[Recognised]) -> dict[str, Any]:
    """WER, rejected clips and STT time (median, p95) of a set of results of one channel."""
    times = sorted(r.seconds for r in results)
    cpu = sorted(r.cpu_seconds for r in results)
    return {
        "clips": len(results),
        "wer": round(word_error_rate([(r.reference, r.transcript.text) for r in results]), 4),
        "rejected": sum(r.transcript.rejected is not None for r in results),
        "stt_median_s": round(statistics.median(times), 4) if times else None,
        "stt_p95_s": round(times[min(len(times) - 1, int(0.95 * len(times)))], 4) if times else None,
        "stt_cpu_median_s": round(statistics.median(cpu), 4) if cpu else None,
        "mean_confidence": round(statistics.fmean(r.transcript.confidence for r in results), 4) if results else None,
    }


def evaluate_stt(
    shared: SharedModels,
    clips: Sequence[TranscribedClip],
    channels: Sequence[str] = CHANNELS,
    progress: Callable[[int], None] | None = None,
    every: list[Recognised] | None = None,
) -> dict[str, Any]:
    """WER and time per utterance of every clip through each channel (clean, g711), and the clips whose
    words were worst. ``progress(n)`` is called after each clip with the number of clips done; ``every``, if given,
    receives each clip's result."""
    results: dict[str, list[Recognised]] = {c: [] for c in channels}
    unreadable: list[str] = []
    for clip in clips:
        try:
            audio = to_pcm16(read_clip(clip.path, pcm.SAMPLE_RATE))
        except (OSError, RuntimeError, ValueError) as exc:
            unreadable.append(f"{clip.path}: {exc}")
            continue
        for channel in channels:
            results[channel].append(recognise_clip(shared, audio, clip.text, channel, clip=str(clip.path)))
        if progress is not None:
            progress(1)
    if every is not None:
        every.extend(r for rs in results.values() for r in rs)
    worst = sorted(
        (r for rs in results.values() for r in rs if r.words),
        key=lambda r: r.errors / r.words,
        reverse=True,
    )[:5]
    return {
        **{channel: summarise(rs) for channel, rs in results.items()},
        # Short clips (a digit, a yes: SHORT_CLIP_S or less) and longer ones apart: they fail in different ways.
        "by_length": {
            channel: {
                name: summarise(group) if group else None
                for name, group in (("short", [r for r in rs if r.audio_s <= SHORT_CLIP_S]),
                                    ("longer", [r for r in rs if r.audio_s > SHORT_CLIP_S]))
            }
            for channel, rs in results.items()
        },
        "worst": [
            {"channel": r.channel, "reference": r.reference, "heard": r.transcript.text,
             "rejected": r.transcript.rejected, "wer": round(r.errors / r.words, 3)}
            for r in worst if r.errors
        ],
        "unreadable": unreadable,
    }
