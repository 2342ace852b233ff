"""WER of the product's STT path on sentences over G.711: the own generic read-speech set
(``tests/data/stt_sentence_dev.tsv``) and the domain requests and answers of ``stt_choice.DEV_SET``.

Each generic sentence is spoken by two synthetic voices, each domain utterance by one (voices rotate), then sent
through a G.711 mu-law 8 kHz line and ``SharedModels.recognise``. Written to choose sentence decoding without
looking at ``../shared/eval-data``. Prints JSON per variant: WER per set and kind; the generic set's errors broken
down into substitutions, deletions and insertions, how many fall on the last word, the commonest substitutions;
rejected clips; CPU ms per clip (mean, p95).

    python benchmarks/stt_sentences.py [--variants 1/on,2/on,2/off]   # beam width / domain prompt on|off
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from audio.evaluation import normalise_transcript, reference_words
from dialogs.domain.loader import load_domain
from voicebot.config import Settings, load_settings
from voicebot.models import load_piper, load_whisper
from voicebot.phone_speech import PhoneListener, parse_voices
from voicebot.pipeline.shared import SharedModels
from voicebot.pipeline.stt_bias import SpeechBias

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stt_choice import DEV_SET  # noqa: E402

SENTENCES = Path(__file__).resolve().parents[1] / "tests" / "data" / "stt_sentence_dev.tsv"
VOICES = "en-us,en-gb,en-sc,en-029,en-nyc,piper,en-rp,piper-fast"


def edits(ref: list[str], hyp: list[str]) -> list[tuple[str, int, str, str]]:
    """A minimal word alignment's edits: (S|D|I, position in ``ref``, reference word, heard word)."""
    d = [[i + j if not i or not j else 0 for j in range(len(hyp) + 1)] for i in range(len(ref) + 1)]
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    out = []
    i, j = len(ref), len(hyp)
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] != hyp[j - 1]:
                out.append(("S", i - 1, ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            out.append(("D", i - 1, ref[i - 1], ""))
            i -= 1
        else:
            out.append(("I", i, "", hyp[j - 1]))
            j -= 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--variants", default="", help="beam width / domain prompt on|off, comma-separated "
                        "(default: the configured)")
    args = parser.parse_args()
    settings = load_settings(args.config) if args.config else Settings()
    settings.models.workers = 1
    voices = parse_voices(VOICES)
    listener = PhoneListener(lambda _: "")
    rows = [r for r in csv.reader(SENTENCES.read_text().splitlines(), delimiter="\t") if r and not r[0].startswith("#")]
    clips: list[tuple[str, str, str | None, str, bytes]] = []  # set, kind, expects, text, audio
    for i, (kind, text) in enumerate(rows):
        for voice in (voices[i % len(voices)], voices[(i + 3) % len(voices)]):
            clips.append(("generic", kind, None, text, listener.audio(text, voice)))
    for i, (expects, text) in enumerate(DEV_SET):
        clips.append(("domain" if expects is None else "answer", expects or "request", expects, text,
                      listener.audio(text, voices[i % len(voices)])))
    whisper, piper = load_whisper(settings), load_piper(settings)
    bias = SpeechBias.from_domain(load_domain(settings.resolve(settings.domain.path)))
    variants = args.variants.split(",") if args.variants else [f"{settings.models.stt.beam_size}/"
                                                                f"{'on' if settings.models.stt.bias else 'off'}"]
    report: list[dict[str, Any]] = []
    for variant in variants:
        beam, prompt = variant.split("/")
        tuned = settings.model_copy(deep=True)
        tuned.models.stt.beam_size = int(beam)
        tuned.models.stt.bias = prompt == "on"
        shared = SharedModels(tuned, whisper, piper, bias)
        errors: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # errors, words, rejected
        kinds: Counter[str] = Counter()
        substitutions: Counter[tuple[str, str]] = Counter()
        last_word = 0
        cpu_ms: dict[str, list[float]] = defaultdict(list)
        misheard = []
        try:
            shared.recognise(clips[0][4])  # the first inference of a thread is slower
            for group, kind, expects, text, audio in clips:
                started = time.process_time()
                heard = shared.recognise(audio, expects=expects)
                cpu_ms[group].append(1000 * (time.process_time() - started))
                ref = reference_words(text)
                found = edits(ref, normalise_transcript(heard.text))
                for key in (group, f"{group}: {kind}"):
                    errors[key][0] += len(found)
                    errors[key][1] += len(ref)
                    errors[key][2] += heard.rejected is not None
                if group == "generic":
                    kinds.update(op for op, *_ in found)
                    last_word += sum(position >= len(ref) - 1 for _, position, *_ in found)
                    substitutions.update((said, got) for op, _, said, got in found if op == "S")
                if found:
                    misheard.append({"said": text, "heard": heard.text, "rejected": heard.rejected})
        finally:
            shared.close()
        report.append({
            "variant": variant,
            "wer": {k: round(e / max(1, w), 4) for k, (e, w, _) in sorted(errors.items())},
            "rejected": {k: r for k, (_, _, r) in sorted(errors.items()) if r},
            "generic_errors": dict(kinds),
            "generic_errors_on_last_word": last_word,
            "generic_substitutions": [f"{a} -> {b} ({n})" for (a, b), n in substitutions.most_common(20)],
            "cpu_ms": {k: {"mean": round(statistics.fmean(v), 1), "p95": round(sorted(v)[int(0.95 * (len(v) - 1))], 1)}
                       for k, v in cpu_ms.items()},
            "misheard": misheard,
        })
        print(json.dumps(report[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"voices": VOICES.split(","), "clips": len(clips), "variants": report}, indent=2))


if __name__ == "__main__":
    main()
