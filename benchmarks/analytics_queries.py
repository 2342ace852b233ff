"""How long the supervisor's analytics and history queries take over many calls; prints JSON.

    python benchmarks/analytics_queries.py [--calls 100000] [--days 90] [--url URL] [--repeat 20]

Fills a fresh database (a temporary SQLite file, or ``--url``: a throwaway PostgreSQL database, every voicebot
table is dropped first) with ``--calls`` call records spread over ``--days`` (intents, outcomes, frustration,
scorecard results, 15 % handed to agents), then times each query ``--repeat`` times: trends per day over 30 days,
per hour over one day, per week over the whole span, per-agent figures over 30 days, and history searches
filtered by a scorecard item and by an intent (newest 100). Prints p50/p95 in milliseconds per query and the
database's plan of the daily trend query (which index it uses). Target: p95 < 300 ms at 100,000 calls.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text

from voicebot.qa.analytics import Analytics
from voicebot.storage import CallStore
from voicebot.storage.models import CallIntentRow, CallRow
from voicebot.storage.schema import drop_all, upgrade
from voicebot.storage.transfers import TransferRow

INTENTS = ["order_status", "start_return", "change_address", "billing_question", "cancel_subscription",
           "reset_password", "technical_support", "speak_to_agent"]
AGENTS = [f"agent{i:02d}" for i in range(20)]
QUEUES = ["general", "billing", "returns"]


def fill(engine: Any, calls: int, days: int, seed: int = 7) -> datetime:
    """Insert the calls in batches; returns the end of the span."""
    rng = random.Random(seed)
    end = datetime(2026, 11, 30, tzinfo=UTC)
    start = end - timedelta(days=days)
    sqlite = engine.dialect.name == "sqlite"

    def stamp(dt: datetime) -> datetime:
        return dt.replace(tzinfo=None) if sqlite else dt  # SQLite stores UTC without the zone

    batch_calls: list[dict[str, Any]] = []
    batch_intents: list[dict[str, Any]] = []
    batch_transfers: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            if batch_calls:
                conn.execute(insert(CallRow), batch_calls)
            if batch_intents:
                conn.execute(insert(CallIntentRow), batch_intents)
            if batch_transfers:
                conn.execute(insert(TransferRow), batch_transfers)
        batch_calls.clear()
        batch_intents.clear()
        batch_transfers.clear()

    for n in range(calls):
        begin = start + timedelta(seconds=rng.uniform(0, days * 86400))
        names = rng.sample(INTENTS, rng.choice((1, 1, 1, 2)))
        handed = rng.random() < 0.15
        abandoned = not handed and rng.random() < 0.06
        outcome = "handoff" if handed else "abandoned" if abandoned else "resolved"
        agent = rng.choice(AGENTS) if handed and rng.random() < 0.9 else None
        results = [f"containment={'fail' if handed else 'pass'}", f"ai_disclosure={'pass' if rng.random() < 0.99 else 'fail'}",
                   f"silence={'fail' if rng.random() < 0.05 else 'pass'}"]
        failed = [r.split("=")[0] for r in results if r.endswith("=fail")]
        call_id = f"bench-{n:07d}"
        batch_calls.append({
            "id": call_id, "channel": rng.choice(("sip", "sip", "webrtc")), "caller_id": f"+1555{rng.randint(0, 9999999):07d}",
            "dialled": None, "start": stamp(begin), "end": stamp(begin + timedelta(seconds=rng.uniform(30, 600))),
            "outcome": outcome, "end_reason": "caller_hangup", "intents": names,
            "frustration_max": round(rng.random(), 3), "agent_id": agent, "customer_id": None,
            "scorecard": {"version": 1, "items": [], "failed": failed}, "qa_results": results,
        })
        batch_intents.extend({"call_id": call_id, "intent": name, "start": stamp(begin), "outcome": outcome,
                              "agent_id": agent} for name in names)
        if handed:
            batch_transfers.append({
                "call_id": call_id, "queue": rng.choice(QUEUES), "agent_id": agent,
                "outcome": "answered" if agent else "abandoned", "wait_s": round(rng.expovariate(1 / 25), 1),
                "talk_s": round(rng.uniform(60, 900), 1) if agent else None, "callback_id": None, "voicemail_s": None,
                "at": stamp(begin),
            })
        if len(batch_calls) >= 5000:
            flush()
    flush()
    return end


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    fn()  # warm the cache: a dashboard asks the same range again and again
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)], 1)}


def plan(engine: Any, analytics: Analytics, since: datetime, until: datetime) -> list[str]:
    """The database's plans of a per-bucket call query and of the per-intent query (both from covering indexes)."""
    start, end = (since.replace(tzinfo=None), until.replace(tzinfo=None)) if engine.dialect.name == "sqlite" \
        else (since, until)
    sql = ("SELECT intent, count(*), sum(CASE WHEN outcome = 'resolved' AND agent_id IS NULL THEN 1 ELSE 0 END) "
           "FROM voicebot_call_intents WHERE start >= :a AND start < :b GROUP BY intent")
    calls_sql = ("SELECT count(*), avg(frustration_max), sum(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END) "
                 "FROM voicebot_calls WHERE start >= :a AND start < :b")
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        out = []
        for query in (calls_sql, sql):
            rows = conn.execute(text(prefix + query), {"a": start, "b": end}).all()
            out.append(" | ".join(str(r[-1]) for r in rows))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--url", default=None, help="a throwaway database (default: a temporary SQLite file)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'analytics.db'}"
        if args.url:
            drop_all(url)
        engine = create_engine(url)
        upgrade(engine)
        t0 = time.perf_counter()
        end = fill(engine, args.calls, args.days)
        fill_s = time.perf_counter() - t0
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        analytics = Analytics(engine, {"billing": 30.0})
        store = CallStore(engine)
        month = end - timedelta(days=30)
        queries: dict[str, Callable[[], Any]] = {
            "trends_day_30d": lambda: analytics.trends(month, end, "day"),
            "trends_hour_1d": lambda: analytics.trends(end - timedelta(days=1), end, "hour"),
            "trends_week_all": lambda: analytics.trends(end - timedelta(days=args.days), end, "week"),
            "agents_30d": lambda: analytics.agents(month, end),
            "history_qa_filter_30d": lambda: store.search(qa=["silence=fail"], since=month, until=end, limit=100),
            "history_intent_30d": lambda: store.search(intent="cancel_subscription", since=month, until=end, limit=100),
        }
        results = {name: timed(fn, args.repeat) for name, fn in queries.items()}
        out = {
            "database": engine.dialect.name, "calls": args.calls, "days": args.days, "fill_s": round(fill_s, 1),
            "queries": results,
            "worst_p95_ms": max(r["p95_ms"] for r in results.values()),
            "plan": plan(engine, analytics, month, end),
        }
        store.close()
        engine.dispose()
        if args.url:
            drop_all(url)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
