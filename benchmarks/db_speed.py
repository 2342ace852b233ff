"""How long the customer database takes per dialog step, on a SQLite file of the demo data; prints JSON.

    python benchmarks/db_speed.py [--url URL] [--repeat N]

Measures seeding the demo set, caller-ID lookup, each verification method (the PIN check is a
deliberately slow scrypt hash), open matters, and each retail action (run in a transaction that is
rolled back, so every repetition sees the same data) and, apart, the commit of one change (a
file sync on SQLite). Times are medians in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from dialogs.actions import ACTIONS, ActionContext
from dialogs.db import repository as repo
from dialogs.db.audit import record_change
from dialogs.db.engine import Database, ensure_database

NOW = datetime(2026, 3, 12, 15, 30)
ACTION_SLOTS: dict[str, dict[str, Any]] = {
    "lookup_order": {"order_id": "45281"},
    "start_return": {"order_id": "12034", "return_reason": "too small"},
    "change_address": {"address": "12 Main Street, San Francisco", "postcode": "94107"},
    "reset_password": {},
    "billing_summary": {},
    "refund_duplicate_charge": {},
    "cancel_subscription": {},
}


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def rolled_back(db: Database, fn: Callable[[Any], Any]) -> Callable[[], Any]:
    def run() -> None:
        with db.engine.connect() as conn, conn.begin() as tx:
            from sqlalchemy.orm import Session

            with Session(bind=conn) as s:
                fn(s)
                s.flush()
            tx.rollback()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="database URL (default: a new SQLite file in a temp dir)")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        t0 = time.perf_counter()
        db = ensure_database(url, seed_demo=True, now=NOW)
        seed_ms = round((time.perf_counter() - t0) * 1000, 1)
        out: dict[str, Any] = {"url": url if args.url else "sqlite (temp file)", "repeat": args.repeat,
                               "seed_demo_ms": seed_ms}
        with db.session() as s:
            out["find_customer_by_phone_ms"] = median_ms(lambda: repo.find_customer_by_phone(s, "555 123 0001"),
                                                         args.repeat)
            for method, value in (("postcode", "94107"), ("date_of_birth", date(1985, 4, 12)), ("pin", "4321")):
                out[f"verify_{method}_ms"] = median_ms(lambda m=method, v=value: repo.verify_identity(s, 1, m, v),
                                                       args.repeat)
            out["open_matters_ms"] = median_ms(
                lambda: repo.open_matters(s, 2, NOW, ["returns", "orders", "contacts", "subscriptions"], 30),
                args.repeat)
        for name, slots in ACTION_SLOTS.items():
            fn = ACTIONS[name]
            out[f"action_{name}_ms"] = median_ms(
                rolled_back(db, lambda s, fn=fn, slots=slots: fn(ActionContext(s, dict(slots), 1, None, NOW))),
                args.repeat)
        def committed_change() -> None:
            with db.session() as s:
                record_change(s, at=NOW, actor="bench", entity="bench", entity_id=None, action="write")

        out["commit_one_change_ms"] = median_ms(committed_change, args.repeat)
        db.dispose()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
