"""MixSNIPS benchmark: configure a domain from the MixSNIPS training utterances, measure the test set.

The domain's examples are the single-intent rows of ``mixsnips_train.tsv`` (MixSNIPS labels of multi-intent
rows are sorted alphabetically, not in spoken order, so those rows cannot be cut into labelled clauses
reliably). The NLU is used exactly as shipped: same normalisation, segmenter, classifier and thresholds.
The score is intent-set exact match on ``mixsnips_test.tsv``, the "overall intent accuracy" of the
MixSNIPS papers. Prints JSON.

    python benchmarks/mixsnips.py [--data DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

from dialogs.domain.schema import Domain, Intent
from dialogs.nlu import NLU

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "eval-data" / "intents"


def read(path: Path) -> list[tuple[str, list[str]]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        text, labels = line.split("\t")[:2]
        rows.append((text, labels.split("#")))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with mixsnips_{train,test}.tsv")
    ap.add_argument("--limit", type=int, default=0, help="only the first N test rows (0: all)")
    args = ap.parse_args()
    train_file, test_file = args.data / "mixsnips_train.tsv", args.data / "mixsnips_test.tsv"
    for f in (train_file, test_file):
        if not f.exists():
            print(f"missing {f} (give --data DIR)", file=sys.stderr)
            return 2

    examples: dict[str, list[str]] = {}
    for text, labels in read(train_file):
        if len(labels) == 1:
            examples.setdefault(labels[0], []).append(text)
    domain = Domain(name="MixSNIPS", intents={name: Intent(examples=ex) for name, ex in sorted(examples.items())})

    t0 = time.perf_counter()
    nlu = NLU.train(domain)
    train_s = time.perf_counter() - t0

    test = read(test_file)
    if args.limit:
        test = test[: args.limit]
    right: Counter[int] = Counter()
    total: Counter[int] = Counter()
    t0 = time.perf_counter()
    today = date(2025, 1, 15)
    for text, labels in test:
        got = {h.name for h in nlu.parse(text, today=today).intents}
        k = len(set(labels))
        total[k] += 1
        right[k] += got == set(labels)
    parse_s = time.perf_counter() - t0
    n = sum(total.values())
    print(json.dumps({
        "benchmark": "mixsnips",
        "train_examples": sum(len(v) for v in examples.values()),
        "train_seconds": round(train_s, 2),
        "test_utterances": n,
        "intent_exact_match": round(sum(right.values()) / n, 4),
        "by_intent_count": {str(k): {"n": total[k], "accuracy": round(right[k] / total[k], 4)} for k in sorted(total)},
        "ms_per_utterance": round(1000 * parse_s / n, 2),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        "note": "2 shared CPU cores; timings pessimistic",
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
