"""Spoken intents: NLU variants compared on the same recognised speech. Prints JSON.

Every row of the spoken dev set (tests/data/spoken_dev.tsv, held out from training) is spoken by the test
voices in turn (espeak-ng accents and Piper, as `voicebot eval spoken`), sent through G.711 mu-law 8 kHz and
the product's STT path once; then each NLU variant parses the same transcripts and the clean text:

- features: tfidf / embeddings / both (``nlu.features``)
- heard: trained with or without the recogniser's transcripts of the examples (nlu_asr.yaml)

Reports intent-set accuracy (single and multi), time per parse, training time, and the reliability check
(accuracy per confidence band) of each variant.

    python benchmarks/spoken_intents.py [--data FILE] [--voices en-us,en-gb,...] [--variants tfidf,both]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from dialogs.domain import load_domain
from dialogs.nlu import NLU
from dialogs.nlu.evaluation import evaluate, load_examples
from voicebot.config import load_settings
from voicebot.phone_speech import DEFAULT_VOICES, PhoneListener, parse_voices
from voicebot.pipeline.shared import SharedModels

DEV = Path(__file__).resolve().parents[1] / "tests" / "data" / "spoken_dev.tsv"
TODAY = date(2025, 1, 15)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEV)
    ap.add_argument("--voices", default=",".join(DEFAULT_VOICES))
    ap.add_argument("--variants", default="tfidf,tfidf+heard,embeddings+heard,both+heard",
                    help="features[+heard], comma-separated")
    args = ap.parse_args()
    examples = load_examples(args.data)
    voices = parse_voices(args.voices)
    settings = load_settings(None)
    models = SharedModels.load(settings)
    listener = PhoneListener(models.transcribe)
    heard, stt_ms = [], []
    try:
        for i, ex in enumerate(examples):
            audio = listener.audio(ex.text, voices[i % len(voices)])
            t0 = time.perf_counter()
            heard.append(models.transcribe(audio))
            stt_ms.append(1000 * (time.perf_counter() - t0))
    finally:
        models.close()
    domain = load_domain()
    results = {}
    for variant in args.variants.split(","):
        features, _, extra = variant.partition("+")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        nlu = NLU.train(domain, features=features, heard=extra == "heard")  # type: ignore[arg-type]
        train_s = time.perf_counter() - t0
        spoken = evaluate(nlu, examples, today=TODAY, heard=heard, max_errors=0)
        text = evaluate(nlu, examples, today=TODAY, max_errors=0)
        results[variant] = {
            "spoken": {"single": spoken.single, "multi": spoken.multi},
            "text": {"single": text.single, "multi": text.multi},
            "ms_per_parse": round((spoken.ms_per_utterance + text.ms_per_utterance) / 2, 2),
            "train_seconds": round(train_s, 2),
            "max_rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1),
            "reliability_spoken": spoken.reliability,
        }
        print(variant, json.dumps(results[variant]["spoken"]), file=sys.stderr, flush=True)
    print(json.dumps({
        "benchmark": "spoken_intents",
        "data": str(args.data),
        "utterances": len(examples),
        "voices": [v.name for v in voices],
        "stt_median_ms": round(statistics.median(stt_ms), 1),
        "stt_model": str(settings.models.stt.model or "bundled tiny.en"),
        "variants": results,
        "machine": f"{platform.machine()} python {platform.python_version()}",
        "note": "2 CPU cores shared with other jobs while measured; timings pessimistic",
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
