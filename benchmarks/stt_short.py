"""WER of the product's STT path on short answers and lone digits over G.711 (``tests/data/stt_short_dev.tsv``).

Each short row (digits, numbers, one-word answers) is spoken by every test voice, each sentence by two of them,
then sent through a G.711 mu-law 8 kHz line and ``SharedModels.recognise`` (with the row's ``expects``, as
after the bot's question). Written to choose short-clip decoding without looking at ``../shared/eval-data``.
Prints JSON: WER per kind, rejected clips, mean CPU seconds per clip.

    python benchmarks/stt_short.py [--voices en-us,en-sc,...] [--config voicebot.yaml]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path

from audio.evaluation import word_errors
from voicebot.config import Settings, load_settings
from voicebot.phone_speech import VOICES, PhoneListener, parse_voices
from voicebot.pipeline.shared import SharedModels

DEV_SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "stt_short_dev.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--config", default=None)
    args = parser.parse_args()
    settings = load_settings(args.config) if args.config else Settings()
    settings.models.workers = 1
    voices = parse_voices(args.voices)
    rows = [r for r in csv.reader(DEV_SET.read_text().splitlines(), delimiter="\t") if r and not r[0].startswith("#")]
    listener = PhoneListener(lambda _: "")
    shared = SharedModels.load(settings)
    errors: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # errors, words, clips, rejected
    worst = []
    cpu = 0.0
    try:
        for i, (kind, expects, text) in enumerate(rows):
            speakers = voices if kind != "sentence" else [voices[i % len(voices)], voices[(i + 4) % len(voices)]]
            for voice in speakers:
                audio = listener.audio(text, voice)
                started = time.process_time()
                heard = shared.recognise(audio, expects=expects or None)
                cpu += time.process_time() - started
                e, w = word_errors(text, heard.text)
                for key in (kind, "all"):
                    errors[key][0] += e
                    errors[key][1] += w
                    errors[key][2] += 1
                    errors[key][3] += heard.rejected is not None
                if e:
                    worst.append({"said": text, "voice": voice.name, "heard": heard.text, "rejected": heard.rejected})
    finally:
        shared.close()
    clips = errors["all"][2]
    print(json.dumps({
        "voices": [v.name for v in voices],
        "wer": {k: round(e / max(1, w), 4) for k, (e, w, _, _) in errors.items()},
        "clips": {k: n for k, (_, _, n, _) in errors.items()},
        "rejected": {k: r for k, (_, _, _, r) in errors.items()},
        "cpu_mean_s": round(cpu / max(1, clips), 3),
        "misheard": worst[:40],
    }, indent=2))


if __name__ == "__main__":
    main()
