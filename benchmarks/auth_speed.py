"""What logins and redaction cost: scrypt hashing and checking, a session lookup per API request (SQLite), and
redacting one call turn. Prints JSON. ``python benchmarks/auth_speed.py [--n 200]``."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from voicebot.redaction import Redactor
from voicebot.users import UserStore, hash_password, verify_password

TURNS = [
    "hi I'd like to know where my order is, it's four five two eight one",
    "my card number is 4111 1111 1111 1111 and the security code is 123",
    "this is the third time I'm calling about order 45281, it's ridiculous, get me a manager",
    "yes please, my phone number is 555 123 4567",
]


def timed(fn: Callable[[], object], n: int) -> dict[str, float]:
    """Milliseconds per call of ``fn`` over ``n`` runs: p50, p95, mean."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": round(times[len(times) // 2], 4), "p95_ms": round(times[int(len(times) * 0.95) - 1], 4),
            "mean_ms": round(statistics.fmean(times), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="runs of the fast measurements (scrypt: n/10)")
    args = parser.parse_args()
    stored = hash_password("correct horse battery")
    redactor = Redactor.default()
    with tempfile.TemporaryDirectory() as tmp:
        users = UserStore.from_url(f"sqlite:///{Path(tmp) / 'users.db'}")
        users.add("sup", "supervisor", "pw")
        session = users.login("sup", "pw")
        assert session is not None
        slow = max(5, args.n // 10)
        result = {
            "scrypt_hash": timed(lambda: hash_password("correct horse battery"), slow),
            "scrypt_verify": timed(lambda: verify_password("correct horse battery", stored), slow),
            "login_sqlite": timed(lambda: users.login("sup", "pw"), slow),
            "session_lookup_sqlite": timed(lambda: users.session_user(session.token), args.n),
            "redact_turn": timed(lambda: [redactor.text(t) for t in TURNS], args.n),
            "redact_turn_note": f"all {len(TURNS)} sample turns per run",
            "machine_note": "2 shared cores, several engineers' jobs running: figures are pessimistic",
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
