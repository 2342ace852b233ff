"""How long prosodic features plus the frustration score take for 5 s of caller speech.

The budget is 30 ms per 5 s utterance, so it can run on every turn of every call. Speech is
synthesised with espeak-ng, cut to exactly 5 s and measured at the sample rates a call delivers
(8 kHz SIP, 16 kHz, 22.05 kHz native, 48 kHz WebRTC; resampling is part of the measured time).
Prints one JSON object.

    python benchmarks/prosody_speed.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from audio.frustration import DialogSignals, score_turn
from audio.prosody.baseline import SpeakerBaseline
from audio.prosody.features import extract_features
from audio.speech import espeak_ng

TEXT = (
    "I have been waiting for my refund for two weeks now, and this is the third time I am calling "
    "about it. Nobody has called me back, and I would like to know what is going on with my money."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    results = {}
    for rate in (8000, 16000, 22050, 48000):
        speech, sr = espeak_ng(TEXT, sample_rate=rate)
        clip = np.resize(speech, 5 * sr)  # repeat if short, then exactly 5 s
        baseline = SpeakerBaseline.from_features([extract_features(clip[: 2 * sr], sr)])
        for _ in range(3):  # warm caches and numpy's FFT plans
            extract_features(clip, sr)
        times_ms = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            features = extract_features(clip, sr)
            score_turn(features, baseline, "this is the third time", DialogSignals(reasks=1))
            times_ms.append(1000.0 * (time.perf_counter() - start))
        t = np.asarray(times_ms)
        results[str(rate)] = {
            "median_ms": round(float(np.median(t)), 2),
            "p95_ms": round(float(np.percentile(t, 95)), 2),
            "max_ms": round(float(t.max()), 2),
        }
    print(
        json.dumps(
            {
                "benchmark": "prosodic features + frustration score, 5 s of speech",
                "budget_ms": 30,
                "repeats": args.repeats,
                "by_input_sample_rate": results,
                "machine": {
                    "cpus": os.cpu_count(),
                    "load_avg_1min": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
