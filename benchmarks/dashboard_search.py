"""History search and figures over many calls: how long `CallStore.search` and `CallStore.stats` take.

Fills a fresh SQLite file with N calls over 30 days (6 turns each: intents, frustration, bot reply latencies;
written in bulk with the same summary columns the call store keeps up to date), then times each filter of
`GET /api/calls` and `GET /api/stats` (median of 5 runs, after one warm-up run).

    python benchmarks/dashboard_search.py [--calls 10000] [--db PATH]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from voicebot.storage import CallStore  # noqa: E402
from voicebot.storage.models import CallRow, TurnRow  # noqa: E402

INTENTS = ["order_status", "change_address", "refund_status", "reset_password", "cancel_subscription",
           "invoice_copy", "speak_to_agent", "technical_support"]
OUTCOMES = ["resolved", "resolved", "resolved", "handoff", "abandoned", "unresolved"]
WORDS = ["order", "parcel", "refund", "address", "password", "invoice", "subscription", "delivery", "late",
         "broken", "charge", "account"]


def fill(store: CallStore, n: int, end: datetime, rng: random.Random) -> None:
    calls: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i in range(n):
        start = end - timedelta(seconds=rng.uniform(0, 30 * 86400))
        names = rng.sample(INTENTS, rng.choice([1, 1, 2, 3]))
        fmax = round(rng.random() ** 2, 3)
        call_id = f"bench-{i:06d}"
        calls.append({"id": call_id, "channel": rng.choice(["sip", "webrtc"]), "caller_id": f"+1555{i:07d}",
                      "dialled": rng.choice(["800", "900"]), "start": start, "end": start + timedelta(minutes=3),
                      "outcome": rng.choice(OUTCOMES), "end_reason": "bot_hangup", "intents": names,
                      "frustration_max": fmax, "agent_id": rng.choice([None, None, None, "alice", "bob"])})
        for seq in range(6):
            speaker = "caller" if seq % 2 else "bot"
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
            turns.append({"call_id": call_id, "seq": seq, "speaker": speaker, "text": text,
                          "start": start + timedelta(seconds=10 * seq), "end": start + timedelta(seconds=10 * seq + 5),
                          "intents": [{"name": x} for x in names] if seq == 1 else [],
                          "latency_ms": rng.gauss(800, 200) if speaker == "bot" and seq else None,
                          "extra": {"signals": {"frustration": fmax}} if speaker == "caller" else {}})
    with store.engine.begin() as conn:
        conn.execute(insert(CallRow), calls)
        conn.execute(insert(TurnRow), turns)


def timed(fn, runs: int = 5) -> tuple[float, Any]:
    fn()  # warm-up: the first query pays for opening the file and SQLite's caches
    times = []
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--db", help="SQLite file to use (default: a temporary one)")
    args = ap.parse_args()
    rng = random.Random(7)
    end = datetime(2026, 11, 22, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "search.db"
        store = CallStore.from_url(f"sqlite:///{path}")
        t0 = time.perf_counter()
        fill(store, args.calls, end, rng)
        filled_s = time.perf_counter() - t0
        day = {"since": end - timedelta(days=1), "until": end}
        queries = {
            "newest 100": {},
            "number": {"number": "555000012"},
            "intent": {"intent": "refund_status"},
            "outcome": {"outcome": "abandoned"},
            "date (one day)": day,
            "min_frustration 0.8": {"min_frustration": 0.8},
            "free text in turns": {"q": "broken parcel"},
            "intent + outcome + date": {"intent": "cancel_subscription", "outcome": "handoff", **day},
            "agent's own calls": {"agent_id": "alice"},
        }
        out: dict[str, Any] = {"calls": args.calls, "turns": args.calls * 6, "fill_s": round(filled_s, 1),
                               "search_ms": {}, "matches": {}}
        for name, params in queries.items():
            ms, (rows, total) = timed(lambda p=params: store.search(limit=100, **p))
            out["search_ms"][name] = ms
            out["matches"][name] = total
        out["stats_ms"] = {}
        for name, days in (("24 hours", 1), ("7 days", 7), ("30 days", 30)):
            ms, _ = timed(lambda d=days: store.stats(end - timedelta(days=d), end))
            out["stats_ms"][name] = ms
        store.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
