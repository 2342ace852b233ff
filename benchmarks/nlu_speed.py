"""NLU speed: training time on the bundled retail domain and parse latency per utterance. Prints JSON.

    python benchmarks/nlu_speed.py [--repeat 3] [--knowledge]

Latency is measured over every utterance of tests/data/nlu_dev.tsv (one to three intents, spoken style),
parsed ``--repeat`` times, plus a 10 000-character input. ``--knowledge``: with the domain's knowledge base, as the
product runs it (the NLU's ``faq`` stage then runs on every parse).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from dialogs.domain import load_domain
from dialogs.knowledge.dialog import Knowledge
from dialogs.nlu import NLU
from dialogs.nlu.evaluation import load_examples

DEV = Path(__file__).resolve().parents[1] / "tests" / "data" / "nlu_dev.tsv"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--knowledge", action="store_true", help="train with the domain's knowledge base (faq stage)")
    args = ap.parse_args()
    domain = load_domain()
    questions = Knowledge.for_domain(domain) if args.knowledge else None
    train_times = []
    nlu = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        nlu = NLU.train(domain, questions=questions)
        train_times.append(time.perf_counter() - t0)
    assert nlu is not None
    texts = [ex.text for ex in load_examples(DEV)]
    today = date(2025, 1, 15)
    nlu.parse("warm up", today=today)
    lat = []
    for _ in range(args.repeat):
        for t in texts:
            t0 = time.perf_counter()
            nlu.parse(t, today=today)
            lat.append(1000 * (time.perf_counter() - t0))
    long_text = ("where is my order and i want to return the shoes " * 250)[:10_000]
    t0 = time.perf_counter()
    nlu.parse(long_text, today=today)
    long_ms = 1000 * (time.perf_counter() - t0)
    lat.sort()
    print(json.dumps({
        "benchmark": "nlu_speed",
        "domain": domain.name,
        "knowledge": questions is not None,
        "train_examples": sum(len(v) for v in domain.examples().values()),
        "train_seconds": {"min": round(min(train_times), 3), "max": round(max(train_times), 3)},
        "parse_ms": {
            "n": len(lat),
            "p50": round(statistics.median(lat), 2),
            "p95": round(lat[int(0.95 * (len(lat) - 1))], 2),
            "max": round(lat[-1], 2),
        },
        "parse_10000_chars_ms": round(long_ms, 1),
        "machine": f"{platform.machine()} python {platform.python_version()}",
        "note": "2 CPU cores shared with other jobs while measured; numbers are pessimistic",
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
