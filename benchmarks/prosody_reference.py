"""Measure the calm reference speech behind ``audio.prosody.baseline.POPULATION_REFERENCE``.

Synthesises neutral contact-center sentences with Piper (en_US-joe-medium) and espeak-ng (a male
and a female variant, default settings) and prints, as JSON, the median of every feature. These are
our own synthetic voices, not the evaluation data, so the stand-in baseline is not tuned on it.

    python benchmarks/prosody_reference.py
"""

from __future__ import annotations

import json

import numpy as np

from audio.prosody.features import FEATURE_NAMES, extract_features
from audio.speech import espeak_ng, piper_tts

SENTENCES = [
    "Hello, I would like to check the status of my order please.",
    "My order number is four five seven two one.",
    "I bought a jacket last week and it does not fit, so I would like to return it.",
    "Could you tell me when the parcel will arrive?",
    "Yes, that is correct, the address is twelve Main Street.",
    "I also wanted to ask about my subscription and the last invoice.",
    "Thank you, that was all I needed to know.",
    "I think the payment went through on Monday, but I am not sure.",
]


def main() -> None:
    rows = []
    for text in SENTENCES:
        rows.append(extract_features(*piper_tts(text)))
        rows.append(extract_features(*espeak_ng(text)))
        rows.append(extract_features(*espeak_ng(text, voice="en-us+f3")))
    out = {}
    for name in FEATURE_NAMES:
        vals = [v for r in rows if (v := r.value(name)) is not None]
        out[name] = {"median": round(float(np.median(vals)), 3), "p10": round(float(np.percentile(vals, 10)), 3),
                     "p90": round(float(np.percentile(vals, 90)), 3), "n": len(vals)}  # fmt: skip
    print(json.dumps({"utterances": len(rows), "features": out}, indent=2))


if __name__ == "__main__":
    main()
