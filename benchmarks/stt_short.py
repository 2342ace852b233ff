"""WER of the product's STT path on short answers and lone digits over G.711 (``tests/data/stt_short_dev.tsv``).

Each short row (digits, numbers, one-word answers) is spoken by every test voice, each sentence by two of them,
then sent through a G.711 mu-law 8 kHz line and ``SharedModels.recognise`` (with the row's ``expects``, as
after the bot's question). Short rows are heard twice: as the caller's turn (200 ms of line silence either side,
as ``voice.phone_speech`` speaks it) and ``trimmed`` to the speech (30 ms either side, as a tightly cut
recording). Written to choose short-clip decoding without looking at ``../shared/eval-data``.
Prints JSON per variant: WER per kind, rejected clips, CPU ms per clip (mean, p95) of short clips and sentences.

    python benchmarks/stt_short.py [--voices en-us,en-sc,...] [--config voicebot.yaml]
        [--variants 0/0/1/on,0.5/0.5/1/on/10/answers]   # short clips: lead s / trail s / beam / suppress_blank
                                                         # [/ token cap / second decode's prompt / s per word]
                                                         # [/ a "no speech" digit both readings agree on taken back: on/off]
                                                         # [/ beam of a looping reading's second decode]
                                                         # [/ tokens each full-window retry of a looping reading writes]
        [--kinds digit,number,answer,request] [--dump clips.json]
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
from voicebot.pipeline.shared import (
    SHORT_MIN_WORD_S,
    SharedModels,
    ShortClipDecoding,
    speech_seconds,
)
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
    """LEAD/TRAIL/BEAM/on|off[/MAX_TOKENS[/off|none|answers[/MIN_WORD_S[/on|off[/LOOP_BEAM[/RETRY_MAX_TOKENS]]]]]]:
    the token cap (0: the general one), the second decode (``none``: without a prompt, ``answers``: after
    SHORT_ANSWERS alone; default none), the seconds of speech per word under which a repeated word is kept once (0:
    never; default SHORT_MIN_WORD_S), whether a "no speech" rejection is taken back when both readings are the same
    digit (default on), the beam a looping reading is decoded again with before the full window (default 0: none) and
    the tokens each decode of the full window a looping reading is tried in next may write after its prompt (0: the
    general cap; default ShortClipDecoding's)."""
    lead, trail, beam, blank, *rest = text.split("/")
    cap = int(rest[0]) if rest else 0
    alternative = ALTERNATIVE_PROMPTS[rest[1]] if len(rest) > 1 else None
    min_word_s = float(rest[2]) if len(rest) > 2 else SHORT_MIN_WORD_S
    digits_agree = rest[3] != "off" if len(rest) > 3 else True
    loop_beam = int(rest[4]) if len(rest) > 4 else 0
    retry = {"retry_max_tokens": int(rest[5])} if len(rest) > 5 else {}
    return ShortClipDecoding(float(lead), float(trail), int(beam), blank == "on", cap, alternative, min_word_s,
                             digits_agree, loop_beam, **retry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--extra-voices", action="store_true", help="add EXTRA_VOICES for the short rows")
    parser.add_argument("--config", default=None)
    parser.add_argument("--variants", default="",
                        help="short-clip decodings to compare, comma-separated (default: the configured), each "
                             "LEAD/TRAIL/BEAM/on|off[/MAX_TOKENS[/off|none|answers[/MIN_WORD_S[/on|off[/LOOP_BEAM"
                             "[/RETRY_MAX_TOKENS]]]]]] (see parse_variant)")
    parser.add_argument("--kinds", default="", help="only these kinds (digit,number,answer,request,sentence)")
    parser.add_argument("--dump", default="", help="write every clip's reading per variant to this JSON file")
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
    # Every clip is heard by each variant in turn, so a busy machine weighs on all variants alike (CPU times).
    shareds = [SharedModels(settings, whisper, piper, bias, short=variant) for variant in variants]
    errors: list[dict[str, list[int]]] = [defaultdict(lambda: [0, 0, 0, 0]) for _ in shareds]  # errors, words, clips, rejected
    cpu_ms: list[dict[str, list[float]]] = [defaultdict(list) for _ in shareds]
    every: list[list[dict[str, Any]]] = [[] for _ in shareds]
    try:
        for shared in shareds:
            shared.recognise(clips[0][4])  # the first inference of a thread is slower
        for kind, expects, text, voice_name, audio in clips:
            speech_s = round(speech_seconds(np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768.0), 2)
            for n, shared in enumerate(shareds):
                started = time.process_time()
                heard = shared.recognise(audio, expects=expects)
                cpu = 1000 * (time.process_time() - started)
                cpu_ms[n]["sentence" if kind == "sentence" else "short"].append(cpu)
                e, w = word_errors(text, heard.text)
                every[n].append({"said": text, "kind": kind, "voice": voice_name, "heard": heard.text,
                                 "rejected": heard.rejected, "decoded": heard.decoded, "avg_logprob": heard.avg_logprob,
                                 "no_speech_prob": heard.no_speech_prob, "recovered_from": heard.recovered_from,
                                 "errors": e, "speech_s": speech_s, "cpu_ms": round(cpu, 1)})
                for key in (kind, "all"):
                    errors[n][key][0] += e
                    errors[n][key][1] += w
                    errors[n][key][2] += 1
                    errors[n][key][3] += heard.rejected is not None
    finally:
        for shared in shareds:
            shared.close()
    report = [{
        "short_clips": shared.short.__dict__,
        "wer": {k: round(e / max(1, w), 4) for k, (e, w, _, _) in errors[n].items()},
        "clips": {k: c for k, (_, _, c, _) in errors[n].items()},
        "rejected": {k: r for k, (_, _, _, r) in errors[n].items()},
        "cpu_ms": {k: {"mean": round(statistics.fmean(v), 1), "p95": round(sorted(v)[int(0.95 * (len(v) - 1))], 1)}
                   for k, v in cpu_ms[n].items()},
        "misheard": [{k: c[k] for k in ("said", "kind", "voice", "heard", "rejected")} for c in every[n] if c["errors"]][:60],
    } for n, shared in enumerate(shareds)]
    print(json.dumps({"voices": [v.name for v in voices], "variants": report}, indent=2))
    if args.dump:
        Path(args.dump).write_text(json.dumps([{"short_clips": shared.short.__dict__, "clips": clips_heard}
                                               for shared, clips_heard in zip(shareds, every, strict=True)], indent=1))


if __name__ == "__main__":
    main()
