"""WER of the product's STT path on short answers and lone digits over G.711 (``tests/data/stt_short_dev.tsv``).

Each short row (digits, numbers, one-word answers) is spoken by every test voice, each sentence by two of them,
then sent through a G.711 mu-law 8 kHz line and ``SharedModels.recognise`` (with the row's ``expects``, as
after the bot's question). Short rows are heard twice: as the caller's turn (200 ms of line silence either side,
as ``voice.phone_speech`` speaks it) and ``trimmed`` to the speech (30 ms either side, as a tightly cut
recording). Written to choose short-clip decoding without looking at ``../shared/eval-data``.
Prints JSON per variant: WER per kind, rejected clips, CPU ms per clip (mean, p95) of short clips and sentences.

    python benchmarks/stt_short.py [--voices en-us,en-sc,...] [--config voicebot.yaml]
        [--variants 0/0/1/on,0.5/0.5/1/on/10/answers]   # short clips: lead s / trail s / beam / suppress_blank
                                                         # [/ token cap / second decode's prompt]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from audio import pcm
from audio.evaluation import word_errors
from dialogs.domain.loader import load_domain
from voicebot.config import Settings, load_settings
from voicebot.models import load_piper, load_whisper
from voicebot.phone_speech import VOICES, PhoneListener, SyntheticVoice, parse_voices
from voicebot.pipeline.shared import SharedModels, ShortClipDecoding
from voicebot.pipeline.stt_bias import SHORT_ANSWERS, SpeechBias

DEV_SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "stt_short_dev.tsv"
# More speakers for the short rows than phone_speech's test voices: other espeak-ng variants, speeds and pitches.
EXTRA_VOICES = (
    SyntheticVoice("en-us-f2", "espeak", "en-us+f2", 150),
    SyntheticVoice("en-gb-m3", "espeak", "en-gb+m3", 190),
    SyntheticVoice("en-us-slow", "espeak", "en-us+m2", 130),
    SyntheticVoice("en-sc-f4", "espeak", "en-gb-scotland+f4", 175),
    SyntheticVoice("piper-slow", "piper", length_scale=1.2),
)


def trimmed(audio: bytes, margin_s: float = 0.03) -> bytes:
    """``audio`` cut to its speech (samples above 2 % of the peak) with ``margin_s`` either side."""
    samples = np.frombuffer(audio, dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 0.02 * max(1, int(np.abs(samples).max())))
    if loud.size == 0:
        return audio
    margin = int(margin_s * pcm.SAMPLE_RATE)
    return samples[max(0, int(loud[0]) - margin): int(loud[-1]) + margin].tobytes()


ALTERNATIVE_PROMPTS = {"off": None, "none": "", "answers": SHORT_ANSWERS}


def parse_variant(text: str) -> ShortClipDecoding:
    """LEAD/TRAIL/BEAM/on|off[/MAX_TOKENS[/off|none|answers]]: the last two default to the general token cap and no
    second decode (``none``: a second decode without a prompt, ``answers``: after SHORT_ANSWERS alone)."""
    lead, trail, beam, blank, *rest = text.split("/")
    cap = int(rest[0]) if rest else 0
    alternative = ALTERNATIVE_PROMPTS[rest[1]] if len(rest) > 1 else None
    return ShortClipDecoding(float(lead), float(trail), int(beam), blank == "on", cap, alternative)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--extra-voices", action="store_true", help="add EXTRA_VOICES for the short rows")
    parser.add_argument("--config", default=None)
    parser.add_argument("--variants", default="", help="short-clip decodings to compare (default: the configured)")
    parser.add_argument("--kinds", default="", help="only these kinds (digit,number,answer,sentence)")
    args = parser.parse_args()
    settings = load_settings(args.config) if args.config else Settings()
    settings.models.workers = 1
    voices = parse_voices(args.voices) + (list(EXTRA_VOICES) if args.extra_voices else [])
    kinds = set(args.kinds.split(",")) if args.kinds else None
    rows = [r for r in csv.reader(DEV_SET.read_text().splitlines(), delimiter="\t")
            if r and not r[0].startswith("#") and (kinds is None or r[0] in kinds)]
    listener = PhoneListener(lambda _: "")
    clips: list[tuple[str, str | None, str, str, bytes]] = []  # kind, expects, text, voice, audio
    for i, (kind, expected, text) in enumerate(rows):
        expects = expected or None
        speakers = voices if kind != "sentence" else [voices[i % len(voices)], voices[(i + 4) % len(voices)]]
        for voice in speakers:
            audio = listener.audio(text, voice)
            clips.append((kind, expects, text, voice.name, audio))
            if kind != "sentence":
                clips.append((f"{kind} trimmed", expects, text, voice.name, trimmed(audio)))
    whisper, piper = load_whisper(settings), load_piper(settings)
    bias = SpeechBias.from_domain(load_domain(settings.resolve(settings.domain.path)))
    variants = [parse_variant(v) for v in args.variants.split(",")] if args.variants else [None]
    report: list[dict[str, Any]] = []
    for variant in variants:
        shared = SharedModels(settings, whisper, piper, bias, short=variant)
        errors: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # errors, words, clips, rejected
        cpu_ms: dict[str, list[float]] = defaultdict(list)
        worst = []
        try:
            shared.recognise(clips[0][4])  # the first inference of a thread is slower
            for kind, expects, text, voice_name, audio in clips:
                started = time.process_time()
                heard = shared.recognise(audio, expects=expects)
                cpu_ms["sentence" if kind == "sentence" else "short"].append(1000 * (time.process_time() - started))
                e, w = word_errors(text, heard.text)
                for key in (kind, "all"):
                    errors[key][0] += e
                    errors[key][1] += w
                    errors[key][2] += 1
                    errors[key][3] += heard.rejected is not None
                if e:
                    worst.append({"said": text, "kind": kind, "voice": voice_name, "heard": heard.text,
                                  "rejected": heard.rejected})
        finally:
            shared.close()
        report.append({
            "short_clips": shared.short.__dict__,
            "wer": {k: round(e / max(1, w), 4) for k, (e, w, _, _) in errors.items()},
            "clips": {k: n for k, (_, _, n, _) in errors.items()},
            "rejected": {k: r for k, (_, _, _, r) in errors.items()},
            "cpu_ms": {k: {"mean": round(statistics.fmean(v), 1), "p95": round(sorted(v)[int(0.95 * (len(v) - 1))], 1)}
                       for k, v in cpu_ms.items()},
            "misheard": worst[:60],
        })
    print(json.dumps({"voices": [v.name for v in voices], "variants": report}, indent=2))


if __name__ == "__main__":
    main()
